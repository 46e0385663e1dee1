package fairness

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/synack/synack/bench/pathmatrix"
)

// PairResult is two flows sharing one bottleneck for Duration. Flow i ran
// controller Names[i]; Bytes[i] is what its receiver read over the whole
// run and Late[i] what it read over the second half, when both flows have
// had time to converge.
type PairResult struct {
	Cell     pathmatrix.Cell
	Names    [2]string
	Duration time.Duration
	Bytes    [2]int64
	Late     [2]int64
	// Retrans is each sender's retransmitted segments (-1: unknown).
	Retrans [2]int64
	// Virtual says the run was on the virtual clock (synack pairs), not
	// in real time (a pair with the kernel).
	Virtual bool
}

// Mbit is flow i's throughput over the run, in Mbit/s.
func (r PairResult) Mbit(i int) float64 {
	return float64(r.Bytes[i]) * 8 / r.Duration.Seconds() / 1e6
}

// Share is flow i's share of what both moved over the run.
func (r PairResult) Share(i int) float64 {
	t := r.Bytes[0] + r.Bytes[1]
	if t == 0 {
		return 0
	}
	return float64(r.Bytes[i]) / float64(t)
}

// Jain is Jain's index of the two flows' throughputs over the whole run.
func (r PairResult) Jain() float64 { return Jain(float64(r.Bytes[0]), float64(r.Bytes[1])) }

// LateJain is Jain's index over the second half of the run.
func (r PairResult) LateJain() float64 { return Jain(float64(r.Late[0]), float64(r.Late[1])) }

// Utilization is what both flows moved over the run as a fraction of the
// link's rate (payload against the wire's bits, so a full link reads
// about 0.96 with timestamps).
func (r PairResult) Utilization() float64 {
	return float64(r.Bytes[0]+r.Bytes[1]) * 8 / r.Duration.Seconds() / float64(r.Cell.Rate)
}

// RunPair runs two synack flows with controllers a and b from one stack to
// another over cell c for d of virtual time. Both start together (the
// second dials right after the first is established) and send without
// pause. The stacks' buffers are four BDPs, so only the bottleneck, not a
// window, limits either flow.
func RunPair(c pathmatrix.Cell, a, b string, d time.Duration, seed int64) (PairResult, error) {
	return RunPairStaggered(c, a, b, d, seed, 0)
}

// RunPairStaggered is RunPair with the second flow starting to send
// stagger after the first: a late starter, which must take its share
// from a flow that already fills the link (the second half of the run
// is the measure then). The flows' throughputs are still over all of d.
func RunPairStaggered(c pathmatrix.Cell, a, b string, d time.Duration, seed int64, stagger time.Duration) (PairResult, error) {
	res := PairResult{Cell: c, Names: [2]string{a, b}, Duration: d, Virtual: true}
	s, err := newSim(c, seed, a)
	if err != nil {
		return res, err
	}
	defer s.close()
	var runErr error
	err = s.v.Run(func() {
		ln, err := s.rcv.ListenTCP(netip.AddrPortFrom(receiverAddr.Addr(), port), 0)
		if err != nil {
			runErr = fmt.Errorf("listen: %w", err)
			return
		}
		defer ln.Close()
		var fs [2]*flow
		for i, cc := range res.Names {
			if fs[i], runErr = s.open(ln, cc); runErr != nil {
				return
			}
			defer fs[i].c.Close()
		}
		for i, f := range fs {
			f.read(s.v)
			if i == 1 && stagger > 0 {
				s.v.Go(func() {
					s.v.Sleep(stagger)
					f.send(s.v, -1)
				})
				continue
			}
			f.send(s.v, -1)
		}
		s.v.Sleep(d / 2)
		var half [2]int64
		for i, f := range fs {
			half[i] = f.got.Load()
		}
		s.v.Sleep(d - d/2)
		for i, f := range fs {
			res.Bytes[i] = f.got.Load()
			res.Late[i] = res.Bytes[i] - half[i]
			res.Retrans[i] = int64(f.c.Info().Retransmits)
		}
	})
	if err == nil {
		err = runErr
	}
	return res, err
}

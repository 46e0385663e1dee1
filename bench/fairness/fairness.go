// Package fairness measures two things issue 11 asks of synack's congestion
// controllers ("How it is measured"), under the virtual clock, so that the
// figures are the protocols' and not the loaded machine's:
//
//   - how two flows share one bottleneck (RunPair): a memlink path with a
//     rate limit and a drop-tail queue of one bandwidth-delay product, two
//     connections from one synack stack to another, each with its own
//     controller, and the throughput of each over the run and Jain's
//     fairness index of the two;
//   - how a controller leaves slow start on a long fat path (RunSlowStart):
//     the time a bulk transfer takes to reach 80 % of the link, and the
//     retransmissions around the end of slow start, where HyStart++
//     (RFC 9406) should leave without the loss storm a loss-driven exit
//     causes.
//
// A pair with the Linux kernel cannot run on a virtual clock; RunMixedPair
// (Linux only, root) runs synack beside a kernel flow in real time through
// pathmatrix's relay.
package fairness

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/synack/synack/bench/pathmatrix"
	"github.com/synack/synack/clock"
	"github.com/synack/synack/link/memlink"
	"github.com/synack/synack/stack"
	"github.com/synack/synack/tcp"
)

// Addresses and port inside the simulated path (198.18.0.0/15 is for
// benchmarks, RFC 2544).
var (
	senderAddr   = netip.MustParsePrefix("198.18.0.1/24")
	receiverAddr = netip.MustParsePrefix("198.18.0.2/24")
)

const port = 5201

// epoch is the virtual clock's start (after 1970, should a trace end up in
// a pcap file).
var epoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// Jain is Jain's fairness index of the throughputs xs: (Σx)² / (n·Σx²),
// 1 when all are equal, 1/n when one flow has everything (Jain, Chiu and
// Hawe, DEC-TR-301, 1984). It is 0 when every x is 0.
func Jain(xs ...float64) float64 {
	var sum, sq float64
	for _, x := range xs {
		sum += x
		sq += x * x
	}
	if sq == 0 {
		return 0
	}
	return sum * sum / (float64(len(xs)) * sq)
}

// sim is two synack stacks on one memlink path under a virtual clock: the
// sender at senderAddr, the receiver listening at receiverAddr.
type sim struct {
	v        *clock.Virtual
	snd, rcv *stack.Stack
	a, b     *memlink.Endpoint
}

// newSim builds the path of cell c (its rate, one-way delay, drop-tail
// queue and impairments, both directions) with buffers of four BDPs
// (c.BufferSize), the sender's default controller cc.
func newSim(c pathmatrix.Cell, seed int64, cc string) (*sim, error) {
	v := clock.NewVirtual(epoch)
	cfg := c.Link(seed)
	cfg.Clock = v
	a, b := memlink.Pipe(cfg)
	tc := tcp.Config{SendBufferSize: c.BufferSize(), ReceiveBufferSize: c.BufferSize(), CongestionControl: cc}
	s := &sim{v: v, a: a, b: b,
		snd: stack.New(stack.Options{Clock: v, TCP: tc, Rand: seededRand(seed, 1)}),
		rcv: stack.New(stack.Options{Clock: v, TCP: tc, Rand: seededRand(seed, 2)})}
	if _, err := s.snd.AddLink(a, senderAddr); err != nil {
		s.close()
		return nil, fmt.Errorf("sender AddLink: %w", err)
	}
	if _, err := s.rcv.AddLink(b, receiverAddr); err != nil {
		s.close()
		return nil, fmt.Errorf("receiver AddLink: %w", err)
	}
	return s, nil
}

// seededRand is a stack's Rand drawn from the run's seed, so that the ISN
// key and the ephemeral ports, and with them the ISSs (which also seed
// BBR's probe-wait jitter), follow -seed: runs with one seed repeat, and
// runs with different seeds differ.
func seededRand(seed int64, which byte) io.Reader {
	var k [32]byte
	binary.LittleEndian.PutUint64(k[:], uint64(seed))
	k[8] = which
	return rand.NewChaCha8(k)
}

// close takes the stacks down, which wakes every participant still blocked
// in them with an error, then the link.
func (s *sim) close() {
	s.snd.Close()
	s.rcv.Close()
	s.a.Close()
}

// flow is one connection of a sim: the dialed (sending) end, the accepted
// (receiving) end and the bytes the receiver has read.
type flow struct {
	c, s *stack.TCPConn
	got  atomic.Int64
}

// open dials one connection with controller cc and accepts it; it runs as
// a participant of s.v.
func (s *sim) open(ln *stack.Listener, cc string) (*flow, error) {
	c, err := s.snd.DialTCP(context.Background(), netip.AddrPortFrom(receiverAddr.Addr(), port))
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	if err := c.SetCongestionControl(cc); err != nil {
		c.Close()
		return nil, err
	}
	acc, err := ln.AcceptTCP()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("accept: %w", err)
	}
	return &flow{c: c, s: acc}, nil
}

// send writes size bytes (size < 0: until the connection fails), then
// half-closes; read counts what arrives until EOF or an error. Both run
// as participants of v.
func (f *flow) send(v *clock.Virtual, size int64) {
	v.Go(func() {
		buf := make([]byte, 64<<10)
		for n := int64(0); size < 0 || n < size; {
			k := int64(len(buf))
			if size >= 0 {
				k = min(k, size-n)
			}
			if _, err := f.c.Write(buf[:k]); err != nil {
				return
			}
			n += k
		}
		f.c.CloseWrite()
	})
}

func (f *flow) read(v *clock.Virtual) {
	v.Go(func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := f.s.Read(buf)
			f.got.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
}

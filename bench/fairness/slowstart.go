package fairness

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/synack/synack/bench/pathmatrix"
	"github.com/synack/synack/tcp"
)

// Sample is the rate window and the sampling period of RunSlowStart: the
// goodput is read every SamplePeriod and judged over the last RateWindow.
const (
	SamplePeriod = 10 * time.Millisecond
	RateWindow   = 100 * time.Millisecond
)

// ReachFraction is the share of the link the issue asks a bulk to reach
// within ReachWithin (issue 11: 80 % of 1 Gbit/s within 10 s at 100 ms).
const (
	ReachFraction = 0.8
	ReachWithin   = 10 * time.Second
)

// SlowStartResult is one bulk transfer on a long fat path.
type SlowStartResult struct {
	Cell pathmatrix.Cell
	Name string // the controller
	Size int64
	// Done says the receiver read all Size bytes within the limit, in
	// Elapsed (from the first write).
	Done    bool
	Elapsed time.Duration
	// Reach is when the goodput over the last RateWindow first reached
	// ReachFraction of the link rate, from the first write; Hold when the
	// goodput over the last HoldWindow did (the link held, not touched
	// once by a slow start's burst). 0 if never.
	Reach, Hold time.Duration
	// Exit is when slow start ended — ssthresh left its "arbitrarily
	// high" start (RFC 5681 section 3.1): HyStart++ ending CSS
	// (RFC 9406 section 4.2), a loss, or BBR leaving STARTUP — seen at
	// the next sample; 0 if it never did. ExitCWnd is cwnd then, and
	// ByLoss says the sender had retransmitted or was in recovery by
	// then (so the exit was a loss's, not a delay signal's).
	Exit     time.Duration
	ExitCWnd int
	ByLoss   bool
	// RetransAtExit is the segments retransmitted from the start to
	// ExitWindow after Exit: the loss storm a slow start that ends by
	// overflowing the queue leaves behind. Retrans is the whole run's.
	RetransAtExit, Retrans int64
	Timeouts               int64
}

// Goodput is the payload rate of the whole transfer in bits per second.
func (r SlowStartResult) Goodput() float64 {
	if !r.Done || r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Size) * 8 / r.Elapsed.Seconds()
}

// ExitWindow is how long after slow start's end RetransAtExit keeps
// counting: long enough for the recovery of a queue's worth of losses on
// a 100 ms path (its retransmissions go out over several round trips).
const ExitWindow = time.Second

// HoldWindow is the window of SlowStartResult.Hold.
const HoldWindow = 500 * time.Millisecond

// RunSlowStart sends size bytes with controller cc over cell c on the
// virtual clock, sampling the receiver's byte count and the sender's
// Info every SamplePeriod, for at most limit.
func RunSlowStart(c pathmatrix.Cell, cc string, size int64, seed int64, limit time.Duration) (SlowStartResult, error) {
	res := SlowStartResult{Cell: c, Name: cc, Size: size}
	s, err := newSim(c, seed, cc)
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
		f, err := s.open(ln, cc)
		if err != nil {
			runErr = err
			return
		}
		defer f.c.Close()
		f.read(s.v)
		start := s.v.Now()
		f.send(s.v, size)
		win, hold := int(RateWindow/SamplePeriod), int(HoldWindow/SamplePeriod)
		hist := make([]int64, 0, int(limit/SamplePeriod)+1)
		hist = append(hist, 0)
		exitUntil := time.Duration(-1)
		for {
			s.v.Sleep(SamplePeriod)
			now := s.v.Now().Sub(start)
			got := f.got.Load()
			hist = append(hist, got)
			info := f.c.Info()
			if Trace != nil && len(hist)%10 == 1 {
				Trace(now, got, info, f.s.Info())
			}
			if res.Exit == 0 && info.SSThresh < 1<<30 {
				res.Exit, res.ExitCWnd = now, info.CWnd
				res.ByLoss = info.Retransmits > 0 || info.Recovering || info.Timeouts > 0
				exitUntil = now + ExitWindow
			}
			if exitUntil >= 0 && now >= exitUntil {
				res.RetransAtExit = int64(info.Retransmits)
				exitUntil = -1
			}
			n := len(hist) - 1
			if res.Reach == 0 && n >= win && reached(got-hist[n-win], RateWindow, c.Rate) {
				res.Reach = now
			}
			if res.Hold == 0 && n >= hold && reached(got-hist[n-hold], HoldWindow, c.Rate) {
				res.Hold = now
			}
			if got >= size || now >= limit {
				res.Done, res.Elapsed = got >= size, now
				res.Retrans, res.Timeouts = int64(info.Retransmits), int64(info.Timeouts)
				if exitUntil >= 0 {
					res.RetransAtExit = res.Retrans // the run ended inside the window
				}
				return
			}
		}
	})
	if err == nil {
		err = runErr
	}
	return res, err
}

// Trace, if set, is called every tenth sample of RunSlowStart with the
// time since the first write, the bytes received and the sender's and
// the receiver's Info: for looking at a run closely.
var Trace func(since time.Duration, received int64, sender, receiver tcp.Info)

// reached says whether n bytes in d are ReachFraction of rate.
func reached(n int64, d time.Duration, rate int64) bool {
	return float64(n)*8/d.Seconds() >= ReachFraction*float64(rate)
}

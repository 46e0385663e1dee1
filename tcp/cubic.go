package tcp

import (
	"math"
	"time"
)

// CUBIC's constants (RFC 9438 section 4.6 and 5: beta_cubic = 0.7,
// C = 0.4) and alpha_cubic = 3 * (1 - beta) / (1 + beta) (section 4.3),
// the additive increase that makes the Reno-friendly window W_est grow as
// fast on average as Reno's with its beta of 0.5.
const (
	cubicBeta  = 0.7
	cubicC     = 0.4
	cubicAlpha = 3 * (1 - cubicBeta) / (1 + cubicBeta)
)

// cubic is CUBIC (RFC 9438), with HyStart++ (RFC 9406, and an ACK-train
// exit beside its delay rule: hystart.train) in the initial slow start.
// Windows in RFC 9438's formulas are in segments: the float64
// fields below are, cwnd and ssthresh stay in bytes.
type cubic struct {
	window
	cubicEpoch
	hs    hystart
	saved cubicSaved // before the latest reduction, for Undo (section 4.9)
	acc   float64    // bytes of increase owed, less than one
	// rtoBackoff: the latest reduction was a timeout and no ACK has come
	// since. A further timeout then only keeps cwnd at one segment: the
	// window at the loss is the one before the first.
	rtoBackoff bool
	lastAck    time.Time // of the latest ACK in congestion avoidance
}

// cubicEpoch is the state of a congestion avoidance stage (RFC 9438
// section 4.2) and of the reduction that preceded it.
type cubicEpoch struct {
	start     time.Time // t_epoch; zero: the next ACK in congestion avoidance begins an epoch
	cwndEpoch float64   // cwnd_epoch
	wMax      float64   // W_max: the window at the last reduction (after fast convergence); 0: none yet
	k         float64   // K, seconds
	wEst      float64   // W_est, the Reno-friendly window (section 4.3)
	cwndPrior float64   // cwnd_prior, the window before the last reduction
	afterRTO  bool      // the next epoch is the first after a timeout (section 4.8)
}

// cubicSaved is what section 4.9 restores when a reduction proves spurious.
type cubicSaved struct {
	cubicEpoch
	hs hystart
}

// NewCubic returns a CUBIC controller for segments of mss bytes.
func NewCubic(mss int) Congestion {
	c := new(cubic)
	c.reinit(mss)
	return c
}

func (c *cubic) reinit(mss int) { *c = cubic{window: newWindow(mss)} }

func (c *cubic) Name() string { return "cubic" }

func (c *cubic) setWindow(cwnd, ssthresh int) {
	c.window.setWindow(cwnd, ssthresh)
	if ssthresh < initialSSThresh {
		c.hs.done = true // not the initial slow start any more
	}
}

// wCubic is RFC 9438 section 4.2 eq. 1: W_cubic(t) = C*(t-K)^3 + W_max.
func (e *cubicEpoch) wCubic(t float64) float64 {
	d := t - e.k
	return cubicC*d*d*d + e.wMax
}

// begin starts a congestion avoidance stage at now with a window of cwnd
// segments (RFC 9438 section 4.2): K from eq. 2, K = cubic_root((W_max -
// cwnd_epoch) / C). After a timeout (section 4.8), and when the window
// is already at or beyond W_max (no reduction yet, as when HyStart++ ends
// slow start, or a window that grew past the last one), K is 0 and W_max
// is the window now: the curve starts at its plateau and only goes up.
func (e *cubicEpoch) begin(now time.Time, cwnd float64) {
	e.start, e.cwndEpoch, e.wEst = now, cwnd, cwnd
	if e.afterRTO || e.wMax <= cwnd {
		e.wMax, e.k = cwnd, 0
	} else {
		e.k = math.Cbrt((e.wMax - cwnd) / cubicC)
	}
	e.afterRTO = false
}

// target is section 4.2's target window for an ACK at t seconds into the
// epoch with a smoothed RTT of rtt: W_cubic(t + RTT), bounded to
// [cwnd, 1.5*cwnd]: the window never shrinks on an ACK and grows by at
// most half of itself per RTT.
func (e *cubicEpoch) target(t, rtt, cwnd float64) float64 {
	return min(max(e.wCubic(t+rtt), cwnd), 1.5*cwnd)
}

// renoFriendly updates W_est for segsAcked segments acknowledged with a
// window of cwnd segments (section 4.3): W_est += alpha_cubic * segments
// acked / cwnd, where alpha_cubic becomes 1 once W_est reaches cwnd_prior.
func (e *cubicEpoch) renoFriendly(segsAcked, cwnd float64) {
	alpha := cubicAlpha
	if e.wEst >= e.cwndPrior {
		alpha = 1
	}
	e.wEst += alpha * segsAcked / cwnd
}

func (c *cubic) OnAck(now time.Time, a Ack) {
	c.rtoBackoff = false
	if a.ECE {
		return // RFC 3168 6.1.2: no increase on an ECN-Echo ACK
	}
	if 2*(a.Flight+a.Acked) < c.cwnd {
		// Application-limited (section 5.8): less than half the window
		// was in use, so the ACK says nothing of the path's room; cwnd
		// does not grow, and the time does not count in the epoch (t is
		// the time spent using the window, section 4.2).
		if !c.start.IsZero() {
			c.start = c.start.Add(now.Sub(c.lastAck))
			c.lastAck = now
		}
		return
	}
	if c.cwnd < c.ssthresh {
		if c.hs.done || c.ssthresh != initialSSThresh {
			c.slowStart(a.Acked)
			return
		}
		grow, exit := c.hs.onAck(now, a, c.mss, c.cwnd)
		c.cwnd += grow
		if exit {
			c.ssthresh = c.cwnd // RFC 9406 section 4.2: on to congestion avoidance
		}
		return
	}
	mss := float64(c.mss)
	cwnd := float64(c.cwnd) / mss
	if c.start.IsZero() {
		c.begin(now, cwnd)
	}
	c.lastAck = now
	t := now.Sub(c.start).Seconds()
	segs := float64(a.Acked) / mss
	c.renoFriendly(segs, cwnd)
	var inc float64 // segments
	if w := c.wCubic(t); w < c.wEst {
		// Reno-friendly region (section 4.3): cwnd = W_est.
		inc = c.wEst - cwnd
	} else {
		// Concave (section 4.4) or convex (4.5) region: cwnd grows by
		// (target - cwnd) / cwnd for each segment acknowledged.
		inc = (c.target(t, a.SRTT.Seconds(), cwnd) - cwnd) / cwnd * segs
	}
	if inc <= 0 {
		return
	}
	c.acc += inc * mss
	whole := math.Floor(c.acc)
	c.acc -= whole
	c.cwnd += int(whole)
}

// reduce is the response to a congestion event (RFC 9438 section 4.6)
// with fast convergence (section 4.7). It leaves cwnd to the caller.
func (c *cubic) reduce(flight int) {
	c.saved = cubicSaved{cubicEpoch: c.cubicEpoch, hs: c.hs}
	cwnd := float64(c.cwnd) / float64(c.mss)
	if cwnd < c.wMax {
		// Fast convergence: a flow whose window stopped short of its
		// last W_max leaves room to newer flows.
		c.wMax = cwnd * (1 + cubicBeta) / 2
	} else {
		c.wMax = cwnd
	}
	c.cwndPrior = cwnd
	// ssthresh = flight_size * beta_cubic, at least 2 segments.
	c.ssthresh = max(int(math.Round(float64(flight)*cubicBeta)), 2*c.mss)
	c.start = time.Time{}
	c.acc = 0
	c.hs.done = true // RFC 9406 section 4.2: a loss ends slow start and CSS
}

func (c *cubic) OnFastRetransmit(_ time.Time, flight int) {
	c.rtoBackoff = false
	c.reduce(flight)
	// Section 4.6: cwnd = max(ssthresh, 2 segments). With SACK, PRR meters
	// the sending in recovery; without, NewReno's fast recovery inflates
	// the window from here by the duplicate ACKs (OnDupAck).
	c.cwnd = c.ssthresh
}

// OnECE is RFC 9438 section 4.6's multiplicative decrease, which
// applies to an ECN-Echo as to a loss (RFC 9438 counts both as congestion
// events): beta_cubic and fast convergence as in reduce; with nothing to
// recover, cwnd is the new ssthresh at once (RFC 3168 section 6.1.2).
func (c *cubic) OnECE(_ time.Time, flight int) {
	c.rtoBackoff = false
	c.reduce(flight)
	c.cwnd = min(c.cwnd, c.ssthresh) // never up, from one segment after a timeout
}

func (c *cubic) OnRecoveryEnd(_ time.Time, flight int) {
	c.recoveryEnd(flight)
	c.acc = 0
}

// OnTimeout is RFC 9438 section 4.8: ssthresh as on any congestion event,
// cwnd one segment as Reno, and the first epoch after it starts with
// K = 0.
func (c *cubic) OnTimeout(_ time.Time, flight int) {
	if !c.rtoBackoff {
		c.reduce(flight)
		c.afterRTO = true
		c.rtoBackoff = true
	}
	c.cwnd = c.mss
}

// Undo implements Undoer as RFC 9438 section 4.9: after a spurious
// congestion event, cwnd and ssthresh go back to at least what they were,
// and W_max, K, the epoch and the Reno-friendly window to their values
// before the reduction (and HyStart++ to where it was).
func (c *cubic) Undo(cwnd, ssthresh int) {
	c.cubicEpoch, c.hs = c.saved.cubicEpoch, c.saved.hs
	c.cwnd = max(c.cwnd, cwnd)
	c.ssthresh = max(c.ssthresh, ssthresh)
	c.acc = 0
	c.rtoBackoff = false
}

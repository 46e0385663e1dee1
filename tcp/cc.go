package tcp

// Congestion is a congestion controller: it owns cwnd and ssthresh. Loss
// detection (duplicate ACKs, timeouts) stays in the connection; the
// controller only decides how the window moves. NewReno is the default;
// CUBIC and SACK-based recovery plug in here later.
type Congestion interface {
	// Window is cwnd in bytes.
	Window() int
	// SlowStartThreshold is ssthresh in bytes.
	SlowStartThreshold() int
	// OnAck is told of newly acknowledged bytes outside fast recovery.
	OnAck(acked, flight int)
	// OnFastRetransmit is told that three duplicate ACKs started fast
	// recovery with flight bytes outstanding.
	OnFastRetransmit(flight int)
	// OnDupAck is told of a further duplicate ACK during fast recovery.
	OnDupAck()
	// OnPartialAck is told of an ACK during recovery that acknowledged
	// acked bytes but not everything up to the recovery point.
	OnPartialAck(acked int)
	// OnRecoveryEnd is told that an ACK covered the recovery point.
	OnRecoveryEnd(flight int)
	// OnTimeout is told of a retransmission timeout with flight bytes out.
	OnTimeout(flight int)
	// SetMSS changes the segment size the controller counts in.
	SetMSS(mss int)
}

// newReno is RFC 5681 slow start and congestion avoidance with the fast
// recovery of RFC 6582.
type newReno struct {
	cwnd, ssthresh int
	mss            int
	acc            int // bytes acknowledged towards the next cwnd increase in congestion avoidance
}

// NewNewReno returns a NewReno controller for segments of mss bytes.
func NewNewReno(mss int) Congestion {
	c := &newReno{mss: mss, ssthresh: 1 << 30}
	c.cwnd = initialWindow(mss)
	return c
}

// initialWindow is RFC 6928's IW = min(10*MSS, max(2*MSS, 14600)).
func initialWindow(mss int) int {
	return min(10*mss, max(2*mss, 14600))
}

func (c *newReno) Window() int             { return c.cwnd }
func (c *newReno) SlowStartThreshold() int { return c.ssthresh }
func (c *newReno) SetMSS(mss int)          { c.mss = mss }

func (c *newReno) OnAck(acked, flight int) {
	if c.cwnd < c.ssthresh {
		// Slow start, RFC 5681 section 3.1 (with RFC 3465's L = 2*SMSS
		// cap on the increase per ACK).
		c.cwnd += min(acked, 2*c.mss)
		return
	}
	// Congestion avoidance: about one MSS per RTT (RFC 5681 eq. 3, counted
	// in bytes acknowledged as RFC 3465 recommends).
	c.acc += acked
	if c.acc >= c.cwnd {
		c.acc -= c.cwnd
		c.cwnd += c.mss
	}
}

func (c *newReno) OnFastRetransmit(flight int) {
	// RFC 5681 section 3.2 steps 2 and 3 (eq. 4).
	c.ssthresh = max(flight/2, 2*c.mss)
	c.cwnd = c.ssthresh + 3*c.mss
}

func (c *newReno) OnDupAck() { c.cwnd += c.mss } // RFC 6582 section 3.2 step 3

func (c *newReno) OnPartialAck(acked int) {
	// RFC 6582 section 3.2 step 5: deflate by the amount acknowledged, then
	// add back one MSS if that amount was at least one MSS.
	c.cwnd -= acked
	if acked >= c.mss {
		c.cwnd += c.mss
	}
	c.cwnd = max(c.cwnd, c.mss)
}

func (c *newReno) OnRecoveryEnd(flight int) {
	// RFC 6582 section 3.2 step 5, full acknowledgment, option (1).
	c.cwnd = min(c.ssthresh, max(flight, c.mss)+c.mss)
	c.acc = 0
}

func (c *newReno) OnTimeout(flight int) {
	// RFC 5681 section 3.1 eq. 4 and "LW = 1 SMSS".
	c.ssthresh = max(flight/2, 2*c.mss)
	c.cwnd = c.mss
	c.acc = 0
}

// Undoer is a Congestion that can go back to the window it had before a
// reduction that proved spurious (RFC 3708 section 4, RFC 4015 section 3).
// It is optional: a controller without it keeps the reduced window, and
// the connection still counts the spurious retransmission.
type Undoer interface {
	// Undo restores at least cwnd and ssthresh, the values before the
	// reduction.
	Undo(cwnd, ssthresh int)
}

// Undo implements Undoer as RFC 4015 section 3.2's "restore cwnd and
// ssthresh" (never below what they have grown to since).
func (c *newReno) Undo(cwnd, ssthresh int) {
	c.cwnd = max(c.cwnd, cwnd)
	c.ssthresh = max(c.ssthresh, ssthresh)
	c.acc = 0
}

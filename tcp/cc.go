package tcp

import (
	"time"

	"github.com/synack/synack/seqnum"
)

// Congestion is a congestion controller: it owns cwnd and ssthresh. Loss
// detection (duplicate ACKs, SACK, RACK, timeouts) stays in the
// connection; the controller only decides how the window moves. Like the
// rest of the core it is pure: time comes in as an argument. Controllers
// are chosen by name (Config.CongestionControl, ccreg.go); CUBIC is the
// default.
type Congestion interface {
	// Name is the name the controller is registered under ("cubic",
	// "newreno"), or any name a custom controller gives itself.
	Name() string
	// Window is cwnd in bytes.
	Window() int
	// SlowStartThreshold is ssthresh in bytes.
	SlowStartThreshold() int
	// OnAck is told of an ACK that acknowledged new bytes outside fast
	// recovery.
	OnAck(now time.Time, a Ack)
	// OnFastRetransmit is told that loss recovery started (three
	// duplicate ACKs, RFC 6675 or RACK) with flight bytes outstanding.
	OnFastRetransmit(now time.Time, flight int)
	// OnDupAck is told of a further duplicate ACK during NewReno's fast
	// recovery (the connection without SACK).
	OnDupAck()
	// OnPartialAck is told of an ACK during recovery that acknowledged
	// acked bytes but not everything up to the recovery point.
	OnPartialAck(acked int)
	// OnRecoveryEnd is told that an ACK covered the recovery point.
	OnRecoveryEnd(now time.Time, flight int)
	// OnTimeout is told of a retransmission timeout with flight bytes out.
	OnTimeout(now time.Time, flight int)
	// OnECE is told of an ACK echoing a congestion mark (ECE, RFC 3168
	// section 6.1.2) with flight bytes outstanding: the controller
	// reduces its window as it would for a loss, but nothing is lost, so
	// no recovery follows (no OnDupAck, OnPartialAck or OnRecoveryEnd) and
	// cwnd takes the reduced value at once. The connection calls it at
	// most once per window of data, and never during loss recovery.
	// RFC 8311 section 4.1 lets the response to ECE be milder than the
	// one to a loss (RFC 8511's ABE uses beta 0.8); NewReno and CUBIC
	// here keep their loss response, as Linux does.
	OnECE(now time.Time, flight int)
	// SetMSS changes the segment size the controller counts in.
	SetMSS(mss int)
}

// Ack is what a controller learns from one ACK that acknowledged new data.
type Ack struct {
	Acked  int // bytes newly acknowledged cumulatively
	Flight int // bytes outstanding after the ACK
	// Una is SND.UNA after the ACK and Next the highest sequence number
	// sent (SND.MAX): round trips are counted from them (RFC 9406 section
	// 4.2's windowEnd).
	Una, Next seqnum.Value
	// RTT is the sample this ACK gave (RFC 6298, RFC 7323 section 4.1), or
	// 0 when it gave none (Karn's rule). SRTT is the smoothed RTT and
	// MinRTT the least sample of the connection, 0 before the first.
	RTT, SRTT, MinRTT time.Duration
	// ECE: the ACK echoed a congestion mark (RFC 3168 section 6.1.2:
	// "the sending TCP SHOULD NOT increase the congestion window in
	// response to the receipt of an ECN-Echo ACK packet"). The
	// connection has called OnECE first if the echo called for a
	// reduction.
	ECE bool
	// Paced: the connection paces what it sends (pacing.go). HyStart++'s
	// ACK-train exit does not apply to a paced sender (hystart.train).
	Paced bool

	// Rate is the delivery-rate sample of this ACK (rate.go); without
	// SACK a coarse one, with a rate only when a round trip ended.
	Rate RateSample
}

// AckObserver is a Congestion that models the path rather than reacting
// to loss alone (BBR): it is told of every acceptable ACK, in recovery
// and duplicates included, after the connection has processed it, and it
// sets the window during SACK recovery itself (the connection then sends
// what cwnd less the pipe allows instead of what PRR allows, as Linux
// lets a cong_control module override tcp_cwnd_reduction). Its OnAck,
// OnDupAck and OnPartialAck are still called and may do nothing.
type AckObserver interface {
	OnEveryAck(now time.Time, a Ack)
}

// window is the part a loss-based controller shares with NewReno: the two
// numbers and NewReno's fast recovery (RFC 6582), which inflates the
// window by the duplicate ACKs and deflates it by partial ACKs.
type window struct {
	cwnd, ssthresh int
	mss            int
}

// initialSSThresh is RFC 5681 section 3.1's "arbitrarily high" initial
// ssthresh.
const initialSSThresh = 1 << 30

func newWindow(mss int) window {
	return window{cwnd: initialWindow(mss), ssthresh: initialSSThresh, mss: mss}
}

// initialWindow is RFC 6928's IW = min(10*MSS, max(2*MSS, 14600)).
func initialWindow(mss int) int {
	return min(10*mss, max(2*mss, 14600))
}

func (w *window) Window() int             { return w.cwnd }
func (w *window) SlowStartThreshold() int { return w.ssthresh }
func (w *window) SetMSS(mss int)          { w.mss = mss }

// setWindow carries cwnd and ssthresh over from the controller a
// connection had before SetCongestionControl, as Linux does on
// TCP_CONGESTION.
func (w *window) setWindow(cwnd, ssthresh int) {
	w.cwnd, w.ssthresh = max(cwnd, w.mss), max(ssthresh, 2*w.mss)
}

// slowStart is slow start (RFC 5681 section 3.1) for an ACK of acked
// bytes: cwnd grows by the bytes acknowledged (byte counting, RFC 3465
// section 2 and RFC 5681's N in eq. 2), with no limit per ACK
// (slowStartGrowth). "Slow start ends when cwnd exceeds ssthresh" (RFC
// 5681 section 3.1): the ACK that ends it may take cwnd past ssthresh by
// as much as an ACK of two segments could (RFC 3465's L = 2*SMSS, the
// bound this code had per ACK), never by all of a stretch ACK. For an
// ACK of at most two segments this is exactly the growth of before.
func (w *window) slowStart(acked int) {
	w.cwnd += min(slowStartGrowth(acked), max(w.ssthresh-w.cwnd, 0)+2*w.mss)
}

// slowStartGrowth is how much one ACK of acked bytes grows cwnd in slow
// start: all of it, L = infinity. Every slow start of every controller
// counts this way (newreno; CUBIC's, and HyStart++'s standard and
// conservative slow start, hystart.go; BBR's STARTUP grows by the bytes
// delivered on its own).
//
// The rule and why it is not RFC 5681 eq. 2's min(N, SMSS), RFC 3465
// section 2.3's min(N, 2*SMSS) or RFC 9406 section 4.3's L = 8 for a
// sender that does not pace (L = infinity is RFC 9406's value for one that
// paces): a per-ACK limit L bounds the burst a stretch ACK releases, and
// it bounds slow start's growth with it. An ACK that covers k segments
// lets k leave to replace them plus what cwnd grew; with L < k a round
// trip grows cwnd by 1 + L/k instead of 2. Stretch ACKs are the normal
// case, not a misbehaving receiver's: synack's receiver acknowledges a
// receive batch with one ACK for up to 16 segments (batch.go), and Linux's
// one per GRO packet, up to 44. Traced with bench/cmd/cellprobe
// (BENCHMARKS.md, "Slow start and stretch ACKs (2026-12-04 evening)"): at
// 1 Gbit/s x 20 ms in real time the sender's ACKs covered 8 to 15
// segments each, and with the same receive batches on the virtual clock
// (cellprobe -rxbatch 200us) slow start grew 1.5x per round trip under L
// = 8 and ended at 235 ms instead of 170 ms (later slow starts, under L =
// 2, grew 1 + 2/k). The burst without L is the one the ACK pattern
// makes, 2k segments, bounded by the peer's stretch (16 from synack); it
// is what Linux's CUBIC sends (its slow start adds all the bytes
// acknowledged), and what a pacing sender spreads. RFC 5681's concern for
// eq. 2, ACK division, is met by counting bytes: an ACK never grows cwnd
// by more than it acknowledged.
func slowStartGrowth(acked int) int { return max(acked, 0) }

func (w *window) OnDupAck() { w.cwnd += w.mss } // RFC 6582 section 3.2 step 3

func (w *window) OnPartialAck(acked int) {
	// RFC 6582 section 3.2 step 5: deflate by the amount acknowledged, then
	// add back one MSS if that amount was at least one MSS.
	w.cwnd -= acked
	if acked >= w.mss {
		w.cwnd += w.mss
	}
	w.cwnd = max(w.cwnd, w.mss)
}

// sackRecoveryEntry is RFC 6675 section 5 step (4.2): entering SACK loss
// recovery, cwnd = ssthresh. The inflation RFC 5681 section 3.2 and RFC
// 6582 add in OnFastRetransmit (three segments, then one per duplicate)
// is for recovery without SACK, where cwnd meters the sending; with SACK
// the pipe counts what left the network and PRR meters the sending, and
// an inflated cwnd would only misreport the reduction.
func (w *window) sackRecoveryEntry() { w.cwnd = w.ssthresh }

// recoveryEnd is RFC 6582 section 3.2 step 5, full acknowledgment, option
// (1).
func (w *window) recoveryEnd(flight int) {
	w.cwnd = min(w.ssthresh, max(flight, w.mss)+w.mss)
}

// newReno is RFC 5681 slow start and congestion avoidance with the fast
// recovery of RFC 6582.
type newReno struct {
	window
	acc int // bytes acknowledged towards the next cwnd increase in congestion avoidance
}

// NewNewReno returns a NewReno controller for segments of mss bytes.
func NewNewReno(mss int) Congestion {
	c := new(newReno)
	c.reinit(mss)
	return c
}

func (c *newReno) reinit(mss int) { *c = newReno{window: newWindow(mss)} }

func (c *newReno) Name() string { return "newreno" }

func (c *newReno) OnAck(_ time.Time, a Ack) {
	if a.ECE {
		return // RFC 3168 6.1.2: no increase on an ECN-Echo ACK
	}
	if c.cwnd < c.ssthresh {
		c.slowStart(a.Acked)
		return
	}
	// Congestion avoidance: about one MSS per RTT (RFC 5681 eq. 3, counted
	// in bytes acknowledged as RFC 3465 recommends).
	c.acc += a.Acked
	if c.acc >= c.cwnd {
		c.acc -= c.cwnd
		c.cwnd += c.mss
	}
}

func (c *newReno) OnFastRetransmit(_ time.Time, flight int) {
	// RFC 5681 section 3.2 steps 2 and 3 (eq. 4).
	c.ssthresh = max(flight/2, 2*c.mss)
	c.cwnd = c.ssthresh + 3*c.mss
}

// OnECE is RFC 3168 section 6.1.2: "the congestion window (cwnd) is
// halved, and the slow-start threshold (ssthresh) is reduced to the
// congestion window", as RFC 5681's eq. 4 for a loss, with no fast
// recovery after it.
func (c *newReno) OnECE(_ time.Time, flight int) {
	c.ssthresh = max(flight/2, 2*c.mss)
	c.cwnd = min(c.cwnd, c.ssthresh) // never up, from one segment after a timeout
	c.acc = 0
}

func (c *newReno) OnRecoveryEnd(_ time.Time, flight int) {
	c.recoveryEnd(flight)
	c.acc = 0
}

func (c *newReno) OnTimeout(_ time.Time, flight int) {
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

package tcp

import (
	"fmt"
	"time"

	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/wire"
)

// This file is Explicit Congestion Notification for TCP (RFC 3168 section
// 6.1, with what RFC 8311 relaxes noted where it matters): negotiation on
// the handshake, ECT(0) on the data we send, the receiver's ECE echo of a
// CE mark until the sender's CWR, and the sender's response to ECE, once
// per window, through the congestion controller (Congestion.OnECE).
//
// The IP ECN field travels with the Segment (Segment.ECN): the runtime
// copies it from the IP header of what arrives and into the IP header of
// what leaves.

// ECNMode is Config.ECN: whether a connection negotiates ECN.
type ECNMode uint8

const (
	// ECNPassive (the zero value, the default) uses ECN when the peer's
	// SYN asks for it, and sends SYNs that do not ask: Linux's default,
	// net.ipv4.tcp_ecn = 2.
	ECNPassive ECNMode = iota
	// ECNActive also asks for ECN on active opens (tcp_ecn = 1).
	ECNActive
	// ECNOff never uses ECN (tcp_ecn = 0).
	ECNOff
)

// String names the mode as its sysctl value: "0", "1", "2".
func (m ECNMode) String() string { return fmt.Sprint(m.Sysctl()) }

// Sysctl is the value of Linux's net.ipv4.tcp_ecn that means m.
func (m ECNMode) Sysctl() int {
	switch m {
	case ECNActive:
		return 1
	case ECNOff:
		return 0
	}
	return 2
}

// ECNModeFromSysctl is the mode a net.ipv4.tcp_ecn value means: 0, 1 or 2.
// Linux's 3 and above (Accurate ECN, draft-ietf-tcpm-accurate-ecn) are
// not implemented.
func ECNModeFromSysctl(v int) (ECNMode, error) {
	switch v {
	case 0:
		return ECNOff, nil
	case 1:
		return ECNActive, nil
	case 2:
		return ECNPassive, nil
	}
	return ECNPassive, fmt.Errorf("tcp_ecn=%d: only 0, 1 and 2 (RFC 3168) are implemented", v)
}

// ecnState is a connection's ECN: whether it was negotiated, and the
// state of both directions.
type ecnState struct {
	ok bool // negotiated on the handshake (RFC 3168 6.1.1)
	// requested: our SYN was an ECN-setup SYN (ECE and CWR).
	requested bool

	// echo: a CE-marked segment arrived and no CWR since: every ACK we
	// send carries ECE (RFC 3168 6.1.3).
	echo bool

	// cwr: the congestion window was reduced (for ECE or for a loss) and
	// the next new data segment carries CWR (RFC 3168 6.1.2).
	cwr bool
	// reduced and recover: the window of the latest reduction, SND.MAX
	// then; an ECE on an ACK that does not go beyond it is not answered
	// again ("at most once per window of data", RFC 3168 6.1.2).
	reduced bool
	recover seqnum.Value
	// eceACK: the ACK being processed has ECE (Ack.ECE).
	eceACK bool
}

// ecnSetupSYN reports whether seg, a SYN without ACK, asks for ECN: an
// "ECN-setup SYN" has both ECE and CWR (RFC 3168 6.1.1).
func ecnSetupSYN(seg *Segment) bool {
	return seg.Flags&(wire.ECE|wire.CWR) == wire.ECE|wire.CWR
}

// ecnSetupSYNACK reports whether seg, a SYN,ACK, agrees to ECN: an
// "ECN-setup SYN-ACK" has ECE and not CWR (RFC 3168 6.1.1); one with both
// is what a host that reflects flags sends, and is not an agreement.
func ecnSetupSYNACK(seg *Segment) bool {
	return seg.Flags&(wire.ECE|wire.CWR) == wire.ECE
}

// acceptsECN reports whether a listener (or a connection in SYN-SENT that
// meets a SYN) with cfg agrees to the ECN the SYN seg asks for.
func (cfg *Config) acceptsECN(seg *Segment) bool {
	return cfg.ECN != ECNOff && ecnSetupSYN(seg)
}

// ecnNegotiate takes the peer's SYN or SYN,ACK (negotiate): a SYN,ACK
// completes our request; a SYN asks for ECN, which we agree to unless
// ECN is off.
func (c *Conn) ecnNegotiate(seg *Segment) {
	if seg.has(wire.ACK) {
		c.ecn.ok = c.ecn.requested && ecnSetupSYNACK(seg)
	} else {
		c.ecn.ok = c.cfg.acceptsECN(seg)
	}
}

// ecnSYNFlags sets the ECN flags of our SYN or SYN,ACK s (sendSYN). Our
// SYN asks with ECE|CWR when ECNActive; its retransmissions beyond
// Config.ECNSynRetries do not, in case a middlebox drops ECN-setup SYNs
// (RFC 3168 6.1.1.1 lets them go without). A SYN,ACK agrees with ECE
// alone. Neither is ECT: RFC 3168 6.1.1 leaves SYNs Not-ECT (RFC 8311
// section 4.3 allows an experiment with ECT on them, which we do not
// run).
func (c *Conn) ecnSYNFlags(s *Segment) {
	if c.haveSYN {
		if c.ecn.ok {
			s.Flags |= wire.ECE
		}
		return
	}
	// A SYN,ACK that answers an earlier ECN-setup SYN agrees to nothing
	// once a later SYN went without (the scenario of 6.1.1.1).
	c.ecn.requested = c.cfg.ECN == ECNActive && c.snd.retransmits <= c.cfg.ECNSynRetries
	if c.ecn.requested {
		s.Flags |= wire.ECE | wire.CWR
	}
}

// ecnOutgoing marks the data segment s that sendOneSegment is about to
// send: ECT(0) when it carries new data (RFC 3168 6.1.2), never when it
// is a retransmission (6.1.5), a pure ACK (6.1.4), a window probe (6.1.6)
// or a FIN without data; and CWR on the first new data after a window
// reduction (6.1.2). The ECE echo is set for every ACK in fillACKFields.
func (c *Conn) ecnOutgoing(s *Segment, retransmit bool) {
	if !c.ecn.ok || retransmit || len(s.Payload) == 0 {
		return
	}
	s.ECN = wire.ECT0
	if c.ecn.cwr {
		c.ecn.cwr = false
		s.Flags |= wire.CWR
		c.cold().CWRSent++
	}
}

// ecnEcho sets ECE on the ACK s while the receiver owes an echo (RFC 3168
// 6.1.3).
func (c *Conn) ecnEcho(s *Segment) {
	if c.ecn.echo {
		s.Flags |= wire.ECE
	}
}

// ecnIncoming is the receiver's side, for a segment that passed the
// sequence check (RFC 3168 6.1.3): a CWR ends the echo; then a CE mark
// starts it, so that a CE on the very segment that carries CWR is still
// echoed. A CE-marked segment with data is acknowledged at once, so the
// sender hears of the congestion within the round trip (as Linux acks
// at once on a change of CE state).
func (c *Conn) ecnIncoming(seg *Segment) {
	if !c.ecn.ok {
		return
	}
	if seg.has(wire.CWR) {
		c.ecn.echo = false
	}
	if seg.ECN == wire.CE && seg.Len() > 0 {
		c.cold().CEReceived++
		c.ecn.echo = true
		if len(seg.Payload) > 0 {
			c.rcv.ackPending, c.rcv.ackNow = true, true
		}
	}
}

// ecnOnACK is the sender's response to an acceptable ACK with ECE (RFC
// 3168 6.1.2), before the ACK moves SND.UNA: the controller reduces the
// window as for a loss (Congestion.OnECE), without retransmitting, at
// most once per window of data, and not during loss recovery, whose
// reduction already answered the congestion; the next new data carries
// CWR. The ACK itself grows no window (Ack.ECE).
//
// Not done: RFC 3168 6.1.2's rule for an ECE that finds cwnd at one
// segment (restart the retransmission timer and send only when it
// expires). cwnd is one segment only after a timeout, and within that
// window ECE is not answered; the controllers then never raise cwnd on
// ECE, and keep ssthresh at two segments at least, as Linux does.
func (c *Conn) ecnOnACK(now time.Time, seg *Segment) {
	c.ecn.eceACK = false
	if !c.ecn.ok || !seg.has(wire.ECE) || seg.has(wire.SYN) || c.cc == nil {
		return
	}
	c.ecn.eceACK = true
	c.cold().ECEReceived++
	if c.snd.inRecovery || c.ecn.reduced && !seg.Ack.GreaterThan(c.ecn.recover) {
		return
	}
	if c.snd.una == c.snd.max {
		return // nothing of ours was marked: the echo is for data long acknowledged
	}
	// The reduction is a real congestion signal: a spurious-loss undo
	// (undo.go) must not restore the window from before it.
	if c.snd.loss != nil {
		c.snd.loss.undo = undoEpisode{}
	}
	c.cc.OnECE(now, int(c.snd.una.Size(c.snd.max)))
	c.cold().ECNReductions++
	c.ecnWindowReduced()
}

// ecnWindowReduced notes a reduction of the congestion window, for ECE or
// for a loss: "when an ECN-Capable TCP sender reduces its congestion
// window for any reason (because of a retransmit timeout, a Fast
// Retransmit, or in response to an ECN Notification), the TCP sender sets
// the CWR flag in the TCP header of the first new data packet sent after
// the window reduction" (RFC 3168 6.1.2); and ECE is not answered again
// within the window.
func (c *Conn) ecnWindowReduced() {
	if !c.ecn.ok {
		return
	}
	c.ecn.cwr = true
	c.ecn.reduced, c.ecn.recover = true, c.snd.max
}

// ecnNegotiatedCount is the connection's share of the stack's count of
// connections that use ECN (StackCounts.ECNNegotiated): 1 once the
// handshake is done with ECN agreed. It never goes back: ECN is agreed on
// the handshake only, and SND.UNA never returns to the ISS.
func (c *Conn) ecnNegotiatedCount() uint64 {
	if c.ecn.ok && c.synAcked() && c.haveSYN {
		return 1
	}
	return 0
}

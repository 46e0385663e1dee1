package tcp

import (
	"time"

	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/wire"
)

// This file decides what to send: data within the windows (with Nagle and
// sender-side silly window avoidance), the FIN, ACKs (delayed or not),
// window updates, resets and challenge ACKs.

// rcvWindow is RCV.WND before any rounding or silly-window rules: the
// room left under the window's present limit, which auto-tuning grows
// (autotune.go) and which is the whole receive buffer with NoAutoTune.
// The limit never exceeds the ring's, so this never exceeds its free room.
func (c *Conn) rcvWindow() uint32 {
	held := c.rcvBuffered() // the ring's bytes and the lent ones (lend.go)
	return uint32(max(min(c.rcvLimit(), c.rcv.buf.limit)-held, 0))
}

// windowField is the window to put in a non-SYN segment, scaled. Receiver
// side silly window avoidance (RFC 9293 section 3.8.6.2.2): the right edge
// only moves forward by at least min(half the buffer, one MSS), the buffer
// being the auto-tuned limit the window is offered from (rcvLimit): a
// limit of about one segment, as at a large MSS, drained, gains less than
// an MSS, and against the whole buffer's half it would never reopen but
// by the peer's persist probe (issue 13); and it
// never moves back (RFC 9293 3.8.6, "shrinking the window" is strongly
// discouraged). Under the stack's memory pressure it opens no further
// than clampWindow allows (memory.go).
func (c *Conn) windowField() uint16 {
	wnd := c.clampWindow(c.rcvWindow())
	edge := c.rcv.nxt.Add(seqnum.Size(wnd))
	adv := c.rcv.advEdge
	// advEdge counts only once a window has been advertised, and only if
	// it lies within the buffer's reach from RCV.NXT (before our first ACK
	// it holds nothing meaningful).
	if adv.GreaterThanEq(c.rcv.nxt) && c.rcv.nxt.Size(adv) <= seqnum.Size(max(c.rcvBufSize(), c.cfg.receiveBufferSize())) {
		step := seqnum.Size(min(c.rcvLimit()/2, c.mss))
		if edge.LessThan(adv.Add(step)) {
			edge = seqnum.Max(adv, c.rcv.nxt)
		}
	}
	wnd = uint32(c.rcv.nxt.Size(edge))
	f := wnd >> c.rcv.wscale
	if edge == c.rcv.advEdge && f<<c.rcv.wscale < wnd {
		// A scaled window names edges on its granularity only. A held
		// edge (under memory pressure, memory.go, or while the window
		// waits to open by a step, as an auto-tuned window often does,
		// autotune.go) stays for many ACKs, and rounding down would
		// retract it a little on each: round up, a little beyond it
		// (RFC 7323 section 2.4 names the choice; Linux rounds up too).
		f++
	}
	if f > 0xFFFF {
		f = 0xFFFF
	}
	return uint16(f)
}

// noteAckSent records that seg, which carries an ACK, is going out: the
// owed ACK is paid, and the window it advertises is remembered.
func (c *Conn) noteAckSent(s *Segment) {
	c.rcv.lastAckSent = s.Ack
	scale := c.rcv.wscale
	if s.Flags&wire.SYN != 0 {
		scale = 0
	}
	edge := s.Ack.Add(seqnum.Size(uint32(s.Window) << scale))
	if edge.GreaterThan(c.rcv.advEdge) && c.rcv.advEdge.Size(edge) < 1<<scale {
		// A held edge rounded up (windowField): remember the edge
		// itself, so the rounding does not creep forward ACK by ACK.
		edge = c.rcv.advEdge
	}
	c.rcv.advEdge = edge
	c.rcv.ackPending = false
	c.rcv.ackNow = false
	c.rcv.unackedBytes = 0
	c.rcv.dsackSet = false // a duplicate is reported once, in the next ACK (RFC 2883 section 4 (1), (2))
	c.tm.delack = time.Time{}
}

// finSeq is the sequence number our FIN takes: right after the last byte
// queued. It is meaningful once the user has called CLOSE.
func (c *Conn) finSeq() seqnum.Value { return c.snd.bufStart.Add(seqnum.Size(c.snd.buf.len())) }

// finSent reports whether our FIN has gone out at least once.
func (c *Conn) finSent() bool { return c.snd.finQueued && c.snd.max.GreaterThan(c.finSeq()) }

// finAcked reports whether the peer has acknowledged our FIN.
func (c *Conn) finAcked() bool { return c.snd.finQueued && c.snd.una.GreaterThan(c.finSeq()) }

// synAcked reports whether our SYN has been acknowledged.
func (c *Conn) synAcked() bool { return c.snd.una != c.snd.iss }

// output sends whatever the state, the buffers and the windows allow, then
// any ACK still owed, and arms the timers that follow from it.
func (c *Conn) output(now time.Time) {
	switch c.state {
	case Closed, Listen, SynSent:
		return
	}
	// Until our SYN is acknowledged only the SYN,ACK is outstanding; data
	// and FIN wait for the handshake (RFC 9293 3.10.2, 3.10.4: queued
	// until ESTABLISHED). In TIME-WAIT only ACKs go out.
	if c.synAcked() && c.state != TimeWait {
		// Pacing (pacing.go) may hold the next segment back until its
		// release time.
		if c.snd.inRecovery && c.sackRecovering() {
			for c.paceAllows(now) && c.recoverySend(now) {
			}
		} else {
			for c.paceAllows(now) && c.sendOneSegment(now) {
			}
		}
		c.rateCheckAppLimited()
	}
	if c.rcv.ackPending {
		if c.rcv.ackNow {
			c.sendACK(now)
		} else if c.tm.delack.IsZero() {
			c.tm.delack = now.Add(c.cfg.delayedACK())
		}
	}
	c.armPersist(now)
	if c.snd.una != c.snd.max && c.tm.rtx.IsZero() && c.tm.persist.IsZero() {
		// Something is outstanding and no timer watches it (it went out
		// as a zero-window probe and the window has opened since).
		c.armRTX(now)
	}
	if c.snd.tlpRearm {
		c.snd.tlpRearm = false
		if c.tm.persist.IsZero() {
			c.armTLP(now)
		}
	}
}

// sendOneSegment sends the next data and/or FIN segment if the rules allow,
// and reports whether it did.
func (c *Conn) sendOneSegment(now time.Time) bool {
	holeEnd := c.skipSACKed()
	off := int(c.snd.bufStart.Size(c.snd.nxt))
	if c.snd.nxt.LessThan(c.snd.bufStart) {
		off = 0 // cannot happen once the SYN is acknowledged; be safe
	}
	avail := c.snd.buf.len() - off
	if avail < 0 {
		avail = 0 // our FIN has been sent: nxt is past the data
	}
	finPending := c.snd.finQueued && c.snd.nxt.LessThanEq(c.finSeq())
	if avail == 0 && !finPending {
		return false
	}
	wnd, inflight := c.sendWindow()
	usable := wnd - inflight
	n := int(min(int64(c.mss), int64(avail), max(usable, 0)))
	fillsHole := false // a retransmission up to a SACKed range
	if holeEnd.GreaterThan(c.snd.nxt) && int(c.snd.nxt.Size(holeEnd)) <= n {
		n, fillsHole = int(c.snd.nxt.Size(holeEnd)), true
	}
	fin := finPending && n == avail
	if n > 0 {
		switch {
		case n == c.mss || fillsHole:
			// A full segment is always worth sending.
		case n == avail && (c.nodelay || inflight == 0 || fin):
			// Everything queued fits: Nagle lets it go when nothing is
			// outstanding (RFC 9293 3.7.4) or is off; a closing
			// connection flushes.
		case c.snd.maxWnd > 0 && n >= int(c.snd.maxWnd/2) && (c.nodelay || inflight == 0):
			// Sender-side SWS avoidance (RFC 9293 3.8.6.2.1): at least
			// half of the largest window the peer ever offered.
		case c.snd.override:
			// The override timeout of 3.8.6.2.1 (4) expired: send what
			// the window allows.
		default:
			return false
		}
	} else if !fin {
		return false
	}
	// A full segment of new data may grow into a super-segment for a
	// link that segments (gso.go).
	gso := false
	if n == c.mss && !fillsHole && !fin && c.gsoMax > 0 {
		if size := c.superSize(off, avail, usable, finPending); size > n {
			n, gso = size, true
		}
	}
	// A FIN with no data is sent whatever the window: it occupies one
	// sequence number, and a peer with a full buffer drops and ACKs it,
	// after which the retransmission timer tries again.
	s := c.dataSegment(now, c.snd.nxt, off, n, fin, n == avail)
	if gso {
		s.GSOSize = uint16(c.mss)
	}
	if c.snd.una == c.snd.max {
		c.snd.stalled = now // the flight was empty: USER TIMEOUT starts here
	}
	retrans := c.snd.nxt.LessThan(c.snd.max)
	if retrans {
		c.noteRetransmission(s, n)
	} else if c.snd.dupAcks > 0 && !c.snd.inRecovery && c.sackRecovering() {
		c.cold().LimitedTransmit++ // sent on a duplicate ACK (RFC 3042)
	}
	if !retrans && !c.snd.rttTiming && c.snd.retransmits == 0 {
		// Time this segment (RFC 6298 section 3); Karn's rule keeps
		// retransmissions out.
		c.snd.rttTiming, c.snd.rttSeq, c.snd.rttTime = true, c.snd.nxt, now
	}
	c.stats.BytesSent += uint64(n)
	if c.sackOK {
		if gso {
			c.txSentPieces(s, now)
		} else {
			c.txSent(c.snd.nxt, c.snd.nxt.Add(s.Len()), now, c.snd.max)
		}
		if !retrans {
			c.snd.tlpRearm = true
		}
	}
	c.snd.nxt = c.snd.nxt.Add(s.Len())
	if c.snd.max.LessThan(c.snd.nxt) {
		c.snd.max = c.snd.nxt
	}
	if c.tm.rtx.IsZero() {
		c.armRTX(now) // RFC 6298 5.1
	}
	c.tm.persist = time.Time{}
	c.ecnOutgoing(s, retrans) // ECT(0) and CWR (RFC 3168 6.1.2, 6.1.5)
	c.emit(s)
	return true
}

// dataSegment builds a segment of n bytes of data from offset off of the
// send buffer at seq, with the FIN if fin, in c.out.
func (c *Conn) dataSegment(now time.Time, seq seqnum.Value, off, n int, fin, push bool) *Segment {
	s := &c.out
	*s = Segment{Seq: seq, Ack: c.rcv.nxt, Flags: wire.ACK}
	if n > 0 {
		wraps := c.snd.buf.wraps(off, n)
		if cap(c.scratch) < n && wraps {
			// Only a segment that wraps around the ring needs it: most
			// short connections never do, and never pay for it.
			c.scratch = make([]byte, c.mss)
		}
		c.outGathered = wraps
		s.Payload = c.snd.buf.peek(off, n, c.scratch)
		if push {
			s.Flags |= wire.PSH
		}
	}
	if fin {
		s.Flags |= wire.FIN
	}
	c.fillACKFields(now, s, false)
	return s
}

// sendWindow is the window sendOneSegment fills and what already fills
// it. Outside recovery it is min(SND.WND, cwnd), with Limited Transmit's
// allowance (RFC 3042 section 2: on the first two duplicate ACKs, up to
// two segments beyond cwnd, the receive window permitting) when the peer
// SACKs. In RFC 6675 recovery PRR meters the sending (recoverySend) and
// only the receive window is left. SACKed bytes below SND.NXT are not in
// flight.
func (c *Conn) sendWindow() (wnd, inflight int64) {
	flight := int64(c.snd.una.Size(c.snd.nxt))
	rwnd := int64(c.snd.wnd)
	cwnd := int64(c.cc.Window())
	switch {
	case c.snd.tlpSending:
		return rwnd, flight // RFC 8985 7.3: one new segment, whatever cwnd says
	case !c.sackRecovering():
		return min(rwnd, cwnd), flight
	}
	// The receive window holds the SACKed bytes too: it is checked
	// against the whole flight, cwnd against what is in the network.
	inflight = flight - int64(c.lr().sb.sackedIn(c.snd.una, c.snd.nxt))
	if c.snd.inRecovery {
		return rwnd - flight + inflight, inflight
	}
	wnd = min(rwnd-flight+inflight, cwnd)
	if c.snd.dupAcks > 0 && c.snd.nxt == c.snd.max {
		// RFC 3042 counts the whole flight (FlightSize), SACKed or not,
		// and lets two segments beyond cwnd go. It gives leave to send
		// more, never less: once more than two segments are SACKed
		// above a hole, cwnd against the pipe lets more go, one segment
		// per segment that left the network, as in order. Held to
		// FlightSize, a segment held back by reordering stalled the
		// sender until it arrived, and the ACK that filled the hole
		// let the whole SACKed run go at once.
		if lt := min(rwnd, cwnd+int64(min(c.snd.dupAcks, 2)*c.mss)); lt-flight > wnd-inflight {
			return lt, flight
		}
	}
	return wnd, inflight
}

// skipSACKed moves SND.NXT, when it is behind SND.MAX after a timeout,
// past bytes the peer has SACKed, which need no retransmission (RFC 6675
// section 5.1 lets the scoreboard guide what is resent after a timeout;
// a second timeout clears it). It returns where the hole at SND.NXT ends,
// or SND.NXT when nothing is skipped.
func (c *Conn) skipSACKed() seqnum.Value {
	if !c.snd.nxt.LessThan(c.snd.max) || c.lr().sb.empty() {
		return c.snd.nxt
	}
	s, e := c.lr().sb.nextHole(c.snd.nxt, c.snd.max)
	c.snd.nxt = s
	return e
}

// fillACKFields sets the ACK-related fields of an outgoing non-SYN
// segment: the window, timestamps, and SACK blocks on pure ACKs; then marks
// the owed ACK as paid.
func (c *Conn) fillACKFields(now time.Time, s *Segment, pureACK bool) {
	s.Window = c.windowField()
	if c.tsOK {
		s.Options.HasTimestamps = true
		s.Options.TSVal = c.tsNow(now)
		s.Options.TSEcr = c.tsRecent
	}
	if pureACK && c.sackOK && (!c.rcv.ooo.empty() || c.rcv.dsackSet) {
		c.fillSACK(s)
	}
	c.ecnEcho(s) // RFC 3168 6.1.3
	c.noteAckSent(s)
}

// acceptableSeq is the sequence number for a segment that carries no
// data or FIN of ours (an ACK, a RST): the RFC's SND.NXT, taken as the
// highest sequence number sent (like BSD: after a timeout has moved our
// SND.NXT back, an ACK there is not mistaken for old data), unless that
// lies beyond the right edge of the peer's window, SND.UNA+SND.WND. Then
// it is the right edge. This happens after a zero-window probe: the
// probe's byte moved SND.NXT past the peer's RCV.NXT while RCV.WND is 0,
// and with a zero window the peer accepts a segment of no length only at
// SEG.SEQ = RCV.NXT (RFC 9293 3.10.7.4, first); it drops an RST anywhere
// else (RFC 5961 section 3.2), and a dropped ACK is answered with an ACK,
// which between two such connections never ends. Linux chooses the same
// number (tcp_acceptable_seq). Before our SYN is acknowledged the peer's
// window says nothing of where its RCV.NXT is, and SND.NXT stays.
func (c *Conn) acceptableSeq() seqnum.Value {
	if !c.synAcked() {
		return c.snd.max
	}
	edge := c.snd.una.Add(seqnum.Size(c.snd.wnd))
	if c.snd.max.GreaterThan(edge) {
		return edge
	}
	return c.snd.max
}

// sendACK sends a pure ACK: <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>, at the
// SND.NXT of acceptableSeq.
func (c *Conn) sendACK(now time.Time) {
	s := &c.out
	*s = Segment{Seq: c.acceptableSeq(), Ack: c.rcv.nxt, Flags: wire.ACK}
	c.fillACKFields(now, s, true)
	c.emit(s)
}

// challengeACK sends the ACK RFC 5961 answers a suspicious RST or SYN
// with, within the limit of section 7.
func (c *Conn) challengeACK(now time.Time) {
	if now.Sub(c.challengeWindow) >= time.Second {
		c.challengeWindow = now
		c.challengeCount = 0
	}
	if c.challengeCount >= c.cfg.challengeACKLimit() {
		c.cold().ChallengeACKsLimited++
		return
	}
	c.challengeCount++
	c.cold().ChallengeACKs++
	c.sendACK(now)
}

// invalidACK answers seg, dropped as unacceptable, with an ACK (RFC 9293
// 3.10.7.4, first and fifth; RFC 7323 5.3), unless seg occupies no
// sequence space and another such answer went out less than
// Config.InvalidACKInterval ago (RFC 5961 section 7). Without the limit
// two connections that each hold the other's ACKs unacceptable answer
// each other at once, forever.
func (c *Conn) invalidACK(now time.Time, seg *Segment) {
	if seg.Len() == 0 {
		iv := c.cfg.invalidACKInterval()
		if iv > 0 && !c.lastInvalidACK.IsZero() && now.Sub(c.lastInvalidACK) < iv {
			c.cold().InvalidACKsLimited++
			return
		}
		c.lastInvalidACK = now
	}
	c.sendACK(now)
}

// sendRST sends <SEQ=seq><CTL=RST>.
func (c *Conn) sendRST(now time.Time, seq seqnum.Value) {
	s := &c.out
	*s = Segment{Seq: seq, Flags: wire.RST}
	c.cold().RstsOut++
	c.emit(s)
}

// sendRSTACK sends <SEQ=seq><ACK=ack><CTL=RST,ACK>.
func (c *Conn) sendRSTACK(now time.Time, seq, ack seqnum.Value) {
	s := &c.out
	*s = Segment{Seq: seq, Ack: ack, Flags: wire.RST | wire.ACK}
	c.cold().RstsOut++
	c.emit(s)
}

// ResetFor answers a segment that reached no connection, following RFC
// 9293 section 3.10.7.1 (state CLOSED): an RST is never answered; if the
// segment has ACK, the reset is <SEQ=SEG.ACK><CTL=RST>; otherwise
// <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>. It reports whether to send.
func ResetFor(in *Segment) (Segment, bool) {
	if in.Flags&wire.RST != 0 {
		return Segment{}, false
	}
	if in.Flags&wire.ACK != 0 {
		return Segment{Seq: in.Ack, Flags: wire.RST}, true
	}
	return Segment{Seq: 0, Ack: in.Seq.Add(in.Len()), Flags: wire.RST | wire.ACK}, true
}

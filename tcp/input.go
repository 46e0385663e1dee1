package tcp

import (
	"time"

	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/wire"
)

// HandleSegment is SEGMENT ARRIVES (RFC 9293 section 3.10.7). seg is
// borrowed for the call only.
func (c *Conn) HandleSegment(now time.Time, seg *Segment) {
	c.stats.SegsIn++
	switch c.state {
	case Closed:
		c.segmentClosed(now, seg)
	case Listen:
		c.segmentListen(now, seg)
	case SynSent:
		c.segmentSynSent(now, seg)
	default:
		c.segmentSynchronized(now, seg)
	}
}

// segmentClosed: RFC 9293 3.10.7.1. Everything is discarded; anything but
// an RST is answered with one.
func (c *Conn) segmentClosed(now time.Time, seg *Segment) {
	c.drop(seg, DropClosed)
	if r, ok := ResetFor(seg); ok {
		c.out = r
		c.cold().RstsOut++
		c.emit(&c.out)
	}
}

// segmentListen: RFC 9293 3.10.7.2.
func (c *Conn) segmentListen(now time.Time, seg *Segment) {
	// First, check for an RST: an incoming RST is ignored.
	if seg.has(wire.RST) {
		c.drop(seg, DropListenRST)
		return
	}
	// Second, check for an ACK: any acknowledgment is bad in LISTEN;
	// answer <SEQ=SEG.ACK><CTL=RST>.
	if seg.has(wire.ACK) {
		c.drop(seg, DropListenACK)
		c.sendRST(now, seg.Ack)
		return
	}
	// Third, check for a SYN. (The security check does not apply: we
	// implement no compartments.)
	if !seg.has(wire.SYN) {
		c.drop(seg, DropListenNoSYN) // fourth: other text or control
		return
	}
	c.openCommon(now)
	c.rcv.irs = seg.Seq
	c.rcv.nxt = seg.Seq + 1
	c.haveSYN = true
	c.negotiate(seg)
	// The window in a SYN is never scaled (RFC 7323 section 2.2).
	c.updateWindow(seg, uint32(seg.Window))
	c.lastRecv = now
	// Data or FIN carried by the SYN is not taken: it is not acknowledged,
	// so the peer sends it again once the handshake is done.
	c.setState(now, SynReceived, RcvSYN)
	c.sendSYN(now)
}

// negotiate takes the options of the peer's SYN (RFC 9293 3.7.1 MSS,
// RFC 7323 window scale and timestamps, RFC 2018 SACK-permitted). An option
// is in use only when both sides sent it; we always offer ours unless the
// config says not to.
func (c *Conn) negotiate(seg *Segment) {
	o := &seg.Options
	c.synWS, c.synSACK, c.synTS = o.HasWindowScale, o.SACKPermitted, o.HasTimestamps
	c.peerMSS = c.defaultPeerMSS()
	if o.HasMSS && o.MSS > 0 {
		c.peerMSS = int(o.MSS)
	}
	c.wsOK = o.HasWindowScale && !c.cfg.NoWindowScale
	if c.wsOK {
		// RFC 7323 section 2.3: a shift above 14 is taken as 14.
		c.snd.wscale = min(o.WindowScale, maxWindowShift)
	} else {
		c.snd.wscale = 0
		c.rcv.wscale = 0
	}
	c.tsOK = o.HasTimestamps && !c.cfg.NoTimestamps
	if c.tsOK {
		c.tsRecent = o.TSVal
	}
	c.sackOK = o.SACKPermitted && !c.cfg.NoSACK
	c.ecnNegotiate(seg)
	c.setMSS(min(c.peerMSS, int(c.ourMSS())))
	c.raiseInitialRcvLimit()
}

// setMSS sets the payload size of our segments from an MSS value: the
// options we put in every segment come out of it (RFC 6691 section 2).
// A peer's tiny MSS is raised to 64 bytes, but never beyond what our own
// link carries (MMS_S of RFC 9293 3.7.1, our MSS option).
func (c *Conn) setMSS(mss int) {
	opt := 0
	if c.tsOK {
		opt = tsOptionSpace
	}
	c.mss = max(mss-opt, min(minPeerMSS, int(c.ourMSS())-opt), 1)
	c.cc = c.makeCongestion(c.mss)
}

// updateWindow applies the send window update rule of RFC 9293 3.10.7.4
// (ESTABLISHED, fifth): only a segment newer than the last update moves
// SND.WND, so old reordered segments cannot shrink it.
func (c *Conn) updateWindow(seg *Segment, wnd uint32) {
	if c.snd.wnd == 0 && wnd != 0 && c.snd.probes > 0 {
		// The window opens after zero-window probing: whatever the probes
		// carried beyond SND.UNA was dropped, so sending resumes there.
		c.snd.nxt = seqnum.Max(c.snd.una, c.snd.bufStart)
		c.snd.probes = 0
	}
	c.snd.wnd = wnd
	c.snd.wl1 = seg.Seq
	c.snd.wl2 = seg.Ack
	c.snd.maxWnd = max(c.snd.maxWnd, wnd)
}

// segmentSynSent: RFC 9293 3.10.7.3.
func (c *Conn) segmentSynSent(now time.Time, seg *Segment) {
	// First, check the ACK bit: it must acknowledge our SYN and nothing
	// beyond.
	if seg.has(wire.ACK) {
		if seg.Ack.LessThanEq(c.snd.iss) || seg.Ack.GreaterThan(c.snd.max) {
			c.drop(seg, DropSynSentBadACK)
			if !seg.has(wire.RST) {
				c.sendRST(now, seg.Ack)
			}
			return
		}
	}
	// Second, check the RST bit: with an acceptable ACK the connection is
	// refused (RFC 5961 section 3.2 keeps exactly this test in SYN-SENT);
	// without an ACK it is dropped.
	if seg.has(wire.RST) {
		if !seg.has(wire.ACK) {
			c.drop(seg, DropSynSentRSTNoACK)
			return
		}
		c.cold().ResetsReceived++
		c.abort(now, ErrRefused, RcvRST)
		return
	}
	// Fourth, check the SYN bit.
	if !seg.has(wire.SYN) {
		c.drop(seg, DropSynSentNoSYN) // fifth: neither SYN nor RST
		return
	}
	c.rcv.irs = seg.Seq
	c.rcv.nxt = seg.Seq + 1
	c.haveSYN = true
	c.negotiate(seg)
	c.lastRecv = now
	if seg.has(wire.ACK) {
		c.ackAdvance(now, seg)
	}
	c.updateWindow(seg, uint32(seg.Window)) // SYN windows are not scaled
	if c.synAcked() {
		// Our SYN is acknowledged: ESTABLISHED, and ACK their SYN.
		c.setState(now, Established, RcvSYNACK)
		c.armKeepAlive(now)
		if len(seg.Payload) > 0 || seg.has(wire.FIN) {
			// Text or FIN with the SYN,ACK: continue with the sixth
			// step as the RFC says, on the rest of the segment.
			rest := *seg
			rest.Flags &^= wire.SYN
			rest.Seq++
			c.processText(now, &rest)
		}
		c.rcv.ackPending, c.rcv.ackNow = true, true
		c.output(now)
		return
	}
	// Simultaneous open (RFC 9293 Figure 8): our SYN crossed theirs. "If
	// there are other controls or text in the segment, queue them for
	// processing after the ESTABLISHED state has been reached": the text
	// waits in the receive ring at RCV.NXT, uncommitted and within the
	// window we offered, and a FIN after it waits as an early FIN does.
	if n := min(len(seg.Payload), int(c.rcvWindow())); n > 0 {
		c.rcv.buf.writeAt(0, seg.Payload[:n])
		c.rcv.synText = n
	}
	if seg.has(wire.FIN) && c.rcv.synText == len(seg.Payload) {
		c.rcv.fin, c.rcv.fseq = true, c.rcv.nxt.Add(seqnum.Size(c.rcv.synText))
	}
	c.setState(now, SynReceived, RcvSYNSimultaneous)
	c.tm.rtx = time.Time{}
	c.sendSYN(now)
}

// seqCheck is the receiving side of the connection for checkSequence
// (drop.go).
func (c *Conn) seqCheck() seqCheck {
	wnd := seqnum.Size(c.rcvWindow())
	if c.state == TimeWait || c.state.recvClosed() {
		// After the peer's FIN the window is irrelevant to what may still
		// arrive: only retransmissions, which are answered with an ACK.
		wnd = seqnum.Size(max(c.rcvWindow(), 1))
	}
	return seqCheck{
		rcvNxt: c.rcv.nxt, rcvWnd: wnd,
		tsOK: c.tsOK, tsRecent: c.tsRecent,
		timeWait:    c.state == TimeWait,
		rfc793Reset: c.cfg.RFC793Reset, rfc793SYN: c.cfg.RFC793SYN,
		ackOK:  c.synAcked(),
		sndUna: c.snd.una, sndWnd: c.snd.wnd, sndWScale: c.snd.wscale,
		rto: c.rtt.current(),
	}
}

// segmentSynchronized: RFC 9293 3.10.7.4, for SYN-RECEIVED and every
// synchronized state, in the RFC's order.
func (c *Conn) segmentSynchronized(now time.Time, seg *Segment) {
	// A retransmission of the SYN we answered: our SYN,ACK was lost, so
	// send it again (the sequence test below would only send an ACK, which
	// a peer in SYN-SENT drops).
	if c.state == SynReceived && seg.has(wire.SYN) && !seg.has(wire.RST) && seg.Seq == c.rcv.irs {
		if !seg.has(wire.ACK) {
			c.drop(seg, DropSYNRetransmit)
			c.sendSYN(now)
			return
		}
		// Simultaneous open, RFC 9293 Figure 8 line 6: the peer's
		// SYN,ACK repeats the SYN we already took, at IRS, which lies
		// before RCV.NXT. Only its new part is processed (3.10.7.4,
		// "first": a segment straddling RCV.NXT is trimmed), and what is
		// new is the ACK of our SYN.
		trimmed := *seg
		trimmed.Flags &^= wire.SYN
		trimmed.Seq++
		seg = &trimmed
	}

	// First, check the sequence number (PAWS first, RFC 7323 5.3), and
	// what the RST (second) and SYN (fourth) bits of a segment in the
	// window decide: checkSequence, shared with the TIME-WAIT record.
	// (Third, security and compartment: not implemented; RFC 9293
	// 3.10.7.4 makes it depend on IP security options we do not
	// support.)
	k := c.seqCheck()
	v := checkSequence(&k, seg)
	switch v.drop {
	case DropNone:
	case DropPAWS:
		c.cold().PAWSRejected++
	case DropOutOfWindow:
		c.cold().UnacceptableSegs++
		if c.state == TimeWait && seg.has(wire.FIN) {
			c.startTimeWait(now) // a retransmitted FIN restarts 2MSL
		}
	case DropSYNInWindowChallenge, DropSYNInWindowReset, DropSYNBeforeWindow:
		if c.state == SynReceived && c.passive {
			// "If the connection was initiated with a passive OPEN,
			// then return this connection to the LISTEN state."
			c.drop(seg, DropSynRecvSYN)
			c.returnToListen(now, RcvSYN)
			return
		}
	}
	if v.drop != DropNone {
		c.drop(seg, v.drop)
		switch v.reply {
		case replyACK:
			if v.drop == DropOutOfWindow || v.drop == DropPAWS {
				c.noteOldDuplicate(seg) // RFC 2883: D-SACK what was received before
			}
			c.invalidACK(now, seg)
		case replyChallengeACK:
			c.challengeACK(now)
		case replyReset:
			c.sendRST(now, c.acceptableSeq())
			c.abort(now, ErrReset, RcvSYN)
		}
		return
	}
	if v.trim {
		// Zero window: the segment at RCV.NXT goes on for its ACK; its
		// data is dropped.
		trimmed := *seg
		trimmed.Payload = nil
		trimmed.Flags &^= wire.FIN | wire.SYN
		seg = &trimmed
		c.rcv.ackPending, c.rcv.ackNow = true, true
	}
	c.ecnIncoming(seg) // CE and CWR of an acceptable segment (RFC 3168 6.1.3)

	// Second, the RST bit: what remains is an RST that resets.
	if seg.has(wire.RST) {
		c.segmentReset(now)
		return
	}

	// Fifth, check the ACK field.
	if !seg.has(wire.ACK) {
		c.drop(seg, DropNoACK) // "if the ACK bit is off, drop the segment and return"
		return
	}
	if !c.segmentACK(now, seg) {
		return
	}

	// Sixth, the URG bit: urgent data is treated as ordinary data (RFC
	// 6093 recommends applications do not rely on it).

	// Seventh and eighth: segment text, then the FIN bit.
	c.processText(now, seg)
	if c.state == FinWait1 && c.finAcked() {
		c.enterFinWait2(now) // the FIN that came with the ACK was not taken
	}

	c.lastRecv = now
	c.snd.unansweredProbes = 0
	c.armKeepAlive(now)
	c.output(now)
}

// segmentReset is the second step of 3.10.7.4: an acceptable RST in a
// synchronized state or SYN-RECEIVED (checkSequence has sent the others a
// challenge ACK, RFC 5961 3.2).
func (c *Conn) segmentReset(now time.Time) {
	c.cold().ResetsReceived++
	switch c.state {
	case SynReceived:
		if c.passive {
			// Return to LISTEN: the stack drops this half-open child.
			c.returnToListen(now, RcvRST)
			return
		}
		c.abort(now, ErrRefused, RcvRST)
	case Established, FinWait1, FinWait2, CloseWait:
		c.abort(now, ErrReset, RcvRST)
	case Closing, LastAck:
		c.abort(now, ErrReset, RcvRST)
	}
}

// segmentACK is the fifth step of 3.10.7.4. It reports whether processing
// goes on to the segment text.
func (c *Conn) segmentACK(now time.Time, seg *Segment) bool {
	if c.state == SynReceived {
		if !seg.Ack.InRange(c.snd.una+1, c.snd.max+1) {
			// Not an ACK of our SYN: <SEQ=SEG.ACK><CTL=RST>.
			c.drop(seg, DropSynRecvBadACK)
			c.sendRST(now, seg.Ack)
			return false
		}
		c.setState(now, Established, RcvACKOfSYN)
		c.updateWindow(seg, uint32(seg.Window)<<c.snd.wscale)
	}
	// "If the ACK acks something not yet sent (SEG.ACK > SND.NXT), then
	// send an ACK, drop the segment, and return." RFC 5961 section 5.2
	// also drops an ACK older than the largest window the peer offered
	// before SND.UNA: it cannot be from this connection's recent past.
	if r := checkACK(seg.Ack, c.snd.una, c.snd.max, c.snd.maxWnd); r != DropNone {
		c.drop(seg, r)
		c.invalidACK(now, seg)
		return false
	}
	// The segment is acceptable and so is its ACK: TS.Recent follows the
	// newest timestamp of segments that reach the left edge of the
	// window (RFC 7323 section 4.3, R3). Not before: a segment dropped
	// above (an ACK of data never sent, RFC 9293 3.10.7.4) must leave
	// TS.Recent alone, or the next valid segment fails PAWS (issue 10).
	takeTSRecent(c.tsOK, &c.tsRecent, seg, c.rcv.lastAckSent)
	c.ecnOnACK(now, seg) // ECE: RFC 3168 6.1.2

	una := c.snd.una
	c.ackAdvance(now, seg)
	c.ecn.eceACK = false
	if c.state == Closed {
		return false
	}
	if c.cc != nil {
		c.congestionObserve(now, una) // BBR sees every ACK (cc.go's AckObserver)
		// The send buffer follows cwnd and what a hole holds
		// (sndtune.go), on every ACK, once the controller has set cwnd.
		c.sndExpand()
	}
	// The window update rule: only from a segment newer than the last
	// one that updated it.
	if seg.Ack.InRange(c.snd.una, c.snd.max+1) &&
		(c.snd.wl1.LessThan(seg.Seq) || (c.snd.wl1 == seg.Seq && c.snd.wl2.LessThanEq(seg.Ack))) {
		c.updateWindow(seg, uint32(seg.Window)<<c.snd.wscale)
	}

	switch c.state {
	case FinWait1:
		// "In addition to the processing for the ESTABLISHED state, if
		// the FIN segment is now acknowledged, then enter FIN-WAIT-2."
		// A FIN in order in the same segment takes us from FIN-WAIT-1
		// straight to TIME-WAIT in the eighth step (Figure 5's "rcv
		// FIN, snd ACK" with our FIN acknowledged).
		// If that FIN is not taken after all (it lies beyond the window),
		// segmentSynchronized enters FIN-WAIT-2 after the text.
		finFollows := seg.has(wire.FIN) && seg.Seq == c.rcv.nxt
		if c.finAcked() && !finFollows {
			c.enterFinWait2(now)
		}
	case Closing:
		if c.finAcked() {
			c.setState(now, TimeWait, RcvACKOfFIN)
			c.startTimeWait(now)
			return false
		}
		// "Otherwise ignore the segment" — but what it acknowledged or
		// opened still counts: data queued before our FIN may still be
		// waiting for window, so go on to output (text is ignored in
		// CLOSING by the seventh step).
	case LastAck:
		if c.finAcked() {
			c.setState(now, Closed, RcvACKOfFIN)
			return false
		}
	}
	return true
}

// enterFinWait2 is FIN-WAIT-1's "if the FIN segment is now acknowledged,
// then enter FIN-WAIT-2" (RFC 9293 3.10.7.4, fifth).
func (c *Conn) enterFinWait2(now time.Time) {
	c.setState(now, FinWait2, RcvACKOfFIN)
	c.tm.rtx = time.Time{}
	c.tm.persist = time.Time{}
	if c.released {
		c.tm.timewait = now.Add(c.cfg.finWait2Timeout())
	}
}

// ackAdvance processes SEG.ACK against the send queue: it moves SND.UNA,
// frees acknowledged bytes, samples the RTT, runs the congestion control
// and loss detection of RFC 5681 and RFC 6582, and tends the
// retransmission timer (RFC 6298 section 5).
func (c *Conn) ackAdvance(now time.Time, seg *Segment) {
	ack := seg.Ack
	c.sackUpdate(now, seg)
	if c.synAcked() && c.state.Synchronized() {
		c.checkSpurious(now, seg)
	}
	if !ack.GreaterThan(c.snd.una) {
		c.maybeDupAck(now, seg)
		return
	}
	acked := int(c.snd.una.Size(ack))
	synAcked := !c.synAcked()
	if synAcked {
		acked-- // the SYN is no data: congestion control counts bytes
	}
	if ack.GreaterThan(c.snd.bufStart) {
		k := min(int(c.snd.bufStart.Size(ack)), c.snd.buf.len())
		c.snd.buf.discard(k)
		c.snd.bufStart = c.snd.bufStart.Add(seqnum.Size(k))
		c.stats.BytesAcked += uint64(k)
	}
	c.snd.una = ack
	c.armReclaim(now)
	c.snd.stalled = now // progress: USER TIMEOUT counts afresh
	if c.snd.nxt.LessThan(ack) {
		c.snd.nxt = ack // after a timeout moved SND.NXT back
	}

	// RTT: a timed segment gives the finest sample; otherwise the
	// timestamp echo does (RFC 7323 section 4.1), unless it is older than
	// the latest retransmission (tsSample).
	c.rtt.fresh = false
	if c.snd.rttTiming && ack.GreaterThan(c.snd.rttSeq) {
		c.rtt.sample(now.Sub(c.snd.rttTime))
		c.snd.rttTiming = false
	} else {
		c.tsSample(now, seg)
	}
	c.clearRetransmissionStamp()
	if synAcked && c.snd.retransmits > 0 && !c.rtt.measured {
		// RFC 6298 5.7: the SYN (or SYN,ACK) timed out with an RTO
		// below 3 s and Karn's rule left no sample, so data transmission
		// starts with an RTO of 3 s.
		c.rtt.rto = max(c.rtt.rto, 3*time.Second)
	}
	c.snd.retransmits = 0
	c.snd.orphanRetries = 0 // progress: an orphan's budget starts again
	c.rtt.backoff = 0

	if c.cc != nil && c.state != SynSent && c.state != SynReceived && c.sackRecovering() {
		c.sackOnAck(now, seg, acked, false)
	} else if c.cc != nil && c.state != SynSent && c.state != SynReceived {
		flight := int(c.snd.una.Size(c.snd.max))
		if c.snd.inRecovery {
			if ack.GreaterThanEq(c.snd.recover) {
				// Full acknowledgment (RFC 6582 section 3.2 step 5).
				c.snd.inRecovery = false
				c.cc.OnRecoveryEnd(now, flight)
			} else {
				// Partial acknowledgment: the next hole is lost too;
				// resend it at once and deflate the window.
				c.cc.OnPartialAck(acked)
				c.retransmitFirst(now)
			}
		} else {
			c.congestionOnAck(now, acked)
		}
		c.snd.dupAcks = 0
	}

	// RFC 6298 5.2 and 5.3.
	if c.snd.una == c.snd.max {
		c.tm.rtx, c.tm.reo, c.tm.tlp = time.Time{}, time.Time{}, time.Time{}
	} else {
		c.armRTX(now)
	}
}

// maybeDupAck counts duplicate ACKs as RFC 5681 section 2 defines them and
// starts fast retransmit on the third (section 3.2, RFC 6582 section 3.2).
func (c *Conn) maybeDupAck(now time.Time, seg *Segment) {
	// A zero window (persist mode) is left out: what is outstanding is
	// a probe the peer had no room for, and its answer says nothing of
	// loss.
	isDup := seg.Ack == c.snd.una && c.snd.una != c.snd.max && c.snd.wnd != 0 &&
		len(seg.Payload) == 0 && !seg.has(wire.SYN|wire.FIN) &&
		uint32(seg.Window)<<c.snd.wscale == c.snd.wnd
	if c.cc == nil || !c.synAcked() {
		return
	}
	if c.sackRecovering() {
		// An ACK that moves nothing gives no RTT sample: the controller,
		// which sackOnAck may call for the bytes it SACKs, must not
		// take the last ACK's sample again.
		c.rtt.fresh = false
		// RFC 6675 section 2: with SACK, a duplicate is an ACK that
		// brings SACK information not known before (so the ACKs of
		// duplicated segments, which bring none, do not count).
		c.sackOnAck(now, seg, 0, c.lr().su.newlySACKed > 0 && c.snd.una != c.snd.max)
		return
	}
	if !isDup {
		return
	}
	c.snd.dupAcks++
	c.cold().DupAcksIn++
	if c.snd.inRecovery {
		c.cc.OnDupAck()
		return
	}
	// RFC 6582 section 4.1: a fast retransmit only when the ACK covers
	// more than the recovery point of the last one, so duplicates from a
	// previous loss episode do not start another.
	if c.snd.dupAcks == 3 && seg.Ack.Sub(1).GreaterThanEq(c.snd.recover) {
		c.snd.inRecovery = true
		c.snd.recover = c.snd.max
		c.startEpisode(false)
		c.cc.OnFastRetransmit(now, int(c.snd.una.Size(c.snd.max)))
		c.cold().FastRetransmits++
		c.retransmitFirst(now)
	}
}

// retransmitFirst sends the segment at SND.UNA again, whatever SND.NXT is.
func (c *Conn) retransmitFirst(now time.Time) {
	saved := c.snd.nxt
	c.snd.nxt = c.snd.una
	c.sendOneSegment(now)
	if c.snd.nxt.LessThan(saved) {
		c.snd.nxt = saved
	}
	c.armRTX(now)
}

// processText is the seventh and eighth steps of 3.10.7.4: take the data
// into the receive buffer, then the FIN.
func (c *Conn) processText(now time.Time, seg *Segment) {
	if c.rcv.synText > 0 || c.rcv.fin && c.rcv.fseq == c.rcv.nxt {
		c.takeSYNText(now)
		if c.state == Closed {
			return
		}
	}
	if len(seg.Payload) > 0 {
		switch c.state {
		case Established, FinWait1, FinWait2:
			end := seg.Seq.Add(seqnum.Size(len(seg.Payload)))
			if c.released && end.GreaterThan(c.rcv.nxt) {
				// The owner closed the socket and new data arrived:
				// nobody will ever read it. Reset, as RFC 9293 3.6
				// (SHLD-3) via RFC 2525 2.17 and every major stack do.
				// A retransmission of data already received is no new
				// data: it is acknowledged like any duplicate.
				c.cold().DataAfterCloseResets++
				c.sendRSTACK(now, c.acceptableSeq(), seg.Seq.Add(seqnum.Size(len(seg.Payload))))
				c.abort(now, ErrReset, DataAfterClose)
				return
			}
			c.receiveData(now, seg)
		default:
			// CLOSE-WAIT, CLOSING, LAST-ACK, TIME-WAIT: "This should not
			// occur since a FIN has been received"; ignore the text.
		}
	}
	if seg.has(wire.FIN) {
		finSeq := seg.Seq.Add(seqnum.Size(len(seg.Payload)))
		switch {
		case finSeq == c.rcv.nxt:
			c.receiveFIN(now)
		case finSeq.GreaterThan(c.rcv.nxt):
			// The FIN came ahead of missing data: keep it for when the
			// gap is filled.
			c.rcv.fin, c.rcv.fseq = true, finSeq
			c.rcv.ackPending, c.rcv.ackNow = true, true
		}
	}
}

// takeSYNText processes the text and FIN a SYN carried in SYN-SENT, queued
// there (RFC 9293 3.10.7.3), now that the connection is synchronized: as
// in-order data at RCV.NXT, before the text of the segment that got us
// here.
func (c *Conn) takeSYNText(now time.Time) {
	n := c.rcv.synText
	c.rcv.synText = 0
	if n > 0 {
		if c.released {
			// As for any data after close (processText).
			c.cold().DataAfterCloseResets++
			c.sendRSTACK(now, c.acceptableSeq(), c.rcv.nxt.Add(seqnum.Size(n)))
			c.abort(now, ErrReset, DataAfterClose)
			return
		}
		c.rcv.buf.commit(n)
		c.rcv.nxt = c.rcv.nxt.Add(seqnum.Size(n))
		c.stats.BytesReceived += uint64(n)
		c.rcv.ackPending = true // delayed, as for any in-order data
		if c.readShut {
			c.discardBuffered()
		}
	}
	if c.rcv.fin && c.rcv.fseq == c.rcv.nxt {
		c.receiveFIN(now)
	}
}

// receiveData takes payload into the receive buffer, in order or out of
// order, trimming what was already received and what lies beyond the
// window, and decides how soon to acknowledge (RFC 9293 3.8.6.3, RFC 5681
// section 4.2, RFC 1122 4.2.3.2): see ackPolicy.
func (c *Conn) receiveData(now time.Time, seg *Segment) {
	seq, data := seg.Seq, seg.Payload
	c.noteDataArrival(now)
	dup := seq.LessThan(c.rcv.nxt) // (partly) received before
	if dup {
		d := int(seq.Size(c.rcv.nxt))
		// A duplicate, whole or in part: acknowledged at once (RFC 9293
		// 3.10.7.4, "first": an unacceptable segment is answered with an
		// ACK; RFC 2883 section 4 reports it in a D-SACK block). The
		// sender retransmitted what we had: our ACKs were lost or late.
		c.rcv.ackPending, c.rcv.ackNow = true, true
		c.enterQuickACK()
		if d >= len(data) {
			c.noteDuplicate(seq, seq.Add(seqnum.Size(len(data))))
			return
		}
		// Partly a duplicate: its first d bytes were received before
		// (RFC 2883 section 4.2.1).
		c.noteDuplicate(seq, c.rcv.nxt)
		data, seq = data[d:], c.rcv.nxt
	}
	wnd := int(c.rcvWindow())
	off := int(c.rcv.nxt.Size(seq))
	if off >= wnd {
		c.rcv.ackPending, c.rcv.ackNow = true, true
		return
	}
	if off+len(data) > wnd {
		data = data[:wnd-off]
	}
	if c.memoryRefuses(off, len(data)) {
		// Over the stack's memory limit: not accepted, so not
		// acknowledged; answered at once as data beyond the window is
		// (memory.go).
		c.rcv.ackPending, c.rcv.ackNow = true, true
		return
	}
	c.rcv.ackPending = true
	if off > 0 {
		// Out of order: keep it for later (ooo.go) and send a duplicate
		// ACK at once, which is what drives the peer's fast retransmit
		// (RFC 5681 section 4.2: "A TCP receiver SHOULD send an
		// immediate duplicate ACK when an out-of-order segment
		// arrives"; RFC 9293 3.10.7.4 "seventh"). The segments that
		// repair the hole follow: quick-ACK mode acknowledges them at
		// once too.
		c.rcv.ackNow = true
		c.enterQuickACK()
		c.receiveOutOfOrder(off, data)
		return
	}
	c.rcvRTTSample(now, seg) // for receive-window auto-tuning (autotune.go)
	if !dup {
		// Its tail may repeat the front of an island (RFC 2883 section
		// 4.2.3): only the first duplicate run of a segment is reported.
		c.noteHeldDuplicate(0, len(data))
	}
	n := c.placeDirect(data)
	if rest := data[n:]; c.lendable(c.offered(), len(rest)) {
		// Kept where the link put it (lend.go): read out from there.
		c.takeLoan(rest)
		n = len(data)
	} else {
		c.adoptRing(&c.rcv.buf, len(rest)) // reuse.go
		k := c.rcv.buf.write(rest)
		c.ringAppended(k)
		n += k
	}
	hadHoles := !c.rcv.ooo.empty()
	// Out-of-order bytes now at RCV.NXT join the in-order ones.
	j := c.rcv.ooo.deliver(n, &c.rcv.buf)
	c.ringAppended(j)
	k := n + j
	c.rcv.nxt = c.rcv.nxt.Add(seqnum.Size(k))
	c.stats.BytesReceived += uint64(k)
	if c.readShut {
		c.discardBuffered()
		c.armReclaim(now)
	}
	c.ackPolicy(n, hadHoles)
	if c.rcv.fin && c.rcv.fseq == c.rcv.nxt {
		c.receiveFIN(now)
	}
}

// ackPolicy decides whether the ACK of n in-order bytes just taken goes
// out at once or may wait for the delayed-ACK timer (RFC 9293 3.8.6.3,
// RFC 1122 4.2.3.2: at most DelayedACK, under 0.5 s). At once when:
//   - the segment filled (part of) a hole: RFC 5681 section 4.2, "a TCP
//     receiver SHOULD send an immediate ACK when the incoming segment
//     fills in all or part of a gap in the sequence space";
//   - two full-sized segments' worth of data is unacknowledged: RFC 5681
//     section 4.2 and RFC 9293 3.8.6.3, "an ACK SHOULD be generated for
//     at least every second full-sized segment". Counted in bytes, so a
//     segment larger than one MSS (from a peer's segmentation offload)
//     counts for what it carries. Within a receive batch (batch.go) this
//     ACK waits for the end of the batch, up to batchACKLimit;
//   - the connection is in quick-ACK mode (Config.QuickACKs).
func (c *Conn) ackPolicy(n int, filledHole bool) {
	if filledHole {
		c.rcv.ackNow = true
	}
	c.rcv.unackedBytes += n
	if c.rcv.unackedBytes >= 2*c.mss && (!c.rcv.batching || c.rcv.unackedBytes >= c.batchACKLimit()) {
		c.rcv.ackNow = true
	}
	if c.rcv.quickACKs > 0 {
		c.rcv.quickACKs--
		c.rcv.ackNow = true
	}
}

// noteDataArrival notes that a segment with data arrived, and starts
// quick-ACK mode when it is the first data of the connection or the first
// after an idle period longer than the retransmission timeout: the
// sender is then in slow start, or restarts from a small window (RFC 5681
// section 4.1), and every ACK lets its window grow. Not when we sent data
// since the last data arrived: the exchange is interactive, and our data
// carries the ACKs.
func (c *Conn) noteDataArrival(now time.Time) {
	first := c.rcv.lastData.IsZero()
	idle := !first && now.Sub(c.rcv.lastData) > c.rtt.withBackoff(0) && c.snd.max == c.rcv.sndMaxAtData
	if first || idle {
		c.enterQuickACK()
	}
	c.rcv.lastData = now
	c.rcv.sndMaxAtData = c.snd.max
}

// enterQuickACK starts (or extends) quick-ACK mode: the next
// Config.QuickACKs data segments are acknowledged at once, but no more
// than half the receive window in full-sized segments (at least 2), so
// that the sender is never acked byte by byte for a window it cannot fill.
func (c *Conn) enterQuickACK() {
	q := c.cfg.quickACKs()
	if q == 0 || c.mss <= 0 {
		return
	}
	q = min(q, max(int(c.rcvWindow())/(2*c.mss), 2))
	c.rcv.quickACKs = max(c.rcv.quickACKs, q)
}

// receiveFIN is the eighth step: the peer's FIN is in order.
func (c *Conn) receiveFIN(now time.Time) {
	c.rcv.nxt++
	c.rcv.fin = false
	c.haveFIN = true
	c.rcv.ackPending, c.rcv.ackNow = true, true
	switch c.state {
	case SynReceived, Established:
		c.setState(now, CloseWait, RcvFIN)
	case FinWait1:
		if c.finAcked() {
			c.setState(now, TimeWait, RcvFIN)
			c.startTimeWait(now)
		} else {
			c.setState(now, Closing, RcvFIN)
		}
	case FinWait2:
		c.setState(now, TimeWait, RcvFIN)
		c.startTimeWait(now)
	case TimeWait:
		c.startTimeWait(now)
	}
}

// HandlePacketTooBig lowers the segment size after an ICMP "fragmentation
// needed" or ICMPv6 "packet too big" for this connection (RFC 1191,
// RFC 8201), and sends the outstanding data again in smaller segments.
//
// The reported MTU is floored, so that a forged message cannot make the
// connection send tiny segments. IPv6: RFC 8201 section 4 says a node
// "MUST NOT reduce its estimate of the Path MTU below the IPv6 minimum link
// MTU" and discards a message reporting less, so an MTU under 1280 changes
// nothing. IPv4: an MTU under Config.MinPMTU (default 552) counts as
// MinPMTU, as Linux clamps to its min_pmtu.
func (c *Conn) HandlePacketTooBig(now time.Time, mtu int) {
	hdr := headerLen4
	if c.id.Remote.Addr().Is4() {
		mtu = max(mtu, c.cfg.minPMTU())
	} else {
		if mtu < MinPMTUv6 {
			return
		}
		hdr = headerLen6
	}
	mss := mtu - hdr
	if c.mss == 0 {
		return
	}
	opt := 0
	if c.tsOK {
		opt = tsOptionSpace
	}
	if mss-opt >= c.mss {
		return
	}
	c.mss = mss - opt
	c.cc.SetMSS(c.mss)
	if c.state.Synchronized() && c.snd.una != c.snd.max {
		c.snd.nxt = c.snd.una
		c.output(now)
	}
}

// HandleUnreachable takes an ICMP destination unreachable for this
// connection. Hard errors (RFC 1122 4.2.3.9: protocol or port unreachable)
// abort a connection still opening with err; others are only remembered by
// the caller as a soft error.
func (c *Conn) HandleUnreachable(now time.Time, err error, hard bool) {
	if hard && (c.state == SynSent || c.state == SynReceived) {
		c.abort(now, err, RcvICMPUnreachable)
	}
}

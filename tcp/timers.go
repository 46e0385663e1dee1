package tcp

import (
	"time"

	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/wire"
)

// This file holds the timeouts of RFC 9293 section 3.10.8 (USER TIMEOUT,
// RETRANSMISSION TIMEOUT, TIME-WAIT TIMEOUT) and the other timers a real
// TCP keeps: persist, delayed ACK, keep-alive, FIN-WAIT-2.

// Deadline is the earliest time the connection needs HandleTimers, or the
// zero time when no timer is armed.
func (c *Conn) Deadline() time.Time {
	var d time.Time
	for _, t := range [...]time.Time{c.tm.rtx, c.tm.persist, c.tm.delack, c.tm.keepalive, c.tm.timewait, c.tm.reclaim, c.tm.reo, c.tm.tlp, c.tm.pace} {
		if !t.IsZero() && (d.IsZero() || t.Before(d)) {
			d = t
		}
	}
	return d
}

func due(t, now time.Time) bool { return !t.IsZero() && !now.Before(t) }

// HandleTimers runs every timer that is due at now.
func (c *Conn) HandleTimers(now time.Time) {
	if due(c.tm.timewait, now) {
		c.tm.timewait = time.Time{}
		switch c.state {
		case TimeWait:
			c.setState(now, Closed, Timeout2MSL) // RFC 9293 3.10.8
			return
		case FinWait2:
			c.abort(now, ErrTimedOut, FinWait2Timeout)
			return
		}
	}
	if due(c.tm.rtx, now) && due(c.tm.tlp, now) && !c.tm.tlp.After(c.tm.rtx) {
		// RFC 8985 section 7.2: a probe scheduled at the RTO's time (the
		// RTO would have come before the PTO) goes instead of the
		// timeout; sending it restarts the RTO (section 7.3). When no
		// probe can be sent the RTO below still fires.
		c.tm.tlp = time.Time{}
		c.tlpTimeout(now)
	}
	if due(c.tm.rtx, now) {
		c.tm.rtx = time.Time{}
		c.retransmissionTimeout(now)
		if c.state == Closed {
			return
		}
	}
	if due(c.tm.reo, now) {
		c.tm.reo = time.Time{}
		c.reorderTimeout(now)
	}
	if due(c.tm.tlp, now) {
		c.tm.tlp = time.Time{}
		c.tlpTimeout(now)
	}
	if due(c.tm.persist, now) {
		c.tm.persist = time.Time{}
		c.persistTimeout(now)
	}
	if due(c.tm.keepalive, now) {
		c.tm.keepalive = time.Time{}
		c.keepAliveTimeout(now)
		if c.state == Closed {
			return
		}
	}
	if due(c.tm.delack, now) {
		c.tm.delack = time.Time{}
		if c.rcv.ackPending && c.state != TimeWait && c.state != Closed {
			c.stats.DelayedACKsSent++
			c.rcv.ackNow = true
			c.output(now)
		}
	}
	if due(c.tm.reclaim, now) {
		c.tm.reclaim = time.Time{}
		c.reclaimTimeout(now)
	}
	if due(c.tm.pace, now) {
		c.tm.pace = time.Time{}
		c.output(now) // a paced segment is due (pacing.go)
	}
}

// reclaimIdle is how long a ring that emptied keeps its array: a busy
// connection's buffer empties and fills again many times a second, and
// giving it back each time would make every burst allocate and copy its
// way back up (measured: BenchmarkBulk allocated 2.7 MB per MiB sent).
// A connection that stays quiet this long gives it back.
const reclaimIdle = time.Second

// armReclaim notes when a ring has emptied and starts the reclaim timer
// if that ring holds more than it keeps when empty (ring.shrink) and the
// timer does not run yet.
func (c *Conn) armReclaim(now time.Time) {
	if c.state == Closed || c.state == TimeWait {
		return
	}
	if c.memState != MemoryNormal {
		// The stack is short of memory: drained rings go back now
		// (memory.go).
		c.reclaimBuffers()
		return
	}
	for _, r := range [...]*ring{&c.snd.buf, &c.rcv.buf} {
		if r.len() == 0 && r.size() > ringKeep {
			r.emptied = now
			if c.tm.reclaim.IsZero() {
				c.tm.reclaim = now.Add(reclaimIdle)
			}
		}
	}
}

// reclaimTimeout gives back the arrays of the rings that have stayed empty
// for reclaimIdle (issue 12: buffers shrink back when drained and idle). A
// ring that emptied again since the timer started waits its own
// reclaimIdle; one that has filled again keeps its array, and its next
// empty moment starts the timer again.
//
// A drained transmit queue gives its records back then too (a ring of up
// to txShrink of them stays otherwise), so a bulk connection gone idle
// holds no transmit records (issue 13 item 4).
func (c *Conn) reclaimTimeout(now time.Time) {
	for _, r := range [...]*ring{&c.snd.buf, &c.rcv.buf} {
		if r.len() != 0 || r.size() <= ringKeep {
			continue
		}
		if at := r.emptied.Add(reclaimIdle); now.Before(at) {
			if c.tm.reclaim.IsZero() || at.Before(c.tm.reclaim) {
				c.tm.reclaim = at
			}
			continue
		}
		c.reclaimRing(r)
	}
	if l := c.snd.loss; l != nil && l.txq.n == 0 {
		l.txq.s = nil
	}
}

// reclaimBuffers gives back the arrays of the rings that are empty now.
func (c *Conn) reclaimBuffers() {
	c.reclaimRing(&c.snd.buf)
	c.reclaimRing(&c.rcv.buf)
}

func (c *Conn) reclaimRing(r *ring) {
	if r == &c.rcv.buf && c.rcv.synText > 0 {
		return // a SYN's text waits uncommitted in the ring
	}
	r.shrink()
	if r.size() == 0 {
		// The last segment sent may still point into the array.
		c.out.Payload = nil
		if r == &c.snd.buf {
			c.sndIdle() // sndtune.go
		}
	}
}

// retransmissionTimeout is RFC 9293 3.10.8 "RETRANSMISSION TIMEOUT" with
// RFC 6298 section 5: back off the timer, retransmit the earliest
// unacknowledged segment, and give up after the configured count.
func (c *Conn) retransmissionTimeout(now time.Time) {
	switch c.state {
	case Closed, Listen, TimeWait:
		return
	}
	if c.snd.una == c.snd.max {
		return // everything acknowledged; the timer was stale
	}
	limit := c.cfg.maxRetransmits()
	switch {
	case c.state == SynSent:
		limit = c.cfg.synRetries()
	case !c.synAcked():
		limit = c.cfg.synAckRetries()
	}
	if c.orphanExhausted(now) {
		return
	}
	userTimedOut := c.cfg.UserTimeout > 0 && !c.snd.stalled.IsZero() && now.Sub(c.snd.stalled) >= c.cfg.UserTimeout
	if c.snd.retransmits >= limit || userTimedOut {
		cause := RetransmitTimeout
		if userTimedOut {
			cause = UserTimeout
		}
		if c.state.Synchronized() || c.state == SynReceived {
			// Tell the peer, as Linux does, so it does not wait on a
			// connection that is gone.
			c.sendRST(now, c.acceptableSeq())
		}
		if c.state == SynReceived && c.passive {
			c.returnToListen(now, cause)
			return
		}
		c.abort(now, ErrTimedOut, cause)
		return
	}
	c.snd.retransmits++
	c.spendOrphanRetry()
	c.rtt.backoff++ // RFC 6298 5.5
	c.cold().Timeouts++
	c.snd.rttTiming = false // Karn: no sample from what we resend
	if !c.synAcked() {
		c.cold().Retransmits++
		c.armRTX(now)
		c.sendSYN(now)
		return
	}
	// RFC 5681 section 3.1 eq. 4, and go back to SND.UNA: everything
	// after it is sent again as the window opens (RFC 6582 section 4).
	c.startEpisode(true)
	c.cc.OnTimeout(now, int(c.snd.una.Size(c.snd.max)))
	c.snd.inRecovery = false
	c.snd.dupAcks = 0
	c.lr().rec = sackRecovery{}
	c.lr().txq.clearLost()
	c.lr().rack.tlpActive = false
	c.tm.reo, c.tm.tlp = time.Time{}, time.Time{}
	if c.snd.retransmits > 1 {
		// A second timeout in a row: the peer may have reneged on what it
		// SACKed (RFC 2018 section 8, RFC 6675 section 5.1), so resend
		// everything.
		c.lr().sb.reset()
	}
	c.snd.recover = c.snd.max // RFC 6582 section 4: no fast retransmit for old duplicates
	c.snd.nxt = c.snd.una
	c.armRTX(now)
	if c.snd.wnd == 0 {
		// The peer closed its window after we sent: send one byte as
		// the probe would, ignoring the window.
		c.sendProbe(now)
		return
	}
	if !c.sendOneSegment(now) {
		c.sendProbe(now)
	}
}

// spendOrphanRetry counts one retransmission timeout or zero-window probe
// against Config.OrphanRetries, once the owner has closed the connection.
func (c *Conn) spendOrphanRetry() {
	if c.released {
		c.snd.orphanRetries++
	}
}

// orphanExhausted ends an orphan (a connection its owner has closed, see
// Release) that has spent Config.OrphanRetries timeouts and probes without
// the peer acknowledging anything new, and reports whether it did. Nobody
// waits for such a connection, so unlike a live one it is not kept open
// while the peer answers zero-window probes but never reads (RFC 1122
// 4.2.2.17 protects the application that still waits; an orphan has
// none): RFC 1122 4.2.3.5 (R2) lets a TCP abort on excessive
// retransmission, and Linux bounds orphans so with tcp_orphan_retries. The
// peer gets a RST, as when the retransmission limit ends a connection,
// and the buffers go with the TCB.
func (c *Conn) orphanExhausted(now time.Time) bool {
	if !c.released || c.snd.orphanRetries < c.cfg.orphanRetries() || !c.state.Synchronized() {
		return false
	}
	c.cold().OrphanResets++
	c.sendRST(now, c.acceptableSeq())
	c.abort(now, ErrTimedOut, OrphanRetries)
	return true
}

// armRTX (re)starts the retransmission timer one RTO from now (RFC 6298
// 5.1, 5.3, 5.6). With a USER TIMEOUT the timer fires no later than the
// moment it expires, so the abort is not put off by a backed-off RTO.
func (c *Conn) armRTX(now time.Time) {
	c.tm.rtx = now.Add(c.rtt.current())
	if c.cfg.UserTimeout > 0 && !c.snd.stalled.IsZero() {
		if limit := c.snd.stalled.Add(c.cfg.UserTimeout); limit.Before(c.tm.rtx) {
			c.tm.rtx = limit
			if limit.Before(now) {
				c.tm.rtx = now
			}
		}
	}
}

// armPersist tends the persist timer, which has two uses.
//
// A zero window with data waiting: the connection is in persist mode
// (RFC 9293 3.8.6.1, RFC 1122 4.2.2.17). A closed window is not a loss, so
// the retransmission timer stops and probes take over; SND.NXT goes back
// to SND.UNA, since what was in flight beyond the window was dropped and
// is sent again when the window opens.
//
// A window that is open but too small for sender-side silly window
// avoidance with nothing in flight: the timer is the "override timeout"
// of 3.8.6.2.1 (4), without which the sender would wait forever.
func (c *Conn) armPersist(now time.Time) {
	unsent := c.snd.buf.len() > int(c.snd.bufStart.Size(c.snd.nxt)) && c.snd.nxt.GreaterThanEq(c.snd.bufStart) ||
		(c.snd.finQueued && !c.finSent())
	canSend := c.synAcked() && c.state.Synchronized() && c.state != TimeWait
	switch {
	case canSend && c.snd.wnd == 0 && (unsent || c.snd.una != c.snd.max):
		if c.tm.persist.IsZero() {
			if c.snd.probes == 0 {
				c.snd.nxt = c.snd.una
			}
			c.tm.persist = now.Add(c.rtt.withBackoff(c.snd.probes))
		}
		c.tm.rtx, c.tm.tlp = time.Time{}, time.Time{}
	case canSend && unsent && c.snd.una == c.snd.max:
		c.snd.probes = 0
		if c.tm.persist.IsZero() {
			c.tm.persist = now.Add(c.rtt.withBackoff(0))
		}
	default:
		c.snd.probes = 0
		c.tm.persist = time.Time{}
	}
}

func (c *Conn) persistTimeout(now time.Time) {
	if !c.state.Synchronized() {
		return
	}
	if c.snd.wnd != 0 {
		c.snd.override = true
		c.sendOneSegment(now)
		c.snd.override = false
		c.output(now)
		return
	}
	if c.orphanExhausted(now) {
		return
	}
	if c.snd.unansweredProbes >= c.cfg.maxRetransmits() {
		// The peer stopped answering: RFC 1122 4.2.2.17 forbids giving
		// up only "as long as the receiving TCP continues to send
		// acknowledgments in response to the probe segments".
		c.sendRST(now, c.acceptableSeq())
		c.abort(now, ErrTimedOut, RetransmitTimeout)
		return
	}
	c.cold().ZeroWindowProbes++
	c.snd.unansweredProbes++
	c.spendOrphanRetry()
	c.sendProbe(now)
	// Back off like the retransmission timer (RFC 6298 5.5).
	c.snd.probes++
	c.tm.persist = now.Add(c.rtt.withBackoff(c.snd.probes))
}

// sendProbe sends one byte beyond the zero window (or the FIN), as RFC
// 9293 3.8.6.1 says a zero-window probe is. If the peer takes it, its ACK
// moves SND.UNA; if not, the next probe sends it again.
func (c *Conn) sendProbe(now time.Time) {
	off := int(c.snd.bufStart.Size(c.snd.una))
	if c.snd.una.LessThan(c.snd.bufStart) {
		off = 0
	}
	s := &c.out
	*s = Segment{Seq: c.snd.una, Ack: c.rcv.nxt, Flags: wire.ACK}
	if off < c.snd.buf.len() {
		s.Payload = c.snd.buf.peek(off, 1, nil) // one byte never wraps
		c.outGathered = false
	} else if c.snd.finQueued {
		s.Flags |= wire.FIN
	} else {
		return
	}
	c.fillACKFields(now, s, false)
	if c.snd.una.LessThan(c.snd.max) {
		c.stampRetransmission(s) // a repeated probe
	}
	if c.sackOK {
		c.txSent(c.snd.una, c.snd.una.Add(s.Len()), now, c.snd.max)
	}
	c.snd.nxt = c.snd.una.Add(s.Len())
	if c.snd.max.LessThan(c.snd.nxt) {
		c.snd.max = c.snd.nxt
	}
	c.emit(s)
}

// armKeepAlive (re)starts the keep-alive timer from the last segment
// received (RFC 9293 3.8.4: only after an idle interval, default no less
// than two hours).
func (c *Conn) armKeepAlive(now time.Time) {
	if !c.keepAlive || !c.state.Synchronized() || c.state == TimeWait {
		c.tm.keepalive = time.Time{}
		return
	}
	c.keepAliveProbes = 0
	c.tm.keepalive = c.lastRecv.Add(c.keepAliveIdle())
	if c.tm.keepalive.Before(now) {
		c.tm.keepalive = now
	}
}

func (c *Conn) keepAliveIdle() time.Duration {
	if c.kaIdle > 0 {
		return c.kaIdle
	}
	return c.cfg.keepAliveIdle()
}

func (c *Conn) keepAliveInterval() time.Duration {
	if c.kaInterval > 0 {
		return c.kaInterval
	}
	return c.cfg.keepAliveInterval()
}

func (c *Conn) keepAliveCount() int {
	if c.kaCount > 0 {
		return c.kaCount
	}
	return c.cfg.keepAliveCount()
}

// keepAliveTimeout sends a keep-alive probe: a segment with SEG.SEQ =
// SND.NXT-1 and no data, which the peer must answer with an ACK (RFC 1122
// 4.2.3.6), or aborts after the configured number of silent probes.
func (c *Conn) keepAliveTimeout(now time.Time) {
	if !c.keepAlive || !c.state.Synchronized() || c.state == TimeWait {
		return
	}
	if c.snd.una != c.snd.max || !c.tm.persist.IsZero() {
		// Data is in flight or a zero-window probe is due: the
		// retransmission or persist timer already watches the peer
		// (RFC 1122 4.2.3.6 sends keep-alives only on an idle
		// connection). Look again an idle period later.
		c.tm.keepalive = now.Add(c.keepAliveIdle())
		return
	}
	if c.keepAliveProbes >= c.keepAliveCount() {
		c.sendRST(now, c.acceptableSeq())
		c.abort(now, ErrTimedOut, KeepAliveTimeout)
		return
	}
	c.keepAliveProbes++
	c.cold().KeepAliveProbes++
	s := &c.out
	*s = Segment{Seq: c.snd.una.Sub(1), Ack: c.rcv.nxt, Flags: wire.ACK}
	c.fillACKFields(now, s, false)
	c.emit(s)
	c.tm.keepalive = now.Add(c.keepAliveInterval())
}

// startTimeWait (re)starts the 2MSL timer (RFC 9293 3.10.7.4 "eighth").
func (c *Conn) startTimeWait(now time.Time) {
	c.tm = timers{timewait: now.Add(2 * c.cfg.msl())}
}

// TimeWaitReopen reports whether a SYN that arrives for this connection in
// TIME-WAIT may start a new incarnation of the 4-tuple (RFC 9293 3.6.1,
// MAY-2, and the Best Current Practice of RFC 6191 section 2 it points to
// as SHLD-4):
//
//   - if this incarnation used timestamps: a SYN whose timestamps would be
//     used by the new one reopens when its TSval is newer than TS.Recent,
//     or equal with a newer sequence number; a SYN without timestamps
//     when its sequence number is newer;
//   - if it did not: a SYN with timestamps reopens; one without, when its
//     sequence number is newer.
//
// "Newer" for the sequence number means beyond RCV.NXT, past everything
// the old incarnation sent (RFC 1122 4.2.2.13). Any other SYN is handled as
// in the other synchronized states (a challenge ACK, RFC 5961 section 4).
// When this reports true the stack deletes this connection and hands the
// SYN to the listener, with an ISS from NextISS.
func (c *Conn) TimeWaitReopen(seg *Segment) bool {
	if c.state != TimeWait || seg.Flags&(wire.SYN|wire.ACK|wire.RST) != wire.SYN {
		return false
	}
	return timeWaitReopen(c.tsOK, c.tsRecent, c.rcv.nxt, c.cfg.NoTimestamps, seg)
}

// NextISS proposes the ISS for a new incarnation after TimeWaitReopen: the
// old SND.NXT plus a large step, so that the new ISS is beyond anything
// the old incarnation sent (RFC 1122 4.2.2.13).
func (c *Conn) NextISS() seqnum.Value { return c.snd.max.Add(nextISSGap) }

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
	for _, t := range [...]time.Time{c.tm.rtx, c.tm.persist, c.tm.delack, c.tm.keepalive, c.tm.timewait} {
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
			c.setState(now, Closed, "2MSL timeout") // RFC 9293 3.10.8
			return
		case FinWait2:
			c.abort(now, ErrTimedOut, "FIN-WAIT-2 timeout")
			return
		}
	}
	if due(c.tm.rtx, now) {
		c.tm.rtx = time.Time{}
		c.retransmissionTimeout(now)
		if c.state == Closed {
			return
		}
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
			c.rcv.ackNow = true
			c.output(now)
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
	limit := c.cfg.MaxRetransmits
	switch {
	case c.state == SynSent:
		limit = c.cfg.SynRetries
	case !c.synAcked():
		limit = c.cfg.SynAckRetries
	}
	if c.snd.retransmits == 0 {
		c.snd.firstRtx = now
	}
	userTimedOut := c.cfg.UserTimeout > 0 && now.Sub(c.snd.firstRtx) >= c.cfg.UserTimeout
	if c.snd.retransmits >= limit || userTimedOut {
		cause := "retransmission limit"
		if userTimedOut {
			cause = "user timeout"
		}
		if c.state.Synchronized() || c.state == SynReceived {
			// Tell the peer, as Linux does, so it does not wait on a
			// connection that is gone.
			c.sendRST(now, c.snd.max)
		}
		if c.state == SynReceived && c.passive {
			c.setState(now, Listen, cause)
			return
		}
		c.abort(now, ErrTimedOut, cause)
		return
	}
	c.snd.retransmits++
	c.rtt.backoff++ // RFC 6298 5.5
	c.stats.Timeouts++
	c.snd.rttTiming = false // Karn: no sample from what we resend
	if !c.synAcked() {
		c.stats.Retransmits++
		c.tm.rtx = now.Add(c.rtt.current())
		c.sendSYN(now)
		return
	}
	// RFC 5681 section 3.1 eq. 4, and go back to SND.UNA: everything
	// after it is sent again as the window opens (RFC 6582 section 4).
	c.cc.OnTimeout(int(c.snd.una.Size(c.snd.max)))
	c.snd.inRecovery = false
	c.snd.dupAcks = 0
	c.snd.recover = c.snd.max // RFC 6582 section 4: no fast retransmit for old duplicates
	c.snd.nxt = c.snd.una
	c.tm.rtx = now.Add(c.rtt.current())
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

// armPersist starts the persist timer when the peer's window is zero,
// there is something to send, and nothing is in flight that a
// retransmission timer would watch (RFC 9293 3.8.6.1, RFC 1122 4.2.2.17).
func (c *Conn) armPersist(now time.Time) {
	pending := c.snd.buf.len() > int(c.snd.bufStart.Size(c.snd.nxt)) ||
		(c.snd.finQueued && !c.finSent())
	if c.snd.wnd != 0 || !pending || c.snd.una != c.snd.max {
		c.tm.persist = time.Time{}
		return
	}
	if c.tm.persist.IsZero() {
		c.tm.persist = now.Add(c.rtt.current())
	}
}

func (c *Conn) persistTimeout(now time.Time) {
	if !c.state.Synchronized() || c.snd.wnd != 0 {
		c.output(now)
		return
	}
	c.stats.ZeroWindowProbes++
	c.sendProbe(now)
	// Back off like the retransmission timer, but never give up while
	// the peer keeps answering (RFC 1122 4.2.2.17).
	c.rtt.backoff++
	c.tm.persist = now.Add(c.rtt.current())
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
		if cap(c.scratch) < c.mss {
			c.scratch = make([]byte, c.mss)
		}
		s.Payload = c.snd.buf.peek(off, 1, c.scratch)
	} else if c.snd.finQueued {
		s.Flags |= wire.FIN
	} else {
		return
	}
	c.fillACKFields(now, s, false)
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
	c.tm.keepalive = c.lastRecv.Add(c.cfg.KeepAliveIdle)
	if c.tm.keepalive.Before(now) {
		c.tm.keepalive = now
	}
}

// keepAliveTimeout sends a keep-alive probe: a segment with SEG.SEQ =
// SND.NXT-1 and no data, which the peer must answer with an ACK (RFC 1122
// 4.2.3.6), or aborts after the configured number of silent probes.
func (c *Conn) keepAliveTimeout(now time.Time) {
	if !c.keepAlive || !c.state.Synchronized() || c.state == TimeWait {
		return
	}
	if c.keepAliveProbes >= c.cfg.KeepAliveCount {
		c.sendRST(now, c.snd.max)
		c.abort(now, ErrTimedOut, "keep-alive timeout")
		return
	}
	c.keepAliveProbes++
	c.stats.KeepAliveProbes++
	s := &c.out
	*s = Segment{Seq: c.snd.una.Sub(1), Ack: c.rcv.nxt, Flags: wire.ACK}
	c.fillACKFields(now, s, false)
	c.emit(s)
	c.tm.keepalive = now.Add(c.cfg.KeepAliveInterval)
}

// startTimeWait (re)starts the 2MSL timer (RFC 9293 3.10.7.4 "eighth").
func (c *Conn) startTimeWait(now time.Time) {
	c.tm = timers{timewait: now.Add(2 * c.cfg.MSL)}
}

// TimeWaitReopen reports whether a SYN that arrives for this connection in
// TIME-WAIT may start a new incarnation of the 4-tuple: its sequence number
// is beyond everything this incarnation received (RFC 9293 3.10.7.4 via RFC
// 1122 4.2.2.13), or, with timestamps, its TSval is newer (RFC 6191
// section 2). The stack then deletes this connection and treats the SYN as
// if it reached the listener.
func (c *Conn) TimeWaitReopen(seg *Segment) bool {
	if c.state != TimeWait || seg.Flags&(wire.SYN|wire.ACK|wire.RST) != wire.SYN {
		return false
	}
	if c.tsOK && seg.Options.HasTimestamps {
		return int32(seg.Options.TSVal-c.tsRecent) > 0
	}
	return seg.Seq.GreaterThan(c.rcv.nxt)
}

// NextISS proposes the ISS for a new incarnation after TimeWaitReopen: the
// old SND.NXT plus a large step, so that the new ISS is beyond anything
// the old incarnation sent (RFC 1122 4.2.2.13).
func (c *Conn) NextISS() seqnum.Value { return c.snd.max.Add(128000) }

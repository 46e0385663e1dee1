package tcp

import "time"

// This file is receive-buffer auto-tuning: dynamic right-sizing (DRS) of
// the advertised window by measured delivery, after Fisk and Feng,
// "Dynamic Right-Sizing in TCP" (LACSI 2001), and Linux's
// tcp_rcv_space_adjust. A connection starts by advertising a modest
// window (initialRcvLimit) and, once per round trip, raises the limit of
// what it advertises to twice what the application read in that round
// trip, up to Config.ReceiveBufferSize (the maximum, as tcp_rmem's third
// value is Linux's). A sender that doubles its window each round trip
// (slow start) then never finds the receive window in its way, while a
// connection whose application reads slowly, or not at all, keeps a
// small window: what a peer can make the stack buffer follows what the
// application takes, not a fixed megabyte per connection (issue 12).
//
// The limit never goes down: the right edge of the window advertised is
// never moved back (RFC 9293 3.8.6, shrinking the window is strongly
// discouraged; RFC 7323 section 2.4). The memory of an idle connection is
// given back by the ring itself (buffer.go, reclaim timer), so a high
// limit costs nothing while nothing is buffered. Under the stack's memory
// pressure the limit does not grow (memory.go). Config.NoAutoTune
// advertises the whole ReceiveBufferSize from the start, as before.

// initialRcvWindow is the window a connection starts out advertising:
// 64 KiB. It is no less than the 65,535 bytes the unscaled window of our
// SYN or SYN,ACK offers (RFC 7323 section 2.2), so the first scaled
// window never retracts that edge; it is more than twice a sender's
// initial window (10 segments, RFC 6928), so the first round trip is not
// receiver-limited; and it is about what Linux starts with (tcp_rmem's
// default of 128 KiB, half of it advertised).
const initialRcvWindow = 64 << 10

// initialRcvLimit is the window a connection starts out advertising at
// its MSS: initialRcvWindow, or twice the sender's initial window (RFC
// 6928's IW, in segments of this MSS; RFC 5681 section 3.1) where that is
// more. At a large MSS (65,483 bytes on a 65,535-byte link) 64 KiB is one
// segment: a sender that may send two full segments (IW) could send only
// one, and a receiver ACKs every second full-sized segment (RFC 9293
// 3.8.6.3), so each segment waited for the delayed-ACK timer, and a window
// reopened by less than an MSS for a persist probe (issue 13: a 240 ms
// start stall). Twice IW lets the first flight and its successor be in
// flight at once, as 64 KiB does at an ordinary MSS.
func (c *Conn) initialRcvLimit() int {
	return max(initialRcvWindow, 2*initialWindow(c.mss))
}

// raiseInitialRcvLimit takes the MSS the handshake settled into account:
// an active open offered its first window before the SYN,ACK told it the
// MSS. The limit only grows (the right edge is never moved back, RFC 9293
// 3.8.6), and only up to the buffer.
func (c *Conn) raiseInitialRcvLimit() {
	if s := &c.rcv.space; s.limit != 0 {
		s.limit = max(s.limit, min(c.initialRcvLimit(), c.rcvBufSize()))
	}
}

// rcvSpace is the state of dynamic right-sizing (Linux's rcvq_space and
// rcv_rtt_est).
type rcvSpace struct {
	limit  int           // the most window we advertise now; 0 until first used (rcvLimit)
	space  int           // the most bytes read in one measured round trip
	copied int           // bytes read since start
	start  time.Time     // when the present measurement began
	rtt    time.Duration // the receiver's RTT estimate (rcvRTTSample)
}

// rcvLimit is the most receive window we advertise now: what
// auto-tuning has grown to, or the whole buffer with NoAutoTune.
func (c *Conn) rcvLimit() int {
	max := c.rcvBufSize()
	if c.cfg.NoAutoTune || c.bufs.rcv > 0 || c.state.recvClosed() {
		// Once the peer's FIN is in, no new data can come: the window
		// costs nothing, and TIME-WAIT's record advertises the whole
		// buffer too (timewait.go), so the two answer alike. A buffer
		// the owner set (SetReceiveBuffer) is not auto-tuned either.
		return max
	}
	if c.rcv.space.limit == 0 {
		c.rcv.space.limit = min(c.initialRcvLimit(), max)
	}
	return c.rcv.space.limit
}

// rcvSpaceAdjust runs after the application read n bytes (RECEIVE): once
// a measured round trip has passed since the measurement began, the bytes
// read in it are the delivery rate per RTT; when that is a new high, the
// limit grows to twice it, so that the sender can double again in the
// next round trip. No growth under memory pressure (memory.go: windows
// stop opening) and none without an RTT estimate.
func (c *Conn) rcvSpaceAdjust(now time.Time, n int) {
	if c.cfg.NoAutoTune || n <= 0 {
		return
	}
	s := &c.rcv.space
	s.copied += n
	if s.start.IsZero() {
		s.start = now
		return
	}
	rtt := c.rcvRTT()
	if rtt <= 0 || now.Sub(s.start) < rtt {
		return
	}
	if s.space == 0 {
		// What a sender delivers in its first round trip (RFC 6928's
		// initial window): growth starts once a round trip brings more.
		s.space = 10 * c.mss
	}
	if s.copied > s.space && c.memState == MemoryNormal {
		// (Under pressure the high is not raised either: delivery
		// through the window held then must still count as growth
		// once the pressure is over.)
		if want := min(c.drsWindow(s.copied, s.space), c.cfg.receiveBufferSize()); want > c.rcvLimit() {
			s.limit = want
		}
		s.space = s.copied
	}
	s.copied, s.start = 0, now
}

// drsWindow is the window to offer after a round trip delivered copied
// bytes, the most before being space: twice the delivery (the sender may
// double in slow start), plus 16 segments of slack for ACKs that are
// delayed or stretched and for reordering, and up to twice as much
// again as delivery grew over the last high (at most for one doubling):
// a sender still growing that fast keeps growing while the new window
// travels to it and its data back, and a window that only kept pace with
// it would hold it back (Linux grows rcvwin by the same reasoning,
// without the cap; the cap keeps a first burst, which may bring more
// than a round trip's worth, from jumping to the maximum).
func (c *Conn) drsWindow(copied, space int) int {
	w := 2*copied + 16*c.mss
	grow := min(copied-space, space)
	return w + 2*int(int64(w)*int64(grow)/int64(space))
}

// rcvRTT is the round-trip time auto-tuning measures delivery over: the
// receiver's own estimate from timestamps when there is one, else the
// sender's smoothed RTT (RFC 6298; a passive open has a sample from its
// SYN,ACK, an active one from its SYN), taken as at least a millisecond,
// the timestamp clock's tick, as a path of no measurable delay (an
// in-memory link) has.
func (c *Conn) rcvRTT() time.Duration {
	if c.rcv.space.rtt > 0 {
		return c.rcv.space.rtt
	}
	if c.rtt.measured {
		return max(c.rtt.srtt, time.Millisecond)
	}
	return 0
}

// rcvRTTSample takes a receiver-side RTT sample from an in-order data
// segment: its TSecr echoes the TSval of one of our segments, most often
// the ACK that released it, so the time since that TSval is a round trip
// (RFC 7323 section 4.1 lets either side measure so; Linux's
// tcp_rcv_rtt_measure_ts). Only full-sized segments count, as a small one
// may have waited on the sender's application. The estimate moves by an
// eighth of each sample, and at once to a smaller one: an echo can be late
// (a delayed ACK, an idle sender) but never early, so the smallest recent
// sample is the best one.
func (c *Conn) rcvRTTSample(now time.Time, seg *Segment) {
	o := &seg.Options
	if c.cfg.NoAutoTune || !c.tsOK || !o.HasTimestamps || o.TSEcr == 0 || len(seg.Payload) < c.mss {
		return
	}
	d := int32(c.tsNow(now) - o.TSEcr)
	if d < 0 || d > 60_000 {
		return // not an echo of ours, or from an earlier life of the clock
	}
	m := max(time.Duration(d)*time.Millisecond, time.Millisecond) // the clock ticks in ms
	s := &c.rcv.space
	if s.rtt == 0 || m < s.rtt {
		s.rtt = m
	} else {
		s.rtt += (m - s.rtt) / 8
	}
}

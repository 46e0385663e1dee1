package tcp

import (
	"time"

	"github.com/synack/synack/seqnum"
)

// This file is RACK-TLP (RFC 8985): loss detection by time rather than by
// counting, and the Tail Loss Probe. RACK needs the transmit time of every
// segment in flight, which the transmit queue below records.

// LossDetection chooses how a connection whose peer SACKs decides that a
// segment is lost. Without SACK, NewReno's three duplicate ACKs (RFC 5681,
// RFC 6582) decide, whatever this says.
type LossDetection string

const (
	// LossRACK is RACK-TLP (RFC 8985): a segment is lost when one sent
	// after it was delivered more than a reordering window ago; a probe
	// repairs a lost tail in about two RTTs. The default.
	LossRACK LossDetection = "rack"
	// LossDupThresh is RFC 6675 alone: a segment is lost when DupThresh
	// segments above it are SACKed; no probe. For comparison.
	LossDupThresh LossDetection = "dupthresh"
)

// maxTxSegs is the least bound of the transmit queue; txLimit raises it
// to one record per full segment of the send buffer. A flight longer than
// the bound in segments (a send buffer of tiny segments) shares records:
// new segments join the newest record, which then times them all as one.
const maxTxSegs = 4096

// txLimit bounds the transmit queue: at least maxTxSegs records, and one
// per full-sized segment the send buffer can hold, so that a flight of
// full segments always has a record each. A record that holds several
// segments is SACKed only when all of them are (a partly SACKed record
// still has a hole), so past the bound RACK (RFC 8985 section 6.2) learns
// of no delivery in it and marks nothing lost: after a slow-start
// overshoot of a 1 Gbit/s x 100 ms path into a drop-tail queue (32,000
// segments in flight, every other one lost in the last round) the sender
// saw 24 MB SACKed, marked nothing lost and waited for the RTO. A record
// is 80 bytes, 5.5 % of the 1448 it stands for, and the ring shrinks
// again when the flight drains (txShrink).
func (c *Conn) txLimit() int {
	return max(maxTxSegs, c.snd.buf.limit/max(c.mss, 1)+1)
}

// txQueueMin is the ring size the transmit queue starts at: a short
// connection has a segment or two in flight, and a bulk one doubles its
// way up in a few steps (issue 13 item 6: no fresh 640-byte ring for a
// one-byte exchange).
const txQueueMin = 4

// txShrink is the ring size kept when the flight drains; a larger ring
// is let go then, so an idle connection holds little (DESIGN: buffers
// shrink back when drained).
const txShrink = 64

// rackReoPersist is how many recoveries the reordering window stays
// widened after a D-SACK (RFC 8985 section 6.2, step 4).
const rackReoPersist = 16

// wcDelAckT is RFC 8985 section 7.2's worst-case delayed-ACK timer, added
// to the PTO when a single segment is in flight.
const wcDelAckT = 200 * time.Millisecond

// minPTO is the floor of the probe timeout: on a path of microseconds,
// 2*SRTT would probe before the peer's ACK could come back from any
// scheduling delay. (RFC 8985 section 7.2 leaves the granularity to the
// implementation.)
const minPTO = 10 * time.Millisecond

// Flags of a transmit record.
const (
	txSACKed  uint8 = 1 << iota // the peer holds it (RFC 2018)
	txLost                      // RACK marked it lost and it waits for a retransmission
	txRetrans                   // sent more than once
)

// txSeg is what RACK keeps of one segment in flight (RFC 8985 section 5.2:
// Segment.xmit_ts, end_seq, lost, retransmitted).
type txSeg struct {
	start, end seqnum.Value
	xmit       time.Time
	flags      uint8
	order      uint32 // when it was (last) sent, in transmissions: see txQueue.stamp
	rate       txRate // delivery-rate state at the (last) transmission (rate.go)
}

func (s *txSeg) has(f uint8) bool { return s.flags&f != 0 }

// txQueue records the segments between SND.UNA and SND.MAX in sequence
// order, in a ring that grows to the flight's size (at most txLimit) and
// is reused: nothing is allocated per segment once it has grown.
type txQueue struct {
	s          []txSeg
	head, n    int
	lostBytes  int          // bytes marked lost and not yet resent
	highRtxEnd seqnum.Value // end of the highest record ever resent (while any is queued)
	sends      uint32       // transmissions recorded: the last one's txSeg.order
}

// stamp gives the next transmission its order. RFC 8985 section 6.2 asks
// which of two segments was sent later, and breaks a tie of xmit_ts by
// end_seq, as if segments sent at one instant left in sequence order. They
// need not: the runtime reads the clock once for a whole receive batch,
// and within it one ACK may send new data and a later one resend a hole
// below it. Taken by end_seq, the retransmission counts as sent before the
// new data, and is marked lost (and resent again, to come back as a
// D-SACK) as soon as the new data is SACKed, though it left after it and
// arrives after it. Linux avoids the tie with a microsecond stamp read for
// each transmission; the order of transmissions is exact whatever the
// clock's resolution.
func (q *txQueue) stamp() uint32 {
	q.sends++
	return q.sends
}

// sentAfter reports whether a was sent after b (RFC 8985's
// RACK_sent_after): by transmission order, which follows xmit_ts and
// breaks its ties as the segments really left. The counter wraps; a flight
// holds far fewer than 2^31 transmissions.
func sentAfter(a, b uint32) bool { return int32(a-b) > 0 }

func (q *txQueue) at(i int) *txSeg { return &q.s[(q.head+i)%len(q.s)] }

// find returns the index of the first record that ends after seq.
func (q *txQueue) find(seq seqnum.Value) int {
	lo, hi := 0, q.n
	for lo < hi {
		m := (lo + hi) / 2
		if q.at(m).end.LessThanEq(seq) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// sent records a transmission of [start, end) at now; highest is SND.MAX
// before it. A retransmission restamps the records it covers; new data,
// including the part of a resent segment beyond highest (go-back-N may
// send larger segments than the first time), gets a record while the
// queue holds fewer than limit (txLimit).
func (q *txQueue) sent(start, end seqnum.Value, now time.Time, highest seqnum.Value, limit int) {
	if start.LessThan(highest) {
		q.resent(start, seqnum.Min(end, highest), now)
		if !end.GreaterThan(highest) {
			return
		}
		start = highest
	}
	if q.n > 0 && q.at(q.n-1).end != start {
		return // cannot happen: new data starts where the flight ends
	}
	if q.n == len(q.s) && q.n < limit {
		q.grow(limit)
	}
	if q.n == len(q.s) {
		last := q.at(q.n - 1) // full: the newest record takes it
		last.end, last.xmit, last.order = end, now, q.stamp()
		return
	}
	*q.at(q.n) = txSeg{start: start, end: end, xmit: now, order: q.stamp()}
	q.n++
}

// resent restamps the records of [start, end), sent again at now.
func (q *txQueue) resent(start, end seqnum.Value, now time.Time) {
	for i := q.find(start); i < q.n; i++ {
		s := q.at(i)
		if !s.start.LessThan(end) {
			break
		}
		if s.has(txLost) {
			q.lostBytes -= int(s.start.Size(s.end))
		}
		s.flags = s.flags&^txLost | txRetrans
		s.xmit = now
		s.order = q.stamp()
		if q.highRtxEnd.LessThan(s.end) {
			q.highRtxEnd = s.end
		}
	}
}

// grow doubles the ring, to at most limit records.
func (q *txQueue) grow(limit int) {
	ns := make([]txSeg, max(min(2*len(q.s), limit), txQueueMin))
	for i := 0; i < q.n; i++ {
		ns[i] = *q.at(i)
	}
	q.s, q.head = ns, 0
}

// clearLost forgets the lost marks (after a timeout, when go-back-N
// resends everything).
func (q *txQueue) clearLost() {
	for i := 0; i < q.n; i++ {
		q.at(i).flags &^= txLost
	}
	q.lostBytes = 0
}

// rack is RACK's per-connection state (RFC 8985 section 5.2).
type rack struct {
	xmit     time.Time     // RACK.xmit_ts
	end      seqnum.Value  // RACK.end_seq
	order    uint32        // the reference segment's txSeg.order
	rtt      time.Duration // RACK.rtt
	minRTT   time.Duration // RACK.min_RTT (0: no sample yet)
	fack     seqnum.Value  // RACK.fack: highest end delivered
	haveFack bool
	// RACK.fack before the ACK being processed: a segment is reordered
	// only if it was delivered below one an earlier ACK delivered.
	priorFack     seqnum.Value
	havePriorFack bool
	reordering    bool // RACK.reordering_seen
	reoWndMult    int  // RACK.reo_wnd_mult (0 stands for its initial 1)
	reoPersist    int  // RACK.reo_wnd_persist
	dsackRound    seqnum.Value
	inDSACKRound  bool

	// TLP (RFC 8985 section 7.1).
	tlpEnd     seqnum.Value // TLP.end_seq
	tlpActive  bool
	tlpRetrans bool   // TLP.is_retrans
	tlpTSVal   uint32 // the probe's TSval, when it was a retransmission with timestamps
	tlpTSSet   bool
}

func (c *Conn) rackOn() bool {
	return c.sackOK && c.cfg.lossDetection() == LossRACK
}

// rackDelivered is RFC 8985 section 6.2 step 2 and 3 for one segment the
// latest ACK delivered (cumulatively or by SACK): the most recently sent
// segment delivered becomes RACK's reference, and delivery out of
// sequence order is reordering.
func (c *Conn) rackDelivered(now time.Time, s *txSeg, seg *Segment) {
	r := &c.lr().rack
	rtt := now.Sub(s.xmit)
	if s.has(txRetrans) {
		// Step 2: an ACK for a retransmitted segment may answer the
		// original; ignore it if the echo predates the retransmission
		// or the RTT is impossibly short.
		o := &seg.Options
		if c.tsOK && o.HasTimestamps && o.TSEcr != 0 && int32(o.TSEcr-c.tsNow(s.xmit)) < 0 {
			return
		}
		if r.minRTT > 0 && rtt < r.minRTT {
			return
		}
	}
	if rtt > 0 && (r.minRTT == 0 || rtt < r.minRTT) {
		// Step 1. A lifetime minimum, not a windowed one: if the path's
		// RTT grows for good, the window stays smaller than it could be,
		// which errs towards resending early.
		r.minRTT = rtt
	}
	// RACK.rtt goes with RACK.xmit_ts: the RTT of the most recently sent
	// segment delivered, which step 5's derivation takes it to be
	// (RACK.rtt = RACK.ack_ts - RACK.xmit_ts when delivery is in order).
	// The RFC sets it for every segment, in ascending sequence order, so
	// that the last one an ACK delivers sets it; here an ACK's SACKed
	// segments are taken before the cumulatively acknowledged ones below
	// them, and an old retransmission's longer RTT would then be the
	// last word (Linux, too, moves the RTT only with the reference).
	if r.xmit.IsZero() || sentAfter(s.order, r.order) {
		r.xmit, r.end, r.order, r.rtt = s.xmit, s.end, s.order, rtt
	}
	// Step 3, against RACK.fack as it was before this ACK: the RFC takes
	// one ACK's deliveries "in ascending order of Segment.end_seq", so
	// none of them is below another of the same ACK. An ACK that
	// acknowledges segments cumulatively and SACKs others above a hole
	// (every ACK of a recovery) is taken SACKed blocks first here;
	// comparing with a fack this same ACK moved took it for reordering,
	// and set reordering_seen for good on the first loss.
	if !s.has(txRetrans) {
		if r.havePriorFack && s.end.LessThan(r.priorFack) {
			r.reordering = true
		}
		if !r.haveFack || s.end.GreaterThan(r.fack) {
			r.fack, r.haveFack = s.end, true
		}
	}
}

// rackAckStart notes RACK.fack before an ACK's deliveries (step 3).
func (c *Conn) rackAckStart() {
	r := &c.lr().rack
	r.priorFack, r.havePriorFack = r.fack, r.haveFack
}

// txSACKed marks the records inside the newly SACKed [a, b) and feeds them
// to RACK.
func (c *Conn) txSACKed(now time.Time, seg *Segment, a, b seqnum.Value) {
	q := &c.lr().txq
	for i := q.find(a); i < q.n; i++ {
		s := q.at(i)
		if !s.start.LessThan(b) {
			break
		}
		if s.has(txSACKed) || s.start.LessThan(a) || s.end.GreaterThan(b) {
			continue // partly SACKed: it still has a hole
		}
		if s.has(txLost) {
			q.lostBytes -= int(s.start.Size(s.end))
		}
		s.flags = s.flags&^txLost | txSACKed
		c.rateDelivered(now, s, int(s.start.Size(s.end)))
		if c.rackOn() {
			c.rackDelivered(now, s, seg)
		}
	}
}

// txAcked drops the records SND.UNA = una has acknowledged, feeding the
// ones not SACKed before to RACK.
func (c *Conn) txAcked(now time.Time, seg *Segment, una seqnum.Value) {
	q := &c.lr().txq
	for q.n > 0 {
		s := q.at(0)
		if s.end.GreaterThan(una) {
			if s.start.LessThan(una) {
				if !s.has(txSACKed) {
					c.rateDelivered(now, s, int(s.start.Size(una)))
				}
				if s.has(txLost) {
					q.lostBytes -= int(s.start.Size(una))
				}
				s.start = una
			}
			break
		}
		if s.has(txLost) {
			q.lostBytes -= int(s.start.Size(s.end))
		}
		if !s.has(txSACKed) {
			c.rateDelivered(now, s, int(s.start.Size(s.end)))
			if c.rackOn() {
				c.rackDelivered(now, s, seg)
			}
		}
		q.head = (q.head + 1) % len(q.s)
		q.n--
	}
	if q.n == 0 {
		q.head, q.highRtxEnd = 0, una
		if len(q.s) > txShrink {
			q.s = nil // a drained flight gives a large ring back
		}
	}
}

// rackReoWnd is RFC 8985 section 6.2 step 4, RACK_update_reo_wnd.
func (c *Conn) rackReoWnd() time.Duration {
	r := &c.lr().rack
	if !r.reordering {
		if c.snd.inRecovery || c.lr().sb.sacked >= dupThresh*c.mss {
			return 0
		}
	}
	w := time.Duration(max(r.reoWndMult, 1)) * r.minRTT / 4
	if c.rtt.measured {
		w = min(w, c.rtt.srtt)
	}
	return w
}

// rackDSACK is the D-SACK half of step 4: the reordering window grows by
// min_RTT/4 for each round trip that brings a D-SACK, and stays grown
// for rackReoPersist recoveries.
func (c *Conn) rackDSACK() {
	r := &c.lr().rack
	if r.inDSACKRound && c.snd.una.GreaterThanEq(r.dsackRound) {
		r.inDSACKRound = false
	}
	if !r.inDSACKRound {
		r.inDSACKRound, r.dsackRound = true, c.snd.max
		r.reoWndMult = max(r.reoWndMult, 1) + 1
		r.reoPersist = rackReoPersist
	}
}

// rackRecoveryEnded is step 4's "exiting Fast or RTO recovery".
func (c *Conn) rackRecoveryEnded() {
	r := &c.lr().rack
	r.reoPersist--
	if r.reoPersist <= 0 {
		r.reoWndMult = 1
	}
}

// rackDetectLoss is RFC 8985 section 6.2 step 5: every segment sent before
// RACK's reference and not delivered, whose time is up by RACK.rtt plus the
// reordering window, is lost. It returns how long until the next one's
// time is up (0 for none): the reordering timer (section 6.3).
func (c *Conn) rackDetectLoss(now time.Time) time.Duration {
	r := &c.lr().rack
	q := &c.lr().txq
	if r.xmit.IsZero() {
		return 0
	}
	reo := c.rackReoWnd()
	var timeout time.Duration
	for i := 0; i < q.n; i++ {
		s := q.at(i)
		if s.has(txSACKed) || s.has(txLost) {
			continue
		}
		after := !sentAfter(r.order, s.order) // the reference itself, or sent after it (txQueue.stamp)
		if after {
			if !s.has(txRetrans) && !s.start.LessThan(r.end) && !s.start.LessThan(q.highRtxEnd) {
				// Records never resent are in time order: the rest
				// were sent later still (resent ones lie below
				// highRtxEnd).
				break
			}
			continue
		}
		remaining := s.xmit.Add(r.rtt + reo).Sub(now)
		if remaining <= 0 {
			s.flags |= txLost
			q.lostBytes += int(s.start.Size(s.end))
			c.rateLost(now, s, int(s.start.Size(s.end)))
			c.cold().RACKLosses++
		} else {
			timeout = max(timeout, remaining)
		}
	}
	return timeout
}

// rackOnAck runs RACK after an ACK has been processed (RFC 8985 section
// 6.2 step 4 and 5; the per-segment steps ran as the ACK was taken), arms
// the reordering timer, and tends the TLP episode (section 7.4).
func (c *Conn) rackOnAck(now time.Time, seg *Segment) {
	if c.snd.loss == nil {
		// Nothing sent, SACKed or probed yet: no D-SACK, no TLP episode,
		// no reference segment, so no loss and no timer.
		c.tm.reo = time.Time{}
		return
	}
	if c.lr().su.dsack {
		c.rackDSACK()
	}
	c.tlpOnAck(now, seg)
	c.rackLossTimer(now)
}

// rackLossTimer detects losses and (re)arms or stops the reordering timer.
func (c *Conn) rackLossTimer(now time.Time) {
	if t := c.rackDetectLoss(now); t > 0 {
		c.tm.reo = now.Add(t)
	} else {
		c.tm.reo = time.Time{}
	}
}

// reorderTimeout is the RACK reordering timer (RFC 8985 section 6.3):
// detect losses again, and recover if there are any.
func (c *Conn) reorderTimeout(now time.Time) {
	if !c.state.Synchronized() || c.snd.una == c.snd.max || !c.rackOn() {
		return
	}
	c.rackLossTimer(now)
	if c.lr().txq.lostBytes > 0 && !c.snd.inRecovery && c.mayRecover() {
		c.enterSACKRecovery(now, 0)
	}
	c.output(now)
}

// armTLP schedules a Tail Loss Probe (RFC 8985 section 7.2): PTO = 2*SRTT
// (plus the worst-case delayed ACK when one segment is in flight; 1 s
// before any RTT sample), no later than the retransmission timer: when the
// RTO would come first, the probe is scheduled at the RTO's time
// (TLP_calc_PTO) and HandleTimers sends it instead of the timeout. With
// MinRTO 200 ms that is every path of 100 ms RTT or more (RTTVAR shrinks
// on a steady path, so RTO = 200 ms = 2*SRTT): dropping the probe there,
// as before, left every lost tail to a timeout and a window of one
// segment.
func (c *Conn) armTLP(now time.Time) {
	r := &c.lr().rack
	if !c.rackOn() || c.snd.inRecovery || r.tlpActive || c.snd.una == c.snd.max ||
		c.snd.retransmits > 0 || !c.state.Synchronized() {
		c.tm.tlp = time.Time{}
		return
	}
	pto := time.Second
	if c.rtt.measured {
		pto = max(2*c.rtt.srtt, minPTO)
		if int(c.snd.una.Size(c.snd.max)) <= c.mss {
			pto += wcDelAckT
		}
	}
	at := now.Add(pto)
	if !c.tm.rtx.IsZero() && at.After(c.tm.rtx) {
		at = c.tm.rtx // "PTO = TCP_RTO_expiration() - Now()"
	}
	c.tm.tlp = at
}

// tlpTimeout sends the probe (RFC 8985 section 7.3): new data if the
// receive window has room, else the last segment again.
func (c *Conn) tlpTimeout(now time.Time) {
	r := &c.lr().rack
	if !c.state.Synchronized() || c.snd.una == c.snd.max || c.snd.inRecovery || r.tlpActive || !c.rackOn() {
		return
	}
	sent := false
	if c.unsent() > 0 && c.snd.nxt == c.snd.max && c.snd.una.Size(c.snd.max) < seqnum.Size(c.snd.wnd) {
		c.snd.override = true // one segment, whatever cwnd and Nagle say
		saved := c.snd.tlpSending
		c.snd.tlpSending = true
		sent = c.sendOneSegment(now)
		c.snd.tlpSending = saved
		c.snd.override = false
		r.tlpRetrans = false
	}
	if !sent {
		q := &c.lr().txq
		if q.n == 0 {
			return
		}
		last := q.at(q.n - 1)
		start := seqnum.Max(last.start, last.end.Sub(seqnum.Size(c.mss)))
		if c.sendRange(now, start, int(start.Size(last.end))) == 0 {
			return
		}
		r.tlpRetrans = true
		r.tlpTSVal, r.tlpTSSet = c.out.Options.TSVal, c.out.Options.HasTimestamps
	}
	r.tlpActive, r.tlpEnd = true, c.snd.max
	c.cold().TLPProbes++
	c.armRTX(now) // section 7.3: the RTO runs from the probe
}

// tlpOnAck is RFC 8985 section 7.4: once an ACK covers the probe, the
// episode ends; if the probe was a retransmission that repaired a loss
// (no D-SACK says the original arrived too), the congestion window must
// still be reduced as after a fast recovery.
func (c *Conn) tlpOnAck(now time.Time, seg *Segment) {
	r := &c.lr().rack
	if !r.tlpActive {
		return
	}
	if c.lr().su.dsack && r.tlpRetrans && c.lr().su.dsackEnd == r.tlpEnd {
		r.tlpActive = false // section 7.4.2: both copies arrived; no loss
		return
	}
	if seg.Ack.LessThan(r.tlpEnd) {
		return
	}
	r.tlpActive = false
	if o := &seg.Options; r.tlpRetrans && r.tlpTSSet && c.tsOK && o.HasTimestamps && o.TSEcr != 0 && int32(o.TSEcr-r.tlpTSVal) < 0 {
		// The ACK echoes a transmission before the probe: the original
		// arrived, nothing was lost (Eifel, as for D-SACK in 7.4.2).
		return
	}
	if r.tlpRetrans && !c.snd.inRecovery {
		c.cold().TLPRecoveries++
		flight := int(c.snd.una.Size(c.snd.max)) + c.mss
		c.cc.OnFastRetransmit(now, flight)
		c.cc.OnRecoveryEnd(now, c.pipe())
		c.ecnWindowReduced()
	}
}

package tcp

import (
	"math"
	"time"

	"github.com/synack/synack/seqnum"
)

// This file is delivery-rate estimation as
// draft-cheng-iccrg-delivery-rate-estimation describes it: every
// transmission records how much the connection had delivered, and when,
// at the time it left; every ACK turns the most recently sent segment it
// delivers (cumulatively or by SACK) into a rate sample: the bytes
// delivered between that segment's send and its delivery, over the longer
// of the send and the ACK intervals. BBR (bbr.go) builds its model from
// the samples; Info reports the latest.
//
// The per-segment state lives in the transmit queue's records (rack.go),
// which are kept when the peer SACKs. Without SACK there are no records,
// and the connection falls back to one coarse sample per round trip
// (deliveryRound, ccreg.go).

// RateSample is one delivery-rate sample (the draft's section 3.3, with
// BBRv3's tx_in_flight and lost).
type RateSample struct {
	// DeliveryRate is Delivered/Interval in bytes per second, 0 when the
	// ACK gave no valid sample (nothing delivered, or an interval shorter
	// than the minimum RTT, which the draft discards as ACK compression).
	DeliveryRate int64
	// Delivered is the bytes delivered over Interval; Interval is
	// max(send_elapsed, ack_elapsed).
	Delivered int64
	Interval  time.Duration
	// PriorDelivered is the connection's delivered count when the
	// sampled segment was sent: rounds are counted from it (BBR's
	// next_round_delivered).
	PriorDelivered uint64
	// TotalDelivered is the connection's delivered count after this ACK
	// (the draft's C.delivered), in bytes.
	TotalDelivered uint64
	// NewlyAcked is the bytes this ACK delivered, cumulatively or by SACK;
	// NewlyLost the bytes marked lost since the previous ACK.
	NewlyAcked, NewlyLost int
	// TxInFlight is the bytes in flight when the sampled segment was
	// sent, itself included; Lost the bytes marked lost between its send
	// and this ACK (BBRv3's rs.tx_in_flight and rs.lost).
	TxInFlight int
	Lost       int
	// InFlight is the bytes in the network after this ACK (RFC 6675's
	// pipe, BBR's C.inflight).
	InFlight int
	// AppLimited says the sampled segment was sent while the application,
	// not the network, limited the sending: the rate may be low for that.
	AppLimited bool
	// RTT is now minus the sampled segment's transmit time, 0 when it
	// was resent (Karn's rule).
	RTT time.Duration
}

// rateSampler is the connection's side of the draft (its C.* variables)
// and the sample being built from the current ACK.
type rateSampler struct {
	delivered     uint64    // C.delivered: bytes delivered so far
	deliveredTime time.Time // C.delivered_time
	firstSendTime time.Time // C.first_send_time
	appLimited    uint64    // C.app_limited: 0, or the delivered count at which the app-limited phase ends
	lost          uint64    // bytes ever marked lost (BBRv3's C.lost)
	lostAtAck     uint64    // lost at the previous ACK, for NewlyLost

	// The segment of the current ACK the sample is taken from (the
	// draft's rs.prior_*, send_elapsed, ack_elapsed).
	have         bool
	prior        uint64
	sendElapsed  time.Duration
	ackElapsed   time.Duration
	newly        int
	sample       RateSample // what the current ACK's sample holds so far
	last         RateSample // the sample of the latest ACK
	reportedRate int64      // Info's delivery rate: the latest sample not app-limited, or higher
}

// Per-segment send state (the draft's section 3.2), kept in txSeg. The
// two times are kept as how long before the segment's transmit time they
// were (both are at or before it), 8 bytes each instead of a time.Time's
// 24: every segment in flight has one.
type txRate struct {
	delivered  uint64        // C.delivered when sent
	lost       uint64        // C.lost when sent
	dAge       time.Duration // xmit - C.delivered_time
	fAge       time.Duration // xmit - C.first_send_time
	txInFlight int32
	appLimited bool
}

// txSent records the transmission of [start, end) at now in the transmit
// queue, with its delivery-rate state. highest is SND.MAX before it.
func (c *Conn) txSent(start, end seqnum.Value, now time.Time, highest seqnum.Value) {
	q := &c.lr().txq
	r := &c.rates().rs
	// The draft's "if no packets in flight": the sending restarts, and
	// the intervals of its samples start now.
	if c.snd.una == highest || q.n == 0 {
		r.firstSendTime, r.deliveredTime = now, now
	}
	q.sent(start, end, now, highest, c.txLimit())
	inflight := max(int(c.snd.una.Size(seqnum.Max(highest, end)))-c.lr().sb.sacked-q.lostBytes, int(start.Size(end)))
	st := txRate{
		delivered: r.delivered, dAge: now.Sub(r.deliveredTime), fAge: now.Sub(r.firstSendTime),
		lost: r.lost, txInFlight: int32(min(inflight, math.MaxInt32)), appLimited: r.appLimited != 0,
	}
	for i := q.find(start); i < q.n; i++ {
		s := q.at(i)
		if !s.start.LessThan(end) {
			break
		}
		s.rate = st
	}
}

// rateDelivered is the draft's UpdateRateSample for n bytes of the
// record s the current ACK delivered, cumulatively or by SACK, and not
// before: the whole record, or the part a cumulative ACK covers of one
// it ends inside. A record holds more than one segment when the transmit
// queue is full (maxTxSegs: a flight of over 4096 segments, as at 1
// Gbit/s x 100 ms) or the peer acknowledges inside a segment; the bytes
// of each part must count in C.delivered when they are delivered, or
// every later sample reads low (issue 11: BBR's samples at 1 Gbit/s read
// 4095 segments per round trip, whatever the path carried).
func (c *Conn) rateDelivered(now time.Time, s *txSeg, n int) {
	r := &c.rates().rs
	r.delivered += uint64(n)
	r.deliveredTime = now
	r.newly += n
	// The most recently sent of the segments delivered gives the sample:
	// it has the freshest picture of the path.
	if !r.have || s.rate.delivered >= r.prior {
		r.have = true
		r.prior = s.rate.delivered
		r.sendElapsed = s.rate.fAge // xmit - first_send_time
		r.ackElapsed = now.Sub(s.xmit.Add(-s.rate.dAge))
		r.firstSendTime = s.xmit
		r.sample.TxInFlight = int(s.rate.txInFlight)
		r.sample.Lost = int(r.lost - s.rate.lost)
		r.sample.AppLimited = s.rate.appLimited
		r.sample.RTT = 0
		if !s.has(txRetrans) && n == int(s.start.Size(s.end)) {
			// Karn: which transmission a resent segment's delivery
			// answers is unknown. Nor is a part's RTT known: a record's
			// transmit time is its newest segment's (a full queue
			// stamps the newest record anew with each segment it
			// takes), and a part sent earlier would give an RTT below
			// the path's (BBR's min RTT fell to 99.85 ms on a 100 ms
			// path with it).
			r.sample.RTT = now.Sub(s.xmit)
		}
	}
}

// rateGenerate is the draft's GenerateRateSample, run once per ACK after
// its deliveries were counted: it finishes the sample and starts the next.
func (c *Conn) rateGenerate() {
	r := &c.rates().rs
	if r.appLimited != 0 && r.delivered > r.appLimited {
		r.appLimited = 0 // the app-limited phase's data is all delivered
	}
	rs := r.sample
	rs.NewlyAcked = r.newly
	rs.NewlyLost = int(r.lost - r.lostAtAck)
	rs.TotalDelivered = r.delivered
	rs.PriorDelivered = r.prior
	r.lostAtAck = r.lost
	if r.have {
		rs.Interval = max(r.sendElapsed, r.ackElapsed)
		rs.Delivered = int64(r.delivered - r.prior)
		// Section 3.3: an interval shorter than the minimum RTT comes from
		// compressed ACKs and would overstate the rate.
		if rs.Interval > 0 && rs.Interval >= c.rtt.min {
			rs.DeliveryRate = int64(float64(rs.Delivered) / rs.Interval.Seconds())
		}
	}
	if rs.DeliveryRate > 0 && (!rs.AppLimited || rs.DeliveryRate >= r.reportedRate) {
		// Like Linux's tcpi_delivery_rate: an app-limited sample only
		// when it shows more than the last one.
		r.reportedRate = rs.DeliveryRate
	}
	r.last = rs
	r.have, r.newly, r.sample = false, 0, RateSample{}
}

// lostPacket is what a controller learns of one segment record marked
// lost: its send state (the draft's P.tx_in_flight, P.lost,
// P.is_app_limited) and the connection's counts now.
type lostPacket struct {
	// Size is the bytes newly marked lost.
	Size int
	// TxInFlight is the bytes in flight when the record was sent, itself
	// included; Lost the bytes marked lost since it was sent, this
	// record's included (C.lost - P.lost).
	TxInFlight, Lost int
	AppLimited       bool
	// PriorDelivered is C.delivered when the record was sent;
	// TotalDelivered is C.delivered now.
	PriorDelivered, TotalDelivered uint64
}

// lossObserver is a controller told of every segment record marked lost
// (BBR's HandleLostPacket, draft-ietf-ccwg-bbr-06 section 5.5.10.2), with the record's own send state: an ACK's rate sample
// describes the segment it delivered, often sent later at a smaller
// flight than the one that suffered the loss.
type lossObserver interface {
	onPacketLost(now time.Time, p lostPacket)
}

// rateLost counts the n bytes of record s newly marked lost at now and
// tells a lossObserver controller.
func (c *Conn) rateLost(now time.Time, s *txSeg, n int) {
	r := &c.rates().rs
	r.lost += uint64(n)
	if o, ok := c.cc.(lossObserver); ok {
		o.onPacketLost(now, lostPacket{
			Size: n, TxInFlight: int(s.rate.txInFlight), Lost: int(r.lost - s.rate.lost),
			AppLimited: s.rate.appLimited, PriorDelivered: s.rate.delivered, TotalDelivered: r.delivered,
		})
	}
}

// rateCheckAppLimited is the draft's CheckIfApplicationLimited, run when
// the output loop has stopped: if it stopped because the application
// gave no more data (less than a segment unsent, nothing lost waiting to
// be resent, and room left in the window), the samples of what is in
// flight now are marked app-limited until it is delivered.
func (c *Conn) rateCheckAppLimited() {
	if !c.sackOK || c.cc == nil || c.rt == nil {
		return // no rate state yet: rates() makes it marked app-limited
	}
	if c.unsent() >= c.mss || c.lostBytes() > 0 || c.snd.nxt != c.snd.max {
		return
	}
	pipe := int(c.snd.una.Size(c.snd.max)) - c.sackedBytes()
	if pipe >= c.cc.Window() {
		return
	}
	r := &c.rates().rs
	r.appLimited = max(r.delivered+uint64(pipe), 1)
}

// rateSample is the sample of the latest ACK for the controller. Without
// SACK it is the coarse one of the round trip that just ended, if one
// did.
func (c *Conn) rateSample() RateSample {
	if c.sackOK {
		var rs RateSample
		if c.rt != nil {
			rs = c.rt.rs.last
		}
		rs.InFlight = max(int(c.snd.una.Size(c.snd.max))-c.sackedBytes()-c.lostBytes(), 0)
		return rs
	}
	return RateSample{InFlight: int(c.snd.una.Size(c.snd.max))}
}

// deliveryRate is the rate Info reports.
func (c *Conn) deliveryRate() int64 {
	if c.rt == nil {
		return 0
	}
	if c.sackOK {
		return c.rt.rs.reportedRate
	}
	return c.rt.dr.rate
}

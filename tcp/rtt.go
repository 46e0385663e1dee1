package tcp

import "time"

// rttEstimator computes the retransmission timeout of RFC 6298.
type rttEstimator struct {
	srtt, rttvar time.Duration
	latest, min  time.Duration // the latest sample and the least one
	fresh        bool          // latest came from the ACK being processed
	rto          time.Duration
	measured     bool
	backoff      int // exponential backoff shifts applied to rto (RFC 6298 5.5)
	minRTO       time.Duration
	maxRTO       time.Duration
}

func (e *rttEstimator) init(cfg *Config) {
	e.rto = cfg.initialRTO() // RFC 6298 2.1
	e.minRTO = cfg.minRTO()
	e.maxRTO = cfg.maxRTO()
}

// sample folds in one RTT measurement (RFC 6298 section 2.2 and 2.3; K = 4,
// alpha = 1/8, beta = 1/4). Callers follow Karn's rule (section 3): no
// sample is taken from a retransmitted segment, unless timestamps say which
// transmission the ACK answers (RFC 7323 section 4).
func (e *rttEstimator) sample(r time.Duration) {
	if r <= 0 {
		r = time.Microsecond
	}
	e.latest, e.fresh = r, true
	if !e.measured || r < e.min {
		e.min = r
	}
	if !e.measured {
		e.srtt = r
		e.rttvar = r / 2
		e.measured = true
	} else {
		d := e.srtt - r
		if d < 0 {
			d = -d
		}
		e.rttvar = (3*e.rttvar + d) / 4
		e.srtt = (7*e.srtt + r) / 8
	}
	// RFC 6298 2.3: RTO = SRTT + max(G, K*RTTVAR); our clock granularity G
	// is as fine as the caller's time, so the max is K*RTTVAR.
	e.rto = e.srtt + 4*e.rttvar
	e.backoff = 0 // a new sample ends the backoff (RFC 6298 5.7 note)
}

// current is the RTO to arm now: clamped to [minRTO, maxRTO] (RFC 6298 2.4,
// 2.5) and doubled for every timeout since the last sample (5.5).
func (e *rttEstimator) current() time.Duration { return e.withBackoff(e.backoff) }

// withBackoff is the clamped RTO doubled n times: the persist timer backs
// off on its own count.
func (e *rttEstimator) withBackoff(n int) time.Duration {
	r := e.rto
	if r < e.minRTO {
		r = e.minRTO
	}
	for i := 0; i < n && r < e.maxRTO; i++ {
		r *= 2
	}
	if r > e.maxRTO {
		r = e.maxRTO
	}
	return r
}

// stampRetransmission notes that s, a segment sent again (after a timeout,
// a fast retransmit, go-back-N or a repeated probe), went out: its TSval
// is the retransmission stamp that tsSample compares echoes against.
func (c *Conn) stampRetransmission(s *Segment) {
	if s.Options.HasTimestamps { // a SYN carries them before they are agreed
		c.snd.rtxTSVal, c.snd.rtxStamped = s.Options.TSVal, true
	}
}

// tsSample takes an RTT sample from the TSecr of seg, an ACK that moved
// SND.UNA (RFC 7323 section 4.1), and reports whether it did.
//
// Karn's rule (RFC 6298 section 3) applied to timestamps: an echo older
// than the latest retransmission does not time the transmission the ACK
// answers. It comes, for instance, from a receiver that already had the
// data (our ACK was lost): the retransmission is unacceptable to it, so
// its TSval does not become TS.Recent (RFC 7323 section 4.3) and the ACK
// echoes the first transmission's; now - TSecr would then include the
// whole RTO wait, and the RTO would feed on itself up to MaxRTO (issue
// 10). Linux keeps the same guard with its retransmission stamp.
func (c *Conn) tsSample(now time.Time, seg *Segment) bool {
	o := &seg.Options
	if !c.tsOK || !o.HasTimestamps || o.TSEcr == 0 {
		return false
	}
	if c.snd.rtxStamped && int32(o.TSEcr-c.snd.rtxTSVal) < 0 {
		return false
	}
	ms := c.tsNow(now) - o.TSEcr
	if int32(ms) < 0 {
		return false
	}
	c.rtt.sample(time.Duration(ms) * time.Millisecond)
	c.stats.TimestampRTTSamples++
	return true
}

// clearRetransmissionStamp forgets the stamp once everything sent is
// acknowledged: later echoes answer transmissions made after it.
func (c *Conn) clearRetransmissionStamp() {
	if c.snd.una == c.snd.max {
		c.snd.rtxStamped = false
	}
}

package tcp

import "time"

// This file is pacing: segments leave no faster than a rate, spread over
// the round trip instead of in bursts at line rate, as Linux's fq qdisc
// (or its internal pacing) does for TCP. The core stays pure: the output
// loop asks paceAllows before each data segment, and when one is not due
// yet it stops and leaves the release time in the pace deadline, which
// the runtime's one timer per connection (Deadline) fires at.
//
// The rate is the controller's when it has one (Pacer: BBR), else, with
// Config.Pacing, Linux's for a window-based controller: 2*cwnd/SRTT in
// slow start, 1.2*cwnd/SRTT after (tcp_update_pacing_rate's
// sysctl_tcp_pacing_ss_ratio and _ca_ratio).
//
// A token bucket lets a small burst go at once, so that at Gbit/s rates
// a timer need not fire per segment and a timer that fires late loses no
// rate: the bucket holds up to paceBurst worth of bytes.

// Pacer is a Congestion that sets its own pacing rate (BBR). A connection
// whose controller is a Pacer is always paced at that rate.
type Pacer interface {
	// PacingRate is the rate in bytes per second, 0 for none yet.
	PacingRate() int64
}

// paceBurstTime is how much sending time the bucket holds: about a
// millisecond, the granularity a runtime timer keeps.
const paceBurstTime = time.Millisecond

// paceMaxBurst bounds the bucket in bytes, as Linux bounds a TSO burst.
const paceMaxBurst = 64 << 10

// paceMaxLate bounds the credit a late timer makes up for.
const paceMaxLate = 10 * time.Millisecond

// pacer is the token bucket.
type pacer struct {
	tokens int64     // bytes of credit; a segment needs an MSS of it
	last   time.Time // when tokens was last brought up to date
	due    time.Time // the release time last asked for, zero when none
}

// pacingRate is the rate the connection sends at, 0 when unpaced.
func (c *Conn) pacingRate() int64 {
	if c.cc == nil {
		return 0
	}
	if p, ok := c.cc.(Pacer); ok {
		return p.PacingRate()
	}
	if !c.cfg.Pacing || c.rtt.srtt <= 0 {
		return 0
	}
	cwnd := float64(c.cc.Window())
	ratio := 1.2
	if c.cc.Window() < c.cc.SlowStartThreshold() {
		ratio = 2
	}
	return int64(ratio * cwnd / c.rtt.srtt.Seconds())
}

// paceBurst is the bucket's size at rate: a millisecond's worth, at
// least two segments, at most paceMaxBurst.
func (c *Conn) paceBurst(rate int64) int64 {
	b := int64(float64(rate) * paceBurstTime.Seconds())
	return min(max(b, int64(2*c.mss)), max(paceMaxBurst, int64(2*c.mss)))
}

// paceAllows reports whether a data segment may leave at now. If not, it
// sets the pace deadline to when one may.
func (c *Conn) paceAllows(now time.Time) bool {
	rate := c.pacingRate()
	if rate <= 0 {
		c.tm.pace = time.Time{}
		return true
	}
	p := &c.rates().pace
	burst := c.paceBurst(rate)
	if p.last.IsZero() {
		p.tokens = burst // a fresh start may send a burst
	} else if el := now.Sub(p.last); el > 0 {
		// A runtime timer fires late, by milliseconds on a loaded
		// machine: what it owed since the release time is credit the
		// bucket keeps beyond its size (up to paceMaxLate), or the rate
		// would fall with every late wake-up.
		limit := burst
		if !p.due.IsZero() && now.After(p.due) {
			limit += int64(float64(rate) * min(now.Sub(p.due), paceMaxLate).Seconds())
		}
		p.tokens = min(p.tokens+int64(float64(rate)*el.Seconds()), max(limit, p.tokens))
	}
	p.last, p.due = now, time.Time{}
	// A segment goes when the bucket holds a full one's worth.
	need := int64(c.mss) - p.tokens
	if need <= 0 {
		c.tm.pace = time.Time{}
		return true
	}
	// Due when it does, rounded up to the next nanosecond.
	wait := time.Duration(float64(need)/float64(rate)*1e9) + 1
	c.tm.pace = now.Add(wait)
	p.due = c.tm.pace
	return false
}

// paceSent charges the bucket for n bytes of data sent.
func (c *Conn) paceSent(n int) {
	if n > 0 && c.rt != nil && !c.rt.pace.last.IsZero() {
		c.rt.pace.tokens -= int64(n)
	}
}

// paceRoom is how many bytes may leave at once after paceAllows let one
// segment go: the bucket's credit (at least an MSS), or limit when the
// connection is not paced. A super-segment (gso.go) takes no more.
func (c *Conn) paceRoom(limit int) int {
	if c.rt == nil || c.rt.pace.last.IsZero() || c.pacingRate() <= 0 {
		return limit
	}
	return int(min(max(c.rt.pace.tokens, int64(c.mss)), int64(limit)))
}

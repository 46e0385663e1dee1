package tcp

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/synack/synack/seqnum"
)

// DefaultCongestionControl is the controller of a connection whose Config
// names none: CUBIC (RFC 9438) with HyStart++ (RFC 9406), as on Linux.
const DefaultCongestionControl = "cubic"

// ErrUnknownCongestionControl is wrapped by the error for a congestion
// control name that is not registered.
var ErrUnknownCongestionControl = errors.New("unknown congestion control")

// congestionControls is the registry of controllers by name, as Linux's
// net.ipv4.tcp_available_congestion_control.
var congestionControls = []struct {
	name string
	new  func(mss int) Congestion
}{
	{"cubic", NewCubic},
	{"newreno", NewNewReno},
	{"bbr", NewBBR},
}

// CongestionControls returns the names of the registered controllers.
func CongestionControls() []string {
	names := make([]string, len(congestionControls))
	for i, r := range congestionControls {
		names[i] = r.name
	}
	return names
}

// lookupCongestion returns the constructor registered under name ("" is
// the default).
func lookupCongestion(name string) (func(mss int) Congestion, error) {
	if name == "" {
		name = DefaultCongestionControl
	}
	for _, r := range congestionControls {
		if r.name == name {
			return r.new, nil
		}
	}
	return nil, fmt.Errorf("%w %q (registered: %s)", ErrUnknownCongestionControl, name, strings.Join(CongestionControls(), ", "))
}

// Validate reports a Config no connection can run with: for now, a
// CongestionControl that names no registered controller (when
// NewCongestion is not set, which would take precedence). Connect and
// Listen return its error; stacks check it when they are made.
func (c *Config) Validate() error {
	if c.NewCongestion != nil {
		return nil
	}
	_, err := lookupCongestion(c.CongestionControl)
	return err
}

// newCongestion makes a connection's congestion controller: NewCongestion
// if set, else the one CongestionControl names. A name that Validate
// rejects never gets here through Connect or Listen; should one come by
// another way, the default is used.
func (c *Config) newCongestion(mss int) Congestion {
	if c.NewCongestion != nil {
		return c.NewCongestion(mss)
	}
	f, err := lookupCongestion(c.CongestionControl)
	if err != nil {
		f = NewCubic
	}
	return f(mss)
}

// makeCongestion makes the controller of c: the one SetCongestionControl
// chose, else the Config's. A built-in controller c already has (the one
// made for an earlier MSS of the handshake) or kept from a previous
// connection (Reset) is made anew in place, without allocating: reinit
// leaves it exactly as its constructor makes it, and nothing else refers
// to it.
func (c *Conn) makeCongestion(mss int) Congestion {
	name := c.ccName
	if name == "" {
		if c.cfg.NewCongestion != nil {
			return c.cfg.NewCongestion(mss)
		}
		name = c.cfg.CongestionControl
	}
	if name == "" {
		name = DefaultCongestionControl
	}
	f, err := lookupCongestion(name)
	if err != nil {
		// As Config.newCongestion: a name Validate rejects never gets
		// here through Connect or Listen.
		f, name = NewCubic, "cubic"
	}
	old := c.cc
	if old == nil && c.spare != nil {
		old, c.spare.cc = c.spare.cc, nil
	}
	if r, ok := old.(reiniter); ok && old.Name() == name {
		r.reinit(mss)
		return old
	}
	return f(mss)
}

// reiniter is a built-in controller that can be made anew in place.
type reiniter interface {
	Congestion
	// reinit leaves the controller as its constructor makes it for mss.
	reinit(mss int)
}

// windowSetter is a controller that can take over the window of another.
type windowSetter interface{ setWindow(cwnd, ssthresh int) }

// SetCongestionControl changes the congestion controller of c to the one
// registered under name, as Linux's TCP_CONGESTION socket option: the new
// controller starts from the current cwnd and ssthresh. An unknown name
// is an error naming the registered ones, and changes nothing.
func (c *Conn) SetCongestionControl(name string) error {
	f, err := lookupCongestion(name)
	if err != nil {
		return err
	}
	c.ccName = name
	if name == "" {
		c.ccName = DefaultCongestionControl
	}
	if c.cc == nil {
		return nil
	}
	n := f(c.mss)
	if s, ok := n.(windowSetter); ok {
		s.setWindow(c.cc.Window(), c.cc.SlowStartThreshold())
	}
	c.cc = n
	return nil
}

// ccAck builds what the controller learns from an ACK that acknowledged
// acked new bytes, and measures the delivery rate.
func (c *Conn) ccAck(now time.Time, acked int) Ack {
	a := Ack{
		Acked: acked, Flight: int(c.snd.una.Size(c.snd.max)),
		Una: c.snd.una, Next: c.snd.max,
		SRTT: c.rtt.srtt, MinRTT: c.rtt.min,
		ECE: c.ecn.eceACK, Paced: c.pacingRate() > 0,
	}
	if c.rtt.fresh {
		a.RTT = c.rtt.latest
	}
	ended := c.measureDelivery(now)
	a.Rate = c.rateSample()
	if !c.sackOK {
		a.Rate.NewlyAcked = acked
		a.Rate.TotalDelivered = c.stats.BytesAcked
		if ended {
			// The coarse sample of the round trip that just ended: only
			// this ACK starts a round for a controller that counts them.
			d := &c.rates().dr
			r := d.last
			a.Rate.DeliveryRate, a.Rate.Delivered, a.Rate.Interval = d.rate, r.delivered, r.interval
			a.Rate.PriorDelivered = r.prior
		}
	}
	return a
}

// congestionObserve tells an AckObserver of the ACK just processed; una
// is SND.UNA before it.
func (c *Conn) congestionObserve(now time.Time, una seqnum.Value) {
	o, ok := c.cc.(AckObserver)
	if !ok {
		return
	}
	acked := 0
	if c.snd.una.GreaterThan(una) {
		acked = int(una.Size(c.snd.una))
	}
	o.OnEveryAck(now, c.ccAck(now, acked))
}

// congestionOnAck tells the controller of an ACK outside recovery.
func (c *Conn) congestionOnAck(now time.Time, acked int) {
	if _, ok := c.cc.(AckObserver); ok {
		return // told of this ACK by congestionObserve, once
	}
	c.cc.OnAck(now, c.ccAck(now, acked))
}

// deliveryRound measures the delivery rate over one round trip: the bytes
// acknowledged cumulatively between the ACK that started it and the one
// that covers what was sent when it started, over the time between them.
// It is the rate Info reports (Linux's tcpi_delivery_rate, measured more
// coarsely).
type deliveryRound struct {
	started   bool
	start     time.Time
	end       uint64 // Stats.BytesAcked at which the round ends
	delivered uint64
	rate      int64 // bytes per second of the last complete round
	last      struct {
		prior     uint64 // delivered when it started
		delivered int64
		interval  time.Duration
	}
}

// measureDelivery runs on every ACK that acknowledged new data, and
// reports whether a round ended.
func (c *Conn) measureDelivery(now time.Time) bool {
	d := &c.rates().dr
	if d.started && c.stats.BytesAcked < d.end {
		return false
	}
	ended := false
	if d.started {
		if el := now.Sub(d.start); el > 0 {
			d.rate = int64(float64(c.stats.BytesAcked-d.delivered) / el.Seconds())
			d.last.prior, d.last.delivered, d.last.interval = d.delivered, int64(c.stats.BytesAcked-d.delivered), el
			ended = true
		}
	}
	// The next round ends once what is outstanding now is acknowledged.
	d.started, d.start, d.delivered = true, now, c.stats.BytesAcked
	d.end = c.stats.BytesAcked + uint64(c.snd.una.Size(c.snd.max))
	return ended
}

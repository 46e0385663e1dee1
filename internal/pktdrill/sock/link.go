package sock

import (
	"sync"
	"time"

	"github.com/synack/synack/link"
)

// Link is the stack's one network link in a script run: what the stack
// sends is queued, stamped with the virtual time, for the script to check
// (the runner's > lines, the object's netdev_receive); what the script
// injects is delivered to the stack.
type Link struct {
	mtu int
	now func() time.Time

	// Meta, if set, is called for each packet as the stack sends it and
	// its result kept with the packet: the runner parses it there, and
	// learns our ISN from a SYN before the call that sent it returns.
	Meta func(b []byte, at time.Time) any

	mu  sync.Mutex
	d   link.Dispatcher
	out []Packet
}

// Packet is one packet the stack sent.
type Packet struct {
	B    []byte
	At   time.Time
	Meta any // what Link.Meta gave
}

// NewLink makes a link with the MTU that reads the time from now.
func NewLink(mtu int, now func() time.Time) *Link { return &Link{mtu: mtu, now: now} }

func (l *Link) MTU() int                 { return l.mtu }
func (l *Link) Attach(d link.Dispatcher) { l.mu.Lock(); l.d = d; l.mu.Unlock() }
func (l *Link) Close() error             { return nil }

// WritePackets queues what the stack sends (copies: the stack reuses its
// buffers).
func (l *Link) WritePackets(ps [][]byte) (int, error) {
	now := l.now()
	for _, b := range ps {
		p := Packet{B: append([]byte(nil), b...), At: now}
		if l.Meta != nil {
			p.Meta = l.Meta(p.B, now)
		}
		l.mu.Lock()
		l.out = append(l.out, p)
		l.mu.Unlock()
	}
	return len(ps), nil
}

// Deliver hands an injected packet to the stack.
func (l *Link) Deliver(b []byte) {
	l.mu.Lock()
	d := l.d
	l.mu.Unlock()
	if d != nil {
		d.DeliverPacket(b)
	}
}

// Peek is the packet n places from the head of the queue.
func (l *Link) Peek(n int) (Packet, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n >= len(l.out) {
		return Packet{}, false
	}
	return l.out[n], true
}

// Pop takes the packet at the head of the queue.
func (l *Link) Pop() (Packet, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.out) == 0 {
		return Packet{}, false
	}
	p := l.out[0]
	l.out = l.out[1:]
	return p, true
}

package stack

import (
	"errors"
	"net/netip"
	"sync"

	"github.com/synack/synack/link"
)

// Loopback. Every stack has an implicit loopback link, as a kernel has lo:
// it carries what the stack sends to one of its own addresses (a Dial to
// the address of one of its links, UDP to itself, ping to itself), and it
// owns 127.0.0.1/8 and ::1/128 (RFC 1122 section 3.2.1.3, RFC 4291 section
// 2.5.3). Only 127.0.0.1 itself is ours: a packet to another address of
// 127/8 goes out on the loopback link and is dropped there (InAddrErrors),
// where Linux would answer for the whole /8. Packets from our own or
// loopback addresses are accepted on it and nowhere else (martian.go).
//
// The loopback link is not among the links AddLink numbers (its NICID is
// 0), so the NICIDs of added links are what they were before it existed.
//
// The link keeps link/link.go's contract: WritePackets, called under the
// stack's lock, only copies the packets into a bounded queue; a goroutine
// started while the queue has packets (and gone when it is empty, so an
// idle stack has none) delivers them to the stack, taking its lock anew.
// A connection over loopback therefore runs in that goroutine much as it
// runs in a real link's reader.

const (
	// loopMTU is the loopback link's MTU: Linux's lo has 65536, but an
	// IPv4 packet's total length is a 16-bit field.
	loopMTU = 65535
	// loopQueueMax bounds the packets queued on the loopback link, as
	// Linux's net.core.netdev_max_backlog (1000) bounds a CPU's backlog;
	// beyond it WritePackets refuses and the stack counts OutDiscards.
	loopQueueMax = 1000
	// loopFreeMax bounds the buffers kept for reuse while packets flow;
	// loopFreeIdle, those kept once the queue has drained, so an idle
	// stack holds little (DESIGN.md: every buffer shrinks back).
	loopFreeMax  = 256
	loopFreeIdle = 4
)

var (
	loopAddr4 = netip.MustParsePrefix("127.0.0.1/8")
	loopAddr6 = netip.MustParsePrefix("::1/128")

	errLoopFull   = errors.New("stack: loopback queue full")
	errLoopClosed = errors.New("stack: loopback closed")
)

// loopLink is the loopback link.Endpoint.
type loopLink struct {
	mu      sync.Mutex
	d       link.Dispatcher
	q       [][]byte // copies of the packets written, not yet delivered
	free    [][]byte // delivered buffers, for reuse
	running bool     // a deliverer goroutine is on q
	closed  bool
}

var _ link.Endpoint = (*loopLink)(nil)

func (l *loopLink) MTU() int { return loopMTU }

func (l *loopLink) Attach(d link.Dispatcher) {
	l.mu.Lock()
	l.d = d
	l.mu.Unlock()
}

// WritePackets copies pkts into the queue and makes sure a goroutine
// delivers them; it never calls the dispatcher itself.
func (l *loopLink) WritePackets(pkts [][]byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, errLoopClosed
	}
	for i, p := range pkts {
		if len(l.q) >= loopQueueMax {
			l.start()
			return i, errLoopFull
		}
		var b []byte
		if k := len(l.free); k > 0 && cap(l.free[k-1]) >= len(p) {
			b = l.free[k-1][:len(p)]
			l.free = l.free[:k-1]
		} else {
			b = make([]byte, len(p))
		}
		copy(b, p)
		l.q = append(l.q, b)
	}
	l.start()
	return len(pkts), nil
}

// start starts the deliverer unless one runs; l.mu is held.
func (l *loopLink) start() {
	if l.running || l.d == nil || len(l.q) == 0 {
		return
	}
	l.running = true
	go l.deliver()
}

// deliver hands the queue to the dispatcher, batch after batch, until it
// finds the queue empty or the link closed.
func (l *loopLink) deliver() {
	var batch [][]byte
	for {
		l.mu.Lock()
		l.recycle(batch)
		if l.closed || len(l.q) == 0 {
			l.running = false
			if len(l.free) > loopFreeIdle {
				clear(l.free[loopFreeIdle:])
				l.free = l.free[:loopFreeIdle]
			}
			l.mu.Unlock()
			return
		}
		batch, l.q = l.q, batch[:0]
		d := l.d
		l.mu.Unlock()
		if bd, ok := d.(link.BatchDispatcher); ok {
			bd.DeliverPackets(batch)
		} else {
			for _, p := range batch {
				d.DeliverPacket(p)
			}
		}
	}
}

// recycle keeps some of batch's buffers for WritePackets; l.mu is held.
func (l *loopLink) recycle(batch [][]byte) {
	for i, b := range batch {
		if len(l.free) < loopFreeMax {
			l.free = append(l.free, b)
		}
		batch[i] = nil
	}
}

// Close drops what is queued; no delivery starts after it returns.
func (l *loopLink) Close() error {
	l.mu.Lock()
	l.closed = true
	clear(l.q)
	l.q = nil
	l.free = nil
	l.mu.Unlock()
	return nil
}

// newLoopback makes the stack's loopback link and its addresses; New
// calls it before anything else can reach the stack.
func (s *Stack) newLoopback() {
	ep := &loopLink{}
	n := s.newNIC(0, ep)
	n.addrs = []netip.Prefix{loopAddr4, loopAddr6}
	for _, p := range n.addrs {
		s.local[p.Addr()] = n
	}
	s.lo = n
	ep.Attach(n)
}

// loopRoute is the route to dst when it is on the loopback link: one of
// our own addresses (the source is then that address, as in Linux's local
// routing table) or a loopback address.
func (s *Stack) loopRoute(dst netip.Addr) (*nic, netip.Addr, bool) {
	if s.lo == nil {
		return nil, netip.Addr{}, false
	}
	if _, ours := s.local[dst]; ours {
		return s.lo, dst, true
	}
	switch {
	case dst.Is4() && loopAddr4.Contains(dst):
		return s.lo, loopAddr4.Addr(), true
	case dst == loopAddr6.Addr():
		return s.lo, loopAddr6.Addr(), true
	}
	return nil, netip.Addr{}, false
}

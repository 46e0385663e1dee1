package stacktest

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/synack/synack/clock"
	"github.com/synack/synack/link"
	"github.com/synack/synack/link/memlink"
	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/stack"
	"github.com/synack/synack/tcp"
	"github.com/synack/synack/wire"
)

// DefaultTimeout is how long, in virtual time, [Peer.Expect] and
// [Peer.Next] wait for a packet unless Peer.Timeout says otherwise.
const DefaultTimeout = 10 * time.Second

// Peer is the far end of a link to one stack, driven packet by packet: it
// injects hand-built IP packets and TCP segments and reads what the stack
// sends, for segment-level tests of a whole stack (the way packetdrill
// tests a kernel).
type Peer struct {
	// Stack is the stack under test (set by NewPeer; nil after AttachPeer).
	Stack *stack.Stack
	// Clock is a *clock.Virtual unless WithClock gave another.
	Clock clock.Clock
	// Timeout bounds, in virtual time, the waits of Next and Expect.
	Timeout time.Duration

	ep   *memlink.Endpoint
	gate *clock.Gate

	mu  sync.Mutex
	got [][]byte // packets the stack sent, not yet read
}

// NewPeer returns a stack at AddrA (and AddrA6) under a new virtual clock,
// with a Peer at AddrB (AddrB6) on the other end of its link, both closed
// when the test ends. Options for the stack are those of A in [WithStacks];
// the link's are honoured too. Run the test's body with [Peer.Run].
func NewPeer(t testing.TB, opts ...Option) *Peer {
	t.Helper()
	c := newConfig(opts)
	_, epA, eb := c.pipe()
	s, err := c.newStack(c.a, 1, epA, AddrA, AddrA6)
	if err != nil {
		t.Fatal(err)
	}
	p := AttachPeer(eb, c.clock)
	p.Stack = s
	t.Cleanup(func() {
		s.Close()
		eb.Close()
	})
	return p
}

// AttachPeer makes a Peer of ep, an end of a memlink pipe whose other end a
// stack under v uses. The Peer takes ep's dispatcher.
func AttachPeer(ep *memlink.Endpoint, v clock.Clock) *Peer {
	p := &Peer{Clock: v, Timeout: DefaultTimeout, ep: ep, gate: v.NewGate()}
	ep.Attach(link.DispatcherFunc(func(pkt []byte) {
		p.mu.Lock()
		p.got = append(p.got, append([]byte(nil), pkt...))
		p.mu.Unlock()
		p.gate.Broadcast()
	}))
	return p
}

// Run runs f as the clock's main participant (see [Net.Run]).
func (p *Peer) Run(t testing.TB, f func()) {
	t.Helper()
	run(t, p.Clock, f)
}

// Send puts a whole IP packet on the link towards the stack.
func (p *Peer) Send(t testing.TB, pkt []byte) {
	t.Helper()
	if _, err := p.ep.WritePackets([][]byte{pkt}); err != nil {
		t.Fatalf("stacktest: send: %v", err)
	}
}

// Inject sends seg to the stack. A zero seg.Src is AddrB (or AddrB6 when
// seg.Dst is IPv6) with seg's port; a zero seg.Dst address is AddrA or
// AddrA6 likewise. The checksum is computed.
func (p *Peer) Inject(t testing.TB, seg Segment) {
	t.Helper()
	p.Send(t, seg.fill().Packet())
}

// Next returns the next packet the stack sends, waiting for it at most
// Timeout of virtual time: nil if none came. With a Timeout of zero it
// returns one only if the stack sent it by the time everything is idle.
func (p *Peer) Next() *wire.IPPacket {
	b, ok := p.nextRaw(p.Timeout)
	if !ok {
		return nil
	}
	ip, err := wire.ParseIP(b)
	if err != nil {
		// The stack never sends what wire cannot parse; say so loudly.
		panic(fmt.Sprintf("stacktest: stack sent a bad packet: %v", err))
	}
	return &ip
}

// nextRaw waits up to d of virtual time for a packet. At the deadline it
// lets the world settle (see idle) before it gives up, so a d of zero means
// "whatever the stack has sent once everything is idle". With a real clock
// inside a synctest bubble, d of zero only looks at what has arrived: call
// synctest.Wait first.
func (p *Peer) nextRaw(d time.Duration) ([]byte, bool) {
	deadline := p.Clock.Now().Add(d)
	for {
		ticket := p.gate.Chan()
		if b, ok := p.pop(); ok {
			return b, true
		}
		if p.Clock.Now().Before(deadline) {
			p.gate.Wait(ticket, nil, deadline)
			continue
		}
		v, ok := p.Clock.(*clock.Virtual)
		if !ok || idle(v, deadline) {
			return p.pop()
		}
	}
}

func (p *Peer) pop() ([]byte, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.got) == 0 {
		return nil, false
	}
	b := p.got[0]
	p.got = p.got[1:]
	return b, true
}

// idle blocks the calling participant until every other participant is
// blocked and every timer due at the current instant has fired, and
// reports whether that left no timer due at or before deadline (otherwise
// call it again). A Gate wait with a deadline cannot do this: it returns at
// once when the deadline is now.
func idle(v *clock.Virtual, deadline time.Time) bool {
	g := v.NewGate()
	ticket := g.Chan()
	// A timer of this instant fires only when no participant is runnable,
	// and after the ones scheduled before it.
	v.AfterFunc(0, g.Broadcast)
	g.Wait(ticket, nil, time.Time{})
	next, ok := v.NextTimer()
	return !ok || next.After(deadline)
}

// NextSegment returns the next TCP segment the stack sends, within Timeout;
// it fails t if none comes or the packet is not TCP.
func (p *Peer) NextSegment(t testing.TB) Segment {
	t.Helper()
	ip := p.Next()
	if ip == nil {
		t.Fatalf("stacktest: no segment from the stack within %v", p.Timeout)
	}
	seg, err := ParseSegment(*ip)
	if err != nil {
		t.Fatalf("stacktest: %v", err)
	}
	return seg
}

// Expect reads the next TCP segment the stack sends (within Timeout) and
// fails t unless every match accepts it. It returns the segment, so a test
// can take the stack's sequence numbers from it.
func (p *Peer) Expect(t testing.TB, ms ...Match) Segment {
	t.Helper()
	seg := p.NextSegment(t)
	for _, m := range ms {
		if err := m(seg); err != nil {
			t.Fatalf("stacktest: got %v: %v", seg, err)
		}
	}
	return seg
}

// ExpectNone fails t if the stack sends anything within d of virtual time
// (zero: by the time everything is idle).
func (p *Peer) ExpectNone(t testing.TB, d time.Duration) {
	t.Helper()
	if b, ok := p.nextRaw(d); ok {
		t.Fatalf("stacktest: want nothing, the stack sent %s", describe(b))
	}
}

func describe(b []byte) string {
	ip, err := wire.ParseIP(b)
	if err != nil {
		return fmt.Sprintf("a bad packet (%v)", err)
	}
	if seg, err := ParseSegment(ip); err == nil {
		return seg.String()
	}
	return fmt.Sprintf("%v > %v protocol %d, %d bytes", ip.Src, ip.Dst, ip.Protocol, len(ip.Payload))
}

// Segment is a TCP segment with its addresses: what Inject sends and what
// Expect returns. The header's ports come from Src and Dst.
type Segment struct {
	Src, Dst netip.AddrPort
	wire.TCPHeader
	Payload []byte
}

// ParseSegment decodes a TCP segment from ip, checksum verified.
func ParseSegment(ip wire.IPPacket) (Segment, error) {
	if ip.Protocol != wire.ProtocolTCP {
		return Segment{}, fmt.Errorf("%v > %v: protocol %d, not TCP", ip.Src, ip.Dst, ip.Protocol)
	}
	h, payload, err := wire.ParseTCP(ip.Payload, ip.Src, ip.Dst, true)
	if err != nil {
		return Segment{}, fmt.Errorf("%v > %v: %v", ip.Src, ip.Dst, err)
	}
	return Segment{
		Src:       netip.AddrPortFrom(ip.Src, h.SrcPort),
		Dst:       netip.AddrPortFrom(ip.Dst, h.DstPort),
		TCPHeader: h,
		Payload:   payload,
	}, nil
}

// fill puts in the peer's and the stack's default addresses.
func (s Segment) fill() Segment {
	v6 := s.Dst.Addr().Is6() || s.Src.Addr().Is6()
	if !s.Src.Addr().IsValid() {
		a := AddrB
		if v6 {
			a = AddrB6
		}
		s.Src = netip.AddrPortFrom(a, s.Src.Port())
	}
	if !s.Dst.Addr().IsValid() {
		a := AddrA
		if v6 {
			a = AddrA6
		}
		s.Dst = netip.AddrPortFrom(a, s.Dst.Port())
	}
	return s
}

// Packet returns the segment as a whole IP packet (TTL/hop limit 64),
// checksums computed.
func (s Segment) Packet() []byte {
	h := s.TCPHeader
	h.SrcPort, h.DstPort = s.Src.Port(), s.Dst.Port()
	return IPPacket(s.Src.Addr(), s.Dst.Addr(), wire.ProtocolTCP, wire.AppendTCP(nil, &h, s.Payload, s.Src.Addr(), s.Dst.Addr()))
}

// Reply returns a segment from s's destination back to its source, with no
// flags or numbers set: the start of an answer.
func (s Segment) Reply() Segment { return Segment{Src: s.Dst, Dst: s.Src} }

// Len is the segment's length in sequence space: payload plus one for SYN
// and one for FIN (RFC 9293 section 3.4), as the core counts it.
func (s Segment) Len() seqnum.Size {
	return (&tcp.Segment{Flags: s.Flags, Payload: s.Payload}).Len()
}

// String is tcpdump's line for the segment.
func (s Segment) String() string {
	return fmt.Sprintf("%v > %v: %s", s.Src, s.Dst, s.AppendText(nil, len(s.Payload), wire.TextFull))
}

// IPPacket wraps payload in an IPv4 header (TTL 64) or, for IPv6 addresses,
// an IPv6 header (hop limit 64).
func IPPacket(src, dst netip.Addr, proto uint8, payload []byte) []byte {
	var b []byte
	if src.Is4() {
		b = wire.AppendIPv4(nil, &wire.IPv4Header{TTL: 64, Protocol: proto, Src: src, Dst: dst}, len(payload))
	} else {
		b = wire.AppendIPv6(nil, &wire.IPv6Header{NextHeader: proto, HopLimit: 64, Src: src, Dst: dst}, len(payload))
	}
	return append(b, payload...)
}

// TCPPacket is the IP packet of a TCP segment with header h from src to dst
// (h's ports are set from them), checksums computed.
func TCPPacket(src, dst netip.AddrPort, h wire.TCPHeader, payload []byte) []byte {
	return Segment{Src: src, Dst: dst, TCPHeader: h, Payload: payload}.Packet()
}

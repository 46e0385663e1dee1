package stack

import (
	"encoding/binary"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/synack/synack/clock"
	"github.com/synack/synack/link"
	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/tcp"
	"github.com/synack/synack/wire"
)

// The SYN-flood defences, driven packet by packet: a stack on a link the
// test writes into synchronously, under a virtual clock the test moves.

// rawLink is a link.Endpoint whose far end is the test: DeliverPacket
// hands the stack a packet at once, and what the stack sends is kept (up
// to keep packets; then only counted).
type rawLink struct {
	mu   sync.Mutex
	d    link.Dispatcher
	out  [][]byte
	keep int
	sent int
}

func (r *rawLink) MTU() int                 { return 1500 }
func (r *rawLink) Attach(d link.Dispatcher) { r.d = d }
func (r *rawLink) Close() error             { return nil }
func (r *rawLink) WritePackets(pkts [][]byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent += len(pkts)
	for _, p := range pkts {
		if len(r.out) < r.keep {
			r.out = append(r.out, append([]byte(nil), p...))
		}
	}
	return len(pkts), nil
}

// take returns the TCP segments sent since the last call.
func (r *rawLink) take(t testing.TB) []sentSeg {
	t.Helper()
	r.mu.Lock()
	out := r.out
	r.out = nil
	r.mu.Unlock()
	var segs []sentSeg
	for _, b := range out {
		p, err := wire.ParseIP(b)
		if err != nil || p.Protocol != wire.ProtocolTCP {
			continue
		}
		h, payload, err := wire.ParseTCP(p.Payload, p.Src, p.Dst, true)
		if err != nil {
			t.Fatalf("the stack sent a bad segment: %v", err)
		}
		segs = append(segs, sentSeg{dst: netip.AddrPortFrom(p.Dst, h.DstPort), h: h, payload: payload})
	}
	return segs
}

type sentSeg struct {
	dst     netip.AddrPort
	h       wire.TCPHeader
	payload []byte
}

type synHarness struct {
	t   testing.TB
	v   *clock.Virtual
	s   *Stack
	ln  *rawLink
	l   *Listener
	lap netip.AddrPort
}

func newSynHarness(t testing.TB, opts Options) *synHarness {
	t.Helper()
	h := &synHarness{t: t, v: clock.NewVirtual(time.Unix(1<<20*64, 0)), ln: &rawLink{keep: 1 << 16}}
	opts.Clock = h.v
	if opts.Rand == nil {
		opts.Rand = newSeeded(7)
	}
	h.s = New(opts)
	if _, err := h.s.AddLink(h.ln, netip.PrefixFrom(addrA, 24), netip.PrefixFrom(addrA6, 64)); err != nil {
		t.Fatal(err)
	}
	if err := h.s.AddRoute(netip.MustParsePrefix("0.0.0.0/0"), netip.Addr{}, 1); err != nil {
		t.Fatal(err)
	}
	if err := h.s.AddRoute(netip.MustParsePrefix("::/0"), netip.Addr{}, 1); err != nil {
		t.Fatal(err)
	}
	h.lap = netip.AddrPortFrom(addrA, 80)
	var err error
	if h.l, err = h.s.ListenTCP(netip.AddrPortFrom(netip.Addr{}, 80), 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.s.Close() })
	return h
}

func (h *synHarness) send(from netip.AddrPort, th wire.TCPHeader, payload []byte) {
	to := h.lap
	if !from.Addr().Is4() {
		to = netip.AddrPortFrom(addrA6, 80)
	}
	h.ln.d.DeliverPacket(tcpPacket(from, to, th, payload))
}

func (h *synHarness) syn(from netip.AddrPort, seq seqnum.Value, opts wire.TCPOptions) {
	h.send(from, wire.TCPHeader{Seq: seq, Flags: wire.SYN, Window: 65535, Options: opts}, nil)
}

// synAck expects exactly one segment, a SYN,ACK to from, and returns it.
func (h *synHarness) synAck(from netip.AddrPort) wire.TCPHeader {
	h.t.Helper()
	segs := h.ln.take(h.t)
	if len(segs) != 1 || segs[0].h.Flags != wire.SYN|wire.ACK || segs[0].dst != from {
		h.t.Fatalf("want one SYN,ACK to %v, got %v", from, segs)
	}
	return segs[0].h
}

func (h *synHarness) listener() ListenerInfo {
	for _, li := range h.s.Listeners() {
		if li.ID == h.l.cid {
			return li
		}
	}
	h.t.Fatal("listener missing from Listeners()")
	return ListenerInfo{}
}

func spoofed(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)}), uint16(1024+i%60000))
}

var tsOpts = wire.TCPOptions{
	HasMSS: true, MSS: 1400, HasWindowScale: true, WindowScale: 9,
	SACKPermitted: true, HasTimestamps: true, TSVal: 31337,
}

// ackFor is the ACK that completes the handshake of sa (our SYN,ACK).
func ackFor(sa wire.TCPHeader, ts bool) wire.TCPHeader {
	a := wire.TCPHeader{Seq: sa.Ack, Ack: sa.Seq + 1, Flags: wire.ACK, Window: 1000}
	if ts {
		a.Options = wire.TCPOptions{HasTimestamps: true, TSVal: 31340, TSEcr: sa.Options.TSVal}
	}
	return a
}

func TestFullSynQueueSwitchesToCookies(t *testing.T) {
	h := newSynHarness(t, Options{SynBacklog: 4})
	for i := range 4 {
		h.syn(spoofed(i), 1000, wire.TCPOptions{})
		h.synAck(spoofed(i))
	}
	if c := h.s.Counters().TCP; c.SyncookiesSent != 0 || c.PassiveOpens != 4 {
		t.Fatalf("SyncookiesSent %d PassiveOpens %d while the SYN queue had room, want 0 4", c.SyncookiesSent, c.PassiveOpens)
	}
	if st := h.s.StateCounts(); st[tcp.SynReceived] != 4 {
		t.Fatalf("state counts %v, want 4 SYN-RECEIVED", st)
	}

	client := netip.MustParseAddrPort("198.18.0.9:40000")
	h.syn(client, 7000, tsOpts)
	sa := h.synAck(client)
	li := h.listener()
	if li.SynQueue != 4 || li.SyncookiesSent != 1 || h.s.Counters().TCP.SyncookiesSent != 1 {
		t.Fatalf("after a SYN to a full SYN queue: %+v, want a cookie and the queue still 4", li)
	}
	if n := len(h.s.Connections()); n != 1+4 {
		t.Fatalf("%d rows in Connections, want the listener and 4 SYN-RECEIVED: the cookie keeps no state", n)
	}

	h.v.Advance(20 * time.Millisecond)
	h.send(client, ackFor(sa, true), []byte("GET /"))
	c := h.s.Counters().TCP
	if c.SyncookiesRecv != 1 || c.SyncookiesFailed != 0 || c.PassiveOpens != 5 || c.CurrEstab != 1 {
		t.Fatalf("after the cookie ACK: %+v", c)
	}
	if q := h.listener().AcceptQueue; q != 1 {
		t.Fatalf("accept queue %d, want 1", q)
	}
	conn, err := h.l.AcceptTCP()
	if err != nil {
		t.Fatalf("accept the cookie connection: %v", err)
	}
	buf := make([]byte, 16)
	if n, err := conn.Read(buf); err != nil || string(buf[:n]) != "GET /" {
		t.Fatalf("Read = %q, %v", buf[:n], err)
	}
	i := conn.Info()
	if i.PeerMSS != 1380 || i.SndWScale != 9 || !i.SACK || !i.Timestamps {
		t.Errorf("cookie connection lost options: PeerMSS %d wscale %d SACK %v TS %v; want 1380 9 true true",
			i.PeerMSS, i.SndWScale, i.SACK, i.Timestamps)
	}
	if li := h.listener(); li.SynQueueMax != 4 || li.SyncookiesRecv != 1 || li.AcceptQueueMax != 1 {
		t.Errorf("listener %+v", li)
	}
}

func TestCookieACKEventsAndTrace(t *testing.T) {
	var trace []TraceEvent
	h := newSynHarness(t, Options{SynCookies: SynCookiesAlways, Trace: func(ev TraceEvent) { trace = append(trace, ev) }})
	evs, cancel := h.s.Subscribe(16)
	defer cancel()
	client := netip.MustParseAddrPort("198.18.0.9:40000")
	h.syn(client, 7000, wire.TCPOptions{})
	sa := h.synAck(client)
	if rcv, snd := trace[len(trace)-2], trace[len(trace)-1]; rcv.Kind != TraceReceived || rcv.ID != h.l.cid ||
		rcv.To != tcp.Listen || snd.Kind != TraceSent || snd.ID != h.l.cid {
		t.Errorf("cookie SYN traced as %+v then %+v, want the listener's", rcv, snd)
	}
	h.send(client, ackFor(sa, false), nil)
	var got []string
	for len(evs) > 0 {
		e := <-evs
		got = append(got, e.From.String()+">"+e.To.String()+":"+e.Cause.String())
	}
	want := []string{"CLOSED>LISTEN:user LISTEN", "LISTEN>SYN-RECEIVED:rcv ACK with valid SYN cookie", "SYN-RECEIVED>ESTABLISHED:rcv ACK of SYN"}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("events %q, want %q", got, want)
	}
}

func TestForgedOrStaleCookieCreatesNothing(t *testing.T) {
	h := newSynHarness(t, Options{SynCookies: SynCookiesAlways})
	client := netip.MustParseAddrPort("198.18.0.9:40000")
	h.syn(client, 7000, tsOpts)
	sa := h.synAck(client)

	forged := ackFor(sa, true)
	forged.Ack += 1 << 20
	h.send(client, forged, []byte("x"))
	segs := h.ln.take(t)
	if len(segs) != 1 || segs[0].h.Flags != wire.RST || segs[0].h.Seq != forged.Ack {
		t.Fatalf("forged cookie answered with %v, want <SEQ=SEG.ACK><CTL=RST> (RFC 9293 3.10.7.2)", segs)
	}
	if c := h.s.Counters().TCP; c.SyncookiesFailed != 1 || c.SyncookiesRecv != 0 || c.OutRsts != 1 {
		t.Fatalf("counters after a forged cookie: %+v", c)
	}

	h.v.Advance(2 * tcp.CookiePeriod) // both keys gone
	h.send(client, ackFor(sa, true), nil)
	if segs := h.ln.take(t); len(segs) != 1 || segs[0].h.Flags != wire.RST {
		t.Fatalf("stale cookie answered with %v, want RST", segs)
	}
	if n := len(h.s.Connections()); n != 1 {
		t.Fatalf("%d rows in Connections, want only the listener", n)
	}
	if c := h.s.Counters().TCP; c.SyncookiesFailed != 2 || c.PassiveOpens != 0 || c.CurrEstab != 0 {
		t.Fatalf("counters after a stale cookie: %+v", c)
	}
}

func TestCookiesOffAndAutoQuiet(t *testing.T) {
	// Auto with no cookie out: an ACK to the listener is a plain stray
	// ACK, not a failed cookie.
	h := newSynHarness(t, Options{})
	h.send(spoofed(1), wire.TCPHeader{Seq: 1, Ack: 2, Flags: wire.ACK}, nil)
	if c := h.s.Counters().TCP; c.SyncookiesFailed != 0 || c.OutRsts != 1 {
		t.Errorf("stray ACK: %+v", c)
	}
	// Off: a full SYN queue drops.
	h = newSynHarness(t, Options{SynBacklog: 1, SynCookies: SynCookiesOff})
	h.syn(spoofed(1), 1, wire.TCPOptions{})
	h.syn(spoofed(2), 1, wire.TCPOptions{})
	if c := h.s.Counters().TCP; c.SyncookiesSent != 0 || c.ListenDrops != 1 {
		t.Errorf("cookies off: %+v", c)
	}
}

func TestHalfOpenEntryRetransmitsAndExpires(t *testing.T) {
	h := newSynHarness(t, Options{})
	from := spoofed(1)
	h.syn(from, 1000, wire.TCPOptions{})
	first := h.synAck(from)
	h.syn(from, 1000, wire.TCPOptions{}) // retransmitted SYN
	if again := h.synAck(from); again.Seq != first.Seq {
		t.Fatalf("SYN,ACK again with seq %d, want %d", again.Seq, first.Seq)
	}
	// tcp_synack_retries = 5: at 1, 3, 7, 15 and 31 s, given up at 63 s.
	start := h.v.Now()
	for _, at := range []time.Duration{1, 3, 7, 15, 31} {
		h.v.AdvanceTo(start.Add(at*time.Second - time.Millisecond))
		if segs := h.ln.take(t); len(segs) != 0 {
			t.Fatalf("before %v s: sent %v", at, segs)
		}
		h.v.AdvanceTo(start.Add(at * time.Second))
		if sa := h.synAck(from); sa.Seq != first.Seq {
			t.Fatalf("retransmission at %v s has seq %d", at, sa.Seq)
		}
	}
	h.v.AdvanceTo(start.Add(63 * time.Second))
	segs := h.ln.take(t)
	if len(segs) != 1 || segs[0].h.Flags != wire.RST || segs[0].h.Seq != first.Seq+1 {
		t.Fatalf("give-up sent %v, want RST as a TCB does", segs)
	}
	c := h.s.Counters().TCP
	if st := h.s.StateCounts(); st[tcp.SynReceived] != 0 || h.listener().SynQueue != 0 {
		t.Fatalf("after give-up: states %v, listener %+v", st, h.listener())
	}
	if c.RetransSegs != 5 || c.AttemptFails != 1 {
		t.Errorf("RetransSegs %d AttemptFails %d, want 5 1", c.RetransSegs, c.AttemptFails)
	}
}

func TestHalfOpenEntryReset(t *testing.T) {
	h := newSynHarness(t, Options{})
	from := spoofed(1)
	h.syn(from, 1000, wire.TCPOptions{})
	sa := h.synAck(from)
	// RFC 5961: an RST not at RCV.NXT gets a challenge ACK; the exact one
	// ends the half-open connection.
	h.send(from, wire.TCPHeader{Seq: 1005, Flags: wire.RST}, nil)
	if segs := h.ln.take(t); len(segs) != 1 || segs[0].h.Flags != wire.ACK {
		t.Fatalf("in-window RST answered with %v, want a challenge ACK", segs)
	}
	h.send(from, wire.TCPHeader{Seq: 1001, Flags: wire.RST}, nil)
	if n := len(h.s.Connections()); n != 1 || h.listener().SynQueue != 0 {
		t.Fatalf("after RST: %d rows, listener %+v", n, h.listener())
	}
	h.send(from, ackFor(sa, false), nil)
	if segs := h.ln.take(t); len(segs) != 1 || segs[0].h.Flags != wire.RST {
		t.Fatalf("ACK after the reset answered %v, want RST", segs)
	}
}

func TestQueuesNeverExceedBounds(t *testing.T) {
	const synBacklog, backlog = 8, 3
	for _, mode := range []SynCookieMode{SynCookiesOff, SynCookiesAuto, SynCookiesAlways} {
		t.Run(mode.String(), func(t *testing.T) {
			h := newSynHarness(t, Options{SynBacklog: synBacklog, SynCookies: mode})
			h.l.Close()
			var err error
			if h.l, err = h.s.ListenTCP(netip.AddrPortFrom(netip.Addr{}, 80), backlog); err != nil {
				t.Fatal(err)
			}
			// Every peer completes its handshake, nobody accepts.
			for i := range 200 {
				h.syn(spoofed(i), 1000, wire.TCPOptions{})
				for _, s := range h.ln.take(t) {
					if s.h.Flags == wire.SYN|wire.ACK && i%2 == 0 {
						h.send(s.dst, ackFor(s.h, false), nil)
					}
				}
				li := h.listener()
				if li.SynQueue > synBacklog || li.AcceptQueue > backlog {
					t.Fatalf("after %d SYNs: SYN queue %d/%d, accept queue %d/%d", i+1, li.SynQueue, synBacklog, li.AcceptQueue, backlog)
				}
				h.v.Advance(10 * time.Millisecond)
			}
			li := h.listener()
			if li.SynQueueMax > synBacklog || li.AcceptQueueMax != backlog || li.ListenOverflows == 0 {
				t.Errorf("listener %+v", li)
			}
			if c := h.s.Counters().TCP; c.ListenOverflows != li.ListenOverflows || c.ListenDrops < c.ListenOverflows {
				t.Errorf("counters %+v, listener %+v", c, li)
			}
		})
	}
}

func TestSynRateLimits(t *testing.T) {
	t.Run("per listener", func(t *testing.T) {
		h := newSynHarness(t, Options{SynRateLimit: SynRateLimits{PerListener: RateLimit{Rate: 10, Burst: 5}}})
		for i := range 20 {
			h.syn(spoofed(i), 1, wire.TCPOptions{})
		}
		if c := h.s.Counters().TCP; c.SynRateLimited != 15 || c.PassiveOpens != 5 || c.ListenDrops != 15 {
			t.Fatalf("20 SYNs at once, burst 5: %+v", c)
		}
		h.v.Advance(time.Second) // 10 more tokens
		for i := range 20 {
			h.syn(spoofed(100+i), 1, wire.TCPOptions{})
		}
		if c := h.s.Counters().TCP; c.SynRateLimited != 15+15 || h.listener().SynRateLimited != 30 {
			t.Fatalf("a second later, 20 more: %+v", c)
		}
	})
	t.Run("per prefix", func(t *testing.T) {
		h := newSynHarness(t, Options{SynRateLimit: SynRateLimits{PerPrefix: RateLimit{Rate: 1, Burst: 3}}})
		for i := range 10 {
			// One /24, many hosts and ports.
			h.syn(netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), uint16(2000+i)), 1, wire.TCPOptions{})
		}
		for i := range 10 {
			// One /64.
			a := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i)})
			h.syn(netip.AddrPortFrom(a, uint16(3000+i)), 1, wire.TCPOptions{})
		}
		if c := h.s.Counters().TCP; c.SynRateLimited != 14 || c.PassiveOpens != 6 {
			t.Fatalf("10 SYNs from one /24 and 10 from one /64, burst 3: %+v", c)
		}
		h.syn(netip.MustParseAddrPort("203.0.114.1:9"), 1, wire.TCPOptions{})
		if c := h.s.Counters().TCP; c.SynRateLimited != 14 {
			t.Fatalf("the next /24 was limited too: %+v", c)
		}
	})
}

func TestListenerCloseAbortsHalfOpen(t *testing.T) {
	h := newSynHarness(t, Options{})
	for i := range 3 {
		h.syn(spoofed(i), 1000, wire.TCPOptions{})
	}
	h.ln.take(t)
	h.l.Close()
	rsts := 0
	for _, s := range h.ln.take(t) {
		if s.h.Flags == wire.RST {
			rsts++
		}
	}
	if rsts != 3 || len(h.s.Connections()) != 0 {
		t.Fatalf("close: %d RSTs, %d rows left", rsts, len(h.s.Connections()))
	}
	h.v.Advance(2 * time.Minute) // no timer of the closed listener fires
	if n := len(h.ln.take(t)); n != 0 {
		t.Fatalf("%d segments after the listener closed", n)
	}
}

// A million spoofed SYNs from random sources over 100 s of virtual time:
// the SYN queue holds its bound, cookies answer the rest, and the heap ends
// where it began give or take a few megabytes (a TCB per SYN would be
// gigabytes; one 300-byte entry per SYN, hundreds of megabytes).
func TestSynFloodMemoryBounded(t *testing.T) {
	n := 1_000_000
	if raceEnabled || testing.Short() {
		n = 100_000
	}
	h := newSynHarness(t, Options{})
	h.ln.keep = 0
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	pkt := tcpPacket(netip.MustParseAddrPort("198.18.0.1:1"), h.lap, wire.TCPHeader{Flags: wire.SYN, Window: 65535, Options: tsOpts}, nil)
	var x uint32 = 1
	var peakSynQ int
	step := 100 * time.Second / time.Duration(n)
	for i := range n {
		// xorshift: a new source address, port and ISS for every SYN.
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		spoof(pkt, x)
		h.ln.d.DeliverPacket(pkt)
		if i%1000 == 999 {
			h.v.Advance(1000 * step)
			peakSynQ = max(peakSynQ, h.listener().SynQueue)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	growth := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	li := h.listener()
	c := h.s.Counters().TCP
	t.Logf("%d SYNs: heap %+d KiB; SYN queue peak %d; cookies sent %d; sent %d packets", n, growth>>10, li.SynQueueMax, c.SyncookiesSent, h.ln.sent)
	if li.SynQueueMax > DefaultSynBacklog || peakSynQ != DefaultSynBacklog {
		t.Errorf("SYN queue peaked at %d (seen %d), bound %d", li.SynQueueMax, peakSynQ, DefaultSynBacklog)
	}
	// The random sources include our own address and our /24's broadcast
	// address: martians, dropped before TCP (martian.go).
	martians := h.s.Counters().IP.InAddrErrors
	if c.SyncookiesSent+uint64(c.PassiveOpens)+martians != uint64(n) {
		t.Errorf("SyncookiesSent %d + PassiveOpens %d + martian sources %d != %d SYNs", c.SyncookiesSent, c.PassiveOpens, martians, n)
	}
	if growth > 16<<20 {
		t.Errorf("heap grew by %d MiB under the flood, want < 16", growth>>20)
	}
}

// spoof rewrites the source address, port and sequence number of the
// IPv4 SYN pkt from x (in 198.18.0.0/15) and fixes both checksums.
func spoof(pkt []byte, x uint32) {
	pkt[12], pkt[13], pkt[14], pkt[15] = 198, 18|byte(x>>31), byte(x>>8), byte(x)
	seg := pkt[20:]
	binary.BigEndian.PutUint16(seg[0:], uint16(x>>16)|1024)
	binary.BigEndian.PutUint32(seg[4:], x*2654435761)
	binary.BigEndian.PutUint16(pkt[10:], 0)
	binary.BigEndian.PutUint16(pkt[10:], wire.Checksum(pkt[:20], 0))
	src, dst := netip.AddrFrom4([4]byte(pkt[12:16])), netip.AddrFrom4([4]byte(pkt[16:20]))
	binary.BigEndian.PutUint16(seg[16:], 0)
	binary.BigEndian.PutUint16(seg[16:], wire.Checksum(seg, wire.PseudoHeaderChecksum(wire.ProtocolTCP, src, dst, len(seg))))
}

// cookieFlood is a harness whose SYN queue is full, so that every SYN it
// is given next is answered with a cookie, and next, which makes pkt (a
// SYN from spoofSYN) come from a new source.
func cookieFlood(tb testing.TB) (h *synHarness, pkt []byte, next func([]byte)) {
	h = newSynHarness(tb, Options{})
	h.ln.keep = 0
	pkt = tcpPacket(netip.MustParseAddrPort("198.18.0.1:1"), h.lap, wire.TCPHeader{Flags: wire.SYN, Window: 65535, Options: tsOpts}, nil)
	var x uint32 = 1
	next = func(p []byte) {
		// xorshift: a new source address, port and ISS for every SYN.
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		spoof(p, x)
	}
	for h.listener().SynQueue < DefaultSynBacklog {
		next(pkt)
		h.ln.d.DeliverPacket(pkt)
	}
	return h, pkt, next
}

// A SYN answered with a cookie allocates nothing: under a flood that is
// every SYN, and the stack must not make garbage at the attacker's rate.
// Counted one packet at a time and in batches of 64 (as link/tun delivers
// them).
func TestSynCookieAnswerAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	h, pkt, next := cookieFlood(t)
	batch := make([][]byte, 64)
	for i := range batch {
		batch[i] = append([]byte(nil), pkt...)
	}
	bd := h.ln.d.(link.BatchDispatcher)
	before := h.s.Counters().TCP.SyncookiesSent
	one := testing.AllocsPerRun(1000, func() {
		next(pkt)
		h.ln.d.DeliverPacket(pkt)
	})
	many := testing.AllocsPerRun(100, func() {
		for _, p := range batch {
			next(p)
		}
		bd.DeliverPackets(batch)
	})
	sent := h.s.Counters().TCP.SyncookiesSent - before
	// The martian sources (our own /24) are dropped unanswered; all the
	// rest must have been cookies.
	if min := uint64(1001+101*64) * 9 / 10; sent < min {
		t.Fatalf("%d cookies sent, want nearly one per SYN (%d)", sent, min)
	}
	if one != 0 || many != 0 {
		t.Errorf("allocations per cookie answer: %v one at a time, %v per batch of 64; want 0", one, many)
	}
}

// BenchmarkSynCookieAnswer is the stack's cost of a flood's SYN: parsed,
// demultiplexed to the listener, answered with a cookie, the SYN,ACK built
// and handed to the link; in batches of 64 as link/tun delivers them.
func BenchmarkSynCookieAnswer(b *testing.B) {
	h, pkt, next := cookieFlood(b)
	batch := make([][]byte, 64)
	for i := range batch {
		batch[i] = append([]byte(nil), pkt...)
	}
	bd := h.ln.d.(link.BatchDispatcher)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		for _, p := range batch {
			next(p)
		}
		bd.DeliverPackets(batch)
		n += len(batch)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/SYN")
}

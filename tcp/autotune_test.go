package tcp

import (
	"testing"
	"time"

	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/wire"
)

// Receive-window auto-tuning (autotune.go), segment by segment. The
// connection has timestamps, MSS 1000 and a 1 MiB buffer (window scale 5).

// atPeer plays a sender over a path of RTT rtt: each round it fills the
// window we advertised, in full-sized segments whose TSecr echoes the
// TSval of our ACK one round trip ago, then our application reads what it
// is given, and a round trip passes. It checks that no ACK moves the
// right edge back (RFC 9293 3.8.6, RFC 7323 section 2.4) by more than the
// scaled window's granularity: windowField rounds a scaled window down
// outside memory pressure, as it did before auto-tuning (RFC 7323
// section 2.4 lets a sender see that much apparent shrinking).
type atPeer struct {
	tc      *tconn
	rtt     time.Duration
	nxt     seqnum.Value // the peer's SND.NXT
	tsval   uint32
	maxEdge seqnum.Value
}

func newATPeer(t *testing.T, mods ...func(*Config)) *atPeer {
	tc := newEstablishedSACKTS(t, mods...)
	p := &atPeer{tc: tc, rtt: 50 * time.Millisecond, nxt: irs + 1, tsval: 10}
	p.maxEdge = tc.c.rcv.advEdge
	return p
}

// edges checks the ACKs sent since the last call.
func (p *atPeer) edges() {
	p.tc.t.Helper()
	for _, s := range p.tc.drain() {
		if s.Flags&wire.ACK == 0 {
			continue
		}
		e := p.tc.edge(s)
		if e.Add(1 << p.tc.c.rcv.wscale).LessThanEq(p.maxEdge) {
			p.tc.t.Fatalf("ACK %v moves the right edge back from %d to %d", s.Ack, p.maxEdge, e)
		}
		p.maxEdge = seqnum.Max(p.maxEdge, e)
	}
}

// round sends up to limit bytes (0: all the window allows, as the ACKs
// it draws advertise it), reads them if read, and lets a round trip
// pass. It returns the bytes sent.
func (p *atPeer) round(limit int, read bool) int {
	tc := p.tc
	tc.t.Helper()
	echo := tc.c.tsNow(tc.now.Add(-p.rtt))
	sent := 0
	for {
		room := sent + int(p.nxt.Size(tc.c.rcv.advEdge))
		if limit > 0 {
			room = min(room, limit)
		}
		if sent+1000 > room {
			break
		}
		p.tsval++
		tc.in(seg{flags: A, seq: p.nxt, ack: iss + 1, data: payload(1000, 'd'),
			opts: wire.TCPOptions{HasTimestamps: true, TSVal: p.tsval, TSEcr: echo}})
		p.nxt = p.nxt.Add(1000)
		sent += 1000
	}
	if tc.c.rcv.nxt != p.nxt {
		tc.t.Fatalf("RCV.NXT %d, want %d: data inside the advertised window was not taken", tc.c.rcv.nxt, p.nxt)
	}
	if read {
		tc.read()
	}
	tc.flushACK()
	p.edges()
	tc.advance(p.rtt)
	p.edges()
	return sent
}

func TestAutoTuneStartsSmall(t *testing.T) {
	p := newATPeer(t)
	if i := p.tc.c.Info(); i.RcvSpace != initialRcvWindow || i.RcvWnd != initialRcvWindow {
		t.Fatalf("RcvSpace %d, RcvWnd %d at the start, want %d", i.RcvSpace, i.RcvWnd, initialRcvWindow)
	}
	if e := p.nxt.Size(p.tc.c.rcv.advEdge); e != initialRcvWindow {
		t.Fatalf("first window advertised %d, want %d", e, initialRcvWindow)
	}
	// With NoAutoTune the whole buffer is offered at once, as before.
	q := newATPeer(t, func(c *Config) { c.NoAutoTune = true })
	if i := q.tc.c.Info(); i.RcvSpace != 1<<20 || q.nxt.Size(q.tc.c.rcv.advEdge) != 1<<20-1<<5 && q.nxt.Size(q.tc.c.rcv.advEdge) != 1<<20 {
		t.Fatalf("NoAutoTune: RcvSpace %d, window %d, want 1 MiB", i.RcvSpace, q.nxt.Size(q.tc.c.rcv.advEdge))
	}
}

// A sender that fills the window every round trip and an application
// that reads it all: the limit grows with each round trip's delivery
// until it reaches ReceiveBufferSize (here 4 MiB), and stops there.
func TestAutoTuneGrowsWithDeliveryToTheCap(t *testing.T) {
	const cap = 4 << 20
	p := newATPeer(t, func(c *Config) { c.ReceiveBufferSize = cap })
	prev := p.tc.c.Info().RcvSpace
	grew, prevSent := 0, 0
	for r := range 12 {
		sent := p.round(0, true)
		s := p.tc.c.Info().RcvSpace
		t.Logf("round %d: limit %d, window %d", r, s, p.nxt.Size(p.tc.c.rcv.advEdge))
		if s < prev {
			t.Fatalf("round %d: the limit went down from %d to %d", r, prev, s)
		}
		if s > cap {
			t.Fatalf("round %d: limit %d, over ReceiveBufferSize", r, s)
		}
		// A measurement spans at most this round's reads and the last's.
		if max := 3 * (2*(sent+prevSent) + 16*1000); s > prev && s > max {
			t.Fatalf("round %d: limit %d after %d bytes read in two rounds, want at most %d", r, s, sent+prevSent, max)
		}
		prevSent = sent
		if s > prev {
			grew++
		}
		prev = s
	}
	if prev != cap {
		t.Fatalf("after 12 round trips of full windows the limit is %d, want ReceiveBufferSize (4 MiB)", prev)
	}
	if grew < 3 {
		t.Fatalf("the limit grew in %d rounds, want it to grow its way up with delivery (at least 3)", grew)
	}
	if sent := p.round(0, true); sent < cap-1000 {
		t.Fatalf("at the cap the peer could send %d bytes in a round trip, want about 4 MiB", sent)
	}
}

// An application that reads a little every round trip, or nothing, keeps
// the window it started with: what the peer can make us buffer follows
// what the application takes.
func TestAutoTuneSlowReaderKeepsSmallWindow(t *testing.T) {
	p := newATPeer(t)
	for range 40 {
		p.round(4000, true)
	}
	if s := p.tc.c.Info().RcvSpace; s != initialRcvWindow {
		t.Fatalf("a reader of 4000 bytes per round trip grew the limit to %d, want %d", s, initialRcvWindow)
	}
	q := newATPeer(t)
	for range 10 {
		q.round(0, false) // never read: the window closes and stays small
	}
	if s := q.tc.c.Info().RcvSpace; s != initialRcvWindow {
		t.Fatalf("a connection never read grew the limit to %d, want %d", s, initialRcvWindow)
	}
	if m := q.tc.c.BufferMemory(); m > initialRcvWindow {
		t.Fatalf("a connection never read holds %d bytes, want at most the first window (%d)", m, initialRcvWindow)
	}
}

// Under memory pressure the limit does not grow, however much is read
// (memory.go: windows stop opening); back to normal it grows again.
func TestAutoTuneFrozenUnderPressure(t *testing.T) {
	p := newATPeer(t, func(c *Config) { c.ReceiveBufferSize = 16 << 20 })
	p.round(0, true)
	p.round(0, true)
	before := p.tc.c.Info().RcvSpace
	if before <= initialRcvWindow {
		t.Fatalf("limit %d after two full rounds, want it grown", before)
	}
	p.tc.c.SetMemoryState(MemoryPressure)
	for range 5 {
		p.round(0, true)
	}
	if s := p.tc.c.Info().RcvSpace; s != before {
		t.Fatalf("limit %d under pressure, want it held at %d", s, before)
	}
	p.tc.c.SetMemoryState(MemoryNormal)
	for range 4 {
		p.round(0, true)
	}
	if s := p.tc.c.Info().RcvSpace; s <= before {
		t.Fatalf("limit %d after pressure ended, want it growing again past %d", s, before)
	}
}

// One byte 1,000,000 past RCV.NXT (the out-of-order amplification attack
// of issue 12) is beyond the 64 KiB a connection starts with: not
// acceptable, answered with an ACK (RFC 9293 3.10.7.4), and it costs no
// memory at all.
func TestAutoTuneFarByteOutsideWindow(t *testing.T) {
	p := newATPeer(t)
	tc := p.tc
	tc.in(seg{flags: A, seq: irs + 1 + 1_000_000, ack: iss + 1, data: []byte{'x'},
		opts: wire.TCPOptions{HasTimestamps: true, TSVal: 20, TSEcr: tc.c.tsNow(tc.now)}})
	s := tc.want("ACK to a segment beyond the window", seg{flags: A, seq: iss + 1, ack: irs + 1})
	if len(s.Options.SACK()) != 0 {
		t.Fatalf("SACK %v, want none: the byte was not taken", s.Options.SACK())
	}
	if m := tc.c.BufferMemory(); m != 0 {
		t.Fatalf("buffer memory %d, want 0", m)
	}
}

// The receiver's RTT estimate comes from TSecr (RFC 7323 section 4.1): the
// time since the TSval echoed, in milliseconds; only full-sized segments
// count.
func TestAutoTuneReceiverRTT(t *testing.T) {
	p := newATPeer(t)
	tc := p.tc
	send := func(n int, ago time.Duration) {
		p.tsval++
		tc.in(seg{flags: A, seq: p.nxt, ack: iss + 1, data: payload(n, 'r'),
			opts: wire.TCPOptions{HasTimestamps: true, TSVal: p.tsval, TSEcr: tc.c.tsNow(tc.now.Add(-ago))}})
		p.nxt = p.nxt.Add(seqnum.Size(n))
	}
	send(500, 30*time.Millisecond)
	if r := tc.c.rcv.space.rtt; r != 0 {
		t.Fatalf("RTT %v from a small segment, want none", r)
	}
	send(1000, 80*time.Millisecond)
	if r := tc.c.rcv.space.rtt; r != 80*time.Millisecond {
		t.Fatalf("RTT %v, want 80ms", r)
	}
	send(1000, 40*time.Millisecond) // smaller: taken at once
	if r := tc.c.rcv.space.rtt; r != 40*time.Millisecond {
		t.Fatalf("RTT %v, want 40ms", r)
	}
	send(1000, 120*time.Millisecond) // larger: an eighth of the way
	if r := tc.c.rcv.space.rtt; r != 50*time.Millisecond {
		t.Fatalf("RTT %v, want 50ms", r)
	}
}

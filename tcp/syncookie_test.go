package tcp

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/wire"
)

// A listener that keeps no TCB per SYN (handshake.go) must be
// indistinguishable from one that does: same SYN,ACK, same connection
// once the ACK arrives.

var peerOpts = wire.TCPOptions{
	HasMSS: true, MSS: 1400,
	HasWindowScale: true, WindowScale: 7,
	SACKPermitted: true,
	HasTimestamps: true, TSVal: 777000,
}

func sameSeg(t *testing.T, why string, got, want Segment) {
	t.Helper()
	if got.String() != want.String() {
		t.Fatalf("%s:\n  got  %s\n  want %s", why, got.String(), want.String())
	}
}

func TestHandshakeResumeIsTheTCB(t *testing.T) {
	for _, tt := range []struct {
		name string
		mods []func(*Config)
		opts wire.TCPOptions
	}{
		{"no options", nil, wire.TCPOptions{}},
		{"all options", []func(*Config){withOptions}, peerOpts},
		{"peer offers, config refuses", nil, peerOpts},
		{"MSS only", []func(*Config){withOptions}, mssOpt(536)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := newListen(t, tt.mods...) // the TCB way
			b := newTC(t, tt.mods...)     // the Handshake way
			syn := Segment{Seq: irs, Flags: S, Window: 4000, Options: tt.opts}
			a.c.HandleSegment(a.now, &syn)
			want := a.drain()[0]
			id := Tuple{Local: localAP, Remote: remoteAP}
			h := NewHandshake(&b.cfg, id, &syn, b.now)
			sameSeg(t, "the SYN,ACK", h.SynAck(&b.cfg, id, b.now), want)

			// Both time out once and resend the SYN,ACK.
			a.advanceToDeadline()
			again := a.drain()[0]
			due, ok := h.RetransmitAt(&b.cfg, b.now)
			if !ok || !due.Equal(a.now) {
				t.Fatalf("RetransmitAt = %v, %v; the TCB resent at %v", due.Sub(epoch), ok, a.now.Sub(epoch))
			}
			h.Retransmits++
			b.now = due
			sameSeg(t, "the retransmitted SYN,ACK", h.SynAck(&b.cfg, id, b.now), again)

			b.c = ResumeSynReceived(&b.cfg, id, b, &h, b.now)
			if ai, bi := a.c.Info(), b.c.Info(); ai != bi {
				t.Fatalf("resumed TCB differs:\n  TCB     %+v\n  resumed %+v", ai, bi)
			}
			// The ACK with data, then a FIN: both answer alike.
			for _, tc := range []*tconn{a, b} {
				tc.now = tc.now.Add(30 * time.Millisecond)
				ack := Segment{Seq: irs + 1, Ack: iss + 1, Flags: A, Window: 300, Options: tt.opts, Payload: []byte("hello")}
				ack.Options.HasMSS, ack.Options.HasWindowScale, ack.Options.SACKPermitted = false, false, false
				ack.Options.TSEcr = want.Options.TSVal
				tc.c.HandleSegment(tc.now, &ack)
				tc.wantState("ACK of SYN", Established)
				tc.wantRead("the data", []byte("hello"))
				tc.write([]byte("world"))
			}
			ao, bo := a.drain(), b.drain()
			if len(ao) != len(bo) {
				t.Fatalf("TCB sent %d segments, resumed %d", len(ao), len(bo))
			}
			for i := range ao {
				sameSeg(t, "after the handshake", bo[i], ao[i])
			}
			if ai, bi := a.c.Info(), b.c.Info(); ai != bi {
				t.Fatalf("established TCBs differ:\n  TCB     %+v\n  resumed %+v", ai, bi)
			}
		})
	}
}

// fixedRand is a deterministic key source.
type fixedRand struct{ r *rand.ChaCha8 }

func newFixedRand(b byte) fixedRand { return fixedRand{rand.NewChaCha8([32]byte{b})} }

func (f fixedRand) Read(p []byte) (int, error) { return f.r.Read(p) }

func cookieCfg(mods ...func(*Config)) *Config {
	cfg := &Config{MSS: 1460, ISN: NewISNGenerator([32]byte{9})}
	for _, m := range mods {
		m(cfg)
	}
	return cfg
}

// cookieACK is the ACK a peer sends for the cookie SYN,ACK sa.
func cookieACK(sa Segment, opts wire.TCPOptions) Segment {
	ack := Segment{Seq: sa.Ack, Ack: sa.Seq + 1, Flags: A, Window: 500}
	if sa.Options.HasTimestamps && opts.HasTimestamps {
		ack.Options.HasTimestamps = true
		ack.Options.TSVal = opts.TSVal + 10
		ack.Options.TSEcr = sa.Options.TSVal
	}
	return ack
}

func TestCookieCarriesMSSWindowScaleSACK(t *testing.T) {
	id := Tuple{Local: localAP, Remote: remoteAP}
	now := epoch.Add(5 * time.Second)
	for _, tt := range []struct {
		name      string
		opts      wire.TCPOptions
		mss       int // the peer's MSS as the cookie carries it
		ws        uint8
		ts, sack  bool
		wsEnabled bool
	}{
		{"timestamps carry the options", peerOpts, 1380, 7, true, true, true},
		{"no window scale", wire.TCPOptions{HasMSS: true, MSS: 1460, SACKPermitted: true, HasTimestamps: true, TSVal: 5}, 1460, 0, true, true, false},
		{"shift above 14 is 14", wire.TCPOptions{HasMSS: true, MSS: 9000, HasWindowScale: true, WindowScale: 15, HasTimestamps: true, TSVal: 5}, 8960, 14, true, false, true},
		{"without timestamps only the MSS survives", wire.TCPOptions{HasMSS: true, MSS: 1440, HasWindowScale: true, WindowScale: 7, SACKPermitted: true}, 1440, 0, false, false, false},
		{"no MSS option: the default", wire.TCPOptions{}, 536, 0, false, false, false},
		{"tiny MSS: the smallest entry", mssOpt(100), 536, 0, false, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := cookieCfg(withOptions)
			sc := NewSynCookies(newFixedRand(1))
			syn := Segment{Seq: 424242, Flags: S, Window: 65535, Options: tt.opts}
			sa := sc.Make(cfg, id, &syn, now)
			if sa.Flags != S|A || sa.Ack != 424243 || sa.Options.HasTimestamps != tt.ts ||
				sa.Options.SACKPermitted != tt.sack || sa.Options.HasWindowScale != tt.wsEnabled {
				t.Fatalf("cookie SYN,ACK %s", sa.String())
			}
			later := now.Add(300 * time.Millisecond)
			ack := cookieACK(sa, tt.opts)
			h, ok := sc.Check(cfg, id, &ack, later)
			if !ok {
				t.Fatalf("the cookie of %s does not check", sa.String())
			}
			var sink tconn
			sink.t = t
			c := ResumeSynReceived(cfg, id, &sink, &h, later)
			c.HandleSegment(later, &ack)
			if c.State() != Established {
				t.Fatalf("cookie ACK left the connection in %v", c.State())
			}
			i := c.Info()
			want := min(tt.mss, 1460) // our MSS
			if tt.ts {
				want -= 12
			}
			if i.PeerMSS != tt.mss || i.MSS != want || i.SndWScale != tt.ws || i.Timestamps != tt.ts || i.SACK != tt.sack {
				t.Errorf("cookie connection: PeerMSS %d MSS %d wscale %d TS %v SACK %v; want %d %d %d %v %v",
					i.PeerMSS, i.MSS, i.SndWScale, i.Timestamps, i.SACK, tt.mss, want, tt.ws, tt.ts, tt.sack)
			}
			if tt.wsEnabled && i.RcvWScale == 0 {
				t.Errorf("window scaling negotiated but our shift is 0")
			}
			if i.ISS != sa.Seq || i.IRS != 424242 || i.SndUna != sa.Seq+1 || i.RcvNxt != 424243 {
				t.Errorf("sequence variables %+v", i)
			}
			if tt.ts {
				// Our timestamps go on from the cookie's, never back.
				c.Write(later, []byte("x"))
				out := sink.drain()
				if len(out) == 0 || int32(out[len(out)-1].Options.TSVal-sa.Options.TSVal) < 0 {
					t.Errorf("TSval after the cookie went back: %v then %v", sa.Options.TSVal, out)
				}
			}
		})
	}
}

func TestCookieTSvalNeverAhead(t *testing.T) {
	cfg := cookieCfg(withOptions)
	sc := NewSynCookies(newFixedRand(2))
	id := Tuple{Local: localAP, Remote: remoteAP}
	for ms := 0; ms < 200; ms += 7 {
		now := epoch.Add(time.Duration(ms) * time.Millisecond)
		syn := Segment{Seq: 1, Flags: S, Options: peerOpts}
		sa := sc.Make(cfg, id, &syn, now)
		h := Handshake{TSEpoch: cookieEpoch, TSOffset: cfg.ISN.TimestampOffset(id)}
		clock := h.TSVal(now)
		if d := int32(clock - sa.Options.TSVal); d < 0 || d >= 64 {
			t.Fatalf("at %d ms: TSval %d, clock %d: must be at most 63 ms behind", ms, sa.Options.TSVal, clock)
		}
	}
}

func TestCookieForgedOrStale(t *testing.T) {
	cfg := cookieCfg(withOptions)
	id := Tuple{Local: localAP, Remote: remoteAP}
	// The start of a cookie period, so "next period" is exact.
	now := time.Unix(1<<20*64, 0)
	sc := NewSynCookies(newFixedRand(3))
	syn := Segment{Seq: 5000, Flags: S, Options: peerOpts}
	sa := sc.Make(cfg, id, &syn, now)
	good := cookieACK(sa, peerOpts)
	check := func(why string, ack Segment, id Tuple, at time.Time, want bool) {
		t.Helper()
		if _, ok := sc.Check(cfg, id, &ack, at); ok != want {
			t.Errorf("%s: Check = %v, want %v", why, ok, want)
		}
	}
	check("the cookie", good, id, now, true)
	check("in the next period", good, id, now.Add(CookiePeriod+time.Second), true)
	check("two periods later", good, id, now.Add(2*CookiePeriod), false)

	bad := good
	bad.Ack++
	check("ISS + 1", bad, id, now, false)
	for bit := range 32 {
		bad = good
		bad.Ack ^= 1 << bit
		check("one bit of the cookie flipped", bad, id, now, false)
	}
	bad = good
	bad.Seq++
	check("another IRS", bad, id, now, false)
	bad = good
	bad.Options.TSEcr ^= 0x10 // claim SACK
	check("option bits changed", bad, id, now, false)
	bad = good
	bad.Options.HasTimestamps = false
	check("timestamps dropped", bad, id, now, false)
	other := id
	other.Remote = netip.AddrPortFrom(other.Remote.Addr(), other.Remote.Port()+1)
	check("another port", good, other, now, false)
	for _, f := range []wire.TCPFlags{A | R, A | S, R} {
		bad = good
		bad.Flags = f
		check("not a plain ACK: "+f.String(), bad, id, now, false)
	}
	// Another stack (another key) does not take it.
	if _, ok := NewSynCookies(newFixedRand(4)).Check(cfg, id, &good, now); ok {
		t.Error("a cookie checks under another key")
	}

	// Random ACKs: with a 29-bit MAC and two keys, none of 100000 passes.
	sc.Make(cfg, id, &syn, now.Add(CookiePeriod)) // both keys live
	r := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		ack := Segment{Seq: seqnum.Value(r.Uint32()), Ack: seqnum.Value(r.Uint32()), Flags: A}
		if _, ok := sc.Check(cfg, id, &ack, now.Add(CookiePeriod)); ok {
			t.Fatalf("random ACK %s passes", ack.String())
		}
	}
}

func TestCookieKeysRotate(t *testing.T) {
	cfg := cookieCfg()
	id := Tuple{Local: localAP, Remote: remoteAP}
	now := time.Unix(1<<20*64, 0)
	sc := NewSynCookies(newFixedRand(5))
	syn := Segment{Seq: 5000, Flags: S}
	if sc.Recent(now) {
		t.Error("Recent before any cookie")
	}
	a := sc.Make(cfg, id, &syn, now)
	if b := sc.Make(cfg, id, &syn, now.Add(time.Second)); b.Seq != a.Seq {
		t.Errorf("same SYN, same period: cookies %d and %d", a.Seq, b.Seq)
	}
	if !sc.Recent(now.Add(CookiePeriod)) || sc.Recent(now.Add(2*CookiePeriod)) {
		t.Error("Recent should hold for the period of the cookie and the next only")
	}
	// Cookies of many tuples spread over the whole ISS space: nothing
	// (MSS index, period) shows through.
	var top [8]int
	for port := range 4000 {
		id.Remote = netip.AddrPortFrom(id.Remote.Addr(), uint16(1000+port))
		top[sc.Make(cfg, id, &syn, now).Seq>>29]++
	}
	for i, n := range top {
		if n < 350 || n > 650 {
			t.Errorf("top 3 bits = %d in %d of 4000 cookies of the same MSS: predictable", i, n)
		}
	}
}

package tcp

import (
	"net/netip"
	"testing"
	"time"

	"github.com/synack/synack/wire"
)

// Options: MSS (RFC 9293 3.7.1, RFC 6691), window scale and timestamps
// (RFC 7323), SACK (RFC 2018).

func TestMSSSentAndHonoured(t *testing.T) {
	tc := newSynSent(t)
	if o := tc.c.out.Options; !o.HasMSS {
		t.Fatal("no MSS option on our SYN")
	}
	tc = newTC(t, func(c *Config) { c.MSS = 1200 })
	tc.c.Connect(tc.now)
	if s := tc.want("SYN", seg{flags: S, seq: iss}); !s.Options.HasMSS || s.Options.MSS != 1200 {
		t.Fatalf("SYN MSS option %+v, want 1200 from the config", s.Options)
	}
	tc.in(seg{flags: S | A, seq: irs, ack: iss + 1, opts: mssOpt(700)})
	if m := tc.c.Info().MSS; m != 700 {
		t.Fatalf("MSS %d, want the peer's 700", m)
	}
}

// On a link that carries only 72-byte packets our MSS option is 32 (the
// stack derives it from the MTU), and what we send fits that link too:
// the 64-byte floor for a peer's tiny MSS never exceeds our own MSS
// (RFC 9293 3.7.1: Eff.snd.MSS = min(SendMSS+20, MMS_S) - 20 - options).
func TestMSSOnTinyLink(t *testing.T) {
	tc := newTC(t, func(c *Config) { c.MSS = 32 })
	tc.c.Connect(tc.now)
	if s := tc.want("SYN", seg{flags: S, seq: iss}); s.Options.MSS != 32 {
		t.Fatalf("SYN MSS option %d, want 32", s.Options.MSS)
	}
	tc.in(seg{flags: S | A, seq: irs, ack: iss + 1, opts: mssOpt(1460)})
	tc.want("ACK of SYN,ACK", seg{flags: A, seq: iss + 1, ack: irs + 1})
	tc.c.SetNoDelay(tc.now, true)
	tc.write(payload(40, 'a'))
	tc.want("the first segment carries what our link carries, 32 bytes", seg{flags: A, seq: iss + 1, ack: irs + 1, len: 32})
	tc.want("then the rest", seg{flags: A | P, seq: iss + 33, ack: irs + 1, len: 8})

	tc = newTC(t, withOptions, func(c *Config) { c.MSS = 32 })
	tc.c.Connect(tc.now)
	tc.want("SYN", seg{flags: S, seq: iss})
	tc.in(seg{flags: S | A, seq: irs, ack: iss + 1, opts: synOpts(0, 1)})
	if m := tc.c.Info().MSS; m != 32-12 {
		t.Fatalf("MSS %d with timestamps on a 32-byte MSS link, want 20 (RFC 6691)", m)
	}
}

func TestDefaultMSS(t *testing.T) {
	tc := newEstablished(t)
	if m := tc.c.Info().MSS; m != 536 {
		t.Fatalf("IPv4 peer without MSS option: %d, want 536", m)
	}
	tc2 := &tconn{t: t, now: epoch, peerWin: 8192}
	tc2.cfg = Config{ISN: FixedISN(iss), NoWindowScale: true, NoTimestamps: true, NoSACK: true}
	tc2.c = NewConn(&tc2.cfg, Tuple{Local: netip.MustParseAddrPort("[2001:db8::2]:80"), Remote: netip.MustParseAddrPort("[2001:db8::1]:4000")}, tc2)
	tc2.c.Connect(tc2.now)
	if s := tc2.want("SYN", seg{flags: S, seq: iss}); s.Options.MSS != 1440 {
		t.Fatalf("IPv6 MSS option %d, want 1440", s.Options.MSS)
	}
	tc2.in(seg{flags: S | A, seq: irs, ack: iss + 1})
	if m := tc2.c.Info().MSS; m != 1220 {
		t.Fatalf("IPv6 peer without MSS option: %d, want 1220", m)
	}
}

// synOpts is what a Linux-like peer offers.
func synOpts(ws uint8, tsval uint32) wire.TCPOptions {
	return wire.TCPOptions{HasMSS: true, MSS: 1460, HasWindowScale: true, WindowScale: ws, SACKPermitted: true, HasTimestamps: true, TSVal: tsval}
}

func TestOptionsNegotiatedPassive(t *testing.T) {
	tc := newListen(t, withOptions, func(c *Config) { c.ReceiveBufferSize = 1 << 20 })
	tc.in(seg{flags: S, seq: irs, win: 65535, opts: synOpts(7, 100)})
	sa := tc.want("SYN,ACK", seg{flags: S | A, seq: iss, ack: irs + 1})
	o := sa.Options
	if !o.HasWindowScale || o.WindowScale != 5 || !o.SACKPermitted || !o.HasTimestamps || o.TSEcr != 100 {
		t.Fatalf("SYN,ACK options %+v: want wscale 5 (1 MiB), sackOK, TS ecr 100", o)
	}
	if sa.Window != 65535 {
		t.Fatalf("SYN,ACK window %d: a SYN's window is never scaled (RFC 7323 2.2)", sa.Window)
	}
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1, win: 100, opts: wire.TCPOptions{HasTimestamps: true, TSVal: 101, TSEcr: o.TSVal}})
	i := tc.c.Info()
	if i.SndWnd != 100<<7 || i.SndWScale != 7 || i.RcvWScale != 5 || !i.Timestamps || !i.SACK {
		t.Fatalf("negotiated %+v", i)
	}
	if i.MSS != 1000-12 {
		t.Fatalf("MSS %d, want 1000-12 with timestamps (RFC 6691)", i.MSS)
	}
}

func TestWindowScaleOnlyWhenBothOffer(t *testing.T) {
	tc := newListen(t, withOptions)
	o := synOpts(7, 100)
	o.HasWindowScale = false
	tc.in(seg{flags: S, seq: irs, opts: o})
	sa := tc.want("SYN,ACK", seg{flags: S | A, seq: iss, ack: irs + 1})
	if sa.Options.HasWindowScale {
		t.Fatal("window scale answered to a SYN without it")
	}
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1, win: 100, opts: wire.TCPOptions{HasTimestamps: true, TSVal: 101}})
	if i := tc.c.Info(); i.SndWnd != 100 || i.RcvWScale != 0 {
		t.Fatalf("no scaling: SndWnd %d RcvWScale %d", i.SndWnd, i.RcvWScale)
	}
}

func TestWindowScaleCappedAt14(t *testing.T) {
	tc := newListen(t, withOptions)
	tc.in(seg{flags: S, seq: irs, opts: synOpts(15, 100)})
	tc.drain()
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1, win: 1, opts: wire.TCPOptions{HasTimestamps: true, TSVal: 101}})
	if i := tc.c.Info(); i.SndWScale != 14 || i.SndWnd != 1<<14 {
		t.Fatalf("shift 15 offered: SndWScale %d SndWnd %d, want 14 (RFC 7323 2.3)", i.SndWScale, i.SndWnd)
	}
}

func TestTimestampsEchoAndRTT(t *testing.T) {
	tc := newTC(t, withOptions, withNoDelay, func(c *Config) { c.MinRTO = time.Millisecond })
	tc.c.Connect(tc.now)
	syn := tc.want("SYN", seg{flags: S, seq: iss})
	o := synOpts(0, 500)
	o.TSEcr = syn.Options.TSVal
	tc.in(seg{flags: S | A, seq: irs, ack: iss + 1, opts: o})
	ack := tc.want("ACK", seg{flags: A, seq: iss + 1, ack: irs + 1})
	if !ack.Options.HasTimestamps || ack.Options.TSEcr != 500 {
		t.Fatalf("ACK timestamps %+v, want ecr 500", ack.Options)
	}
	tc.write([]byte("x"))
	tc.want("data", seg{flags: A | P, seq: iss + 1, ack: irs + 1, len: 1})
	tc.advanceToDeadline()
	d := tc.want("retransmission", seg{flags: A | P, seq: iss + 1, ack: irs + 1, len: 1})
	tc.now = tc.now.Add(50 * time.Millisecond)
	rtt := tc.c.Info().RTT
	// Karn forbids timing the retransmitted segment, but the echoed TSval
	// says which transmission the ACK answers (RFC 7323 4.1).
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 2, opts: wire.TCPOptions{HasTimestamps: true, TSVal: 510, TSEcr: d.Options.TSVal}})
	if tc.c.Stats().TimestampRTTSamples != 1 || tc.c.Info().RTT == rtt {
		t.Fatalf("no RTT sample from TSecr (SRTT %v)", tc.c.Info().RTT)
	}
	tc.write([]byte("y"))
	if s := tc.want("data", seg{flags: A | P, seq: iss + 2, ack: irs + 1, len: 1}); s.Options.TSEcr != 510 {
		t.Fatalf("TSecr %d, want the newest TSval 510", s.Options.TSEcr)
	}
}

func TestPAWS(t *testing.T) {
	tc := newTC(t, withOptions)
	tc.c.Connect(tc.now)
	tc.drain()
	tc.in(seg{flags: S | A, seq: irs, ack: iss + 1, opts: synOpts(0, 1000)})
	tc.drain()
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1, data: []byte("old"), opts: wire.TCPOptions{HasTimestamps: true, TSVal: 999}})
	tc.want("PAWS: an old TSval is answered with an ACK and dropped", seg{flags: A, seq: iss + 1, ack: irs + 1})
	if tc.c.Readable() != 0 || tc.c.Stats().PAWSRejected != 1 {
		t.Fatal("PAWS did not drop the segment")
	}
	tc.in(seg{flags: R, seq: irs + 1, opts: wire.TCPOptions{HasTimestamps: true, TSVal: 1}})
	tc.wantState("RSTs are exempt from PAWS (RFC 7323 5.3 R1)", Closed)
}

func TestSACKBlocks(t *testing.T) {
	tc := newTC(t, withOptions)
	tc.c.Connect(tc.now)
	tc.drain()
	o := synOpts(0, 1)
	o.HasTimestamps = false
	tc.in(seg{flags: S | A, seq: irs, ack: iss + 1, opts: o})
	tc.drain()
	tc.in(seg{flags: A, seq: irs + 101, ack: iss + 1, data: payload(100, 0)})
	s := tc.want("dup ACK with SACK", seg{flags: A, seq: iss + 1, ack: irs + 1})
	if got := s.Options.SACK(); len(got) != 1 || got[0].Start != irs+101 || got[0].End != irs+201 {
		t.Fatalf("SACK %v, want [%d,%d)", got, irs+101, irs+201)
	}
	tc.in(seg{flags: A, seq: irs + 301, ack: iss + 1, data: payload(100, 0)})
	s = tc.want("dup ACK with two blocks", seg{flags: A, seq: iss + 1, ack: irs + 1})
	got := s.Options.SACK()
	if len(got) != 2 || got[0].Start != irs+301 || got[1].Start != irs+101 {
		t.Fatalf("SACK %v: the most recent block first (RFC 2018 4)", got)
	}
	tc.in(seg{flags: A, seq: irs + 201, ack: iss + 1, data: payload(100, 0)})
	s = tc.want("blocks merged", seg{flags: A, seq: iss + 1, ack: irs + 1})
	if got := s.Options.SACK(); len(got) != 1 || got[0].Start != irs+101 || got[0].End != irs+401 {
		t.Fatalf("SACK %v, want one block [%d,%d)", got, irs+101, irs+401)
	}
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1, data: payload(100, 0)})
	s = tc.want("hole filled: no SACK", seg{flags: A, seq: iss + 1, ack: irs + 401})
	if s.Options.NumSACK != 0 {
		t.Fatal("SACK blocks with nothing out of order")
	}
}

func TestNoSACKWhenNotPermitted(t *testing.T) {
	tc := newEstablished(t)
	tc.in(seg{flags: A, seq: irs + 101, ack: iss + 1, data: payload(100, 0)})
	if s := tc.want("dup ACK", seg{flags: A, seq: iss + 1, ack: irs + 1}); s.Options.NumSACK != 0 {
		t.Fatal("SACK blocks sent without SACK-permitted")
	}
}

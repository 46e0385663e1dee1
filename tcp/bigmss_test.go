package tcp

import (
	"testing"

	"github.com/synack/synack/wire"
)

// At a large MSS (a link MTU of 65,535: MSS 65,495, 65,483 with
// timestamps) the modest first receive window of 64 KiB (autotune.go) is
// one segment. A sender may start with two (RFC 6928's IW at that MSS),
// and a receiver ACKs every second full-sized segment (RFC 9293 3.8.6.3):
// with room for one, every segment waited for the delayed-ACK timer, and
// a window reopened by less than an MSS waited for a persist probe.

// bigMSSConfig is a 1 MiB receive buffer (window scale 5) and the MSS of
// a 65,535-byte IPv4 link, with auto-tuning on.
func bigMSSConfig(c *Config) {
	c.MSS = 65495
	c.NoWindowScale = false
	c.ReceiveBufferSize = 1 << 20
	c.SendBufferSize = 1 << 20
}

// The first window is at least twice the sender's initial window at the
// connection's MSS, on a passive open (the SYN tells the MSS) and on an
// active one (the SYN,ACK does; our SYN went out before we knew it).
// At an ordinary MSS it stays 64 KiB.
func TestInitialWindowAtLargeMSS(t *testing.T) {
	const big = 65495
	atLeast := 2 * initialWindow(big) // 4 segments: IW is 2 at this MSS
	ws := wire.TCPOptions{HasMSS: true, MSS: big, HasWindowScale: true, WindowScale: 5}

	t.Run("active", func(t *testing.T) {
		tc := newSynSent(t, bigMSSConfig)
		tc.in(seg{flags: S | A, seq: irs, ack: iss + 1, opts: ws})
		ack := tc.want("ACK of SYN,ACK", seg{flags: A, seq: iss + 1, ack: irs + 1})
		// (A scaled window names edges on its granularity: 32 bytes.)
		if got := int(ack.Window) << 5; got <= atLeast-32 {
			t.Errorf("first window %d at MSS %d, want at least %d (2 x IW)", got, big, atLeast)
		}
		if got := tc.c.Info().RcvSpace; got < atLeast {
			t.Errorf("RcvSpace %d, want at least %d", got, atLeast)
		}
	})
	t.Run("passive", func(t *testing.T) {
		tc := newListen(t, bigMSSConfig)
		tc.in(seg{flags: S, seq: irs, opts: ws})
		tc.want("SYN,ACK", seg{flags: S | A, seq: iss, ack: irs + 1})
		tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1})
		if got := tc.c.Info().RcvSpace; got < atLeast {
			t.Errorf("RcvSpace %d at MSS %d, want at least %d (2 x IW)", got, big, atLeast)
		}
		// The first segment's ACK offers the rest of it.
		tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1, data: payload(big, 'a')})
		tc.in(seg{flags: A, seq: irs + 1 + big, ack: iss + 1, data: payload(big, 'b')})
		ack := tc.want("ACK of two full segments", seg{flags: A, seq: iss + 1, ack: irs + 1 + 2*big})
		if got := int(ack.Window) << 5; got <= atLeast-2*big-32 {
			t.Errorf("window %d after two segments, want at least %d", got, atLeast-2*big)
		}
	})
	t.Run("ordinary MSS", func(t *testing.T) {
		tc := newSynSent(t, bigMSSConfig)
		tc.in(seg{flags: S | A, seq: irs, ack: iss + 1, opts: wire.TCPOptions{HasMSS: true, MSS: 1460, HasWindowScale: true, WindowScale: 5}})
		tc.want("ACK of SYN,ACK", seg{flags: A, seq: iss + 1, ack: irs + 1})
		if got := tc.c.Info().RcvSpace; got != initialRcvWindow {
			t.Errorf("RcvSpace %d at MSS 1460, want %d", got, initialRcvWindow)
		}
	})
}

// Receiver-side silly window avoidance (RFC 9293 3.8.6.2.2) moves the
// right edge by min(Fr x RCV.BUFF, Eff.snd.MSS). With auto-tuning the
// buffer the window is offered from is the limit it has grown to, not the
// whole ReceiveBufferSize: against the whole buffer, the step is one MSS,
// and a window limited to about one segment, once drained, gains less
// than that, so it never reopened until the peer's persist probe (the
// 40 ms + 200 ms start stall of issue 13). Here the limit is held at
// 64 KiB, one segment and 53 bytes, as it was before the first window
// grew with the MSS: the limit and the edge advertised are set so.
func TestWindowOfOneSegmentReopens(t *testing.T) {
	const big = 65495
	tc := newSynSent(t, bigMSSConfig)
	tc.in(seg{flags: S | A, seq: irs, ack: iss + 1, opts: wire.TCPOptions{HasMSS: true, MSS: big, HasWindowScale: true, WindowScale: 5}})
	tc.want("ACK of SYN,ACK", seg{flags: A, seq: iss + 1, ack: irs + 1})
	tc.c.rcv.space.limit = 64 << 10
	tc.c.rcv.advEdge = irs + 1 + 64<<10

	// A write's last, short segment fills the window but for 106 bytes;
	// it is one segment, so its ACK may be delayed.
	n := 64<<10 - 106
	tc.in(seg{flags: A | P, seq: irs + 1, ack: iss + 1, data: payload(n, 'x')})
	tc.drain()
	// The application reads it all: 64 KiB of room again, and the peer
	// knows of 106 bytes. The window update goes out now.
	if got := len(tc.read()); got != n {
		t.Fatalf("read %d bytes, want %d", got, n)
	}
	var upd *Segment
	for _, s := range tc.drain() {
		if s.Ack == irs+1+seqv(uint32(n)) {
			upd = &s
		}
	}
	if upd == nil {
		t.Fatalf("no ACK with a window update after the read: the peer waits for a delayed ACK or its persist probe")
	}
	if got := int(upd.Window) << 5; got < 32<<10 {
		t.Errorf("window update offers %d, want at least half the limit (%d)", got, 32<<10)
	}
}

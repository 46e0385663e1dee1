package tcp

import (
	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/wire"
	"testing"
	"time"
)

// The receiver's ACK policy: immediate ACKs for out-of-order data and
// for data that fills a hole (RFC 5681 section 4.2), an ACK for at least
// every second full-sized segment (RFC 9293 3.8.6.3), quick-ACK mode at
// the start, after idle and after out-of-order data (Config.QuickACKs),
// delayed ACKs otherwise.

// inSmall injects n bytes of in-order data at offset off from irs+1.
func (tc *tconn) inSmall(off, n int) {
	tc.t.Helper()
	tc.in(seg{flags: A, seq: irs + 1 + seqValue(off), ack: iss + 1, data: payload(n, byte(off))})
}

func seqValue(n int) seqnum.Value { return seqnum.Value(n) }

// wantImmediateACK takes the ACK of everything up to off, sent at once.
func (tc *tconn) wantImmediateACK(why string, off int) {
	tc.t.Helper()
	tc.want(why, seg{flags: A, seq: tc.c.snd.max, ack: irs + 1 + seqValue(off)})
}

// wantDelayedACK checks that nothing went out and the delayed-ACK timer
// runs, then fires it and takes the ACK of everything up to off.
func (tc *tconn) wantDelayedACK(why string, off int) {
	tc.t.Helper()
	tc.wantNothing(why + ": the ACK waits")
	tc.wantDeadlineIn(why+": the delayed-ACK timer", DefaultDelayedACK)
	tc.advanceToDeadline()
	tc.wantImmediateACK(why+": the delayed ACK", off)
}

func TestQuickACKAtStart(t *testing.T) {
	// 16 KiB of window and 1000-byte segments: half the window is 8
	// full-sized segments, which bounds Linux's 16.
	tc := newEstablishedMSS(t, 1000, withQuickACK)
	off := 0
	for i := range 8 {
		tc.inSmall(off, 100)
		off += 100
		tc.wantImmediateACK("quick-ACK mode: segment "+string(rune('1'+i))+" acknowledged at once", off)
	}
	tc.inSmall(off, 100)
	tc.wantDelayedACK("after 8 quick ACKs the ninth is delayed", off+100)
}

func TestQuickACKDefaultCount(t *testing.T) {
	// With a 1 MiB window the default of 16 (Linux's) holds.
	tc := newEstablishedSACK(t, withQuickACK)
	off := 0
	for range 16 {
		tc.inSmall(off, 100)
		off += 100
		tc.wantImmediateACK("one of the first 16 segments", off)
	}
	tc.inSmall(off, 100)
	tc.wantDelayedACK("the 17th", off+100)
}

func TestQuickACKOff(t *testing.T) {
	tc := newEstablished(t) // the fixture sets NoQuickACK
	tc.inSmall(0, 100)
	tc.wantDelayedACK("no quick-ACK mode: the first segment's ACK is delayed", 100)
}

func TestQuickACKAfterOutOfOrder(t *testing.T) {
	tc := newEstablished(t, withQuickACK, func(c *Config) { c.QuickACKs = 2 })
	tc.inSmall(0, 100)
	tc.wantImmediateACK("quick 1", 100)
	tc.inSmall(100, 100)
	tc.wantImmediateACK("quick 2", 200)
	tc.inSmall(200, 100)
	tc.wantDelayedACK("quick-ACK mode over", 300)

	tc.inSmall(400, 100)
	tc.wantImmediateACK("out of order: a duplicate ACK at once (RFC 5681 4.2)", 300)
	tc.inSmall(300, 100)
	tc.wantImmediateACK("the hole filled: at once (RFC 5681 4.2)", 500)
	tc.inSmall(500, 100)
	tc.wantImmediateACK("after out-of-order data quick-ACK mode is on again", 600)
	tc.inSmall(600, 100)
	tc.wantDelayedACK("for QuickACKs segments, the repair included", 700)
}

func TestQuickACKAfterIdle(t *testing.T) {
	tc := newEstablished(t, withQuickACK, func(c *Config) { c.QuickACKs = 1 })
	tc.inSmall(0, 100)
	tc.wantImmediateACK("quick", 100)
	tc.inSmall(100, 100)
	tc.wantDelayedACK("quick-ACK mode over", 200)
	tc.advance(500 * time.Millisecond) // under the RTO (1 s in the fixture)
	tc.inSmall(200, 100)
	tc.wantDelayedACK("a pause shorter than the RTO is no idle period", 300)
	tc.advance(2 * time.Second)
	tc.inSmall(300, 100)
	tc.wantImmediateACK("after more than an RTO of silence: quick-ACK mode again", 400)
}

func TestQuickACKNotAfterIdleWhenInteractive(t *testing.T) {
	// Request and response: we answered the last data, so our next data
	// carries the ACK; a pause is no reason to ACK at once.
	tc := newEstablished(t, withQuickACK, withNoDelay, func(c *Config) { c.QuickACKs = 1 })
	tc.inSmall(0, 100)
	tc.wantImmediateACK("quick", 100)
	tc.write([]byte("response"))
	tc.want("the response", seg{flags: A | P, seq: iss + 1, ack: irs + 101, data: []byte("response")})
	tc.in(seg{flags: A, seq: irs + 101, ack: iss + 9})
	tc.advance(2 * time.Second)
	tc.inSmall(100, 100)
	tc.wantDelayedACK("the next request after a pause", 200)
}

func TestACKEverySecondFullSizedSegment(t *testing.T) {
	// RFC 9293 3.8.6.3 / RFC 5681 4.2: "an ACK SHOULD be generated for
	// at least every second full-sized segment" (MSS 1000 here).
	tc := newEstablishedMSS(t, 1000)
	tc.inSmall(0, 1000)
	tc.wantNothing("one full-sized segment: the ACK may wait")
	tc.inSmall(1000, 1000)
	tc.wantImmediateACK("the second: ACK at once", 2000)

	// Counted in bytes: a segment of two MSS (a peer's segmentation
	// offload) is acknowledged at once ...
	tc.inSmall(2000, 2000)
	tc.wantImmediateACK("a two-MSS segment", 4000)
	// ... and so is the third of three 700-byte segments, which carry
	// more than two full-sized segments between them.
	tc.inSmall(4000, 700)
	tc.inSmall(4700, 700)
	tc.wantNothing("1400 bytes: the ACK may wait")
	tc.inSmall(5400, 700)
	tc.wantImmediateACK("2100 bytes unacknowledged", 6100)
}

func TestACKFillingAHole(t *testing.T) {
	// RFC 5681 4.2: "A TCP receiver SHOULD send an immediate ACK when the
	// incoming segment fills in all or part of a gap in the sequence
	// space" (RFC 9293 3.10.7.4 "seventh"); out-of-order data is acked
	// at once too (a duplicate ACK).
	tc := newEstablished(t)
	tc.inSmall(300, 100)
	tc.wantImmediateACK("out of order", 0)
	tc.inSmall(0, 100)
	tc.wantImmediateACK("part of the hole", 100)
	tc.inSmall(100, 200)
	tc.wantImmediateACK("the rest of the hole", 400)
	tc.inSmall(400, 100)
	tc.wantDelayedACK("in order again, no quick-ACK mode: delayed", 500)
}

func TestPartialDuplicateACKedAtOnce(t *testing.T) {
	// A retransmission that overlaps what we have: our ACK was lost or
	// late, so the new one goes at once (with SACK it carries a D-SACK,
	// see rcvsack_test.go).
	tc := newEstablished(t)
	tc.inSmall(0, 100)
	tc.drain()
	tc.in(seg{flags: A, seq: irs + 51, ack: iss + 1, data: payload(100, 0)})
	tc.wantImmediateACK("partly a duplicate", 150)
}

func TestCloseReadSendsNothingAndDataIsStillAcked(t *testing.T) {
	// Passive open with a 1 MiB buffer: the SYN,ACK offered 65535
	// (unscaled), the scaled window now is larger. shutdown(SHUT_RD)
	// with nothing buffered sends nothing (Linux neither), and data
	// arriving afterwards is acknowledged (at once in quick-ACK mode)
	// and discarded.
	tc := newListen(t, withOptions, withQuickACK, func(c *Config) { c.ReceiveBufferSize = 1 << 20 })
	ts := wire.TCPOptions{HasTimestamps: true, TSVal: 2}
	tc.in(seg{flags: S, seq: irs, opts: synOpts(7, 1)})
	tc.want("SYN,ACK", seg{flags: S | A, seq: iss, ack: irs + 1})
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1, opts: ts})
	tc.wantState("established", Established)
	tc.wantNothing("the handshake's last ACK needs no answer")
	tc.c.CloseRead(tc.now)
	tc.wantNothing("CloseRead with nothing buffered")
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1, data: payload(1000, 0), opts: ts})
	tc.want("data after CloseRead is acknowledged at once", seg{flags: A, seq: iss + 1, ack: irs + 1001})
	if tc.c.Readable() != 0 {
		t.Fatal("data after CloseRead is readable")
	}
}

func TestCloseReadWithBufferedDataUpdatesTheWindow(t *testing.T) {
	// Dropping unread data opens the window as reading it would: the
	// window update goes out as after a Read (RFC 9293 3.8.6.2.2).
	tc := newEstablishedMSS(t, 1000)
	for off := 0; off < 12000; off += 1000 {
		tc.inSmall(off, 1000)
	}
	tc.advance(time.Second)
	tc.drain()
	tc.c.CloseRead(tc.now)
	tc.want("window update", seg{flags: A, seq: iss + 1, ack: irs + 12001, win: 16384})
}

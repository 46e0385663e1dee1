package tcp

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/wire"
)

// The SACK blocks a receiver sends: their order (RFC 2018 section 4).

// newEstablishedSACKTS is newEstablishedSACK with timestamps in use too,
// so only 3 SACK blocks fit in an ACK (RFC 2018 section 3).
func newEstablishedSACKTS(t *testing.T, mods ...func(*Config)) *tconn {
	mods = append([]func(*Config){withOptions, func(c *Config) { c.ReceiveBufferSize = 1 << 20 }}, mods...)
	tc := newTC(t, mods...)
	tc.c.Connect(tc.now)
	tc.drain()
	o := synOpts(7, 1)
	o.MSS = 1000
	tc.in(seg{flags: S | A, seq: irs, ack: iss + 1, opts: o})
	tc.want("ACK of SYN,ACK", seg{flags: A, seq: iss + 1, ack: irs + 1})
	tc.wantState("handshake done", Established)
	return tc
}

// blk is a SACK block as offsets from the peer's first data byte (irs+1).
type blk struct{ start, end int }

func (b blk) String() string { return fmt.Sprintf("%d-%d", b.start, b.end) }

func blocksOf(s Segment) []blk {
	var out []blk
	for _, b := range s.Options.SACK() {
		out = append(out, blk{int(b.Start - (irs + 1)), int(b.End - (irs + 1))})
	}
	return out
}

func fmtBlocks(bs []blk) string {
	var s []string
	for _, b := range bs {
		s = append(s, b.String())
	}
	return "[" + strings.Join(s, " ") + "]"
}

// inData injects data [start, end) (offsets from irs+1), with a
// timestamp when the connection uses them.
func (tc *tconn) inData(start, end int) {
	tc.t.Helper()
	s := seg{flags: A, seq: irs + 1 + seqnum.Value(start), ack: iss + 1, data: payload(end-start, byte(start))}
	if tc.c.tsOK {
		s.opts = wire.TCPOptions{HasTimestamps: true, TSVal: 2}
	}
	tc.in(s)
}

// wantSACK takes the next segment: an ACK of rcvNxt (offset) carrying
// exactly the blocks want, in that order.
func (tc *tconn) wantSACK(why string, rcvNxt int, want ...blk) Segment {
	tc.t.Helper()
	s := tc.want(why, seg{flags: A, seq: iss + 1, ack: irs + 1 + seqnum.Value(rcvNxt)})
	got := blocksOf(s)
	if fmtBlocks(got) != fmtBlocks(want) {
		tc.t.Fatalf("%s: SACK blocks %s, want %s", why, fmtBlocks(got), fmtBlocks(want))
	}
	return s
}

func TestSACKOrderMostRecentFirst(t *testing.T) {
	// RFC 2018 section 4: "The first SACK block ... MUST specify the
	// contiguous block of data containing the segment which triggered
	// this ACK"; the others repeat "the most recently reported SACK
	// blocks". Without timestamps 4 blocks fit.
	tc := newEstablishedSACK(t)
	tc.inData(1000, 2000)
	tc.wantSACK("first island", 0, blk{1000, 2000})
	tc.inData(3000, 4000)
	tc.wantSACK("second island first", 0, blk{3000, 4000}, blk{1000, 2000})
	tc.inData(5000, 6000)
	tc.wantSACK("third", 0, blk{5000, 6000}, blk{3000, 4000}, blk{1000, 2000})
	tc.inData(7000, 8000)
	tc.wantSACK("fourth", 0, blk{7000, 8000}, blk{5000, 6000}, blk{3000, 4000}, blk{1000, 2000})
	tc.inData(9000, 10000)
	tc.wantSACK("fifth: the least recently reported block no longer fits", 0,
		blk{9000, 10000}, blk{7000, 8000}, blk{5000, 6000}, blk{3000, 4000})

	// A segment that extends an older island puts that island first;
	// the rest keep their order of recency, not of sequence numbers.
	tc.inData(2000, 2500)
	tc.wantSACK("an old island grows: it goes first", 0,
		blk{1000, 2500}, blk{9000, 10000}, blk{7000, 8000}, blk{5000, 6000})
	tc.inData(4000, 5000)
	tc.wantSACK("two islands merge: reported once, first", 0,
		blk{3000, 6000}, blk{1000, 2500}, blk{9000, 10000}, blk{7000, 8000})

	// An in-order segment that fills the first hole moves the ACK; the
	// remaining islands keep their order (RFC 2018 section 4 puts no
	// constraint on the first block then).
	tc.inData(0, 1000)
	tc.wantSACK("hole filled: the island joins the in-order data", 2500,
		blk{3000, 6000}, blk{9000, 10000}, blk{7000, 8000})
}

func TestSACKOrderWithTimestampsThreeBlocks(t *testing.T) {
	// With timestamps (10 bytes of option space, 12 with padding) only 3
	// blocks fit in the 40 bytes (RFC 2018 section 3).
	tc := newEstablishedSACKTS(t)
	for i := 1; i <= 4; i++ {
		tc.inData(2000*i, 2000*i+1000)
		tc.drain()
	}
	tc.inData(1000, 1500)
	tc.wantSACK("the triggering island, then the two most recent", 0,
		blk{1000, 1500}, blk{8000, 9000}, blk{6000, 7000})
	tc.inData(5000, 5500)
	tc.wantSACK("an island extended at its end goes first", 0,
		blk{4000, 5500}, blk{1000, 1500}, blk{8000, 9000})
}

func TestSACKOrderDelayedACK(t *testing.T) {
	// The delayed ACK of in-order data still carries the islands held,
	// most recently reported first.
	tc := newEstablishedSACK(t)
	tc.inData(3000, 4000)
	tc.drain()
	tc.inData(6000, 7000)
	tc.drain()
	tc.inData(4000, 4500)
	tc.drain()
	tc.c.sendACK(tc.now)
	tc.wantSACK("an ACK sent later: the same order", 0, blk{3000, 4500}, blk{6000, 7000})
}

func TestSACKOrderAfterPruneAndDelivery(t *testing.T) {
	// Islands that were delivered or pruned leave the recency list; an
	// island never reported first fills the room that leaves.
	tc := newEstablishedSACK(t)
	for _, b := range []blk{{5000, 6000}, {3000, 4000}, {1000, 2000}} {
		tc.inData(b.start, b.end)
		tc.drain()
	}
	tc.inData(0, 1000) // delivers 0-2000
	tc.wantSACK("delivered island gone", 2000, blk{3000, 4000}, blk{5000, 6000})
	tc.c.Prune()
	tc.inData(8000, 9000)
	tc.wantSACK("after Prune only the new island", 2000, blk{8000, 9000})
}

// Keeping the order allocates nothing: a duplicate out-of-order segment
// (no new bytes to copy) is answered with a SACK without allocating.
func TestSACKOrderAllocs(t *testing.T) {
	tc := newEstablishedSACKTS(t)
	tc.c.sink = nullSink{}
	for i := 1; i <= 5; i++ {
		tc.inData(2000*i, 2000*i+1000)
	}
	in := &Segment{Flags: A, Window: 65535, Seq: irs + 1 + 4000, Ack: iss + 1, Payload: payload(1000, 0),
		Options: wire.TCPOptions{HasTimestamps: true, TSVal: 2}}
	if n := testing.AllocsPerRun(100, func() {
		tc.c.HandleSegment(tc.now, in)
		tc.now = tc.now.Add(time.Millisecond)
	}); n != 0 {
		t.Errorf("a SACK answering a duplicate out-of-order segment: %v allocations, want 0", n)
	}
}

// D-SACK (RFC 2883): a duplicate is reported in the first SACK block of
// an ACK sent at once, followed by the island holding it, then the
// ordinary blocks.

func TestDSACKBelowCumulativeACK(t *testing.T) {
	// RFC 2883 section 4.1.1 (example 1): a segment wholly before
	// RCV.NXT arrives again (its ACK was lost, the sender retransmitted).
	tc := newEstablishedSACK(t)
	tc.inData(0, 1000)
	tc.inData(1000, 2000)
	tc.drain()
	tc.inData(0, 1000)
	tc.wantSACK("the duplicate is reported at once, below the ACK", 2000, blk{0, 1000})
	if got := tc.c.Stats().DSACKsSent; got != 1 {
		t.Fatalf("DSACKsSent = %d, want 1", got)
	}
	tc.inData(2000, 2500)
	tc.advance(time.Second)
	tc.wantSACK("the next ACK does not repeat it (section 4 (2))", 2500)
}

func TestDSACKBelowCumulativeACKWithIslands(t *testing.T) {
	// RFC 2883 section 4.1.2 (example 2): a duplicate before RCV.NXT
	// while out-of-order data is held: the D-SACK block first, then the
	// ordinary SACK blocks.
	tc := newEstablishedSACK(t)
	tc.inData(0, 1000)
	tc.inData(3000, 4000)
	tc.drain()
	tc.inData(0, 1000)
	tc.wantSACK("D-SACK, then the island", 1000, blk{0, 1000}, blk{3000, 4000})
}

func TestDSACKOfOutOfOrderData(t *testing.T) {
	// RFC 2883 section 4.1.3 (example 3): a duplicate of data held out of
	// order: the D-SACK block, then the (larger) island holding it, then
	// the other islands.
	tc := newEstablishedSACK(t)
	tc.inData(5000, 6000)
	tc.inData(3000, 4000)
	tc.inData(7000, 8000)
	tc.drain()
	tc.inData(3000, 3500)
	tc.wantSACK("D-SACK, its island, then the most recently reported", 0,
		blk{3000, 3500}, blk{3000, 4000}, blk{7000, 8000}, blk{5000, 6000})
	tc.inData(8000, 8500)
	tc.wantSACK("reported once: the next ACK has none", 0,
		blk{7000, 8500}, blk{3000, 4000}, blk{5000, 6000})
}

func TestDSACKPartialBelowCumulativeACK(t *testing.T) {
	// RFC 2883 section 4.2.1 (example 4): a larger retransmission whose
	// first part was received: only that part is reported, and the ACK
	// goes out at once though the rest was new, in-order data.
	tc := newEstablishedSACK(t)
	tc.inData(0, 500)
	tc.drain()
	tc.inData(0, 1000)
	tc.wantSACK("the duplicate part only", 1000, blk{0, 500})
}

func TestDSACKPartialFirstRunOnly(t *testing.T) {
	// RFC 2883 sections 4.2.2 and 4.2.3 (examples 5 and 6): a segment
	// holding two non-contiguous duplicate runs reports only the first.
	t.Run("one run below RCV.NXT, one in an island", func(t *testing.T) {
		tc := newEstablishedSACK(t)
		tc.inData(0, 1000)
		tc.inData(1500, 2000)
		tc.drain()
		tc.inData(500, 2500)
		tc.wantSACK("the run below RCV.NXT", 2500, blk{500, 1000})
	})
	t.Run("two runs in islands", func(t *testing.T) {
		tc := newEstablishedSACK(t)
		tc.inData(2000, 2500)
		tc.inData(3000, 3500)
		tc.drain()
		tc.inData(2000, 4000)
		tc.wantSACK("the first run, then the island it is now part of", 0,
			blk{2000, 2500}, blk{2000, 4000})
	})
}

func TestDSACKNeedsSACK(t *testing.T) {
	// A D-SACK block is a SACK block: without SACK-permitted none is sent
	// (RFC 2883 section 4, RFC 2018 section 2).
	tc := newEstablished(t)
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1, data: payload(100, 0)})
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1, data: payload(100, 0)})
	s := tc.want("plain ACK of the duplicate", seg{flags: A, seq: iss + 1, ack: irs + 101})
	if s.Options.NumSACK != 0 || tc.c.Stats().DSACKsSent != 0 {
		t.Fatalf("SACK blocks %v sent without SACK-permitted", s.Options.SACK())
	}
}

func TestDSACKWithTimestamps(t *testing.T) {
	// With timestamps 3 blocks fit: the D-SACK block takes one of them.
	tc := newEstablishedSACKTS(t)
	for i := 1; i <= 4; i++ {
		tc.inData(2000*i, 2000*i+1000)
	}
	tc.drain()
	tc.inData(4000, 4500)
	tc.wantSACK("D-SACK, its island, the most recent other", 0,
		blk{4000, 4500}, blk{4000, 5000}, blk{8000, 9000})
}

func TestDSACKOfPAWSRejectedDuplicate(t *testing.T) {
	// An old duplicate that PAWS rejects (RFC 7323 section 5.3) is
	// answered with the ACK R1 asks for; what of it lies before RCV.NXT
	// was received already, and is reported.
	tc := newEstablishedSACKTS(t)
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1, data: payload(1000, 0), opts: wire.TCPOptions{HasTimestamps: true, TSVal: 5}})
	tc.drain()
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1, data: payload(1000, 0), opts: wire.TCPOptions{HasTimestamps: true, TSVal: 4}})
	tc.wantSACK("PAWS ACK with a D-SACK block", 1000, blk{0, 1000})
	if tc.c.Stats().PAWSRejected != 1 {
		t.Fatal("the segment was not rejected by PAWS")
	}
}

func TestDSACKInOrderSegmentRepeatingAnIsland(t *testing.T) {
	// An in-order segment whose tail was held out of order: the tail is
	// the duplicate (RFC 2883 section 4.2.3); the island joins the
	// in-order data and the other islands follow.
	tc := newEstablishedSACK(t)
	tc.inData(1500, 2000)
	tc.inData(500, 1000)
	tc.drain()
	tc.inData(0, 1000)
	tc.wantSACK("D-SACK of the tail, then the island left", 1000, blk{500, 1000}, blk{1500, 2000})
}

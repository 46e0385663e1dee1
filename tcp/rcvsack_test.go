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
	tc.inData(4500, 5000)
	tc.wantSACK("an island extended at its end goes first", 0,
		blk{4000, 5000}, blk{1000, 1500}, blk{8000, 9000})
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

package tcp

import (
	"testing"

	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/wire"
)

// sackOpts builds a SACK option from [start, end) pairs.
func sackOpts(pairs ...seqnum.Value) wire.TCPOptions {
	var o wire.TCPOptions
	for i := 0; i+1 < len(pairs); i += 2 {
		o.SACKBlocks[o.NumSACK] = wire.SACKBlock{Start: pairs[i], End: pairs[i+1]}
		o.NumSACK++
	}
	return o
}

func (sb *scoreboard) ranges() []sackRange { return append([]sackRange(nil), sb.r[:sb.n]...) }

// RFC 6675 section 4 / RFC 2018 section 5: blocks are recorded, merged and
// forgotten once cumulatively acknowledged.
func TestScoreboardRFC6675Update(t *testing.T) {
	var sb scoreboard
	una, max := seqnum.Value(1000), seqnum.Value(11000)
	o := sackOpts(3000, 4000)
	if u := sb.update(&o, una, una, max, nil); u.newlySACKed != 1000 || u.dsack {
		t.Fatalf("first block: %+v", u)
	}
	o = sackOpts(5000, 6000, 3000, 4000)
	if u := sb.update(&o, una, una, max, nil); u.newlySACKed != 1000 {
		t.Fatalf("second block: %+v", u)
	}
	o = sackOpts(4000, 5000, 3000, 6000)
	sb.update(&o, una, una, max, nil)
	if r := sb.ranges(); len(r) != 1 || r[0] != (sackRange{3000, 6000}) || sb.sacked != 3000 {
		t.Fatalf("merge: %v sacked %d", r, sb.sacked)
	}
	// A cumulative ACK to 4000 trims the range.
	o = sackOpts(3000, 6000)
	sb.update(&o, 4000, 4000, max, nil)
	if r := sb.ranges(); len(r) != 1 || r[0] != (sackRange{4000, 6000}) || sb.sacked != 2000 {
		t.Fatalf("advance: %v sacked %d", r, sb.sacked)
	}
	o = wire.TCPOptions{}
	sb.update(&o, 7000, 7000, max, nil)
	if !sb.empty() || sb.sacked != 0 {
		t.Fatalf("everything acknowledged: %v sacked %d", sb.ranges(), sb.sacked)
	}
}

// RFC 2018 section 5: blocks outside SND.UNA..SND.MAX are ignored.
func TestScoreboardRFC2018BogusBlocks(t *testing.T) {
	var sb scoreboard
	una, max := seqnum.Value(1000), seqnum.Value(5000)
	for _, o := range []wire.TCPOptions{
		sackOpts(4000, 6000),   // beyond SND.MAX
		sackOpts(3000, 3000),   // empty
		sackOpts(3000, 2000),   // reversed
		sackOpts(100, 1<<31+5), // absurd length
	} {
		u := sb.update(&o, una, una, max, nil)
		if u.bogus == 0 || !sb.empty() {
			t.Fatalf("%v: %+v ranges %v", o.SACKBlocks[0], u, sb.ranges())
		}
	}
}

// RFC 2883 section 4: a first block below the cumulative ACK, or inside
// the second block, is a D-SACK: reported, not marked SACKed.
func TestScoreboardRFC2883DSACK(t *testing.T) {
	var sb scoreboard
	una, max := seqnum.Value(3000), seqnum.Value(9000)
	o := sackOpts(1000, 2000)
	if u := sb.update(&o, una, una, max, nil); !u.dsack || u.dsackStart != 1000 || !sb.empty() {
		t.Fatalf("below SND.UNA: %+v %v", u, sb.ranges())
	}
	o = sackOpts(5000, 6000, 4000, 7000)
	u := sb.update(&o, una, una, max, nil)
	if !u.dsack || u.dsackStart != 5000 {
		t.Fatalf("inside the second block: %+v", u)
	}
	if r := sb.ranges(); len(r) != 1 || r[0] != (sackRange{4000, 7000}) {
		t.Fatalf("the second block still counts: %v", r)
	}
}

// The scoreboard's memory is fixed: past maxSACKRanges holes the highest
// ranges are forgotten.
func TestScoreboardBounded(t *testing.T) {
	var sb scoreboard
	for i := 0; i < 3*maxSACKRanges; i++ {
		s := seqnum.Value(1000 + 2000*i)
		sb.add(s, s+1000, nil)
	}
	if sb.n != maxSACKRanges || sb.sacked != maxSACKRanges*1000 {
		t.Fatalf("%d ranges, %d bytes", sb.n, sb.sacked)
	}
	// A range below the others still gets in, pushing out the highest.
	sb.add(500, 600, nil)
	if sb.r[0] != (sackRange{500, 600}) || sb.n != maxSACKRanges {
		t.Fatalf("low range: %v", sb.ranges()[:2])
	}
}

// RFC 6675 section 4, IsLost: DupThresh discontiguous SACKed ranges above
// the byte, or more than (DupThresh-1)*SMSS SACKed bytes.
func TestScoreboardRFC6675IsLost(t *testing.T) {
	var sb scoreboard
	una := seqnum.Value(1000)
	mss := 1000
	sb.add(2000, 3000, nil)
	sb.add(4000, 5000, nil)
	if sb.isLost(1000, una, mss) {
		t.Fatal("two SACKed segments: not lost yet")
	}
	sb.add(6000, 6001, nil)
	if !sb.isLost(1000, una, mss) || sb.isLost(3500, una, mss) || sb.isLost(2500, una, mss) {
		t.Fatal("three discontiguous ranges above 1000: lost; above 3500 only two; 2500 is SACKed")
	}
	var sb2 scoreboard
	sb2.add(2000, 4001, nil) // 2001 bytes > 2 * SMSS
	if !sb2.isLost(1000, una, mss) || sb2.isLost(2500, una, mss) {
		t.Fatal("more than (DupThresh-1)*SMSS bytes above: lost")
	}
	// pipe: 1000..2000 lost, 4001..9000 in flight; 1000..1500 resent.
	if p := sb2.pipe(una, 9000, sb2.lostBelow(una, mss), 1500); p != 4999+500 {
		t.Fatalf("pipe %d", p)
	}
	if s, e := sb2.nextHole(1000, 9000); s != 1000 || e != 2000 {
		t.Fatalf("hole %d-%d", s, e)
	}
	if s, e := sb2.nextHole(2500, 9000); s != 4001 || e != 9000 {
		t.Fatalf("hole after a range %d-%d", s, e)
	}
}

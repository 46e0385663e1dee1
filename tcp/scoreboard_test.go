package tcp

import (
	"fmt"
	"math/rand"
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

func (sb *scoreboard) ranges() []sackRange { return append([]sackRange(nil), sb.r...) }

// noLimit is a range limit no test reaches, for tests of add alone.
const noLimit = 1 << 30

// RFC 6675 section 4 / RFC 2018 section 5: blocks are recorded, merged and
// forgotten once cumulatively acknowledged.
func TestScoreboardRFC6675Update(t *testing.T) {
	var sb scoreboard
	una, max := seqnum.Value(1000), seqnum.Value(11000)
	o := sackOpts(3000, 4000)
	if u := sb.update(&o, una, una, max, 1000, nil); u.newlySACKed != 1000 || u.dsack {
		t.Fatalf("first block: %+v", u)
	}
	o = sackOpts(5000, 6000, 3000, 4000)
	if u := sb.update(&o, una, una, max, 1000, nil); u.newlySACKed != 1000 {
		t.Fatalf("second block: %+v", u)
	}
	o = sackOpts(4000, 5000, 3000, 6000)
	sb.update(&o, una, una, max, 1000, nil)
	if r := sb.ranges(); len(r) != 1 || r[0] != (sackRange{3000, 6000}) || sb.sacked != 3000 {
		t.Fatalf("merge: %v sacked %d", r, sb.sacked)
	}
	// A cumulative ACK to 4000 trims the range.
	o = sackOpts(3000, 6000)
	sb.update(&o, 4000, 4000, max, 1000, nil)
	if r := sb.ranges(); len(r) != 1 || r[0] != (sackRange{4000, 6000}) || sb.sacked != 2000 {
		t.Fatalf("advance: %v sacked %d", r, sb.sacked)
	}
	o = wire.TCPOptions{}
	sb.update(&o, 7000, 7000, max, 1000, nil)
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
		u := sb.update(&o, una, una, max, 1000, nil)
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
	if u := sb.update(&o, una, una, max, 1000, nil); !u.dsack || u.dsackStart != 1000 || !sb.empty() {
		t.Fatalf("below SND.UNA: %+v %v", u, sb.ranges())
	}
	o = sackOpts(5000, 6000, 4000, 7000)
	u := sb.update(&o, una, una, max, 1000, nil)
	if !u.dsack || u.dsackStart != 5000 {
		t.Fatalf("inside the second block: %+v", u)
	}
	if r := sb.ranges(); len(r) != 1 || r[0] != (sackRange{4000, 7000}) {
		t.Fatalf("the second block still counts: %v", r)
	}
}

// Past its limit the scoreboard forgets the highest ranges.
func TestScoreboardBounded(t *testing.T) {
	var sb scoreboard
	const limit = 16
	for i := 0; i < 3*limit; i++ {
		s := seqnum.Value(1000 + 2000*i)
		sb.add(s, s+1000, limit, nil)
	}
	if len(sb.r) != limit || sb.sacked != limit*1000 {
		t.Fatalf("%d ranges, %d bytes", len(sb.r), sb.sacked)
	}
	// A range below the others still gets in, pushing out the highest.
	sb.add(500, 600, limit, nil)
	if sb.r[0] != (sackRange{500, 600}) || len(sb.r) != limit || sb.r[limit-1] != (sackRange{29000, 30000}) {
		t.Fatalf("low range: %v", sb.ranges())
	}
}

// The limit is the flight's: every other segment of a 2,000-segment flight
// SACKed is 1,000 ranges, all held, four blocks per ACK as a peer sends
// them; the memory grows with them and is released when SND.UNA passes
// them all.
func TestScoreboardGrowsWithFlight(t *testing.T) {
	var sb scoreboard
	const mss, segs = 1000, 2000
	una := seqnum.Value(1 << 31)
	max := una.Add(mss * segs)
	if sb.r != nil {
		t.Fatal("a new scoreboard allocates")
	}
	for i := 1; i < segs; i += 8 {
		var p []seqnum.Value
		for k := i; k < i+8 && k < segs; k += 2 {
			p = append(p, una.Add(seqnum.Size(k*mss)), una.Add(seqnum.Size((k+1)*mss)))
		}
		o := sackOpts(p...)
		sb.update(&o, una, una, max, mss, nil)
	}
	if len(sb.r) != segs/2 || sb.sacked != segs/2*mss {
		t.Fatalf("%d ranges, %d bytes SACKed; want %d, %d", len(sb.r), sb.sacked, segs/2, segs/2*mss)
	}
	if n := rangeLimit(una, max, mss); n < segs/2 || n > segs+8 {
		t.Fatalf("limit %d for %d segments", n, segs)
	}
	// Every hole is found, in order, and only the holes.
	from := una
	for k := 0; k < segs; k += 2 {
		s, e := sb.nextHole(from, max)
		if s != una.Add(seqnum.Size(k*mss)) || e != s.Add(mss) {
			t.Fatalf("hole %d: [%d, %d)", k/2, s, e)
		}
		if sb.isSACKed(s) || !sb.isSACKed(e) || sb.unsackedIn(s, e.Add(mss)) != mss {
			t.Fatalf("hole %d: SACKed state wrong", k/2)
		}
		from = e
	}
	if got := sb.unsackedIn(una, max); got != segs/2*mss {
		t.Fatalf("unSACKed %d", got)
	}
	if got := sb.sackedIn(una.Add(500), una.Add(10*mss+500)); got != 5*mss {
		t.Fatalf("SACKed in a window of ten segments: %d", got)
	}
	// SND.UNA passes it all: the array goes.
	sb.update(&wire.TCPOptions{}, max, max, max, mss, nil)
	if !sb.empty() || sb.sacked != 0 || sb.r != nil {
		t.Fatalf("after the cumulative ACK: %d ranges, %d bytes, cap %d", len(sb.r), sb.sacked, cap(sb.r))
	}
}

// sackedIn and nextHole agree with a byte-by-byte model on random ranges.
func TestScoreboardModel(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for round := 0; round < 200; round++ {
		var sb scoreboard
		const span = 400
		base := seqnum.Value(rng.Uint32())
		model := make([]bool, span)
		limit := 1 + rng.Intn(40)
		for k := 0; k < 1+rng.Intn(60); k++ {
			a := rng.Intn(span - 1)
			b := a + 1 + rng.Intn(min(20, span-a-1))
			sb.add(base.Add(seqnum.Size(a)), base.Add(seqnum.Size(b)), limit, nil)
		}
		// The model is what the scoreboard kept (the limit may have
		// dropped ranges); check it is sorted and non-touching.
		for i, r := range sb.r {
			if i > 0 && !sb.r[i-1].end.LessThan(r.start) || len(sb.r) > limit {
				t.Fatalf("ranges %v (limit %d)", sb.r, limit)
			}
			for x := base.Size(r.start); x < base.Size(r.end); x++ {
				model[x] = true
			}
		}
		for q := 0; q < 50; q++ {
			a := rng.Intn(span)
			b := a + rng.Intn(span-a+1)
			want := 0
			for x := a; x < b; x++ {
				if model[x] {
					want++
				}
			}
			if got := sb.sackedIn(base.Add(seqnum.Size(a)), base.Add(seqnum.Size(b))); got != want {
				t.Fatalf("sackedIn(%d, %d) = %d, want %d; ranges %v", a, b, got, want, sb.r)
			}
			if sb.isSACKed(base.Add(seqnum.Size(a))) != (a < span && model[a]) {
				t.Fatalf("isSACKed(%d)", a)
			}
			hs := a
			for hs < span && model[hs] {
				hs++
			}
			he := hs
			for he < span && !model[he] {
				he++
			}
			s, e := sb.nextHole(base.Add(seqnum.Size(a)), base.Add(span))
			if s != base.Add(seqnum.Size(hs)) || e != base.Add(seqnum.Size(he)) {
				t.Fatalf("nextHole(%d) = [%d, %d), want [%d, %d)", a, base.Size(s), base.Size(e), hs, he)
			}
		}
	}
}

// RFC 6675 section 4, IsLost: DupThresh discontiguous SACKed ranges above
// the byte, or more than (DupThresh-1)*SMSS SACKed bytes.
func TestScoreboardRFC6675IsLost(t *testing.T) {
	var sb scoreboard
	una := seqnum.Value(1000)
	mss := 1000
	sb.add(2000, 3000, noLimit, nil)
	sb.add(4000, 5000, noLimit, nil)
	if sb.isLost(1000, una, mss) {
		t.Fatal("two SACKed segments: not lost yet")
	}
	sb.add(6000, 6001, noLimit, nil)
	if !sb.isLost(1000, una, mss) || sb.isLost(3500, una, mss) || sb.isLost(2500, una, mss) {
		t.Fatal("three discontiguous ranges above 1000: lost; above 3500 only two; 2500 is SACKed")
	}
	var sb2 scoreboard
	sb2.add(2000, 4001, noLimit, nil) // 2001 bytes > 2 * SMSS
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

// BenchmarkScoreboardUpdate times one ACK's update (four SACK blocks, as a
// peer sends them, each a new range between two of the n the scoreboard
// starts with, so each is an insertion) and the reads loss recovery makes
// after it (SetPipe, NextSeg's nextHole). The scoreboard holds n to 2n
// ranges; it is refilled outside the timer when its holes run out.
func BenchmarkScoreboardUpdate(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("ranges=%d", n), func(b *testing.B) {
			const mss = 1000
			una := seqnum.Value(1 << 20)
			// 4n+1 segments: n SACKed ranges at segments 1, 5, 9, ...
			max := una.Add(seqnum.Size((4*n + 1) * mss))
			fill := func(sb *scoreboard) {
				sb.reset()
				for k := 1; k < 4*n; k += 4 {
					s := una.Add(seqnum.Size(k * mss))
					sb.add(s, s.Add(mss), noLimit, nil)
				}
			}
			var sb scoreboard
			fill(&sb)
			next := 0 // the next hole filled, counted in ranges from the bottom
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if next+4 > n {
					b.StopTimer()
					fill(&sb)
					next = 0
					b.StartTimer()
				}
				var o wire.TCPOptions
				for k := 0; k < 4; k++ {
					// Two segments above range next+k: a new range with a
					// hole on each side.
					s := una.Add(seqnum.Size((4*(next+k) + 3) * mss))
					o.SACKBlocks[k] = wire.SACKBlock{Start: s, End: s.Add(mss)}
				}
				o.NumSACK = 4
				next += 4
				sb.update(&o, una, una, max, mss, nil)
				lost := sb.lostBelow(una, mss)
				_ = sb.pipe(una, max, lost, una.Add(mss))
				_, _ = sb.nextHole(una.Add(seqnum.Size((4*next)*mss)), max)
			}
		})
	}
}

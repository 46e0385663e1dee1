package tcp

import (
	"fmt"
	"testing"
)

// A slow-start overshoot into a drop-tail queue loses about every other
// segment of the flight: the out-of-order data forms as many islands as
// half the window holds segments. All of them must be kept and SACKed
// (RFC 2018 section 4), or the sender sees almost nothing SACKed, recovery
// has nothing to clock it and the retransmission timer resends the whole
// flight.
func TestEveryOtherSegmentOfALargeWindow(t *testing.T) {
	const segs, size = 2000, 1000
	tc := newEstablishedSACK(t, func(c *Config) { c.NoAutoTune, c.ReceiveBufferSize = true, 4<<20 })
	if wnd := int(tc.c.rcv.nxt.Size(tc.c.rcv.advEdge)); wnd < segs*size {
		t.Fatalf("advertised window %d, want room for %d segments of %d", wnd, segs, size)
	}
	for i := 1; i < segs; i += 2 {
		tc.inData(i*size, (i+1)*size)
		// RFC 2018 section 4: the island holding this segment first,
		// then the most recently reported ones.
		var want []blk
		for k := i; k >= 1 && len(want) < 4; k -= 2 {
			want = append(want, blk{k * size, (k + 1) * size})
		}
		tc.wantSACK(fmt.Sprintf("segment %d", i), 0, want...)
	}
	st := tc.c.Stats()
	if st.OutOfOrderDropped != 0 || st.OutOfOrderPruned != 0 {
		t.Fatalf("%d segments dropped, %d bytes pruned; want every arriving segment kept", st.OutOfOrderDropped, st.OutOfOrderPruned)
	}
	if n := tc.c.rcv.ooo.spans.len(); n != segs/2 {
		t.Fatalf("%d islands held, want %d", n, segs/2)
	}
	if got := tc.c.Info().OutOfOrder; got != segs/2*size {
		t.Fatalf("%d bytes held out of order, want %d", got, segs/2*size)
	}

	// A retransmission fills a hole in the middle: its two neighbours
	// become one island, reported first.
	mid := segs / 2 // even: a hole
	tc.inData(mid*size, (mid+1)*size)
	tc.wantSACK("a middle hole filled", 0,
		blk{(mid - 1) * size, (mid + 2) * size}, blk{(segs - 1) * size, segs * size},
		blk{(segs - 3) * size, (segs - 2) * size}, blk{(segs - 5) * size, (segs - 4) * size})

	// The first hole filled: the cumulative ACK moves past the first
	// island, and the most recently reported islands follow.
	tc.inData(0, size)
	tc.wantSACK("the first hole filled", 2*size,
		blk{(mid - 1) * size, (mid + 2) * size}, blk{(segs - 1) * size, segs * size},
		blk{(segs - 3) * size, (segs - 2) * size}, blk{(segs - 5) * size, (segs - 4) * size})

	// The other holes, in order: everything is delivered.
	for i := 2; i < segs; i += 2 {
		if i != mid {
			tc.inData(i*size, (i+1)*size)
		}
	}
	tc.drain()
	if got := tc.c.Info().RcvNxt; got != irs+1+seqv(uint32(segs*size)) {
		t.Fatalf("RCV.NXT %d, want %d", got-(irs+1), segs*size)
	}
	if !tc.c.rcv.ooo.empty() || tc.c.rcv.ooo.cost != 0 || tc.c.rcv.ooo.spans.len() != 0 {
		t.Fatalf("out-of-order data left: %d chunks, cost %d", tc.c.rcv.ooo.chunks.len(), tc.c.rcv.ooo.cost)
	}
}

// BenchmarkOOOInsert measures keeping one new out-of-order segment (and
// forgetting it again, so that the count stays put) among n islands, at
// positions spread over the window in a scrambled order: the cost per
// segment must grow with log n, not n.
func BenchmarkOOOInsert(b *testing.B) {
	const seg = 100
	for _, n := range []int{10, 100, 1000, 5000} {
		b.Run(fmt.Sprintf("islands=%d", n), func(b *testing.B) {
			var q reassembly
			data := make([]byte, seg)
			// Island k at [4k, 4k+1) segments; a new segment goes into the
			// middle of the gap after one, touching neither neighbour.
			for k := range n {
				q.add(4*k*seg+seg, data, 1<<40)
			}
			b.ReportAllocs()
			b.ResetTimer()
			k := 0
			for range b.N {
				k = (k + 7919) % n // a prime stride: every gap, scrambled
				off := (4*k+2)*seg + seg
				if res, _ := q.add(off, data, 1<<40); res != oooStored {
					b.Fatal("not stored")
				}
				q.forget(off, off+seg)
			}
			if q.spans.len() != n {
				b.Fatalf("%d islands, want %d", q.spans.len(), n)
			}
		})
	}
}

// forget removes the island [start, end), held as a single chunk.
func (q *reassembly) forget(start, end int) {
	ch := q.chunks.remove(start)
	q.cost -= ch.cost
	q.nbytes -= len(ch.data)
	q.release(ch)
	q.release(q.spans.remove(start))
}

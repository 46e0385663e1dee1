package tcp

import (
	"testing"
)

// Out-of-order segments (RFC 9293 3.10.7.4 "seventh"): kept, trimmed and
// delivered in order.

func TestReassemblyOverlapsAndDuplicates(t *testing.T) {
	tc := newEstablishedMSS(t, 1000)
	data := payload(1000, 0)
	at := func(off, n int) seg {
		return seg{flags: A, seq: irs + 1 + seqv(uint32(off)), ack: iss + 1, data: data[off : off+n]}
	}
	tc.in(at(500, 100))
	tc.in(at(550, 100)) // overlaps the right half
	tc.in(at(500, 100)) // duplicate
	tc.in(at(800, 200))
	tc.in(at(700, 150)) // bridges [650,700) gap? no: 700..850 joins 800..1000
	tc.in(at(100, 300))
	tc.drain()
	if tc.c.Readable() != 0 {
		t.Fatal("nothing is readable while byte 0 is missing")
	}
	tc.in(at(0, 120))
	tc.want("the first hole filled: ACK at once", seg{flags: A, seq: iss + 1, ack: irs + 1 + 400})
	tc.in(at(390, 120)) // overlaps both sides of [400,500)
	tc.want("second hole filled", seg{flags: A, seq: iss + 1, ack: irs + 1 + 650})
	tc.in(at(640, 70))
	tc.want("third hole filled, everything joins up", seg{flags: A, seq: iss + 1, ack: irs + 1 + 1000})
	tc.wantRead("in order, each byte once", data)
}

func TestReassemblyFINBeforeMissingData(t *testing.T) {
	tc := newEstablished(t)
	tc.in(seg{flags: F | A, seq: irs + 8, ack: iss + 1, data: []byte("world")})
	tc.want("out of order: duplicate ACK", seg{flags: A, seq: iss + 1, ack: irs + 1})
	tc.wantState("the FIN waits for the gap", Established)
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1, data: []byte("hello, ")})
	tc.want("gap filled: data and FIN acknowledged", seg{flags: A, seq: iss + 1, ack: irs + 14})
	tc.wantState("FIN taken", CloseWait)
	tc.wantRead("all of it", []byte("hello, world"))
}

func TestReassemblyIslandLimit(t *testing.T) {
	// A peer cannot make us keep unbounded bookkeeping with one-byte
	// fragments: each island pays its bookkeeping against the byte limit,
	// so the limit bounds the islands too; all that fit are kept, and
	// beyond the limit new islands are dropped (they were never
	// acknowledged, so they come again).
	tc := newEstablished(t)
	limit := tc.c.oooLimit()
	for i := range 1000 {
		tc.in(seg{flags: A, seq: irs + 3 + seqv(uint32(2*i)), ack: iss + 1, data: []byte{byte(i)}})
	}
	if n, want := tc.c.rcv.ooo.spans.len(), min(1000, limit/chunkCost(1)); n != want {
		t.Fatalf("%d out-of-order islands held, want %d (limit %d)", n, want, limit)
	}
	if tc.c.rcv.ooo.cost > limit {
		t.Fatalf("out-of-order cost %d over the limit %d", tc.c.rcv.ooo.cost, limit)
	}
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1, data: []byte{1, 2}})
	if got := tc.c.Info().RcvNxt; got != irs+4 {
		t.Fatalf("RCV.NXT %d, want %d: the in-order data and the island after it", got, irs+4)
	}
}

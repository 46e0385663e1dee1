package tcp

import (
	"testing"
	"time"
)

// twoRounds delivers two round trips of a slow start from the initial
// flight of ten 1000-byte segments (sackBulk). The first round arrives
// one segment per ACK but for segment 1 ahead of 0, which RACK takes for
// reordering (RFC 8985 section 6.2 step 3: its window is then min_RTT/4 =
// 25 ms, so SACKs above a hole mark nothing lost at once). The second
// round, the nineteen segments the first one's ACKs let go, arrives one
// per ACK in order, or, if reordered, with its first segment behind the
// eighteen others (SACKed one per ACK) and the ACK of all nineteen last.
// It returns how many segments each ACK of the second round let go.
func twoRounds(tc *tconn, reordered bool) (sent []int) {
	tc.advance(100 * time.Millisecond)
	tc.sack(0, 1000, 2000)
	tc.sack(2000)
	for k := uint32(3); k <= 10; k++ {
		tc.sack(k * 1000)
	}
	tc.drain()
	end := uint32(tc.c.snd.max - (iss + 1)) // what the first round let go
	tc.advance(100 * time.Millisecond)
	ack := func(ack uint32, blocks ...uint32) {
		tc.sack(ack, blocks...)
		sent = append(sent, countSent(tc))
	}
	if !reordered {
		for k := uint32(11000); k <= end; k += 1000 {
			ack(k)
		}
		return sent
	}
	for k := uint32(12000); k <= end; k += 1000 {
		ack(10000, 11000, k)
	}
	tc.advance(5 * time.Millisecond)
	ack(end)
	return sent
}

// RFC 3465 section 2.2 (cwnd grows by the bytes each ACK acknowledges,
// at most L*SMSS per ACK in slow start, section 2.3) with RFC 6937's
// DeliveredData (bytes newly SACKed count as delivered) once RACK has seen
// the path reorder (RFC 8985 section 6.2 step 3): a round that arrives
// reordered but whole must grow the window as much as one that arrives in
// order. Counting only cumulatively acknowledged bytes, the bytes SACKed
// above the hole grew nothing, and the ACK that filled it, covering
// nineteen segments, grew cwnd by L*SMSS: slow start with 5 % reordering
// grew about 1.3x per round trip instead of 2x (1 MiB at 100 ms took
// 0.92 s against 0.66 s clean, on the path matrix's reorder model).
func TestSlowStartGrowsBySACKedBytesRFC3465(t *testing.T) {
	for _, cc := range []string{"newreno", "cubic"} {
		t.Run(cc, func(t *testing.T) {
			setCC := func(c *Config) { c.CongestionControl = cc }
			a := sackBulk(t, 60000, setCC)
			w0 := a.c.cc.Window()
			twoRounds(a, false)
			a.drain()
			b := sackBulk(t, 60000, setCC)
			twoRounds(b, true)
			b.drain()
			if !b.c.lr().rack.reordering {
				t.Fatal("the first round set no RACK.reordering_seen")
			}
			if s := b.c.Stats(); s.Retransmits != 0 || s.SACKRecoveries != 0 {
				t.Fatalf("the reordered round was taken for a loss: %d retransmissions, %d recoveries", s.Retransmits, s.SACKRecoveries)
			}
			got, want := b.c.cc.Window()-w0, a.c.cc.Window()-w0
			if got != want {
				t.Fatalf("cwnd grew by %d bytes over two rounds, the second reordered; %d over the same rounds in order", got, want)
			}
		})
	}
}

// RFC 6675 section 5 (C) sends while cwnd - pipe allows, the pipe leaving
// out what the peer SACKed; RFC 3042 adds two segments beyond cwnd against
// the whole flight (FlightSize) for the first two duplicate ACKs. Limited
// Transmit is leave to send more, never less: while a segment held back
// by reordering leaves a hole, each ACK that SACKs one segment above it
// lets as much go as an ACK of one segment in order does (two, in slow
// start). Held to FlightSize + 2 segments, the sender sent about one per
// ACK, then the whole run at once when the hole filled.
func TestSACKedSegmentsFreeTheWindowRFC6675(t *testing.T) {
	a := sackBulk(t, 60000, func(c *Config) { c.CongestionControl = "newreno" })
	inOrder := twoRounds(a, false)
	b := sackBulk(t, 60000, func(c *Config) { c.CongestionControl = "newreno" })
	reordered := twoRounds(b, true)
	// The send buffer (60,000 bytes) runs out at the 30th segment of the
	// second round's sending: compare the first 14 ACKs, 28 segments.
	for i := range 14 {
		if inOrder[i] != 2 {
			t.Fatalf("in order, ACK %d of the round sent %d segments, want 2 (slow start): %v", i+1, inOrder[i], inOrder)
		}
		if reordered[i] != 2 {
			t.Fatalf("reordered, ACK %d of the round (SACKing one segment above the hole) sent %d segments, want 2 as in order: %v", i+1, reordered[i], reordered)
		}
	}
}

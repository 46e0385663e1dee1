package tcp

import "testing"

// Receive batches (batch.go): between BeginBatch and EndBatch the ACK for
// every second full-sized segment waits for EndBatch, up to
// batchACKLimit; the ACKs RFC 5681 section 4.2 wants immediate do not.

// inSegs injects full-sized (1000-byte) segments at the given offsets,
// in units of 1000 bytes from irs+1.
func (tc *tconn) inSegs(offs ...int) {
	tc.t.Helper()
	for _, off := range offs {
		tc.inSmall(off*1000, 1000)
	}
}

func TestBatchOneACK(t *testing.T) {
	tc := newEstablishedSACK(t) // MSS 1000, quick-ACK mode off
	tc.c.BeginBatch()
	tc.inSegs(0, 1, 2, 3, 4, 5)
	tc.wantNothing("six full-sized segments within a batch: the ACK waits for its end")
	tc.c.EndBatch(tc.now)
	tc.wantImmediateACK("the end of the batch: one ACK for all six", 6000)
	tc.wantNothing("only one")
	if got := tc.c.Stats().BatchACKsSent; got != 1 {
		t.Errorf("BatchACKsSent %d, want 1", got)
	}

	// Outside a batch, every second segment is acknowledged as before.
	tc.inSegs(6)
	tc.wantNothing("one segment")
	tc.inSegs(7)
	tc.wantImmediateACK("the second full-sized segment, no batch", 8000)
}

func TestBatchACKCap(t *testing.T) {
	tc := newEstablishedSACK(t)
	tc.c.BeginBatch()
	for i := range batchACKSegments - 1 {
		tc.inSegs(i)
	}
	tc.wantNothing("under the cap")
	tc.inSegs(batchACKSegments - 1)
	tc.wantImmediateACK("batchACKSegments full-sized segments: an ACK even within the batch", batchACKSegments*1000)
	tc.inSegs(batchACKSegments, batchACKSegments+1, batchACKSegments+2)
	tc.wantNothing("three more")
	tc.c.EndBatch(tc.now)
	tc.wantImmediateACK("the end of the batch", (batchACKSegments+3)*1000)
}

func TestBatchLessThanTwoSegmentsWaits(t *testing.T) {
	tc := newEstablishedSACK(t)
	tc.c.BeginBatch()
	tc.inSegs(0)
	tc.inSmall(1000, 100)
	tc.c.EndBatch(tc.now)
	tc.wantDelayedACK("less than two full-sized segments: delayed as without a batch", 1100)
	if got := tc.c.Stats().BatchACKsSent; got != 0 {
		t.Errorf("BatchACKsSent %d, want 0", got)
	}
}

func TestBatchOutOfOrderAtOnce(t *testing.T) {
	tc := newEstablishedSACK(t)
	tc.c.BeginBatch()
	tc.inSegs(0, 1, 2)
	tc.wantNothing("in order")
	tc.inSegs(4)
	s := tc.want("out of order: a duplicate ACK at once, batch or not (RFC 5681 4.2)", seg{flags: A, seq: iss + 1, ack: irs + 1 + 3000})
	if sb := s.Options.SACK(); len(sb) != 1 || sb[0].Start != irs+1+4000 || sb[0].End != irs+1+5000 {
		t.Errorf("SACK blocks %v, want one of 4000..5000", sb)
	}
	tc.inSegs(5)
	tc.want("the next one above the hole: another, at once", seg{flags: A, seq: iss + 1, ack: irs + 1 + 3000})
	tc.inSegs(3)
	tc.wantImmediateACK("the segment that fills the hole: at once (RFC 5681 4.2)", 6000)
	tc.c.EndBatch(tc.now)
	tc.wantNothing("everything is acknowledged")
}

func TestBatchFINAtOnce(t *testing.T) {
	tc := newEstablishedSACK(t)
	tc.c.BeginBatch()
	tc.inSegs(0, 1, 2)
	tc.in(seg{flags: F | A, seq: irs + 1 + 3000, ack: iss + 1})
	tc.wantImmediateACK("a FIN is acknowledged at once, batch or not", 3001)
	tc.wantState("FIN in", CloseWait)
	tc.c.EndBatch(tc.now)
	tc.wantNothing("everything is acknowledged")
}

func TestBatchQuickACKStaysPerSegment(t *testing.T) {
	tc := newEstablishedSACK(t, withQuickACK, func(c *Config) { c.QuickACKs = 2 })
	tc.c.BeginBatch()
	tc.inSegs(0)
	tc.wantImmediateACK("quick-ACK mode: at once, even within a batch", 1000)
	tc.inSegs(1)
	tc.wantImmediateACK("quick-ACK mode: the second", 2000)
	tc.inSegs(2, 3, 4)
	tc.wantNothing("quick-ACK mode over: the batch's ACK waits")
	tc.c.EndBatch(tc.now)
	tc.wantImmediateACK("the end of the batch", 5000)
}

// At a large MSS (a 64 KiB-MTU link: MSS 65,483) a batch of N full-sized
// segments still gets one ACK, at its end, up to batchACKSegments: the
// cap is counted in segments, not in the bytes one GRO super-packet
// holds, which at this MSS is a single segment (and which made every
// second segment take its own ACK, as without a batch).
func TestBatchOneACKAtLargeMSS(t *testing.T) {
	const mss = 65483
	tc := newEstablishedSACK(t, func(c *Config) {
		c.NoAutoTune = true
		c.ReceiveBufferSize = 32 << 20
	})
	tc.c.mss = mss // the fixture's peer said MSS 1000; a 64 KiB-MTU peer says this
	in := func(i int) {
		t.Helper()
		tc.in(seg{flags: A, seq: irs + 1 + seqValue(i*mss), ack: iss + 1, data: payload(mss, byte(i))})
	}
	for n := 2; n < batchACKSegments; n++ {
		base := int(irs.Size(tc.c.rcv.nxt)) - 1
		if base%mss != 0 {
			t.Fatalf("RCV.NXT off the segment grid: %d", base)
		}
		tc.c.BeginBatch()
		for i := range n {
			in(base/mss + i)
		}
		tc.wantNothing("full-sized segments within a batch, under the 16-segment cap: the ACK waits for its end")
		tc.c.EndBatch(tc.now)
		tc.wantImmediateACK("the end of the batch: one ACK for all of it", base+n*mss)
		tc.wantNothing("only one")
		tc.c.Read(tc.now, make([]byte, n*mss)) // keep the window open
		tc.drain()
	}
	// The cap still holds: the 16th full-sized segment is acknowledged
	// within the batch.
	base := int(irs.Size(tc.c.rcv.nxt)) - 1
	tc.c.BeginBatch()
	for i := range batchACKSegments {
		in(base/mss + i)
	}
	tc.wantImmediateACK("batchACKSegments full-sized segments: an ACK even within the batch", base+batchACKSegments*mss)
	tc.c.EndBatch(tc.now)
	tc.wantNothing("nothing left owed")
}

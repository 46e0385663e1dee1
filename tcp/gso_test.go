package tcp

import (
	"testing"
	"time"
)

// gsoBulk is sackBulk for a connection whose link segments: the handshake
// (MSS 1000, SACK), SetSegmentOffload(gso), then n bytes written. The
// initial window (10 segments) goes out before it returns, not drained.
func gsoBulk(t *testing.T, n, gso int, mods ...func(*Config)) *tconn {
	t.Helper()
	mods = append([]func(*Config){func(c *Config) { c.SendBufferSize = 1 << 20; c.NoSACK = false }}, mods...)
	tc := newSynSent(t, mods...)
	tc.peerWin = 65535
	tc.advance(100 * time.Millisecond) // the handshake's RTT sample: SRTT 100 ms
	o := mssOpt(1000)
	o.SACKPermitted = true
	tc.in(seg{flags: S | A, seq: irs, ack: iss + 1, opts: o})
	tc.want("ACK", seg{flags: A, seq: iss + 1, ack: irs + 1})
	tc.c.SetSegmentOffload(gso)
	tc.write(payload(n, 0))
	return tc
}

// wantSuper expects a super-segment of n bytes at ISS+1+off in pieces of
// one MSS (1000).
func (tc *tconn) wantSuper(why string, off uint32, n int) {
	tc.t.Helper()
	s, ok := tc.next(why)
	if !ok {
		tc.t.Fatalf("%s: want a super-segment at %d, got nothing", why, off)
	}
	if s.Seq != iss+1+seqv(off) || len(s.Payload) != n || s.GSOSize != 1000 {
		tc.t.Fatalf("%s: want a super-segment at %d len %d gso 1000, got %s gso %d (offset %d)",
			why, off, n, s.String(), s.GSOSize, s.Seq-(iss+1))
	}
}

// wantTxRecords checks that the transmit queue holds one record per MSS
// piece from off to end, as the link's segments are.
func (tc *tconn) wantTxRecords(why string, off, end uint32) {
	tc.t.Helper()
	q := &tc.c.lr().txq
	want := int(end-off+999) / 1000
	if q.n != want {
		tc.t.Fatalf("%s: %d transmit records, want %d", why, q.n, want)
	}
	for i := 0; i < q.n; i++ {
		r := q.at(i)
		s := iss + 1 + seqv(off+uint32(i)*1000)
		e := s.Add(1000)
		if e.GreaterThan(iss + 1 + seqv(end)) {
			e = iss + 1 + seqv(end)
		}
		if r.start != s || r.end != e {
			tc.t.Fatalf("%s: record %d is [%d, %d), want [%d, %d)", why, i, r.start-(iss+1), r.end-(iss+1), s-(iss+1), e-(iss+1))
		}
	}
}

// The initial window goes out as one super-segment of ten MSS, recorded as
// ten segments and counted as ten (Linux counts a TSO segment's gso_segs).
func TestGSOInitialWindowOneSuperSegment(t *testing.T) {
	tc := gsoBulk(t, 30000, 64000)
	tc.wantSuper("cwnd 10 MSS in one super-segment", 0, 10000)
	tc.wantNothing("cwnd full")
	tc.wantTxRecords("one record per piece", 0, 10000)
	if got := tc.c.Stats().SegsOut; got != 12 { // SYN, ACK, ten pieces
		t.Fatalf("SegsOut %d, want 12: the super-segment counts as ten", got)
	}
	// The ACK of the first five pieces opens cwnd (slow start) and lets
	// the next burst go, again as one.
	tc.advance(100 * time.Millisecond)
	tc.sack(5000)
	s, ok := tc.next("after the ACK")
	if !ok || s.GSOSize != 1000 || len(s.Payload) < 2000 || len(s.Payload)%1000 != 0 || s.Seq != iss+1+10000 {
		t.Fatalf("after the ACK: want a super-segment of full pieces at 10000, got %s gso %d", s.String(), s.GSOSize)
	}
}

// Without the capability, or with a link limit under two MSS, segments
// are what they were: one MSS each.
func TestGSOFallbackOff(t *testing.T) {
	for _, gso := range []int{0, 1999} {
		tc := gsoBulk(t, 30000, gso)
		for i := range 10 {
			s, ok := tc.next("segment")
			if !ok || s.GSOSize != 0 || len(s.Payload) != 1000 || s.Seq != iss+1+seqv(uint32(i)*1000) {
				t.Fatalf("gso %d: segment %d: %s gso %d", gso, i, s.String(), s.GSOSize)
			}
		}
		tc.wantNothing("cwnd full")
	}
}

// A super-segment is bounded by the link's limit.
func TestGSOLinkLimit(t *testing.T) {
	tc := gsoBulk(t, 30000, 4500)
	tc.wantSuper("four pieces fit in 4500", 0, 4000)
	tc.wantSuper("again", 4000, 4000)
	tc.wantSuper("what cwnd leaves", 8000, 2000)
	tc.wantNothing("cwnd full")
}

// RFC 6675 / RFC 8985: one MSS lost inside a super-segment is repaired by
// retransmitting that MSS only; the SACKed pieces around it are not sent
// again.
func TestGSOLossInsideRepairsOneMSS(t *testing.T) {
	tc := gsoBulk(t, 10000, 64000)
	tc.wantSuper("the whole write", 0, 10000)
	tc.advance(100 * time.Millisecond)
	// Piece 3 ([3000, 4000)) lost: the peer ACKs 3000 and SACKs the rest.
	// (Pieces acknowledged below the SACKed ones count as reordering,
	// RFC 8985 6.2 step 3, as separate segments would: RACK waits for
	// its reordering window, a quarter of min_RTT.)
	tc.sack(3000, 4000, 10000)
	tc.advance(25 * time.Millisecond)
	tc.wantData("RACK: the lost piece alone, one MSS", 3000, 1000)
	tc.wantNothing("nothing else is missing")
	if s := tc.c.Stats(); s.Retransmits != 1 || s.BytesRetrans != 1000 || s.RACKLosses != 1 {
		t.Fatalf("stats: %d retransmits, %d bytes, %d RACK losses; want 1, 1000, 1", s.Retransmits, s.BytesRetrans, s.RACKLosses)
	}
	tc.advance(100 * time.Millisecond)
	tc.sack(10000)
	if tc.c.snd.una != iss+1+10000 || tc.c.lr().txq.n != 0 {
		t.Fatalf("after the repair: SND.UNA %d, %d records", tc.c.snd.una-(iss+1), tc.c.lr().txq.n)
	}
}

// The first piece lost: the SACKs of the nine after it make it lost at
// once (RFC 8985 6.2: no reordering seen, DupThresh segments SACKed), and
// only it is resent.
func TestGSOFirstPieceLost(t *testing.T) {
	tc := gsoBulk(t, 10000, 64000)
	tc.wantSuper("the whole write", 0, 10000)
	tc.advance(100 * time.Millisecond)
	tc.sack(0, 1000, 10000)
	tc.wantData("the first piece, one MSS", 0, 1000)
	tc.wantNothing("nothing else is missing")
}

// SACK blocks inside a super-segment mark exactly the pieces they cover;
// the scoreboard counts their bytes.
func TestGSOSACKRangesInside(t *testing.T) {
	tc := gsoBulk(t, 10000, 64000)
	tc.wantSuper("the whole write", 0, 10000)
	tc.advance(10 * time.Millisecond)
	tc.sack(0, 2000, 4000, 6000, 7000)
	q := &tc.c.lr().txq
	for i := 0; i < q.n; i++ {
		want := i == 2 || i == 3 || i == 6
		if got := q.at(i).has(txSACKed); got != want {
			t.Fatalf("piece %d SACKed %v, want %v", i, got, want)
		}
	}
	if got := tc.c.sackedBytes(); got != 3000 {
		t.Fatalf("scoreboard: %d bytes SACKed, want 3000", got)
	}
}

// RFC 6298 5.4 and go-back-N after a timeout: what a super-segment carried
// is resent one MSS at a time.
func TestGSORTORetransmitsMSSPieces(t *testing.T) {
	tc := gsoBulk(t, 10000, 64000)
	tc.wantSuper("the whole write", 0, 10000)
	tc.advanceToDeadline() // the TLP first (RFC 8985 7.2): the last MSS
	tc.wantData("TLP: the last piece again", 9000, 1000)
	tc.advanceToDeadline()
	if tc.c.Stats().Timeouts != 1 {
		t.Fatalf("want a retransmission timeout, got %d", tc.c.Stats().Timeouts)
	}
	tc.wantData("RTO: the first MSS", 0, 1000)
	tc.wantNothing("cwnd is one MSS")
	tc.advance(10 * time.Millisecond)
	tc.sack(1000)
	for off := uint32(1000); off < 3000; off += 1000 {
		tc.wantData("go-back-N: MSS pieces, never a super-segment", off, 1000)
	}
	tc.wantNothing("cwnd 2 MSS")
}

// Pacing: a super-segment takes no more than the bucket's credit.
func TestGSOPacedByTheBucket(t *testing.T) {
	tc := gsoBulk(t, 30000, 64000, func(c *Config) { c.Pacing = true; c.CongestionControl = "newreno" })
	// 2*cwnd/SRTT = 200 kB/s: the bucket holds two MSS (its floor).
	tc.wantSuper("the bucket's two MSS", 0, 2000)
	tc.wantNothing("the rest waits for the pacing timer")
	tc.advanceToDeadline()
	s, ok := tc.next("paced")
	if !ok || len(s.Payload) > 2000 || s.Seq != iss+1+2000 {
		t.Fatalf("after the pacing timer: %s gso %d, want at most two MSS at 2000", s.String(), s.GSOSize)
	}
}

// Nagle: full pieces go; the short tail waits for the ACK as it would
// after full segments. Without Nagle the tail rides along.
func TestGSOTailAndNagle(t *testing.T) {
	tc := gsoBulk(t, 2500, 64000)
	tc.wantSuper("full pieces", 0, 2000)
	tc.wantNothing("Nagle holds the tail")
	tc.advance(10 * time.Millisecond)
	tc.sack(2000)
	tc.wantData("the tail", 2000, 500)

	tc = gsoBulk(t, 2500, 64000, withNoDelay)
	tc.wantSuper("everything, the tail the last piece", 0, 2500)
	tc.wantTxRecords("three records", 0, 2500)
	if s := tc.c.Stats().SegsOut; s != 5 { // SYN, ACK, three pieces
		t.Fatalf("SegsOut %d, want 5", s)
	}
}

// The FIN never rides in a super-segment: it goes with the last data in
// an ordinary segment.
func TestGSOFINAlone(t *testing.T) {
	tc := gsoBulk(t, 0, 64000, withNoDelay)
	tc.c.snd.buf.write(payload(3000, 0)) // queue without sending, then close
	if err := tc.c.Close(tc.now); err != nil {
		t.Fatal(err)
	}
	tc.wantSuper("data before the FIN", 0, 2000)
	tc.want("the last MSS with the FIN", seg{flags: F | P | A, seq: iss + 1 + 2000, ack: irs + 1, len: 1000})
}

// A ring that wraps: the super-segment stops where the buffer's array
// ends, so that it stays a slice of the send buffer.
func TestGSOStopsAtRingWrap(t *testing.T) {
	tc := gsoBulk(t, 0, 64000, withNoDelay)
	r := &tc.c.snd.buf
	r.grow(8192)
	r.head = len(r.buf) - 3500 // as if 3500 bytes from the end had been acknowledged
	tc.c.snd.bufStart = tc.c.snd.una
	tc.write(payload(6000, 0))
	tc.wantSuper("up to the wrap, full pieces", 0, 3000)
	if !tc.c.PayloadInSendBuffer() {
		t.Fatal("the super-segment was gathered")
	}
	s, ok := tc.next("rest")
	if !ok || s.Seq != iss+1+3000 {
		t.Fatalf("rest: %s", s.String())
	}
}

// The sender's books do not depend on whether the link segments: driven
// by the same ACKs, a connection sending super-segments and one sending
// MSS-sized segments hold the same transmit records (times, flags and
// delivery-rate state), take the same rate samples, and keep the same
// cwnd, RACK state and counts of bytes.
func TestGSOSameBooksAsSegments(t *testing.T) {
	gso := gsoBulk(t, 60000, 64000)
	seg := gsoBulk(t, 60000, 0)
	steps := []func(tc *tconn){
		func(tc *tconn) { tc.advance(100 * time.Millisecond); tc.sack(3000) },
		func(tc *tconn) { tc.advance(5 * time.Millisecond); tc.sack(10000) },
		func(tc *tconn) { tc.advance(90 * time.Millisecond); tc.sack(12000, 13000, 20000) },
		func(tc *tconn) { tc.advance(30 * time.Millisecond) },
		func(tc *tconn) { tc.advance(70 * time.Millisecond); tc.sack(20000, 21000, 24000) },
		func(tc *tconn) { tc.advance(100 * time.Millisecond); tc.sack(30000) },
	}
	for i, step := range steps {
		step(gso)
		step(seg)
		a, b := gso.c, seg.c
		if a.snd.nxt != b.snd.nxt || a.snd.max != b.snd.max || a.snd.una != b.snd.una {
			t.Fatalf("step %d: SND.UNA/NXT/MAX %d/%d/%d, segments %d/%d/%d", i,
				a.snd.una-(iss+1), a.snd.nxt-(iss+1), a.snd.max-(iss+1), b.snd.una-(iss+1), b.snd.nxt-(iss+1), b.snd.max-(iss+1))
		}
		qa, qb := &a.lr().txq, &b.lr().txq
		if qa.n != qb.n || qa.lostBytes != qb.lostBytes {
			t.Fatalf("step %d: %d records (%d lost bytes), segments %d (%d)", i, qa.n, qa.lostBytes, qb.n, qb.lostBytes)
		}
		for j := 0; j < qa.n; j++ {
			if *qa.at(j) != *qb.at(j) {
				t.Fatalf("step %d: record %d\n  gso      %+v\n  segments %+v", i, j, *qa.at(j), *qb.at(j))
			}
		}
		if ra, rb := a.rateSample(), b.rateSample(); ra != rb {
			t.Fatalf("step %d: rate sample\n  gso      %+v\n  segments %+v", i, ra, rb)
		}
		if a.cc.Window() != b.cc.Window() || a.lr().rack != b.lr().rack || a.sackedBytes() != b.sackedBytes() {
			t.Fatalf("step %d: cwnd %d / %d, RACK %+v / %+v", i, a.cc.Window(), b.cc.Window(), a.lr().rack, b.lr().rack)
		}
		sa, sb := a.Stats(), b.Stats()
		if sa.SegsOut != sb.SegsOut || sa.BytesSent != sb.BytesSent || sa.Retransmits != sb.Retransmits {
			t.Fatalf("step %d: SegsOut %d / %d, BytesSent %d / %d, Retransmits %d / %d", i,
				sa.SegsOut, sb.SegsOut, sa.BytesSent, sb.BytesSent, sa.Retransmits, sb.Retransmits)
		}
	}
	var supers int
	for _, s := range gso.drain() {
		if s.GSOSize != 0 {
			supers++
		}
	}
	if supers == 0 {
		t.Fatal("no super-segment was sent")
	}
}

// checkSuperSegments checks what a connection sent (FuzzConn): a
// super-segment only from a connection told its link segments, carrying
// data and no SYN or FIN, in more than one piece of GSOSize bytes, within
// the link's limit.
func checkSuperSegments(t *testing.T, c *Conn, out []Segment) {
	t.Helper()
	for _, s := range out {
		if s.GSOSize == 0 {
			continue
		}
		if c.gsoMax == 0 || s.Flags&(S|F|R) != 0 || len(s.Payload) <= int(s.GSOSize) || len(s.Payload) > int(c.gsoMax) || s.Pieces() < 2 {
			t.Fatalf("bad super-segment %s gso %d (link limit %d)", s.String(), s.GSOSize, c.gsoMax)
		}
	}
}

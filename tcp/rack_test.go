package tcp

import (
	"testing"
	"time"
)

// RFC 8985 section 6.2: a segment is lost only when one sent after it was
// delivered more than RACK.rtt + reo_wnd after it was sent; min_RTT/4 of
// reordering is tolerated, and the reordering timer (section 6.3) marks the
// loss when the window has passed.
func TestRACKReorderingWindowRFC8985(t *testing.T) {
	tc := sackBulk(t, 30000)
	tc.advance(100 * time.Millisecond)
	tc.sack(0, 1000, 2000) // one segment above the first
	tc.wantData("RFC 3042: limited transmit", 10000, 1000)
	tc.wantNothing("not lost yet: reo_wnd = min_RTT/4 = 25 ms")
	if d := tc.c.tm.reo.Sub(tc.now); d != 25*time.Millisecond {
		t.Fatalf("reordering timer in %v, want 25ms", d)
	}
	tc.advance(24 * time.Millisecond)
	tc.wantNothing("within the window")
	tc.advance(time.Millisecond)
	tc.wantData("reordering timer: lost, retransmitted", 0, 1000)
	if s := tc.c.Stats(); s.RACKLosses != 1 || s.SACKRecoveries != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// RFC 8985 section 6.2 step 4: with no reordering seen, once DupThresh
// segments are SACKed the window is 0: the hole is lost as soon as RACK.rtt
// has passed since it was sent.
func TestRACKDupThreshSACKedNoWindow(t *testing.T) {
	tc := sackBulk(t, 30000)
	tc.advance(100 * time.Millisecond)
	tc.sack(0, 1000, 2000)
	tc.sack(0, 1000, 3000)
	tc.drain()
	tc.sack(0, 1000, 4000)
	if w := tc.c.rackReoWnd(); w != 0 {
		t.Fatalf("reo_wnd %v, want 0", w)
	}
	tc.wantData("lost at once", 0, 1000)
}

// RFC 8985 section 6.2 step 3 and 4: once reordering has been seen, the
// window is min_RTT/4; a late segment arriving within it is not resent.
func TestRACKReorderedSegmentNotResent(t *testing.T) {
	tc := sackBulk(t, 30000)
	tc.advance(100 * time.Millisecond)
	// Segment 2 arrives before 1, which arrives 10 ms later: reordering.
	tc.sack(0, 1000, 2000)
	tc.advance(10 * time.Millisecond)
	tc.sack(2000)
	if !tc.c.lr().rack.reordering {
		t.Fatal("RACK.reordering_seen not set by a delivery below RACK.fack")
	}
	if w := tc.c.rackReoWnd(); w != 25*time.Millisecond {
		t.Fatalf("reo_wnd %v, want min_RTT/4 = 25ms", w)
	}
	// Segment 4 arrives ahead of 3; 3 is then 20 ms late: within the window.
	tc.advance(time.Millisecond)
	tc.sack(2000, 3000, 4000)
	tc.advance(20 * time.Millisecond)
	tc.sack(4000)
	for _, s := range tc.drain() {
		if s.Seq.LessThan(iss + 1 + 10000) {
			t.Fatalf("spurious retransmission %s", s.String())
		}
	}
	if s := tc.c.Stats(); s.Retransmits != 0 || s.RACKLosses != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// RFC 8985 section 6.2 step 4: each round trip with a D-SACK widens the
// window by min_RTT/4, for 16 recoveries.
func TestRACKDSACKWidensWindow(t *testing.T) {
	tc := sackBulk(t, 30000)
	tc.advance(100 * time.Millisecond)
	tc.sack(0, 1000, 2000)
	tc.sack(2000)
	// A D-SACK (below SND.UNA) for segment 1.
	tc.sack(2000, 0, 1000)
	if s := tc.c.Stats(); s.DSACKsIn != 1 {
		t.Fatalf("D-SACKs %d", s.DSACKsIn)
	}
	if w := tc.c.rackReoWnd(); w != 50*time.Millisecond {
		t.Fatalf("reo_wnd %v after a D-SACK, want 2 * min_RTT/4", w)
	}
	tc.sack(2000, 0, 1000) // same round: no further growth
	if m := tc.c.lr().rack.reoWndMult; m != 2 {
		t.Fatalf("reo_wnd_mult %d, want 2", m)
	}
	for range rackReoPersist {
		tc.c.rackRecoveryEnded()
	}
	if m := tc.c.lr().rack.reoWndMult; m != 1 {
		t.Fatalf("reo_wnd_mult %d after 16 recoveries, want 1", m)
	}
}

// RFC 8985 section 7: a lost tail is probed after PTO = 2*SRTT (+ the
// worst-case delayed ACK with one segment in flight) by resending the last
// segment, long before the RTO; the ACK of the probe ends the episode with
// a congestion response (section 7.4).
func TestTLPLostTailRFC8985(t *testing.T) {
	tc := sackBulk(t, 10000)
	tc.advance(100 * time.Millisecond)
	tc.sack(9000) // the last segment is lost
	tc.drain()
	if d := tc.c.tm.tlp.Sub(tc.now); d != 2*tc.c.rtt.srtt+wcDelAckT {
		t.Fatalf("PTO %v, want 2*SRTT + WCDelAckT (SRTT %v)", d, tc.c.rtt.srtt)
	}
	if !tc.c.tm.tlp.Before(tc.c.tm.rtx) {
		t.Fatal("the PTO must come before the RTO")
	}
	tc.advanceToDeadline()
	tc.wantData("TLP: the last segment again", 9000, 1000)
	tc.wantNothing("one probe")
	if s := tc.c.Stats(); s.TLPProbes != 1 || s.Timeouts != 0 {
		t.Fatalf("stats %+v", s)
	}
	cwnd := tc.c.Info().CWnd
	tc.advance(100 * time.Millisecond)
	tc.sack(10000)
	if s := tc.c.Stats(); s.TLPRecoveries != 1 {
		t.Fatalf("TLP recoveries %d", s.TLPRecoveries)
	}
	if w := tc.c.Info().CWnd; w >= cwnd {
		t.Fatalf("cwnd %d -> %d: a repaired tail loss must reduce it", cwnd, w)
	}
}

// RFC 8985 section 7.3: with new data waiting and room in the receive
// window, the probe sends new data, whatever cwnd says.
func TestTLPProbesNewData(t *testing.T) {
	tc := sackBulk(t, 30000)
	tc.advance(100 * time.Millisecond)
	tc.drain()
	// Nothing comes back: the PTO fires before the RTO.
	tc.advanceToDeadline()
	tc.wantData("TLP: new data", 10000, 1000)
	tc.wantNothing("one probe")
	if s := tc.c.Stats(); s.TLPProbes != 1 || s.Retransmits != 0 {
		t.Fatalf("stats %+v", s)
	}
	// Then the RTO, not another probe.
	tc.advanceToDeadline()
	if s := tc.c.Stats(); s.TLPProbes != 1 || s.Timeouts != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// RFC 8985 section 7.4.2 with the Eifel test: when the ACK covering a
// retransmitted probe echoes the original's TSval, the tail was only late:
// no congestion response.
func TestTLPLateTailNoResponse(t *testing.T) {
	tc := tsBulk(t, 10000)
	orig := firstTSVal(tc)
	tc.advance(100 * time.Millisecond)
	tc.tsAck(9000, orig)
	tc.drain()
	tc.advanceToDeadline()
	tc.wantData("TLP: the last segment again", 9000, 1000)
	cwnd := tc.c.Info().CWnd
	tc.tsAck(10000, orig+50) // the original, sent before the probe
	if s := tc.c.Stats(); s.TLPProbes != 1 || s.TLPRecoveries != 0 {
		t.Fatalf("stats %+v", s)
	}
	if w := tc.c.Info().CWnd; w < cwnd {
		t.Fatalf("cwnd %d -> %d after a probe that repaired nothing", cwnd, w)
	}
}

// Go-back-N after a timeout may send a larger segment than the first
// transmission (Nagle held data back): the part beyond SND.MAX still gets
// its transmit record, so RACK keeps timing the whole flight.
func TestRACKRecordsGoBackNBeyondMax(t *testing.T) {
	tc := sackBulk(t, 100) // Nagle on: 100 bytes out
	tc.write(payload(500, 1))
	tc.wantNothing("Nagle holds the rest")
	tc.advanceToDeadline()
	tc.wantData("the TLP sends the new data", 100, 500)
	tc.write(payload(500, 2))
	tc.wantNothing("Nagle holds the rest")
	tc.advanceToDeadline() // the RTO: go-back-N from SND.UNA
	tc.wantData("RTO: a full segment from SND.UNA", 0, 1000)
	checkRecoveryInvariants(t, tc.c)
	q := &tc.c.lr().txq
	if q.n == 0 || q.at(q.n-1).end != tc.c.snd.max {
		t.Fatalf("records end short of SND.MAX %d", tc.c.snd.max)
	}
}

// longFlight is bulk with SACK and window scaling agreed (MSS 1000, the
// peer's window 65535 << 7, about 8 MB), cwnd opened to n segments and n
// segments sent at once, at one instant, with an SRTT of 100 ms.
func longFlight(t *testing.T, n int) *tconn {
	t.Helper()
	tc := newSynSent(t, func(c *Config) {
		c.NoSACK, c.NoWindowScale = false, false
		c.SendBufferSize, c.ReceiveBufferSize = 8<<20, 1<<20
		c.NoAutoTune = true
	})
	tc.peerWin = 65535
	tc.advance(100 * time.Millisecond)
	o := mssOpt(1000)
	o.SACKPermitted, o.HasWindowScale, o.WindowScale = true, true, 7
	tc.in(seg{flags: S | A, seq: irs, ack: iss + 1, opts: o})
	tc.want("ACK", seg{flags: A, seq: iss + 1, ack: irs + 1})
	tc.sack(0) // the window of a SYN is not scaled: one that is (RFC 7323 section 2.2)
	tc.c.cc.(*cubic).cwnd = n * 1000
	tc.write(payload(n*1000, 0))
	if got := countSent(tc); got != n {
		t.Fatalf("flight of %d segments, want %d", got, n)
	}
	return tc
}

// RFC 8985 section 6.2 with a flight of more segments than the transmit
// queue's least bound (maxTxSegs, 4096), as a slow start at 1 Gbit/s x
// 100 ms has (32,000): every segment keeps a record of its own, so a
// SACK of all but one of the last ones delivers them to RACK, and the
// hole is marked lost and resent at once (reo_wnd 0: DupThresh segments
// SACKed, no reordering seen). Before, segments past the 4096th shared one
// record, which a SACK with a hole in it never delivered: nothing was
// marked lost and the sender waited for the RTO.
func TestRACKFlightBeyondMaxTxSegs(t *testing.T) {
	const n = 6000
	tc := longFlight(t, n)
	if q := &tc.c.lr().txq; q.n != n {
		t.Errorf("%d transmit records for %d segments", q.n, n)
	}
	tc.advance(100 * time.Millisecond)
	// Everything up to segment 5000 acknowledged, 5000 lost, the rest SACKed.
	tc.sack(5000*1000, 5001*1000, n*1000)
	tc.wantData("RACK: segment 5000 lost, resent at once", 5000*1000, 1000)
	if s := tc.c.Stats(); s.RACKLosses != 1 || s.SACKRecoveries != 1 || s.Timeouts != 0 {
		t.Fatalf("stats %+v: want one RACK loss, one recovery, no timeout", s)
	}
}

// RFC 8985 section 6.2 step 3: reordering is a segment delivered below
// RACK.fack as earlier ACKs left it. One ACK that acknowledges segments
// cumulatively and SACKs one above a hole (as every ACK of a recovery
// does) is not reordering, whatever order the sender takes its
// deliveries in; the segment that fills the hole later is.
func TestRACKOneACKIsNotReordering(t *testing.T) {
	tc := sackBulk(t, 30000)
	tc.advance(100 * time.Millisecond)
	tc.sack(2000, 3000, 4000)
	if tc.c.lr().rack.reordering {
		t.Fatal("RACK.reordering_seen set by a cumulative ACK and a SACK above a hole in one ACK")
	}
	tc.drain()
	tc.advance(time.Millisecond)
	tc.sack(4000) // segment 2 arrives after 3, not resent: reordering
	if !tc.c.lr().rack.reordering {
		t.Fatal("RACK.reordering_seen not set by a delivery below the fack of an earlier ACK")
	}
}

// rackRecovering is sackBulk in a RACK recovery: segment 0 lost and
// resent at 200 ms, [1000, 10000) SACKed at 210 ms, and the six new
// segments [10000, 16000) PRR let go then drained; the recovery point is
// 10000.
func rackRecovering(t *testing.T) *tconn {
	t.Helper()
	tc := sackBulk(t, 30000)
	tc.advance(100 * time.Millisecond)
	tc.sack(0, 1000, 4000)
	tc.wantData("RACK: segment 0 lost", 0, 1000)
	tc.advance(10 * time.Millisecond)
	tc.sack(0, 1000, 10000)
	if n := countSent(tc); n != 6 {
		t.Fatalf("PRR sent %d new segments, want 6 ([10000, 16000))", n)
	}
	return tc
}

// RFC 8985 section 6.2 after a recovery: the first segment sent after the
// recovery began (at the old recovery point) is lost, everything above it
// is SACKed, and the ACK that ends the recovery acknowledges exactly up to
// it. RACK marks it lost at once, and a new recovery resends it. RFC
// 6582 section 4's guard (no new recovery until the ACK covers more than
// the recovery point) is for duplicate ACKs left over from the old
// window; a segment RACK marks lost was sent after the recovery began,
// by RACK's own rule (sent before one delivered, a reordering window
// ago), so it is a loss in the new window. Before, the guard left the
// marked segment to wait for the RTO (seen at 100 ms x 100 Mbit/s). It is
// marked on this very ACK because RACK.rtt is the RTT of the most recently
// sent segment delivered (100 ms), not of the older retransmission of
// segment 0 the same ACK acknowledges (110 ms), which step 5 would wait
// for; and the ACK that ends a recovery may start the next.
func TestRACKLossAtRecoveryPointRecovered(t *testing.T) {
	tc := rackRecovering(t)
	if r := tc.c.snd.recover; r != iss+1+10000 {
		t.Fatalf("recovery point %d", r-(iss+1))
	}
	tc.advance(100 * time.Millisecond)
	tc.sack(10000, 11000, 16000) // recovery over; 10000 lost, 11000-16000 SACKed
	tc.wantData("RACK: segment 10000 lost, resent in a new recovery", 10000, 1000)
	if s := tc.c.Stats(); s.SACKRecoveries != 2 || s.Timeouts != 0 {
		t.Fatalf("stats %+v: want two recoveries and no timeout", s)
	}
}

// RFC 8985 section 6.2 finds a lost retransmission: a segment sent after
// it was delivered. Resending the segment at SND.UNA again restarts the
// retransmission timer (RFC 6298 section 5's timer guards the oldest
// data; Linux re-arms it when it resends the head too): detecting the
// lost copy and resending it take two round trips and more, past an RTO
// of about one RTT plus its variation, so without the restart a lost
// retransmission always ended in a timeout (seen at 100 ms and 1 % loss).
func TestRACKLostRetransmissionRestartsRTO(t *testing.T) {
	tc := rackRecovering(t)
	tc.advance(100 * time.Millisecond)
	tc.sack(0, 1000, 16000) // segments sent after the retransmission arrived; it did not
	tc.wantData("RACK: the retransmission of segment 0 lost, resent", 0, 1000)
	if got, want := tc.c.tm.rtx, tc.now.Add(tc.c.rtt.current()); !got.Equal(want) {
		t.Fatalf("retransmission timer at %v, want one RTO (%v) from the resending, %v", got.Sub(epoch), tc.c.rtt.current(), want.Sub(epoch))
	}
}

// RFC 8985 section 6.2 step 2 and 5 order segments by when they were sent,
// and break a tie of RACK.xmit_ts by end_seq, which assumes segments sent
// at one instant went out in sequence order. A retransmission sent after
// new data at the same instant (the runtime reads the clock once for a
// whole receive batch: one ACK of the batch opens the window for new data,
// a later one marks a hole lost) is below that data yet sent after it.
// When the new data is SACKed first, as it arrives first, the
// retransmission must not count as sent before it and be resent again
// (in real time this was a third of the retransmissions at 1 % loss,
// each answered by a D-SACK).
func TestRACKRetransmissionAfterNewDataAtSameInstant(t *testing.T) {
	tc := sackBulk(t, 60000)
	tc.advance(100 * time.Millisecond)
	// One receive batch, one clock reading: the first ACK acknowledges
	// two segments and opens the window for new data...
	tc.sack(2000)
	var newData int
	for _, s := range tc.drain() {
		if !s.Seq.LessThan(iss + 1 + 10000) {
			newData++
		}
	}
	if newData == 0 {
		t.Fatal("no new data sent on the cumulative ACK")
	}
	// ...the next one SACKs three segments above the third: it is lost
	// (DupThresh SACKed, reo_wnd 0) and resent, after the new data.
	tc.sack(2000, 3000, 6000)
	tc.wantData("RACK: the hole resent", 2000, 1000)
	tc.drain()
	// A round trip later the new data is SACKed, the retransmission not
	// yet: it was sent after the new data, so it is not late.
	tc.advance(100 * time.Millisecond)
	tc.sack(2000, 3000, 10000+uint32(newData)*1000)
	for _, s := range tc.drain() {
		if s.Seq == iss+1+2000 {
			t.Fatalf("retransmission resent again although sent after the SACKed data: %s", s.String())
		}
	}
	if s := tc.c.Stats(); s.RACKLosses != 1 {
		t.Fatalf("RACK losses %d, want 1", s.RACKLosses)
	}
}

// RFC 8985 section 7.2 (TLP_calc_PTO): when the RTO would fire before the
// PTO, the probe is scheduled at the RTO's time, and it goes out instead
// of the timeout. On a steady 100 ms path RTTVAR shrinks, the RTO floors
// at MinRTO = 200 ms = 2*SRTT, and a lone segment's PTO adds the delayed
// ACK on top: before, the PTO was then dropped ("the RTO comes first"),
// so a path of 100 ms or more never sent a probe, and every lost tail
// cost a timeout and a window of one segment.
func TestTLPAtRTOWhenRTOComesFirst(t *testing.T) {
	tc := sackBulk(t, 10000, func(c *Config) { c.MinRTO = DefaultMinRTO })
	tc.c.rtt.rttvar = time.Millisecond // many steady samples
	tc.c.rtt.rto = tc.c.rtt.srtt + 4*tc.c.rtt.rttvar
	tc.advance(100 * time.Millisecond)
	tc.sack(9000) // the last segment is lost
	tc.drain()
	if rto := tc.c.rtt.current(); rto != 200*time.Millisecond {
		t.Fatalf("RTO %v, want the 200 ms floor", rto)
	}
	if tc.c.tm.tlp.IsZero() || tc.c.tm.tlp.After(tc.c.tm.rtx) {
		t.Fatalf("PTO at %v, RTO at %v: want the probe scheduled at the RTO's time", tc.c.tm.tlp, tc.c.tm.rtx)
	}
	tc.advanceToDeadline()
	tc.wantData("TLP: the last segment again", 9000, 1000)
	if s := tc.c.Stats(); s.TLPProbes != 1 || s.Timeouts != 0 {
		t.Fatalf("probes %d, timeouts %d: want the probe, not the timeout", s.TLPProbes, s.Timeouts)
	}
	tc.advance(100 * time.Millisecond)
	tc.sack(10000)
	if s := tc.c.Stats(); s.TLPRecoveries != 1 || s.Timeouts != 0 {
		t.Fatalf("TLP recoveries %d, timeouts %d", s.TLPRecoveries, s.Timeouts)
	}
}

package tcp

import (
	"testing"
	"time"

	"github.com/synack/synack/wire"
)

// tsBulk is sackBulk with timestamps agreed too.
func tsBulk(t *testing.T, n int, mods ...func(*Config)) *tconn {
	t.Helper()
	mods = append([]func(*Config){func(c *Config) { c.SendBufferSize = 1 << 20; c.NoSACK, c.NoTimestamps, c.MSS = false, false, 1012 }}, mods...)
	tc := newSynSent(t, mods...)
	tc.peerWin = 65535
	tc.advance(100 * time.Millisecond)
	o := mssOpt(1012) // 1000 bytes of payload beside the timestamps
	o.SACKPermitted = true
	o.HasTimestamps, o.TSVal, o.TSEcr = true, 1, 0
	tc.in(seg{flags: S | A, seq: irs, ack: iss + 1, opts: o})
	tc.want("ACK", seg{flags: A, seq: iss + 1, ack: irs + 1})
	tc.write(payload(n, 0))
	return tc
}

// tsAck injects an ACK with SACK blocks (offsets from ISS+1) echoing ecr.
func (tc *tconn) tsAck(ack uint32, ecr uint32, blocks ...uint32) {
	tc.t.Helper()
	var o wire.TCPOptions
	for i := 0; i+1 < len(blocks); i += 2 {
		o.SACKBlocks[o.NumSACK] = wire.SACKBlock{Start: iss + 1 + seqv(blocks[i]), End: iss + 1 + seqv(blocks[i+1])}
		o.NumSACK++
	}
	o.HasTimestamps, o.TSVal, o.TSEcr = true, 2, ecr
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1 + seqv(ack), opts: o})
}

// firstTSVal drains what was sent and returns the TSval of the first
// data segment.
func firstTSVal(tc *tconn) uint32 {
	for _, s := range tc.drain() {
		if len(s.Payload) > 0 {
			return s.Options.TSVal
		}
	}
	tc.t.Fatal("no data segment")
	return 0
}

// Eifel (RFC 3522 section 3.2): the ACK covering a fast retransmission
// echoes the original's TSval, so the original arrived: the retransmission
// was spurious and cwnd and ssthresh are restored.
func TestUndoEifelFastRetransmitRFC3522(t *testing.T) {
	tc := tsBulk(t, 30000, dupThreshMode)
	orig := firstTSVal(tc)
	tc.advance(100 * time.Millisecond)
	before := tc.c.Info()
	tc.tsAck(0, orig, 1000, 4000)
	rtx := tc.want("fast retransmit", seg{flags: A, seq: iss + 1, ack: irs + 1, len: 1000})
	if rtx.Options.TSVal == orig {
		t.Fatal("the retransmission must carry a newer TSval")
	}
	if tc.c.Info().CWnd >= before.CWnd {
		t.Fatal("recovery did not reduce cwnd")
	}
	tc.advance(5 * time.Millisecond)
	tc.tsAck(4000, orig) // the delayed original filled the hole
	i := tc.c.Info()
	if i.SpuriousRetrans != 1 || i.Undos != 1 || i.CWnd < before.CWnd || i.SSThresh < before.SSThresh {
		t.Fatalf("no undo: cwnd %d ssthresh %d (before %d %d), stats %+v", i.CWnd, i.SSThresh, before.CWnd, before.SSThresh, i.Stats)
	}
	if tc.c.snd.inRecovery {
		t.Fatal("still in recovery after the undo")
	}
}

// Eifel, negative: the echo is the retransmission's own TSval, so the
// retransmission repaired a real loss: no undo.
func TestUndoEifelRealLoss(t *testing.T) {
	tc := tsBulk(t, 30000, dupThreshMode)
	orig := firstTSVal(tc)
	tc.advance(100 * time.Millisecond)
	tc.tsAck(0, orig, 1000, 4000)
	rtx := tc.want("fast retransmit", seg{flags: A, seq: iss + 1, ack: irs + 1, len: 1000})
	cwnd := tc.c.Info().CWnd
	tc.advance(100 * time.Millisecond)
	tc.tsAck(4000, rtx.Options.TSVal)
	if i := tc.c.Info(); i.SpuriousRetrans != 0 || i.Undos != 0 || i.CWnd > cwnd+1000 {
		t.Fatalf("undone a real loss: cwnd %d -> %d, %+v", cwnd, i.CWnd, i.Stats)
	}
}

// RFC 4015 (Eifel response) for a spurious timeout: the ACK of the
// original arrives after the RTO; the window comes back and sending resumes
// after SND.MAX instead of going back over data the peer has.
func TestUndoEifelSpuriousTimeoutRFC4015(t *testing.T) {
	tc := tsBulk(t, 30000)
	orig := firstTSVal(tc)
	before := tc.c.Info()
	tc.advanceToDeadline() // TLP first (new data), then the RTO
	tc.advanceToDeadline()
	if tc.c.Stats().Timeouts != 1 {
		t.Fatalf("timeouts %d", tc.c.Stats().Timeouts)
	}
	tc.drain()
	tc.tsAck(1000, orig)
	i := tc.c.Info()
	if i.SpuriousRetrans != 1 || i.Undos != 1 || i.CWnd < before.CWnd {
		t.Fatalf("no undo after a spurious timeout: cwnd %d (before %d) %+v", i.CWnd, before.CWnd, i.Stats)
	}
	if tc.c.snd.nxt != tc.c.snd.max {
		t.Fatal("RFC 4015: SND.NXT must go back to SND.MAX")
	}
}

// RFC 3708: without timestamps, a D-SACK for every retransmission of the
// episode shows it was spurious, once the recovery is over.
func TestUndoDSACKRFC3708(t *testing.T) {
	tc := sackBulk(t, 30000, dupThreshMode)
	tc.advance(100 * time.Millisecond)
	before := tc.c.Info()
	tc.sack(0, 1000, 4000)
	tc.want("fast retransmit", seg{flags: A, seq: iss + 1, ack: irs + 1, len: 1000})
	tc.sack(4000) // the original arrived
	tc.drain()
	tc.sack(10000)          // the recovery point: recovery over
	tc.sack(10000, 0, 1000) // then the D-SACK of the retransmission
	if i := tc.c.Info(); i.DSACKsIn != 1 || i.SpuriousRetrans != 1 || i.Undos != 1 || i.SSThresh < before.SSThresh {
		t.Fatalf("no undo on D-SACK: ssthresh %d (before %d) %+v", i.SSThresh, before.SSThresh, i.Stats)
	}
}

// Eifel needs no SACK: NewReno's fast retransmit (RFC 6582) is undone the
// same way when the ACK echoes the original's TSval.
func TestUndoEifelNewReno(t *testing.T) {
	tc := tsBulk(t, 30000, func(c *Config) { c.NoSACK = true })
	orig := firstTSVal(tc)
	tc.advance(100 * time.Millisecond)
	before := tc.c.Info()
	for range 3 {
		tc.tsAck(0, orig)
	}
	tc.want("fast retransmit", seg{flags: A, seq: iss + 1, ack: irs + 1, len: 1000})
	tc.advance(5 * time.Millisecond)
	tc.tsAck(3000, orig)
	if i := tc.c.Info(); i.SpuriousRetrans != 1 || i.Undos != 1 || i.SSThresh < before.SSThresh || i.Recovering {
		t.Fatalf("no undo: %+v", i)
	}
}

// RFC 8985 section 6.2 steps 3 and 4 with Eifel (RFC 3522): a fast
// retransmission proved spurious means an original segment was delivered
// out of order, which step 3 cannot see once it has been resent. The
// undo sets RACK.reordering_seen, so that the widened reordering window
// applies in the next recovery instead of 0 (without it each reordered
// segment was resent again, and undone again).
func TestUndoSetsRACKReorderingSeen(t *testing.T) {
	tc := tsBulk(t, 30000)
	orig := firstTSVal(tc)
	tc.advance(100 * time.Millisecond)
	tc.tsAck(0, orig, 1000, 4000)
	if w := tc.c.rackReoWnd(); w != 0 {
		t.Fatalf("reo_wnd %v in recovery before any reordering, want 0", w)
	}
	tc.want("RACK: the hole lost at once (DupThresh SACKed, no reordering seen)", seg{flags: A, seq: iss + 1, ack: irs + 1, len: 1000})
	tc.advance(5 * time.Millisecond)
	tc.tsAck(4000, orig) // the delayed original filled the hole
	if i := tc.c.Info(); i.Undos != 1 {
		t.Fatalf("no undo: %+v", i.Stats)
	}
	if !tc.c.lr().rack.reordering {
		t.Fatal("RACK.reordering_seen not set by a spurious retransmission")
	}
	if w, want := tc.c.rackReoWnd(), 2*tc.c.lr().rack.minRTT/4; w != want {
		t.Fatalf("reo_wnd %v after the undo, want 2 * min_RTT/4 = %v", w, want)
	}
}

// RFC 4015 and RFC 6582 section 4: a timeout sets the recovery point to
// SND.MAX, so that duplicate ACKs of the window it resends start no fast
// retransmit. Once the timeout proves spurious (Eifel) and is undone,
// nothing was resent beyond the probe, and the guard goes with it: a
// segment RACK then marks lost starts a recovery (RFC 8985 section 6.2)
// instead of waiting, SACKed all around, for a second RTO.
func TestUndoSpuriousTimeoutLiftsRecoveryGuard(t *testing.T) {
	tc := tsBulk(t, 30000)
	orig := firstTSVal(tc)
	tc.advanceToDeadline() // TLP first (new data), then the RTO
	tc.advanceToDeadline()
	if tc.c.Stats().Timeouts != 1 {
		t.Fatalf("timeouts %d", tc.c.Stats().Timeouts)
	}
	tc.drain()
	tc.tsAck(1000, orig) // the original of segment 0 arrived: spurious
	if i := tc.c.Info(); i.Undos != 1 {
		t.Fatalf("no undo: %+v", i.Stats)
	}
	tc.drain()
	tc.tsAck(1000, orig, 2000, 11000) // segment 1000 lost, the rest SACKed
	tc.want("RACK: segment 1000 lost, a recovery resends it", seg{flags: A, seq: iss + 1 + 1000, ack: irs + 1, len: 1000})
	if s := tc.c.Stats(); s.SACKRecoveries != 1 || s.Timeouts != 1 {
		t.Fatalf("stats %+v: want a recovery and no second timeout", s)
	}
}

// RFC 3522 section 3.2 and RFC 8985 section 6.2 step 5: the reordering
// window that made a spurious fast retransmission (0, before reordering
// was seen) may have marked more segments lost in the same ACK than PRR
// let go at once. Once the episode is proven spurious and undone, those
// marks go with it, and RACK judges the segments again with the widened
// window: a segment merely held back is not resent, and no new recovery
// (a second reduction, undone again) starts for it.
func TestUndoForgetsLostMarksOfTheEpisode(t *testing.T) {
	tc := tsBulk(t, 30000)
	orig := firstTSVal(tc)
	tc.advance(100 * time.Millisecond)
	tc.tsAck(0, orig, 5000, 8000) // 0..4999 held back, 5000..7999 SACKed
	var resent []uint32
	for _, s := range tc.drain() {
		if s.Seq.LessThan(iss + 1 + 5000) {
			resent = append(resent, uint32(s.Seq-(iss+1)))
		}
	}
	if len(resent) == 0 || len(resent) >= 5 {
		t.Fatalf("PRR let %v go; the test wants some, not all, of the five marked segments resent", resent)
	}
	tc.advance(time.Millisecond)
	tc.tsAck(1000, orig, 5000, 8000) // the first original arrives: spurious (Eifel)
	if i := tc.c.Info(); i.Undos != 1 {
		t.Fatalf("no undo: %+v", i.Stats)
	}
	for _, s := range tc.drain() {
		if s.Seq.LessThan(iss + 1 + 10000) {
			t.Fatalf("after the undo, %s resent: a mark of the spurious episode outlived it", s.String())
		}
	}
	if s := tc.c.Stats(); s.SACKRecoveries != 1 {
		t.Fatalf("%d recoveries, want the one undone", s.SACKRecoveries)
	}
}

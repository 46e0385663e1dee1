package tcp

import (
	"testing"
	"time"

	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/wire"
)

// sackBulk is bulk with SACK agreed: MSS 1000, a peer window of 65535, n
// bytes queued and the initial window (ten segments) sent and drained.
func sackBulk(t *testing.T, n int, mods ...func(*Config)) *tconn {
	t.Helper()
	mods = append([]func(*Config){func(c *Config) { c.SendBufferSize = 1 << 20; c.NoSACK = false }}, mods...)
	tc := newSynSent(t, mods...)
	tc.peerWin = 65535
	tc.advance(100 * time.Millisecond) // the handshake's RTT sample: SRTT 100 ms
	o := mssOpt(1000)
	o.SACKPermitted = true
	tc.in(seg{flags: S | A, seq: irs, ack: iss + 1, opts: o})
	tc.want("ACK", seg{flags: A, seq: iss + 1, ack: irs + 1})
	tc.write(payload(n, 0))
	if got := countSent(tc); got != min(10, (n+999)/1000) {
		t.Fatalf("initial flight %d segments", got)
	}
	return tc
}

// dupThreshMode selects RFC 6675 loss detection without RACK.
func dupThreshMode(c *Config) { c.LossDetection = LossDupThresh }

// sack injects an ACK of ack with SACK blocks [start, end) relative to ISS+1.
func (tc *tconn) sack(ack uint32, blocks ...uint32) {
	tc.t.Helper()
	var o wire.TCPOptions
	for i := 0; i+1 < len(blocks); i += 2 {
		o.SACKBlocks[o.NumSACK] = wire.SACKBlock{Start: iss + 1 + seqv(blocks[i]), End: iss + 1 + seqv(blocks[i+1])}
		o.NumSACK++
	}
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1 + seqv(ack), opts: o})
}

// wantData expects a data segment of n bytes at ISS+1+off.
func (tc *tconn) wantData(why string, off uint32, n int) {
	tc.t.Helper()
	s, ok := tc.next(why)
	if !ok {
		tc.t.Fatalf("%s: want data at %d, got nothing", why, off)
	}
	if s.Seq != iss+1+seqv(off) || len(s.Payload) != n {
		tc.t.Fatalf("%s: want data at %d len %d, got %s (offset %d)", why, off, n, s.String(), s.Seq-(iss+1))
	}
}

// RFC 3042 section 2 (Limited Transmit) and RFC 6675 section 5: the first
// two duplicate ACKs each let one new segment go beyond cwnd; the third
// starts recovery with a retransmission of the hole; PRR (RFC 6937) then
// sends about ssthresh/RecoverFS of what is delivered.
func TestSACKRecoveryRFC6675LimitedTransmitPRR(t *testing.T) {
	// NewReno's ssthresh (half the flight) gives the PRR counts below.
	tc := sackBulk(t, 30000, dupThreshMode, func(c *Config) { c.CongestionControl = "newreno" })
	tc.sack(0, 1000, 2000)
	tc.wantData("RFC 3042: first duplicate ACK sends one new segment", 10000, 1000)
	tc.wantNothing("only one")
	tc.sack(0, 1000, 3000)
	tc.wantData("RFC 3042: second duplicate ACK sends one new segment", 11000, 1000)
	tc.wantNothing("only one")
	if tc.c.Stats().SACKRecoveries != 0 {
		t.Fatal("recovery before DupThresh")
	}
	tc.sack(0, 1000, 4000)
	tc.wantData("RFC 6675 (4.3): third duplicate ACK retransmits the hole", 0, 1000)
	tc.wantNothing("PRR: ssthresh 6000 of RecoverFS 9000; 1000 delivered allows 667 bytes, the retransmission goes anyway")
	if i := tc.c.Info(); i.SACKRecoveries != 1 || i.SSThresh != 6000 || i.FastRetransmits != 1 {
		t.Fatalf("recovery: %+v", i)
	}
	tc.sack(0, 1000, 5000)
	tc.wantNothing("PRR: 2000 delivered allows 1334 bytes, 1000 already out")
	tc.sack(0, 1000, 6000)
	tc.wantData("PRR: 3000 delivered allows 2000: one new segment (rule 2)", 12000, 1000)
	tc.wantNothing("one")
	// The retransmission arrives: everything up to 6000 acknowledged, below
	// the recovery point 12000: still recovering.
	tc.sack(6000)
	if !tc.c.snd.inRecovery {
		t.Fatal("left recovery before the recovery point")
	}
	tc.drain()
	tc.sack(12000)
	if tc.c.snd.inRecovery {
		t.Fatal("recovery point acknowledged: recovery must end")
	}
	if i := tc.c.Info(); i.CWnd > 6000 || i.CWnd < 1000 {
		t.Fatalf("cwnd %d after recovery, want at most ssthresh 6000", i.CWnd)
	}
}

// RFC 6675 section 4, NextSeg rules 1 and 4: one ACK SACKing eight
// segments marks the first lost (more than (DupThresh-1)*SMSS SACKed above
// it); with no new data and nothing else below the highest SACKed byte,
// the rescue retransmission resends the tail.
func TestSACKRecoveryRFC6675IsLostAndRescue(t *testing.T) {
	tc := sackBulk(t, 10000, dupThreshMode)
	tc.sack(0, 1000, 9000)
	tc.wantData("rule 1: the lost first segment", 0, 1000)
	tc.wantData("rule 4: the rescue retransmission of the tail", 9000, 1000)
	tc.wantNothing("once per recovery")
	if s := tc.c.Stats(); s.SACKRecoveries != 1 || s.RescueRetrans != 1 || s.Retransmits != 2 {
		t.Fatalf("stats %+v", s)
	}
	tc.sack(0, 1000, 9000)
	tc.wantNothing("a duplicate without news sends nothing more")
	tc.sack(10000)
	if tc.c.snd.inRecovery || tc.c.Info().Unacked != 0 {
		t.Fatal("everything acknowledged")
	}
}

// RFC 6675 section 4, NextSeg rule 1 walks the holes in order, each resent
// once (HighRxt), and SACKed data is never resent.
func TestSACKRecoveryRFC6675HolesInOrder(t *testing.T) {
	tc := sackBulk(t, 10000, dupThreshMode)
	// Holes at 0, 2000 and 5000; SACKed 1000-2000, 3000-5000, 6000-10000.
	tc.sack(0, 6000, 10000, 3000, 5000, 1000, 2000)
	// Everything unSACKed is lost, so pipe is 0 and PRR-SSRB lets
	// ssthresh (5000) go: the three holes, in order.
	tc.wantData("rule 1: first hole", 0, 1000)
	tc.wantData("rule 1: second hole", 2000, 1000)
	tc.wantData("rule 1: third hole", 5000, 1000)
	tc.wantNothing("no rescue: the highest hole was resent already")
	for i := 0; i < 3; i++ {
		tc.sack(0, 6000, 10000, 3000, 5000, 1000, 2000)
	}
	var got []seqnum.Value
	for _, s := range tc.drain() {
		if len(s.Payload) > 0 {
			got = append(got, s.Seq-(iss+1))
		}
	}
	if len(got) != 0 {
		t.Fatalf("holes resent again at %v: HighRxt must keep them to once", got)
	}
}

// RFC 6582 section 4 (kept by RFC 6675 section 5): duplicate ACKs of an
// old episode, below the recovery point, do not start another recovery.
func TestSACKRecoveryNoReentryBelowRecoveryPoint(t *testing.T) {
	tc := sackBulk(t, 30000, dupThreshMode)
	tc.sack(0, 1000, 9000)
	tc.drain()
	tc.sack(9000, 9500, 10000) // partial ACK, still in recovery
	tc.sack(10000)             // the recovery point: ends
	if tc.c.snd.inRecovery {
		t.Fatal("still recovering")
	}
	if n := tc.c.Stats().SACKRecoveries; n != 1 {
		t.Fatalf("%d recoveries", n)
	}
}

// Without SACK (NoSACK) Limited Transmit stays off and NewReno recovers:
// TestFastRetransmitAndRecovery. Here: after a timeout, go-back-N skips
// what the peer has SACKed (RFC 6675 section 5.1).
func TestSACKTimeoutSkipsSACKed(t *testing.T) {
	tc := sackBulk(t, 10000, dupThreshMode)
	tc.sack(0, 2000, 4000) // two segments SACKed: not enough for recovery
	tc.drain()
	tc.advanceToDeadline()
	tc.wantData("RTO: the first segment", 0, 1000)
	tc.wantNothing("cwnd is one segment")
	tc.sack(1000, 2000, 4000)
	tc.wantData("slow start: the next hole", 1000, 1000)
	tc.wantData("then past the SACKed range", 4000, 1000)
	tc.wantNothing("cwnd 2000")
}

// RFC 6675 section 2: with SACK in use, a duplicate ACK must bring SACK
// information not known before. The ACKs a peer sends for duplicated
// segments bring none, and must not start a recovery that halves cwnd
// with nothing to resend.
func TestSACKDupAckNeedsNewSACKInfo(t *testing.T) {
	tc := sackBulk(t, 30000, dupThreshMode)
	for range 4 {
		tc.sack(0)
	}
	if s := tc.c.Stats(); s.SACKRecoveries != 0 || s.DupAcksIn != 0 || s.Retransmits != 0 {
		t.Fatalf("stats %+v", s)
	}
	tc.sack(0, 1000, 2000)
	if s := tc.c.Stats(); s.DupAcksIn != 1 {
		t.Fatalf("an ACK with new SACK information is a duplicate: %d", s.DupAcksIn)
	}
}

// RFC 6675 section 5.1 (and RFC 2018 section 8): the peer may renege on
// what it SACKed; a second timeout in a row stops trusting the scoreboard
// and resends everything.
func TestSACKSecondTimeoutForgetsScoreboard(t *testing.T) {
	tc := sackBulk(t, 10000, dupThreshMode)
	tc.sack(0, 2000, 4000)
	tc.drain()
	tc.advanceToDeadline()
	tc.wantData("first RTO: the first segment", 0, 1000)
	if tc.c.lr().sb.empty() {
		t.Fatal("the first timeout keeps the scoreboard")
	}
	tc.advanceToDeadline()
	tc.wantData("second RTO: the first segment again", 0, 1000)
	if !tc.c.lr().sb.empty() {
		t.Fatal("the second timeout must forget the scoreboard")
	}
}

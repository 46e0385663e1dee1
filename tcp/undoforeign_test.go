package tcp

import "testing"

// RFC 3708 section 4: a loss episode is spurious when every retransmission
// of the episode is reported duplicated by a D-SACK. A D-SACK for a
// retransmission sent before the episode began (here a Tail Loss Probe
// whose original had arrived, its ACK lost) says nothing of the
// episode's own retransmissions and must not undo its window reduction.
func TestDSACKOfEarlierRetransmissionDoesNotUndo(t *testing.T) {
	tc := sackBulk(t, 10000, func(c *Config) { c.CongestionControl = "newreno" })
	tc.drain()
	tc.sack(9000)
	tc.drain()
	// The ACK of the last segment is lost: the probe resends it.
	tc.advanceToDeadline()
	tc.wantData("TLP: the last segment again", 9000, 1000)
	if tc.c.Stats().TLPProbes != 1 {
		t.Fatalf("%d probes", tc.c.Stats().TLPProbes)
	}
	tc.write(payload(10000, 1))
	tc.drain()
	max := uint32(tc.c.snd.max - (iss + 1))
	if max < 15000 {
		t.Fatalf("only %d sent", max)
	}
	// New data: its first segment lost, the next three SACKed.
	tc.sack(10000, 11000, 14000)
	tc.drain()
	if tc.c.Stats().SACKRecoveries == 0 {
		tc.advanceToDeadline() // RACK's reordering window (RFC 8985 section 6.2)
		tc.drain()
	}
	if s := tc.c.Stats(); s.SACKRecoveries != 1 || s.Retransmits != 2 {
		t.Fatalf("recoveries %d, retransmissions %d: want the recovery and its one retransmission", s.SACKRecoveries, s.Retransmits)
	}
	ss := tc.c.Info().SSThresh
	// The retransmission arrives: everything acknowledged, recovery over.
	tc.sack(max)
	tc.drain()
	// Now the D-SACK of the probe, delayed.
	tc.sack(max, 9000, 10000)
	tc.drain()
	if s := tc.c.Stats(); s.Undos != 0 || s.SpuriousRetrans != 0 {
		t.Fatalf("undos %d, spurious %d: the D-SACK named the probe, not the recovery's retransmission", s.Undos, s.SpuriousRetrans)
	}
	if i := tc.c.Info(); i.SSThresh != ss {
		t.Fatalf("ssthresh %d, want the reduced %d kept", i.SSThresh, ss)
	}
}

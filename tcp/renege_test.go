package tcp

import "testing"

// RFC 2018 section 8: a receiver may discard data it has SACKed, and the
// sender keeps everything until it is cumulatively acknowledged. When the
// cumulative ACK stops at the start of bytes the scoreboard holds as
// SACKed, the receiver has dropped them (one holding them would have
// acknowledged them): the sender forgets the SACK information (RFC 2018
// section 5.1: SACKed bits are advisory) and resends from SND.UNA at once,
// rather than skipping the reneged bytes until a second timeout.
func TestSACKRenegingRepairedWithinOneTimeout(t *testing.T) {
	for _, mode := range []struct {
		name string
		mods []func(*Config)
	}{{"rack", nil}, {"dupthresh", []func(*Config){dupThreshMode}}} {
		t.Run(mode.name, func(t *testing.T) {
			tc := sackBulk(t, 10000, mode.mods...)
			tc.drain()
			// The first two segments are lost; the peer SACKs the rest.
			tc.sack(0, 2000, 10000)
			// Whatever recovery resends of the first two is lost too,
			// until the retransmission timer fires.
			for tc.c.Stats().Timeouts == 0 {
				tc.drain()
				tc.advanceToDeadline()
			}
			tc.wantData("RTO: the segment at SND.UNA", 0, 1000)
			tc.sack(1000, 2000, 10000)
			// The scoreboard still trusts the SACKed bytes: only the
			// hole goes.
			tc.wantData("the rest of the hole", 1000, 1000)
			tc.wantNothing("the SACKed bytes are skipped")
			// The peer reneged on [5000, 10000): its cumulative ACK
			// stops at 5000, the start of bytes it had SACKed.
			tc.sack(5000)
			tc.wantData("reneging seen: resend from SND.UNA at once", 5000, 1000)
			for _, s := range tc.drain() {
				if len(s.Payload) == 0 {
					t.Fatalf("unexpected %s", s.String())
				}
			}
			if st := tc.c.Stats(); st.Timeouts != 1 || st.SACKReneging != 1 {
				t.Fatalf("timeouts %d, renegings %d: want one of each", st.Timeouts, st.SACKReneging)
			}
			// The rest goes as the peer acknowledges it, without another
			// timeout.
			for off := uint32(6000); off <= 10000; off += 1000 {
				tc.sack(off)
				tc.drain()
			}
			if st := tc.c.Stats(); st.Timeouts != 1 {
				t.Fatalf("%d timeouts, want the one", st.Timeouts)
			}
			if i := tc.c.Info(); i.SndUna != iss+1+10000 {
				t.Fatalf("SND.UNA at %d, want everything acknowledged", i.SndUna-(iss+1))
			}
		})
	}
}

// Reneging seen outside recovery and timeouts: the scoreboard is
// forgotten, but the flight is not resent at once in a burst of cwnd; the
// bytes no longer SACKed are found lost as any others.
func TestSACKRenegingOutsideRecoveryNoBurst(t *testing.T) {
	tc := sackBulk(t, 10000, dupThreshMode)
	tc.drain()
	tc.sack(0, 2000, 4000)
	tc.drain()
	if tc.c.Stats().SACKRecoveries != 0 {
		t.Fatal("recovery before DupThresh")
	}
	tc.sack(2000) // [2000, 4000) SACKed before, not acknowledged now
	for _, s := range tc.drain() {
		if len(s.Payload) > 0 && s.Seq.LessThan(tc.c.snd.una.Add(8000)) {
			t.Fatalf("resent at once: %s", s.String())
		}
	}
	if st := tc.c.Stats(); st.SACKReneging != 1 || !tc.c.lr().sb.empty() {
		t.Fatalf("renegings %d, scoreboard empty %v: want the reneging seen and the scoreboard forgotten", st.SACKReneging, tc.c.lr().sb.empty())
	}
}

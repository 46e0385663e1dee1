package tcp

import "testing"

// RFC 6675 section 5 step (4.2): entering SACK loss recovery sets
// cwnd = ssthresh. RFC 5681's inflation by three segments (and by one per
// further duplicate ACK) belongs to recovery without SACK, where cwnd
// meters what is sent; with SACK, pipe counts what has left the network
// and PRR (RFC 6937) meters the sending. A cwnd left at ssthresh + 3 MSS
// made traces show 10 -> 9 segments for NewReno's halving.
func TestSACKRecoveryCwndIsSSThresh(t *testing.T) {
	for _, tt := range []struct {
		cc       string
		ssthresh int // of the flight of 12000 (10 segments and 2 by Limited Transmit)
	}{
		{"newreno", 6000}, // RFC 5681 eq. 4: FlightSize / 2
		{"cubic", 8400},   // RFC 9438 section 4.6: FlightSize * 0.7
	} {
		t.Run(tt.cc, func(t *testing.T) {
			tc := sackBulk(t, 30000, dupThreshMode, func(c *Config) { c.CongestionControl = tt.cc })
			tc.sack(0, 1000, 2000)
			tc.sack(0, 1000, 3000)
			tc.sack(0, 1000, 4000)
			tc.drain()
			i := tc.c.Info()
			if i.SACKRecoveries != 1 {
				t.Fatalf("%d recoveries, want 1", i.SACKRecoveries)
			}
			if i.SSThresh != tt.ssthresh || i.CWnd != tt.ssthresh {
				t.Fatalf("in SACK recovery: ssthresh %d cwnd %d, want both %d", i.SSThresh, i.CWnd, tt.ssthresh)
			}
			// Further duplicates do not inflate it either.
			tc.sack(0, 1000, 5000)
			tc.drain()
			if i := tc.c.Info(); i.CWnd != tt.ssthresh {
				t.Fatalf("after a further duplicate: cwnd %d, want %d", i.CWnd, tt.ssthresh)
			}
		})
	}
}

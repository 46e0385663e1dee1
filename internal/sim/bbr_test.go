package sim

import (
	"testing"

	"github.com/synack/synack/link/memlink"
)

// Issue 11: at 1 % random loss on a 200 Mbit/s path of 20 ms RTT BBR,
// whose model does not shrink the rate for every loss as CUBIC does
// (draft-ietf-ccwg-bbr), moves at least twice what CUBIC moves and half
// the link (the target), and on the clean path it fills most of
// the link. This run gives 141.9 Mbit/s at 1 % loss: 43.9 before fast
// recovery stopped cutting cwnd to the pipe (BENCHMARKS.md, "BBR
// follow-up"), 125.9 before the send buffer made room beyond the SACKed
// flight ("BBR at 1 Gbit/s with 1 % loss"). Virtual time: the figures
// are the protocol's, not the machine's.
func TestBBRGoodput(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 80 MiB")
	}
	const size = 32 << 20
	cubic, _ := bulk(t, size/2, memlink.Impairments{Loss: 0.01}, "", "cubic")
	t.Logf("cubic, loss 1%%: %.1f Mbit/s", cubic)
	for _, loss := range []float64{0, 0.01} {
		mbit, info := bulk(t, size, memlink.Impairments{Loss: loss}, "", "bbr")
		t.Logf("bbr, loss %.0f%%: %.1f Mbit/s; cwnd %d min RTT %v delivery rate %.1f Mbit/s pacing %.1f Mbit/s, retransmits %d (RACK %d, spurious %d, timeouts %d)",
			loss*100, mbit, info.CWnd, info.MinRTT, float64(info.DeliveryRate)*8/1e6, float64(info.PacingRate)*8/1e6, info.Retransmits,
			info.RACKLosses, info.SpuriousRetrans, info.Timeouts)
		if info.CongestionControl != "bbr" || info.PacingRate == 0 {
			t.Errorf("sender's controller %q pacing at %d B/s, want bbr, paced", info.CongestionControl, info.PacingRate)
		}
		switch {
		case loss == 0 && mbit < 160:
			t.Errorf("clean path: %.1f Mbit/s, below 80 %% of the 200 Mbit/s link", mbit)
		case loss > 0 && mbit < 2*cubic:
			t.Errorf("loss %.0f%%: %.1f Mbit/s, not twice cubic's %.1f", loss*100, mbit, cubic)
		case loss > 0 && mbit < 100:
			t.Errorf("loss %.0f%%: %.1f Mbit/s, below half the 200 Mbit/s link", loss*100, mbit)
		}
	}
}

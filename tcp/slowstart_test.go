package tcp

import (
	"fmt"
	"testing"

	"github.com/synack/synack/wire"
)

// Slow start and stretch ACKs (cc.go, slowStartGrowth): an ACK that
// covers k segments grows cwnd by k segments in every slow start, so that
// a round trip doubles cwnd whatever the receiver's ACK pattern (RFC 5681
// section 3.1 with byte counting, RFC 3465 section 2, and no per-ACK
// limit L; RFC 9406 section 4.3's L = infinity).

// stretchBulk is an established connection under controller cc with MSS
// 1000, SACK negotiated or not, a peer window of 64 KB and 64 KiB to send,
// its initial window (10 segments) sent.
func stretchBulk(t *testing.T, cc string, sack bool) *tconn {
	tc := newSynSent(t, func(c *Config) {
		c.SendBufferSize = 1 << 20
		c.CongestionControl = cc
		c.NoSACK = !sack
	})
	tc.peerWin = 65535
	tc.in(seg{flags: S | A, seq: irs, ack: iss + 1, opts: wire.TCPOptions{HasMSS: true, MSS: 1000, SACKPermitted: sack}})
	tc.want("ACK", seg{flags: A, seq: iss + 1, ack: irs + 1})
	tc.write(payload(65536, 0))
	if n := countSent(tc); n != 10 {
		t.Fatalf("initial flight %d segments, want 10", n)
	}
	return tc
}

// The initial slow start: one ACK for the whole initial window (10
// segments), then one for 16 (synack's receive-batch ACK cap, batch.go).
// Before, CUBIC's HyStart++ grew by at most L = 8 segments per ACK and
// NewReno by L = 2 (RFC 3465 section 2.3): 10 -> 18 -> 26 and 10 -> 12.
func TestStretchACKInitialSlowStart(t *testing.T) {
	for _, cc := range []string{"cubic", "newreno"} {
		for _, sack := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/sack=%v", cc, sack), func(t *testing.T) {
				tc := stretchBulk(t, cc, sack)
				tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1 + 10000})
				if w := tc.c.Info().CWnd; w != 20000 {
					t.Fatalf("cwnd %d after one ACK of the 10-segment initial window, want 20000 (grown by the 10 segments it acknowledged)", w)
				}
				if n := countSent(tc); n != 20 {
					t.Fatalf("the ACK released %d segments, want 20 (10 acknowledged + 10 of growth)", n)
				}
				tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1 + 26000})
				if w := tc.c.Info().CWnd; w != 36000 {
					t.Fatalf("cwnd %d after a stretch ACK of 16 segments, want 36000", w)
				}
			})
		}
	}
}

// A later slow start, below an ssthresh a reduction set (RFC 5681 section
// 3.1: after a timeout, or when recovery ended with cwnd under
// ssthresh): a stretch ACK grows cwnd by what it acknowledged, up to
// ssthresh and at most two segments past it, as far as an ACK of two
// segments could take it (before: by 2 segments, L = 2, however close to
// ssthresh cwnd was).
func TestStretchACKSlowStartStopsAtSSThresh(t *testing.T) {
	for _, cc := range []string{"cubic", "newreno"} {
		for _, tt := range []struct{ ssthresh, want int }{{15000, 17000}, {25000, 20000}} {
			t.Run(fmt.Sprintf("%s/ssthresh=%d", cc, tt.ssthresh), func(t *testing.T) {
				tc := stretchBulk(t, cc, false)
				switch c := tc.c.cc.(type) {
				case *cubic:
					c.ssthresh, c.hs.done = tt.ssthresh, true
				case *newReno:
					c.ssthresh = tt.ssthresh
				}
				tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1 + 10000})
				if w := tc.c.Info().CWnd; w != tt.want {
					t.Fatalf("cwnd %d after a 10-segment ACK from 10000 in slow start with ssthresh %d, want %d", w, tt.ssthresh, tt.want)
				}
			})
		}
	}
}

// HyStart++'s Conservative Slow Start grows by a quarter of what slow
// start would (RFC 9406 section 4.2, CSS_GROWTH_DIVISOR), the same bytes
// counted: a 16-segment ACK grows cwnd by 4 segments.
func TestStretchACKConservativeSlowStart(t *testing.T) {
	tc := stretchBulk(t, "cubic", false)
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1 + 10000})
	tc.drain()
	c := tc.c.cc.(*cubic)
	c.hs.css, c.hs.cssBaselineMinRTT = true, hsNoRTT
	before := c.cwnd
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1 + 26000})
	if got := c.cwnd - before; got != 4000 {
		t.Fatalf("CSS grew cwnd by %d on a 16-segment ACK, want 4000", got)
	}
}

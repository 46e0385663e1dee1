package sim

import (
	"testing"
	"testing/synctest"

	"github.com/synack/synack/clock"
)

// TestGSOLifetimes plays seeded lifetimes, with their loss, reordering,
// duplication and corruption, over a link that segments (memlink's GSO):
// the stacks send super-segments, the link cuts them into MSS-sized
// segments that each meet their own fate, and the senders repair the
// segments lost inside a super-segment one MSS at a time. The streams must
// arrive intact and every connection end as TIME-WAIT and CLOSED say;
// half the seeds run with ECN and CE marks (no CWR in a super-segment).
func TestGSOLifetimes(t *testing.T) {
	seeds := uint64(64)
	if testing.Short() {
		seeds = 16
	}
	supers := 0
	for seed := uint64(1); seed <= seeds; seed++ {
		p := NewPlan(seed)
		p.GSO = 65535
		if seed%2 == 0 {
			p.MarkEvery = 7
		}
		if p.Up < 40_000 {
			p.Up = 200_000 // enough data for super-segments
		}
		var err error
		var res Result
		synctest.Test(t, func(t *testing.T) {
			res, err = Run(p, clock.Real(), nil)
		})
		if err != nil {
			t.Errorf("%v\n  failed: %v\n  client path %v\n  server path %v", p, err, res.ClientPath, res.ServerPath)
		}
		supers += res.SuperSegments
	}
	if supers == 0 {
		t.Fatal("no super-segment was sent in any lifetime")
	}
	t.Logf("%d super-segments in %d lifetimes", supers, seeds)
}

package fairness

import (
	"math"
	"testing"
	"time"

	"github.com/synack/synack/bench/pathmatrix"
)

func TestJain(t *testing.T) {
	for _, c := range []struct {
		xs   []float64
		want float64
	}{
		{[]float64{5, 5}, 1},
		{[]float64{1, 0}, 0.5},
		{[]float64{3, 1}, 0.8}, // 16 / (2*10)
		{[]float64{0, 0}, 0},
		{[]float64{1, 1, 1, 0}, 0.75},
	} {
		if got := Jain(c.xs...); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("Jain(%v) = %v, want %v", c.xs, got, c.want)
		}
	}
}

// TestRunPairSmoke runs two flows of different controllers for two
// seconds of virtual time: both must move data, and their sum cannot
// exceed the link. Nothing is asserted about how they share it.
func TestRunPairSmoke(t *testing.T) {
	c := pathmatrix.Cell{RTT: 20 * time.Millisecond, Rate: 20e6}
	r, err := RunPair(c, "cubic", "bbr", 2*time.Second, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s %.1f Mbit/s, %s %.1f Mbit/s, Jain %.3f, utilization %.2f", r.Names[0], r.Mbit(0), r.Names[1], r.Mbit(1), r.Jain(), r.Utilization())
	for i := range r.Bytes {
		if r.Bytes[i] == 0 || r.Late[i] == 0 {
			t.Errorf("flow %d (%s) moved %d bytes, %d in the second half", i, r.Names[i], r.Bytes[i], r.Late[i])
		}
	}
	if u := r.Utilization(); u > 1 {
		t.Errorf("utilization %.3f: more than the link carries", u)
	}
}

// TestRunSlowStartSmoke sends 4 MiB over a 100 Mbit/s, 20 ms path: the
// transfer must finish, slow start must end (ssthresh set) and the link
// must be reached at some point before the end; the counts must be
// consistent. Nothing is asserted about how soon.
func TestRunSlowStartSmoke(t *testing.T) {
	c := pathmatrix.Cell{RTT: 20 * time.Millisecond, Rate: 100e6}
	for _, cc := range []string{"cubic", "newreno", "bbr"} {
		r, err := RunSlowStart(c, cc, 4<<20, 1, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: done %v in %v, 80%% at %v, exit at %v (cwnd %d), retrans %d at exit, %d in all",
			cc, r.Done, r.Elapsed, r.Reach, r.Exit, r.ExitCWnd, r.RetransAtExit, r.Retrans)
		if !r.Done || r.Exit == 0 || r.Reach == 0 || r.Reach > r.Elapsed {
			t.Errorf("%s: %+v", cc, r)
		}
		if r.RetransAtExit > r.Retrans {
			t.Errorf("%s: %d retransmissions at exit, more than the %d of the whole run", cc, r.RetransAtExit, r.Retrans)
		}
	}
}

// An unknown controller name is an error, not a silent fallback to the
// default (issue 11, item 1), for either flow of a pair and for a bulk.
func TestUnknownController(t *testing.T) {
	c := pathmatrix.Cell{RTT: 20 * time.Millisecond, Rate: 20e6}
	if _, err := RunPair(c, "cubic", "vegas", time.Second, 1); err == nil {
		t.Error("RunPair with controller \"vegas\": no error")
	}
	if _, err := RunSlowStart(c, "vegas", 1<<20, 1, time.Second); err == nil {
		t.Error("RunSlowStart with controller \"vegas\": no error")
	}
}

// TestRunPairSeeded: a run is fixed by its seed, the stacks' ISN keys
// included (the ISS also seeds BBR's probe-wait jitter), so a figure can be
// repeated and runs of different seeds are different runs.
func TestRunPairSeeded(t *testing.T) {
	c := pathmatrix.Cell{RTT: 20 * time.Millisecond, Rate: 100e6}
	run := func(seed int64) PairResult {
		r, err := RunPairStaggered(c, "bbr", "bbr", 8*time.Second, seed, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	a, b := run(7), run(7)
	if a.Bytes != b.Bytes || a.Retrans != b.Retrans {
		t.Errorf("seed 7 twice: bytes %v and %v, retransmissions %v and %v", a.Bytes, b.Bytes, a.Retrans, b.Retrans)
	}
	distinct := map[[2]int64]bool{a.Bytes: true}
	for _, s := range []int64{1, 3, 4} {
		distinct[run(s).Bytes] = true
	}
	if len(distinct) < 2 {
		t.Errorf("seeds 7, 1, 3 and 4 gave the same bytes %v: the seed does not reach the run", a.Bytes)
	}
}

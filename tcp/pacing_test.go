package tcp

import (
	"testing"
	"time"
)

// departures writes n bytes and runs the connection's timers until it
// has sent segs segments (or a second passes), returning when each left.
func departures(tc *tconn, n, segs int) []time.Duration {
	tc.t.Helper()
	start := tc.now
	tc.write(make([]byte, n))
	var at []time.Duration
	for {
		for range tc.drain() {
			at = append(at, tc.now.Sub(start))
		}
		if len(at) >= segs || tc.now.Sub(start) > time.Second {
			return at
		}
		tc.advanceToDeadline()
	}
}

// Issue 11: with Config.Pacing a CUBIC connection in slow start sends its
// window at Linux's 2*cwnd/SRTT, a burst of two segments and then one
// every MSS/rate, on the virtual clock: here a window of ten 1000-byte
// segments with an SRTT of 100 ms goes at 200,000 B/s, one segment every
// 5 ms, over half the round trip. Without it the window leaves at once.
func TestPacingSpreadsWindow(t *testing.T) {
	for _, paced := range []bool{false, true} {
		tc := newEstablishedSACKRTT(t, 100*time.Millisecond, func(c *Config) { c.Pacing = paced })
		if !paced {
			if at := departures(tc, 10000, 10); at[9] != 0 {
				t.Fatalf("unpaced: departures %v, want all at once", at)
			}
			if r := tc.c.Info().PacingRate; r != 0 {
				t.Fatalf("unpaced: Info().PacingRate %d", r)
			}
			continue
		}
		if r := tc.c.pacingRate(); r != 200000 {
			t.Fatalf("pacing rate %d, want 2*10000 B/100 ms = 200000", r)
		}
		at := departures(tc, 10000, 10)
		if len(at) != 10 || at[0] != 0 || at[1] != 0 {
			t.Fatalf("departures %v: want a burst of two at 0", at)
		}
		for i := 2; i < len(at); i++ {
			gap := at[i] - at[i-1]
			if want := 5 * time.Millisecond; gap < want-10*time.Microsecond || gap > want+10*time.Microsecond {
				t.Fatalf("departures %v: gap %d is %v, want 5 ms", at, i, gap)
			}
		}
		if at[9] > 50*time.Millisecond {
			t.Fatalf("the window took %v, want it spread over no more than half the RTT", at[9])
		}
		if r := tc.c.Info().PacingRate; r != 200000 {
			t.Fatalf("Info().PacingRate %d, want 200000", r)
		}
	}
}

// After slow start the rate is 1.2*cwnd/SRTT.
func TestPacingRateCongestionAvoidance(t *testing.T) {
	tc := newEstablishedSACKRTT(t, 100*time.Millisecond, func(c *Config) { c.Pacing = true })
	tc.c.cc.(windowSetter).setWindow(20000, 10000)
	if r := tc.c.pacingRate(); r != 240000 {
		t.Fatalf("pacing rate %d, want 1.2*20000 B/100 ms = 240000", r)
	}
}

// A BBR connection is paced at BBR's rate whatever Config.Pacing says;
// the pace deadline is among the connection's deadlines, and a segment
// held back leaves when it fires.
func TestPacingBBR(t *testing.T) {
	tc := newEstablishedSACKRTT(t, 100*time.Millisecond, func(c *Config) { c.CongestionControl = "bbr" })
	// A first round trip gives BBR its first rate.
	tc.write(make([]byte, 1000))
	tc.drain()
	tc.now = tc.now.Add(100 * time.Millisecond)
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1 + 1000})
	rate := tc.c.Info().PacingRate
	if rate <= 0 {
		t.Fatal("BBR connection not paced")
	}
	at := departures(tc, 8000, 8)
	if len(at) != 8 || at[7] == 0 {
		t.Fatalf("departures %v: want them spread", at)
	}
	// After the first burst, one segment every MSS/rate.
	want := time.Duration(float64(1000) / float64(rate) * float64(time.Second))
	for i := 2; i < len(at); i++ {
		if gap := at[i] - at[i-1]; gap < want-10*time.Microsecond || gap > want+10*time.Microsecond {
			t.Fatalf("departures %v: gap %d is %v, want %v at %d B/s", at, i, gap, want, rate)
		}
	}
}

// A timer that fires late does not lower the rate: the credit owed since
// the release time stays in the bucket beyond its size (up to
// paceMaxLate), so the segments it held go out at once.
func TestPacingLateTimer(t *testing.T) {
	tc := newEstablishedSACKRTT(t, 100*time.Millisecond, func(c *Config) { c.Pacing = true })
	tc.write(make([]byte, 10000))
	if n := len(tc.drain()); n != 2 {
		t.Fatalf("%d segments in the first burst, want 2", n)
	}
	due := tc.c.Deadline()
	if d := due.Sub(tc.now); d != 5*time.Millisecond+1 {
		t.Fatalf("next release in %v, want 5 ms", d)
	}
	// The timer fires 20 ms late: 25 ms of credit at 200,000 B/s is 5000
	// bytes, of which 2000 (the bucket) plus 10 ms late (2000) are kept.
	tc.now = due.Add(20 * time.Millisecond)
	tc.c.HandleTimers(tc.now)
	if n := len(tc.drain()); n != 4 {
		t.Fatalf("%d segments when the timer fired 20 ms late, want 4", n)
	}
}

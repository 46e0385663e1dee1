package tcp

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/synack/synack/seqnum"
)

// CUBIC (RFC 9438) and HyStart++ (RFC 9406), driven through the
// Congestion interface with MSS 1000, so that a window of n segments is
// n*1000 bytes. The expected values are worked out by hand from the RFC's
// formulas in the comments.

func near(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// reduced is a CUBIC controller that had a window of w segments when a
// loss was detected with the same flight, and has recovered.
func reduced(w int) *cubic {
	c := NewCubic(1000).(*cubic)
	c.cwnd = w * 1000
	c.OnFastRetransmit(epoch, w*1000)
	c.OnRecoveryEnd(epoch, c.ssthresh)
	return c
}

// RFC 9438 section 4.6: ssthresh = flight * 0.7, W_max = cwnd at the loss;
// section 4.2 eq. 1 and 2: K = cubic_root((W_max - cwnd_epoch) / C) =
// cubic_root(30 / 0.4) = cubic_root(75) = 4.2172 s, W_cubic(0) = 70,
// W_cubic(1) = 0.4 * (1 - 4.2172)^3 + 100 = 86.681, W_cubic(K) = 100,
// W_cubic(6) = 0.4 * 1.7828^3 + 100 = 102.267.
func TestCubicWindowFunctionRFC9438(t *testing.T) {
	c := reduced(100)
	if c.ssthresh != 70000 || c.cwnd != 70000 || c.wMax != 100 {
		t.Fatalf("after the loss: ssthresh %d cwnd %d W_max %v, want 70000 70000 100", c.ssthresh, c.cwnd, c.wMax)
	}
	c.OnAck(epoch, Ack{Acked: 0, Flight: c.cwnd, SRTT: 100 * time.Millisecond}) // begins the epoch
	near(t, "K", c.k, 4.2172, 1e-4)
	near(t, "cwnd_epoch", c.cwndEpoch, 70, 1e-9)
	for _, w := range []struct{ t, w float64 }{{0, 70}, {1, 86.681}, {c.k, 100}, {6, 102.267}} {
		near(t, "W_cubic", c.wCubic(w.t), w.w, 1e-3)
	}
	// Concave region (section 4.4), 1 s into the epoch with an RTT of
	// 100 ms: target = W_cubic(1.1) = 0.4 * (1.1 - 4.2172)^3 + 100 =
	// 87.884; W_est = 70 + 0.5294/70 is far below W_cubic(1), so cwnd
	// grows by (87.884 - 70) / 70 = 0.2555 segments for one acknowledged.
	c.OnAck(epoch.Add(time.Second), Ack{Acked: 1000, Flight: c.cwnd, SRTT: 100 * time.Millisecond})
	if c.cwnd != 70255 {
		t.Errorf("concave growth: cwnd %d, want 70255", c.cwnd)
	}
	// The target is bounded to 1.5 * cwnd (section 4.2): far into the
	// convex region (t = 60 s, W_cubic = 0.4 * 55.78^3 + 100 = 69527), a
	// window's worth of ACKs can at most add half the window.
	before := c.cwnd
	for i := 0; i < 70; i++ {
		c.OnAck(epoch.Add(time.Minute), Ack{Acked: 1000, Flight: c.cwnd, SRTT: 100 * time.Millisecond})
	}
	if c.cwnd <= before+before/4 || c.cwnd > before+before/2+1000 {
		t.Errorf("convex growth over one window: %d -> %d, want at most +50%%", before, c.cwnd)
	}
}

// RFC 9438 section 4.3: on a short path Reno's additive increase beats the
// cubic curve near its start, and cwnd follows W_est. After a loss at 10
// segments (W_max = 10, cwnd_epoch = 7, K = cubic_root(7.5) = 1.957 s),
// W_cubic(0) = 7 and one ACK makes W_est = 7 + 0.5294 / 7 = 7.07563:
// cwnd = 7075 bytes. Once W_est reaches cwnd_prior (10), alpha_cubic is
// 1: W_est = 10 + 1 / 7.075 = 10.14134.
func TestCubicRenoFriendlyRFC9438(t *testing.T) {
	c := reduced(10)
	near(t, "alpha_cubic", cubicAlpha, 0.529412, 1e-6)
	c.OnAck(epoch, Ack{Acked: 1000, Flight: c.cwnd, SRTT: time.Millisecond})
	near(t, "K", c.k, 1.9574, 1e-4)
	near(t, "W_est", c.wEst, 7.07563, 1e-5)
	if c.cwnd != 7075 {
		t.Fatalf("Reno-friendly region: cwnd %d, want 7075", c.cwnd)
	}
	c.wEst = 10 // as if W_est had grown to cwnd_prior
	c.OnAck(epoch, Ack{Acked: 1000, Flight: c.cwnd, SRTT: time.Millisecond})
	near(t, "W_est with alpha 1", c.wEst, 10.14134, 1e-5)
	if c.cwnd < 10140 || c.cwnd > 10142 {
		t.Fatalf("cwnd %d, want W_est (10141 bytes)", c.cwnd)
	}
}

// RFC 9438 section 4.7: a loss before the window got back to W_max sets
// W_max = cwnd * (1 + 0.7) / 2; one beyond it sets W_max = cwnd.
func TestCubicFastConvergenceRFC9438(t *testing.T) {
	c := NewCubic(1000).(*cubic)
	c.cwnd, c.wMax = 100000, 120
	c.OnFastRetransmit(epoch, 100000)
	near(t, "W_max below the last", c.wMax, 85, 1e-9)
	near(t, "cwnd_prior", c.cwndPrior, 100, 1e-9)
	c.cwnd = 90000
	c.OnFastRetransmit(epoch, 90000)
	near(t, "W_max above the last", c.wMax, 90, 1e-9)
	if c.ssthresh != 63000 || c.cwnd != 63000 {
		t.Errorf("ssthresh %d cwnd %d, want 0.7 * 90000", c.ssthresh, c.cwnd)
	}
}

// RFC 9438 section 4.8: a timeout sets ssthresh as a loss does and cwnd
// to one segment; slow start (standard: HyStart++ was for the initial one)
// leads to the first epoch, which has K = 0 and W_max = cwnd_epoch. A
// further timeout without an ACK in between changes nothing more.
func TestCubicTimeoutRFC9438(t *testing.T) {
	c := NewCubic(1000).(*cubic)
	c.cwnd = 100000
	c.OnTimeout(epoch, 100000)
	c.OnTimeout(epoch.Add(time.Second), 100000)
	if c.ssthresh != 70000 || c.cwnd != 1000 || c.wMax != 100 || !c.afterRTO {
		t.Fatalf("after timeouts: ssthresh %d cwnd %d W_max %v", c.ssthresh, c.cwnd, c.wMax)
	}
	now := epoch.Add(2 * time.Second)
	c.OnAck(now, Ack{Acked: 1000, Flight: c.cwnd})
	if c.cwnd != 2000 {
		t.Fatalf("standard slow start after a timeout: cwnd %d, want 2000", c.cwnd)
	}
	c.cwnd = 70000
	c.OnAck(now, Ack{Acked: 1000, Flight: c.cwnd, SRTT: 100 * time.Millisecond})
	if c.k != 0 || c.wMax != 70 || c.cwndEpoch != 70 || c.afterRTO {
		t.Errorf("first epoch after a timeout: K %v W_max %v cwnd_epoch %v", c.k, c.wMax, c.cwndEpoch)
	}
}

// RFC 9438 section 4.9: a reduction that proves spurious is undone:
// cwnd, ssthresh, W_max, K and the epoch come back.
func TestCubicUndoRFC9438(t *testing.T) {
	c := reduced(100)
	c.OnAck(epoch, Ack{Acked: 1000, Flight: c.cwnd, SRTT: 100 * time.Millisecond})
	c.cwnd = 80000
	k, start, wMax := c.k, c.start, c.wMax
	c.OnFastRetransmit(epoch.Add(3*time.Second), 80000)
	if c.wMax == wMax || c.cwnd >= 80000 {
		t.Fatal("the loss changed nothing")
	}
	c.Undo(80000, 70000)
	if c.cwnd != 80000 || c.ssthresh != 70000 || c.k != k || !c.start.Equal(start) || c.wMax != wMax {
		t.Errorf("undo: cwnd %d ssthresh %d K %v start %v W_max %v, want 80000 70000 %v %v %v",
			c.cwnd, c.ssthresh, c.k, c.start, c.wMax, k, start, wMax)
	}
}

// hsDriver feeds c rounds of n ACKs of one segment each (round), all with
// the same RTT sample; each round ends with the ACK of what was
// outstanding when it began (RFC 9406 section 4.2's windowEnd), and the
// sender fills its window.
type hsDriver struct {
	c   *cubic
	una seqnum.Value
	now time.Time
}

func (d *hsDriver) round(n int, rtt time.Duration, each func(i int)) {
	for i := 0; i < n; i++ {
		d.una = d.una.Add(1000)
		d.now = d.now.Add(time.Millisecond)
		d.c.OnAck(d.now, Ack{Acked: 1000, Flight: d.c.cwnd, Una: d.una, Next: d.una.Add(seqnum.Size(n * 1000)), RTT: rtt, SRTT: rtt})
		if each != nil {
			each(i)
		}
	}
}

// RFC 9406 section 4.2: slow start grows by what is acknowledged (one
// segment per ACK here, below L); a round whose least RTT (of at
// least 8 samples) is up by RttThresh = max(4 ms, min(100 ms / 8, 16 ms))
// = 12.5 ms enters CSS (after a round at 112 ms, RttThresh is 14 ms),
// which grows by a quarter; after CSS_ROUNDS (5) rounds slow start ends:
// ssthresh = cwnd.
func TestHyStartCSSAndExitRFC9406(t *testing.T) {
	d := &hsDriver{c: NewCubic(1000).(*cubic), una: 1, now: epoch}
	d.round(10, 100*time.Millisecond, nil)
	d.round(10, 100*time.Millisecond, nil)
	if d.c.hs.css || d.c.cwnd != 30000 {
		t.Fatalf("two rounds at the same RTT: css %v cwnd %d, want slow start to 30000", d.c.hs.css, d.c.cwnd)
	}
	d.round(10, 112*time.Millisecond, nil) // up by less than RttThresh
	if d.c.hs.css {
		t.Fatal("CSS on a rise of 12 ms")
	}
	d.round(10, 126*time.Millisecond, func(i int) {
		// In CSS from the 8th sample of the round on.
		if want := i >= 7; d.c.hs.css != want {
			t.Fatalf("ACK %d of the round: css %v, want %v", i, d.c.hs.css, want)
		}
	})
	if d.c.cwnd != 40000+7000+3*250 {
		t.Fatalf("cwnd %d, want 7 segments of slow start and three ACKs of CSS (1/4 each; the one that entered it too)", d.c.cwnd)
	}
	for r := 1; r <= 4; r++ {
		d.round(10, 126*time.Millisecond, nil)
		if !d.c.hs.css || d.c.ssthresh != initialSSThresh {
			t.Fatalf("CSS round %d: css %v ssthresh %d", r, d.c.hs.css, d.c.ssthresh)
		}
	}
	cwnd := d.c.cwnd
	d.round(1, 126*time.Millisecond, nil) // the fifth CSS round is over
	if d.c.ssthresh != cwnd || d.c.cwnd != cwnd || !d.c.hs.done {
		t.Fatalf("after CSS_ROUNDS: ssthresh %d cwnd %d (was %d), want congestion avoidance from %d", d.c.ssthresh, d.c.cwnd, cwnd, cwnd)
	}
}

// RFC 9406 section 4.2: in CSS, a round whose least RTT falls below the
// baseline that started CSS goes back to slow start; a loss ends HyStart++
// for good.
func TestHyStartBackToSlowStartRFC9406(t *testing.T) {
	d := &hsDriver{c: NewCubic(1000).(*cubic), una: 1, now: epoch}
	d.round(10, 100*time.Millisecond, nil)
	d.round(10, 120*time.Millisecond, nil)
	if !d.c.hs.css || d.c.hs.cssBaselineMinRTT != 120*time.Millisecond {
		t.Fatalf("css %v baseline %v", d.c.hs.css, d.c.hs.cssBaselineMinRTT)
	}
	d.round(10, 110*time.Millisecond, nil)
	if d.c.hs.css {
		t.Fatal("still in CSS after a round below the baseline")
	}
	cwnd := d.c.cwnd
	d.round(1, 110*time.Millisecond, nil)
	if d.c.cwnd != cwnd+1000 {
		t.Fatalf("slow start again: cwnd %d -> %d", cwnd, d.c.cwnd)
	}
	d.c.OnFastRetransmit(d.now, d.c.cwnd)
	if !d.c.hs.done {
		t.Fatal("a loss must end HyStart++")
	}
}

// RFC 9406 sections 4.2 and 4.3: slow start grows by min(N, L*SMSS) per
// ACK, CSS by a quarter of that. L is infinity for a sender that paces
// (section 4.3) and, here, for one that does not (slowStartGrowth: RFC
// 9406's L = 8 made stretch ACKs slow slow start down). An ACK of 20
// segments (MSS 1000): +20000 in slow start, +5000 in CSS, paced or not.
func TestHyStartLRFC9406(t *testing.T) {
	for _, tc := range []struct {
		paced         bool
		wantSS, wantC int
	}{
		{false, 20000, 5000},
		{true, 20000, 5000},
	} {
		c := NewCubic(1000).(*cubic)
		c.cwnd = 40000
		ack := Ack{Acked: 20000, Flight: 40000, Una: 20001, Next: 60001, RTT: 100 * time.Millisecond, SRTT: 100 * time.Millisecond, Paced: tc.paced}
		c.OnAck(epoch, ack)
		if got := c.cwnd - 40000; got != tc.wantSS {
			t.Errorf("paced %v: slow start grew by %d, want %d", tc.paced, got, tc.wantSS)
		}
		c.hs.css = true
		c.hs.cssBaselineMinRTT = 100 * time.Millisecond
		before := c.cwnd
		ack.Una, ack.Next = 40001, 80001 // within the round that began above
		c.OnAck(epoch.Add(time.Millisecond), ack)
		if got := c.cwnd - before; got != tc.wantC {
			t.Errorf("paced %v: CSS grew by %d, want %d", tc.paced, got, tc.wantC)
		}
	}
}

// Issue 11: connections use CUBIC by default and report it; an unknown
// name fails Connect and Listen, naming the registered controllers; a
// connection can change controller.
func TestCongestionControlByName(t *testing.T) {
	tc := newEstablished(t)
	if got := tc.c.Info().CongestionControl; got != "cubic" {
		t.Fatalf("default controller %q, want cubic", got)
	}
	if err := tc.c.SetCongestionControl("vegas"); !errors.Is(err, ErrUnknownCongestionControl) || !strings.Contains(err.Error(), `"vegas" (registered: cubic, newreno, bbr)`) {
		t.Fatalf("SetCongestionControl(vegas) = %v", err)
	}
	cwnd := tc.c.Info().CWnd
	if err := tc.c.SetCongestionControl("newreno"); err != nil {
		t.Fatal(err)
	}
	if i := tc.c.Info(); i.CongestionControl != "newreno" || i.CWnd != cwnd {
		t.Fatalf("after SetCongestionControl: %q cwnd %d, want newreno %d", i.CongestionControl, i.CWnd, cwnd)
	}
	for _, open := range []func(*Conn) error{
		func(c *Conn) error { return c.Connect(epoch) },
		func(c *Conn) error { return c.Listen(epoch) },
	} {
		c := NewConn(&Config{CongestionControl: "vegas"}, Tuple{Local: localAP, Remote: remoteAP}, nil)
		if err := open(c); !errors.Is(err, ErrUnknownCongestionControl) {
			t.Errorf("open with an unknown controller: %v", err)
		}
		if c.State() != Closed {
			t.Errorf("state %v after a failed open", c.State())
		}
	}
	var cfg Config
	if cfg.WithDefaults().CongestionControl != DefaultCongestionControl || cfg.Validate() != nil {
		t.Error("the zero Config does not name the default controller")
	}
}

// A controller chosen before the handshake survives it (the MSS is only
// known then, and the controller is made again for it).
func TestCongestionControlBeforeHandshake(t *testing.T) {
	tc := newTC(t)
	if err := tc.c.SetCongestionControl("newreno"); err != nil {
		t.Fatal(err)
	}
	if err := tc.c.Connect(tc.now); err != nil {
		t.Fatal(err)
	}
	tc.drain()
	tc.in(seg{flags: S | A, seq: irs, ack: iss + 1, opts: mssOpt(1000)})
	if got := tc.c.Info().CongestionControl; got != "newreno" {
		t.Fatalf("after the handshake: %q, want newreno", got)
	}
}

// RFC 9438 section 5.8: an application-limited flow (here less than half
// the window in flight) does not grow cwnd, and the time it spends so does
// not count in the epoch (section 4.2's t).
func TestCubicApplicationLimitedRFC9438(t *testing.T) {
	c := reduced(100)
	c.OnAck(epoch, Ack{Acked: 0, Flight: c.cwnd, SRTT: 100 * time.Millisecond})
	start := c.start
	c.OnAck(epoch.Add(10*time.Second), Ack{Acked: 1000, Flight: 10000, SRTT: 100 * time.Millisecond})
	if c.cwnd != 70000 || !c.start.Equal(start.Add(10*time.Second)) {
		t.Fatalf("application-limited ACK: cwnd %d, epoch start moved by %v; want 70000 and 10s", c.cwnd, c.start.Sub(start))
	}
	// Back to a full window one second later: growth as at t = 1 s
	// (TestCubicWindowFunctionRFC9438).
	c.OnAck(epoch.Add(11*time.Second), Ack{Acked: 1000, Flight: c.cwnd, SRTT: 100 * time.Millisecond})
	if c.cwnd != 70255 {
		t.Fatalf("cwnd %d, want 70255", c.cwnd)
	}
}

// The connection tells HyStart++ whether it paces (RFC 9406 section
// 4.3's L depends on it): Config.Pacing for a window-based controller.
func TestAckPacedFollowsPacing(t *testing.T) {
	for _, pacing := range []bool{false, true} {
		tc := newEstablishedSACKRTT(t, 100*time.Millisecond, func(c *Config) { c.Pacing = pacing })
		if a := tc.c.ccAck(tc.now, 0); a.Paced != pacing {
			t.Errorf("Config.Pacing %v: Ack.Paced %v", pacing, a.Paced)
		}
	}
}

// trainRun feeds a CUBIC controller in its initial slow start ACKs of two
// segments each, the sender keeping its window full: within a round
// (RFC 9406 section 4.2) they come spacing apart, with clumpGap more
// before the middle one when clumpGap > 0; between rounds the path is
// idle for minRTT. When batch > 0 the sender takes them in batches: an
// ACK that arrives at t is taken at the end of the batch interval t falls
// in (the next multiple of batch after the first ACK's arrival), all of a
// batch at the same instant. Every ACK carries an RTT sample of minRTT,
// so the delay rule never fires. It stops when slow start ends or after
// max ACKs.
func trainRun(spacing, clumpGap, minRTT, batch time.Duration, paced bool, max int) *cubic {
	c := NewCubic(1000).(*cubic)
	una, end, arr := seqnum.Value(1), seqnum.Value(1), epoch
	m, i := 0, 0 // the round's ACKs, and this one's place in it
	for n := 0; n < max && c.ssthresh == initialSSThresh; n++ {
		una = una.Add(2000)
		if n == 0 || una.GreaterThanEq(end) {
			arr = arr.Add(minRTT)
			end, m, i = una.Add(seqnum.Size(c.cwnd)), c.cwnd/2000, 0
		} else {
			i++
			arr = arr.Add(spacing)
			if clumpGap > 0 && i == m/2 {
				arr = arr.Add(clumpGap)
			}
		}
		now := arr
		if batch > 0 {
			k := arr.Sub(epoch) / batch
			now = epoch.Add((k + 1) * batch)
		}
		c.OnAck(now, Ack{Acked: 2000, Flight: c.cwnd, Una: una, Next: una.Add(seqnum.Size(c.cwnd)),
			RTT: minRTT, SRTT: minRTT, MinRTT: minRTT, Paced: paced})
	}
	return c
}

// The ACK-train exit (hystart.train, an extension beside RFC 9406): ACKs
// 100 us apart (a bottleneck of one segment per 50 us, an ACK per two),
// a least RTT of 20 ms. Rounds of 5, 10, 20, 40 and 80 ACKs span
// (m-1) x 100 us = 0.4 to 7.9 ms, short of RTT/2 = 10 ms; the round of
// 160 (cwnd 10000 + 155 x 2000 = 320000 at its start) reaches 10 ms at
// its ACK 101 (index 100), where slow start ends with ssthresh = cwnd =
// 320000 + 100 x 2000 = 520000 (the path's BDP is 400 segments: the
// round has delivered half of it). The same rounds in two clumps 5 ms
// apart add up without the gap: index 101, 522000. Not applied to a
// paced sender or on a path of 2 ms (under hsMinRTTThresh).
//
// Batched ACKs (issue 11): the sender takes its ACKs in batches (all the
// ACKs of a batch at one instant, as a starved runtime takes them). On a
// path of 100 ms, ACKs 100 us apart (BDP 2000 segments), unbatched, the
// round of 640 ACKs (cwnd 1280000 at its start) spans 50 ms at its ACK
// 501: exit at 1280000 + 500 x 2000 = 2280000. Batches of 3, 5 and 10 ms:
// before, no gap between batches counted (each is over hsTrainGap) and
// slow start never ended by the train; now each batch is credited with
// the bottleneck time of what it acknowledged, and the exit comes within
// about a batch of the unbatched one (a batch is 30000 bytes a ms). With
// the round in two clumps 5 ms apart it does not come early. Batches of
// 3 ms on the 20 ms path are longer than minRTT/8: not credited, as before
// (they can hold a clump's idle end: credited, the rounds in two clumps
// ended slow start at 288000, 0.72 BDP; creditBatch).
// ACKs 3 ms apart, unbatched, 20 ms: a slow bottleneck (2000 bytes per
// 3 ms, a BDP of 13.3 segments) or batches of one ACK; over minRTT/8,
// not credited: no exit.
func TestHyStartAckTrainExit(t *testing.T) {
	ms, us := time.Millisecond, time.Microsecond
	for _, tc := range []struct {
		name                             string
		spacing, clumpGap, minRTT, batch time.Duration
		paced                            bool
		wantExit                         bool
		wantLo, wantHi                   int // ssthresh
	}{
		{"one train per round", 100 * us, 0, 20 * ms, 0, false, true, 520000, 520000},
		{"two clumps per round", 100 * us, 5 * ms, 20 * ms, 0, false, true, 522000, 522000},
		{"100 ms path", 100 * us, 0, 100 * ms, 0, false, true, 2280000, 2280000},
		{"100 ms path, batches of 3 ms", 100 * us, 0, 100 * ms, 3 * ms, false, true, 2280000, 2280000 + 2*90000},
		{"100 ms path, batches of 5 ms", 100 * us, 0, 100 * ms, 5 * ms, false, true, 2280000, 2280000 + 2*150000},
		{"100 ms path, batches of 10 ms", 100 * us, 0, 100 * ms, 10 * ms, false, true, 2280000, 2280000 + 2*300000},
		{"100 ms path, two clumps, batches of 3 ms", 100 * us, 5 * ms, 100 * ms, 3 * ms, false, true, 2280000, 2280000 + 2*90000},
		{"20 ms path, batches of 3 ms", 100 * us, 0, 20 * ms, 3 * ms, false, false, initialSSThresh, initialSSThresh},
		{"20 ms path, two clumps, batches of 3 ms", 100 * us, 5 * ms, 20 * ms, 3 * ms, false, false, initialSSThresh, initialSSThresh},
		{"paced", 100 * us, 0, 20 * ms, 0, true, false, initialSSThresh, initialSSThresh},
		{"ACKs 3 ms apart", 3 * ms, 0, 20 * ms, 0, false, false, initialSSThresh, initialSSThresh},
		{"2 ms path", 100 * us, 0, 2 * ms, 0, false, false, initialSSThresh, initialSSThresh},
	} {
		c := trainRun(tc.spacing, tc.clumpGap, tc.minRTT, tc.batch, tc.paced, 4000)
		if c.hs.trainExit != tc.wantExit || c.ssthresh < tc.wantLo || c.ssthresh > tc.wantHi {
			t.Errorf("%s: train exit %v ssthresh %d (cwnd %d), want %v and %d..%d", tc.name, c.hs.trainExit, c.ssthresh, c.cwnd, tc.wantExit, tc.wantLo, tc.wantHi)
		}
		if tc.wantExit && (c.cwnd != c.ssthresh || !c.hs.done) {
			t.Errorf("%s: cwnd %d ssthresh %d done %v: want congestion avoidance from the window at the exit", tc.name, c.cwnd, c.ssthresh, c.hs.done)
		}
	}
}

package tcp

import (
	"math"
	"testing"
	"time"

	"github.com/synack/synack/seqnum"
)

// bbrPath is a fluid model of one bottleneck for driving a bbr directly:
// each round trip the sender puts min(cwnd, pacing rate * RTT) in flight;
// the bottleneck delivers at most bw; what exceeds one BDP waits in the
// queue and lengthens the RTT. Every round comes back as acks ACKs, each
// with the rate sample the connection would compute.
type bbrPath struct {
	b         *bbr
	now       time.Time
	bw        float64 // bytes per second
	base      time.Duration
	delivered uint64
	acks      int
	states    []string // every state seen, in order
	stopAt    string   // round returns at the first ACK that enters it
}

func (p *bbrPath) round() {
	b := p.b
	inflight := float64(b.cwnd)
	if b.pacingRate > 0 {
		inflight = min(inflight, b.pacingRate*p.base.Seconds())
	}
	inflight = max(inflight, float64(b.mss))
	rate := min(p.bw, inflight/p.base.Seconds())
	rtt := p.base + time.Duration(max(0, inflight-p.bw*p.base.Seconds())/p.bw*float64(time.Second))
	prior := p.delivered
	per := int(inflight) / p.acks
	for i := 1; i <= p.acks; i++ {
		p.now = p.now.Add(rtt / time.Duration(p.acks))
		p.delivered += uint64(per)
		b.OnEveryAck(p.now, Ack{SRTT: rtt, Rate: RateSample{
			DeliveryRate: int64(rate), Delivered: int64(rate * rtt.Seconds()), Interval: rtt,
			PriorDelivered: prior, TotalDelivered: p.delivered, NewlyAcked: per,
			TxInFlight: int(inflight), InFlight: int(inflight) - i*per, RTT: rtt,
		}})
		if n := len(p.states); n == 0 || p.states[n-1] != b.State() {
			p.states = append(p.states, b.State())
			if b.State() == p.stopAt {
				return
			}
		}
	}
}

func (p *bbrPath) until(t *testing.T, state string, limit time.Duration) time.Duration {
	t.Helper()
	start := p.now
	p.stopAt = state
	for p.b.State() != state {
		if p.now.Sub(start) > limit {
			t.Fatalf("no %s within %v; states %v", state, limit, p.states)
		}
		p.round()
	}
	return p.now.Sub(start)
}

// draft-ietf-ccwg-bbr section 5.3: on a path of 100 Mbit/s and 20 ms
// BBR's STARTUP doubles the rate each round until three rounds bring no
// 25 % growth, DRAIN empties the queue it built, PROBE_BW cycles through
// its phases, and once 5 s pass without a lower RTT (probe_rtt_min_delay
// expires; min_rtt itself lasts 10 s) PROBE_RTT drains to half a BDP for
// 200 ms and a round, then PROBE_BW resumes.
func TestBBRStateMachine(t *testing.T) {
	const bw = 100e6 / 8
	const base = 20 * time.Millisecond
	p := &bbrPath{b: NewBBR(1000).(*bbr), now: epoch, bw: bw, base: base, acks: 20}
	if p.b.State() != "STARTUP" {
		t.Fatalf("starts in %s", p.b.State())
	}
	p.until(t, "DRAIN", 2*time.Second)
	if got := p.b.maxBW(); got < 0.95*bw || got > 1.05*bw {
		t.Fatalf("max bw at the end of STARTUP %.0f, want about %.0f", got, bw)
	}
	// DRAIN ends when the queue is gone; PROBE_BW starts DOWN, which,
	// with no queue left to drain, cruises on the same ACK (section
	// 5.3.3.6 runs after the DRAIN check).
	p.until(t, "PROBE_BW_CRUISE", time.Second)
	if n := len(p.states); n < 2 || p.states[n-2] != "DRAIN" {
		t.Fatalf("states %v, want DRAIN then PROBE_BW_CRUISE", p.states)
	}
	bdp := bw * base.Seconds()
	if c := float64(p.b.cwnd); c < bdp || c > 3*bdp {
		t.Fatalf("cwnd %0.f in PROBE_BW, want between 1 and 3 BDP (%.0f)", c, bdp)
	}
	if r := p.b.pacingRate; r < 0.9*bw || r > 1.3*bw {
		t.Fatalf("pacing rate %.0f in PROBE_BW, want about the bottleneck's %.0f", r, bw)
	}
	// The probe cycle: REFILL, UP, back DOWN within 2 to 3 s.
	p.until(t, "PROBE_BW_REFILL", 4*time.Second)
	p.until(t, "PROBE_BW_UP", time.Second)
	p.until(t, "PROBE_BW_DOWN", time.Second)

	// The last new minimum was seen in STARTUP's first rounds: PROBE_RTT
	// comes 5 s after it, not later than min_rtt's 10 s.
	sinceMin := p.now.Sub(p.b.probeRTTStamp)
	wait := p.until(t, "PROBE_RTT", 10*time.Second)
	if since := sinceMin + wait; since < bbrProbeRTTInterval || since > bbrMinRTTFilterLen {
		t.Fatalf("PROBE_RTT %v after the last new minimum RTT, want between 5 s and 10 s", since)
	}
	if got, want := p.b.cwnd, p.b.probeRTTCwnd(); got > want {
		t.Fatalf("cwnd %d in PROBE_RTT, want at most %d (half a BDP)", got, want)
	}
	in := p.now
	d := p.until(t, "PROBE_BW_CRUISE", time.Second)
	if d < bbrProbeRTTDuration {
		t.Fatalf("PROBE_RTT lasted %v, want at least %v", d, bbrProbeRTTDuration)
	}
	if !p.b.probeRTTStamp.After(in) {
		t.Fatal("leaving PROBE_RTT did not restart the 5 s interval")
	}
}

// Random loss below BBRLossThresh in a probe does not end it; a lost
// segment whose own flight lost more than BBRLossThresh sets inflight_hi
// to the flight at which the loss rate crossed it and goes down
// (draft-ietf-ccwg-bbr-06 section 5.5.10.2, HandleLostPacket and
// InflightAtLoss). An ACK's rate sample does not:
// the segment it delivered may have left at a smaller flight than the
// ones whose losses it reveals.
func TestBBRLossThresholdInProbeUp(t *testing.T) {
	p := &bbrPath{b: NewBBR(1000).(*bbr), now: epoch, bw: 100e6 / 8, base: 20 * time.Millisecond, acks: 20}
	p.until(t, "PROBE_BW_UP", 10*time.Second)
	b := p.b
	ack := func(lost, txInFlight int) {
		p.now = p.now.Add(time.Millisecond)
		b.OnEveryAck(p.now, Ack{SRTT: p.base, Rate: RateSample{
			DeliveryRate: int64(p.bw), Delivered: 250000, Interval: p.base, PriorDelivered: p.delivered,
			TotalDelivered: p.delivered + 1000, NewlyAcked: 1000, NewlyLost: lost, Lost: lost,
			TxInFlight: txInFlight, InFlight: txInFlight - 1000, RTT: p.base,
		}})
		p.delivered += 1000
	}
	lose := func(lost, txInFlight int) {
		b.onPacketLost(p.now, lostPacket{Size: 1000, TxInFlight: txInFlight, Lost: lost,
			PriorDelivered: p.delivered - 250000, TotalDelivered: p.delivered})
	}
	ack(2000, 44000) // a REFILL segment's sample: 4.5 % of its small flight
	if b.State() != "PROBE_BW_UP" {
		t.Fatalf("an ACK's sample ended the probe: %s", b.State())
	}
	lose(1000, 250000) // 0.4 %
	if b.State() != "PROBE_BW_UP" {
		t.Fatalf("0.4 %% loss ended the probe: %s", b.State())
	}
	lose(6000, 250000) // 2.4 %
	if b.State() != "PROBE_BW_DOWN" {
		t.Fatalf("2.4 %% loss: %s, want PROBE_BW_DOWN", b.State())
	}
	// InflightAtLoss: before the lost segment 249000 in flight, 5000
	// lost; (5000 + x) / (249000 + x) = 2 % at x = -20.4, -20 in bytes.
	if b.inflightHi != 248980 {
		t.Fatalf("inflight_hi %.0f, want 248980, where the lost segment's flight crossed 2 %% loss", b.inflightHi)
	}
}

// A classic ECN echo (RFC 3168) in PROBE_BW's cruise counts as a round
// with loss: at the round's end the lower bounds bw_lo and inflight_lo are
// set (section 5.5.10.3); without one they stay unset.
func TestBBROnECECutsLowerBounds(t *testing.T) {
	const bw = 100e6 / 8
	p := &bbrPath{b: NewBBR(1000).(*bbr), now: epoch, bw: bw, base: 20 * time.Millisecond, acks: 20}
	p.until(t, "PROBE_BW_CRUISE", 3*time.Second)
	p.round()
	if !math.IsInf(p.b.bwLo, 1) {
		t.Fatalf("bw_lo %.0f without congestion, want unset", p.b.bwLo)
	}
	before, cwnd := p.b.maxBW(), float64(p.b.cwnd)
	p.b.OnECE(p.now, p.b.cwnd)
	p.round()
	p.round()
	// max(latest, Beta × bound): on this fluid path the latest round
	// delivered the bottleneck's rate, so the bounds settle there.
	if math.IsInf(p.b.bwLo, 1) || p.b.bwLo > before || p.b.bwLo < bbrBeta*before {
		t.Fatalf("bw_lo %.0f after an ECE round, want between Beta × %.0f and it", p.b.bwLo, before)
	}
	if math.IsInf(p.b.inflightLo, 1) || p.b.inflightLo > cwnd {
		t.Fatalf("inflight_lo %.0f after an ECE round, want set and at most cwnd %.0f", p.b.inflightLo, cwnd)
	}
}

// draft-ietf-ccwg-bbr-06 section 5.6.4.4, "Modulating cwnd in Loss
// Recovery": entering fast recovery only saves cwnd; in recovery
// BBR answers loss through its model (bw_lo, inflight_lo once a round,
// inflight_hi in a probe), not by cutting cwnd to the pipe on each ACK
// as Linux's packet conservation does. On exit the saved cwnd returns.
func TestBBRFastRecoveryKeepsModelCwnd(t *testing.T) {
	const bw = 100e6 / 8
	p := &bbrPath{b: NewBBR(1000).(*bbr), now: epoch, bw: bw, base: 20 * time.Millisecond, acks: 20}
	p.until(t, "PROBE_BW_CRUISE", 3*time.Second)
	p.round()
	b := p.b
	before := b.cwnd
	b.OnFastRetransmit(p.now, before)
	// Ten segments of the flight are marked lost: the pipe falls by as
	// much, which packet conservation would have made the window.
	for i := 0; i < 5; i++ {
		p.now = p.now.Add(time.Millisecond)
		p.delivered += 1000
		b.OnEveryAck(p.now, Ack{SRTT: p.base, Rate: RateSample{
			DeliveryRate: int64(bw), Delivered: int64(bw * p.base.Seconds()), Interval: p.base,
			PriorDelivered: p.delivered - uint64(before), TotalDelivered: p.delivered,
			NewlyAcked: 1000, NewlyLost: 2000, TxInFlight: before, InFlight: before - 10000, RTT: p.base,
		}})
		if b.cwnd < before {
			t.Fatalf("ACK %d in fast recovery: cwnd %d, want the model's %d kept (no packet conservation)", i, b.cwnd, before)
		}
	}
	b.cwnd = before / 2 // as if the model's lower bounds had cut it
	b.OnRecoveryEnd(p.now, 0)
	if b.cwnd != before {
		t.Fatalf("cwnd %d after recovery, want the %d saved on entry (BBRRestoreCwnd)", b.cwnd, before)
	}
}

// draft-ietf-ccwg-bbr-06 section 5.3.1.2, "Exiting Acceleration Based on
// Bandwidth Plateau": the full-pipe estimator looks at one
// sample a round, the round's first. A higher sample in mid-round does
// not restart the count of rounds without 25 % growth.
func TestBBRFullBWCheckedOncePerRound(t *testing.T) {
	b := NewBBR(1000).(*bbr)
	b.fullBw, b.fullBwCount = 1e6, 2
	b.roundStart = false
	b.checkFullBWReached(&RateSample{DeliveryRate: 2e6})
	if b.fullBw != 1e6 || b.fullBwCount != 2 {
		t.Fatalf("a mid-round sample moved full_bw to %.0f, count %d; want 1e6 and 2", b.fullBw, b.fullBwCount)
	}
	b.roundStart = true
	b.checkFullBWReached(&RateSample{DeliveryRate: 1.1e6})
	if !b.fullBwReached {
		t.Fatalf("third round without 25 %% growth: full_bw_reached false, count %d", b.fullBwCount)
	}
	b = NewBBR(1000).(*bbr)
	b.fullBw, b.fullBwCount, b.roundStart = 1e6, 2, true
	b.checkFullBWReached(&RateSample{DeliveryRate: 1.3e6})
	if b.fullBw != 1.3e6 || b.fullBwCount != 0 || b.fullBwReached {
		t.Fatalf("a round start with 30 %% growth: full_bw %.0f count %d reached %v; want 1.3e6, 0, false", b.fullBw, b.fullBwCount, b.fullBwReached)
	}
}

// draft-ietf-ccwg-bbr-06 section 5.3.3.8.2, "A Dual-Time-Scale Approach
// for Coexistence": the probe waits are random "for better
// mixing and fairness convergence". The core reads no entropy, so the
// first ACK's SND.UNA (from the connection's ISS) seeds the draw: two
// connections with different ISSs draw different waits, a connection
// with a pinned ISS the same ones every run.
func TestBBRProbeWaitFollowsISS(t *testing.T) {
	waits := func(una uint32) [4]time.Duration {
		b := NewBBR(1000).(*bbr)
		b.OnEveryAck(epoch, Ack{Una: seqnum.Value(una), SRTT: 20 * time.Millisecond})
		var w [4]time.Duration
		for i := range w {
			b.pickProbeWait()
			w[i] = b.bwProbeWait + time.Duration(b.roundsSinceBw)
		}
		return w
	}
	a, again, other := waits(1001), waits(1001), waits(7_000_001)
	if a != again {
		t.Fatalf("same ISS, different waits: %v and %v", a, again)
	}
	if a == other {
		t.Fatalf("different ISSs, same waits %v: flows started together would probe in lockstep", a)
	}
	for _, w := range append(a[:], other[:]...) {
		if w < 2*time.Second || w >= 3*time.Second+2 {
			t.Fatalf("probe wait %v, want 2 to 3 s", w)
		}
	}
}

// draft-ietf-ccwg-bbr-06 section 5.3.3.6, "Precautionary Bandwidth
// Probing": after a probe that went too high, the next probe stops as
// soon as the flight reaches inflight_hi (deceleration); if a round of
// its feedback then shows no excess loss, the flow probes again at once,
// through REFILL, instead of cruising for 2 to 3 s (acceleration).
func TestBBRPrecautionaryProbing(t *testing.T) {
	p := &bbrPath{b: NewBBR(1000).(*bbr), now: epoch, bw: 100e6 / 8, base: 20 * time.Millisecond, acks: 20}
	p.until(t, "PROBE_BW_UP", 10*time.Second)
	b := p.b
	b.onPacketLost(p.now, lostPacket{Size: 1000, TxInFlight: 250000, Lost: 6000,
		PriorDelivered: p.delivered - 250000, TotalDelivered: p.delivered})
	if b.State() != "PROBE_BW_DOWN" || !b.prevProbeTooHigh {
		t.Fatalf("2.4 %% loss in a probe: %s, prev_probe_too_high %v; want PROBE_BW_DOWN, true", b.State(), b.prevProbeTooHigh)
	}
	// The next probe: REFILL, then UP, which stops at inflight_hi.
	p.until(t, "PROBE_BW_REFILL", 4*time.Second)
	p.until(t, "PROBE_BW_UP", time.Second)
	hi := b.inflightHi
	p.now = p.now.Add(time.Millisecond)
	b.OnEveryAck(p.now, Ack{SRTT: p.base, Rate: RateSample{
		DeliveryRate: int64(p.bw), Delivered: 250000, Interval: p.base, PriorDelivered: p.delivered - 1000,
		TotalDelivered: p.delivered + 1000, NewlyAcked: 1000, TxInFlight: int(hi), InFlight: int(hi), RTT: p.base,
	}})
	p.delivered += 1000
	if b.State() != "PROBE_BW_DOWN" || !b.prevProbePrecautionary || b.prevProbeTooHigh {
		t.Fatalf("flight at inflight_hi after a probe too high: %s, precautionary %v, too high %v; want PROBE_BW_DOWN, true, false",
			b.State(), b.prevProbePrecautionary, b.prevProbeTooHigh)
	}
	// No loss: within a few rounds, not 2 to 3 s, it probes again.
	start := p.now
	p.states = nil
	p.until(t, "PROBE_BW_REFILL", 100*time.Millisecond)
	if d := p.now.Sub(start); d > 4*p.base {
		t.Fatalf("REFILL %v after the cautious probe, want within a few rounds", d)
	}
	if b.prevProbePrecautionary {
		t.Fatal("prev_probe_precautionary still set in REFILL")
	}
}

// draft-ietf-ccwg-bbr-06 section 5.3.2: DRAIN paces below
// 1/BBRStartupCwndGain (0.35 here, Linux's, where the draft has 0.5), so
// STARTUP's queue drains within a round, and ends once the flight is
// down to a BDP, or after three rounds when it
// never gets there (a bandwidth STARTUP overestimated, as when another
// flow shares the path), leaving PROBE_BW's cycle to correct max_bw.
func TestBBRDrainEndsAfterThreeRounds(t *testing.T) {
	p := &bbrPath{b: NewBBR(1000).(*bbr), now: epoch, bw: 100e6 / 8, base: 20 * time.Millisecond, acks: 20}
	p.until(t, "DRAIN", 2*time.Second)
	b := p.b
	if b.pacingGain > 1/bbrStartupCwndGain {
		t.Fatalf("DRAIN's pacing gain %v, want at most 1/%v", b.pacingGain, bbrStartupCwndGain)
	}
	queued := int(3 * p.bw * p.base.Seconds()) // three BDPs in flight: never drained
	for round := 1; round <= 4; round++ {
		p.now = p.now.Add(p.base)
		b.OnEveryAck(p.now, Ack{SRTT: p.base, Rate: RateSample{
			DeliveryRate: int64(p.bw), Delivered: int64(p.bw * p.base.Seconds()), Interval: p.base,
			PriorDelivered: p.delivered, TotalDelivered: p.delivered + 1000, NewlyAcked: 1000,
			TxInFlight: queued, InFlight: queued, RTT: p.base,
		}})
		p.delivered += 1000
		if round <= bbrDrainMaxRounds && b.State() != "DRAIN" {
			t.Fatalf("round %d of DRAIN with three BDPs in flight: %s, want DRAIN", round, b.State())
		}
	}
	if b.State() == "DRAIN" {
		t.Fatal("still in DRAIN after four rounds, want PROBE_BW")
	}
}

// draft-ietf-ccwg-bbr-06 section 5.3.3.9: StartProbeBW_DOWN resets the
// congestion signals (loss_in_round, bw_latest, inflight_latest), not
// is_bw_probe_sample, which AdaptLongTermModel clears only when DOWN's
// first round ends (ACKS_PROBE_STOPPING): the losses of a probe's
// segments are mostly marked after the probe has ended (RACK waits a
// round trip and a reordering window), and they still bound inflight_hi
// (HandleLostPacket, section 5.5.10.2) — once per probe. After that
// round, a loss is no probe's.
func TestBBRProbeLossFoundInDownSetsInflightHi(t *testing.T) {
	probeDown := func() *bbrPath {
		p := &bbrPath{b: NewBBR(1000).(*bbr), now: epoch, bw: 100e6 / 8, base: 20 * time.Millisecond, acks: 20}
		p.until(t, "PROBE_BW_UP", 10*time.Second)
		p.until(t, "PROBE_BW_DOWN", time.Second)
		if !math.IsInf(p.b.inflightHi, 1) {
			t.Fatalf("inflight_hi %.0f after a probe without loss, want unset", p.b.inflightHi)
		}
		return p
	}
	lose := func(p *bbrPath) {
		p.b.onPacketLost(p.now, lostPacket{Size: 1000, TxInFlight: 300000, Lost: 9000,
			PriorDelivered: p.delivered - 300000, TotalDelivered: p.delivered})
	}

	p := probeDown()
	lose(p) // 3 % of a probe segment's flight, found in DOWN's first round
	if math.IsInf(p.b.inflightHi, 1) || !p.b.prevProbeTooHigh {
		t.Fatalf("a probe's 3 %% loss found in PROBE_BW_DOWN's first round: inflight_hi %.0f, prev_probe_too_high %v; want set, true",
			p.b.inflightHi, p.b.prevProbeTooHigh)
	}
	if p.b.State() != "PROBE_BW_DOWN" {
		t.Fatalf("state %s, want PROBE_BW_DOWN (already going down)", p.b.State())
	}
	hi := p.b.inflightHi
	p.b.onPacketLost(p.now, lostPacket{Size: 1000, TxInFlight: 200000, Lost: 9000,
		PriorDelivered: p.delivered - 200000, TotalDelivered: p.delivered})
	if p.b.inflightHi != hi {
		t.Fatalf("a second loss of the same probe moved inflight_hi from %.0f to %.0f, want one reaction a probe", hi, p.b.inflightHi)
	}

	p = probeDown()
	p.round() // DOWN's first round ends: the probe's samples are all in
	lose(p)
	if !math.IsInf(p.b.inflightHi, 1) {
		t.Fatalf("a loss after PROBE_BW_DOWN's first round set inflight_hi %.0f, want unset", p.b.inflightHi)
	}
}

// draft-ietf-ccwg-bbr-06 section 5.5.10.3: the first loss of a round
// (NoteLoss) restarts the loss round at the connection's delivered count,
// so the lower bounds are cut once a round trip of delivery signals after
// that loss has been seen (bw_latest and inflight_latest cover it), not at
// the end of the round already under way when the loss was found.
func TestBBRLossRoundStartsAtFirstLoss(t *testing.T) {
	p := &bbrPath{b: NewBBR(1000).(*bbr), now: epoch, bw: 100e6 / 8, base: 20 * time.Millisecond, acks: 20}
	p.until(t, "PROBE_BW_CRUISE", 3*time.Second)
	p.round()
	b := p.b
	if !math.IsInf(b.bwLo, 1) {
		t.Fatalf("bw_lo %.0f in CRUISE without loss, want unset", b.bwLo)
	}
	ack := func(prior uint64, lost int) {
		p.now = p.now.Add(time.Millisecond)
		p.delivered += 1000
		b.OnEveryAck(p.now, Ack{SRTT: p.base, Rate: RateSample{
			DeliveryRate: int64(p.bw), Delivered: int64(p.bw * p.base.Seconds()), Interval: p.base,
			PriorDelivered: prior, TotalDelivered: p.delivered, NewlyAcked: 1000, NewlyLost: lost,
			TxInFlight: 250000, InFlight: 249000, RTT: p.base,
		}})
	}
	// A loss round starts at this ACK (its segment left after the last
	// boundary); the next boundary is what is delivered now.
	ack(p.delivered, 0)
	boundary := p.delivered
	// Later in that round a segment is marked lost, with the ACK that
	// revealed it (rate.go tells the controller first).
	p.b.onPacketLost(p.now, lostPacket{Size: 1000, TxInFlight: 250000, Lost: 1000,
		PriorDelivered: boundary - 250000, TotalDelivered: p.delivered + 1000})
	ack(boundary-1000, 1000)
	atLoss := p.delivered
	// A segment sent at the old boundary is acknowledged: the round under
	// way when the loss was found ends, the loss round does not.
	ack(boundary, 0)
	if !math.IsInf(b.bwLo, 1) {
		t.Fatalf("bw_lo %.0f cut at the end of the round the loss was found in, want unset until a round after it", b.bwLo)
	}
	// A segment sent after the loss was found: now the cut.
	ack(atLoss, 0)
	if math.IsInf(b.bwLo, 1) || math.IsInf(b.inflightLo, 1) {
		t.Fatalf("bw_lo %.0f, inflight_lo %.0f a round after the loss, want both set", b.bwLo, b.inflightLo)
	}
}

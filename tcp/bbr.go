package tcp

import (
	"math"
	"time"

	"github.com/synack/synack/seqnum"
)

// This file is BBR, version 3, as draft-ietf-ccwg-bbr describes it: a
// model-based congestion controller. It estimates the path's bottleneck
// bandwidth (a windowed maximum of delivery-rate samples, rate.go) and its
// round-trip propagation delay (a windowed minimum of RTT samples), paces
// at about that bandwidth and keeps about one bandwidth-delay product in
// flight. Loss does not cut the rate in proportion as in loss-based
// controllers: a probe whose loss rate exceeds BBRLossThresh (2 %) sets
// the long-term bound inflight_hi, and outside probes a round with loss
// moves the short-term bounds bw_lo and inflight_lo to what that round
// delivered, until the next probe resets them. That is what lets it
// fill much of a long path that drops 1 % of its packets at random.
//
// The names follow the draft's pseudocode (BBR.max_bw is maxBw, ...),
// section numbers refer to draft-ietf-ccwg-bbr-06 (-04 and -05 number
// these sections the same; -02 one lower at the top). Amounts are in bytes,
// rates in bytes per second. Left out: the ACK-aggregation estimate
// (extra_acked, section 5.5.9; cwnd_gain's 2 covers delayed ACKs) and
// the idle restart (section 5.4.2).

// bbrState is the draft's BBR.state with PROBE_BW's four phases.
type bbrState uint8

const (
	bbrStartup bbrState = iota
	bbrDrain
	bbrProbeBWDown
	bbrProbeBWCruise
	bbrProbeBWRefill
	bbrProbeBWUp
	bbrProbeRTT
)

var bbrStateNames = [...]string{"STARTUP", "DRAIN", "PROBE_BW_DOWN", "PROBE_BW_CRUISE", "PROBE_BW_REFILL", "PROBE_BW_UP", "PROBE_RTT"}

func (s bbrState) String() string { return bbrStateNames[s] }

// The draft's constants (section 5.1 and 5.3 onwards).
const (
	bbrStartupPacingGain = 2.77 // 4*ln(2)
	bbrStartupCwndGain   = 2.0
	bbrDrainPacingGain   = 0.35 // Linux BBRv3's 1/2.885; draft-06 has 0.5 (enterDrain says why not)
	bbrDefaultCwndGain   = 2.0
	bbrProbeUpCwndGain   = 2.25
	bbrProbeUpGain       = 1.25
	bbrProbeDownGain     = 0.9
	bbrProbeRTTCwndGain  = 0.5
	bbrLossThresh        = 0.02 // BBRLossThresh: a loss rate above it bounds the model
	bbrBeta              = 0.7  // BBRBeta: the multiplicative cut of the lower bounds
	bbrHeadroom          = 0.15 // BBRHeadroom: room left for other flows below inflight_hi
	bbrPacingMargin      = 0.01 // BBRPacingMarginPercent
	bbrFullLossCount     = 6    // BBRStartupFullLossCnt
	bbrFullBWThresh      = 1.25
	bbrFullBWCount       = 3
	bbrDrainMaxRounds    = 3 // DRAIN ends after this many rounds even with a queue left (section 5.3.2)

	bbrMinRTTFilterLen   = 10 * time.Second
	bbrProbeRTTInterval  = 5 * time.Second
	bbrProbeRTTDuration  = 200 * time.Millisecond
	bbrMaxProbeUpRounds  = 30
	bbrRenoProbeMaxRound = 63
)

// The draft's ACK phases of a bandwidth probe (section 5.3.3.6).
const (
	bbrAcksInit = iota
	bbrAcksRefilling
	bbrAcksProbeStarting
	bbrAcksProbeFeedback
	bbrAcksProbeStopping
)

// bbr is one connection's BBR.
type bbr struct {
	mss   int
	cwnd  int
	state bbrState

	pacingGain, cwndGain float64
	pacingRate           float64 // bytes per second

	// The model (section 5.5): bandwidth in bytes per second.
	maxBw       [2]float64 // BBR.MaxBwFilter: the maxima of this probe cycle and the last
	cycleCount  uint64
	bwLo        float64 // BBR.bw_lo, +Inf when unset
	bw          float64 // BBR.bw: min(max_bw, bw_lo)
	bwLatest    float64
	inflightHi  float64 // BBR.inflight_hi, +Inf when unset
	inflightLo  float64 // BBR.inflight_lo, +Inf when unset
	inflightLat float64 // BBR.inflight_latest

	minRTT         time.Duration
	minRTTStamp    time.Time
	probeRTTMin    time.Duration // BBR.probe_rtt_min_delay
	probeRTTStamp  time.Time     // BBR.probe_rtt_min_stamp
	probeRTTDone   time.Time     // BBR.probe_rtt_done_stamp
	probeRTTRound  bool          // BBR.probe_rtt_round_done
	probeRTTExpire bool
	appLimitedTo   uint64 // samples of what was sent before this delivered count are app-limited (PROBE_RTT)

	// Rounds (section 5.5.1).
	nextRoundDelivered uint64
	roundStart         bool
	roundCount         uint64
	lossRoundDelivered uint64
	lossRoundStart     bool
	lossInRound        bool
	lossEvents         int // loss marking events in this round (STARTUP's high-loss exit)

	drainStartRound uint64 // BBR.drain_start_round

	// STARTUP's exit (section 5.3.1.2).
	fullBw        float64
	fullBwCount   int
	fullBwNow     bool
	fullBwReached bool

	// PROBE_BW (section 5.3.3).
	cycleStamp     time.Time
	ackPhase       int
	bwProbeWait    time.Duration
	roundsSinceBw  uint64
	bwProbeSamples bool
	probeUpRounds  int
	probeUpAcks    int
	probeUpCnt     int
	// Precautionary bandwidth probing (section 5.3.3.6): the last probe
	// went too high, and the last probe stopped early at inflight_hi.
	prevProbeTooHigh       bool
	prevProbePrecautionary bool

	// Recovery (section 5.6.4.4).
	priorCwnd  int
	inRecovery bool
	inRTO      bool
	rtoEnd     seqnum.Value // SND.MAX at the timeout: its recovery ends when SND.UNA passes it
	rtoEndSet  bool

	// rng is the xorshift state of the probe-wait jitter. The core reads
	// no entropy: the first ACK mixes in SND.UNA, so the jitter follows
	// the connection's ISS (RFC 6528: a keyed hash of the four-tuple and
	// a clock), which differs between connections and is pinned in tests.
	rng    uint32
	seeded bool
}

// bbr is paced, sees every ACK, can undo, and takes over a window.
var (
	_ lossObserver = (*bbr)(nil)
	_ Pacer        = (*bbr)(nil)
	_ AckObserver  = (*bbr)(nil)
	_ Undoer       = (*bbr)(nil)
	_ windowSetter = (*bbr)(nil)
)

// NewBBR returns a BBR controller for segments of mss bytes.
func NewBBR(mss int) Congestion {
	b := new(bbr)
	b.reinit(mss)
	return b
}

func (b *bbr) reinit(mss int) {
	*b = bbr{mss: mss, rng: 0x9e3779b9}
	b.cwnd = initialWindow(mss)
	b.bwLo, b.inflightHi, b.inflightLo = math.Inf(1), math.Inf(1), math.Inf(1)
	b.probeUpCnt = math.MaxInt
	b.enterStartup()
}

func (b *bbr) Name() string { return "bbr" }

// Window is cwnd.
func (b *bbr) Window() int { return b.cwnd }

// SlowStartThreshold is what Linux's BBR reports: ssthresh has no
// meaning for it, so it is left "infinite", except that after STARTUP
// a window-based view sees the model's BDP.
func (b *bbr) SlowStartThreshold() int {
	if !b.fullBwReached {
		return initialSSThresh
	}
	return max(int(b.bdpGain(1)), b.minPipeCwnd())
}

func (b *bbr) SetMSS(mss int) { b.mss = mss }

// setWindow takes over a previous controller's cwnd (SetCongestionControl).
func (b *bbr) setWindow(cwnd, _ int) { b.cwnd = max(cwnd, b.minPipeCwnd()) }

// PacingRate is BBR.pacing_rate.
func (b *bbr) PacingRate() int64 { return int64(b.pacingRate) }

// State names the state machine's present state (for tests and traces).
func (b *bbr) State() string { return b.state.String() }

func (b *bbr) minPipeCwnd() int { return 4 * b.mss } // BBRMinPipeCwnd

func (b *bbr) maxBW() float64 { return max(b.maxBw[0], b.maxBw[1]) }

// OnAck does nothing: BBR works on every ACK in OnEveryAck.
func (b *bbr) OnAck(time.Time, Ack) {}

// OnDupAck and OnPartialAck do nothing: NewReno's window inflation is not
// BBR's; its cwnd follows the model.
func (b *bbr) OnDupAck()        {}
func (b *bbr) OnPartialAck(int) {}

// OnFastRetransmit is section 5.6.4.4's BBROnEnterFastRecovery: save
// cwnd, and nothing more. In fast recovery BBR "uses the response
// described in Updating the Model Upon Packet Loss" (section 5.5.10):
// the once-per-round cut of bw_lo and inflight_lo, and inflight_hi when
// a probe's loss rate is too high. It does not cut cwnd to the pipe
// (packet conservation, Linux's BBR does that): on a path that drops 1 %
// at random fast recovery hardly ever ends, and a window held at
// what the last round delivered is what the lower bounds then learn, a
// few percent less every round (issue 11: 21.9 Mbit/s of 100 with two
// RTOs at 20 ms, against 52.9 without; BENCHMARKS.md, "BBR follow-up").
// Pacing, not the window, keeps the retransmissions from bursting.
func (b *bbr) OnFastRetransmit(time.Time, int) {
	b.saveCwnd()
	b.inRecovery = true
}

// OnRecoveryEnd restores the cwnd saved at the start of recovery
// (section 5.6.4.4, BBRRestoreCwnd).
func (b *bbr) OnRecoveryEnd(time.Time, int) {
	b.inRecovery = false
	b.restoreCwnd()
}

// OnTimeout is section 5.6.4.4 on an RTO: everything in flight is lost,
// so cwnd becomes one segment; the saved cwnd comes back once the
// retransmissions are acknowledged.
func (b *bbr) OnTimeout(time.Time, int) {
	if !b.inRTO {
		b.saveCwnd()
	}
	b.inRTO, b.rtoEndSet, b.inRecovery = true, false, false
	b.cwnd = b.mss
}

// OnECE is told of a classic ECN mark (RFC 3168), at most once per window.
// BBRv3 is designed around L4S's fine-grained marks, which a classic ECE
// is not: one echo stands for one or more CE marks, like a loss. So a
// round that saw an echo counts as a round with loss (section 5.5.10.3):
// at the round's end, outside bandwidth probing, bw_lo and inflight_lo
// are cut by Beta. Nothing is retransmitted and cwnd is not cut at once,
// as the draft's loss response does not cut it at once either.
func (b *bbr) OnECE(time.Time, int) {
	b.lossInRound = true
}

// Undo implements Undoer: a reduction proved spurious.
func (b *bbr) Undo(cwnd, _ int) {
	b.inRecovery, b.inRTO = false, false
	b.cwnd = max(b.cwnd, cwnd, b.priorCwnd)
}

func (b *bbr) saveCwnd() {
	if !b.inRecovery && b.state != bbrProbeRTT {
		b.priorCwnd = b.cwnd
	} else {
		b.priorCwnd = max(b.priorCwnd, b.cwnd)
	}
}

func (b *bbr) restoreCwnd() { b.cwnd = max(b.cwnd, b.priorCwnd) }

// OnEveryAck is the draft's BBRUpdateOnACK (section 5.2): update the
// model and the state machine, then the control parameters.
func (b *bbr) OnEveryAck(now time.Time, a Ack) {
	if !b.seeded {
		b.seed(uint32(a.Una))
	}
	if b.inRTO {
		if !b.rtoEndSet {
			b.rtoEnd, b.rtoEndSet = a.Next, true
		} else if a.Una.GreaterThanEq(b.rtoEnd) {
			// Everything sent before the timeout is acknowledged.
			b.inRTO, b.rtoEndSet = false, false
			b.restoreCwnd()
		}
	}

	b.updateModelAndState(now, a)
	b.updateControl(a)
}

// updateModelAndState is BBRUpdateModelAndState.
func (b *bbr) updateModelAndState(now time.Time, a Ack) {
	rs := &a.Rate
	b.updateLatestDeliverySignals(rs)
	b.updateCongestionSignals(rs)
	b.checkFullBWReached(rs)
	b.checkStartupDone(rs)
	b.checkDrain(now, rs)
	b.updateProbeBWCyclePhase(now, rs)
	b.updateMinRTT(now, rs)
	b.checkProbeRTT(now, rs)
	b.advanceLatestDeliverySignals(rs)
	b.bw = min(b.maxBW(), b.bwLo) // BBRBoundBWForModel
}

// appLimited is rs.is_app_limited, with PROBE_RTT's own marking (the
// draft marks the connection app-limited on entry; the controller keeps
// that mark itself).
func (b *bbr) appLimited(rs *RateSample) bool {
	return rs.AppLimited || rs.PriorDelivered < b.appLimitedTo
}

// updateLatestDeliverySignals is section 5.5.10.3.
func (b *bbr) updateLatestDeliverySignals(rs *RateSample) {
	b.lossRoundStart = false
	b.bwLatest = max(b.bwLatest, float64(rs.DeliveryRate))
	b.inflightLat = max(b.inflightLat, float64(rs.Delivered))
	if rs.NewlyAcked > 0 && rs.PriorDelivered >= b.lossRoundDelivered {
		b.lossRoundDelivered = rs.TotalDelivered
		b.lossRoundStart = true
	}
}

func (b *bbr) advanceLatestDeliverySignals(rs *RateSample) {
	if b.lossRoundStart {
		b.bwLatest = float64(rs.DeliveryRate)
		b.inflightLat = float64(rs.Delivered)
	}
}

// updateCongestionSignals is section 5.5.10.3's BBRUpdateCongestionSignals
// with BBRUpdateMaxBw and BBRUpdateRound.
func (b *bbr) updateCongestionSignals(rs *RateSample) {
	// BBRUpdateRound (section 5.5.1).
	b.roundStart = false
	if rs.NewlyAcked > 0 && rs.PriorDelivered >= b.nextRoundDelivered {
		b.nextRoundDelivered = rs.TotalDelivered
		b.roundCount++
		b.roundsSinceBw++
		b.roundStart = true
	}
	// BBRUpdateMaxBw (section 5.5.5).
	if rs.DeliveryRate > 0 && (float64(rs.DeliveryRate) >= b.maxBW() || !b.appLimited(rs)) {
		b.maxBw[0] = max(b.maxBw[0], float64(rs.DeliveryRate))
	}
	if rs.NewlyLost > 0 {
		// An ACK that marked losses: one loss event of STARTUP's
		// high-loss exit. The loss itself marked the round (noteLoss).
		b.lossEvents++
	}
	if !b.lossRoundStart {
		return
	}
	b.adaptLowerBoundsFromCongestion()
	b.lossInRound = false
}

// adaptLowerBoundsFromCongestion is section 5.5.10.3: once per round with
// loss, outside bandwidth probing, cut bw_lo and inflight_lo by Beta.
func (b *bbr) adaptLowerBoundsFromCongestion() {
	if b.isProbingBW() {
		return
	}
	if b.lossInRound {
		if math.IsInf(b.bwLo, 1) {
			b.bwLo = b.maxBW()
		}
		if math.IsInf(b.inflightLo, 1) {
			b.inflightLo = float64(b.cwnd)
		}
		b.bwLo = max(b.bwLatest, bbrBeta*b.bwLo)
		b.inflightLo = max(b.inflightLat, bbrBeta*b.inflightLo)
	}
}

func (b *bbr) resetLowerBounds() { b.bwLo, b.inflightLo = math.Inf(1), math.Inf(1) }

func (b *bbr) isProbingBW() bool {
	return b.state == bbrStartup || b.state == bbrProbeBWRefill || b.state == bbrProbeBWUp
}

func (b *bbr) inProbeBW() bool { return b.state >= bbrProbeBWDown && b.state <= bbrProbeBWUp }

// resetFullBW is BBRResetFullBW.
func (b *bbr) resetFullBW() { b.fullBw, b.fullBwCount, b.fullBwNow = 0, 0, false }

// checkFullBWReached is section 5.3.1.2: the pipe is full once three
// rounds in a row have not grown the delivery rate by 25 %.
func (b *bbr) checkFullBWReached(rs *RateSample) {
	if b.fullBwNow || rs.DeliveryRate <= 0 || b.appLimited(rs) {
		return
	}
	if !b.roundStart {
		return // once a round, on the round's first sample
	}
	if float64(rs.DeliveryRate) >= b.fullBw*bbrFullBWThresh {
		b.fullBw, b.fullBwCount = float64(rs.DeliveryRate), 0
		return
	}
	b.fullBwCount++
	b.fullBwNow = b.fullBwCount >= bbrFullBWCount
	if b.fullBwNow {
		b.fullBwReached = true
	}
}

// checkStartupDone is BBRCheckStartupDone with BBRCheckStartupHighLoss
// (section 5.3.1.3): STARTUP also ends after a round whose loss rate
// exceeded BBRLossThresh in enough loss events (BBRStartupFullLossCnt
// ACKs that marked a loss, as Linux counts the draft's "discontiguous
// sequence ranges"). The draft also asks for fast recovery to have
// lasted a full round first; that is left out, as in Linux's BBRv3: at
// 1 Gbit/s x 100 ms with a one-BDP queue the extra round at STARTUP's
// pacing gain of 2.77 left STARTUP unended through two RTOs (100 MiB in
// 2.64 s instead of 2.19 s; BENCHMARKS.md, "BBR follow-up").
func (b *bbr) checkStartupDone(rs *RateSample) {
	if b.state == bbrStartup && b.lossRoundStart {
		if b.lossEvents >= bbrFullLossCount && b.inflightTooHigh(rs) {
			b.fullBwReached = true
			b.inflightHi = max(b.bdpGain(1), b.inflightLat)
		}
		b.lossEvents = 0
	}
	if b.state == bbrStartup && b.fullBwReached {
		b.enterDrain()
	}
}

func (b *bbr) enterStartup() {
	b.state = bbrStartup
	b.pacingGain, b.cwndGain = bbrStartupPacingGain, bbrStartupCwndGain
}

// enterDrain is EnterDrain (section 5.3.2). Its pacing gain is Linux
// BBRv3's 0.35, not draft-06's 0.5 (both at most 1/BBRStartupCwndGain,
// which drains STARTUP's queue within a round): with 0.5 a second flow
// starting 5 s after the first on a 20 ms path got Jain's index
// 0.82-1.00 (median 0.89) over the second half of the run, against
// 0.995-0.999 with 0.35 (BENCHMARKS.md, "BBR follow-up").
func (b *bbr) enterDrain() {
	b.state = bbrDrain
	b.pacingGain, b.cwndGain = bbrDrainPacingGain, bbrDefaultCwndGain
	b.drainStartRound = b.roundCount
}

// checkDrain is CheckDrainDone (section 5.3.2): DRAIN ends once the
// queue STARTUP built is gone, inflight at or below one BDP, or after
// three rounds, when STARTUP overestimated the bandwidth (a competing
// flow) and the max filter needs PROBE_BW's cycle to forget it.
func (b *bbr) checkDrain(now time.Time, rs *RateSample) {
	if b.state == bbrDrain && (float64(rs.InFlight) <= b.inflight(b.maxBW(), 1) ||
		b.roundCount > b.drainStartRound+bbrDrainMaxRounds) {
		b.enterProbeBW(now, rs)
	}
}

func (b *bbr) enterProbeBW(now time.Time, rs *RateSample) {
	b.cwndGain = bbrDefaultCwndGain
	b.startProbeBWDown(now, rs)
}

func (b *bbr) startRound(rs *RateSample) { b.nextRoundDelivered = rs.TotalDelivered }

// startProbeBWDown is StartProbeBW_DOWN (section 5.3.3.9). Its
// ResetCongestionSignals leaves is_bw_probe_sample alone: the probe's
// losses are mostly marked after it ends (RACK waits a round trip and a
// reordering window), and until DOWN's first round is over
// (ACKS_PROBE_STOPPING, adaptUpperBounds) they still set inflight_hi,
// once (handleInflightTooHigh). Linux's BBRv3 does the same.
func (b *bbr) startProbeBWDown(now time.Time, rs *RateSample) {
	b.lossInRound, b.bwLatest, b.inflightLat = false, 0, 0 // ResetCongestionSignals
	b.probeUpCnt = math.MaxInt
	b.pickProbeWait()
	b.cycleStamp = now
	b.ackPhase = bbrAcksProbeStopping
	b.startRound(rs)
	b.state = bbrProbeBWDown
	b.pacingGain, b.cwndGain = bbrProbeDownGain, bbrDefaultCwndGain
}

func (b *bbr) startProbeBWCruise() {
	b.state = bbrProbeBWCruise
	b.pacingGain, b.cwndGain = 1, bbrDefaultCwndGain
}

func (b *bbr) startProbeBWRefill(rs *RateSample) {
	b.resetLowerBounds()
	b.probeUpRounds, b.probeUpAcks = 0, 0
	b.prevProbePrecautionary = false
	b.ackPhase = bbrAcksRefilling
	b.startRound(rs)
	b.state = bbrProbeBWRefill
	b.pacingGain, b.cwndGain = 1, bbrDefaultCwndGain
}

func (b *bbr) startProbeBWUp(now time.Time, rs *RateSample) {
	b.ackPhase = bbrAcksProbeStarting
	b.startRound(rs)
	b.resetFullBW()
	b.fullBw = float64(rs.DeliveryRate)
	b.cycleStamp = now
	b.state = bbrProbeBWUp
	b.pacingGain, b.cwndGain = bbrProbeUpGain, bbrProbeUpCwndGain
	b.raiseInflightHiSlope()
}

// pickProbeWait is BBRPickProbeWait: the next probe comes after 2 to 3
// seconds and 0 or 1 rounds, randomised so flows do not synchronise.
func (b *bbr) pickProbeWait() {
	b.roundsSinceBw = uint64(b.rand() % 2)
	b.bwProbeWait = 2*time.Second + time.Duration(b.rand()%1000)*time.Millisecond
}

// seed mixes v into the jitter's state. Without it every connection
// would draw the same probe waits and rounds: two flows started together
// would probe in lockstep, PROBE_BW_UP for PROBE_BW_UP, which is what the
// draft's randomisation is there to prevent (section 5.3.3.8.2, "A
// Dual-Time-Scale Approach for Coexistence": "for better mixing and
// fairness convergence").
func (b *bbr) seed(v uint32) {
	b.seeded = true
	x := b.rng ^ v*0x9e3779b1 // Fibonacci hashing spreads nearby ISSs
	if x == 0 {
		x = 0x9e3779b9 // xorshift's one stuck state
	}
	b.rng = x
}

func (b *bbr) rand() uint32 {
	x := b.rng
	x ^= x << 13
	x ^= x >> 17
	x ^= x << 5
	b.rng = x
	return x
}

// updateProbeBWCyclePhase is section 5.3.3.6.
func (b *bbr) updateProbeBWCyclePhase(now time.Time, rs *RateSample) {
	if !b.fullBwReached {
		return
	}
	if b.adaptUpperBounds(now, rs) {
		return // it started a probe
	}
	if !b.inProbeBW() {
		return
	}
	switch b.state {
	case bbrProbeBWDown:
		if b.checkTimeToProbeBW(now, rs) {
			return
		}
		if b.checkTimeToCruise(rs) {
			b.startProbeBWCruise()
		}
	case bbrProbeBWCruise:
		b.checkTimeToProbeBW(now, rs)
	case bbrProbeBWRefill:
		// After a round of refilling the pipe, probe upwards.
		if b.roundStart {
			b.bwProbeSamples = true
			b.startProbeBWUp(now, rs)
		}
	case bbrProbeBWUp:
		if b.isTimeToGoDown(now, rs) {
			b.prevProbeTooHigh = false // no high loss (yet)
			b.startProbeBWDown(now, rs)
		}
	}
}

// isTimeToGoDown is IsTimeToGoDown (section 5.3.3.9): a probe up ends
// at inflight_hi when the last one went too high, or once the delivery
// rate stops growing (BBR.full_bw_now over the probe). It also ends once
// the probe has put 1.25 BDP in flight for at least a min RTT: that rule
// is Linux's BBRv2 (bw_probe_pif_gain), not the draft's; without it, at
// 100 ms with flows started together, Jain's index read 0.94-0.99
// instead of 0.97-1.00 with more retransmissions (BENCHMARKS.md, "BBR
// follow-up"), so it stays.
func (b *bbr) isTimeToGoDown(now time.Time, rs *RateSample) bool {
	if b.prevProbeTooHigh && float64(rs.InFlight) >= b.inflightHi {
		// Precautionary bandwidth probing, deceleration (section
		// 5.3.3.6): the last probe lost too much at this flight, so
		// this one does not hold it for a round.
		b.prevProbePrecautionary = true
		return true
	}
	if b.cwndLimited(rs) && float64(b.cwnd) >= b.inflightHi {
		b.resetFullBW()
		b.fullBw = float64(rs.DeliveryRate)
		return false
	}
	if b.fullBwNow {
		return true
	}
	return now.Sub(b.cycleStamp) > b.minRTT && float64(rs.InFlight) >= b.inflight(b.maxBW(), bbrProbeUpGain)
}

// cwndLimited approximates C.is_cwnd_limited: the sampled segment left
// with the window about full.
func (b *bbr) cwndLimited(rs *RateSample) bool { return rs.TxInFlight+2*b.mss >= b.cwnd }

// checkTimeToProbeBW is BBRCheckTimeToProbeBW: probe after the random
// wait, or sooner when a Reno flow sharing the path would have grown its
// window by as much (BBRIsRenoCoexistenceProbeTime).
func (b *bbr) checkTimeToProbeBW(now time.Time, rs *RateSample) bool {
	renoRounds := min(uint64(b.targetInflight()/float64(b.mss)), bbrRenoProbeMaxRound)
	if now.Sub(b.cycleStamp) > b.bwProbeWait || b.roundsSinceBw >= renoRounds {
		b.startProbeBWRefill(rs)
		return true
	}
	return false
}

// checkTimeToCruise is BBRCheckTimeToCruise.
func (b *bbr) checkTimeToCruise(rs *RateSample) bool {
	if float64(rs.InFlight) > b.inflightWithHeadroom() {
		return false // not enough headroom yet
	}
	return float64(rs.InFlight) <= b.inflight(b.maxBW(), 1)
}

// inflightWithHeadroom is BBRInflightWithHeadroom: inflight_hi less 15 %.
func (b *bbr) inflightWithHeadroom() float64 {
	if math.IsInf(b.inflightHi, 1) {
		return b.inflightHi
	}
	headroom := max(float64(b.mss), bbrHeadroom*b.inflightHi)
	return max(b.inflightHi-headroom, float64(b.minPipeCwnd()))
}

// inflightTooHigh is IsInflightTooHigh (section 5.5.10.2): the sample's
// loss rate exceeds BBRLossThresh.
func (b *bbr) inflightTooHigh(rs *RateSample) bool {
	return rs.TxInFlight > 0 && float64(rs.Lost) > float64(rs.TxInFlight)*bbrLossThresh
}

// adaptUpperBounds is AdaptLongTermModel (section 5.3.3.9; draft-02's
// BBRAdaptUpperBounds). It reports whether it started a probe.
func (b *bbr) adaptUpperBounds(now time.Time, rs *RateSample) bool {
	if b.ackPhase == bbrAcksProbeStarting && b.roundStart {
		b.ackPhase = bbrAcksProbeFeedback // the first round of the probe's feedback
	}
	if b.ackPhase == bbrAcksProbeStopping && b.roundStart {
		// The samples of the bandwidth probe are all in: the probe
		// cycle ends (BBRAdvanceMaxBwFilter), once.
		b.bwProbeSamples = false
		b.ackPhase = bbrAcksInit
		if b.inProbeBW() && !b.appLimited(rs) {
			b.cycleCount++
			b.maxBw[1], b.maxBw[0] = b.maxBw[0], 0
		}
		if b.inProbeBW() && b.prevProbePrecautionary && !b.prevProbeTooHigh {
			// Precautionary bandwidth probing, acceleration (section
			// 5.3.3.6): a round of the cautious probe's feedback showed
			// no excess loss, so probe again at once, this time
			// holding inflight_hi for a round.
			b.startProbeBWRefill(rs)
			return true
		}
	}
	if b.inflightTooHigh(rs) {
		// Too high: nothing to raise. The reaction is onPacketLost's,
		// with the lost segment's own flight.
		return false
	}
	if math.IsInf(b.inflightHi, 1) {
		return false
	}
	if float64(rs.TxInFlight) > b.inflightHi {
		b.inflightHi = float64(rs.TxInFlight)
	}
	if b.state == bbrProbeBWUp {
		b.probeInflightHiUpward(rs)
	}
	return false
}

// onPacketLost is HandleLostPacket (section 5.5.10.2):
// a segment sent while probing is lost, and the loss rate of its own
// flight (the bytes marked lost since it left, against the bytes in
// flight when it did) exceeds BBRLossThresh: inflight_hi becomes the
// flight at which the rate crossed the threshold, and the probe ends.
//
// draft-02 also ran this on every ACK's rate sample; -06 reacts only
// here, because the segment an ACK delivers was often sent
// later, at a smaller flight, than the ones whose losses that ACK
// reveals. Ours did so too, and at 1 % random loss that made every probe
// after a recovery end at once: a loss of the earlier, 220-segment flight
// set against the 44 segments in flight when a REFILL segment left
// (issue 11, 1 Gbit/s x 20 ms; BENCHMARKS.md, "BBR follow-up").
func (b *bbr) onPacketLost(now time.Time, p lostPacket) {
	b.noteLoss(p.TotalDelivered)
	if !b.bwProbeSamples {
		return // not a segment sent while probing
	}
	rs := RateSample{
		TxInFlight: p.TxInFlight, Lost: p.Lost, AppLimited: p.AppLimited,
		PriorDelivered: p.PriorDelivered, TotalDelivered: p.TotalDelivered,
	}
	if !b.inflightTooHigh(&rs) {
		return
	}
	rs.TxInFlight = inflightAtLoss(p)
	b.handleInflightTooHigh(now, &rs)
}

// noteLoss is NoteLoss (section 5.5.10.2): any loss marks the round
// (section 5.5.10.3), not only a loss rate above BBRLossThresh, and the
// first loss of a round restarts the loss round at what is delivered
// now. Outside bandwidth probes the lower bounds are then cut when a
// segment sent after the loss is acknowledged, with bw_latest and
// inflight_latest the maxima since the last cut: a round trip of delivery
// after the loss, not what remained of the round under way when it was
// found (at 1 % random loss, often a few ACKs, whose maxima can
// understate what the path delivers).
func (b *bbr) noteLoss(delivered uint64) {
	if !b.lossInRound {
		b.lossRoundDelivered = delivered
	}
	b.lossInRound = true
}

// inflightAtLoss is InflightAtLoss: the flight at which the loss rate
// crossed BBRLossThresh within p, a record that may hold several
// segments. Solving (lost_prev + x) / (inflight_prev + x) = LossThresh
// for x, the part of p sent when it did.
func inflightAtLoss(p lostPacket) int {
	inflightPrev := p.TxInFlight - p.Size
	lostPrev := p.Lost - p.Size
	prefix := (bbrLossThresh*float64(inflightPrev) - float64(lostPrev)) / (1 - bbrLossThresh)
	return max(inflightPrev+int(prefix), 0)
}

// handleInflightTooHigh is BBRHandleInflightTooHigh: the probe found the
// loss rate the path tolerates; inflight_hi remembers it.
func (b *bbr) handleInflightTooHigh(now time.Time, rs *RateSample) {
	b.prevProbeTooHigh = true
	b.bwProbeSamples = false
	if !b.appLimited(rs) {
		b.inflightHi = max(float64(rs.TxInFlight), b.targetInflight()*bbrBeta)
	}
	if b.state == bbrProbeBWUp {
		b.startProbeBWDown(now, rs)
	}
}

// probeInflightHiUpward is BBRProbeInflightHiUpward: inflight_hi grows
// exponentially by rounds while the probe finds no loss.
func (b *bbr) probeInflightHiUpward(rs *RateSample) {
	if !b.cwndLimited(rs) || float64(b.cwnd) < b.inflightHi {
		return
	}
	b.probeUpAcks += rs.NewlyAcked
	if b.probeUpAcks >= b.probeUpCnt {
		delta := b.probeUpAcks / b.probeUpCnt
		b.probeUpAcks -= delta * b.probeUpCnt
		b.inflightHi += float64(delta * b.mss)
	}
	if b.roundStart {
		b.raiseInflightHiSlope()
	}
}

// raiseInflightHiSlope is BBRRaiseInflightHiSlope: the growth per round
// doubles each round, counted as bytes acknowledged per MSS of growth.
func (b *bbr) raiseInflightHiSlope() {
	growth := b.mss << min(b.probeUpRounds, bbrMaxProbeUpRounds)
	b.probeUpRounds = min(b.probeUpRounds+1, bbrMaxProbeUpRounds)
	b.probeUpCnt = max(b.cwnd/max(growth/b.mss, 1), b.mss)
}

// updateMinRTT is section 5.5.7 with BBRv3's separate PROBE_RTT filter:
// probe_rtt_min_delay is the minimum over 5 s, min_rtt over 10 s.
func (b *bbr) updateMinRTT(now time.Time, rs *RateSample) {
	b.probeRTTExpire = !b.probeRTTStamp.IsZero() && now.After(b.probeRTTStamp.Add(bbrProbeRTTInterval))
	if rs.RTT > 0 && (b.probeRTTMin == 0 || rs.RTT < b.probeRTTMin || b.probeRTTExpire) {
		b.probeRTTMin, b.probeRTTStamp = rs.RTT, now
	}
	minExpired := !b.minRTTStamp.IsZero() && now.After(b.minRTTStamp.Add(bbrMinRTTFilterLen))
	if b.probeRTTMin > 0 && (b.minRTT == 0 || b.probeRTTMin < b.minRTT || minExpired) {
		b.minRTT, b.minRTTStamp = b.probeRTTMin, b.probeRTTStamp
	}
}

// checkProbeRTT is section 5.3.4: when probe_rtt_min_delay has not been
// refreshed for 5 s, drain the queue for 200 ms and a round to see the
// path's propagation delay again.
func (b *bbr) checkProbeRTT(now time.Time, rs *RateSample) {
	if b.state != bbrProbeRTT && b.probeRTTExpire {
		b.enterProbeRTT(rs)
	}
	if b.state == bbrProbeRTT {
		b.handleProbeRTT(now, rs)
	}
}

func (b *bbr) enterProbeRTT(rs *RateSample) {
	b.saveCwnd()
	b.probeRTTDone = time.Time{}
	b.ackPhase = bbrAcksProbeStopping
	b.startRound(rs)
	b.state = bbrProbeRTT
	b.pacingGain, b.cwndGain = 1, bbrProbeRTTCwndGain
}

func (b *bbr) handleProbeRTT(now time.Time, rs *RateSample) {
	// BBRMarkConnectionAppLimited: what goes out in PROBE_RTT is sent
	// below the path's rate on purpose.
	b.appLimitedTo = max(rs.TotalDelivered+uint64(rs.InFlight), 1)
	if b.probeRTTDone.IsZero() && rs.InFlight <= b.probeRTTCwnd() {
		b.probeRTTDone = now.Add(bbrProbeRTTDuration)
		b.probeRTTRound = false
		b.startRound(rs)
	} else if !b.probeRTTDone.IsZero() {
		if b.roundStart {
			b.probeRTTRound = true
		}
		if b.probeRTTRound && now.After(b.probeRTTDone) {
			b.probeRTTStamp = now
			b.restoreCwnd()
			b.exitProbeRTT(now, rs)
		}
	}
}

func (b *bbr) exitProbeRTT(now time.Time, rs *RateSample) {
	b.resetLowerBounds()
	if b.fullBwReached {
		b.startProbeBWDown(now, rs)
		b.startProbeBWCruise()
	} else {
		b.enterStartup()
	}
}

func (b *bbr) probeRTTCwnd() int {
	return max(int(b.bdpGain(bbrProbeRTTCwndGain)), b.minPipeCwnd())
}

// bdpGain is BBRBDPMultiple: gain times bw times min_rtt, the initial
// window before there is an RTT sample.
func (b *bbr) bdpGain(gain float64) float64 {
	if b.minRTT == 0 {
		return float64(initialWindow(b.mss))
	}
	return gain * b.bw * b.minRTT.Seconds()
}

// inflight is BBRInflight(bw, gain) with the quantisation budget of
// section 5.6.3: at least three send quanta, and two more segments while
// probing up.
func (b *bbr) inflight(bw, gain float64) float64 {
	saved := b.bw
	b.bw = bw
	v := b.bdpGain(gain)
	b.bw = saved
	v = max(v, float64(3*b.sendQuantum()))
	if b.state == bbrProbeBWUp {
		v += float64(2 * b.mss)
	}
	return v
}

// targetInflight is BBRTargetInflight: min(BDP, cwnd).
func (b *bbr) targetInflight() float64 { return min(b.bdpGain(1), float64(b.cwnd)) }

// sendQuantum is section 5.6.3's BBR.send_quantum: a millisecond at the
// pacing rate, between two segments and 64 KiB (the bucket of pacing.go).
func (b *bbr) sendQuantum() int {
	return min(max(int(b.pacingRate*paceBurstTime.Seconds()), 2*b.mss), max(paceMaxBurst, 2*b.mss))
}

// updateControl is BBRUpdateControlParameters: pacing rate and cwnd.
func (b *bbr) updateControl(a Ack) {
	b.setPacingRate(a)
	b.setCwnd(&a.Rate)
}

// setPacingRate is section 5.6.2: gain times bw less a 1 % margin; before
// STARTUP ends it never goes down. Before the first bandwidth sample, the
// initial window over the smoothed RTT (1 ms without one).
func (b *bbr) setPacingRate(a Ack) {
	if b.bw == 0 || math.IsInf(b.bw, 1) {
		if b.pacingRate == 0 || !b.fullBwReached {
			rtt := a.SRTT
			if rtt <= 0 {
				rtt = time.Millisecond
			}
			nominal := float64(b.cwnd) / rtt.Seconds()
			b.pacingRate = max(b.pacingRate, bbrStartupPacingGain*nominal)
		}
		return
	}
	rate := b.pacingGain * b.bw * (1 - bbrPacingMargin)
	if b.fullBwReached || rate > b.pacingRate {
		b.pacingRate = rate
	}
}

// setCwnd is section 5.6.4.6's BBRSetCwnd with BBRBoundCwndForProbeRTT
// and BBRBoundCwndForModel. Loss recovery changes cwnd only at its edges
// (section 5.6.4.4: saved on entry, restored on exit, one segment on an
// RTO), not on every ACK.
func (b *bbr) setCwnd(rs *RateSample) {
	maxInflight := b.inflight(b.bw, b.cwndGain)
	switch {
	case b.fullBwReached:
		b.cwnd = min(b.cwnd+rs.NewlyAcked, int(maxInflight))
	case float64(b.cwnd) < maxInflight || rs.TotalDelivered < uint64(initialWindow(b.mss)):
		b.cwnd += rs.NewlyAcked
	}
	b.cwnd = max(b.cwnd, b.minPipeCwnd())
	if b.state == bbrProbeRTT {
		b.cwnd = min(b.cwnd, b.probeRTTCwnd())
	}
	// BBRBoundCwndForModel.
	limit := math.Inf(1)
	if b.inProbeBW() && b.state != bbrProbeBWCruise {
		limit = b.inflightHi
	} else if b.state == bbrProbeRTT || b.state == bbrProbeBWCruise {
		limit = b.inflightWithHeadroom()
	}
	limit = max(min(limit, b.inflightLo), float64(b.minPipeCwnd()))
	if float64(b.cwnd) > limit {
		b.cwnd = int(limit)
	}
}

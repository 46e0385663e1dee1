package tcp

import (
	"math"
	"time"

	"github.com/synack/synack/seqnum"
)

// HyStart++ (RFC 9406 section 4.3): the constants.
const (
	hsMinRTTThresh  = 4 * time.Millisecond
	hsMaxRTTThresh  = 16 * time.Millisecond
	hsMinRTTDivisor = 8
	hsNRTTSample    = 8
	hsCSSGrowthDiv  = 4
	hsCSSRounds     = 5
	// L is infinity, paced or not: slowStartGrowth (cc.go) says why.
	hsNoRTT = time.Duration(math.MaxInt64) // "infinity"

	// The ACK train, an exit beside RFC 9406's (see hystart.train):
	// ACKs at most hsTrainGap apart continue a train; the rule waits for
	// a window of hsTrainLowWindow segments and a least RTT of
	// hsMinRTTThresh, below which the delay rule alone decides.
	hsTrainGap       = 2 * time.Millisecond
	hsTrainLowWindow = 16
)

// hystart is HyStart++ (RFC 9406): slow start that watches the RTT of
// each round trip and, when it rises, grows four times more slowly
// (Conservative Slow Start, CSS) for a few rounds before congestion
// avoidance, instead of overshooting until a loss. It runs only in the
// initial slow start (section 4.2: later slow starts, after a timeout,
// are standard); any loss ends it (done).
type hystart struct {
	done    bool // HyStart++ no longer applies
	started bool // the first round has begun
	// The round (section 4.2): it ends when an ACK covers windowEnd.
	windowEnd                           seqnum.Value
	lastRoundMinRTT, currentRoundMinRTT time.Duration
	rttSampleCount                      int
	css                                 bool
	cssBaselineMinRTT                   time.Duration
	cssRounds                           int // rounds completed in CSS
	cssAcc                              int // bytes acknowledged in CSS not yet turned into window

	// The ACK trains of the present round: when the latest ACK came, and
	// the time spanned by the round's ACKs that came at most hsTrainGap
	// after the one before.
	trainLast time.Time
	trainBusy time.Duration
	// trainExit: slow start ended by the ACK train, not by CSS.
	trainExit bool
}

// onAck runs section 4.2 for one ACK at now in slow start with a window
// of cwnd bytes, and returns how much cwnd grows, and whether slow start
// is over (CSS_ROUNDS rounds of CSS, or the ACK train: the caller sets
// ssthresh to cwnd and goes on in congestion avoidance).
func (h *hystart) onAck(now time.Time, a Ack, mss, cwnd int) (grow int, exit bool) {
	newRound := !h.started || a.Una.GreaterThanEq(h.windowEnd)
	if newRound {
		if h.started && h.css {
			h.cssRounds++
			if h.cssRounds >= hsCSSRounds {
				h.done = true
				return 0, true
			}
		}
		// A new round: lastRoundMinRTT = currentRoundMinRTT,
		// currentRoundMinRTT = infinity, rttSampleCount = 0,
		// windowEnd = SND.NXT.
		h.started = true
		h.lastRoundMinRTT, h.currentRoundMinRTT = h.currentRoundMinRTT, hsNoRTT
		h.rttSampleCount = 0
		h.windowEnd = a.Next
		if h.lastRoundMinRTT == 0 {
			h.lastRoundMinRTT = hsNoRTT
		}
	}
	if h.train(now, newRound, a, mss, cwnd) {
		h.done, h.trainExit = true, true
		return 0, true
	}
	// Section 4.2's min(N, L * SMSS), with L = infinity (section 4.3's
	// value for a paced sender; slowStartGrowth says why without pacing
	// too).
	n := slowStartGrowth(a.Acked)
	if a.RTT > 0 {
		h.currentRoundMinRTT = min(h.currentRoundMinRTT, a.RTT)
		h.rttSampleCount++
	}
	enough := h.rttSampleCount >= hsNRTTSample && h.currentRoundMinRTT != hsNoRTT
	if !h.css {
		if enough && h.lastRoundMinRTT != hsNoRTT {
			// RttThresh = max(MIN_RTT_THRESH, min(lastRoundMinRTT /
			// MIN_RTT_DIVISOR, MAX_RTT_THRESH)).
			thresh := max(hsMinRTTThresh, min(h.lastRoundMinRTT/hsMinRTTDivisor, hsMaxRTTThresh))
			if h.currentRoundMinRTT >= h.lastRoundMinRTT+thresh {
				h.css, h.cssBaselineMinRTT, h.cssRounds = true, h.currentRoundMinRTT, 0
			}
		}
		if !h.css {
			// Standard slow start: cwnd += min(N, L*SMSS).
			return n, false
		}
	} else if enough && h.currentRoundMinRTT < h.cssBaselineMinRTT {
		// The RTT rise was spurious: back to slow start.
		h.css, h.cssBaselineMinRTT = false, hsNoRTT
		return n, false
	}
	// CSS: cwnd += min(N, L*SMSS) / CSS_GROWTH_DIVISOR, keeping the
	// remainder for the next ACK.
	h.cssAcc += n
	grow = h.cssAcc / hsCSSGrowthDiv
	h.cssAcc -= grow * hsCSSGrowthDiv
	return grow, false
}

// train is the ACK-train exit, an extension beside RFC 9406 (which has
// only the delay rule), after the ACK train of HyStart (Ha and Rhee,
// "Taming the elephants: new TCP slow start", Computer Networks 55(9),
// 2011), which Linux's CUBIC also runs. It reports whether slow start
// should end on this ACK.
//
// Why: the delay rule cannot end slow start before a drop-tail queue of
// one BDP overflows. Slow start sends two segments per ACK, twice the
// bottleneck's rate, so a round's queue peaks at 2W - BDP while the next
// round's first ACKs, whose RTT the rule compares, see only W - BDP: the
// rise reaches RttThresh one round after the overflow (BENCHMARKS.md,
// "HyStart++ and delivery-rate fixes"). At 1 Gbit/s x 100 ms that
// overflow lost 17,000 segments.
//
// The rule: ACKs of data that queued at the bottleneck come back spaced
// by its service time, so while they come back to back (at most
// hsTrainGap apart) the time they span is the time the bottleneck spent
// delivering them, and that time x its rate is the bytes they
// acknowledged. Once the round's back-to-back ACKs span half the least
// RTT, the round has delivered half a BDP, and cwnd (the round's start
// plus what it acknowledged since) is at least a BDP: the pipe is full
// and more would only queue. Slow start ends there, before the queue
// overflows. Unlike HyStart's train, which must run unbroken from the
// round's first ACK, the spans of all of the round's trains add up: a
// slow start keeps the clumps its first rounds were sent in (each round
// doubles them and narrows the gaps between), so a round's ACKs come in
// several trains until the window is well past the BDP; on the path
// above the first train of a round spanned half the RTT only at 2.2 BDP.
//
// Not applied: to a paced sender (the pacer, not the bottleneck, spaces
// its segments and so the ACKs: a window paced over half an RTT would
// look like a full pipe at once); on paths of under hsMinRTTThresh (a
// microsecond RTT is spanned by any two ACKs; the delay rule serves
// there); below hsTrainLowWindow segments; or without an RTT sample.
func (h *hystart) train(now time.Time, newRound bool, a Ack, mss, cwnd int) bool {
	gap := now.Sub(h.trainLast)
	h.trainLast = now
	if newRound {
		h.trainBusy = 0
		return false
	}
	if gap <= hsTrainGap {
		h.trainBusy += gap
	}
	if a.Paced || a.MinRTT < hsMinRTTThresh || cwnd < hsTrainLowWindow*mss {
		return false
	}
	return h.trainBusy >= a.MinRTT/2
}

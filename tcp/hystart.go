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
	// Batched ACKs (creditBatch, measureRate): a gap over hsTrainGap and
	// up to minRTT/hsBatchDiv is credited with the bottleneck time of the
	// bytes the ACKs after it acknowledge, at the bottleneck's rate as
	// measured over windows of at least max(hsRateWindow,
	// minRTT/hsRateWindowDiv).
	hsBatchDiv      = 8
	hsRateWindow    = 2 * hsTrainGap
	hsRateWindowDiv = 4
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
	// Batched ACKs (creditBatch, measureRate): the gap before the batch
	// of ACKs taken at trainLast (0: not credited), the bytes they
	// acknowledged and the credit given for them; the bottleneck's rate
	// as the ACKs showed it (bytes per second, 0: not yet), and the window
	// it is being measured over (from winStart, winBytes acknowledged
	// after it).
	batchGap    time.Duration
	batchBytes  int
	batchCredit time.Duration
	rate        float64
	winStart    time.Time
	winBytes    int
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
// Batched ACKs: a runtime that takes its ACKs in batches, one reading of
// the clock for all that queued while it was busy (as a starved process
// does), sees gaps of 0 within a batch and of the batch's length between
// batches; from 2 ms on, no gap is back to back and the train never
// ended slow start (issue 11: at 1 Gbit/s x 100 ms the window then
// overflowed the one-BDP queue, 4,200 segments lost). Linux's train
// reads the times the kernel stamped as each ACK came in, promptly, in
// softirq; synack's runtime has no such stamps (a link that gave them
// would make this moot). creditBatch credits such gaps by what the ACKs
// acknowledged instead.
//
// Not applied: to a paced sender (the pacer, not the bottleneck, spaces
// its segments and so the ACKs: a window paced over half an RTT would
// look like a full pipe at once); on paths of under hsMinRTTThresh (a
// microsecond RTT is spanned by any two ACKs; the delay rule serves
// there); below hsTrainLowWindow segments; or without an RTT sample.
func (h *hystart) train(now time.Time, newRound bool, a Ack, mss, cwnd int) bool {
	gap := now.Sub(h.trainLast)
	h.trainLast = now
	h.measureRate(now, gap, a)
	if newRound {
		h.trainBusy = 0
		// The round's first ACKs, and those taken with them, credit
		// nothing: the gap before them is the idle time between rounds.
		h.batchGap, h.batchBytes, h.batchCredit = 0, 0, 0
		return false
	}
	if gap <= hsTrainGap {
		h.trainBusy += gap
	}
	h.creditBatch(gap, a.Acked, a.MinRTT)
	if a.Paced || a.MinRTT < hsMinRTTThresh || cwnd < hsTrainLowWindow*mss {
		return false
	}
	return h.trainBusy >= a.MinRTT/2
}

// creditBatch credits the train with the bottleneck time of ACKs taken
// after a gap longer than hsTrainGap (train's "Batched ACKs"). What ACKs
// acknowledge says how long the bottleneck was busy delivering it: bytes
// over its rate, the premise of the train itself (ACKs of queued data
// come back spaced by the bottleneck's service time). So the gap is
// credited with min(gap, bytes/rate), the bytes those acknowledged by
// the ACKs taken at the gap's end (the batch, so far: the credit is
// updated as its ACKs come in, at the same instant), the rate the
// bottleneck's as measured (measureRate): a batch that ends a busy gap
// acknowledges rate x gap bytes and gets the whole gap, one after a gap
// the bottleneck was idle in part of only the time its bytes took.
// Without a rate yet, nothing.
//
// Gaps longer than minRTT/hsBatchDiv are not credited: a batch that long
// can hold the idle end of a clump, and if no window so far was busy
// from end to end (clumps shorter than the batches) the measured rate is
// low and the credit too high. On the 20 ms path, batches of 3 ms whose
// rounds came in two clumps 5 ms apart ended slow start at 0.7 BDP when
// they were credited (TestHyStartAckTrainExit). With the bound, batches
// of over 2.5 ms at 20 ms, or 12.5 ms at 100 ms, are left to the delay
// rule, as before.
func (h *hystart) creditBatch(gap time.Duration, acked int, minRTT time.Duration) {
	if gap > 0 {
		// A new batch: the latest ACKs are the first taken at now.
		h.batchBytes, h.batchCredit = 0, 0
		h.batchGap = 0
		if gap > hsTrainGap && gap <= minRTT/hsBatchDiv {
			h.batchGap = gap
		}
	}
	h.batchBytes += acked
	if h.batchGap == 0 || h.rate <= 0 {
		return
	}
	c := min(h.batchGap, time.Duration(float64(h.batchBytes)/h.rate*float64(time.Second)))
	h.trainBusy += c - h.batchCredit
	h.batchCredit = c
}

// measureRate keeps h.rate, the highest rate at which ACKs acknowledged
// bytes over a window of at least max(hsRateWindow, minRTT/4) in which
// no gap between
// ACKs exceeded max(hsTrainGap, minRTT/hsBatchDiv) (a longer gap is the
// path going idle between clumps, which would only lower the figure). A
// window runs
// from one instant at which ACKs were taken to a later one and counts the
// bytes acknowledged after its start up to its end: with a sender that
// takes all queued ACKs at each instant these are the bytes that arrived
// within the window, so batches shift no byte in or out of it and a
// window over a busy bottleneck measures its rate whatever the batches'
// length. The highest sample is kept: a window partly idle reads low
// (creditBatch says what that costs). A sender that falls behind does not
// take all queued ACKs at once, though: after a stall it takes the
// backlog in several passes a few microseconds apart, and a window that
// starts in one holds bytes that arrived before it. In real time at 1
// Gbit/s x 100 ms, windows of 4 ms read 1.0 to 3.1 Gbit/s that way, and
// the credit fell short by as much; windows of a quarter of the least RTT
// read 0.93 to 0.96 (the goodput rate is 0.96).
func (h *hystart) measureRate(now time.Time, gap time.Duration, a Ack) {
	if gap > 0 {
		// The ACKs taken at the previous instant are all in: close the
		// window there if it is long enough.
		last := now.Add(-gap)
		if span := last.Sub(h.winStart); !h.winStart.IsZero() && span >= max(hsRateWindow, a.MinRTT/hsRateWindowDiv) {
			h.rate = max(h.rate, float64(h.winBytes)/span.Seconds())
			h.winStart, h.winBytes = last, 0
		}
		if h.winStart.IsZero() || gap > max(hsTrainGap, a.MinRTT/hsBatchDiv) {
			// Idle (or the first ACK): a new window from now; the bytes
			// taken now arrived during the gap.
			h.winStart, h.winBytes = now, 0
			return
		}
	}
	if now.After(h.winStart) {
		h.winBytes += a.Acked
	}
}

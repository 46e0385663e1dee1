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
	hsNoRTT         = time.Duration(math.MaxInt64) // "infinity"
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
}

// onAck runs section 4.2 for one ACK in slow start and returns how much
// cwnd grows, and whether slow start is over (CSS_ROUNDS rounds of CSS:
// the caller sets ssthresh to cwnd and goes on in congestion avoidance).
func (h *hystart) onAck(a Ack) (grow int, exit bool) {
	if !h.started || a.Una.GreaterThanEq(h.windowEnd) {
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
			// Standard slow start: cwnd += min(N, L*SMSS), where L is
			// infinite without pacing (section 4.3).
			return a.Acked, false
		}
	} else if enough && h.currentRoundMinRTT < h.cssBaselineMinRTT {
		// The RTT rise was spurious: back to slow start.
		h.css, h.cssBaselineMinRTT = false, hsNoRTT
		return a.Acked, false
	}
	// CSS: cwnd += min(N, L*SMSS) / CSS_GROWTH_DIVISOR, keeping the
	// remainder for the next ACK.
	h.cssAcc += a.Acked
	grow = h.cssAcc / hsCSSGrowthDiv
	h.cssAcc -= grow * hsCSSGrowthDiv
	return grow, false
}

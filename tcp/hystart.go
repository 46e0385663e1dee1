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
	// hsLNonPaced is L for a sender that does not pace: slow start grows
	// by at most L segments per ACK, so that an ACK covering many
	// segments (a stretch ACK, or one after a lost ACK) does not let a
	// burst of twice as many leave at line rate. A paced sender uses L =
	// infinity: the pacer spreads what the window allows.
	hsLNonPaced = 8
	hsNoRTT     = time.Duration(math.MaxInt64) // "infinity"
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
func (h *hystart) onAck(a Ack, mss int) (grow int, exit bool) {
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
	// N bounded by L*SMSS (section 4.2's min(N, L * SMSS); L from
	// section 4.3: infinity when paced, 8 when not).
	n := a.Acked
	if !a.Paced {
		n = min(n, hsLNonPaced*mss)
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

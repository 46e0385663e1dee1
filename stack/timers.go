package stack

import (
	"time"

	"github.com/synack/synack/tcp"
)

// The stack keeps every connection's next deadline (tcp.Conn.Deadline) in
// one binary min-heap per shard and points the shard's clock timer at
// the earliest.
// A connection is in the heap at most once; re-arming it is a sift of
// O(log n), and a connection whose deadline did not change costs nothing.
// A million TIME-WAIT connections are a million heap slots of 8 bytes,
// and no runtime timers. (A hierarchical wheel can replace the heap behind
// set/remove/popDue if profiles ever show the sift.)

// timerHeap orders connections by their deadline.
type timerHeap []*TCPConn

func (h timerHeap) less(i, j int) bool { return h[i].timerAt.Before(h[j].timerAt) }

func (h timerHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].timerIdx = i
	h[j].timerIdx = j
}

func (h timerHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(i, p) {
			break
		}
		h.swap(i, p)
		i = p
	}
}

func (h timerHeap) down(i int) bool {
	start := i
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			break
		}
		h.swap(i, m)
		i = m
	}
	return i > start
}

// set puts tc in the heap at when, or takes it out for the zero time.
func (h *timerHeap) set(tc *TCPConn, when time.Time) {
	if when.IsZero() {
		h.remove(tc)
		return
	}
	if tc.timerIdx >= 0 {
		if tc.timerAt.Equal(when) {
			return
		}
		tc.timerAt = when
		if !h.down(tc.timerIdx) {
			h.up(tc.timerIdx)
		}
		return
	}
	tc.timerAt = when
	tc.timerIdx = len(*h)
	*h = append(*h, tc)
	h.up(tc.timerIdx)
}

func (h *timerHeap) remove(tc *TCPConn) {
	i := tc.timerIdx
	if i < 0 {
		return
	}
	old := *h
	last := len(old) - 1
	if i != last {
		old.swap(i, last)
	}
	old[last] = nil
	*h = old[:last]
	if i != last {
		if !h.down(i) {
			h.up(i)
		}
	}
	tc.timerIdx = -1
	tc.timerAt = time.Time{}
}

// earliest returns the first deadline, or the zero time.
func (h timerHeap) earliest() time.Time {
	if len(h) == 0 {
		return time.Time{}
	}
	return h[0].timerAt
}

// armTimer points the shard's clock timer at its earliest deadline
// (shard 0's also watches IP reassembly). A timer armed earlier than
// needed is left alone: it fires, finds nothing due and re-arms.
func (sh *shard) armTimer() {
	s := sh.s
	if s.closed {
		return
	}
	at := sh.timers.earliest()
	if tw := sh.tw.earliest(); !tw.IsZero() && (at.IsZero() || tw.Before(at)) {
		at = tw
	}
	if sh.idx == 0 {
		if fd := s.fragDeadline(); !fd.IsZero() && (at.IsZero() || fd.Before(at)) {
			at = fd // reasm.go
		}
	}
	if at.IsZero() {
		return
	}
	if !sh.timerAt.IsZero() && !sh.timerAt.After(at) {
		return
	}
	d := at.Sub(s.clock.Now())
	if d < 0 {
		d = 0
	}
	sh.timerAt = at
	if sh.timer == nil {
		sh.timer = s.clock.AfterFunc(d, sh.onTimer)
		return
	}
	sh.timer.Reset(d)
}

// onTimer is the shard's clock timer firing: a shard door.
func (sh *shard) onTimer() {
	sh.lock()
	if !sh.s.closed {
		sh.runTimers(sh.s.clock.Now())
	}
	sh.unlock()
}

// runTimers runs the timers of every connection of the shard that is due
// at now, ends the TIME-WAIT records whose time has come and (shard 0) the
// incomplete IP datagrams whose reassembly time is up.
func (sh *shard) runTimers(now time.Time) {
	s := sh.s
	sh.timerAt = time.Time{}
	// Take the due connections out first, so a connection whose deadline
	// stays in the past (which would be a core bug) runs once per firing
	// rather than forever.
	due := sh.dueBuf[:0]
	for len(sh.timers) > 0 && !sh.timers[0].timerAt.After(now) {
		tc := sh.timers[0]
		sh.timers.remove(tc)
		due = append(due, tc)
	}
	for _, tc := range due {
		if tc.removed {
			continue
		}
		s.callLocked(tc, now, func(now time.Time, c *tcp.Conn) error {
			c.HandleTimers(now)
			return nil
		})
		if tc.timerIdx >= 0 && !tc.timerAt.After(now) {
			// The core left a deadline in the past: do not spin on it.
			sh.timers.set(tc, now.Add(time.Millisecond))
		}
	}
	clear(due)
	sh.dueBuf = due[:0]
	sh.expireTimeWait(now)
	if sh.idx == 0 {
		s.expireFragments(now)
	}
}

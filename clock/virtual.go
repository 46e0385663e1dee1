package clock

import (
	"container/heap"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// Virtual is a clock whose time moves only when everything is idle, in the
// manner of testing/synctest but usable outside `go test` (the demo, long
// simulations).
//
// Its goroutines are participants: the one running the function given to
// [Virtual.Run] and those started with [Virtual.Go]. A participant is
// runnable until it returns or blocks in a Wait on one of this clock's Gates
// (Sleep is such a wait). Run fires a due timer only when no participant is
// runnable, and moves Now forward to the next timer only when no timer is
// due; so timer callbacks see a quiescent system and a 2MSL wait costs
// nothing.
//
// The accounting is exact for Gate waits: a Broadcast or a deadline timer
// counts each waiter it wakes as runnable under the clock's lock, before
// time can move again. Participants must block only through Gates of this
// clock; one blocked on anything else (a channel, a mutex held elsewhere, a
// real socket) stays "runnable" and time stops, and a goroutine that is not a
// participant must not wait on these Gates while Run is active.
//
// Participants run concurrently, as goroutines do; events at the same virtual
// instant may interleave differently from run to run.
type Virtual struct {
	mu   sync.Mutex
	idle sync.Cond // signalled when runnable drops to zero or main returns

	now    time.Time
	timers timerHeap
	seq    uint64 // scheduling order, breaks ties between equal deadlines

	// cancelable are the blocked waiters with a cancel channel, polled before
	// time moves (see pollCancelsLocked).
	cancelable []*waiter

	runnable int // participants not blocked in a Gate wait
	blocked  int // participants blocked in a Gate wait
	running  bool
}

var _ Clock = (*Virtual)(nil)

// NewVirtual returns a virtual clock reading start. Choose a start after
// 1970 if its timestamps end up in a pcap file.
func NewVirtual(start time.Time) *Virtual {
	v := &Virtual{now: start}
	v.idle.L = &v.mu
	return v
}

// Now returns the clock's current time. Inside a timer callback it is the
// timer's deadline.
func (v *Virtual) Now() time.Time {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.now
}

// AfterFunc arranges for f to run d after Now, in the goroutine that advances
// time. Timers with equal deadlines fire in the order they were scheduled
// (by AfterFunc or Reset).
func (v *Virtual) AfterFunc(d time.Duration, f func()) Timer {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.scheduleLocked(v.now.Add(d), f)
}

// NewGate returns a Gate whose waits are accounted by this clock and whose
// deadlines are virtual timers.
func (v *Virtual) NewGate() *Gate {
	return &Gate{mu: &v.mu, v: v}
}

// Go starts f as a participant.
func (v *Virtual) Go(f func()) {
	v.mu.Lock()
	v.runnable++
	v.mu.Unlock()
	go func() {
		defer v.exit()
		f()
	}()
}

func (v *Virtual) exit() {
	v.mu.Lock()
	v.runnable--
	if v.runnable <= 0 {
		v.idle.Broadcast()
	}
	v.mu.Unlock()
}

// Sleep blocks the calling participant for d of virtual time.
func (v *Virtual) Sleep(d time.Duration) {
	if d <= 0 {
		return
	}
	g := v.NewGate()
	v.mu.Lock()
	until := v.now.Add(d)
	v.mu.Unlock()
	for g.Wait(g.Chan(), nil, until) == nil {
		// Nobody else holds g, so a nil return cannot happen; loop anyway
		// rather than trust that.
	}
}

// Run runs main as a participant and drives time until main returns: while
// any participant is runnable it waits; when none is, it fires the earliest
// timer, first moving Now to its deadline if that is in the future. If no
// participant is runnable and no timer is pending before main returns, every
// participant is stuck for good: Run returns an error wrapping [ErrDeadlock]
// and leaves those goroutines blocked. Participants still running when main
// returns keep running; timers left pending stay pending.
func (v *Virtual) Run(main func()) (err error) {
	v.mu.Lock()
	if v.running {
		v.mu.Unlock()
		return errors.New("clock: Virtual.Run called while already running")
	}
	v.running = true
	v.runnable++
	done := false
	v.mu.Unlock()

	go func() {
		defer func() {
			v.mu.Lock()
			v.runnable--
			done = true
			v.idle.Broadcast()
			v.mu.Unlock()
		}()
		main()
	}()

	v.mu.Lock()
	locked := true
	defer func() {
		// A panicking timer callback leaves the lock released.
		if !locked {
			v.mu.Lock()
		}
		v.running = false
		v.mu.Unlock()
	}()
	for {
		for v.runnable > 0 && !done {
			v.idle.Wait()
		}
		if done {
			return nil
		}
		if v.pollCancelsLocked() {
			continue
		}
		if len(v.timers) == 0 {
			return fmt.Errorf("%w at %s: %d participant(s) blocked in Gate waits and no timer pending",
				ErrDeadlock, v.now.Format(time.RFC3339Nano), v.blocked)
		}
		f := v.popLocked()
		locked = false
		v.mu.Unlock()
		f()
		v.mu.Lock()
		locked = true
	}
}

// Advance moves the clock forward by d; see AdvanceTo.
func (v *Virtual) Advance(d time.Duration) {
	v.AdvanceTo(v.Now().Add(d))
}

// AdvanceTo fires, in order, every timer due at or before t, with Now set to
// each one's deadline, then sets Now to t (never backwards). It is for
// driving the clock by hand, outside Run, from a goroutine that is not a
// participant: before each timer and before returning it waits until no
// participant is runnable, so participants woken by a timer finish reacting
// before the next one fires. Called by a participant it would wait for
// itself forever.
func (v *Virtual) AdvanceTo(t time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.running {
		panic("clock: Virtual.Advance called during Run")
	}
	for {
		for v.runnable > 0 {
			v.idle.Wait()
		}
		if v.pollCancelsLocked() {
			continue
		}
		if len(v.timers) == 0 || v.timers[0].when.After(t) {
			break
		}
		f := v.popLocked()
		v.mu.Unlock()
		f()
		v.mu.Lock()
	}
	if t.After(v.now) {
		v.now = t
	}
}

// WaitIdle blocks until no participant is runnable, like synctest.Wait. It
// is for goroutines that are not participants.
func (v *Virtual) WaitIdle() {
	v.mu.Lock()
	for v.runnable > 0 {
		v.idle.Wait()
	}
	v.mu.Unlock()
}

// NextTimer returns the deadline of the earliest pending timer, and false
// when none is pending. A driver that steps time by hand (the packetdrill
// runner) uses it to move from one event to the next.
func (v *Virtual) NextTimer() (time.Time, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.timers) == 0 {
		return time.Time{}, false
	}
	return v.timers[0].when, true
}

// Pending returns the number of timers not yet fired or stopped, so tests can
// check that nothing is left behind.
func (v *Virtual) Pending() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.timers)
}

// popLocked removes the earliest timer, moves Now up to its deadline and
// returns its callback.
func (v *Virtual) popLocked() func() {
	t := heap.Pop(&v.timers).(*vtimer)
	if t.when.After(v.now) {
		v.now = t.when
	}
	return t.f
}

func (v *Virtual) scheduleLocked(when time.Time, f func()) *vtimer {
	t := &vtimer{v: v, f: f, index: -1}
	t.when = when
	v.seq++
	t.seq = v.seq
	heap.Push(&v.timers, t)
	return t
}

// wait is Gate.Wait (byChan, the ticket is ch) and Gate.WaitTicket (the
// ticket is gen) for a Gate of this clock.
func (v *Virtual) wait(g *Gate, byChan bool, ch <-chan struct{}, gen uint64, cancel <-chan struct{}, deadline time.Time) error {
	v.mu.Lock()
	if byChan && (g.ch == nil || ch != (<-chan struct{})(g.ch)) || !byChan && g.gen != gen {
		// A Broadcast came after the ticket was taken.
		v.mu.Unlock()
		return nil
	}
	if !deadline.IsZero() && !v.now.Before(deadline) {
		v.mu.Unlock()
		return os.ErrDeadlineExceeded
	}
	w := g.takeWaiterLocked()
	w.gate, w.cancel = g, cancel
	w.seq++
	g.waiters = append(g.waiters, w)
	if cancel != nil {
		v.cancelable = append(v.cancelable, w)
	}
	if !deadline.IsZero() {
		seq := w.seq
		w.timer = v.scheduleLocked(deadline, func() { v.expire(g, w, seq) })
	}
	v.runnable--
	v.blocked++
	if v.runnable < 0 && v.running {
		v.mu.Unlock()
		panic("clock: Gate wait on a Virtual clock by a goroutine that is not a participant (start it with Run or Go)")
	}
	if v.runnable <= 0 {
		v.idle.Broadcast()
	}
	v.mu.Unlock()

	select {
	case <-w.wake:
	case <-cancel:
	}

	v.mu.Lock()
	defer v.mu.Unlock()
	if !w.woken {
		// Only cancel can get here: count ourselves runnable again.
		g.removeWaiter(w)
		v.wakeLocked(w, ErrCanceled)
	}
	// The one signal of this wait is in w.wake unless the select took it.
	select {
	case <-w.wake:
	default:
	}
	err := w.err
	g.putWaiterLocked(w)
	return err
}

// pollCancelsLocked wakes every blocked waiter whose cancel channel is
// closed and reports whether it woke any. The clock calls it when nothing is
// runnable: whoever closed the channel did so before it blocked, so the close
// is visible here, and the waiter is counted runnable before time can move.
func (v *Virtual) pollCancelsLocked() bool {
	woke := false
	for i := 0; i < len(v.cancelable); {
		w := v.cancelable[i]
		select {
		case <-w.cancel:
			w.gate.removeWaiter(w)
			v.wakeLocked(w, ErrCanceled) // removes w from v.cancelable
			woke = true
		default:
			i++
		}
	}
	return woke
}

// wakeLocked marks w runnable, once. The caller has removed it from its Gate.
func (v *Virtual) wakeLocked(w *waiter, err error) {
	w.wakeLocked(err)
	if w.cancel != nil {
		removeWaiter(&v.cancelable, w)
	}
	if w.timer != nil && w.timer.index >= 0 {
		heap.Remove(&v.timers, w.timer.index)
	}
	v.runnable++
	v.blocked--
}

// wakeAllLocked is the virtual half of Broadcast.
func (v *Virtual) wakeAllLocked(g *Gate) {
	for i, w := range g.waiters {
		v.wakeLocked(w, nil)
		g.waiters[i] = nil
	}
	g.waiters = g.waiters[:0]
}

// expire is the deadline timer of wait number seq of w. A waiter is kept
// for the Gate's next wait, so a timer that fired as a Broadcast woke w
// (popped, and run after the lock was let go) may find w in a later wait:
// seq tells it that wait is not its own.
func (v *Virtual) expire(g *Gate, w *waiter, seq uint64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if w.woken || w.seq != seq {
		return
	}
	g.removeWaiter(w)
	v.wakeLocked(w, os.ErrDeadlineExceeded)
}

// vtimer is a Timer of a Virtual clock.
type vtimer struct {
	v     *Virtual
	f     func()
	when  time.Time
	seq   uint64
	index int // position in the heap, -1 when not pending
}

func (t *vtimer) Stop() bool {
	t.v.mu.Lock()
	defer t.v.mu.Unlock()
	if t.index < 0 {
		return false
	}
	heap.Remove(&t.v.timers, t.index)
	return true
}

func (t *vtimer) Reset(d time.Duration) bool {
	v := t.v
	v.mu.Lock()
	defer v.mu.Unlock()
	pending := t.index >= 0
	if pending {
		heap.Remove(&v.timers, t.index)
	}
	t.when = v.now.Add(d)
	v.seq++
	t.seq = v.seq
	heap.Push(&v.timers, t)
	return pending
}

// timerHeap orders timers by deadline, then by scheduling order.
type timerHeap []*vtimer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if !h[i].when.Equal(h[j].when) {
		return h[i].when.Before(h[j].when)
	}
	return h[i].seq < h[j].seq
}
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *timerHeap) Push(x any) {
	t := x.(*vtimer)
	t.index = len(*h)
	*h = append(*h, t)
}
func (h *timerHeap) Pop() any {
	old := *h
	n := len(old) - 1
	t := old[n]
	old[n] = nil
	t.index = -1
	*h = old[:n]
	return t
}

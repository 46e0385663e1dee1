package clock

import (
	"os"
	"sync"
	"time"
)

// A Gate is a broadcast wake-up point: [Gate.Wait] blocks until the next
// [Gate.Broadcast], a cancel channel, or a deadline in the Gate's clock time.
// It is the one primitive the stack blocks on, so that the same code runs
// under the real clock, inside testing/synctest, and under a [Virtual] clock.
//
// A Gate does not carry a condition. The waiter owns one (data readable,
// window open, connection established...) and the pattern is:
//
//	for {
//		s.mu.Lock()
//		ticket := g.Chan() // 1. take the ticket before looking
//		if ready() {       // 2. look, under the lock that Broadcast callers hold
//			...
//			s.mu.Unlock()
//			return
//		}
//		s.mu.Unlock()
//		if err := g.Wait(ticket, ctx.Done(), deadline); err != nil { // 3. sleep
//			return err
//		}
//	}
//
// and whoever makes ready() true does it under s.mu and then calls
// g.Broadcast() (under or after s.mu). No wake-up is lost: a Broadcast after
// step 1 closes the ticket, so step 3 returns at once however late it runs.
//
// Under the real clock the ticket is an ordinary channel and a caller may
// select on it directly together with other channels. Under a Virtual clock
// a participant must block through Wait, never a bare select on the ticket:
// Wait is where the clock learns that the goroutine is idle.
//
// The zero Gate is not usable; make one with [NewGate] or [Clock.NewGate].
type Gate struct {
	// mu guards ch (and waiters). A real Gate points it at own; a virtual one
	// at the clock's lock, because waking a waiter and counting it runnable
	// must be one atomic step.
	mu  *sync.Mutex
	own sync.Mutex
	// ch is the current ticket, closed by the next Broadcast. It is made
	// lazily by Chan, so a Broadcast that nobody waits for (the common case
	// on a busy connection) neither closes nor allocates a channel.
	ch chan struct{}

	v       *Virtual  // nil for a real Gate
	waiters []*waiter // virtual only: participants blocked in Wait
}

// NewGate returns a Gate bound to the real clock.
func NewGate() *Gate {
	g := &Gate{}
	g.mu = &g.own
	return g
}

// Chan returns the current ticket: a channel that the next Broadcast closes.
// Take it before checking the condition the wait is for.
func (g *Gate) Chan() <-chan struct{} {
	g.mu.Lock()
	if g.ch == nil {
		g.ch = make(chan struct{})
	}
	ch := g.ch
	g.mu.Unlock()
	return ch
}

// Broadcast wakes every waiter holding a ticket taken before this call.
// It never blocks and may be called from any goroutine, with or without the
// caller's own locks held.
func (g *Gate) Broadcast() {
	g.mu.Lock()
	if g.ch != nil {
		close(g.ch)
		g.ch = nil
	}
	if g.v != nil {
		g.v.wakeAllLocked(g)
	}
	g.mu.Unlock()
}

// Wait blocks until ticket (from [Gate.Chan]) is closed by a Broadcast, cancel
// is closed, or the Gate's clock reaches deadline. A zero deadline means none;
// a nil cancel means none. It returns nil after a Broadcast (re-check the
// condition: a Broadcast is a hint, not a promise), [ErrCanceled] when cancel
// was closed, and os.ErrDeadlineExceeded when the deadline passed.
//
// Under a Virtual clock the deadline is a virtual timer, and the waiter is
// counted runnable again at the instant the Broadcast or the timer wakes it,
// so time cannot move between the wake-up and the waiter running. A close of
// cancel counts too: before it fires a timer or moves time, a Virtual clock
// polls the cancel channels of its blocked waiters, so a participant that
// closes one (ctx's cancel func) and then blocks cannot let time slip past
// the wake-up. Deadlines should still be given as the deadline argument, in
// clock time: a context.WithTimeout runs on real timers the clock cannot see.
func (g *Gate) Wait(ticket, cancel <-chan struct{}, deadline time.Time) error {
	if g.v != nil {
		return g.v.wait(g, ticket, cancel, deadline)
	}
	if deadline.IsZero() {
		select {
		case <-ticket:
			return nil
		case <-cancel:
			return ErrCanceled
		}
	}
	d := time.Until(deadline)
	if d <= 0 {
		select {
		case <-ticket:
			return nil
		default:
			return os.ErrDeadlineExceeded
		}
	}
	// A runtime timer rather than time.After: it is stopped on the way out,
	// and inside a synctest bubble it is one of the bubble's fake timers.
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ticket:
		return nil
	case <-cancel:
		return ErrCanceled
	case <-t.C:
		return os.ErrDeadlineExceeded
	}
}

// waiter is one participant blocked in a virtual Gate wait.
type waiter struct {
	woken   bool          // set, under the clock's lock, by whoever counted it runnable
	err     error         // why it woke
	timeout chan struct{} // closed by the deadline timer; nil without a deadline
	timer   *vtimer
	gate    *Gate
	cancel  <-chan struct{} // polled by the clock when it is idle; may be nil
}

func (g *Gate) removeWaiter(w *waiter) { removeWaiter(&g.waiters, w) }

// removeWaiter deletes w from *list; order does not matter (all of a Gate's
// waiters wake together).
func removeWaiter(list *[]*waiter, w *waiter) {
	l := *list
	for i, x := range l {
		if x == w {
			last := len(l) - 1
			l[i] = l[last]
			l[last] = nil
			*list = l[:last]
			return
		}
	}
}

package clock

import (
	"os"
	"sync"
	"time"
)

// A Gate is a broadcast wake-up point: a wait on it blocks until the next
// [Gate.Broadcast], a cancel channel, or a deadline in the Gate's clock time.
// It is the one primitive the stack blocks on, so that the same code runs
// under the real clock, inside testing/synctest, and under a [Virtual] clock.
//
// A Gate does not carry a condition. The waiter owns one (data readable,
// window open, connection established...) and the pattern is:
//
//	for {
//		s.mu.Lock()
//		ticket := g.Ticket() // 1. take the ticket before looking
//		if ready() {         // 2. look, under the lock that Broadcast callers hold
//			...
//			s.mu.Unlock()
//			return
//		}
//		s.mu.Unlock()
//		if err := g.WaitTicket(ticket, ctx.Done(), deadline); err != nil { // 3. sleep
//			return err
//		}
//	}
//
// and whoever makes ready() true does it under s.mu and then calls
// g.Broadcast() (under or after s.mu). No wake-up is lost: a Broadcast after
// step 1 makes the ticket stale, so step 3 returns at once however late it
// runs.
//
// A [Ticket] is a count of Broadcasts, and a waiter sleeps on a channel of
// its own that the Gate keeps for the next wait, so a wait allocates nothing
// once the Gate has served one (a connection's Read waits again after every
// Broadcast that woke it: a fresh channel each time was most of the
// allocation of a short connection, issue 13 item 6).
//
// [Gate.Chan] and [Gate.Wait] are the older pair: the ticket is a channel
// that the next Broadcast closes, so a caller may select on it directly
// together with other channels under the real clock; each ticket after a
// Broadcast is a new channel. Under a Virtual clock a participant must block
// through Wait or WaitTicket, never a bare select on a ticket: the wait is
// where the clock learns that the goroutine is idle.
//
// The zero Gate is not usable; make one with [NewGate] or [Clock.NewGate].
type Gate struct {
	// mu guards everything below. A real Gate points it at own; a virtual
	// one at the clock's lock, because waking a waiter and counting it
	// runnable must be one atomic step.
	mu  *sync.Mutex
	own sync.Mutex
	// gen counts Broadcasts: a Ticket is its value when taken.
	gen uint64
	// ch is the current channel ticket (Chan), closed by the next
	// Broadcast. It is made lazily by Chan, so a Broadcast that nobody
	// waits for (the common case on a busy connection) neither closes nor
	// allocates a channel.
	ch chan struct{}

	v       *Virtual  // nil for a real Gate
	waiters []*waiter // blocked in WaitTicket (and, on a virtual Gate, in Wait)
	// spare is a waiter, with its wake channel (and real timer), kept
	// for the next wait once the last one has returned.
	spare *waiter
}

// A Ticket is what a waiter takes from a Gate before it checks its
// condition: [Gate.WaitTicket] returns at once if a Broadcast came after it
// was taken.
type Ticket uint64

// NewGate returns a Gate bound to the real clock.
func NewGate() *Gate {
	g := &Gate{}
	g.mu = &g.own
	return g
}

// Ticket returns the current ticket. Take it before checking the condition
// the wait is for. It never allocates.
func (g *Gate) Ticket() Ticket {
	g.mu.Lock()
	t := Ticket(g.gen)
	g.mu.Unlock()
	return t
}

// Chan returns the current ticket as a channel that the next Broadcast
// closes. Take it before checking the condition the wait is for. It
// allocates a channel for each Broadcast it is taken across; [Gate.Ticket]
// does not.
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
	g.gen++
	if g.ch != nil {
		close(g.ch)
		g.ch = nil
	}
	if g.v != nil {
		g.v.wakeAllLocked(g)
	} else {
		for i, w := range g.waiters {
			w.wakeLocked(nil)
			g.waiters[i] = nil
		}
		g.waiters = g.waiters[:0]
	}
	g.mu.Unlock()
}

// WaitTicket blocks until a Broadcast after ticket (from [Gate.Ticket]), a
// close of cancel, or the Gate's clock reaching deadline. A zero deadline
// means none; a nil cancel means none. It returns nil after a Broadcast
// (re-check the condition: a Broadcast is a hint, not a promise), and when
// a Broadcast came together with the cancel or the deadline; [ErrCanceled]
// when cancel was closed, and os.ErrDeadlineExceeded when the deadline
// passed.
//
// Under a Virtual clock it behaves as [Gate.Wait] does there.
func (g *Gate) WaitTicket(ticket Ticket, cancel <-chan struct{}, deadline time.Time) error {
	if g.v != nil {
		return g.v.wait(g, false, nil, uint64(ticket), cancel, deadline)
	}
	var d time.Duration
	if !deadline.IsZero() {
		if d = time.Until(deadline); d <= 0 {
			if g.Ticket() != ticket {
				return nil
			}
			return os.ErrDeadlineExceeded
		}
	}
	g.mu.Lock()
	if g.gen != uint64(ticket) {
		g.mu.Unlock()
		return nil
	}
	w := g.takeWaiterLocked()
	g.waiters = append(g.waiters, w)
	g.mu.Unlock()

	var err error
	if deadline.IsZero() {
		select {
		case <-w.wake:
		case <-cancel:
			err = ErrCanceled
		}
	} else {
		// A runtime timer, kept with the waiter and stopped on the way
		// out; inside a synctest bubble it is one of the bubble's fake
		// timers.
		if w.rt == nil {
			w.rt = time.NewTimer(d)
		} else {
			w.rt.Reset(d)
		}
		fired := false
		select {
		case <-w.wake:
		case <-cancel:
			err = ErrCanceled
		case <-w.rt.C:
			err, fired = os.ErrDeadlineExceeded, true
		}
		if !w.rt.Stop() && !fired {
			// Since Go 1.23 a stopped timer delivers no stale tick; a
			// program built with asynctimerchan=1 (a main module older
			// than go 1.23) may have one buffered: take it, or the next
			// wait would time out at once.
			select {
			case <-w.rt.C:
			default:
			}
		}
	}

	g.mu.Lock()
	if w.woken {
		// Broadcast took w off the list and signalled it, under g.mu:
		// the signal is in w.wake unless the select above took it.
		err = nil
		select {
		case <-w.wake:
		default:
		}
	} else {
		g.removeWaiter(w)
	}
	g.putWaiterLocked(w)
	g.mu.Unlock()
	return err
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
		return g.v.wait(g, true, ticket, 0, cancel, deadline)
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

// takeWaiterLocked returns the spare waiter, or a new one.
func (g *Gate) takeWaiterLocked() *waiter {
	w := g.spare
	if w == nil {
		return &waiter{wake: make(chan struct{}, 1)}
	}
	g.spare = nil
	w.woken = false
	w.err = nil
	return w
}

// putWaiterLocked keeps w, whose wait has ended and whose wake channel is
// empty, for the next wait: one is enough for the usual single waiter.
func (g *Gate) putWaiterLocked(w *waiter) {
	if g.spare == nil {
		w.cancel = nil
		w.timer = nil
		g.spare = w
	}
}

// waiter is one goroutine blocked in a Gate wait.
type waiter struct {
	// woken is set, under the Gate's lock (a virtual Gate's: the clock's),
	// by whoever woke the waiter, and wake is signalled then, once: a
	// buffered channel of one, so the signal never blocks and the waiter
	// finds it however late it looks.
	woken bool
	err   error // why it woke (virtual)
	wake  chan struct{}
	rt    *time.Timer // real: the deadline timer, kept for the next wait

	// Virtual only.
	seq    uint64 // which wait of this waiter the deadline timer belongs to
	timer  *vtimer
	gate   *Gate
	cancel <-chan struct{} // polled by the clock when it is idle; may be nil
}

// wakeLocked marks w woken with err and signals it. The caller holds the
// Gate's lock and has taken w off the Gate's list.
func (w *waiter) wakeLocked(err error) {
	w.woken = true
	w.err = err
	select {
	case w.wake <- struct{}{}:
	default:
	}
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

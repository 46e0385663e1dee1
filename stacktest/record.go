package stacktest

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/synack/synack/clock"
	"github.com/synack/synack/stack"
	"github.com/synack/synack/tcp"
)

// RecordBuffer is the number of transitions a [Recorder] holds between two
// of its calls; the stack drops (and counts in Counters.EventsDropped) what
// does not fit, and the Recorder reports that as a test failure.
const RecordBuffer = 1 << 14

// pollStep is how often, in the stack's clock time, WaitState looks at
// the subscription again.
const pollStep = time.Millisecond

// Recorder records the state transitions of every connection of a stack,
// from Stack.Subscribe.
//
// It reads its subscription only when one of its methods is called: on a
// virtual clock the stack has queued every transition of the instant before
// any participant looks, so what a Recorder returns is exact, without a
// goroutine of its own.
type Recorder struct {
	s      *stack.Stack
	clk    clock.Clock
	ch     <-chan tcp.Transition
	cancel func()

	mu     sync.Mutex
	events []tcp.Transition
}

// Record subscribes to s's transitions from now on, until the test ends.
func Record(t testing.TB, s *stack.Stack) *Recorder {
	ch, cancel := s.Subscribe(RecordBuffer)
	r := &Recorder{s: s, clk: s.Clock(), ch: ch, cancel: cancel}
	t.Cleanup(cancel)
	return r
}

// drainLocked moves what the subscription holds into r.events.
func (r *Recorder) drainLocked() {
	for {
		select {
		case e, ok := <-r.ch:
			if !ok {
				return
			}
			r.events = append(r.events, e)
		default:
			return
		}
	}
}

// Events returns every transition recorded so far, in order.
func (r *Recorder) Events() []tcp.Transition {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.drainLocked()
	return slices.Clone(r.events)
}

// States returns the state each recorded transition went to, in order
// (listeners' and every connection's together; see StatesOf).
func (r *Recorder) States() []tcp.State {
	var out []tcp.State
	for _, e := range r.Events() {
		out = append(out, e.To)
	}
	return out
}

// StatesOf returns the states connection id went through, in order.
func (r *Recorder) StatesOf(id uint64) []tcp.State {
	var out []tcp.State
	for _, e := range r.Events() {
		if e.ID == id {
			out = append(out, e.To)
		}
	}
	return out
}

// WaitState waits, at most timeout of the stack's clock time (one minute if
// zero or less), until some connection has entered state, and returns that
// transition; it fails t if none does. On a virtual clock call it from a
// participant.
func (r *Recorder) WaitState(t testing.TB, state tcp.State, timeout ...time.Duration) tcp.Transition {
	t.Helper()
	d := time.Minute
	if len(timeout) > 0 && timeout[0] > 0 {
		d = timeout[0]
	}
	e, ok := r.wait(func(e tcp.Transition) bool { return e.To == state }, d)
	if !ok {
		t.Fatalf("stacktest: no connection entered %v within %v; states so far %v", state, d, r.States())
	}
	return e
}

// wait polls until some recorded transition satisfies f or d passes.
func (r *Recorder) wait(f func(tcp.Transition) bool, d time.Duration) (tcp.Transition, bool) {
	deadline := r.clk.Now().Add(d)
	g := r.clk.NewGate() // never broadcast: its waits are sleeps
	for {
		if e, ok := r.find(f); ok {
			return e, true
		}
		now := r.clk.Now()
		if !now.Before(deadline) {
			v, ok := r.clk.(*clock.Virtual)
			if !ok {
				return tcp.Transition{}, false
			}
			if idle(v, deadline) {
				return r.find(f)
			}
			continue
		}
		next := now.Add(pollStep)
		if next.After(deadline) {
			next = deadline
		}
		g.Wait(g.Chan(), nil, next)
	}
}

func (r *Recorder) find(f func(tcp.Transition) bool) (tcp.Transition, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.drainLocked()
	for _, e := range r.events {
		if f(e) {
			return e, true
		}
	}
	return tcp.Transition{}, false
}

// ExpectStates fails t unless the recorded states of connection id are
// exactly want, in order.
func (r *Recorder) ExpectStates(t testing.TB, id uint64, want ...tcp.State) {
	t.Helper()
	if got := r.StatesOf(id); !slices.Equal(got, want) {
		t.Errorf("stacktest: connection %d went through %v, want %v", id, got, want)
	}
}

// Dropped reports whether the stack dropped transitions for a subscriber
// whose buffer was full (this Recorder's or another's: the counter is the
// stack's); if it is this one's, what it holds is incomplete.
func (r *Recorder) Dropped() bool { return r.s.Counters().EventsDropped > 0 }

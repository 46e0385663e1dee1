// Package clock gives the stack its notion of time and its one way to block.
//
// It is public so that programs outside this module can pass a clock to
// stack.Options.Clock and memlink.Config.Clock, above all a [Virtual] one: the
// virtual clock is what makes synack's deterministic simulation possible —
// whole stacks on an impaired in-memory network where a 2MSL TIME-WAIT, an
// RTO backoff or a keepalive costs no real time, and where time moves only
// when every goroutine of the simulation is idle (see the example).
//
// Two clocks implement [Clock]:
//
//   - [Real] reads time.Now and uses time.AfterFunc; it is what a stack uses
//     by default. It only ever blocks on channels and runtime timers, so code
//     using it runs unchanged inside a testing/synctest bubble, where time is
//     virtual and "idle" is decided by the runtime.
//   - [Virtual] is a clock of our own for simulations and the demo outside
//     `go test`. Under [Virtual.Run] it advances itself: time moves only when
//     every participant goroutine is blocked in a [Gate] wait of that clock,
//     and then jumps to the next timer. [Virtual.Advance] drives it by hand
//     instead (the packetdrill runner steps it so).
//
// [Gate] is the one way the stack blocks. Every blocking call of the stack
// (Read, Peek, Write, Accept, Dial) waits on a Gate: take a ticket with
// [Gate.Ticket], check the condition under the stack's lock, unlock, then
// [Gate.WaitTicket] on the ticket (or the older [Gate.Chan] and
// [Gate.Wait]). See [Gate] for why this order loses no wake-up
// under either clock; under a Virtual clock a Gate wait is also how the clock
// learns that a goroutine is idle, so code of your own that runs as a
// participant ([Virtual.Go]) must block on Gates of that clock too.
package clock

import (
	"errors"
	"time"
)

// Clock is the source of time and timers for the stack.
type Clock interface {
	// Now returns the current time of this clock.
	Now() time.Time
	// AfterFunc calls f once after d. With the real clock f runs on its own
	// goroutine (time.AfterFunc); with the virtual clock, in the goroutine
	// that advances time, with Now() equal to the timer's deadline.
	AfterFunc(d time.Duration, f func()) Timer
	// NewGate returns a broadcast wake-up point bound to this clock.
	NewGate() *Gate
	// Go starts f on a new goroutine. The virtual clock counts it as a
	// participant (runnable until it returns or waits on a Gate); the real
	// clock just runs `go f()`. Goroutines the stack starts must use this, so
	// a virtual clock knows when they are idle.
	Go(f func())
}

// Timer is a pending call of AfterFunc. Its methods mean what they mean on
// *time.Timer: Stop reports whether it stopped a pending call, Reset re-arms
// the timer d from now and reports whether it was pending.
type Timer interface {
	Stop() bool
	Reset(d time.Duration) bool
}

// ErrCanceled is returned by [Gate.Wait] when its cancel channel was closed
// first. Callers that passed ctx.Done() usually return ctx.Err() instead.
var ErrCanceled = errors.New("clock: wait canceled")

// ErrDeadlock is wrapped by the error [Virtual.Run] returns when every
// participant is blocked and no timer is left to wake one.
var ErrDeadlock = errors.New("clock: deadlock")

// Real returns the clock of the machine: time.Now and time.AfterFunc.
func Real() Clock { return realClock{} }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// *time.Timer already has the Stop/Reset pair Timer asks for.
func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

func (realClock) NewGate() *Gate { return NewGate() }

func (realClock) Go(f func()) { go f() }

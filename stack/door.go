package stack

import (
	"errors"
	"net"
	"os"
	"time"

	"github.com/synack/synack/clock"
	"github.com/synack/synack/tcp"
)

// The door into a connection. A tcp.Conn is pure (no lock, no clock, no
// I/O), so whoever calls into one owes it the runtime's side of the
// bargain: hold its shard's lock (shard.go: sh.lock, which also takes s.mu
// for reading; or s.mu for writing, which excludes every shard), pass one reading of the clock, and afterwards settle
// what the call changed (listen queues, demux table, timer heap, counters,
// wake-ups), write the segments it produced to the links in one batch and
// point the stack's timer at the new earliest deadline, then unlock. The
// links copy what they are given and never call back synchronously, so
// writing under the lock is safe.
//
// That bargain is kept here and nowhere else:
//
//   - do: a user call that does not block (Close, CloseWrite, CloseRead,
//     the option setters);
//   - doWait: a user call that may block (Read, Peek, Write, the wait for a
//     dialed handshake); Accept's blocking loop, block, has its shape;
//   - callLocked: a call made where the lock is already held and the
//     clock already read: inside run, the door for work on the stack as a
//     whole (packets from a link, timers, a listener or the stack
//     closing), and inside the three above.
//
// Every call into a tcp.Conn is made inside the callback of one of them,
// on the callback's argument, so "every call into a tcp.Conn is followed
// by settle" holds by construction. The exceptions are settle itself
// (which may call again, and then goes on from what that changed), the
// read-only accessors that need only the lock (tc.state, tc.info), and a
// listener's tcp.Conn, which stays in LISTEN: it sends nothing and has no
// timers, so there is nothing to settle. TestOneDoor keeps it so.
//
// A call the core answers with tcp.ErrWouldBlock changed nothing (the
// contract of tcp.Conn's user calls), so the doors skip settle then: a
// Read that finds nothing to read goes straight to sleep.

// run is the door for work on the stack as a whole: packets from a link,
// the timers, a listener or the stack closing. It takes the lock and,
// unless the stack is closed, reads the clock once and runs f, which calls
// into connections through callLocked; then it flushes, re-arms the timer
// and unlocks. It reports whether f ran.
func (s *Stack) run(f func(now time.Time)) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	f(s.clock.Now())
	s.unlock()
	return true
}

// do is the door for a user call that does not block: it takes the lock,
// reads the clock once, runs f on tc's tcp.Conn, settles, flushes,
// re-arms the timer and unlocks. It returns net.ErrClosed, without running
// f, once tc is closed (by its owner or by Stack.Close); the caller wraps
// what it returns in its net.OpError.
func (s *Stack) do(tc *TCPConn, f func(now time.Time, c *tcp.Conn) error) error {
	sh := tc.sh
	sh.lock()
	if tc.closedErr() {
		sh.release()
		return net.ErrClosed
	}
	err := s.callLocked(tc, s.clock.Now(), f)
	sh.unlock()
	return err
}

// doWait is do for a user call that may block. f returns
// tcp.ErrWouldBlock to wait when its call changed nothing, errMore when it
// did part of its work (which is settled before waiting). The goroutine
// then waits on tc's gate, counted in *waiters (tc.rwait, wwait or owait,
// so that settle wakes only those who may care), and f runs again, with a
// new reading of the clock, when settle wakes it. Before each run doWait
// checks, in net.Conn's order, that tc is not closed (net.ErrClosed) and
// that *deadline (re-read every time: SetReadDeadline and SetWriteDeadline
// move it for pending calls; nil is none) has not passed
// (os.ErrDeadlineExceeded). A close of cancel wakes the call too, and f
// runs again to decide what that means; it must not ask to wait once
// cancel is closed.
//
// It is block with the attempt written in rather than passed as a
// closure: that indirection on every Read and Write cost a 1-byte
// ping-pong (bench/, BenchmarkPingPong) 3 % of its median round trip.
func (s *Stack) doWait(tc *TCPConn, waiters *int32, deadline *time.Time, cancel <-chan struct{}, f func(now time.Time, c *tcp.Conn) error) error {
	sh := tc.sh
	sh.lock()
	for {
		var err error
		if tc.closedErr() {
			err = net.ErrClosed
		} else if now := s.clock.Now(); expired(now, deadline) {
			err = os.ErrDeadlineExceeded
		} else {
			err = s.callLocked(tc, now, f)
		}
		if err != tcp.ErrWouldBlock && err != errMore {
			sh.unlock()
			return err
		}
		sh.gate(tc) // a kept one, if the shard has one (connpool.go)
		err = s.wait(sh, &tc.gate, waiters, cancel, deadline)
		sh.dropGate(tc) // back to the shard, unless another call waits on it
		if err == os.ErrDeadlineExceeded {
			sh.unlock()
			return err
		}
	}
}

// callLocked is the door for code that already holds the lock and has read
// the clock: it runs f on tc's tcp.Conn and settles, unless f returned
// tcp.ErrWouldBlock, which says nothing changed. The caller flushes and
// unlocks (s.unlock) when it is done.
func (s *Stack) callLocked(tc *TCPConn, now time.Time, f func(now time.Time, c *tcp.Conn) error) error {
	s.pushMemoryState(tc)
	err := f(now, tc.tcb)
	if err != tcp.ErrWouldBlock {
		s.settle(tc, now)
	}
	return err
}

// errMore is what a doWait callback returns when its call did part of
// the work and the rest has to wait (Write filled the send buffer with
// part of p): the door settles that part, then waits as for
// tcp.ErrWouldBlock.
var errMore = errors.New("stack: part done, waiting to do more")

// block is the blocking loop of Accept, and the shape of doWait's. It
// takes lk and runs try until try returns something other than
// tcp.ErrWouldBlock or errMore; then it flushes, unlocks and returns that.
// While try reports one of those the goroutine waits (wait) and try runs
// again; a deadline that passes while waiting ends the call with
// os.ErrDeadlineExceeded. try checks whatever ends the call (closed,
// deadline passed) in the order the API promises, and reads the clock only
// when it needs the time (a clock read is not free: some 65 ns on a VM's
// kvm-clock).
func (s *Stack) block(lk locker, gate **clock.Gate, waiters *int32, deadline *time.Time, cancel <-chan struct{}, try func() error) error {
	lk.lock()
	for {
		err := try()
		if err != tcp.ErrWouldBlock && err != errMore {
			lk.unlock()
			return err
		}
		if err := s.wait(lk, gate, waiters, cancel, deadline); err == os.ErrDeadlineExceeded {
			lk.unlock()
			return err
		}
	}
}

// wait blocks on *gate (made on first use: most connections never block),
// counted in *waiters, until a Broadcast, *deadline (nil: none) or a close
// of cancel, after the caller saw its condition false with lk held.
// It returns with lk held, what the gate's Wait returned.
//
// The ticket is taken here, after the check, which is safe because the
// lock has been held since the check and every change to a condition is
// made under the lock (the Broadcasts made after unlocking, by
// Listener.SetDeadline, Listener.Close and Stack.Close, follow a change
// made under it). A ticket is a count, and the gate keeps its waiter's
// channel for the next wait, so waiting allocates nothing once a gate has
// served one wait (clock.Gate.WaitTicket). What the check produced (a Write that
// filled the buffer part-way sends segments) is flushed before sleeping.
func (s *Stack) wait(lk locker, gate **clock.Gate, waiters *int32, cancel <-chan struct{}, deadline *time.Time) error {
	if *gate == nil {
		*gate = s.clock.NewGate()
	}
	var dl time.Time
	if deadline != nil {
		dl = *deadline
	}
	g := *gate
	ticket := g.Ticket()
	*waiters++
	lk.unlock()
	err := g.WaitTicket(ticket, cancel, dl)
	lk.lock()
	*waiters--
	return err
}

// expired reports whether the deadline at *d (nil or zero: none) has
// passed at now.
func expired(now time.Time, d *time.Time) bool {
	return d != nil && !d.IsZero() && !now.Before(*d)
}

// abort is ABORT (RFC 9293 3.10.5) as a callback of the doors.
func abort(now time.Time, c *tcp.Conn) error {
	c.Abort(now)
	return nil
}

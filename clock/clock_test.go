package clock

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func TestVirtualTimerOrder(t *testing.T) {
	v := NewVirtual(t0)
	var got []string
	add := func(name string, d time.Duration) {
		v.AfterFunc(d, func() {
			got = append(got, fmt.Sprintf("%s@%v", name, v.Now().Sub(t0)))
		})
	}
	add("c", 3*time.Second)
	add("a1", time.Second)
	add("b", 2*time.Second)
	add("a2", time.Second) // tie with a1: scheduled later, fires later
	add("z", 0)
	v.Advance(2 * time.Second)
	want := "[z@0s a1@1s a2@1s b@2s]"
	if s := fmt.Sprint(got); s != want {
		t.Fatalf("fired %s, want %s", s, want)
	}
	if now := v.Now().Sub(t0); now != 2*time.Second {
		t.Fatalf("Now after Advance(2s) = +%v, want +2s", now)
	}
	if n := v.Pending(); n != 1 {
		t.Fatalf("Pending = %d, want 1", n)
	}
	v.Advance(time.Hour)
	if fmt.Sprint(got[len(got)-1]) != "c@3s" {
		t.Fatalf("last fired %s, want c@3s", got[len(got)-1])
	}
}

func TestVirtualTimerScheduledFromCallback(t *testing.T) {
	v := NewVirtual(t0)
	var at []time.Duration
	var tick func()
	tick = func() {
		at = append(at, v.Now().Sub(t0))
		if len(at) < 3 {
			v.AfterFunc(10*time.Millisecond, tick)
		}
	}
	v.AfterFunc(10*time.Millisecond, tick)
	v.Advance(time.Second)
	if fmt.Sprint(at) != "[10ms 20ms 30ms]" {
		t.Fatalf("ticks at %v, want [10ms 20ms 30ms]", at)
	}
}

func TestVirtualStopReset(t *testing.T) {
	v := NewVirtual(t0)
	var fired []string
	a := v.AfterFunc(time.Second, func() { fired = append(fired, "a") })
	b := v.AfterFunc(time.Second, func() { fired = append(fired, "b") })
	c := v.AfterFunc(time.Second, func() { fired = append(fired, "c") })

	if !a.Stop() {
		t.Error("Stop of a pending timer returned false")
	}
	if a.Stop() {
		t.Error("second Stop returned true")
	}
	// Reset of a pending timer re-schedules it: same deadline as c, but
	// scheduled after it, so it fires after c.
	if !b.Reset(time.Second) {
		t.Error("Reset of a pending timer returned false")
	}
	v.Advance(time.Second)
	if fmt.Sprint(fired) != "[c b]" {
		t.Fatalf("fired %v, want [c b]", fired)
	}
	if c.Stop() {
		t.Error("Stop of a fired timer returned true")
	}
	if a.Reset(time.Second) {
		t.Error("Reset of a stopped timer returned true")
	}
	v.Advance(500 * time.Millisecond)
	if len(fired) != 2 {
		t.Fatalf("re-armed timer fired early: %v", fired)
	}
	v.Advance(500 * time.Millisecond)
	if fmt.Sprint(fired) != "[c b a]" {
		t.Fatalf("fired %v, want [c b a]", fired)
	}
	if v.Pending() != 0 {
		t.Fatalf("Pending = %d, want 0", v.Pending())
	}
}

func TestVirtualAdvanceNeverBackwards(t *testing.T) {
	v := NewVirtual(t0)
	v.AdvanceTo(t0.Add(-time.Hour))
	if !v.Now().Equal(t0) {
		t.Fatalf("AdvanceTo the past moved Now to %v", v.Now())
	}
}

func TestVirtualRunSleep(t *testing.T) {
	v := NewVirtual(t0)
	var mu sync.Mutex
	var log []string
	err := v.Run(func() {
		var wg sync.WaitGroup // only to join at the end, after all Sleeps
		for i := 1; i <= 3; i++ {
			wg.Add(1)
			v.Go(func() {
				defer wg.Done()
				v.Sleep(time.Duration(i) * time.Hour)
				mu.Lock()
				log = append(log, fmt.Sprintf("%d@%v", i, v.Now().Sub(t0)))
				mu.Unlock()
			})
		}
		v.Sleep(4 * time.Hour)
		wg.Wait()
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(log) != "[1@1h0m0s 2@2h0m0s 3@3h0m0s]" {
		t.Fatalf("log %v", log)
	}
	if d := v.Now().Sub(t0); d != 4*time.Hour {
		t.Fatalf("Now = +%v, want +4h", d)
	}
}

// A timer must not fire while a participant is runnable, even if it is due.
func TestVirtualRunAdvancesOnlyWhenIdle(t *testing.T) {
	v := NewVirtual(t0)
	var work atomic.Int64
	var seen int64 = -1
	err := v.Run(func() {
		v.AfterFunc(0, func() { seen = work.Load() })
		v.AfterFunc(time.Nanosecond, func() { seen = work.Load() })
		v.Go(func() {
			for range 1000 {
				work.Add(1)
				runtime.Gosched() // busy, not blocked
			}
		})
		v.Sleep(time.Second)
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen != 1000 {
		t.Fatalf("timer fired when the worker had done %d of 1000 steps", seen)
	}
}

// Ping-pong between two participants through Gates: between a Broadcast and
// the wakee running nobody would be runnable if the wakee were only counted
// when it resumed, and the pending timer would fire mid-game.
func TestVirtualBroadcastCountsWakeeAtOnce(t *testing.T) {
	v := NewVirtual(t0)
	const rounds = 2000
	var mu sync.Mutex
	turn, round := 0, 0
	gates := [2]*Gate{v.NewGate(), v.NewGate()}
	firedAt := -1
	player := func(me int) {
		for {
			mu.Lock()
			ticket := gates[me].Chan()
			for turn != me && round < rounds {
				mu.Unlock()
				if err := gates[me].Wait(ticket, nil, time.Time{}); err != nil {
					panic(err)
				}
				mu.Lock()
				ticket = gates[me].Chan()
			}
			if round >= rounds {
				mu.Unlock()
				gates[1-me].Broadcast()
				return
			}
			round++
			turn = 1 - me
			mu.Unlock()
			gates[1-me].Broadcast()
		}
	}
	err := v.Run(func() {
		v.AfterFunc(time.Nanosecond, func() {
			mu.Lock()
			firedAt = round
			mu.Unlock()
		})
		done := v.NewGate()
		var finished int
		for me := range 2 {
			v.Go(func() {
				player(me)
				mu.Lock()
				finished++
				mu.Unlock()
				done.Broadcast()
			})
		}
		mu.Lock()
		for finished < 2 {
			ticket := done.Chan()
			mu.Unlock()
			done.Wait(ticket, nil, time.Time{})
			mu.Lock()
		}
		mu.Unlock()
		v.Sleep(time.Second)
	})
	if err != nil {
		t.Fatal(err)
	}
	if firedAt != rounds {
		t.Fatalf("timer fired after %d of %d rounds: time moved while a wakee was runnable", firedAt, rounds)
	}
}

func TestVirtualGateDeadline(t *testing.T) {
	v := NewVirtual(t0)
	var err error
	var woke time.Duration
	runErr := v.Run(func() {
		g := v.NewGate()
		err = g.Wait(g.Chan(), nil, t0.Add(3*time.Second))
		woke = v.Now().Sub(t0)
	})
	if runErr != nil {
		t.Fatal(runErr)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Wait = %v, want os.ErrDeadlineExceeded", err)
	}
	if woke != 3*time.Second {
		t.Fatalf("woke at +%v, want +3s", woke)
	}
	if v.Pending() != 0 {
		t.Fatalf("%d timers left", v.Pending())
	}
}

// A Broadcast before the deadline wins, and removes the deadline timer.
func TestVirtualGateBroadcastBeforeDeadline(t *testing.T) {
	v := NewVirtual(t0)
	var err error
	var woke time.Duration
	runErr := v.Run(func() {
		g := v.NewGate()
		v.AfterFunc(time.Second, g.Broadcast)
		err = g.Wait(g.Chan(), nil, t0.Add(time.Hour))
		woke = v.Now().Sub(t0)
	})
	if runErr != nil || err != nil {
		t.Fatalf("Run = %v, Wait = %v", runErr, err)
	}
	if woke != time.Second {
		t.Fatalf("woke at +%v, want +1s", woke)
	}
	if v.Pending() != 0 {
		t.Fatalf("deadline timer left pending (%d)", v.Pending())
	}
}

// The lost-wake-up case: Broadcast between Chan and Wait.
func TestGateBroadcastBeforeWait(t *testing.T) {
	for name, g := range map[string]*Gate{"real": NewGate(), "virtual": NewVirtual(t0).NewGate()} {
		t.Run(name, func(t *testing.T) {
			ticket := g.Chan()
			g.Broadcast()
			if err := g.Wait(ticket, nil, time.Time{}); err != nil {
				t.Fatalf("Wait = %v, want nil", err)
			}
			// A fresh ticket is open again.
			select {
			case <-g.Chan():
				t.Fatal("new ticket already closed")
			default:
			}
		})
	}
}

func TestVirtualGateDeadlinePassed(t *testing.T) {
	v := NewVirtual(t0)
	g := v.NewGate()
	if err := g.Wait(g.Chan(), nil, t0); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Wait with deadline == Now = %v, want os.ErrDeadlineExceeded", err)
	}
}

func TestVirtualGateCancel(t *testing.T) {
	v := NewVirtual(t0)
	var err error
	runErr := v.Run(func() {
		g := v.NewGate()
		cancel := make(chan struct{})
		v.Go(func() { v.Sleep(time.Second); close(cancel) })
		err = g.Wait(g.Chan(), cancel, time.Time{})
		// The accounting survived the cancel: time still works.
		v.Sleep(time.Second)
	})
	if runErr != nil {
		t.Fatal(runErr)
	}
	if !errors.Is(err, ErrCanceled) {
		t.Fatalf("Wait = %v, want ErrCanceled", err)
	}
	if d := v.Now().Sub(t0); d != 2*time.Second {
		t.Fatalf("Now = +%v, want +2s", d)
	}
}

func TestVirtualDeadlock(t *testing.T) {
	v := NewVirtual(t0)
	g := v.NewGate()
	exited := make(chan struct{})
	err := v.Run(func() {
		defer close(exited)
		v.Sleep(time.Minute)
		g.Wait(g.Chan(), nil, time.Time{}) // nobody will Broadcast
	})
	if !errors.Is(err, ErrDeadlock) {
		t.Fatalf("Run = %v, want ErrDeadlock", err)
	}
	t.Log(err)
	g.Broadcast() // release main so the test leaks nothing
	<-exited
}

func TestVirtualRunTwice(t *testing.T) {
	v := NewVirtual(t0)
	for i := range 2 {
		if err := v.Run(func() { v.Sleep(time.Second) }); err != nil {
			t.Fatalf("Run %d: %v", i, err)
		}
	}
	if d := v.Now().Sub(t0); d != 2*time.Second {
		t.Fatalf("Now = +%v, want +2s", d)
	}
}

// Many sleepers: each must wake exactly at its own virtual instant.
func TestVirtualManySleepers(t *testing.T) {
	v := NewVirtual(t0)
	var bad atomic.Int64
	err := v.Run(func() {
		var mu sync.Mutex
		left := 50
		done := v.NewGate()
		for i := range 50 {
			v.Go(func() {
				start := v.Now()
				for k := range 20 {
					d := time.Duration(i*7+k%5+1) * time.Millisecond
					v.Sleep(d)
					start = start.Add(d)
					if !v.Now().Equal(start) {
						bad.Add(1)
					}
				}
				mu.Lock()
				left--
				mu.Unlock()
				done.Broadcast()
			})
		}
		mu.Lock()
		for left > 0 {
			ticket := done.Chan()
			mu.Unlock()
			done.Wait(ticket, nil, time.Time{})
			mu.Lock()
		}
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if bad.Load() != 0 {
		t.Fatalf("%d sleeps woke at the wrong virtual time", bad.Load())
	}
}

// With Advance from a non-participant, a participant woken by a timer runs
// before the next timer fires.
func TestVirtualAdvanceWaitsForParticipants(t *testing.T) {
	v := NewVirtual(t0)
	g := v.NewGate()
	var mu sync.Mutex
	var log []string
	v.Go(func() {
		for i := range 3 {
			mu.Lock()
			ticket := g.Chan()
			mu.Unlock()
			g.Wait(ticket, nil, time.Time{})
			for range 100 {
				runtime.Gosched()
			}
			mu.Lock()
			log = append(log, fmt.Sprintf("woke%d", i))
			mu.Unlock()
		}
	})
	v.WaitIdle()
	for i := range 3 {
		v.AfterFunc(time.Duration(i+1)*time.Second, func() {
			mu.Lock()
			log = append(log, fmt.Sprintf("t%d", i))
			mu.Unlock()
			g.Broadcast()
		})
	}
	v.Advance(10 * time.Second)
	if fmt.Sprint(log) != "[t0 woke0 t1 woke1 t2 woke2]" {
		t.Fatalf("log %v", log)
	}
}

// The real clock inside a synctest bubble: the Gate blocks only on channels
// and runtime timers, so the bubble sees durable blocking and fakes time.
func TestRealGateInSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := Real()
		g := clk.NewGate()
		start := clk.Now()

		err := g.Wait(g.Chan(), nil, start.Add(2*time.Minute))
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Wait = %v, want os.ErrDeadlineExceeded", err)
		}
		if d := clk.Now().Sub(start); d != 2*time.Minute {
			t.Fatalf("woke after %v, want 2m", d)
		}

		clk.AfterFunc(time.Second, g.Broadcast)
		if err := g.Wait(g.Chan(), nil, time.Time{}); err != nil {
			t.Fatalf("Wait = %v, want nil", err)
		}
		if d := clk.Now().Sub(start); d != 2*time.Minute+time.Second {
			t.Fatalf("Broadcast woke at +%v, want 2m1s", d)
		}

		cancel := make(chan struct{})
		clk.Go(func() { time.Sleep(time.Second); close(cancel) })
		if err := g.Wait(g.Chan(), cancel, start.Add(time.Hour)); !errors.Is(err, ErrCanceled) {
			t.Fatalf("Wait = %v, want ErrCanceled", err)
		}

		if err := g.Wait(g.Chan(), nil, start); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Wait with past deadline = %v", err)
		}
	})
}

// Stress: many goroutines wait on one real Gate while a producer bumps a
// counter; every waiter must see the final value (no lost wake-up).
func TestRealGateNoLostWakeups(t *testing.T) {
	g := NewGate()
	var mu sync.Mutex
	n := 0
	const target = 5000
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				ticket := g.Chan()
				if n >= target {
					mu.Unlock()
					return
				}
				mu.Unlock()
				g.Wait(ticket, nil, time.Time{})
			}
		}()
	}
	for range target {
		mu.Lock()
		n++
		mu.Unlock()
		g.Broadcast()
	}
	wg.Wait()
}

// Broadcast with nobody holding a ticket must not allocate: it runs for every
// segment on a busy connection.
func TestGateIdleBroadcastAllocs(t *testing.T) {
	g := NewGate()
	if a := testing.AllocsPerRun(100, g.Broadcast); a != 0 {
		t.Fatalf("Broadcast allocates %v per call", a)
	}
}

// gateTicketPinger runs a waiter on g that acknowledges every change of
// *n (made under mu, then Broadcast) on ack, waiting with WaitTicket and
// deadline(), until *n is negative.
func gateTicketPinger(g *Gate, mu *sync.Mutex, n *int, ack chan<- struct{}, deadline func() time.Time) {
	seen := 0
	for {
		mu.Lock()
		ticket := g.Ticket()
		cur := *n
		mu.Unlock()
		if cur < 0 {
			close(ack)
			return
		}
		if cur != seen {
			seen = cur
			ack <- struct{}{}
			continue
		}
		g.WaitTicket(ticket, nil, deadline())
	}
}

// A wait woken by a Broadcast, again and again, allocates nothing once the
// Gate has served one: the waiter's channel (and its deadline timer) is
// kept for the next wait. Chan made a channel per Broadcast; a short
// connection waits some five times (issue 13 item 6).
func TestGateTicketWaitAllocs(t *testing.T) {
	for _, tc := range []struct {
		name     string
		deadline func() time.Time
	}{
		{"no deadline", func() time.Time { return time.Time{} }},
		{"deadline", func() time.Time { return time.Now().Add(time.Hour) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewGate()
			var mu sync.Mutex
			n := 0
			ack := make(chan struct{})
			go gateTicketPinger(g, &mu, &n, ack, tc.deadline)
			ping := func() {
				mu.Lock()
				n++
				mu.Unlock()
				g.Broadcast()
				<-ack
			}
			ping()
			if a := testing.AllocsPerRun(200, ping); a != 0 {
				t.Errorf("a wake-up by Broadcast allocates %v times", a)
			}
			mu.Lock()
			n = -1
			mu.Unlock()
			g.Broadcast()
			<-ack
		})
	}
}

// Stress for WaitTicket on a real Gate: waiters with and without
// deadlines and cancels, all of which must see the final count (no lost
// wake-up), and whose kept waiter must come back clean whichever of
// Broadcast, deadline and cancel woke it (run with -race).
func TestRealGateTicketNoLostWakeups(t *testing.T) {
	g := NewGate()
	var mu sync.Mutex
	n := 0
	const target = 20000
	cancel := make(chan struct{})
	var canceled atomic.Int64
	var timedOut atomic.Int64
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; ; k++ {
				mu.Lock()
				ticket := g.Ticket()
				if n >= target {
					mu.Unlock()
					return
				}
				mu.Unlock()
				var dl time.Time
				var c <-chan struct{}
				switch (i + k) % 4 {
				case 1:
					dl = time.Now().Add(time.Duration(k%50) * time.Microsecond)
				case 2:
					c = cancel
				case 3:
					dl = time.Now().Add(time.Hour)
					c = cancel
				}
				switch err := g.WaitTicket(ticket, c, dl); err {
				case nil:
				case ErrCanceled:
					canceled.Add(1)
				case os.ErrDeadlineExceeded:
					timedOut.Add(1)
				default:
					panic(err)
				}
			}
		}()
	}
	for i := range target {
		mu.Lock()
		n++
		mu.Unlock()
		g.Broadcast()
		if i == target/2 {
			close(cancel)
		}
	}
	wg.Wait()
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.waiters) != 0 {
		t.Fatalf("%d waiters left on the Gate", len(g.waiters))
	}
	if w := g.spare; w != nil && len(w.wake) != 0 {
		t.Fatal("the kept waiter has a stale wake-up in its channel")
	}
	t.Logf("%d waits canceled, %d timed out", canceled.Load(), timedOut.Load())
}

// WaitTicket on a Virtual clock: deadline, Broadcast before the deadline
// (its timer goes), cancel, and a Broadcast between Ticket and the wait;
// the kept waiter serves each wait in turn.
func TestVirtualGateTicket(t *testing.T) {
	v := NewVirtual(t0)
	var errs []error
	var at []time.Duration
	runErr := v.Run(func() {
		g := v.NewGate()
		note := func(err error) {
			errs = append(errs, err)
			at = append(at, v.Now().Sub(t0))
		}
		note(g.WaitTicket(g.Ticket(), nil, t0.Add(3*time.Second)))
		v.AfterFunc(time.Second, g.Broadcast)
		note(g.WaitTicket(g.Ticket(), nil, v.Now().Add(time.Hour)))
		if v.Pending() != 0 {
			panic("the deadline timer of a wait woken by Broadcast is still pending")
		}
		cancel := make(chan struct{})
		v.Go(func() { v.Sleep(time.Second); close(cancel) })
		note(g.WaitTicket(g.Ticket(), cancel, v.Now().Add(time.Hour)))
		ticket := g.Ticket()
		g.Broadcast()
		note(g.WaitTicket(ticket, nil, time.Time{}))
		// The accounting survived all of it: time still moves.
		v.Sleep(time.Second)
		note(nil)
	})
	if runErr != nil {
		t.Fatal(runErr)
	}
	want := fmt.Sprint([]error{os.ErrDeadlineExceeded, nil, ErrCanceled, nil, nil})
	if got := fmt.Sprint(errs); got != want {
		t.Fatalf("waits returned %s, want %s", got, want)
	}
	if got := fmt.Sprint(at); got != "[3s 4s 5s 5s 6s]" {
		t.Fatalf("woke at %s, want [3s 4s 5s 5s 6s]", got)
	}
	if v.Pending() != 0 {
		t.Fatalf("%d timers left", v.Pending())
	}
}

// WaitTicket with the real clock inside a synctest bubble: the bubble sees
// the waiter durably blocked on its kept channel and timer.
func TestRealGateTicketInSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := Real()
		g := clk.NewGate()
		start := clk.Now()
		if err := g.WaitTicket(g.Ticket(), nil, start.Add(2*time.Minute)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("WaitTicket = %v, want os.ErrDeadlineExceeded", err)
		}
		clk.AfterFunc(time.Second, g.Broadcast)
		if err := g.WaitTicket(g.Ticket(), nil, start.Add(time.Hour)); err != nil {
			t.Fatalf("WaitTicket = %v, want nil", err)
		}
		if d := clk.Now().Sub(start); d != 2*time.Minute+time.Second {
			t.Fatalf("Broadcast woke at +%v, want 2m1s", d)
		}
		cancel := make(chan struct{})
		clk.Go(func() { time.Sleep(time.Second); close(cancel) })
		if err := g.WaitTicket(g.Ticket(), cancel, time.Time{}); !errors.Is(err, ErrCanceled) {
			t.Fatalf("WaitTicket = %v, want ErrCanceled", err)
		}
		if err := g.WaitTicket(g.Ticket(), nil, start); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("WaitTicket with a past deadline = %v", err)
		}
		ticket := g.Ticket()
		g.Broadcast()
		if err := g.WaitTicket(ticket, nil, start); err != nil {
			t.Fatalf("WaitTicket after a Broadcast, past deadline = %v, want nil", err)
		}
	})
}

package stack

import (
	"context"
	"io"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/synack/synack/clock"
	"github.com/synack/synack/link/memlink"
	"github.com/synack/synack/tcp"
)

// The stack under the virtual clock, as `synack demo` and the simulations
// run it: a lossy link, a transfer, both closes, 2MSL, in no real time.
func TestVirtualClock(t *testing.T) {
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	v := clock.NewVirtual(start)
	imp := memlink.Impairments{Delay: 5 * time.Millisecond, Loss: 0.05}
	ea, eb := memlink.Pipe(memlink.Config{Clock: v, Seed: 7, AB: imp, BA: imp})
	a := New(Options{Clock: v, Rand: newSeeded(1)})
	b := New(Options{Clock: v, Rand: newSeeded(2)})
	if _, err := a.AddLink(ea, netip.PrefixFrom(addrA, 24)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AddLink(eb, netip.PrefixFrom(addrB, 24)); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	evs, cancel := a.Subscribe(64)
	defer cancel()

	const size = 1 << 20
	var got int64
	var runErr error
	err := v.Run(func() {
		l, err := b.ListenTCP(netip.AddrPortFrom(addrB, 80), 0)
		if err != nil {
			runErr = err
			return
		}
		gate := v.NewGate()
		var served atomic.Bool
		v.Go(func() {
			s, err := l.AcceptTCP()
			if err != nil {
				return
			}
			got, _ = io.Copy(io.Discard, s)
			s.Close()
			served.Store(true)
			gate.Broadcast()
		})
		c, err := a.DialTCP(context.Background(), netip.AddrPortFrom(addrB, 80))
		if err != nil {
			runErr = err
			return
		}
		if _, err := c.Write(make([]byte, size)); err != nil {
			runErr = err
			return
		}
		c.CloseWrite()
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			runErr = err
			return
		}
		c.Close()
		for {
			ticket := gate.Chan()
			if served.Load() {
				break
			}
			gate.Wait(ticket, nil, time.Time{})
		}
		v.Sleep(2*tcp.DefaultMSL + time.Second)
		l.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
	if runErr != nil {
		t.Fatal(runErr)
	}
	if got != size {
		t.Errorf("server got %d bytes, want %d", got, size)
	}
	if n := len(a.Connections()) + len(b.Connections()); n != 0 {
		t.Errorf("%d connections left", n)
	}
	var last tcp.Transition
	for e := range drainN(evs) {
		last = e
	}
	if last.To != tcp.Closed || last.From != tcp.TimeWait {
		t.Errorf("client's last event %v -> %v, want TIME-WAIT -> CLOSED", last.From, last.To)
	}
	t.Logf("virtual time %v, client retransmitted %d segments", v.Now().Sub(start), a.Counters().TCP.RetransSegs)
}

func drainN(ch <-chan tcp.Transition) func(func(tcp.Transition) bool) {
	return func(yield func(tcp.Transition) bool) {
		for _, e := range drain(ch) {
			if !yield(e) {
				return
			}
		}
	}
}

package stack_test

import (
	"context"
	"io"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/synack/synack/clock"
	"github.com/synack/synack/link/memlink"
	"github.com/synack/synack/stacktest"
	"github.com/synack/synack/tcp"
)

// The stack under the virtual clock, as `synack demo` and the simulations
// run it: a lossy link, a transfer, both closes, 2MSL, in no real time.
func TestVirtualClock(t *testing.T) {
	imp := memlink.Impairments{Delay: 5 * time.Millisecond, Loss: 0.05}
	n := stacktest.Pair(t, stacktest.WithImpairments(imp, imp), stacktest.WithSeed(7), stacktest.IPv4Only())
	v, a, b := n.Clock.(*clock.Virtual), n.A, n.B
	addrB := stacktest.AddrB
	start := v.Now()
	rec := stacktest.Record(t, a)

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
	evs := rec.Events()
	last := evs[len(evs)-1]
	if last.To != tcp.Closed || last.From != tcp.TimeWait {
		t.Errorf("client's last event %v -> %v, want TIME-WAIT -> CLOSED", last.From, last.To)
	}
	t.Logf("virtual time %v, client retransmitted %d segments", v.Now().Sub(start), a.Counters().TCP.RetransSegs)
}

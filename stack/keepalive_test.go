package stack

import (
	"errors"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/synack/synack/link/memlink"
	"github.com/synack/synack/tcp"
)

// SetKeepAliveConfig takes per-connection timing, as on a kernel socket:
// with the peer gone silent, probes start after Idle, repeat every
// Interval, and Count unanswered ones end the connection with ETIMEDOUT.
func TestKeepAliveConfigPerConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var cut atomic.Bool
		drop := func([]byte) bool { return cut.Load() }
		p := newPair(t, pairOpts{link: memlink.Config{AB: memlink.Impairments{Drop: drop}, BA: memlink.Impairments{Drop: drop}}})
		c, _ := p.connect(t, 80)
		if err := c.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 5 * time.Second, Count: 3}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		cut.Store(true) // the peer vanishes: nothing gets through any more
		_, err := c.Read(make([]byte, 1))
		if !errors.Is(err, syscall.ETIMEDOUT) {
			t.Fatalf("Read = %v, want ETIMEDOUT", err)
		}
		// 30 s idle, three probes 5 s apart, and 5 s for the last one.
		if got, want := time.Since(start), 30*time.Second+3*5*time.Second; got != want {
			t.Errorf("keep-alive gave up after %v, want %v", got, want)
		}
		if st := c.State(); st != tcp.Closed {
			t.Errorf("state %v, want CLOSED", st)
		}
	})
}

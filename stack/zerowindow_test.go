package stack

import (
	"errors"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/synack/synack/tcp"
)

// Zero windows between two stacks. A zero-window probe moves SND.NXT one
// byte past the peer's RCV.NXT while its window is 0; ACKs and RSTs sent
// at that SND.NXT are unacceptable to the peer (RFC 9293 3.10.7.4, RFC
// 5961 section 3.2). Found by a stack-level fuzz test: two stacks whose
// windows were both closed answered each other's ACKs at the same virtual
// instant forever, so virtual time stopped; a reset after a probe was
// dropped by the peer as out of its window.

// Both sides write and neither reads: both windows close and both probe.
// Ten seconds of virtual time must pass (the ACK storm never let them),
// with no ACK dropped as unacceptable, and a reset afterwards must end the
// peer's connection.
func TestZeroWindowBothWaysNoACKStorm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var segs, badACKs atomic.Int64
		trace := func(ev TraceEvent) {
			switch {
			case ev.Kind == TraceSent:
				segs.Add(1)
			case ev.Kind == TraceReceived && ev.Drop == tcp.DropOutOfWindow && ev.Segment.Len() == 0:
				// Data may be dropped as an old duplicate (a Tail Loss
				// Probe racing the ACK of what it repeats); an empty
				// segment is one of the peer's ACKs.
				badACKs.Add(1)
			}
		}
		small := tcp.Config{SendBufferSize: 16 << 10, ReceiveBufferSize: 16 << 10}
		p := newPair(t, pairOpts{a: Options{TCP: small, Trace: trace}, b: Options{TCP: small, Trace: func(ev TraceEvent) {
			if ev.Kind == TraceReceived {
				trace(ev)
			}
		}}})
		c, s := p.connect(t, 80)
		for _, x := range []*TCPConn{c, s} {
			go func() {
				x.SetWriteDeadline(time.Now().Add(time.Minute))
				x.Write(make([]byte, 1<<20))
			}()
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		n := segs.Load()
		t.Logf("a sent %d segments in 10 s of virtual time", n)
		if k := badACKs.Load(); k != 0 {
			t.Errorf("%d ACKs were dropped as out of the receiver's window", k)
		}
		// About 20 data segments, then probes backed off from 200 ms and
		// the ACKs of the peer's probes: a few dozen at most.
		if n > 200 {
			t.Errorf("a sent %d segments in 10 s with both windows closed: ACKs go back and forth", n)
		}
		for name, st := range map[string]*Stack{"a": p.a, "b": p.b} {
			if n := st.Counters().Drops[tcp.DropRSTOutOfWindow]; n != 0 {
				t.Errorf("%s dropped %d RSTs as out of its window", name, n)
			}
		}
		if c.State() != tcp.Established || s.State() != tcp.Established {
			t.Fatalf("states %v, %v: want both ESTABLISHED", c.State(), s.State())
		}

		c.SetLinger(0)
		c.Close()
		synctest.Wait()
		if st := s.State(); st != tcp.Closed {
			t.Errorf("after a's reset b's connection is %v, want CLOSED", st)
		}
		s.SetLinger(0)
		s.Close()
	})
}

// The server resets a client that never reads, after it has probed the
// client's zero window: the client must take the reset (it used to drop it
// as rst_out_of_window and stay ESTABLISHED).
func TestResetAfterZeroWindowProbeReachesPeer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		small := tcp.Config{SendBufferSize: 16 << 10, ReceiveBufferSize: 16 << 10}
		p := newPair(t, pairOpts{a: Options{TCP: small}, b: Options{TCP: small}})
		c, s := p.connect(t, 80)
		go func() {
			s.SetWriteDeadline(time.Now().Add(time.Minute))
			s.Write(make([]byte, 1<<20))
		}()
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if n := s.Info().Stats.ZeroWindowProbes; n == 0 {
			t.Fatal("the server sent no zero-window probe")
		}
		s.SetLinger(0)
		s.Close()
		synctest.Wait()
		if st := c.State(); st != tcp.Closed {
			t.Fatalf("the client is %v after the server's reset, want CLOSED (dropped: %d out-of-window RSTs)",
				st, p.a.Counters().Drops[tcp.DropRSTOutOfWindow])
		}
		buf := make([]byte, 64<<10)
		var err error
		for err == nil {
			_, err = c.Read(buf) // what was received stays readable
		}
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("client Read: %v, want ECONNRESET", err)
		}
		c.Close()
	})
}

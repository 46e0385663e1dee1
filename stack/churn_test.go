package stack

import (
	"context"
	"io"
	"net/netip"
	"runtime"
	"testing"
	"testing/synctest"
	"time"

	"github.com/synack/synack/clock"
)

// churnOnce is the short connection of bench/'s BenchmarkConnect: dial,
// one byte each way, the client closes first (and keeps the TIME-WAIT),

// churnPort is the port churnPair's listener listens on.
const churnPort = 80

// churnPair is a pair of stacks with a listener of the second on
// churnPort, closed when the test ends.
func churnPair(t *testing.T) (*pair, *Listener) {
	t.Helper()
	p := newPair(t, pairOpts{})
	l, err := p.b.ListenTCP(netip.AddrPortFrom(addrB, churnPort), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return p, l
}

// the server reads the EOF and closes.
func churnOnce(t *testing.T, p *pair, l *Listener, port uint16) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		s, err := l.AcceptTCP()
		if err != nil {
			done <- err
			return
		}
		defer s.Close()
		var b [1]byte
		if _, err := io.ReadFull(s, b[:]); err != nil {
			done <- err
			return
		}
		if _, err := s.Write(b[:]); err != nil {
			done <- err
			return
		}
		s.Read(b[:]) // EOF
		done <- nil
	}()
	c, err := p.a.DialTCP(context.Background(), netip.AddrPortFrom(addrB, port))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	b := [1]byte{'x'}
	if _, err := c.Write(b[:]); err != nil {
		t.Fatalf("write: %v", err)
	}
	if _, err := io.ReadFull(c, b[:]); err != nil {
		t.Fatalf("read: %v", err)
	}
	c.Close()
	if err := <-done; err != nil {
		t.Fatalf("server: %v", err)
	}
}

// Issue 13 item 6: a short connection allocates at most 2 KB, both ends
// together, also while the TIME-WAIT records pile up (the default 60 s
// TIME-WAIT, so none expires during the test and the record table keeps
// growing). What used to cost most: a new channel for every blocking wait
// after a wake-up (clock.Gate.Chan, some 540 B a connection), the
// TIME-WAIT table copying itself as it grew by a quarter (some 620 B) and
// a Gate a connection (128 B). The figure is bytes counted by the runtime
// (runtime.MemStats.TotalAlloc), not time, inside a synctest bubble.
func TestShortConnectionAllocBytes(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own account")
	}
	synctest.Test(t, func(t *testing.T) {
		p, l := churnPair(t)
		const port = churnPort
		// Warm up: the free lists of Conns and gates, the listener's
		// queues, the first layouts of the TIME-WAIT table.
		for range 300 {
			churnOnce(t, p, l, port)
		}
		const n = 3000
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range n {
			churnOnce(t, p, l, port)
		}
		runtime.ReadMemStats(&after)
		perConn := float64(after.TotalAlloc-before.TotalAlloc) / n
		allocs := float64(after.Mallocs-before.Mallocs) / n
		t.Logf("%.0f B, %.1f allocations per short connection (%d connections, %d TIME-WAIT records)", perConn, allocs, n, timeWaitRecords(p.a))
		if perConn > 2048 {
			t.Errorf("%.0f B allocated per short connection, want at most 2048 (issue 13 item 6)", perConn)
		}
	})
}

// timeWaitRecords counts the records of s's TIME-WAIT tables.
func timeWaitRecords(s *Stack) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, sh := range s.shards {
		n += sh.tw.live
	}
	return n
}

// A completed handshake leaves its SYN-queue entry to the listener, and the
// next SYN takes it instead of allocating one (about 200 bytes a short
// connection, issue 13 item 6); a recycled entry carries nothing of the
// old handshake into the new connection.
func TestSynQueueEntryReused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, l := churnPair(t)
		const port = churnPort
		free := func() []*halfOpen {
			p.b.mu.Lock()
			defer p.b.mu.Unlock()
			return append([]*halfOpen(nil), l.halfFree...)
		}
		churnOnce(t, p, l, port)
		first := free()
		if len(first) != 1 {
			t.Fatalf("after one handshake the listener keeps %d SYN-queue entries, want 1", len(first))
		}
		if *first[0] != (halfOpen{}) {
			t.Fatalf("the kept entry was not cleared: %+v", *first[0])
		}
		churnOnce(t, p, l, port)
		if again := free(); len(again) != 1 || again[0] != first[0] {
			t.Fatalf("the second handshake did not take the kept entry (kept %d, same %v)", len(again), len(again) == 1 && again[0] == first[0])
		}
	})
}

// A connection holds a Gate only while a call of its owner waits: an idle
// connection that blocked before (Dial, Read) keeps none, and the next
// connection's waits take the one it gave back (some 250 bytes a
// connection that blocked, kept for its life: the Gate, its waiter and
// the waiter's channel).
func TestGateOnlyWhileWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{a: Options{Shards: 1}, b: Options{Shards: 1}})
		c, s := p.connect(t, 80) // the Dial waited for the SYN,ACK
		go func() {
			time.Sleep(time.Second)
			s.Write([]byte{1})
		}()
		if _, err := c.Read(make([]byte, 1)); err != nil { // waits a second
			t.Fatal(err)
		}
		gates := func(st *Stack, tc *TCPConn) (*clock.Gate, int) {
			st.mu.Lock()
			defer st.mu.Unlock()
			return tc.gate, len(st.shards[0].pool.gates)
		}
		if g, kept := gates(p.a, c); g != nil || kept != 1 {
			t.Fatalf("after its waits the client holds a Gate (%v), its shard keeps %d, want none and 1", g != nil, kept)
		}
		c2, _ := p.connect(t, 81)
		if g, kept := gates(p.a, c2); g != nil || kept != 1 {
			t.Fatalf("the second Dial: the client holds a Gate (%v), its shard keeps %d, want none and 1 (the same)", g != nil, kept)
		}
	})
}

// An accept loop that takes connections one at a time keeps the accept
// queue's array: the queue emptied by Accept is not dropped for a new one
// at the next connection (8 bytes a short connection, issue 13 item 6).
func TestAcceptQueueKeepsItsArray(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, l := churnPair(t)
		const port = churnPort
		capacity := func() int {
			p.b.mu.Lock()
			defer p.b.mu.Unlock()
			return cap(l.acceptQ)
		}
		churnOnce(t, p, l, port)
		if c := capacity(); c == 0 {
			t.Fatalf("the accept queue dropped its array when Accept emptied it")
		}
	})
}

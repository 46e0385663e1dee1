package stack

import (
	"io"
	"testing"
	"testing/synctest"
	"time"

	"github.com/synack/synack/tcp"
)

// Regression tests for what FuzzStack's memory invariant found.

// An incomplete datagram on a link that then stays silent is dropped
// when its reassembly time is up (RFC 791; RFC 8200 section 4.5), by the
// stack's timer, not only when the next packet arrives: its memory goes
// back to the budget.
func TestReassemblyExpiresOnSilentLink(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newListeningPeer(t)
		r.send(fragments4(addrB, addrA, 1, synSegment(addrB, addrA), 24)[0])
		synctest.Wait()
		if m := r.s.Memory(); m.Reassembly == 0 {
			t.Fatalf("the first fragment is not counted: %+v", m)
		}
		time.Sleep(61 * time.Second)
		synctest.Wait()
		if m := r.s.Memory(); m.Reassembly != 0 || m.InUse != 0 {
			t.Errorf("after 61 silent seconds: reassembly %d, in use %d; want 0", m.Reassembly, m.InUse)
		}
		if c := r.s.Counters().IP; c.ReasmTimeout != 1 {
			t.Errorf("ReasmTimeout %d, want 1", c.ReasmTimeout)
		}
	})
}

// Memory that falls from over the limit to below the low threshold in
// one step (a large holder going away) ends the pressure; before, the
// state stopped at pressure with nothing left to move it.
func TestMemoryStateFromOverLimitToNormal(t *testing.T) {
	s := New(Options{MemoryLimit: 1000})
	defer s.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	s.mem.tcp.Store(1200)
	s.updateMemoryState(now)
	if s.memState() != tcp.MemoryOverLimit {
		t.Fatalf("at 1200 of 1000: %v, want over_limit", s.memState())
	}
	s.mem.tcp.Store(0)
	s.updateMemoryState(now)
	if s.memState() != tcp.MemoryNormal {
		t.Fatalf("at 0 of 1000: %v, want normal", s.memState())
	}
	s.mem.tcp.Store(900)
	s.updateMemoryState(now)
	s.mem.tcp.Store(600) // between the low and pressure marks: still pressure
	s.updateMemoryState(now)
	if s.memState() != tcp.MemoryPressure {
		t.Fatalf("at 600 after 900: %v, want pressure (hysteresis)", s.memState())
	}
}

// A connection that reached CLOSED (LAST-ACK's ACK) with received data
// its owner has not read yet left the demux table, but its buffer stays
// in the budget until Read empties it.
func TestClosedConnUnreadDataStaysCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{})
		client, server := p.connect(t, 80)
		if _, err := client.Write(make([]byte, 3000)); err != nil {
			t.Fatal(err)
		}
		client.CloseWrite()
		synctest.Wait()
		server.CloseWrite() // CLOSE-WAIT -> LAST-ACK -> CLOSED on the ACK
		synctest.Wait()
		if st := server.State(); st != tcp.Closed {
			t.Fatalf("server %v, want CLOSED", st)
		}
		if m := p.b.Memory(); m.InUse == 0 {
			t.Fatalf("3000 unread bytes in a CLOSED connection, the budget counts 0")
		}
		if n, err := io.Copy(io.Discard, server); n != 3000 || err != nil {
			t.Fatalf("read %d, %v; want 3000", n, err)
		}
		if m := p.b.Memory(); m.InUse != 0 {
			t.Fatalf("read to the end, the budget still counts %d", m.InUse)
		}
		server.Close()
		client.Close()
	})
}

package stack

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/synack/synack/link/memlink"
	"github.com/synack/synack/tcp"
)

// poolLen is how many tcp.Conns the stack keeps, over all its shards
// (the stack lock held for writing excludes every shard).
func poolLen(s *Stack) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, sh := range s.shards {
		n += len(sh.pool.free)
	}
	return n
}

// exchange sends n bytes each way between c and s, both ways at once, and
// checks they arrive.
func exchange(t *testing.T, c, s *TCPConn, n int, seed byte) {
	t.Helper()
	up, down := bytes.Repeat([]byte{seed}, n), bytes.Repeat([]byte{seed + 1}, n)
	go c.Write(up)
	go s.Write(down)
	got := make([]byte, n)
	if _, err := io.ReadFull(s, got); err != nil || !bytes.Equal(got, up) {
		t.Fatalf("server read %v, data equal %v", err, bytes.Equal(got, up))
	}
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, down) {
		t.Fatalf("client read %v, data equal %v", err, bytes.Equal(got, down))
	}
}

// The tcp.Conns of ended connections go to the stack's free list once no
// handle can reach them — the active closer's when it becomes a TIME-WAIT
// record, the passive closer's when it is CLOSED after its owner's Close —
// and the next connections start on them: with nothing of the old ones
// (counters from zero, their own data), while the old handles keep
// answering net.ErrClosed (issue 13 item 6).
func TestConnPoolReuse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// A lossy link, so the first connection's Conns carry SACK
		// scoreboards, retransmissions and recovery state.
		// One shard each: the free lists are per shard, and the second
		// connection must land where the first one's Conns were kept.
		p := newPair(t, pairOpts{
			link: memlink.Config{Seed: 7, AB: memlink.Impairments{Loss: 0.05}, BA: memlink.Impairments{Loss: 0.05}},
			a:    Options{Shards: 1}, b: Options{Shards: 1},
		})
		c, s := p.connect(t, 80)
		exchange(t, c, s, 200000, 'a')
		if c.Info().Stats.Retransmits+s.Info().Stats.Retransmits == 0 {
			t.Fatal("no retransmission on the lossy link: the test exercises nothing")
		}
		c.Close()
		// The server closes once the client's FIN is in (which the lossy
		// link may make wait for a retransmission): LAST-ACK, then CLOSED.
		for i := 0; i < 100 && s.State() != tcp.CloseWait; i++ {
			time.Sleep(100 * time.Millisecond)
		}
		if st := s.State(); st != tcp.CloseWait {
			t.Fatalf("the server is in %v after the client's Close, want CLOSE-WAIT", st)
		}
		s.Close()
		for i := 0; i < 100 && (poolLen(p.a) == 0 || poolLen(p.b) == 0); i++ {
			synctest.Wait()
			time.Sleep(100 * time.Millisecond)
		}
		if poolLen(p.a) != 1 || poolLen(p.b) != 1 {
			t.Fatalf("free lists hold %d (client) and %d (server) Conns, want 1 each", poolLen(p.a), poolLen(p.b))
		}
		if st := c.State(); st != tcp.TimeWait {
			t.Errorf("the old client says %v, want TIME-WAIT (its record)", st)
		}
		if st := s.State(); st != tcp.Closed {
			t.Errorf("the old server says %v, want CLOSED", st)
		}
		for _, old := range []*TCPConn{c, s} {
			if _, err := old.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Read on an old handle: %v, want net.ErrClosed", err)
			}
			if _, err := old.Write([]byte{1}); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Write on an old handle: %v, want net.ErrClosed", err)
			}
			if err := old.Close(); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Close on an old handle: %v, want net.ErrClosed", err)
			}
		}

		c2, s2 := p.connect(t, 81)
		if poolLen(p.a) != 0 || poolLen(p.b) != 0 {
			t.Fatalf("the new connection did not take the kept Conns: %d and %d left", poolLen(p.a), poolLen(p.b))
		}
		exchange(t, c2, s2, 3000, 'x')
		// The last ACKs may still be on the way (or lost and due again).
		for i := 0; i < 100 && (c2.Info().Stats.BytesAcked < 3000 || s2.Info().Stats.BytesAcked < 3000); i++ {
			time.Sleep(100 * time.Millisecond)
		}
		for _, nc := range []*TCPConn{c2, s2} {
			st := nc.Info().Stats
			if st.BytesReceived != 3000 || st.BytesAcked != 3000 {
				t.Errorf("a new connection on a kept Conn counts %d bytes received and %d acknowledged, want 3000 each: %+v", st.BytesReceived, st.BytesAcked, st)
			}
		}
		if st := c.State(); st != tcp.TimeWait {
			t.Errorf("the old client, after its Conn was reused, says %v, want TIME-WAIT", st)
		}
		if st := s.State(); st != tcp.Closed {
			t.Errorf("the old server, after its Conn was reused, says %v, want CLOSED", st)
		}
		c2.Close()
		s2.Close()
		p.close()
	})
}

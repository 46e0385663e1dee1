package tcp

import (
	"testing"
	"unsafe"
)

// A connection that only shakes hands, with SACK and timestamps on, makes
// no loss-recovery state (lossState, 440 bytes): idle connections are
// most of a busy server's (issue 13 item 4). The first data makes it.
func TestLossStateMadeOnFirstData(t *testing.T) {
	p := &pipeSink{peer: map[*Conn]*Conn{}}
	A, B := p.handshake(t, &Config{})
	if !A.sackOK || !B.sackOK {
		t.Fatalf("SACK not in use: %v %v", A.sackOK, B.sackOK)
	}
	now := epoch.Add(5 * 60e9)
	A.HandleTimers(now)
	B.HandleTimers(now)
	_ = A.Info()
	_ = B.Info()
	p.deliver(now)
	if A.snd.loss != nil || B.snd.loss != nil {
		t.Fatalf("idle after the handshake: loss state made (client %v, server %v), want none", A.snd.loss != nil, B.snd.loss != nil)
	}
	A.Write(now, []byte("x"))
	p.deliver(now)
	if A.snd.loss == nil {
		t.Errorf("data sent with SACK on: no loss state")
	}
}

// The Conn fits the allocator's 1536-byte size class: at 1,537 bytes it
// would take 1,792 per connection, at 1,793 2,048 (runtime/sizeclasses.go).
// Idle connections are mostly this struct (issue 13 items 4 and 6); a
// field that pushes it over belongs in lossState, the cold counters
// (stats.go) or another part made on first use.
func TestConnSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(Conn{}); n > 1536 {
		t.Errorf("tcp.Conn is %d bytes, over the 1536-byte size class", n)
	}
}

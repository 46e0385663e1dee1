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

// The Conn fits the allocator's 1536-byte size class: one byte more and
// it takes 1,792 per connection (runtime/sizeclasses.go). The allocator
// puts an 8-byte header before an object over 512 bytes that holds
// pointers (Go 1.22's allocation headers), so the struct itself may have
// 1,528. Idle connections are mostly this struct (issue 13 items 4 and
// 6); a field that pushes it over belongs in lossState, the cold counters
// (stats.go) or another part made on first use.
func TestConnSizeClass(t *testing.T) {
	const mallocHeader = 8
	if n := unsafe.Sizeof(Conn{}) + mallocHeader; n > 1536 {
		t.Errorf("tcp.Conn takes %d bytes with its allocation header, over the 1536-byte size class", n)
	}
}

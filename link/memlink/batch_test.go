package memlink

import (
	"encoding/binary"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/synack/synack/link"
)

// batchSink records what arrives through DeliverPackets and DeliverPacket.
type batchSink struct {
	mu      sync.Mutex
	batches int
	got     []uint32
}

func (b *batchSink) DeliverPacket(pkt []byte) {
	b.mu.Lock()
	b.got = append(b.got, binary.BigEndian.Uint32(pkt))
	b.mu.Unlock()
}

func (b *batchSink) DeliverPackets(pkts [][]byte) {
	b.mu.Lock()
	b.batches++
	for _, p := range pkts {
		b.got = append(b.got, binary.BigEndian.Uint32(p))
	}
	b.mu.Unlock()
}

var _ link.BatchDispatcher = (*batchSink)(nil)

// A receiver that takes batches gets every packet once, in order, in
// fewer calls than packets; the tap still sees each one.
func TestBatchDelivery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tapped := 0
		a, b := Pipe(Config{Tap: func(Dir, []byte) { tapped++ }})
		defer a.Close()
		sink := &batchSink{}
		b.Attach(sink)
		const n = 500
		pkts := make([][]byte, n)
		for i := range pkts {
			pkts[i] = binary.BigEndian.AppendUint32(nil, uint32(i))
		}
		if _, err := a.WritePackets(pkts); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		sink.mu.Lock()
		defer sink.mu.Unlock()
		if len(sink.got) != n {
			t.Fatalf("got %d packets, want %d", len(sink.got), n)
		}
		for i, v := range sink.got {
			if v != uint32(i) {
				t.Fatalf("packet %d is %d: out of order", i, v)
			}
		}
		if sink.batches == 0 || sink.batches >= n {
			t.Errorf("%d batch calls for %d packets", sink.batches, n)
		}
		if tapped != n {
			t.Errorf("tap saw %d packets, want %d", tapped, n)
		}
		if st := a.Stats(); st.Delivered != n {
			t.Errorf("Delivered %d, want %d", st.Delivered, n)
		}
	})
}

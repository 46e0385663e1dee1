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

// validSink is a batchSink that also takes vouched batches, and counts
// the packets that came each way.
type validSink struct {
	batchSink
	valid, plain int
}

func (v *validSink) DeliverPacket(pkt []byte) {
	v.batchSink.DeliverPacket(pkt)
	v.mu.Lock()
	v.plain++
	v.mu.Unlock()
}

func (v *validSink) DeliverPackets(pkts [][]byte) {
	v.batchSink.DeliverPackets(pkts)
	v.mu.Lock()
	v.plain += len(pkts)
	v.mu.Unlock()
}

func (v *validSink) DeliverVouchedPackets(pkts [][]byte) {
	v.batchSink.DeliverPackets(pkts)
	v.mu.Lock()
	v.valid += len(pkts)
	v.mu.Unlock()
}

var _ link.ChecksumVouching = (*validSink)(nil)

// Config.ChecksumOffload vouches for every packet of a direction that
// cannot corrupt, and for none of one that can; without it nothing is
// vouched for.
func TestChecksumOffloadVouches(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		vouched bool
	}{
		{"offload", Config{ChecksumOffload: true}, true},
		{"no offload", Config{}, false},
		{"offload, corrupting", Config{ChecksumOffload: true, AB: Impairments{Corrupt: 0.5}}, false},
		{"offload, the other way corrupting", Config{ChecksumOffload: true, BA: Impairments{Corrupt: 1}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				a, b := Pipe(tc.cfg)
				defer a.Close()
				sink := &validSink{}
				b.Attach(sink)
				const n = 100
				for i := range n { // one at a time too: single packets are vouched for as well
					if _, err := a.WritePackets([][]byte{binary.BigEndian.AppendUint32(make([]byte, 0, 8), uint32(i))}); err != nil {
						t.Fatal(err)
					}
					if i%10 == 0 {
						synctest.Wait()
					}
				}
				synctest.Wait()
				sink.mu.Lock()
				defer sink.mu.Unlock()
				want := [2]int{0, n}
				if tc.vouched {
					want = [2]int{n, 0}
				}
				if got := [2]int{sink.valid, sink.plain}; got != want {
					t.Fatalf("vouched, not vouched = %v, want %v", got, want)
				}
			})
		})
	}
}

package memlink

import (
	"encoding/binary"
	"testing"
	"testing/synctest"
	"time"

	"github.com/synack/synack/clock"
)

// Coalesce hands the packets that arrive within its wait of a batch's
// first to the dispatcher in one call, in order, and the next packet,
// sent after the wait, in a batch of its own.
func TestCoalesce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := Pipe(Config{})
		defer a.Close()
		sink := &batchSink{}
		Coalesce(b, clock.Real(), time.Millisecond).Attach(sink)
		send := func(i int) {
			if _, err := a.WritePackets([][]byte{binary.BigEndian.AppendUint32(nil, uint32(i))}); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 10 {
			send(i)
			time.Sleep(50 * time.Microsecond) // 10 packets within 0.5 ms
		}
		time.Sleep(2 * time.Millisecond)
		send(10)
		time.Sleep(2 * time.Millisecond)
		synctest.Wait()
		sink.mu.Lock()
		defer sink.mu.Unlock()
		if sink.batches != 2 || len(sink.got) != 11 {
			t.Fatalf("%d packets in %d batches, want 11 in 2", len(sink.got), sink.batches)
		}
		for i, v := range sink.got {
			if v != uint32(i) {
				t.Fatalf("packet %d is %d", i, v)
			}
		}
	})
}

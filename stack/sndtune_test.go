package stack

import (
	"io"
	"testing"
	"testing/synctest"
	"time"

	"github.com/synack/synack/link/memlink"
)

// TestSendBufferGrowsOnLongFatPath: on a path of 50 ms round trip at
// 200 Mbit/s (a bandwidth-delay product of 1.25 MB), a send buffer fixed
// at 64 KiB caps a transfer at 64 KiB per round trip (1.3 MB/s); the
// auto-tuned one (tcp/sndtune.go) starts at the same 64 KiB and grows
// with cwnd, so the transfer is not held to that. Virtual time
// (testing/synctest): the rates are those of the simulated path,
// deterministic, not of this machine.
func TestSendBufferGrowsOnLongFatPath(t *testing.T) {
	const size = 16 << 20
	run := func(t *testing.T, fixed bool) (rate float64, most int) {
		imp := memlink.Impairments{Delay: 25 * time.Millisecond, Rate: 200e6, QueueLimit: 4000}
		p := newPair(t, pairOpts{link: memlink.Config{AB: imp, BA: imp}})
		client, server := p.connect(t, 80)
		if fixed {
			if err := client.SetWriteBuffer(32 << 10); err != nil { // doubled: 64 KiB
				t.Fatal(err)
			}
		}
		done := make(chan int64)
		go func() {
			n, _ := io.Copy(io.Discard, server)
			done <- n
		}()
		start := time.Now()
		chunk := make([]byte, 64<<10)
		for sent := 0; sent < size; sent += len(chunk) {
			if _, err := client.Write(chunk); err != nil {
				t.Fatal(err)
			}
			most = max(most, client.WriteBufferSize())
		}
		client.Close()
		if n := <-done; n != size {
			t.Fatalf("received %d bytes, want %d", n, size)
		}
		return size / time.Since(start).Seconds(), most
	}
	var fixedRate, autoRate float64
	var fixedMost, autoMost int
	synctest.Test(t, func(t *testing.T) { fixedRate, fixedMost = run(t, true) })
	synctest.Test(t, func(t *testing.T) { autoRate, autoMost = run(t, false) })
	t.Logf("fixed 64 KiB: %.2f MB/s; auto-tuned: %.2f MB/s, send buffer up to %d bytes", fixedRate/1e6, autoRate/1e6, autoMost)
	if fixedMost != 64<<10 {
		t.Errorf("SetWriteBuffer(32 KiB): buffer reached %d, want 64 KiB", fixedMost)
	}
	if limit := float64(64<<10) / 0.050; fixedRate > 1.1*limit {
		t.Errorf("fixed 64 KiB buffer moved %.2f MB/s, more than 64 KiB per 50 ms round trip (%.2f MB/s): the path is not long enough to show the cap", fixedRate/1e6, limit/1e6)
	}
	if autoMost <= 64<<10 {
		t.Errorf("auto-tuned send buffer never grew past 64 KiB (%d)", autoMost)
	}
	if autoRate < 4*fixedRate {
		t.Errorf("auto-tuned %.2f MB/s, not 4 times the fixed buffer's %.2f MB/s", autoRate/1e6, fixedRate/1e6)
	}
}

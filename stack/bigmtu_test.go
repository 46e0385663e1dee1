package stack

import (
	"bytes"
	"testing"
	"testing/synctest"
	"time"

	"github.com/synack/synack/link/memlink"
)

// At MTU 65535 (an MSS of 65,483) a bulk transfer over a link with no
// delay needs no timer at all: every segment is acknowledged and every
// window reopened by the segments and reads themselves. Inside the bubble
// time only moves when every goroutine waits on a timer, so the virtual
// time the transfer takes is the time timers decided it. A first window
// smaller than two segments used to stall each connection on a delayed
// ACK (40 ms) and a persist probe (200 ms): 240 ms of virtual time for
// 32 MiB that the link moves in none (the bench's bulk65535 was bimodal).
func TestBulkAtMTU65535NeedsNoTimer(t *testing.T) {
	for _, dir := range []string{"client sends", "server sends"} {
		t.Run(dir, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := newPair(t, pairOpts{link: memlink.Config{MTU: 65535}})
				c, s := p.connect(t, 80)
				from, to := c, s
				if dir == "server sends" {
					from, to = s, c
				}
				want := make([]byte, 32<<20)
				for i := range want {
					want[i] = byte(i*2654435761>>13) ^ byte(i>>11)
				}
				got := make(chan []byte, 1)
				go func() {
					buf := make([]byte, 0, len(want))
					chunk := make([]byte, 64<<10)
					for len(buf) < len(want) {
						n, err := to.Read(chunk)
						buf = append(buf, chunk[:n]...)
						if err != nil {
							break
						}
					}
					got <- buf
				}()
				start := time.Now()
				for off := 0; off < len(want); off += 64 << 10 {
					if _, err := from.Write(want[off : off+64<<10]); err != nil {
						t.Fatal(err)
					}
				}
				buf := <-got
				took := time.Since(start)
				if !bytes.Equal(buf, want) {
					t.Fatalf("received %d bytes, not the %d sent", len(buf), len(want))
				}
				t.Logf("32 MiB at MTU 65535: %v of virtual time", took)
				if took > 0 {
					t.Errorf("32 MiB took %v of virtual time, want 0: a timer (delayed ACK, persist) paced the transfer", took)
				}
			})
		})
	}
}

// At MTU 65535 the receiver keeps each full segment where the link put it
// (memlink lends its packet buffers, tcp/lend.go) and the reader copies it
// out from there: the bytes are not copied into the receive ring and out
// again. The receive ring then holds only the short segments (a 53-byte
// tails of the 64 KiB writes here) and never grows to a segment's size:
// 8 KiB at the end; taking the segments into it, as before, grew it to
// 256 KiB.
func TestBulkAtMTU65535SkipsTheReceiveRing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{link: memlink.Config{MTU: 65535}})
		c, s := p.connect(t, 80)
		want := make([]byte, 8<<20)
		for i := range want {
			want[i] = byte(i*2654435761>>13) ^ byte(i>>11)
		}
		got := make(chan []byte, 1)
		most := 0 // the most memory the receiver's buffers held
		go func() {
			buf := make([]byte, 0, len(want))
			chunk := make([]byte, 64<<10)
			for len(buf) < len(want) {
				most = max(most, s.Info().Memory)
				n, err := s.Read(chunk)
				buf = append(buf, chunk[:n]...)
				if err != nil {
					break
				}
			}
			got <- buf
		}()
		for off := 0; off < len(want); off += 64 << 10 {
			if _, err := c.Write(want[off : off+64<<10]); err != nil {
				t.Fatal(err)
			}
		}
		if buf := <-got; !bytes.Equal(buf, want) {
			t.Fatalf("received %d bytes, not the %d sent", len(buf), len(want))
		}
		info := s.Info()
		t.Logf("receiver: buffers at most %d bytes, at the end %d; segments in %d", most, info.Memory, info.SegsIn)
		if info.Memory >= 32<<10 {
			t.Errorf("the receiver's buffers hold %d bytes after everything was read, want under 32 KiB (half a segment): the segments went through the receive ring", info.Memory)
		}
	})
}

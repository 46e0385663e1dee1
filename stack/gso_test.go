package stack

import (
	"bytes"
	"context"
	"io"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/synack/synack/link/memlink"
	"github.com/synack/synack/tcp"
)

// Over a link that segments (link.SegmentOffloader: memlink's GSO), the
// sender hands it super-segments with the checksum left partial; the link
// cuts them, each segment meeting the link's loss on its own, and the
// stream arrives intact. OutSegs counts what the wire carried. Without the
// link's GSO nothing changes: no super-segment.
func TestGSOOverMemlink(t *testing.T) {
	for _, gso := range []int{0, 65535} {
		synctest.Test(t, func(t *testing.T) {
			ea, eb := memlink.Pipe(memlink.Config{GSO: gso, Seed: 7, AB: memlink.Impairments{Loss: 0.01, Delay: time.Millisecond}})
			a := New(Options{Rand: newSeeded(1), TCP: tcp.Config{SendBufferSize: 256 << 10}})
			b := New(Options{Rand: newSeeded(2)})
			defer a.Close()
			defer b.Close()
			if _, err := a.AddLink(ea, netip.PrefixFrom(addrA, 24)); err != nil {
				t.Fatal(err)
			}
			if _, err := b.AddLink(eb, netip.PrefixFrom(addrB, 24)); err != nil {
				t.Fatal(err)
			}
			l, err := b.ListenTCP(netip.AddrPortFrom(addrB, 80), 0)
			if err != nil {
				t.Fatal(err)
			}
			want := make([]byte, 2<<20)
			for i := range want {
				want[i] = byte(i*2654435761>>13) ^ byte(i>>11)
			}
			got := make(chan []byte, 1)
			go func() {
				s, err := l.Accept()
				if err != nil {
					got <- nil
					return
				}
				defer s.Close()
				buf, _ := io.ReadAll(s)
				got <- buf
			}()
			c, err := a.DialTCP(context.Background(), netip.AddrPortFrom(addrB, 80))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Write(want); err != nil {
				t.Fatal(err)
			}
			c.Close()
			if buf := <-got; !bytes.Equal(buf, want) {
				t.Fatalf("gso %d: received %d bytes, not the %d sent", gso, len(buf), len(want))
			}
			// The close goes on after the bytes are in (the server's FIN and
			// its ACK): let the bubble settle so both counts are of one moment.
			synctest.Wait()
			st := ea.Stats()
			out := a.Counters().TCP.OutSegs
			t.Logf("gso %d: %d super-segments, %d segments on the wire (%d lost), OutSegs %d, retransmitted %d",
				gso, st.GSOSplit, st.Sent, st.DroppedLoss, out, a.Counters().TCP.RetransSegs)
			if gso == 0 && st.GSOSplit != 0 || gso > 0 && st.GSOSplit == 0 {
				t.Fatalf("gso %d: %d super-segments", gso, st.GSOSplit)
			}
			if gso > 0 && st.DroppedLoss == 0 {
				t.Fatal("no segment lost: the test repairs nothing")
			}
			if out != st.Sent {
				t.Fatalf("gso %d: OutSegs %d, the link sent %d segments", gso, out, st.Sent)
			}
		})
	}
}

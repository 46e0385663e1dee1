package stack

import (
	"flag"
	"fmt"
	"io"
	"net/netip"
	"runtime"
	"testing"
	"testing/synctest"
	"time"

	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/tcp"
	"github.com/synack/synack/wire"
)

// The figures of BENCHMARKS.md, "Memory under attack (issue 12)": heap per
// connection for four kinds of peer, measured as Go's live heap after a
// full collection. Not a test: run with -memfigures (see BENCHMARKS.md).
// This file uses only what the stack had before issue 12 (commit 3c6d32d),
// so that the same program measures before and after.

var (
	memFigures  = flag.Bool("memfigures", false, "print the heap per connection figures of BENCHMARKS.md (issue 12)")
	memFiguresN = flag.Int("memfigures.n", 200, "connections per figure (before issue 12 an out-of-order-attacked one holds 1 MiB)")
)

func figHeap() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// figDrain forgets what the stack sent.
func (r *rawPeer) figDrain() {
	synctest.Wait()
	for {
		select {
		case <-r.got:
		default:
			return
		}
	}
}

// figOpen completes a handshake from addrB:port to the listener on
// addrA:80 (window scaling and SACK offered) and returns the stack's ISS.
func (r *rawPeer) figOpen(port uint16) seqnum.Value {
	from, to := netip.AddrPortFrom(addrB, port), netip.AddrPortFrom(addrA, 80)
	r.send(tcpPacket(from, to, wire.TCPHeader{Seq: 1000, Flags: wire.SYN, Window: 65535,
		Options: wire.TCPOptions{HasMSS: true, MSS: 1460, HasWindowScale: true, WindowScale: 7, SACKPermitted: true}}, nil))
	p := r.recv()
	if p == nil {
		r.t.Fatal("no SYN,ACK")
	}
	h, _, err := wire.ParseTCP(p.Payload, p.Src, p.Dst, true)
	if err != nil || h.Flags != wire.SYN|wire.ACK {
		r.t.Fatalf("want SYN,ACK, got %v %v", h, err)
	}
	r.send(tcpPacket(from, to, wire.TCPHeader{Seq: 1001, Ack: h.Seq + 1, Flags: wire.ACK, Window: 512}, nil))
	return h.Seq
}

// figConns opens n connections, accepted and held by the application,
// and returns them with the stack's ISS of each.
func figConns(t *testing.T, r *rawPeer, n int) ([]*TCPConn, []seqnum.Value) {
	l, err := r.s.ListenTCP(netip.AddrPortFrom(addrA, 80), n)
	if err != nil {
		t.Fatal(err)
	}
	iss := make([]seqnum.Value, n)
	cs := make([]*TCPConn, n)
	for i := range n {
		iss[i] = r.figOpen(uint16(10000 + i))
		if cs[i], err = l.AcceptTCP(); err != nil {
			t.Fatal(err)
		}
		r.figDrain()
	}
	return cs, iss
}

// figClose resets the connections one by one, taking what the stack
// sends, so that nothing is left blocked on the peer's queue when the
// bubble ends.
func figClose(r *rawPeer, cs []*TCPConn) {
	for _, c := range cs {
		c.SetLinger(0)
		c.Close()
		r.figDrain()
	}
}

func TestMemoryFigures(t *testing.T) {
	if !*memFigures {
		t.Skip("figures for BENCHMARKS.md: run with -memfigures")
	}
	n := *memFiguresN
	per := func(a, b int64, k int) int64 { return (b - a) / int64(k) }
	report := func(what string, v int64) {
		fmt.Printf("%-44s %8d B per connection (%d connections)\n", what, v, n)
	}
	t.Run("idle+ooo", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newRawPeer(t)
			base := figHeap()
			cs, iss := figConns(t, r, n)
			idle := figHeap()
			report("idle (accepted, nothing sent)", per(base, idle, n))
			for i := range n {
				from, to := netip.AddrPortFrom(addrB, uint16(10000+i)), netip.AddrPortFrom(addrA, 80)
				r.send(tcpPacket(from, to, wire.TCPHeader{Seq: 1001 + 1_000_000, Ack: iss[i] + 1, Flags: wire.ACK, Window: 512}, []byte{'x'}))
				r.figDrain()
			}
			report("out-of-order-attacked (1 byte at +1,000,000)", per(base, figHeap(), n))
			figClose(r, cs)
		})
	})
	t.Run("drained", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newRawPeer(t)
			base := figHeap()
			cs, iss := figConns(t, r, n)
			const burst = 256 << 10
			buf := make([]byte, burst)
			seg := make([]byte, 1000)
			for i, c := range cs {
				from, to := netip.AddrPortFrom(addrB, uint16(10000+i)), netip.AddrPortFrom(addrA, 80)
				for off := 0; off < burst; off += len(seg) {
					k := min(len(seg), burst-off)
					r.send(tcpPacket(from, to, wire.TCPHeader{Seq: seqnum.Value(1001 + off), Ack: iss[i] + 1, Flags: wire.ACK, Window: 512}, seg[:k]))
					if off%(50*len(seg)) == 0 {
						r.figDrain()
					}
				}
				r.figDrain()
				if _, err := io.ReadFull(c, buf); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(2 * time.Second) // quiet
			r.figDrain()
			report("drained after a 256 KiB burst, 2 s quiet", per(base, figHeap(), n))
			figClose(r, cs)
		})
	})
	t.Run("never-reading", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newRawPeer(t)
			base := figHeap()
			cs, _ := figConns(t, r, n)
			const wrote = 64 << 10
			done := make(chan struct{}, n)
			for _, c := range cs {
				go func() {
					c.SetWriteDeadline(time.Now().Add(time.Second))
					c.Write(make([]byte, wrote))
					done <- struct{}{}
				}()
			}
			for range n {
				r.figDrain()
				<-done
			}
			time.Sleep(2 * time.Second)
			r.figDrain()
			report("never-reading peer (64 KiB written, unacked)", per(base, figHeap(), n))
			figClose(r, cs)
		})
	})
}

// TestMemoryFiguresSendTune measures send auto-tuning (tcp/sndtune.go)
// for BENCHMARKS.md: n connections between two stacks on a memlink pipe,
// each writes a 1 MiB burst that the other end does not read at first
// (what Write took is held), then reads to the end; then 2 s of quiet. Heap per connection pair (both ends), with the send buffer
// auto-tuned and with it fixed at 1 MiB (NoAutoTune, as before).
func TestMemoryFiguresSendTune(t *testing.T) {
	if !*memFigures {
		t.Skip("figures for BENCHMARKS.md: run with -memfigures")
	}
	n := *memFiguresN
	for _, fixed := range []bool{true, false} {
		name := map[bool]string{true: "fixed", false: "auto"}[fixed]
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				o := Options{TCP: tcp.Config{NoAutoTune: fixed}}
				p := newPair(t, pairOpts{a: o, b: o})
				zero := make([]byte, 1<<20) // the application's data, shared: not counted
				base := figHeap()
				type conn struct{ c, s *TCPConn }
				cs := make([]conn, n)
				for i := range cs {
					cs[i].c, cs[i].s = p.connect(t, uint16(1000+i))
				}
				idle := figHeap()
				const burst = 1 << 20
				// First the application writes its burst while the other
				// end does not read yet: what Write takes is held.
				for _, x := range cs {
					x.c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
					n, _ := x.c.Write(zero[:burst])
					x.c.SetWriteDeadline(time.Time{})
					go func() {
						if _, err := x.c.Write(zero[n:burst]); err != nil {
							t.Error(err)
						}
					}()
				}
				time.Sleep(200 * time.Millisecond)
				held := figHeap()
				most := 0
				for _, x := range cs {
					done := make(chan error)
					go func() {
						_, err := io.CopyN(io.Discard, x.s, burst)
						done <- err
					}()
					most = max(most, x.c.WriteBufferSize())
					if err := <-done; err != nil {
						t.Fatal(err)
					}
				}
				time.Sleep(2 * time.Second)
				fmt.Printf("send buffer %-5s: idle %7d B, 1 MiB burst written and not yet read %7d B, read to the end and 2 s quiet %7d B per pair (%d pairs); send buffer up to %d B\n",
					name, (idle-base)/int64(n), (held-base)/int64(n), (figHeap()-base)/int64(n), n, most)
				for _, x := range cs {
					x.c.Close()
					x.s.Close()
				}
			})
		})
	}
}

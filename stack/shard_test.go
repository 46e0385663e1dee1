package stack

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/synack/synack/link/memlink"
	"github.com/synack/synack/tcp"
	"github.com/synack/synack/wire"
)

// One peer's connections spread evenly over the shards, and where each
// lands depends on the stack's key, so a peer cannot aim them all at one.
func TestShardOfSpreads(t *testing.T) {
	const shards, n = 4, 8000
	a := New(Options{Shards: shards, Rand: newSeeded(1)})
	defer a.Close()
	b := New(Options{Shards: shards, Rand: newSeeded(2)})
	defer b.Close()
	if len(a.shards) != shards {
		t.Fatalf("%d shards, want %d", len(a.shards), shards)
	}
	counts := make([]int, shards)
	differ := 0
	for i := range n {
		id := tcp.Tuple{
			Local:  netip.AddrPortFrom(addrA, 80),
			Remote: netip.AddrPortFrom(addrB, uint16(1024+i)),
		}
		sh := a.shardOf(id)
		counts[sh.idx]++
		if b.shardOf(id).idx != sh.idx {
			differ++
		}
	}
	// Each shard expects n/shards = 2000, standard deviation about 39.
	for i, c := range counts {
		if c < n/shards-300 || c > n/shards+300 {
			t.Errorf("shard %d has %d of %d tuples from one peer, want about %d: %v", i, c, n, n/shards, counts)
		}
	}
	// Another key puts about 3/4 of them elsewhere.
	if differ < n/2 {
		t.Errorf("a stack with another key puts only %d of %d tuples in another shard", differ, n)
	}
}

// tcpTupleOf, which splits a link's batch by shard, finds the tuple
// deliver finds, in both families, and leaves what is not a plain TCP
// segment to the stack lock.
func TestTCPTupleOf(t *testing.T) {
	h := wire.TCPHeader{SrcPort: 40000, DstPort: 80, Seq: 1, Flags: wire.SYN, Window: 1000}
	for _, fam := range []struct {
		src, dst netip.Addr
	}{{addrB, addrA}, {addrB6, addrA6}} {
		var b []byte
		if fam.src.Is4() {
			b = wire.AppendIPv4(nil, &wire.IPv4Header{TTL: 64, Protocol: wire.ProtocolTCP, Src: fam.src, Dst: fam.dst}, h.HeaderLen())
		} else {
			b = wire.AppendIPv6(nil, &wire.IPv6Header{HopLimit: 64, NextHeader: wire.ProtocolTCP, Src: fam.src, Dst: fam.dst}, h.HeaderLen())
		}
		b = wire.AppendTCP(b, &h, nil, fam.src, fam.dst)
		id, ok := tcpTupleOf(b)
		want := tcp.Tuple{Local: netip.AddrPortFrom(fam.dst, 80), Remote: netip.AddrPortFrom(fam.src, 40000)}
		if !ok || id != want {
			t.Errorf("%v: tcpTupleOf = %v, %v; want %v", fam.src, id, ok, want)
		}
		p, err := wire.ParseIP(b)
		if err != nil {
			t.Fatal(err)
		}
		if p.Src != fam.src || p.Dst != fam.dst {
			t.Errorf("ParseIP addresses %v -> %v, want %v -> %v", p.Src, p.Dst, fam.src, fam.dst)
		}
	}
	udp := wire.AppendIPv4(nil, &wire.IPv4Header{TTL: 64, Protocol: wire.ProtocolUDP, Src: addrB, Dst: addrA}, 28)
	udp = append(udp, make([]byte, 28)...)
	frag := wire.AppendIPv4(nil, &wire.IPv4Header{TTL: 64, Protocol: wire.ProtocolTCP, Flags: wire.IPv4MoreFragments, Src: addrB, Dst: addrA}, 24)
	frag = append(frag, make([]byte, 24)...)
	for name, b := range map[string][]byte{"UDP": udp, "fragment": frag, "short": {0x45, 0, 0}, "empty": nil} {
		if id, ok := tcpTupleOf(b); ok {
			t.Errorf("%s: tcpTupleOf = %v, true; want false", name, id)
		}
	}
}

// Two shards busy at once, on both stacks: bulk transfers and connection
// churn run together over a memlink pipe, whose two directions deliver
// from two goroutines. Run with -race (CI does) this is the test that the
// shards share nothing unlocked; without it, it still checks every byte
// and that everything ends CLOSED.
func TestShardsBusy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{
			link: memlink.Config{AB: memlink.Impairments{QueueLimit: 4096}, BA: memlink.Impairments{QueueLimit: 4096}},
			a:    Options{Shards: 2},
			b:    Options{Shards: 2},
		})
		l, err := p.b.ListenTCP(netip.AddrPortFrom(addrB, 80), 256)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		defer wg.Wait()
		defer l.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				s, err := l.AcceptTCP()
				if err != nil {
					return
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					io.Copy(s, s)
					s.Close()
				}()
			}
		}()

		// Bulk connections until each of the client's shards holds at
		// least two of them.
		var bulk []*TCPConn
		perShard := make([]int, 2)
		for len(bulk) < 64 && (perShard[0] < 2 || perShard[1] < 2) {
			c, err := p.a.DialTCP(context.Background(), netip.AddrPortFrom(addrB, 80))
			if err != nil {
				t.Fatal(err)
			}
			bulk = append(bulk, c)
			perShard[c.sh.idx]++
		}
		if perShard[0] < 2 || perShard[1] < 2 {
			t.Fatalf("after %d connections, %v per shard", len(bulk), perShard)
		}

		errs := make(chan error, len(bulk)+4)
		for i, c := range bulk {
			go func() {
				msg := make([]byte, 256<<10)
				rand.NewChaCha8([32]byte{byte(i)}).Read(msg)
				go c.Write(msg)
				got := make([]byte, len(msg))
				if _, err := io.ReadFull(c, got); err != nil {
					errs <- fmt.Errorf("bulk %d: %v", i, err)
					return
				}
				if !bytes.Equal(got, msg) {
					errs <- fmt.Errorf("bulk %d: echo differs", i)
					return
				}
				errs <- c.Close()
			}()
		}
		const churners, rounds = 4, 40
		for w := range churners {
			go func() {
				for r := range rounds {
					c, err := p.a.DialTCP(context.Background(), netip.AddrPortFrom(addrB, 80))
					if err != nil {
						errs <- fmt.Errorf("churn %d.%d: %v", w, r, err)
						return
					}
					b := []byte{byte(r)}
					if _, err := c.Write(b); err != nil {
						errs <- fmt.Errorf("churn %d.%d: %v", w, r, err)
						return
					}
					if _, err := io.ReadFull(c, b); err != nil || b[0] != byte(r) {
						errs <- fmt.Errorf("churn %d.%d: echo %v, %v", w, r, b, err)
						return
					}
					c.Close()
				}
				errs <- nil
			}()
		}
		for range len(bulk) + churners {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
		if got, want := p.a.Counters().TCP.ActiveOpens, uint64(len(bulk)+churners*rounds); got != want {
			t.Errorf("client ActiveOpens %d, want %d", got, want)
		}
		l.Close()
		time.Sleep(2*tcp.DefaultMSL + 10*time.Second)
		if a, b := len(p.a.Connections()), len(p.b.Connections()); a+b != 0 {
			t.Errorf("connections left: client %d (%v), server %d (%v)", a, p.a.StateCounts(), b, p.b.StateCounts())
		}
		if m := p.a.Memory().InUse + p.b.Memory().InUse; m != 0 {
			t.Errorf("%d bytes of buffers still counted after every connection ended", m)
		}
	})
}

// Dials at once from both shards share the ephemeral range without ever
// giving two connections one 4-tuple: each candidate is checked and taken
// under its shard's lock. With 64 ports, 64 concurrent dials all succeed
// on distinct ports, and the 65th finds none.
func TestShardsDialUnique(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ports = 64
		p := newPair(t, pairOpts{
			a: Options{Shards: 2, FirstEphemeral: 40000, LastEphemeral: 40000 + ports - 1},
			b: Options{Shards: 2},
		})
		l, err := p.b.ListenTCP(netip.AddrPortFrom(addrB, 80), ports)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		conns := make(chan *TCPConn, ports)
		errs := make(chan error, ports)
		for range ports {
			go func() {
				c, err := p.a.DialTCP(context.Background(), netip.AddrPortFrom(addrB, 80))
				if err != nil {
					errs <- err
					return
				}
				conns <- c
			}()
		}
		seen := make(map[uint16]bool)
		perShard := make([]int, 2)
		for range ports {
			select {
			case err := <-errs:
				t.Fatalf("dial: %v", err)
			case c := <-conns:
				port := c.Tuple().Local.Port()
				if seen[port] {
					t.Fatalf("port %d given to two connections", port)
				}
				seen[port] = true
				perShard[c.sh.idx]++
			}
		}
		if perShard[0] == 0 || perShard[1] == 0 {
			t.Errorf("connections per shard %v: the dials did not use both shards", perShard)
		}
		_, err = p.a.DialTCP(context.Background(), netip.AddrPortFrom(addrB, 80))
		wantOpError(t, err, "dial", syscall.EADDRNOTAVAIL)
	})
}

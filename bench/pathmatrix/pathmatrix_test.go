package pathmatrix

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"

	"github.com/synack/synack/link/memlink"
)

// requireRoot skips a test of the kernel's implementations without root
// (or off Linux), unless CI=true: CI runs as root and must run them.
func requireRoot(t *testing.T) {
	t.Helper()
	err := RootError()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%v; CI=true, so this is a failure, not a skip", err)
	}
	t.Skip(err)
}

// leftNamespaces lists this process's namespaces still named in /run/netns.
func leftNamespaces() []string {
	ents, _ := os.ReadDir("/run/netns")
	var out []string
	prefix := fmt.Sprintf("%s%d-", NSPrefix, os.Getpid())
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestCells(t *testing.T) {
	all, err := Matrix(nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := len(RTTs) * len(Rates) * len(impairments); len(all) != want {
		t.Fatalf("%d cells, want %d", len(all), want)
	}
	some, err := Matrix([]time.Duration{20 * time.Millisecond}, []int64{100e6}, []string{"loss 1%", "reorder5%"})
	if err != nil {
		t.Fatal(err)
	}
	if len(some) != 2 || some[0].String() != "20ms 100M loss 1%" || some[1].String() != "20ms 100M reorder 5%" {
		t.Fatalf("got %v", some)
	}
	if _, err := Matrix(nil, nil, []string{"loss 3%"}); err == nil {
		t.Fatal("an unknown impairment was accepted")
	}
	c := some[0]
	// 100 Mbit/s * 20 ms = 250,000 bytes = 167 packets of 1500.
	if c.BDP() != 250000 || c.QueuePackets() != 167 {
		t.Fatalf("BDP %d, queue %d packets", c.BDP(), c.QueuePackets())
	}
	imp := c.Impairments()
	if imp.Delay != 10*time.Millisecond || imp.Loss != 0.01 || imp.Rate != 100e6 || imp.QueueLimit != 167 {
		t.Fatalf("impairments %+v", imp)
	}
	for _, c := range all {
		if s := c.Size(); s < 1<<20 || s > 64<<20 || s&(s-1) != 0 {
			t.Errorf("%v: size %d", c, s)
		}
	}
}

// TestInteropSynackGVisor puts a synack stack and a gVisor stack at the
// two ends of one lossy, reordering link, so an independent TCP is always
// at the other end: each side dials in turn, both send at once (64 KiB and
// 1 MiB each way), and each checks the sha256 of what it got.
func TestInteropSynackGVisor(t *testing.T) {
	imp := memlink.Impairments{Loss: 0.02, Reorder: 0.01, Delay: 5 * time.Millisecond}
	cell := Cell{RTT: 10 * time.Millisecond} // for the buffer sizes only
	seed := int64(0)
	for _, synackDials := range []bool{true, false} {
		for _, size := range []int64{64 << 10, 1 << 20} {
			seed++
			name := fmt.Sprintf("gvisor-dials/%dKiB", size>>10)
			if synackDials {
				name = fmt.Sprintf("synack-dials/%dKiB", size>>10)
			}
			t.Run(name, func(t *testing.T) {
				a, b := memlink.Pipe(memlink.Config{MTU: MTU, Seed: seed, AB: imp, BA: imp})
				defer a.Close()
				sa, err := newSynack(cell, a, senderAddr, "", "")
				if err != nil {
					t.Fatal(err)
				}
				defer sa.Close()
				gl := NewGVisorLink(MTU)
				defer gl.Close()
				gv, err := newGVisor(cell, gl.Endpoint(), receiverAddr, "reno")
				if err != nil {
					t.Fatal(err)
				}
				defer func() { gv.Close(); gv.Wait() }()
				splice(gl, b)

				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				var ln net.Listener
				var dial func() (net.Conn, error)
				if synackDials {
					ln, err = gonet.ListenTCP(gv, gvFullAddr(receiverAddr), ipv4.ProtocolNumber)
					dial = func() (net.Conn, error) { return sa.DialContext(ctx, "tcp", hostPort(receiverAddr)) }
				} else {
					ln, err = sa.Listen(ctx, "tcp", hostPort(senderAddr))
					dial = func() (net.Conn, error) {
						return gonet.DialContextTCP(ctx, gv, gvFullAddr(senderAddr), ipv4.ProtocolNumber)
					}
				}
				if err != nil {
					t.Fatal(err)
				}
				defer ln.Close()
				accepted := make(chan net.Conn, 1)
				go func() {
					c, err := ln.Accept()
					if err != nil {
						t.Errorf("accept: %v", err)
						c = nil
					}
					accepted <- c
				}()
				dc, err := dial()
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				defer dc.Close()
				ac := <-accepted
				if ac == nil {
					return
				}
				defer ac.Close()
				// Past the limit, closing the conns ends the exchange.
				stop := context.AfterFunc(ctx, func() { dc.Close(); ac.Close() })
				defer stop()

				var wg sync.WaitGroup
				for i, c := range []net.Conn{dc, ac} {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if err := exchange(c, seed*10+int64(i), seed*10+int64(1-i), size); err != nil {
							t.Errorf("%s side: %v", []string{"dialing", "accepting"}[i], err)
						}
					}()
				}
				wg.Wait()
				if ctx.Err() != nil {
					t.Fatalf("not done in 60 s")
				}
			})
		}
	}
}

// exchange sends size bytes of the payload of seed sendSeed while reading
// the peer's size bytes of recvSeed to EOF, then checks them.
func exchange(c net.Conn, sendSeed, recvSeed, size int64) error {
	werr := make(chan error, 1)
	go func() {
		p := payload(sendSeed)
		for n := int64(0); n < size; n += int64(len(p)) {
			if _, err := c.Write(p[:min(int64(len(p)), size-n)]); err != nil {
				werr <- fmt.Errorf("write: %w", err)
				return
			}
		}
		werr <- c.(interface{ CloseWrite() error }).CloseWrite()
	}()
	h := sha256.New()
	n, rerr := io.Copy(h, c)
	if err := <-werr; err != nil {
		return err
	}
	if rerr != nil {
		return fmt.Errorf("read after %d bytes: %w", n, rerr)
	}
	want := expectedSum(payload(recvSeed), size)
	if n != size || !bytes.Equal(h.Sum(nil), want[:]) {
		return fmt.Errorf("%w: got %d bytes, want %d", ErrCorrupt, n, size)
	}
	return nil
}

// TestMatrixSmoke runs the matrix runner on one small lossy cell for every
// implementation: each transfer must finish with intact bytes, and the
// table must show it. Nothing is asserted about speed.
func TestMatrixSmoke(t *testing.T) {
	cell := Cell{RTT: 10 * time.Millisecond, Rate: 100e6, Loss: 0.01}
	for _, impl := range Impls {
		t.Run(string(impl), func(t *testing.T) {
			if impl.NeedsRoot() {
				requireRoot(t)
			}
			rows := RunMatrix(Options{Cells: []Cell{cell}, Impls: []Impl{impl}, Seed: 7, Limit: 60 * time.Second, Size: 256 << 10})
			if len(rows) != 1 {
				t.Fatalf("%d rows", len(rows))
			}
			r := rows[0]
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			for _, res := range []Result{r.Bulk, r.OneMiB} {
				if !res.Done || res.Received != res.Size {
					t.Fatalf("%d-byte transfer not done: %+v", res.Size, res)
				}
			}
			if r.Bulk.Size != 256<<10 || r.OneMiB.Size != 1<<20 {
				t.Fatalf("sizes %d and %d", r.Bulk.Size, r.OneMiB.Size)
			}
			if r.Bulk.Retrans < 0 {
				t.Errorf("no retransmission count")
			}
			// Every receiver but gVisor's sends D-SACKs, and every
			// sender counts them; between two gVisor stacks the count
			// must say "—", not 0.
			gv := impl == GVisorReno || impl == GVisorCubic
			if (r.Bulk.Spurious >= 0) == gv {
				t.Errorf("D-SACK count %d (%s)", r.Bulk.Spurious, r.Bulk.SpuriousWhat)
			}
			// Only a synack sender accounts for its own recovery.
			if synackSends := impl == Synack || impl == SynackDupThresh || impl == SynackBBR || impl == SynackNewReno || impl == SynackLinux; (r.Bulk.Recovery != nil) != synackSends {
				t.Errorf("recovery account %+v", r.Bulk.Recovery)
			}
			var out strings.Builder
			Markdown(&out, rows)
			if !strings.Contains(out.String(), "| "+cell.String()+" | 256 KiB | "+string(impl)+" | ") {
				t.Errorf("table lacks the row:\n%s", out.String())
			}
			if impl.NeedsRoot() {
				if left := leftNamespaces(); len(left) > 0 {
					t.Errorf("namespaces left behind: %v", left)
				}
			}
		})
	}
}

// TestKernelRunOutOfTime checks the time limit on the relay path: a
// transfer that cannot finish is reported as not done, promptly, and its
// namespaces (with their TUN devices) are gone afterwards.
func TestKernelRunOutOfTime(t *testing.T) {
	requireRoot(t)
	cell := Cell{RTT: 20 * time.Millisecond, Rate: 100e6, Loss: 0.20}
	start := time.Now()
	res, err := Run(LinuxCubic, cell, 64<<20, 1, 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if res.Done {
		t.Fatalf("64 MiB at 20%% loss done in %v", res.Elapsed)
	}
	if el := time.Since(start); el > 20*time.Second {
		t.Errorf("a 500 ms limit took %v", el)
	}
	if left := leftNamespaces(); len(left) > 0 {
		t.Errorf("namespaces left behind: %v", left)
	}
}

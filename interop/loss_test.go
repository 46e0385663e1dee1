//go:build linux

package interop

import (
	"context"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/synack/synack/link"
)

const lossSize = 16 << 20

// dropper drops a seeded fraction of the packets the device delivers,
// that is of what the kernel sent: loss on the kernel's side of the link,
// for kernels without netem.
type dropper struct {
	link.Endpoint
	rate    float64
	rng     *rand.Rand // used only by the delivering goroutine
	dropped atomic.Uint64
	passed  atomic.Uint64
}

func (d *dropper) Attach(disp link.Dispatcher) {
	d.Endpoint.Attach(link.DispatcherFunc(func(p []byte) {
		if d.rng.Float64() < d.rate {
			d.dropped.Add(1)
			return
		}
		d.passed.Add(1)
		disp.DeliverPacket(p)
	}))
}

// kernelRetransmits reads tcpi_total_retrans of a kernel socket.
func kernelRetransmits(t *testing.T, c *net.TCPConn) uint32 {
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var info *unix.TCPInfo
	var serr error
	rc.Control(func(fd uintptr) { info, serr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) })
	if serr != nil {
		t.Fatalf("TCP_INFO: %v", serr)
	}
	return info.Total_retrans
}

// sendWithLoss has the kernel send lossSize bytes to synack and checks
// they all arrive, in order.
func sendWithLoss(t *testing.T, e *env) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kc, sc := e.connect(ctx, true)
	defer kc.Close()
	defer sc.Close()
	deadline := time.Now().Add(90 * time.Second)
	kc.SetDeadline(deadline)
	sc.SetDeadline(deadline)

	start := time.Now()
	var sent result
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sent.n, sent.sum, sent.err = hashedCopy(kc, stream(3, lossSize))
		if sent.err == nil {
			sent.err = kc.CloseWrite()
		}
	}()
	var got result
	got.n, got.sum, got.err = hashedCopy(discard{}, sc)
	wg.Wait()
	elapsed := time.Since(start)
	if sent.err != nil || got.err != nil {
		t.Fatalf("kernel send: %v; synack receive: %v", sent.err, got.err)
	}
	if got.n != lossSize || got.sum != sent.sum {
		t.Fatalf("synack received %d bytes (sha256 %x), kernel sent %d (sha256 %x)", got.n, got.sum[:8], sent.n, sent.sum[:8])
	}
	rtx := kernelRetransmits(t, kc)
	if rtx == 0 {
		t.Errorf("kernel retransmitted nothing: was anything lost?")
	}
	t.Logf("%d MiB with loss on the kernel's side in %v (%.0f MB/s); kernel retransmitted %d segments",
		lossSize>>20, elapsed.Round(time.Millisecond), float64(lossSize)/elapsed.Seconds()/1e6, rtx)
}

// discard is io.Discard without ReadFrom, so the copy reads in the
// caller's chunks like any reader would.
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// TestKernelSendsWithLoss: with 5% of the kernel's packets lost, every byte
// it sends still reaches synack. The netem variant needs sch_netem in the
// kernel and skips without it; the drop variant loses the same share of
// packets as they come out of the TUN device, which is the same thing seen
// from synack, and always runs.
func TestKernelSendsWithLoss(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.name+"/netem", func(t *testing.T) {
			e := newEnv(t, fam)
			q := netlink.NewNetem(netlink.QdiscAttrs{
				LinkIndex: e.dev.Index(),
				Handle:    netlink.MakeHandle(1, 0),
				Parent:    netlink.HANDLE_ROOT,
			}, netlink.NetemQdiscAttrs{Loss: 5})
			if err := e.dev.Netlink().QdiscAdd(q); err != nil {
				t.Skipf("netem is not available in this kernel (CONFIG_NET_SCH_NETEM): adding the qdisc: %v", err)
			}
			sendWithLoss(t, e)
		})
		t.Run(fam.name+"/drop-at-tun", func(t *testing.T) {
			d := &dropper{rate: 0.05, rng: rand.New(rand.NewPCG(4, uint64(len(fam.name))))}
			e := newEnv(t, fam, withLink(func(ep link.Endpoint) link.Endpoint {
				d.Endpoint = ep
				return d
			}))
			sendWithLoss(t, e)
			dropped, passed := d.dropped.Load(), d.passed.Load()
			t.Logf("dropped %d of %d packets from the kernel (%.1f%%)", dropped, dropped+passed, 100*float64(dropped)/float64(dropped+passed))
		})
	}
}

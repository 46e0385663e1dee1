package fairness

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/synack/synack/bench/pathmatrix"
	"github.com/synack/synack/link/memlink"
	"github.com/synack/synack/stack"
	"github.com/synack/synack/tcp"
)

// kernelAddr and synackSenderAddr are the two senders of the mixed pair,
// side by side in front of the bottleneck; the receiver is receiverAddr.
var (
	kernelAddr       = netip.MustParsePrefix("198.18.0.1/24")
	synackSenderAddr = netip.MustParsePrefix("198.18.0.3/24")
)

// RunMixedPair runs a synack CUBIC flow (flow 1) beside a Linux CUBIC
// flow (flow 2) through one bottleneck for d of real time. The kernel
// sits in a namespace of its own behind a TUN device (pathmatrix's
// KernelHost), the synack sender is a stack in this process; both are
// ports of a memlink switch without impairments (the LAN in front of the
// bottleneck), whose third port is spliced to one end of the cell's
// path. At the path's far end one synack stack receives both flows. Real
// time on a shared machine: the synack flow competes for CPU with the
// relay and the rest of the machine, so read it beside the load.
func RunMixedPair(c pathmatrix.Cell, d time.Duration, seed int64) (res PairResult, err error) {
	res = PairResult{Cell: c, Names: [2]string{"cubic", "linux-cubic"}, Duration: d}
	kh, err := pathmatrix.NewKernelHost(c, kernelAddr)
	if err != nil {
		return res, err
	}
	defer kh.Close()
	sw := memlink.NewSwitch(memlink.Config{MTU: pathmatrix.MTU, Seed: seed})
	defer sw.Close()
	pa, pb := memlink.Pipe(c.Link(seed))
	defer pa.Close()
	pathmatrix.Splice(sw.Port(receiverAddr.Addr()), pa)
	pathmatrix.Splice(sw.Port(kernelAddr.Addr()), kh.Device())

	tc := tcp.Config{SendBufferSize: c.BufferSize(), ReceiveBufferSize: c.BufferSize()}
	snd := stack.New(stack.Options{TCP: tc})
	defer snd.Close()
	rcv := stack.New(stack.Options{TCP: tc})
	defer rcv.Close()
	if _, err := snd.AddLink(sw.Port(synackSenderAddr.Addr()), synackSenderAddr); err != nil {
		return res, err
	}
	if _, err := rcv.AddLink(pb, receiverAddr); err != nil {
		return res, err
	}
	ln, err := rcv.ListenTCP(netip.AddrPortFrom(receiverAddr.Addr(), pathmatrix.Port), 0)
	if err != nil {
		return res, err
	}
	defer ln.Close()

	// The receiver tells the flows apart by their source address.
	var (
		got  [2]atomic.Int64
		wg   sync.WaitGroup
		open closers
	)
	// Closing everything ends every goroutine: the writers fail, the
	// readers see EOF or an error, Accept fails.
	defer func() {
		ln.Close()
		open.closeAll()
		wg.Wait()
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 2 {
			a, err := ln.AcceptTCP()
			if err != nil {
				return
			}
			open.add(a)
			i := 0
			if a.RemoteAddr().(*net.TCPAddr).IP.Equal(kernelAddr.Addr().AsSlice()) {
				i = 1
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				io.Copy(counter{&got[i]}, a)
			}()
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sc, err := snd.DialTCP(ctx, netip.AddrPortFrom(receiverAddr.Addr(), pathmatrix.Port))
	if err != nil {
		return res, fmt.Errorf("synack dial: %w", err)
	}
	open.add(sc)
	kc, err := kh.Dial(ctx, receiverAddr.Addr(), "cubic")
	if err != nil {
		return res, fmt.Errorf("kernel dial: %w", err)
	}
	open.add(kc)
	for _, c := range []net.Conn{sc, kc} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 64<<10)
			for {
				if _, err := c.Write(buf); err != nil {
					return
				}
			}
		}()
	}
	time.Sleep(d / 2)
	half := [2]int64{got[0].Load(), got[1].Load()}
	time.Sleep(d - d/2)
	for i := range got {
		res.Bytes[i] = got[i].Load()
		res.Late[i] = res.Bytes[i] - half[i]
	}
	res.Retrans = [2]int64{int64(sc.Info().Retransmits), pathmatrix.KernelRetrans(kc)}
	return res, nil
}

// counter counts the bytes written through it.
type counter struct{ n *atomic.Int64 }

func (c counter) Write(p []byte) (int, error) { c.n.Add(int64(len(p))); return len(p), nil }

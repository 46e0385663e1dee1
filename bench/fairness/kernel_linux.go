package fairness

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/synack/synack/bench/pathmatrix"
)

// KernelSample is one second of a kernel flow seen from its sender:
// TCP_INFO's cwnd (segments) and smoothed RTT, and for bbr TCP_CC_INFO's
// bandwidth estimate and min RTT.
type KernelSample struct {
	Bytes  int64 // read by the receiver so far
	Cwnd   uint32
	RTT    time.Duration
	BW     float64 // bit/s (bbr only)
	MinRTT time.Duration
}

// RunKernelPair runs two Linux flows with congestion control cc from one
// namespace to another across pathmatrix's relay (cell c's rate, delay and
// one-BDP drop-tail queue) for d of real time, the second starting to send
// stagger after the first (both connect at the start, as in
// RunPairStaggered). It reports the flows as RunPairStaggered does, and
// each flow's state once a second in series.
func RunKernelPair(c pathmatrix.Cell, cc string, d, stagger time.Duration, seed int64) (res PairResult, series [2][]KernelSample, err error) {
	res = PairResult{Cell: c, Names: [2]string{"linux-" + cc, "linux-" + cc}, Duration: d}
	r, err := pathmatrix.NewRelay(c, seed)
	if err != nil {
		return res, series, err
	}
	defer r.Close()
	ln, err := r.Listen(cc)
	if err != nil {
		return res, series, err
	}
	var (
		got  [2]atomic.Int64
		wg   sync.WaitGroup
		open closers
	)
	defer func() {
		ln.Close()
		open.closeAll()
		wg.Wait()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var snd [2]net.Conn
	for i := range snd {
		if snd[i], err = r.Dial(ctx, cc); err != nil {
			return res, series, fmt.Errorf("dial %d: %w", i+1, err)
		}
		open.add(snd[i])
		// The accepted sockets come in dial order: the handshake of
		// the second starts after the first is established.
		a, err := ln.Accept()
		if err != nil {
			return res, series, fmt.Errorf("accept %d: %w", i+1, err)
		}
		open.add(a)
		wg.Add(1)
		go func() {
			defer wg.Done()
			io.Copy(counter{&got[i]}, a)
		}()
	}
	start := time.Now()
	for i, c := range snd {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == 1 && stagger > 0 {
				time.Sleep(stagger)
			}
			buf := make([]byte, 64<<10)
			for {
				if _, err := c.Write(buf); err != nil {
					return
				}
			}
		}()
	}
	var half [2]int64
	for s := 1; time.Duration(s)*time.Second <= d; s++ {
		time.Sleep(time.Until(start.Add(time.Duration(s) * time.Second)))
		for i := range snd {
			ks := kernelSample(snd[i])
			ks.Bytes = got[i].Load()
			series[i] = append(series[i], ks)
		}
		if time.Duration(s)*time.Second == d/2 {
			half = [2]int64{got[0].Load(), got[1].Load()}
		}
	}
	time.Sleep(time.Until(start.Add(d)))
	for i := range got {
		res.Bytes[i] = got[i].Load()
		res.Late[i] = res.Bytes[i] - half[i]
		res.Retrans[i] = pathmatrix.KernelRetrans(snd[i])
	}
	return res, series, nil
}

// kernelSample reads TCP_INFO and, for bbr, TCP_CC_INFO of a kernel socket.
func kernelSample(c net.Conn) KernelSample {
	var ks KernelSample
	sc, ok := c.(syscall.Conn)
	if !ok {
		return ks
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return ks
	}
	rc.Control(func(fd uintptr) {
		if info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			ks.Cwnd = info.Snd_cwnd
			ks.RTT = time.Duration(info.Rtt) * time.Microsecond
		}
		if bi, err := unix.GetsockoptTCPCCBBRInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_CC_INFO); err == nil {
			ks.BW = float64(uint64(bi.Bw_hi)<<32|uint64(bi.Bw_lo)) * 8
			ks.MinRTT = time.Duration(bi.Min_rtt) * time.Microsecond
		}
	})
	return ks
}

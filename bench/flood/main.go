// Command flood measures synack under a SYN flood: how many legitimate
// clients still connect, how long their handshakes take, and what the flood
// costs in memory.
//
//	cd bench
//	go run ./flood                        # part 1: in process over memlink
//	go run ./flood -tun    # part 2 as well: TUN + hping3 vs the Linux kernel (root)
//
// Part 1 puts a server stack on two memlink pipes: one to a client stack
// (1 ms each way), one to an "attacker" that writes spoofed SYNs (random
// sources in 198.18.0.0/15, random ports and sequence numbers) at a target
// rate, paced every millisecond on the real clock, or as fast as it can when
// it falls behind (the achieved rate is reported). While the flood runs,
// -clients handshakes are made by -workers concurrent dialers, each with a
// -dial-timeout; a dial that fails or times out counts as a failure.
// Handshake time is the DialTCP call. The server's heap is the process's
// Go heap (runtime.MemStats.HeapAlloc), links included (up to 4096 queued
// packets of 1.5 KB buffers each way on the attacker's link): before the
// flood (after a GC), the largest sample taken every 50 ms during it, and
// after it (after a GC, before the stacks close). Everything stops by itself: the flood lasts
// until the clients are done, at most -max-duration.
//
// Part 2 (-tun, Linux, root, hping3 installed)
// is in tun.go.
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/synack/synack/link"
	"github.com/synack/synack/link/memlink"
	"github.com/synack/synack/stack"
	"github.com/synack/synack/wire"
)

var (
	rates       = flag.String("rates", "100000,1000000", "spoofed SYNs per second to aim at (comma-separated)")
	clients     = flag.Int("clients", 1000, "legitimate handshakes to make during each flood")
	workers     = flag.Int("workers", 16, "concurrent legitimate dialers")
	dialTimeout = flag.Duration("dial-timeout", 10*time.Second, "a legitimate handshake slower than this fails")
	maxDuration = flag.Duration("max-duration", 60*time.Second, "longest flood")
	modes       = flag.String("cookies", "auto,off", "SYN cookie modes to run (auto, off, always)")
	tunFlag     = flag.Bool("tun", false, "also run part 2: TUN + hping3 against synack and the Linux kernel (root)")
	tunClients  = flag.Int("tun-clients", 1000, "part 2: legitimate connections")
	tunFlood    = flag.Duration("tun-flood", 60*time.Second, "part 2: longest hping3 flood (it also stops when the clients are done)")
	tunQueues   = flag.Int("tun-queues", runtime.NumCPU(), "part 2: TUN queues (IFF_MULTI_QUEUE), one reader each")
	tunOffload  = flag.Bool("tun-offload", true, "part 2: open the TUN device with the kernel's offloads (virtio-net header)")
	tunQLen     = flag.Int("tun-txqueuelen", 0, "part 2: the TUN interface's txqueuelen (0: link/tun's default, -1: the kernel's 500)")
	tunUring    = flag.Bool("tun-uring", true, "part 2: batch the TUN's reads and writes through io_uring (false: tun.Options.NoUring)")
	tunPrefix   = flag.String("tun-prefix", "synflood-", "part 2: the network namespace's name prefix (the process id follows); the TUN device is named after it (prefix without a trailing '-', then '0')")
	tunKernel   = flag.Bool("tun-kernel", true, "part 2: also flood the Linux kernel's listener (the comparison row)")
	cpuProfile  = flag.String("cpuprofile", "", "write a CPU profile of part 1's floods to `FILE`, and of part 2's synack flood to FILE.tun")
)

var (
	serverAddr = netip.MustParseAddr("198.18.0.2")
	clientAddr = netip.MustParseAddr("198.18.0.1")
	atkHop     = netip.MustParseAddr("198.18.1.2")
	floodNet   = netip.MustParsePrefix("198.18.0.0/15") // spoofed sources, never 198.18.0.1/2
)

func main() {
	flag.Parse()
	stopProfile := startProfile(*cpuProfile)
	var results []result
	for _, m := range strings.Split(*modes, ",") {
		mode, ok := map[string]stack.SynCookieMode{"auto": stack.SynCookiesAuto, "off": stack.SynCookiesOff, "always": stack.SynCookiesAlways}[m]
		if !ok {
			fmt.Fprintf(os.Stderr, "flood: unknown cookie mode %q\n", m)
			os.Exit(2)
		}
		for _, r := range strings.Split(*rates, ",") {
			var rate int
			if _, err := fmt.Sscan(r, &rate); err != nil || rate < 0 {
				fmt.Fprintf(os.Stderr, "flood: bad rate %q\n", r)
				os.Exit(2)
			}
			res, err := runMemlink(rate, mode)
			if err != nil {
				fmt.Fprintf(os.Stderr, "flood: %v\n", err)
				os.Exit(1)
			}
			results = append(results, res)
			fmt.Fprintf(os.Stderr, "done: %s\n", res.name)
		}
	}
	fmt.Printf("\n## Part 1: in process over memlink (%d legitimate handshakes, %d at a time, timeout %v; GOMAXPROCS %d)\n\n",
		*clients, *workers, *dialTimeout, runtime.GOMAXPROCS(0))
	printTable(results)
	stopProfile()
	if *tunFlag {
		if err := runTUN(); err != nil {
			fmt.Fprintf(os.Stderr, "flood: part 2: %v\n", err)
			os.Exit(1)
		}
	}
}

// result is one flood's outcome.
type result struct {
	name          string
	target        int     // SYNs/s aimed at
	offered       float64 // SYNs/s the attacker wrote
	delivered     float64 // SYNs/s that reached the server (after the link's queue)
	ok, total     int
	p50, p99, max time.Duration
	heapBefore    uint64
	heapPeak      uint64
	heapAfter     uint64
	dur           time.Duration
	counters      stack.TCPCounters
	synQMax       int
}

func printTable(rs []result) {
	fmt.Println("| run | SYNs/s aimed | SYNs/s sent | SYNs/s at server | clients connected | handshake p50 | p99 | max | heap before | heap peak | heap after | SYN queue peak | cookies sent / recv / failed | ListenDrops |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rs {
		c := r.counters
		fmt.Printf("| %s | %s | %s | %s | %d/%d (%.1f%%) | %s | %s | %s | %s | %s | %s | %d | %d / %d / %d | %d |\n",
			r.name, si(float64(r.target)), si(r.offered), si(r.delivered), r.ok, r.total, 100*float64(r.ok)/float64(max(r.total, 1)),
			ms(r.p50), ms(r.p99), ms(r.max), mib(r.heapBefore), mib(r.heapPeak), mib(r.heapAfter), r.synQMax,
			c.SyncookiesSent, c.SyncookiesRecv, c.SyncookiesFailed, c.ListenDrops)
	}
}

// startProfile starts a CPU profile into file (none if empty) and
// returns what stops it.
func startProfile(file string) (stop func()) {
	if file == "" {
		return func() {}
	}
	f, err := os.Create(file)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "flood: cpuprofile: %v\n", err)
		os.Exit(1)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

func si(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.0fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// gc collects twice, so buffers of an earlier run parked in sync.Pools
// (memlink's) are gone too.
func gc() {
	runtime.GC()
	runtime.GC()
}

func heap() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// runMemlink floods a synack listener over memlink at rate SYNs/s with
// cookies in mode, while the legitimate clients connect.
func runMemlink(rate int, mode stack.SynCookieMode) (result, error) {
	res := result{name: fmt.Sprintf("synack memlink, cookies %v, %s SYN/s", mode, si(float64(rate))), target: rate}
	cs, ss := memlink.Pipe(memlink.Config{
		AB: memlink.Impairments{Delay: time.Millisecond, QueueLimit: 65536},
		BA: memlink.Impairments{Delay: time.Millisecond, QueueLimit: 65536},
	})
	// The attacker's link queues 4096 packets, a NIC ring's worth: a
	// deeper queue only holds more of the flood (each queued packet is an
	// MTU-sized buffer) and delays the drops.
	atk, satk := memlink.Pipe(memlink.Config{
		AB: memlink.Impairments{QueueLimit: 4096},
		BA: memlink.Impairments{QueueLimit: 4096},
	})
	atk.Attach(link.DispatcherFunc(func([]byte) {})) // SYN,ACKs to spoofed sources: lost
	server := stack.New(stack.Options{SynCookies: mode})
	client := stack.New(stack.Options{})
	defer client.Close()
	defer server.Close()
	if _, err := server.AddLink(ss, netip.PrefixFrom(serverAddr, 24)); err != nil {
		return res, err
	}
	nic, err := server.AddLink(satk, netip.PrefixFrom(atkHop, 24))
	if err != nil {
		return res, err
	}
	if err := server.AddRoute(floodNet, netip.Addr{}, nic); err != nil {
		return res, err
	}
	if _, err := client.AddLink(cs, netip.PrefixFrom(clientAddr, 24)); err != nil {
		return res, err
	}
	ln, err := server.ListenTCP(netip.AddrPortFrom(serverAddr, 80), 4096)
	if err != nil {
		return res, err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()

	gc()
	res.heapBefore = heap()
	stop := make(chan struct{})
	var sent atomic.Uint64
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); attack(atk, rate, stop, &sent) }()
	var peak atomic.Uint64
	go func() {
		defer wg.Done()
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if h := heap(); h > peak.Load() {
					peak.Store(h)
				}
			}
		}
	}()
	start := time.Now()
	inBefore := server.Counters().TCP.InSegs
	time.Sleep(200 * time.Millisecond) // let the flood fill the SYN queue first

	times, failed := dialMany(*clients, *workers, func(ctx context.Context) error {
		c, err := client.DialTCP(ctx, netip.AddrPortFrom(serverAddr, 80))
		if err == nil {
			c.Close()
		}
		return err
	}, start.Add(*maxDuration), nil)
	res.dur = time.Since(start)
	res.counters = server.Counters().TCP
	for _, li := range server.Listeners() {
		res.synQMax = max(res.synQMax, li.SynQueueMax)
	}
	close(stop)
	wg.Wait()
	res.offered = float64(sent.Load()) / res.dur.Seconds()
	res.delivered = float64(res.counters.InSegs-inBefore) / res.dur.Seconds()
	gc()
	res.heapAfter = heap()
	res.heapPeak = max(peak.Load(), res.heapAfter)
	res.ok, res.total = len(times), len(times)+failed
	res.p50, res.p99, res.max = pct(times, 50), pct(times, 99), pct(times, 100)
	return res, nil
}

// dialMany makes n handshakes with w workers and returns the durations of
// those that succeeded and how many failed; it gives up at deadline.
// dialMany makes n handshakes with dial from w workers, each started
// with spawn (nil: go), until deadline.
func dialMany(n, w int, dial func(context.Context) error, deadline time.Time, spawn func(func())) ([]time.Duration, int) {
	if spawn == nil {
		spawn = func(f func()) { go f() }
	}
	var mu sync.Mutex
	var times []time.Duration
	failed := 0
	var next atomic.Int64
	var wg sync.WaitGroup
	for range w {
		wg.Add(1)
		spawn(func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if time.Now().After(deadline) {
					mu.Lock()
					failed++
					mu.Unlock()
					continue
				}
				ctx, cancel := context.WithTimeout(context.Background(), *dialTimeout)
				t0 := time.Now()
				err := dial(ctx)
				d := time.Since(t0)
				cancel()
				mu.Lock()
				if err != nil {
					failed++
				} else {
					times = append(times, d)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.Sort(times)
	return times, failed
}

func pct(s []time.Duration, p int) time.Duration {
	if len(s) == 0 {
		return 0
	}
	i := (len(s)*p + 99) / 100
	return s[max(min(i, len(s))-1, 0)]
}

// attack writes spoofed SYNs into ep at rate per second (0: as fast as it
// can) until stop, in batches every millisecond; behind schedule it sends
// without pausing.
func attack(ep *memlink.Endpoint, rate int, stop <-chan struct{}, sent *atomic.Uint64) {
	const batch = 64
	pkts := make([][]byte, batch)
	for i := range pkts {
		pkts[i] = spoofedSYN(netip.AddrPortFrom(clientAddr, 1), netip.AddrPortFrom(serverAddr, 80), 0)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	start := time.Now()
	var n uint64
	for {
		select {
		case <-stop:
			return
		default:
		}
		if rate > 0 {
			due := uint64(time.Since(start).Seconds() * float64(rate))
			if n >= due {
				time.Sleep(time.Millisecond)
				continue
			}
		}
		for _, p := range pkts {
			respoof(p, rng.Uint64())
		}
		ep.WritePackets(pkts)
		n += batch
		sent.Store(n)
	}
}

// spoofedSYN is a bare IPv4 SYN as hping3 -S sends it (no options).
func spoofedSYN(src, dst netip.AddrPort, seq uint32) []byte {
	h := wire.TCPHeader{SrcPort: src.Port(), DstPort: dst.Port(), Seq: 0, Flags: wire.SYN, Window: 512}
	seg := wire.AppendTCP(nil, &h, nil, src.Addr(), dst.Addr())
	b := wire.AppendIPv4(nil, &wire.IPv4Header{TTL: 64, Protocol: wire.ProtocolTCP, Src: src.Addr(), Dst: dst.Addr()}, len(seg))
	return append(b, seg...)
}

// respoof gives pkt (from spoofedSYN) a new source address in floodNet
// (never a real host's), source port and sequence number from x, and fixes
// its checksums.
func respoof(pkt []byte, x uint64) {
	a := byte(x >> 8)
	if a < 2 {
		a = 2 // keep off 198.18.0.0/24 and 198.18.1.0/24, where the hosts are
	}
	pkt[12], pkt[13], pkt[14], pkt[15] = 198, 18|byte(x&1), a, byte(x>>16)
	seg := pkt[20:]
	binary.BigEndian.PutUint16(seg[0:], uint16(x>>24)|1024)
	binary.BigEndian.PutUint32(seg[4:], uint32(x>>32))
	binary.BigEndian.PutUint16(pkt[10:], 0)
	binary.BigEndian.PutUint16(pkt[10:], wire.Checksum(pkt[:20], 0))
	src, dst := netip.AddrFrom4([4]byte(pkt[12:16])), netip.AddrFrom4([4]byte(pkt[16:20]))
	binary.BigEndian.PutUint16(seg[16:], 0)
	binary.BigEndian.PutUint16(seg[16:], wire.Checksum(seg, wire.PseudoHeaderChecksum(wire.ProtocolTCP, src, dst, len(seg))))
}

//go:build linux

package main

// Part 2: a real flood from the kernel side. The benchmark makes a network
// namespace (link/tun/nstest), a TUN device in it (link/tun) with the
// kernel at 198.18.0.1/24 and synack at 198.18.0.2, and runs, inside the
// namespace,
//
//	timeout <tun-flood> hping3 -S --flood --rand-source -p 80 198.18.0.2
//
// while a Go client in the namespace (the kernel's TCP) makes -tun-clients
// connections to synack's listener, 16 at a time. Then the same against a
// kernel listener in the namespace (198.18.0.1:8080, backlog 4096) with
// net.ipv4.tcp_syncookies=1 set in the namespace, hping3 aimed at it. The
// spoofed sources are random, but the packets never leave the namespace:
// it has no route out. The namespace is deleted at the end.

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/synack/synack/link/tun"
	"github.com/synack/synack/link/tun/nstest"
	"github.com/synack/synack/stack"
)

type tunResult struct {
	name          string
	ok, total     int
	p50, p99, max time.Duration
	dur           time.Duration
	note          string
}

func runTUN() error {
	if _, err := exec.LookPath("hping3"); err != nil {
		return fmt.Errorf("hping3 not found (apt-get install hping3): %w", err)
	}
	ns, err := nstest.CreatePrefixed(*tunPrefix)
	if err != nil {
		return fmt.Errorf("creating the network namespace: %w", err)
	}
	defer ns.Close()
	var dev *tun.Device
	ns.Do(func() {
		if dev, err = tun.OpenOptions(strings.TrimSuffix(*tunPrefix, "-")+"0", tun.Options{MTU: 1500, Offload: *tunOffload, Queues: *tunQueues, TxQueueLen: *tunQLen, NoUring: !*tunUring}); err == nil {
			err = dev.Configure(netip.MustParsePrefix("198.18.0.1/24"))
		}
	})
	if err != nil {
		return err
	}
	s := stack.New(stack.Options{})
	defer s.Close()
	if _, err := s.AddLink(dev, netip.MustParsePrefix("198.18.0.2/24")); err != nil {
		return err
	}
	ln, err := s.ListenTCP(netip.MustParseAddrPort("198.18.0.2:80"), 4096)
	if err != nil {
		return err
	}
	go acceptLoop(ln)

	var rs []tunResult
	stopProfile := func() {}
	if *cpuProfile != "" {
		stopProfile = startProfile(*cpuProfile + ".tun")
	}
	k0, cpu0 := kernelSide(dev), cpuTime()
	stopWatch := make(chan struct{})
	stall := make(chan time.Duration, 1)
	go func() { stall <- watchReader(dev, stopWatch) }()
	r, err := floodAndDial(ns, fmt.Sprintf("synack over TUN (cookies auto, SYN queue 4096; %s)", dev.Features()), "198.18.0.2", 80)
	close(stopWatch)
	longest := <-stall
	if err != nil {
		return err
	}
	k1, cpu := kernelSide(dev), cpuTime()-cpu0
	for _, li := range s.Listeners() {
		c := s.Counters().TCP
		ds := dev.Stats()
		r.note = fmt.Sprintf("SYN queue peak %d, cookies sent %d recv %d failed %d, ListenDrops %d, InSegs %d; TUN: %d packets in %d batches (%.1fk/s); kernel queued %d for the TUN (%.1fk/s), dropped %d (%.1f%%); process CPU %.2f s, %.1f µs per packet read; longest time without a packet read while the flood ran %.0f ms",
			li.SynQueueMax, c.SyncookiesSent, c.SyncookiesRecv, c.SyncookiesFailed, c.ListenDrops, c.InSegs, ds.RxPackets, ds.RxBatches,
			float64(ds.RxPackets)/r.dur.Seconds()/1e3, k1.TxPackets-k0.TxPackets+k1.TxDropped-k0.TxDropped,
			float64(k1.TxPackets-k0.TxPackets+k1.TxDropped-k0.TxDropped)/r.dur.Seconds()/1e3,
			k1.TxDropped-k0.TxDropped, 100*float64(k1.TxDropped-k0.TxDropped)/float64(max(k1.TxPackets-k0.TxPackets+k1.TxDropped-k0.TxDropped, 1)),
			cpu.Seconds(), float64(cpu.Microseconds())/float64(max(ds.RxPackets, 1)), float64(longest)/1e6)
	}
	stopProfile()
	rs = append(rs, r)
	if *tunKernel {
		kr, err := floodKernel(ns)
		if err != nil {
			return err
		}
		rs = append(rs, kr)
	}
	printTUN(rs)
	return nil
}

// floodKernel floods a listener of the kernel's in the namespace as
// runTUN does synack's.
func floodKernel(ns *nstest.NS) (tunResult, error) {
	var err error
	var kl net.Listener
	var sysctl string
	ns.Do(func() {
		if err = os.WriteFile("/proc/sys/net/ipv4/tcp_syncookies", []byte("1"), 0); err != nil {
			return
		}
		for _, k := range []string{"tcp_syncookies", "tcp_max_syn_backlog", "tcp_synack_retries"} {
			b, _ := os.ReadFile("/proc/sys/net/ipv4/" + k)
			sysctl += fmt.Sprintf("%s=%s ", k, strings.TrimSpace(string(b)))
		}
		b, _ := os.ReadFile("/proc/sys/net/core/somaxconn")
		sysctl += "somaxconn=" + strings.TrimSpace(string(b))
		lc := net.ListenConfig{}
		kl, err = lc.Listen(context.Background(), "tcp4", "198.18.0.1:8080")
	})
	if err != nil {
		return tunResult{}, fmt.Errorf("kernel listener: %w", err)
	}
	defer kl.Close()
	go acceptLoop(kl)
	kr, err := floodAndDial(ns, "Linux kernel "+kernelRelease()+" (syncookies=1)", "198.18.0.1", 8080)
	kr.note = sysctl
	return kr, err
}

func printTUN(rs []tunResult) {

	fmt.Printf("\n## Part 2: hping3 -S --flood --rand-source from the kernel side of a TUN, in a network namespace (%d connections by the kernel's TCP, 16 at a time, timeout %v)\n\n", *tunClients, *dialTimeout)
	fmt.Println("| target | connected | handshake p50 | p99 | max | flood lasted | notes |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---|")
	for _, r := range rs {
		fmt.Printf("| %s | %d/%d (%.1f%%) | %s | %s | %s | %.1f s | %s |\n", r.name, r.ok, r.total,
			100*float64(r.ok)/float64(max(r.total, 1)), ms(r.p50), ms(r.p99), ms(r.max), r.dur.Seconds(), r.note)
	}
	if len(rs) < 2 {
		return
	}
	a, k := rs[0], rs[1]
	fmt.Printf("\nratio synack / kernel: success %.3f, p50 %.2f, p99 %.2f\n",
		float64(a.ok)/float64(max(k.ok, 1)), float64(a.p50)/float64(max(k.p50, 1)), float64(a.p99)/float64(max(k.p99, 1)))
}

type acceptor interface{ Accept() (net.Conn, error) }

func acceptLoop(l acceptor) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

// floodAndDial starts hping3 at host:port inside ns, lets it run a second,
// makes the connections, and stops the flood.
func floodAndDial(ns *nstest.NS, name, host string, port int) (tunResult, error) {
	r := tunResult{name: name}
	secs := fmt.Sprintf("%d", int(tunFlood.Seconds()))
	cmd := exec.Command("timeout", "--signal=INT", secs, "hping3", "-S", "--flood", "--rand-source", "-q", "-p", fmt.Sprint(port), host)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := ns.Start(cmd); err != nil {
		return r, fmt.Errorf("starting hping3: %w", err)
	}
	start := time.Now()
	time.Sleep(time.Second)
	// Each worker dials from its own thread in the namespace (ns.Go), so
	// one handshake waiting for a retransmission does not hold up the
	// others (ns.DialContext runs one dial at a time).
	times, failed := dialMany(*tunClients, 16, func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp4", fmt.Sprintf("%s:%d", host, port))
		if err == nil {
			c.Close()
		}
		return err
	}, start.Add(*tunFlood), ns.Go)
	r.dur = time.Since(start)
	syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
	cmd.Wait()
	r.ok, r.total = len(times), len(times)+failed
	r.p50, r.p99, r.max = pct(times, 50), pct(times, 99), pct(times, 100)
	return r, nil
}

// watchReader samples dev's packet count every millisecond until stop and
// returns the longest time it stood still once packets began to come
// (the watcher's own delays included: a process that does not run reads
// nothing either): how long synack's readers went
// without reading while hping3 kept the queue filling (a stall longer
// than the queue's length over the flood's rate drops SYNs at the device).
func watchReader(dev *tun.Device, stop <-chan struct{}) time.Duration {
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	last, since := dev.Stats().RxPackets, time.Now()
	var longest time.Duration
	started := false
	for {
		select {
		case <-stop:
			return longest
		case now := <-t.C:
			switch n := dev.Stats().RxPackets; {
			case n != last:
				last, since = n, now
				started = true
			case started: // the flood has begun
				longest = max(longest, now.Sub(since))
			}
		}
	}
}

// kernelSide returns the kernel's counters of dev's interface: its
// transmit side is what the kernel handed to the device (for synack to
// read) and what it dropped because the device's queue was full.
func kernelSide(dev *tun.Device) (k kernelCounters) {
	l, err := dev.Netlink().LinkByName(dev.Name())
	if err != nil || l.Attrs().Statistics == nil {
		return k
	}
	st := l.Attrs().Statistics
	return kernelCounters{TxPackets: st.TxPackets, TxDropped: st.TxDropped}
}

type kernelCounters struct{ TxPackets, TxDropped uint64 }

// cpuTime is the process's user and system CPU time so far: synack's
// readers and stack, and the dialers' system calls (the kernel's side of
// their handshakes), the same for every build.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func kernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

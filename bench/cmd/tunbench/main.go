//go:build linux

// Command tunbench measures TCP over a TUN device against the Linux kernel:
// the kernel's TCP in a network namespace is the client, and the server is
// synack on a TUN device (offloads on and off), gVisor's netstack on its
// own TUN device (link/fdbased), or, for reference, the kernel itself in a
// second namespace behind a veth pair (offloads on and off). Every shape
// runs for every target in the same run, so the ratios compare like with
// like on a machine whose absolute speed varies:
//
//   - bulk kernel -> server and server -> kernel (-bytes each), at each MTU;
//   - connections per second: dial, the server closes, the client reads
//     EOF and closes; one at a time and 16 at once.
//
// It needs root (namespaces, TUN devices, veth) and ethtool for the veth
// rows with offloads off. Namespaces and devices are named with "tf" and
// removed at the end.
//
//	cd bench && go run ./cmd/tunbench -mtus 1500,65535
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/link/fdbased"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	gvtcp "gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"github.com/synack/synack/link/tun"
	"github.com/synack/synack/link/tun/nstest"
	"github.com/synack/synack/stack"
)

var (
	bulkBytes = flag.Int64("bytes", 512<<20, "bytes per bulk transfer")
	conns     = flag.Int("conns", 3000, "connections per connection-rate shape")
	mtus      = flag.String("mtus", "1500,65535", "link MTUs (comma-separated)")
	targets   = flag.String("targets", "synack-offload,synack-offload-split,synack,gvisor,veth-offload,veth", "servers to measure (comma-separated; also synack-offload-notso: offloads on, TSO out off)")
	queues    = flag.Int("queues", runtime.NumCPU(), "synack's TUN queues")
	repeat    = flag.Int("repeat", 3, "rounds: each cell is the best round (the median in parentheses)")
	cpuprof   = flag.String("cpuprofile", "", "write a CPU profile of the whole run to `FILE`")
	nsPrefix  = flag.String("nsprefix", nstest.Prefix, "name prefix of the network namespaces made")
)

// The addresses: the kernel client at .1, the server at .2.
var (
	clientPrefix = netip.MustParsePrefix("198.18.0.1/24")
	serverAddr   = netip.MustParseAddr("198.18.0.2")
)

// Ports the servers serve on.
const (
	portSink   = 5001 // reads to EOF, then closes
	portSource = 5002 // writes -bytes, then closes
	portClose  = 5003 // closes at once
)

// setup is one server on its link, with the client's namespace.
type setup struct {
	client *nstest.NS
	note   string
	close  func()
}

func main() {
	flag.Parse()
	if *cpuprof != "" {
		f, err := os.Create(*cpuprof)
		if err != nil {
			fmt.Fprintln(os.Stderr, "tunbench:", err)
			os.Exit(1)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "tunbench: needs root (network namespaces, TUN devices, veth)")
		os.Exit(1)
	}
	var ms []int
	for _, s := range strings.Split(*mtus, ",") {
		var m int
		if _, err := fmt.Sscan(s, &m); err != nil {
			fmt.Fprintf(os.Stderr, "tunbench: -mtus %q: %v\n", s, err)
			os.Exit(2)
		}
		ms = append(ms, m)
	}
	ts := strings.Split(*targets, ",")
	fmt.Printf("tunbench: %s, %d CPUs, Go %s, -bytes %d MiB, -conns %d, -repeat %d\n\n", kernelRelease(), runtime.NumCPU(), runtime.Version(), *bulkBytes>>20, *conns, *repeat)
	// Rounds run every target once, in turn, so that a burst of load
	// from elsewhere on the machine hits all targets alike; each cell
	// gives the best round and, in parentheses, the median.
	type key struct {
		target string
		mtu    int
	}
	all := map[key][]result{}
	errs := map[key]error{}
	for range *repeat {
		for _, mtu := range ms {
			for _, t := range ts {
				k := key{t, mtu}
				if errs[k] != nil {
					continue
				}
				r, err := measure(t, mtu)
				if err != nil {
					errs[k] = err
					continue
				}
				all[k] = append(all[k], r)
			}
		}
	}
	fmt.Println("| target | MTU | kernel -> server Gbit/s | server -> kernel Gbit/s | CPU s/GiB in, out (median) | conn/s sequential | conn/s 16 at once | link |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---|")
	for _, mtu := range ms {
		for _, t := range ts {
			k := key{t, mtu}
			rs := all[k]
			if errs[k] != nil {
				fmt.Printf("| %s | %d | error: %v | | | | | |\n", t, mtu, errs[k])
				continue
			}
			cell := func(f func(result) float64, format string) string {
				v := make([]float64, len(rs))
				for i, r := range rs {
					v[i] = f(r)
				}
				slices.Sort(v)
				return fmt.Sprintf(format+" ("+format+")", v[len(v)-1], v[len(v)/2])
			}
			med := func(f func(result) float64) float64 {
				v := make([]float64, len(rs))
				for i, r := range rs {
					v[i] = f(r)
				}
				slices.Sort(v)
				return v[len(v)/2]
			}
			fmt.Printf("| %s | %d | %s | %s | %.2f, %.2f | %s | %s | %s |\n", t, mtu,
				cell(func(r result) float64 { return r.up }, "%.2f"), cell(func(r result) float64 { return r.down }, "%.2f"),
				med(func(r result) float64 { return r.upCPU }), med(func(r result) float64 { return r.downCPU }),
				cell(func(r result) float64 { return r.seq }, "%.0f"), cell(func(r result) float64 { return r.par }, "%.0f"), rs[0].note)
		}
	}
}

type result struct {
	up, down, seq, par float64
	upCPU, downCPU     float64 // CPU seconds (the whole process: client syscalls, kernel TCP in them, server) per GiB
	note               string
}

func measure(target string, mtu int) (result, error) {
	var r result
	var s *setup
	var err error
	switch target {
	case "synack-offload":
		s, err = synackSetup(mtu, tun.Options{Offload: true})
	case "synack-offload-notso":
		s, err = synackSetup(mtu, tun.Options{Offload: true, NoTSOOut: true})
	case "synack-offload-split":
		s, err = synackSetup(mtu, tun.Options{Offload: true, SplitGSO: true})
	case "synack":
		s, err = synackSetup(mtu, tun.Options{})
	case "gvisor":
		s, err = gvisorSetup(mtu)
	case "veth-offload":
		s, err = vethSetup(mtu, true)
	case "veth":
		s, err = vethSetup(mtu, false)
	default:
		return r, fmt.Errorf("unknown target %q", target)
	}
	if err != nil {
		return r, err
	}
	defer s.close()
	r.note = s.note
	if r.up, r.upCPU, err = bulk(s.client, portSink, *bulkBytes); err != nil {
		return r, fmt.Errorf("kernel -> server: %w", err)
	}
	if r.down, r.downCPU, err = bulk(s.client, portSource, *bulkBytes); err != nil {
		return r, fmt.Errorf("server -> kernel: %w", err)
	}
	if r.seq, err = connRate(s.client, *conns, 1); err != nil {
		return r, fmt.Errorf("connections: %w", err)
	}
	if r.par, err = connRate(s.client, *conns, 16); err != nil {
		return r, fmt.Errorf("connections 16 at once: %w", err)
	}
	return r, nil
}

// inNS runs f on a thread in ns and waits for it.
func inNS(ns *nstest.NS, f func()) {
	done := make(chan struct{})
	ns.Go(func() {
		defer close(done)
		f()
	})
	<-done
}

var chunk = make([]byte, 256<<10)

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// bulk moves n bytes between the kernel client and the server (to the
// sink, or from the source) and returns Gbit/s and the process's CPU
// seconds per GiB moved (a figure other load on the machine disturbs far
// less than the rate; work the kernel does in softirq threads is not in
// it).
func bulk(ns *nstest.NS, port int, n int64) (float64, float64, error) {
	var got int64
	var err error
	var el time.Duration
	cpu0 := cpuTime()
	inNS(ns, func() {
		d := net.Dialer{Timeout: 10 * time.Second}
		var c net.Conn
		c, err = d.Dial("tcp4", netip.AddrPortFrom(serverAddr, uint16(port)).String())
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Minute))
		t0 := time.Now()
		if port == portSink {
			for got < n && err == nil {
				var m int
				m, err = c.Write(chunk[:min(int64(len(chunk)), n-got)])
				got += int64(m)
			}
			if err == nil {
				c.(*net.TCPConn).CloseWrite()
				// The server closes once it has read everything.
				_, err = io.Copy(io.Discard, c)
			}
		} else {
			got, err = io.Copy(io.Discard, c)
		}
		el = time.Since(t0)
	})
	cpu := cpuTime() - cpu0
	if err != nil {
		return 0, 0, err
	}
	if got != n {
		return 0, 0, fmt.Errorf("moved %d of %d bytes", got, n)
	}
	return float64(n) * 8 / el.Seconds() / 1e9, cpu.Seconds() / (float64(n) / (1 << 30)), nil
}

// connRate makes n connections from w workers (each on its own thread in
// ns) and returns connections per second.
func connRate(ns *nstest.NS, n, w int) (float64, error) {
	var next atomic.Int64
	var failed atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	addr := netip.AddrPortFrom(serverAddr, portClose).String()
	t0 := time.Now()
	for range w {
		wg.Add(1)
		ns.Go(func() {
			defer wg.Done()
			d := net.Dialer{Timeout: 10 * time.Second}
			var b [1]byte
			for next.Add(1) <= int64(n) {
				c, err := d.Dial("tcp4", addr)
				if err == nil {
					c.SetReadDeadline(time.Now().Add(10 * time.Second))
					_, err = c.Read(b[:])
					if errors.Is(err, io.EOF) {
						err = nil
					}
					c.(*net.TCPConn).SetLinger(0) // no TIME-WAIT pile-up on the client's ports
					c.Close()
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, &err)
				}
			}
		})
	}
	wg.Wait()
	el := time.Since(t0)
	if f := failed.Load(); f > int64(n)/100 {
		return 0, fmt.Errorf("%d of %d connections failed: %v", f, n, *firstErr.Load())
	}
	return float64(n) / el.Seconds(), nil
}

// serve runs the three servers on listeners from listen.
func serve(listen func(port int) (net.Listener, error)) (func(), error) {
	var ls []net.Listener
	for _, p := range []int{portSink, portSource, portClose} {
		l, err := listen(p)
		if err != nil {
			for _, l := range ls {
				l.Close()
			}
			return nil, fmt.Errorf("listening on %d: %w", p, err)
		}
		ls = append(ls, l)
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go handle(p, c)
			}
		}()
	}
	return func() {
		for _, l := range ls {
			l.Close()
		}
	}, nil
}

func handle(port int, c net.Conn) {
	defer c.Close()
	switch port {
	case portSink:
		io.Copy(io.Discard, c)
	case portSource:
		for left := *bulkBytes; left > 0; {
			m, err := c.Write(chunk[:min(int64(len(chunk)), left)])
			if err != nil {
				return
			}
			left -= int64(m)
		}
	}
}

func synackSetup(mtu int, o tun.Options) (*setup, error) {
	ns, err := nstest.CreatePrefixed(*nsPrefix)
	if err != nil {
		return nil, err
	}
	var dev *tun.Device
	ns.Do(func() {
		o.MTU, o.Queues = mtu, *queues
		dev, err = tun.OpenOptions("tfb%d", o)
		if err == nil {
			err = dev.Configure(clientPrefix)
		}
	})
	if err != nil {
		ns.Close()
		return nil, err
	}
	s := stack.New(stack.Options{})
	if _, err := s.AddLink(dev, netip.PrefixFrom(serverAddr, 24)); err != nil {
		s.Close()
		ns.Close()
		return nil, err
	}
	stop, err := serve(func(port int) (net.Listener, error) {
		return s.ListenTCP(netip.AddrPortFrom(serverAddr, uint16(port)), 4096)
	})
	if err != nil {
		s.Close()
		ns.Close()
		return nil, err
	}
	note := dev.Features().String()
	if o.SplitGSO {
		note += ", TSO split"
	}
	return &setup{client: ns, note: note, close: func() {
		stop()
		s.Close()
		dev.Close()
		<-dev.Done()
		ns.Close()
		// What the device's readers did with the packets (all shapes
		// of the round): on stderr, beside the table.
		st := dev.Stats()
		fmt.Fprintf(os.Stderr, "tunbench: synack MTU %d, %s: %d packets in, %d TSO super-segments, %d lent to the stack (%d buffers made)\n",
			mtu, note, st.RxPackets, st.RxGSO, st.RxLent, st.RxBufsMade)
	}}, nil
}

// gvisorSetup puts gVisor's netstack on a TUN device of its own, opened as
// gVisor's fdbased endpoint expects (IFF_TUN|IFF_NO_PI: fdbased offers GSO
// only on sockets), with gVisor's defaults: it verifies and computes every
// checksum, as synack does without offloads.
func gvisorSetup(mtu int) (*setup, error) {
	ns, err := nstest.CreatePrefixed(*nsPrefix)
	if err != nil {
		return nil, err
	}
	fd := -1
	var name string
	ns.Do(func() {
		fd, err = unix.Open(tun.DevicePath, unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return
		}
		var ifr *unix.Ifreq
		if ifr, err = unix.NewIfreq("tfg%d"); err == nil {
			ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
			err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
			name = ifr.Name()
		}
	})
	fail := func(err error) (*setup, error) {
		if fd >= 0 {
			unix.Close(fd)
		}
		ns.Close()
		return nil, err
	}
	if err != nil {
		return fail(err)
	}
	for _, args := range [][]string{
		{"link", "set", name, "mtu", fmt.Sprint(mtu), "txqueuelen", "10000"},
		{"addr", "add", clientPrefix.String(), "dev", name},
		{"link", "set", name, "up"},
	} {
		if err := ipNS(ns, args...); err != nil {
			return fail(err)
		}
	}
	ep, err := fdbased.New(&fdbased.Options{FDs: []int{fd}, MTU: uint32(mtu)})
	if err != nil {
		return fail(err)
	}
	s := gvstack.New(gvstack.Options{
		NetworkProtocols:   []gvstack.NetworkProtocolFactory{ipv4.NewProtocol},
		TransportProtocols: []gvstack.TransportProtocolFactory{gvtcp.NewProtocol},
	})
	reuse := tcpip.TCPTimeWaitReuseGlobal
	s.SetTransportProtocolOption(gvtcp.ProtocolNumber, &reuse)
	if err := s.CreateNIC(1, ep); err != nil {
		return fail(fmt.Errorf("gvisor: %s", err))
	}
	addr := tcpip.AddrFrom4(serverAddr.As4())
	pa := tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber, AddressWithPrefix: tcpip.AddressWithPrefix{Address: addr, PrefixLen: 24}}
	if err := s.AddProtocolAddress(1, pa, gvstack.AddressProperties{}); err != nil {
		return fail(fmt.Errorf("gvisor: %s", err))
	}
	s.SetRouteTable([]tcpip.Route{{Destination: pa.AddressWithPrefix.Subnet(), NIC: 1}})
	stop, err := serve(func(port int) (net.Listener, error) {
		return gonet.ListenTCP(s, tcpip.FullAddress{NIC: 1, Addr: addr, Port: uint16(port)}, ipv4.ProtocolNumber)
	})
	if err != nil {
		s.Close()
		return fail(err)
	}
	return &setup{client: ns, note: "fdbased readv, no offloads", close: func() {
		stop()
		s.Close()
		unix.Close(fd)
		ns.Close()
	}}, nil
}

// vethSetup is the kernel on both ends: the client's namespace and a
// server namespace joined by a veth pair, with the veth offloads (TSO,
// GSO, GRO, checksums) left on or all turned off.
func vethSetup(mtu int, offload bool) (*setup, error) {
	ns, err := nstest.CreatePrefixed(*nsPrefix)
	if err != nil {
		return nil, err
	}
	srv, err := nstest.CreatePrefixed(*nsPrefix)
	if err != nil {
		ns.Close()
		return nil, err
	}
	fail := func(err error) (*setup, error) {
		srv.Close()
		ns.Close()
		return nil, err
	}
	cmds := [][]string{
		{"link", "add", "tfva", "mtu", fmt.Sprint(mtu), "type", "veth", "peer", "name", "tfvb", "mtu", fmt.Sprint(mtu), "netns", srv.Name},
		{"addr", "add", clientPrefix.String(), "dev", "tfva"},
		{"link", "set", "tfva", "up"},
	}
	for _, args := range cmds {
		if err := ipNS(ns, args...); err != nil {
			return fail(err)
		}
	}
	for _, args := range [][]string{
		{"addr", "add", netip.PrefixFrom(serverAddr, 24).String(), "dev", "tfvb"},
		{"link", "set", "tfvb", "up"},
	} {
		if err := ipNS(srv, args...); err != nil {
			return fail(err)
		}
	}
	note := "veth, offloads on"
	if !offload {
		note = "veth, tso gso gro tx rx off"
		for _, side := range []struct {
			ns  *nstest.NS
			dev string
		}{{ns, "tfva"}, {srv, "tfvb"}} {
			cmd := exec.Command("ip", "netns", "exec", side.ns.Name, "ethtool", "-K", side.dev, "tso", "off", "gso", "off", "gro", "off", "tx", "off", "rx", "off")
			if out, err := cmd.CombinedOutput(); err != nil {
				return fail(fmt.Errorf("ethtool: %v: %s", err, out))
			}
		}
	}
	stop, err := serve(func(port int) (net.Listener, error) {
		return srv.Listen("tcp4", netip.AddrPortFrom(serverAddr, uint16(port)).String())
	})
	if err != nil {
		return fail(err)
	}
	return &setup{client: ns, note: note, close: func() {
		stop()
		srv.Close()
		ns.Close()
	}}, nil
}

// ipNS runs `ip -n NS args...`.
func ipNS(ns *nstest.NS, args ...string) error {
	out, err := exec.Command("ip", slices.Concat([]string{"-n", ns.Name}, args)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func kernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "Linux"
	}
	return "Linux " + strings.TrimSpace(string(b))
}

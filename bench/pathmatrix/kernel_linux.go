package pathmatrix

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/synack/synack/link"
	"github.com/synack/synack/link/memlink"
	"github.com/synack/synack/link/tun"
)

// RootError says why the kernel's implementations cannot run here.
func RootError() error {
	if os.Geteuid() != 0 {
		return errors.New("needs root to create network namespaces and TUN devices")
	}
	if _, err := os.Stat(tun.DevicePath); err != nil {
		return fmt.Errorf("needs %s: %w", tun.DevicePath, err)
	}
	return nil
}

// tunTxQueue is the TUN devices' transmit queue, in packets. The kernel
// drops what a TUN's queue cannot take (it does not push back on the
// sender), so it is made deep enough that only the model's drop-tail
// queue drops packets.
const tunTxQueue = 10000

// kernelEnd is a namespace with a TUN device whose kernel side has addr:
// the relay reads what the kernel sends through it and writes what the
// kernel should receive.
type kernelEnd struct {
	ns  *netNS
	dev *tun.Device
}

// newKernelEnd makes the namespace, tunes its TCP for the cell (buffers
// beyond the BDP, so windows do not cap the path; no metrics carried
// between connections) and opens the TUN device.
func newKernelEnd(c Cell, addr netip.Prefix) (*kernelEnd, error) {
	ns, err := newNS()
	if err != nil {
		return nil, err
	}
	k := &kernelEnd{ns: ns}
	// Linux counts skb overhead against the buffer: give it twice the
	// other stacks' figure, and never less than its own defaults.
	maxBuf := strconv.Itoa(max(2*c.BufferSize(), 6<<20))
	for _, s := range [][2]string{
		{"net.ipv4.tcp_rmem", "4096 131072 " + maxBuf},
		{"net.ipv4.tcp_wmem", "4096 16384 " + maxBuf},
		{"net.ipv4.tcp_no_metrics_save", "1"},
	} {
		if err := ns.sysctl(s[0], s[1]); err != nil {
			k.close()
			return nil, fmt.Errorf("%s in %s: %w", s[0], ns.Name, err)
		}
	}
	ns.Do(func() {
		k.dev, err = tun.Open("pm0", MTU)
		if err != nil {
			return
		}
		if err = k.dev.Configure(addr); err != nil {
			return
		}
		nl := k.dev.Netlink()
		lk, lerr := nl.LinkByIndex(k.dev.Index())
		if lerr == nil {
			lerr = nl.LinkSetTxQLen(lk, tunTxQueue)
		}
		err = lerr
	})
	if err != nil {
		k.close()
		return nil, fmt.Errorf("TUN in %s: %w", ns.Name, err)
	}
	return k, nil
}

func (k *kernelEnd) close() {
	if k.dev != nil {
		k.dev.Close()
	}
	k.ns.close()
}

// setCC sets the congestion control of a kernel socket before it
// connects or listens (accepted sockets inherit the listener's).
func setCC(cc string) func(network, address string, rc syscall.RawConn) error {
	return func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION, cc)
		})
		if err != nil {
			return err
		}
		if serr != nil {
			return fmt.Errorf("TCP_CONGESTION %s: %w", cc, serr)
		}
		return nil
	}
}

func (k *kernelEnd) listen(addr netip.Prefix, cc string) func() (net.Listener, error) {
	return func() (ln net.Listener, err error) {
		k.ns.Do(func() {
			lc := net.ListenConfig{Control: setCC(cc)}
			ln, err = lc.Listen(context.Background(), "tcp4", hostPort(addr))
		})
		return ln, err
	}
}

func (k *kernelEnd) dial(addr netip.Prefix, cc string) func(ctx context.Context) (net.Conn, error) {
	return func(ctx context.Context) (c net.Conn, err error) {
		k.ns.Do(func() {
			d := net.Dialer{Control: setCC(cc)}
			c, err = d.DialContext(ctx, "tcp4", hostPort(addr))
		})
		return c, err
	}
}

// kernelStats reads TCP_INFO of the sending socket: tcpi_total_retrans,
// and tcpi_dsack_dups, the D-SACK blocks received (Linux's evidence of
// needless retransmissions, RFC 2883; a link that duplicates data adds to
// it too).
func kernelStats(c net.Conn) senderStats {
	st := senderStats{retrans: -1, spurious: -1}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return st
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return st
	}
	rc.Control(func(fd uintptr) {
		info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		if err == nil {
			st = senderStats{retrans: int64(info.Total_retrans), spurious: int64(info.Dsack_dups), what: "D-SACKs received"}
		}
	})
	return st
}

// Relay is the userspace stand-in for netem: two network namespaces, each
// with a TUN device whose kernel side has one of the path's addresses
// (198.18.0.1/24 in A, 198.18.0.2/24 in B), and a memlink pipe with the
// cell's impairments between the two TUNs, both directions impaired. What
// A's kernel sends to B takes the pipe's A-to-B direction. Kernel sockets
// made in the namespaces (ip netns exec, or a thread moved there) talk
// across it.
type Relay struct {
	a, b   *kernelEnd
	pa, pb *memlink.Endpoint // the pipe's ends: pa sends A to B
}

// NewRelay makes the namespaces (named pm-<pid>-<n>), the devices and the
// pipe. Close removes them all.
func NewRelay(c Cell, seed int64) (*Relay, error) {
	if err := RootError(); err != nil {
		return nil, err
	}
	a, err := newKernelEnd(c, senderAddr)
	if err != nil {
		return nil, err
	}
	b, err := newKernelEnd(c, receiverAddr)
	if err != nil {
		a.close()
		return nil, err
	}
	pa, pb := memlink.Pipe(c.Link(seed))
	splice(a.dev, pa)
	splice(pb, b.dev)
	return &Relay{a: a, b: b, pa: pa, pb: pb}, nil
}

// Namespaces names the two namespaces, for ip netns exec.
func (r *Relay) Namespaces() (a, b string) { return r.a.ns.Name, r.b.ns.Name }

// Addrs are the kernel's addresses in A and in B.
func (r *Relay) Addrs() (a, b netip.Prefix) { return senderAddr, receiverAddr }

// Stats are the fates of the packets of each direction so far.
func (r *Relay) Stats() (ab, ba memlink.Stats) { return r.pa.Stats(), r.pb.Stats() }

// Close takes the pipe down and removes the devices and namespaces.
func (r *Relay) Close() {
	r.pa.Close()
	r.a.close()
	r.b.close()
}

// linuxWorld is kernel to kernel across a Relay: the sender in namespace
// A, the receiver in B.
func linuxWorld(c Cell, seed int64, cc string) (*world, error) {
	r, err := NewRelay(c, seed)
	if err != nil {
		return nil, err
	}
	return &world{
		listen: r.b.listen(receiverAddr, cc),
		dial:   r.a.dial(receiverAddr, cc),
		stats:  kernelStats,
		close:  r.Close,
	}, nil
}

// mixedWorld is the kernel (CUBIC, its default) in one namespace behind
// its TUN, and a synack stack on the relay's other end instead of a
// second kernel. synackSends picks the direction of the data; the sender
// is always on the pipe's A side, so its data meets the A-to-B fates in
// every world.
func mixedWorld(c Cell, seed int64, synackSends bool) (*world, error) {
	if err := RootError(); err != nil {
		return nil, err
	}
	// The kernel keeps 198.18.0.1 either way; synack is 198.18.0.2.
	k, err := newKernelEnd(c, senderAddr)
	if err != nil {
		return nil, err
	}
	a, b := memlink.Pipe(c.Link(seed))
	synEnd, kEnd := link.Endpoint(b), link.Endpoint(a)
	if synackSends {
		synEnd, kEnd = a, b
	}
	s, err := newSynack(c, synEnd, receiverAddr, "", "")
	if err != nil {
		a.Close()
		k.close()
		return nil, err
	}
	splice(kEnd, k.dev)
	w := &world{
		close: func() {
			s.Close()
			a.Close()
			k.close()
		},
	}
	if synackSends {
		w.listen = k.listen(senderAddr, "cubic")
		w.dial = synackDial(s, senderAddr)
		w.stats = synackStats
	} else {
		w.listen = synackListen(s, receiverAddr)
		w.dial = k.dial(receiverAddr, "cubic")
		// synack's receiver sends D-SACKs (RFC 2883), so the kernel's
		// tcpi_dsack_dups counts here as between two kernels.
		w.stats = kernelStats
	}
	return w, nil
}

// Listen makes a kernel listener in B on the path's port with congestion
// control cc (its accepted sockets inherit cc); its file descriptors work
// from any goroutine of this process.
func (r *Relay) Listen(cc string) (net.Listener, error) { return r.b.listen(receiverAddr, cc)() }

// Dial connects a kernel socket in A with congestion control cc to B's
// listener.
func (r *Relay) Dial(ctx context.Context, cc string) (net.Conn, error) {
	return r.a.dial(receiverAddr, cc)(ctx)
}

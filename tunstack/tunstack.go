//go:build linux

// Package tunstack puts a synack stack on a Linux TUN device in one call:
// it creates the interface, gives the kernel its side of the link over
// rtnetlink (addresses, on-link routes, up), builds a [stack.Stack] that
// answers on the stack's addresses, routes everything else via the kernel,
// and optionally records the link in a pcap stream. Close undoes all of it.
//
// It is what `synack serve` and `synack nc` run on, and what the interop
// tests use; a program that wants the kernel (and everything behind it)
// to reach a userspace TCP stack needs nothing more.
//
// The package sits beside link/tun rather than inside it because it builds
// a stack: imports point down (stack -> link), and link knows nothing of
// TCP.
package tunstack

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"sync"

	"github.com/synack/synack/link"
	"github.com/synack/synack/link/pcap"
	"github.com/synack/synack/link/tun"
	"github.com/synack/synack/stack"
)

// Pair is one address family's two ends of the link.
type Pair struct {
	// Host is the kernel's address on the interface. Its prefix length
	// sets the on-link route the kernel installs, and the stack's
	// on-link prefix.
	Host netip.Prefix
	// Stack is the address the stack answers on, of Host's family. When
	// it lies outside Host's prefix, the kernel gets a host route to it
	// and the stack an on-link route to Host's prefix.
	Stack netip.Addr
}

// Config says what New builds. Addrs is required; the zero value of every
// other field is usable.
type Config struct {
	// Name is the interface's name: empty lets the kernel pick tunN, and
	// a name with %d is a pattern (see tun.Open).
	Name string
	// MTU of the link in bytes; 0 means tun.DefaultMTU.
	MTU int
	// Offload, SplitGSO, Queues and TxQueueLen set up the device as the fields of
	// tun.Options say: virtio-net header offloads (TSO super-segments in,
	// GSO super-packets out, checksums left to the device), the number of
	// queues with one reader each, and the transmit queue length (0:
	// tun.DefaultTxQueueLen). Dev.Features says what the kernel accepted.
	Offload    bool
	SplitGSO   bool
	Queues     int
	TxQueueLen int
	// NoTSOOut is tun.Options.NoTSOOut: the stack sends segments of at
	// most one MSS even where the device takes super-segments.
	NoTSOOut bool
	// NoUring is tun.Options.NoUring: every packet one read(2) or
	// write(2), not batched through io_uring.
	NoUring bool
	// Addrs holds one Pair per address, typically one IPv4 and one IPv6
	// pair to run both families side by side.
	Addrs []Pair
	// Link, if set, wraps the device before the stack gets it (to drop or
	// delay packets in a test, say). The capture, if any, sees the link
	// as the stack does: outside the wrapper.
	Link func(link.Endpoint) link.Endpoint
	// Pcap, if set, receives every packet on the link as a pcap stream
	// (tcpdump, tshark and Wireshark read it). New buffers it; Close
	// flushes it but does not close it: the caller opened it.
	Pcap io.Writer
	// Options configures the stack. Its Clock also stamps the capture.
	Options stack.Options
}

// AddrError says why an address pair cannot be used.
type AddrError struct {
	Pair   Pair
	Reason string // "the stack's address is the host's own", ...
}

func (e *AddrError) Error() string {
	return fmt.Sprintf("tunstack: host %v, stack %v: %s", e.Pair.Host, e.Pair.Stack, e.Reason)
}

// ErrNoAddrs is what Check and New return for a Config without addresses.
var ErrNoAddrs = errors.New("tunstack: no address pairs")

// Check reports what is wrong with c's values (an *AddrError or
// ErrNoAddrs), without touching the system; New runs it first. Commands
// call it to tell a mistake in their arguments from a failure to set up.
func (c *Config) Check() error {
	_, err := c.pairs()
	return err
}

// pairs checks c.Addrs and returns them with IPv4-mapped IPv6 addresses
// unmapped, as the kernel and the stack see them.
func (c *Config) pairs() ([]Pair, error) {
	if len(c.Addrs) == 0 {
		return nil, ErrNoAddrs
	}
	out := make([]Pair, 0, len(c.Addrs))
	for _, p := range c.Addrs {
		bad := func(reason string) ([]Pair, error) { return nil, &AddrError{Pair: p, Reason: reason} }
		h, s := p.Host.Addr().Unmap(), p.Stack.Unmap()
		switch {
		case !p.Host.IsValid():
			return bad("no host address with a prefix length")
		case !s.IsValid():
			return bad("no stack address")
		case h.Is4() != s.Is4():
			return bad("the addresses are of different families")
		case s.IsUnspecified() || s.IsMulticast():
			return bad("the stack's address is not a unicast address")
		case s == h:
			return bad("the stack's address is the host's own")
		}
		// Unmap keeps the prefix length meaningful: ::ffff:198.18.0.1/120
		// would otherwise count 96 bits of prefix the IPv4 address lacks.
		bits := p.Host.Bits()
		if p.Host.Addr().Is4In6() {
			bits = max(bits-96, 0)
		}
		out = append(out, Pair{Host: netip.PrefixFrom(h, bits), Stack: s})
	}
	return out, nil
}

// Net is a stack on a TUN device.
type Net struct {
	Stack *stack.Stack
	Dev   *tun.Device
	NIC   stack.NICID // the device's link in Stack
	Addrs []Pair      // as checked and configured

	pcapBuf *bufio.Writer
	pcapW   *pcap.Writer

	closeOnce sync.Once
	closeErr  error
}

// New creates the TUN interface cfg.Name in the network namespace of the
// calling thread (see tun.Open: to build it in another namespace, call New
// from a thread locked into that namespace), configures the kernel's side
// with every host address, brings the link up, and builds the stack on it:
// each stack address with its host prefix on-link, and a default route per
// family via the host's address, so the stack reaches whatever the kernel
// routes. For IPv6 it waits (a few milliseconds) until the kernel's
// addresses on the link are usable, so the first SYN is not lost.
//
// Errors from the device are tun's (errors.Is with tun.ErrPermission and
// tun.ErrNoDevice works); bad values give an *AddrError or ErrNoAddrs.
// On error nothing is left behind.
func New(cfg Config) (*Net, error) {
	pairs, err := cfg.pairs()
	if err != nil {
		return nil, err
	}
	dev, err := tun.OpenOptions(cfg.Name, tun.Options{MTU: cfg.MTU, Offload: cfg.Offload, SplitGSO: cfg.SplitGSO, Queues: cfg.Queues, TxQueueLen: cfg.TxQueueLen, NoTSOOut: cfg.NoTSOOut, NoUring: cfg.NoUring})
	if err != nil {
		return nil, err
	}
	n := &Net{Dev: dev, Addrs: pairs}
	fail := func(err error) (*Net, error) {
		n.Close()
		return nil, err
	}
	for _, p := range pairs {
		if err := dev.Configure(p.Host); err != nil {
			return fail(err)
		}
		if !p.Host.Contains(p.Stack) {
			if err := dev.AddRoute(netip.PrefixFrom(p.Stack, p.Stack.BitLen())); err != nil {
				return fail(err)
			}
		}
	}

	var ep link.Endpoint = dev
	if cfg.Link != nil {
		ep = cfg.Link(ep)
	}
	if cfg.Pcap != nil {
		n.pcapBuf = bufio.NewWriterSize(cfg.Pcap, 1<<16)
		n.pcapW, err = pcap.NewWriter(n.pcapBuf)
		if err != nil {
			n.pcapBuf = nil
			return fail(fmt.Errorf("tunstack: pcap: %w", err))
		}
		ep = pcap.Tap(ep, n.pcapW, cfg.Options.Clock)
	}

	n.Stack = stack.New(cfg.Options)
	addrs := make([]netip.Prefix, 0, len(pairs))
	for _, p := range pairs {
		addrs = append(addrs, netip.PrefixFrom(p.Stack, p.Host.Bits()))
	}
	n.NIC, err = n.Stack.AddLink(ep, addrs...)
	if err != nil {
		return fail(err)
	}
	for _, p := range pairs {
		if !p.Host.Contains(p.Stack) {
			// The stack's own prefix does not hold the host: route the
			// host's prefix on-link too.
			if err := n.Stack.AddRoute(p.Host.Masked(), netip.Addr{}, n.NIC); err != nil {
				return fail(err)
			}
		}
		def := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		if p.Host.Addr().Is6() {
			def = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
		if err := n.Stack.AddRoute(def, p.Host.Addr(), n.NIC); err != nil {
			return fail(err)
		}
	}
	return n, nil
}

// String says where the stack lives, for a program's ready line:
// "tun0, kernel 198.18.0.1/24, stack 198.18.0.2".
func (n *Net) String() string {
	var ks, ss []string
	for _, p := range n.Addrs {
		ks = append(ks, p.Host.String())
		ss = append(ss, p.Stack.String())
	}
	return fmt.Sprintf("%s, kernel %s, stack %s", n.Dev.Name(), strings.Join(ks, " "), strings.Join(ss, " "))
}

// Close closes the stack (aborting, with RST, what is still open), then
// the device, which removes the interface with its addresses and routes;
// it waits for the device's reader to exit, so the capture is complete,
// and flushes the capture. It returns the first error and is safe to call
// more than once.
func (n *Net) Close() error {
	n.closeOnce.Do(func() {
		var err error
		if n.Stack != nil {
			err = n.Stack.Close()
		}
		if e := n.Dev.Close(); err == nil {
			err = e
		}
		// The capture's last record comes from the reader goroutine.
		<-n.Dev.Done()
		if n.pcapBuf != nil {
			if e := n.pcapBuf.Flush(); err == nil {
				err = e
			}
			if e := n.pcapW.Err(); err == nil {
				err = e
			}
		}
		n.closeErr = err
	})
	return n.closeErr
}

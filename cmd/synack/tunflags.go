package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/synack/synack/link"
	"github.com/synack/synack/link/pcap"
	"github.com/synack/synack/link/tun"
	"github.com/synack/synack/stack"
)

// tunFlags are the flags every command that puts the stack on a TUN device
// shares: --tun NAME --host-addr CIDR --stack-addr IP --mtu N --pcap FILE.
// --host-addr and --stack-addr take comma-separated lists, to run IPv4 and
// IPv6 side by side (one stack address per host prefix, matched by
// family).
type tunFlags struct {
	name      string
	hostAddr  string
	stackAddr string
	mtu       int
	pcap      string
}

func addTunFlags(fs *flag.FlagSet) *tunFlags {
	f := &tunFlags{}
	fs.StringVar(&f.name, "tun", "synack0", "`name` of the TUN interface to create")
	fs.StringVar(&f.hostAddr, "host-addr", "198.18.0.1/24", "the kernel's `CIDR` on the TUN interface (IPv4 or IPv6; comma-separated for both)")
	fs.StringVar(&f.stackAddr, "stack-addr", "198.18.0.2", "the stack's `IP` (inside the host prefix; comma-separated for both families)")
	fs.IntVar(&f.mtu, "mtu", tun.DefaultMTU, "MTU of the TUN link, in `bytes`")
	fs.StringVar(&f.pcap, "pcap", "", "write every packet on the link to `FILE` (pcap, readable by tcpdump/tshark/Wireshark)")
	return f
}

// addrPair is one family's host prefix and stack address.
type addrPair struct {
	host  netip.Prefix
	stack netip.Addr
}

// pairs parses and checks --host-addr and --stack-addr.
func (f *tunFlags) pairs() ([]addrPair, error) {
	var hosts []netip.Prefix
	for _, s := range splitList(f.hostAddr) {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("--host-addr %q: want an address with a prefix length, like 198.18.0.1/24 or fd00::1/64", s)
		}
		hosts = append(hosts, netip.PrefixFrom(p.Addr().Unmap(), p.Bits()))
	}
	var stacks []netip.Addr
	for _, s := range splitList(f.stackAddr) {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("--stack-addr %q: want an IP address, like 198.18.0.2 or fd00::2", s)
		}
		stacks = append(stacks, a.Unmap())
	}
	if len(hosts) == 0 || len(stacks) == 0 {
		return nil, errors.New("--host-addr and --stack-addr are required")
	}
	var out []addrPair
	used := map[int]bool{}
	for _, h := range hosts {
		found := false
		for i, a := range stacks {
			if used[i] || a.Is4() != h.Addr().Is4() {
				continue
			}
			if a == h.Addr() {
				return nil, fmt.Errorf("--stack-addr %v is the host's own address", a)
			}
			used[i], found = true, true
			out = append(out, addrPair{host: h, stack: a})
			break
		}
		if !found {
			return nil, fmt.Errorf("--host-addr %v has no --stack-addr of the same family", h)
		}
	}
	for i, a := range stacks {
		if !used[i] {
			return nil, fmt.Errorf("--stack-addr %v has no --host-addr of the same family", a)
		}
	}
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// tunNet is a stack on a TUN device, with its optional capture.
type tunNet struct {
	Stack *stack.Stack
	Dev   *tun.Device
	Addrs []addrPair

	pcapFile *os.File
	pcapBuf  *bufio.Writer
	pcapW    *pcap.Writer
}

// open creates the TUN device, gives the kernel its addresses, and builds
// a stack on it answering on the stack addresses, with an on-link route to
// each host prefix and a default route via the host's address.
func (f *tunFlags) open(opts stack.Options) (*tunNet, error) {
	pairs, err := f.pairs()
	if err != nil {
		return nil, err
	}
	dev, err := tun.Open(f.name, f.mtu)
	if err != nil {
		return nil, err
	}
	n := &tunNet{Dev: dev, Addrs: pairs}
	for _, p := range pairs {
		if err := dev.Configure(p.host); err != nil {
			dev.Close()
			return nil, err
		}
		if !p.host.Contains(p.stack) {
			if err := dev.AddRoute(netip.PrefixFrom(p.stack, p.stack.BitLen())); err != nil {
				dev.Close()
				return nil, err
			}
		}
	}

	var ep link.Endpoint = dev
	if f.pcap != "" {
		n.pcapFile, err = os.Create(f.pcap)
		if err != nil {
			dev.Close()
			return nil, fmt.Errorf("--pcap: %w", err)
		}
		n.pcapBuf = bufio.NewWriterSize(n.pcapFile, 1<<16)
		n.pcapW, err = pcap.NewWriter(n.pcapBuf)
		if err != nil {
			n.pcapFile.Close()
			dev.Close()
			return nil, fmt.Errorf("--pcap: %w", err)
		}
		ep = pcap.Tap(dev, n.pcapW, nil)
	}

	s := stack.New(opts)
	var addrs []netip.Prefix
	for _, p := range pairs {
		addrs = append(addrs, netip.PrefixFrom(p.stack, p.host.Bits()))
	}
	id, err := s.AddLink(ep, addrs...)
	if err != nil {
		s.Close()
		dev.Close()
		n.closePcap()
		return nil, err
	}
	for _, p := range pairs {
		// The stack's prefix route may not hold the host if the stack
		// address is outside the host prefix; route the host prefix too,
		// and everything else via the host.
		if !p.host.Contains(p.stack) {
			if err := s.AddRoute(p.host.Masked(), netip.Addr{}, id); err != nil {
				s.Close()
				n.closePcap()
				return nil, err
			}
		}
		def := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		if p.host.Addr().Is6() {
			def = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
		if err := s.AddRoute(def, p.host.Addr(), id); err != nil {
			s.Close()
			n.closePcap()
			return nil, err
		}
	}
	n.Stack = s
	return n, nil
}

// Describe says where the stack lives, for the ready line:
// "tun0, kernel 198.18.0.1/24, stack 198.18.0.2".
func (n *tunNet) Describe() string {
	var ks, ss []string
	for _, p := range n.Addrs {
		ks = append(ks, p.host.String())
		ss = append(ss, p.stack.String())
	}
	return fmt.Sprintf("%s, kernel %s, stack %s", n.Dev.Name(), strings.Join(ks, " "), strings.Join(ss, " "))
}

// Close closes the stack (aborting what is still open), the device (which
// removes the interface) and the capture.
func (n *tunNet) Close() error {
	err := n.Stack.Close()
	if e := n.Dev.Close(); err == nil {
		err = e
	}
	// The capture's last record comes from the reader goroutine.
	<-n.Dev.Done()
	if e := n.closePcap(); err == nil {
		err = e
	}
	return err
}

func (n *tunNet) closePcap() error {
	if n.pcapFile == nil {
		return nil
	}
	err := n.pcapBuf.Flush()
	if e := n.pcapW.Err(); err == nil {
		err = e
	}
	if e := n.pcapFile.Close(); err == nil {
		err = e
	}
	n.pcapFile = nil
	return err
}

// setupFailed prints the one line that says why the TUN network could not
// be set up and returns the exit status.
func setupFailed(cmd string, err error) int {
	msg := err.Error()
	switch {
	case errors.Is(err, tun.ErrPermission):
		msg += "; run as root, e.g. sudo synack " + cmd + " ..."
	case errors.Is(err, tun.ErrNoDevice):
		msg += "; load the tun module (modprobe tun) or give the container /dev/net/tun"
	}
	fmt.Fprintf(os.Stderr, "synack %s: %s\n", cmd, msg)
	return 1
}

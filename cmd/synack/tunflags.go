package main

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strings"

	"github.com/synack/synack/link/tun"
	"github.com/synack/synack/tunstack"
)

// tunFlags are the flags every command that puts the stack on a TUN device
// shares: --tun NAME --host-addr CIDR --stack-addr IP --mtu N --pcap FILE
// --offload --queues N.
// --host-addr and --stack-addr take comma-separated lists, to run IPv4 and
// IPv6 side by side (one stack address per host prefix, matched by
// family). Building the device and the stack is package tunstack's work;
// this file only turns flags into a tunstack.Config.
type tunFlags struct {
	name      string
	hostAddr  string
	stackAddr string
	mtu       int
	pcap      string
	offload   bool
	queues    int
}

func addTunFlags(fs *flag.FlagSet) *tunFlags {
	f := &tunFlags{}
	fs.StringVar(&f.name, "tun", "synack0", "`name` of the TUN interface to create")
	fs.StringVar(&f.hostAddr, "host-addr", "198.18.0.1/24", "the kernel's `CIDR` on the TUN interface (IPv4 or IPv6; comma-separated for both)")
	fs.StringVar(&f.stackAddr, "stack-addr", "198.18.0.2", "the stack's `IP` (inside the host prefix; comma-separated for both families)")
	fs.IntVar(&f.mtu, "mtu", tun.DefaultMTU, "MTU of the TUN link, in `bytes`")
	fs.BoolVar(&f.offload, "offload", true, "use the kernel's TUN offloads (virtio-net header: TSO/GSO super-packets, checksum offload), falling back to what the kernel accepts")
	fs.IntVar(&f.queues, "queues", runtime.NumCPU(), "`N` queues on the TUN device (IFF_MULTI_QUEUE), one reader each")
	fs.StringVar(&f.pcap, "pcap", "", "write every packet on the link to `FILE` (pcap, readable by tcpdump/tshark/Wireshark)")
	return f
}

// config parses --host-addr and --stack-addr, pairs them by family, and
// returns the Config they describe, checked; its errors name the flags.
func (f *tunFlags) config() (tunstack.Config, error) {
	cfg := tunstack.Config{Name: f.name, MTU: f.mtu, Offload: f.offload, Queues: f.queues}
	if f.queues < 1 || f.queues > 256 {
		return cfg, fmt.Errorf("--queues %d: want 1 to 256", f.queues)
	}
	var hosts []netip.Prefix
	for _, s := range splitList(f.hostAddr) {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return cfg, fmt.Errorf("--host-addr %q: want an address with a prefix length, like 198.18.0.1/24 or fd00::1/64", s)
		}
		hosts = append(hosts, p)
	}
	var stacks []netip.Addr
	for _, s := range splitList(f.stackAddr) {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return cfg, fmt.Errorf("--stack-addr %q: want an IP address, like 198.18.0.2 or fd00::2", s)
		}
		stacks = append(stacks, a.Unmap())
	}
	if len(hosts) == 0 || len(stacks) == 0 {
		return cfg, errors.New("--host-addr and --stack-addr are required")
	}
	used := map[int]bool{}
	for _, h := range hosts {
		found := false
		for i, a := range stacks {
			if used[i] || a.Is4() != h.Addr().Unmap().Is4() {
				continue
			}
			used[i], found = true, true
			cfg.Addrs = append(cfg.Addrs, tunstack.Pair{Host: h, Stack: a})
			break
		}
		if !found {
			return cfg, fmt.Errorf("--host-addr %v has no --stack-addr of the same family", h)
		}
	}
	for i, a := range stacks {
		if !used[i] {
			return cfg, fmt.Errorf("--stack-addr %v has no --host-addr of the same family", a)
		}
	}
	if err := cfg.Check(); err != nil {
		var ae *tunstack.AddrError
		if errors.As(err, &ae) {
			return cfg, fmt.Errorf("--host-addr %v, --stack-addr %v: %s", ae.Pair.Host, ae.Pair.Stack, ae.Reason)
		}
		return cfg, err
	}
	return cfg, nil
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

// tunNet is the stack on its TUN device, and the capture file --pcap
// opened for it.
type tunNet struct {
	*tunstack.Net
	pcapFile *os.File
}

// open creates the --pcap file, if asked for, and the stack on the TUN
// device that cfg (from config) describes.
func (f *tunFlags) open(cfg tunstack.Config) (*tunNet, error) {
	n := &tunNet{}
	if f.pcap != "" {
		var err error
		if n.pcapFile, err = os.Create(f.pcap); err != nil {
			return nil, fmt.Errorf("--pcap: %w", err)
		}
		cfg.Pcap = n.pcapFile
	}
	var err error
	if n.Net, err = tunstack.New(cfg); err != nil {
		if n.pcapFile != nil {
			n.pcapFile.Close()
		}
		return nil, err
	}
	return n, nil
}

// Close closes the stack (aborting what is still open), the device (which
// removes the interface) and the capture.
func (n *tunNet) Close() error {
	err := n.Net.Close()
	if n.pcapFile != nil {
		if e := n.pcapFile.Close(); err == nil {
			err = e
		}
	}
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

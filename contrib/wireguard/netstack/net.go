package netstack

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/synack/synack/stack"
)

// Net is the stack behind a device made by CreateNetTUN, with the
// methods of wireguard-go's netstack.Net.
type Net struct {
	s          *stack.Stack
	has4, has6 bool
	resolver   *net.Resolver
}

func tcpAddrPort(a *net.TCPAddr) netip.AddrPort {
	if a == nil {
		return netip.AddrPort{}
	}
	return a.AddrPort()
}

func udpAddrPort(a *net.UDPAddr) netip.AddrPort {
	if a == nil {
		return netip.AddrPort{}
	}
	return a.AddrPort()
}

// DialContextTCPAddrPort connects to addr; ctx bounds the connect.
func (n *Net) DialContextTCPAddrPort(ctx context.Context, addr netip.AddrPort) (*stack.TCPConn, error) {
	return n.s.DialTCP(ctx, addr)
}

// DialContextTCP connects to addr; ctx bounds the connect.
func (n *Net) DialContextTCP(ctx context.Context, addr *net.TCPAddr) (*stack.TCPConn, error) {
	return n.s.DialTCP(ctx, tcpAddrPort(addr))
}

// DialTCPAddrPort connects to addr.
func (n *Net) DialTCPAddrPort(addr netip.AddrPort) (*stack.TCPConn, error) {
	return n.s.DialTCP(context.Background(), addr)
}

// DialTCP connects to addr.
func (n *Net) DialTCP(addr *net.TCPAddr) (*stack.TCPConn, error) {
	return n.s.DialTCP(context.Background(), tcpAddrPort(addr))
}

// ListenTCPAddrPort listens on addr (an unspecified or zero address: on
// every address).
func (n *Net) ListenTCPAddrPort(addr netip.AddrPort) (*stack.Listener, error) {
	return n.s.ListenTCP(addr, 0)
}

// ListenTCP listens on addr (nil: every address, an ephemeral port).
func (n *Net) ListenTCP(addr *net.TCPAddr) (*stack.Listener, error) {
	return n.s.ListenTCP(tcpAddrPort(addr), 0)
}

// DialUDPAddrPort opens a UDP socket bound to laddr (zero: every address,
// an ephemeral port) and, when raddr is valid, connected to it.
func (n *Net) DialUDPAddrPort(laddr, raddr netip.AddrPort) (*stack.UDPConn, error) {
	if raddr.IsValid() {
		return n.s.DialUDP("udp", laddr, raddr)
	}
	return n.s.ListenUDP("udp", laddr)
}

// ListenUDPAddrPort opens an unconnected UDP socket bound to laddr.
func (n *Net) ListenUDPAddrPort(laddr netip.AddrPort) (*stack.UDPConn, error) {
	return n.s.ListenUDP("udp", laddr)
}

// DialUDP is DialUDPAddrPort with net addresses (nil: none).
func (n *Net) DialUDP(laddr, raddr *net.UDPAddr) (*stack.UDPConn, error) {
	return n.DialUDPAddrPort(udpAddrPort(laddr), udpAddrPort(raddr))
}

// ListenUDP is ListenUDPAddrPort with a net address (nil: every address,
// an ephemeral port).
func (n *Net) ListenUDP(laddr *net.UDPAddr) (*stack.UDPConn, error) {
	return n.ListenUDPAddrPort(udpAddrPort(laddr))
}

// LookupHost resolves host through the DNS servers given to
// CreateNetTUN, over the tunnel.
func (n *Net) LookupHost(host string) ([]string, error) {
	return n.LookupContextHost(context.Background(), host)
}

// LookupContextHost resolves host through the DNS servers given to
// CreateNetTUN, over the tunnel: an IP address is returned as it is;
// names are asked for the families the device has addresses of (A for
// IPv4, AAAA for IPv6), as rooted names (no search list), as
// wireguard-go's package does. It is Go's own resolver (stack.Resolver),
// so /etc/hosts and resolv.conf's timeout and attempts still apply.
func (n *Net) LookupContextHost(ctx context.Context, host string) ([]string, error) {
	if host == "" || (!n.has4 && !n.has6) {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return []string{ip.String()}, nil
	}
	network := "ip"
	switch {
	case !n.has6:
		network = "ip4"
	case !n.has4:
		network = "ip6"
	}
	// Asked as a rooted name, as wireguard-go's package asks it: the
	// search list of the host's resolv.conf (names of the host's own
	// networks) must not travel to the tunnel's DNS server.
	name := host
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	ips, err := n.resolver.LookupNetIP(ctx, network, name)
	if err != nil {
		return nil, err
	}
	addrs := make([]string, len(ips))
	for i, ip := range ips {
		addrs[i] = ip.Unmap().String()
	}
	return addrs, nil
}

// DialContext connects on network "tcp", "udp" or "ping", each with an
// optional 4 or 6, to address ("host:port", or a host for ping), the
// host resolved through LookupContextHost; the addresses it gives are
// tried in turn, each with a share of ctx's deadline, as the net
// package's dialer does.
func (n *Net) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if ctx == nil {
		panic("nil context")
	}
	proto, fam := network, byte(0)
	if k := len(network); k > 0 && (network[k-1] == '4' || network[k-1] == '6') {
		proto, fam = network[:k-1], network[k-1]
	}
	if proto != "tcp" && proto != "udp" && proto != "ping" {
		return nil, &net.OpError{Op: "dial", Net: network, Err: net.UnknownNetworkError(network)}
	}
	host, port := address, 0
	if proto != "ping" {
		h, ps, err := net.SplitHostPort(address)
		if err != nil {
			return nil, &net.OpError{Op: "dial", Net: network, Err: err}
		}
		p, err := strconv.ParseUint(ps, 10, 16)
		if err != nil {
			return nil, &net.OpError{Op: "dial", Net: network, Err: &net.AddrError{Err: "invalid port", Addr: address}}
		}
		host, port = h, int(p)
	}
	names, err := n.LookupContextHost(ctx, strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	var addrs []netip.AddrPort
	for _, a := range names {
		ip, err := netip.ParseAddr(a)
		if err != nil || (fam == '4' && !ip.Is4()) || (fam == '6' && !ip.Is6()) {
			continue
		}
		addrs = append(addrs, netip.AddrPortFrom(ip, uint16(port)))
	}
	if len(addrs) == 0 {
		return nil, &net.OpError{Op: "dial", Net: network, Err: &net.AddrError{Err: "no suitable address found", Addr: host}}
	}
	var first error
	for i, ap := range addrs {
		if err := ctx.Err(); err != nil {
			return nil, &net.OpError{Op: "dial", Net: network, Err: err}
		}
		dctx, cancel := shareDeadline(ctx, len(addrs)-i)
		var c net.Conn
		switch proto {
		case "tcp":
			c, err = n.s.DialTCP(dctx, ap)
		case "udp":
			c, err = n.s.DialUDP("udp", netip.AddrPort{}, ap)
		case "ping":
			c, err = n.DialPingAddr(netip.Addr{}, ap.Addr())
		}
		cancel()
		if err == nil {
			return c, nil
		}
		if first == nil {
			first = err
		}
	}
	return nil, first
}

// shareDeadline gives one of remaining addresses its share of ctx's
// deadline (net.Dialer's partialDeadline: an equal split, at least 2 s
// when there is that much left).
func shareDeadline(ctx context.Context, remaining int) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !ok || remaining <= 1 {
		return context.WithCancel(ctx)
	}
	left := time.Until(dl)
	share := left / time.Duration(remaining)
	if const2 := 2 * time.Second; share < const2 {
		share = min(const2, left)
	}
	return context.WithTimeout(ctx, share)
}

// Dial is DialContext without a context.
func (n *Net) Dial(network, address string) (net.Conn, error) {
	return n.DialContext(context.Background(), network, address)
}

var errNoAddress = errors.New("ping dial: invalid address")

package stack

import (
	"iter"
	"net"
	"net/netip"
	"syscall"

	"github.com/synack/synack/wire"
)

// The forwarder: a listener for TCP connections to any address and port
// that arrive on a link, the way tun2socks, Tailscale and wireguard-go's
// users terminate traffic routed into a TUN device (gVisor calls it
// promiscuous mode plus tcp.Forwarder). The SYN's destination becomes the
// connection's local address: Tuple().Local (and LocalAddr) of an accepted
// connection is where the peer meant to go.
//
// It is a *Listener like any other, so it has the same SYN queue, SYN
// cookies, rate limits (Options.SynRateLimit), accept queue, deadlines and
// Close. What differs:
//
//   - it takes a segment only when no connection, TIME-WAIT record or
//     ordinary listener does: a listener on one of our addresses keeps its
//     port, and a wildcard listener still takes only our own addresses;
//   - the stack accepts TCP to a destination that is not one of its
//     addresses only while a forwarder is installed, and only on the links
//     it covers; the martian source checks (martian.go) apply as before,
//     and destinations no host may be (multicast, broadcast, 0/8, class E,
//     loopback) are still dropped (RFC 1122 3.2.1.3, RFC 9293 MUST-57).
//     UDP to a foreign address is taken only by the UDP forwarder
//     (ListenUDPAny, forward_udp.go), and everything else (ICMP) is
//     dropped as before, counted in InAddrErrors;
//   - the SYN queue is bounded by ForwarderOptions.MaxInFlight instead of
//     Options.SynBacklog. A SYN beyond it is treated as a listener treats
//     one that finds its SYN queue full: answered with a SYN cookie under
//     the default SynCookiesAuto (or SynCookiesAlways), dropped under
//     SynCookiesOff. Cookies keep the bound true under a SYN flood (they
//     hold no state) while real clients still get through, which is what
//     a forwarder in front of a whole network needs more than a listener
//     does; dropping is there for who prefers the peer to retry.
//
// The handshake completes before Accept returns the connection, so a
// relay learns that the destination refuses only afterwards; it can then
// reset the connection (SetLinger(0), Close), which is what `synack
// forward` does.
//
// Replies leave on the link the SYN came in on (the connection's link),
// not by the routing table: the forwarded address is not ours to route
// from. ICMP errors about a forwarded connection are addressed to the
// foreign address and so are not delivered to it.

// DefaultMaxInFlight is ForwarderOptions.MaxInFlight's default.
const DefaultMaxInFlight = 1024

// ForwarderOptions configures ListenAny. The zero value is usable.
type ForwarderOptions struct {
	// NIC limits the forwarder to segments arriving on one link; 0 means
	// every link added with AddLink (never the loopback link).
	NIC NICID
	// MaxInFlight bounds the handshakes in flight: connections past
	// their SYN that have not completed the handshake (the SYN queue).
	// Default DefaultMaxInFlight; beyond it, see SynCookieMode.
	MaxInFlight int
	// Backlog bounds the connections that completed the handshake and
	// wait for Accept. Default Options.ListenBacklog.
	Backlog int
	// Conn is what the forwarded connections are made with (buffer
	// sizes, congestion control, keep-alive); the zero value keeps
	// Options.TCP's.
	Conn ConnConfig
}

// forwarder is the stack's installed forwarder, if any.
type forwarder struct {
	l           *Listener
	nic         NICID
	maxInFlight int
}

// ListenAny installs the forwarder: a Listener that accepts TCP
// connections to any address and port arriving on the links opts names,
// which no other connection or listener takes (see the comment at the top
// of forward.go). Accepted connections have the original destination as
// their local address. Close the Listener to uninstall it. A stack has at
// most one forwarder: a second ListenAny fails with EADDRINUSE.
func (s *Stack) ListenAny(opts ForwarderOptions) (*Listener, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fail := func(err error) error { return opError("listen", "bind", netip.AddrPort{}, netip.AddrPort{}, err) }
	switch {
	case s.closed:
		return nil, fail(net.ErrClosed)
	case s.cfgErr != nil:
		return nil, fail(s.cfgErr)
	case s.fwd.l != nil:
		return nil, fail(syscall.EADDRINUSE)
	case opts.NIC < 0 || int(opts.NIC) > len(s.nics):
		return nil, fail(syscall.ENODEV)
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = DefaultMaxInFlight
	}
	if opts.Backlog <= 0 {
		opts.Backlog = s.opts.ListenBacklog
	}
	if err := s.checkConnConfig(opts.Conn); err != nil {
		return nil, fail(err)
	}
	l := s.newListener(netip.AddrPort{}, false, opts.Backlog)
	l.cc = opts.Conn
	s.fwd = forwarder{l: l, nic: opts.NIC, maxInFlight: opts.MaxInFlight}
	return l, nil
}

// forwards reports whether a packet to p.Dst, which is not one of our
// addresses, is taken for a forwarder: TCP or UDP (forward_udp.go) while
// that protocol's forwarder is installed and covers n, to an address a
// host may have.
func (s *Stack) forwards(n *nic, p *wire.IPPacket) bool {
	if !forwardable(p.Dst) {
		return false
	}
	switch p.Protocol {
	case wire.ProtocolTCP:
		return s.fwd.l != nil && s.fwdCovers(n)
	case wire.ProtocolUDP:
		return s.udpFwdCovers(n)
	}
	return false
}

// fwdCovers reports whether the forwarder takes segments arriving on n.
func (s *Stack) fwdCovers(n *nic) bool {
	return n != s.lo && (s.fwd.nic == 0 || s.fwd.nic == n.id)
}

// forwardable reports whether dst may be a host's unicast address: not
// unspecified, multicast, loopback, link-local multicast or IPv4-mapped,
// nor in 0/8 or 240/4 (which holds 255.255.255.255). A directed
// broadcast of someone else's network cannot be told from a host address
// and is forwarded (the far end's kernel drops it).
func forwardable(dst netip.Addr) bool {
	if dst.Is4() {
		a := dst.As4()
		return a[0] != 0 && a[0] != 127 && a[0] < 224
	}
	return !dst.IsUnspecified() && !dst.IsMulticast() && !dst.IsLoopback() && !ipv6Mapped.Contains(dst)
}

// listenerFor finds the listener for a segment to local arriving on n: an
// ordinary listener for our own addresses, else the forwarder if it
// covers n.
func (s *Stack) listenerFor(n *nic, local netip.AddrPort) *Listener {
	if _, ours := s.local[local.Addr()]; ours {
		if l := s.lookupListener(local); l != nil {
			return l
		}
	}
	if s.fwd.l != nil && s.fwdCovers(n) {
		return s.fwd.l
	}
	return nil
}

// synBacklog is the bound of l's SYN queue.
func (s *Stack) synBacklog(l *Listener) int {
	if l == s.fwd.l {
		return s.fwd.maxInFlight
	}
	return s.opts.SynBacklog
}

// forwarderClosed uninstalls the forwarder when l is it.
func (s *Stack) forwarderClosed(l *Listener) {
	if l == s.fwd.l {
		s.fwd = forwarder{}
	}
}

// listenerSets yields the listeners by port and then the forwarder, if
// installed, alone: every listener, for Connections, Listeners and the
// per-state counts.
func (s *Stack) listenerSets() iter.Seq2[uint16, []*Listener] {
	return func(yield func(uint16, []*Listener) bool) {
		for port, ls := range s.lports {
			if !yield(port, ls) {
				return
			}
		}
		if s.fwd.l != nil {
			yield(0, []*Listener{s.fwd.l})
		}
	}
}

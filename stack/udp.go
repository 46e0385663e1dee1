package stack

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/synack/synack/clock"
	"github.com/synack/synack/wire"
)

// UDP (RFC 768, RFC 1122 4.1). A UDPConn is a socket: bound to a local
// address and port, connected or not to one remote. It keeps no state
// machine and no timers; what arrives is queued on it under the stack's
// lock (deliverUDP) and what is written goes to the link at once, in the
// writer's goroutine. Reads block as TCP's do (door.go's block and wait):
// no goroutine per socket.
//
// Behaviour follows Linux's:
//   - a datagram to a port with no socket is counted (NoPorts) and
//     answered with ICMP port unreachable (RFC 1122 4.1.3.1), at most
//     icmpErrorLimit a second over the stack;
//   - an ICMP error quoting one of our datagrams is reported on the next
//     Read or Write of a connected socket, once, when it is a hard error
//     (port or protocol unreachable, RFC 1122 4.1.3.3 leaves the choice to
//     the application; Linux without IP_RECVERR reports exactly these),
//     and ignored for an unconnected one;
//   - a full receive queue drops the datagram (RcvbufErrors, InErrors);
//   - a datagram the link's MTU cannot carry in one packet is sent in
//     fragments over IPv4 (RFC 791 section 3.2) and fails with EMSGSIZE
//     over IPv6 (no Fragment header is built yet); fragments received
//     are reassembled (reasm.go).

// DefaultUDPReadBuffer is the receive queue bound of a new UDPConn, in
// bytes charged as udpCharge says: Linux's net.core.rmem_default.
const DefaultUDPReadBuffer = 212992

// udpOverhead is what a queued datagram costs besides its payload, so
// that a flood of empty datagrams fills the queue too (Linux charges an
// skb's truesize, some 700 bytes more than the payload).
const udpOverhead = 256

func udpCharge(n int) int { return n + udpOverhead }

// icmpErrorLimit bounds the ICMP errors the stack sends: Linux's
// net.ipv4.icmp_msgs_per_sec and icmp_msgs_burst (RFC 1812 4.3.2.8, RFC
// 4443 2.4 (f): errors MUST be rate-limited).
var icmpErrorLimit = RateLimit{Rate: 1000, Burst: 50}

// UDPConn is a UDP socket: a net.PacketConn, and a net.Conn once
// connected (DialUDP, DialContext). Its methods are safe for concurrent
// use.
type UDPConn struct {
	s      *Stack
	net    string         // "udp", "udp4" or "udp6", for errors
	laddr  netip.AddrPort // the zero Addr: every address of both families; an unspecified one: every address of its family
	raddr  netip.AddrPort // valid once connected
	v6only bool

	// Under s.mu.
	dgramSock               // the receive queue and its readers (dgram.go)
	err       syscall.Errno // an ICMP error to report on the next Read or Write; 0 none
	removed   bool          // out of the port table
}

var (
	_ net.PacketConn = (*UDPConn)(nil)
	_ net.Conn       = (*UDPConn)(nil)
)

// udpState is the stack's UDP part: the sockets by local port, RFC 6056's
// table of counters for UDP's ephemeral ports, and the ICMP error bucket.
type udpState struct {
	ports      map[uint16][]*UDPConn
	portTab    [256]uint16
	icmpLast   int64
	icmpTokens float64
	frag       []byte // a datagram being cut into IPv4 fragments
}

// isUDP reports whether network names UDP, for the dispatch of
// DialContext.
func isUDP(network string) bool {
	return network == "udp" || network == "udp4" || network == "udp6"
}

// asTCPNetwork maps a UDP network name to its TCP twin, whose address
// rules (parseDialAddr, parseListenAddr) are the same.
func asTCPNetwork(network string) (string, error) {
	if !isUDP(network) {
		return "", net.UnknownNetworkError(network)
	}
	return "tcp" + network[3:], nil
}

// ListenPacket opens an unconnected UDP socket on address ("host:port",
// host an IP address or empty for every address) for network "udp",
// "udp4" or "udp6", like net.ListenPacket. Port 0 chooses an ephemeral
// port. ctx only bounds the call (which never blocks).
func (s *Stack) ListenPacket(ctx context.Context, network, address string) (net.PacketConn, error) {
	if err := ctx.Err(); err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	tn, err := asTCPNetwork(network)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	ap, v6only, err := parseListenAddr(tn, address)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	u, err := s.openUDP(network, ap, v6only, netip.AddrPort{})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// ListenUDP opens an unconnected UDP socket on laddr for network "udp",
// "udp4" or "udp6", like net.ListenUDP. An unspecified address (or the
// zero Addr) takes every address: of both families for "udp" (unless
// it is 0.0.0.0), of one for "udp4" and "udp6". Port 0 chooses an
// ephemeral port.
func (s *Stack) ListenUDP(network string, laddr netip.AddrPort) (*UDPConn, error) {
	tn, err := asTCPNetwork(network)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	host := ""
	if a := laddr.Addr(); a.IsValid() {
		host = a.Unmap().String()
	}
	ap, v6only, err := parseListenAddr(tn, net.JoinHostPort(host, "0"))
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	return s.openUDP(network, netip.AddrPortFrom(ap.Addr(), laddr.Port()), v6only, netip.AddrPort{})
}

// DialUDP opens a UDP socket connected to raddr, like net.DialUDP: it
// receives only what raddr sends, Write sends there, and ICMP port
// unreachable in answer to what it sent ends its next Read or Write with
// ECONNREFUSED. A zero laddr lets the route choose the address and an
// ephemeral port; a zero port in laddr chooses the port.
func (s *Stack) DialUDP(network string, laddr, raddr netip.AddrPort) (*UDPConn, error) {
	if _, err := asTCPNetwork(network); err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	ra := raddr.Addr().Unmap()
	if (network == "udp4" && !ra.Is4()) || (network == "udp6" && ra.Is4()) {
		return nil, &net.OpError{Op: "dial", Net: network, Addr: udpAddr(raddr), Err: &net.AddrError{Err: "address family mismatch", Addr: raddr.String()}}
	}
	return s.openUDP(network, netip.AddrPortFrom(laddr.Addr().Unmap(), laddr.Port()), false, netip.AddrPortFrom(ra, raddr.Port()))
}

// dialUDPContext is DialContext for the UDP networks.
func (s *Stack) dialUDPContext(ctx context.Context, network, address string) (net.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	tn, _ := asTCPNetwork(network)
	raddr, err := parseDialAddr(tn, address)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	u, err := s.openUDP(network, netip.AddrPort{}, false, raddr)
	if err != nil {
		return nil, err
	}
	return u, nil
}

// openUDP makes a socket bound to laddr (a zero port chosen here) and,
// when raddr is valid, connected to it (the source address then chosen
// by the route unless laddr names one).
func (s *Stack) openUDP(network string, laddr netip.AddrPort, v6only bool, raddr netip.AddrPort) (*UDPConn, error) {
	op, sc := "listen", "bind"
	if raddr.IsValid() {
		op, sc = "dial", "connect"
	}
	fail := func(sc string, err error) error { return udpOpError(op, sc, network, laddr, raddr, err) }
	s.mu.Lock()
	defer s.unlock()
	if s.closed {
		return nil, fail(sc, net.ErrClosed)
	}
	la := laddr.Addr()
	if la.IsValid() && !la.IsUnspecified() {
		if _, ours := s.local[la]; !ours {
			return nil, fail("bind", syscall.EADDRNOTAVAIL)
		}
	}
	if raddr.IsValid() {
		ra := raddr.Addr()
		if !ra.IsValid() || ra.IsUnspecified() || ra.IsMulticast() || raddr.Port() == 0 {
			return nil, fail("connect", syscall.EINVAL)
		}
		_, src, ok := s.routeTo(ra)
		if !ok {
			return nil, fail("connect", syscall.ENETUNREACH)
		}
		if la.IsValid() && !la.IsUnspecified() {
			if la.Is4() != ra.Is4() {
				return nil, fail("connect", syscall.EAFNOSUPPORT)
			}
			src = la
		}
		laddr = netip.AddrPortFrom(src, laddr.Port())
	}
	port := laddr.Port()
	if port == 0 {
		var ok bool
		if port, ok = s.pickUDPPort(laddr.Addr(), raddr); !ok {
			return nil, fail("bind", syscall.EADDRINUSE)
		}
	} else if !s.udpPortFree(laddr.Addr(), port) {
		return nil, fail("bind", syscall.EADDRINUSE)
	}
	u := &UDPConn{
		s: s, net: network, laddr: netip.AddrPortFrom(laddr.Addr(), port), raddr: raddr,
		v6only: v6only, dgramSock: dgramSock{rcvbuf: DefaultUDPReadBuffer},
	}
	if s.udp.ports == nil {
		s.udp.ports = make(map[uint16][]*UDPConn)
	}
	s.udp.ports[port] = append(s.udp.ports[port], u)
	return u, nil
}

// udpPortFree reports whether a socket may bind port on a: no socket
// holds it on an address that overlaps a (listenOverlap: the wildcards
// cover their families). Without SO_REUSEADDR, as Linux.
func (s *Stack) udpPortFree(a netip.Addr, port uint16) bool {
	for _, o := range s.udp.ports[port] {
		if listenOverlap(o.laddr.Addr(), a) {
			return false
		}
	}
	return true
}

// pickUDPPort chooses an ephemeral port with RFC 6056 Algorithm 4, as
// pickEphemeral does for TCP, but with UDP's own table of counters and
// the UDP sockets as what makes a port busy.
func (s *Stack) pickUDPPort(src netip.Addr, raddr netip.AddrPort) (uint16, bool) {
	first, last := uint32(s.opts.FirstEphemeral), uint32(s.opts.LastEphemeral)
	num := last - first + 1
	offset, idx := s.portHash(src, raddr)
	for range num {
		port := uint16(first + (offset+uint32(s.udp.portTab[idx]))%num)
		s.udp.portTab[idx]++
		if s.udpPortFree(src, port) {
			return port, true
		}
	}
	return 0, false
}

// lookupUDP finds the socket for a datagram from remote to local: a
// connected socket beats an unconnected one, and an exact local address
// a wildcard (Linux's compute_score has the same order).
func (s *Stack) lookupUDP(local, remote netip.AddrPort) *UDPConn {
	var best *UDPConn
	bestScore := -1
	for _, u := range s.udp.ports[local.Port()] {
		score := 0
		switch a := u.laddr.Addr(); {
		case a == local.Addr():
			score += 2
		case !a.IsValid():
		case a.IsUnspecified() && a.Is4() == local.Addr().Is4():
			score++
		default:
			continue
		}
		if u.raddr.IsValid() {
			if u.raddr != remote {
				continue
			}
			score += 4
		}
		if score > bestScore {
			best, bestScore = u, score
		}
	}
	return best
}

// deliverUDP hands a datagram to its socket's queue, or answers it with
// port unreachable. pkt is the whole IP packet p was parsed from, quoted
// in that answer.
func (s *Stack) deliverUDP(n *nic, p *wire.IPPacket, pkt []byte, now time.Time, verify bool) {
	c := &s.ctr.UDP
	h, payload, err := wire.ParseUDP(p.Payload, p.Src, p.Dst, verify)
	if err != nil {
		c.InErrors.add(1)
		if errors.Is(err, wire.ErrChecksum) {
			c.InCsumErrors.add(1)
		}
		return
	}
	from := netip.AddrPortFrom(p.Src, h.SrcPort)
	var u *UDPConn
	if _, ours := s.local[p.Dst]; ours { // else for the UDP forwarder (forward_udp.go)
		u = s.lookupUDP(netip.AddrPortFrom(p.Dst, h.DstPort), from)
	}
	if u == nil && s.forwardUDP(n, from, netip.AddrPortFrom(p.Dst, h.DstPort), payload) {
		return
	}
	if u == nil {
		c.NoPorts.add(1)
		s.portUnreachable(n, p, pkt, now)
		return
	}
	charge := udpCharge(len(payload))
	if len(u.q) > 0 && u.qbytes+charge > u.rcvbuf {
		c.RcvbufErrors.add(1)
		c.InErrors.add(1) // Linux counts both
		return
	}
	u.q = append(u.q, datagram{from: from, data: bytes.Clone(payload)})
	u.qbytes += charge
	c.InDatagrams.add(1)
	u.wake()
}

// portUnreachable answers a datagram to a port with no socket (RFC 1122
// 4.1.3.1; RFC 792 type 3 code 3, RFC 4443 3.1 type 1 code 4), quoting
// as much of it as the message may carry. deliver has already made sure
// the datagram was sent to one of our unicast addresses from a source
// that is not a martian, so an error may be sent (RFC 1122 3.2.2, RFC
// 4443 2.4 (e)).
func (s *Stack) portUnreachable(n *nic, p *wire.IPPacket, pkt []byte, now time.Time) {
	if !takeToken(icmpErrorLimit, &s.udp.icmpLast, &s.udp.icmpTokens, now) {
		s.ctr.ICMP.OutRateLimitGlobal.add(1)
		return
	}
	// The quote ends where the IP packet does (no link padding).
	if off := cap(pkt) - cap(p.Payload); off >= 0 && off+len(p.Payload) <= len(pkt) {
		pkt = pkt[:off+len(p.Payload)]
	}
	if m, _, found := s.routeTo(p.Src); found {
		n = m
	}
	b := n.next()
	if p.Version == 4 {
		m := wire.NewICMPv4Unreachable(wire.ICMPv4PortUnreachable, pkt)
		b = s.appendIP(b, p.Dst, p.Src, wire.ProtocolICMP, wire.ICMPHeaderLen+len(m.Data))
		b = wire.AppendICMPv4(b, &m)
	} else {
		m := wire.NewICMPv6Unreachable(wire.ICMPv6PortUnreachable, pkt)
		b = s.appendIP(b, p.Dst, p.Src, wire.ProtocolICMPv6, wire.ICMPHeaderLen+len(m.Data))
		b = wire.AppendICMPv6(b, &m, p.Dst, p.Src)
	}
	n.commit(b)
	s.ctr.ICMP.OutMsgs.add(1)
	s.ctr.ICMP.OutDestUnreachs.add(1)
}

// udpICMPError takes an ICMP error that quotes one of our datagrams: a
// hard one is kept for the connected socket that sent it, whose next Read
// or Write returns it (Linux without IP_RECVERR); the rest, and errors
// for unconnected sockets, are ignored (RFC 1122 4.1.3.3 lets UDP pass
// them up; an unconnected socket has no one call to pass them to).
func (s *Stack) udpICMPError(q *wire.ICMPQuote, errno syscall.Errno, hard bool) {
	local := netip.AddrPortFrom(q.Src.Unmap(), q.SrcPort)
	remote := netip.AddrPortFrom(q.Dst.Unmap(), q.DstPort)
	u := s.lookupUDP(local, remote)
	if u == nil || !u.raddr.IsValid() {
		return
	}
	s.ctr.ICMP.InErrorsMatched.add(1)
	if !hard {
		return
	}
	u.err = errno
	u.wake()
}

// closeUDPLocked closes every UDP socket, for Stack.Close; it returns
// the gates to broadcast once the lock is released.
func (s *Stack) closeUDPLocked() []*clock.Gate {
	var gates []*clock.Gate
	for _, us := range s.udp.ports {
		for _, u := range us {
			u.closed, u.removed = true, true
			u.q, u.qbytes = nil, 0
			if u.gate != nil {
				gates = append(gates, u.gate)
			}
		}
	}
	s.udp.ports = nil
	return gates
}

// udpAddr converts an address for net.OpError; the zero AddrPort gives
// nil.
func udpAddr(ap netip.AddrPort) net.Addr {
	if !ap.IsValid() {
		return nil
	}
	return net.UDPAddrFromAddrPort(ap)
}

// udpOpError is opError for UDP: the same shapes, Net "udp".
func udpOpError(op, syscallName, network string, src, dst netip.AddrPort, err error) error {
	if err == nil {
		return nil
	}
	var errno syscall.Errno
	if errors.As(err, &errno) && err == error(errno) {
		err = os.NewSyscallError(syscallName, errno)
	}
	return &net.OpError{Op: op, Net: network, Source: udpAddr(src), Addr: udpAddr(dst), Err: err}
}

func (u *UDPConn) opErr(op, sc string, dst netip.AddrPort, err error) error {
	return udpOpError(op, sc, u.net, u.localAddrPort(), dst, err)
}

// localAddrPort is LocalAddr as a netip.AddrPort: the dual wildcard is
// reported as [::], as Go's net package does.
func (u *UDPConn) localAddrPort() netip.AddrPort {
	if !u.laddr.Addr().IsValid() {
		return netip.AddrPortFrom(netip.IPv6Unspecified(), u.laddr.Port())
	}
	return u.laddr
}

// ReadFromUDPAddrPort reads one datagram into p and returns its size and
// sender. A datagram longer than p is cut to it, the rest discarded (as
// recvfrom without MSG_TRUNC). It blocks until a datagram arrives, the
// read deadline passes (os.ErrDeadlineExceeded) or the socket is closed
// (net.ErrClosed); on a connected socket a pending ICMP error ends it
// (ECONNREFUSED for port unreachable).
func (u *UDPConn) ReadFromUDPAddrPort(p []byte) (n int, addr netip.AddrPort, err error) {
	n, addr, err = u.read(p)
	if err != nil {
		return 0, netip.AddrPort{}, u.opErr("read", "recvfrom", u.raddr, err)
	}
	return n, addr, nil
}

func (u *UDPConn) read(p []byte) (n int, addr netip.AddrPort, err error) {
	n, g, err := u.dgramSock.read(u.s, p, func() error {
		if u.err != 0 {
			e := u.err
			u.err = 0
			return e
		}
		return nil
	})
	return n, g.from, err
}

// ReadFrom is net.PacketConn's ReadFromUDPAddrPort.
func (u *UDPConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, addr, err := u.ReadFromUDPAddrPort(p)
	if err != nil {
		return 0, nil, err
	}
	return n, net.UDPAddrFromAddrPort(addr), nil
}

// ReadFromUDP is ReadFrom with the sender as a *net.UDPAddr.
func (u *UDPConn) ReadFromUDP(p []byte) (int, *net.UDPAddr, error) {
	n, addr, err := u.ReadFromUDPAddrPort(p)
	if err != nil {
		return 0, nil, err
	}
	return n, net.UDPAddrFromAddrPort(addr), nil
}

// Read reads one datagram, as ReadFrom without the sender; on a
// connected socket only the peer's datagrams arrive.
func (u *UDPConn) Read(p []byte) (int, error) {
	n, _, err := u.read(p)
	if err != nil {
		return 0, u.opErr("read", "read", u.raddr, err)
	}
	return n, nil
}

// WriteToUDPAddrPort sends p as one datagram to addr. It does not block:
// the datagram goes to the link at once, in IPv4 fragments if the link's
// MTU calls for them. It fails with EMSGSIZE when p is over 65507 bytes
// (IPv4) or 65527 (IPv6) or, over IPv6, too big for the link's MTU,
// ENETUNREACH without a route, net.ErrWriteToConnected on a connected
// socket, os.ErrDeadlineExceeded after the write deadline, and with a
// pending ICMP error on a connected socket.
func (u *UDPConn) WriteToUDPAddrPort(p []byte, addr netip.AddrPort) (int, error) {
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	if u.raddr.IsValid() {
		return 0, &net.OpError{Op: "write", Net: u.net, Source: udpAddr(u.localAddrPort()), Addr: udpAddr(addr), Err: net.ErrWriteToConnected}
	}
	if err := u.send(p, addr); err != nil {
		return 0, u.opErr("write", "sendto", addr, err)
	}
	return len(p), nil
}

// WriteTo is net.PacketConn's WriteToUDPAddrPort; addr must be a
// *net.UDPAddr.
func (u *UDPConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	a, ok := addr.(*net.UDPAddr)
	if !ok || a == nil {
		return 0, &net.OpError{Op: "write", Net: u.net, Source: udpAddr(u.localAddrPort()), Addr: addr, Err: syscall.EINVAL}
	}
	return u.WriteToUDPAddrPort(p, a.AddrPort())
}

// WriteToUDP is WriteTo with a *net.UDPAddr.
func (u *UDPConn) WriteToUDP(p []byte, addr *net.UDPAddr) (int, error) { return u.WriteTo(p, addr) }

// Write sends p as one datagram to the peer of a connected socket
// (EDESTADDRREQ on an unconnected one); errors as WriteToUDPAddrPort's.
func (u *UDPConn) Write(p []byte) (int, error) {
	if !u.raddr.IsValid() {
		return 0, u.opErr("write", "write", netip.AddrPort{}, syscall.EDESTADDRREQ)
	}
	if err := u.send(p, u.raddr); err != nil {
		return 0, u.opErr("write", "write", u.raddr, err)
	}
	return len(p), nil
}

// maxUDPPayload is the most a UDP datagram can carry without IPv6
// jumbograms: the 16-bit IPv4 total length or IPv6 payload length, less
// the headers it covers.
func maxUDPPayload(v4 bool) int {
	if v4 {
		return 65535 - wire.IPv4MinHeaderLen - wire.UDPHeaderLen
	}
	return 65535 - wire.UDPHeaderLen
}

// send builds and queues the datagram p to dst.
func (u *UDPConn) send(p []byte, dst netip.AddrPort) error {
	s := u.s
	s.mu.Lock()
	defer s.unlock()
	if u.closed || s.closed {
		return net.ErrClosed
	}
	if !u.wdl.IsZero() && expired(s.clock.Now(), &u.wdl) {
		return os.ErrDeadlineExceeded
	}
	if u.err != 0 {
		e := u.err
		u.err = 0
		return e
	}
	ra := dst.Addr()
	if !ra.IsValid() || ra.IsUnspecified() || dst.Port() == 0 {
		return syscall.EINVAL
	}
	la := u.laddr.Addr()
	if la.IsValid() && la.Is4() != ra.Is4() || u.v6only && ra.Is4() {
		return syscall.EAFNOSUPPORT
	}
	n, src, ok := s.routeTo(ra)
	if !ok {
		return syscall.ENETUNREACH
	}
	if la.IsValid() && !la.IsUnspecified() {
		src = la
	}
	return s.sendUDP(n, netip.AddrPortFrom(src, u.laddr.Port()), dst, p)
}

// sendUDP builds the datagram p from src to dst and queues it on n, in
// IPv4 fragments if n's MTU calls for them. The lock is held.
func (s *Stack) sendUDP(n *nic, src, dst netip.AddrPort, p []byte) error {
	ra := dst.Addr()
	hdr := wire.IPv4MinHeaderLen
	if !ra.Is4() {
		hdr = wire.IPv6HeaderLen
	}
	h := wire.UDPHeader{SrcPort: src.Port(), DstPort: dst.Port()}
	if len(p) > maxUDPPayload(ra.Is4()) {
		return syscall.EMSGSIZE
	}
	if hdr+wire.UDPHeaderLen+len(p) > n.mtu {
		if !ra.Is4() || n.mtu < wire.IPv4MinHeaderLen+8 {
			return syscall.EMSGSIZE
		}
		s.udp.frag = wire.AppendUDP(s.udp.frag[:0], &h, p, src.Addr(), ra)
		s.sendFragments4(n, src.Addr(), ra, wire.ProtocolUDP, s.udp.frag)
		s.ctr.UDP.OutDatagrams.add(1)
		return nil
	}
	b := n.next()
	b = s.appendIP(b, src.Addr(), ra, wire.ProtocolUDP, wire.UDPHeaderLen+len(p))
	b = wire.AppendUDP(b, &h, p, src.Addr(), ra)
	n.commit(b)
	s.ctr.UDP.OutDatagrams.add(1)
	return nil
}

// sendFragments4 sends the IPv4 payload d from src to dst in fragments
// that fit n's MTU (RFC 791 section 3.2): every one but the last carries
// a multiple of 8 bytes and More Fragments, all share one identification
// (RFC 6864 section 4.1: unique for the source, destination and protocol
// while the datagram may live; the stack's counter serves). DF is clear.
func (s *Stack) sendFragments4(n *nic, src, dst netip.Addr, proto uint8, d []byte) {
	s.ctr.IP.OutRequests.add(1)
	hdr := &s.shards[0].hdr // s.mu is held for writing
	hdr.id++
	id := hdr.id
	per := (n.mtu - wire.IPv4MinHeaderLen) &^ 7
	for off := 0; off < len(d); off += per {
		end := min(off+per, len(d))
		h := &hdr.v4
		*h = wire.IPv4Header{ID: id, FragOff: uint16(off / 8), TTL: s.opts.TTL, Protocol: proto, Src: src, Dst: dst}
		if end < len(d) {
			h.Flags = wire.IPv4MoreFragments
		}
		b := n.next()
		b = wire.AppendIPv4(b, h, end-off)
		b = append(b, d[off:end]...)
		n.commit(b)
		s.ctr.IP.FragCreates.add(1)
	}
	s.ctr.IP.FragOKs.add(1)
}

// Close closes the socket: blocked reads return net.ErrClosed, queued
// datagrams are dropped and the port is free again.
func (u *UDPConn) Close() error {
	s := u.s
	s.mu.Lock()
	defer s.unlock()
	if u.closed {
		return u.opErr("close", "close", u.raddr, net.ErrClosed)
	}
	u.closed = true
	u.q, u.qbytes = nil, 0
	if !u.removed {
		u.removed = true
		port := u.laddr.Port()
		us := s.udp.ports[port]
		for i, o := range us {
			if o == u {
				us = append(us[:i:i], us[i+1:]...)
				break
			}
		}
		if len(us) == 0 {
			delete(s.udp.ports, port)
		} else {
			s.udp.ports[port] = us
		}
	}
	u.wake()
	return nil
}

// LocalAddr returns the bound address as a *net.UDPAddr ([::] for the
// dual wildcard).
func (u *UDPConn) LocalAddr() net.Addr { return net.UDPAddrFromAddrPort(u.localAddrPort()) }

// RemoteAddr returns the peer of a connected socket, nil otherwise.
func (u *UDPConn) RemoteAddr() net.Addr { return udpAddr(u.raddr) }

// LocalAddrPort and RemoteAddrPort are LocalAddr and RemoteAddr as
// netip.AddrPort (zero when not connected).
func (u *UDPConn) LocalAddrPort() netip.AddrPort  { return u.localAddrPort() }
func (u *UDPConn) RemoteAddrPort() netip.AddrPort { return u.raddr }

// SetDeadline sets the read and write deadlines.
func (u *UDPConn) SetDeadline(t time.Time) error { return u.setDeadline(t, true, true) }

// SetReadDeadline sets the deadline for reads, pending ones included.
func (u *UDPConn) SetReadDeadline(t time.Time) error { return u.setDeadline(t, true, false) }

// SetWriteDeadline sets the deadline for writes (which never block: a
// write after it fails).
func (u *UDPConn) SetWriteDeadline(t time.Time) error { return u.setDeadline(t, false, true) }

func (u *UDPConn) setDeadline(t time.Time, r, w bool) error {
	if err := u.dgramSock.setDeadline(u.s, t, r, w); err != nil {
		return u.opErr("set", "setsockopt", u.raddr, err)
	}
	return nil
}

// SetWriteBuffer is accepted as *net.UDPConn's is (SO_SNDBUF), and
// bounds nothing: a datagram goes to the link in the call that writes
// it, so there is no send queue to bound. A negative size is EINVAL.
func (u *UDPConn) SetWriteBuffer(bytes int) error {
	s := u.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.closed || s.closed {
		return u.opErr("set", "setsockopt", u.raddr, net.ErrClosed)
	}
	if bytes < 0 {
		return u.opErr("set", "setsockopt", u.raddr, os.NewSyscallError("setsockopt", syscall.EINVAL))
	}
	return nil
}

// SetReadBuffer bounds the receive queue to bytes (each datagram charged
// its size plus a fixed overhead); datagrams beyond it are dropped and
// counted in RcvbufErrors. As with SO_RCVBUF, a datagram is queued
// whenever the queue is empty, whatever its size.
func (u *UDPConn) SetReadBuffer(bytes int) error {
	s := u.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.closed || s.closed {
		return u.opErr("set", "setsockopt", u.raddr, net.ErrClosed)
	}
	u.rcvbuf = max(bytes, 0)
	return nil
}

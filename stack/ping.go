package stack

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/synack/synack/clock"
	"github.com/synack/synack/wire"
)

// ICMP echo sockets, shaped as Linux's ping sockets (socket(AF_INET,
// SOCK_DGRAM, IPPROTO_ICMP), net.ipv4.ping_group_range): the user writes
// an echo request message (type, code, checksum, identifier, sequence
// number, data; RFC 792 "Echo or Echo Reply Message", RFC 4443 4.1) and
// the socket fills in the identifier, which is its own (the ping socket's
// "port"), and the checksum (over the ICMPv6 pseudo-header for IPv6, RFC
// 4443 2.3). Echo replies carrying that identifier are queued on the
// socket whole (ICMP header and data, no IP header) for Read/ReadFrom.
// Echo requests the stack receives are still answered by the stack
// itself (input.go), never handed to a socket, as Linux does.
//
// Differences from Linux, on purpose or not done yet:
//   - a connected socket (raddr valid) takes replies from raddr only, as
//     a connected UDP socket takes datagrams (Linux matches a ping socket
//     on identifier and bound address only);
//   - ICMP errors quoting our echo requests are not reported to the
//     socket (Linux reports the hard ones on a connected socket);
//   - a reply dropped because the queue is full is not counted.

// PingConn is an ICMP echo socket for one address family: a
// net.PacketConn, and a net.Conn when made with a remote address. Its
// methods are safe for concurrent use.
type PingConn struct {
	s     *Stack
	v6    bool
	laddr netip.Addr // the family's unspecified address, or one of ours
	raddr netip.Addr // valid when connected
	id    uint16     // the echo identifier, unique in the family

	// Under s.mu.
	dgramSock      // the replies received and their readers (dgram.go); senders have port 0
	removed   bool // out of the identifier table
}

var (
	_ net.PacketConn = (*PingConn)(nil)
	_ net.Conn       = (*PingConn)(nil)
)

// pingState is the stack's part for ping sockets: the sockets by
// identifier, one table per family, and the counters of RFC 6056's
// Algorithm 4 that choose identifiers as they choose ports.
type pingState struct {
	socks   [2]map[uint16]*PingConn // [0] IPv4, [1] IPv6
	portTab [256]uint16
	frag    []byte // a message being cut into IPv4 fragments
}

func family(v6 bool) int {
	if v6 {
		return 1
	}
	return 0
}

// ListenPing opens an ICMP echo socket. laddr binds it to one of the
// stack's addresses (an invalid or unspecified one binds none); raddr,
// when valid, connects it: Write sends there, and only replies from there
// arrive. The family is that of raddr or laddr (EAFNOSUPPORT if they
// differ). Errors are *net.OpError with Net "ip4:icmp" or "ip6:ipv6-icmp":
// EINVAL when neither address is valid, EADDRNOTAVAIL for a laddr that is
// not ours, ENETUNREACH when no route reaches raddr, EADDRINUSE when
// every identifier is taken.
func (s *Stack) ListenPing(laddr, raddr netip.Addr) (*PingConn, error) {
	laddr, raddr = laddr.Unmap(), raddr.Unmap()
	v6 := laddr.Is6() || raddr.Is6()
	op, sc := "listen", "bind"
	if raddr.IsValid() {
		op, sc = "dial", "connect"
	}
	fail := func(sc string, err error) error {
		return pingOpError(op, sc, v6, laddr, raddr, err)
	}
	if !laddr.IsValid() && !raddr.IsValid() {
		return nil, fail(sc, syscall.EINVAL)
	}
	if laddr.IsValid() && raddr.IsValid() && laddr.Is4() != raddr.Is4() {
		return nil, fail(sc, syscall.EAFNOSUPPORT)
	}
	if !laddr.IsValid() {
		laddr = netip.IPv4Unspecified()
		if v6 {
			laddr = netip.IPv6Unspecified()
		}
	}
	s.mu.Lock()
	defer s.unlock()
	if s.closed {
		return nil, fail(sc, net.ErrClosed)
	}
	if !laddr.IsUnspecified() {
		if _, ours := s.local[laddr]; !ours {
			return nil, fail("bind", syscall.EADDRNOTAVAIL)
		}
	}
	src := laddr
	if raddr.IsValid() {
		if raddr.IsUnspecified() || raddr.IsMulticast() {
			return nil, fail("connect", syscall.EINVAL)
		}
		_, rsrc, ok := s.routeTo(raddr)
		if !ok {
			return nil, fail("connect", syscall.ENETUNREACH)
		}
		if src.IsUnspecified() {
			src = rsrc
		}
	}
	id, ok := s.pickPingID(v6, src, raddr)
	if !ok {
		return nil, fail("bind", syscall.EADDRINUSE)
	}
	pc := &PingConn{s: s, v6: v6, laddr: laddr, raddr: raddr, id: id, dgramSock: dgramSock{rcvbuf: DefaultUDPReadBuffer}}
	f := family(v6)
	if s.ping.socks[f] == nil {
		s.ping.socks[f] = make(map[uint16]*PingConn)
	}
	s.ping.socks[f][id] = pc
	return pc, nil
}

// pickPingID chooses a free echo identifier (1 to 65535; Linux never
// hands out 0 either) with RFC 6056's Algorithm 4 over the stack's port
// key: unpredictable to others, spread per destination.
func (s *Stack) pickPingID(v6 bool, src, raddr netip.Addr) (uint16, bool) {
	const num = 65535
	offset, idx := s.portHash(src, netip.AddrPortFrom(raddr, 0))
	socks := s.ping.socks[family(v6)]
	for range num {
		id := uint16(1 + (offset+uint32(s.ping.portTab[idx]))%num)
		s.ping.portTab[idx]++
		if socks[id] == nil {
			return id, true
		}
	}
	return 0, false
}

// deliverPing queues an echo reply (m, already checksummed, the payload
// of p) on the socket whose identifier it carries, if any. Called with
// the lock held from deliverICMPv4/deliverICMPv6.
func (s *Stack) deliverPing(p *wire.IPPacket, m []byte) {
	if len(m) < wire.ICMPHeaderLen {
		return
	}
	id := binary.BigEndian.Uint16(m[4:])
	pc := s.ping.socks[family(p.Version == 6)][id]
	if pc == nil || pc.closed {
		return
	}
	if !pc.laddr.IsUnspecified() && pc.laddr != p.Dst {
		return
	}
	if pc.raddr.IsValid() && pc.raddr != p.Src {
		return
	}
	charge := udpCharge(len(m))
	if len(pc.q) > 0 && pc.qbytes+charge > pc.rcvbuf {
		return
	}
	pc.q = append(pc.q, datagram{from: netip.AddrPortFrom(p.Src, 0), data: bytes.Clone(m)}) // the whole ICMP message
	pc.qbytes += charge
	pc.wake()
}

// closePingLocked closes every ping socket, for Stack.Close; it returns
// the gates to broadcast once the lock is released.
func (s *Stack) closePingLocked() []*clock.Gate {
	var gates []*clock.Gate
	for f := range s.ping.socks {
		for _, pc := range s.ping.socks[f] {
			pc.closed, pc.removed = true, true
			pc.q, pc.qbytes = nil, 0
			if pc.gate != nil {
				gates = append(gates, pc.gate)
			}
		}
		s.ping.socks[f] = nil
	}
	return gates
}

func pingNet(v6 bool) string {
	if v6 {
		return "ip6:ipv6-icmp"
	}
	return "ip4:icmp"
}

func ipAddr(a netip.Addr) net.Addr {
	if !a.IsValid() {
		return nil
	}
	return &net.IPAddr{IP: a.AsSlice(), Zone: a.Zone()}
}

// pingOpError wraps err as the net package wraps a raw IP socket's
// errors, the Errno in an *os.SyscallError named after the system call.
func pingOpError(op, sc string, v6 bool, src, dst netip.Addr, err error) error {
	if errno, ok := err.(syscall.Errno); ok {
		err = os.NewSyscallError(sc, errno)
	}
	return &net.OpError{Op: op, Net: pingNet(v6), Source: ipAddr(src), Addr: ipAddr(dst), Err: err}
}

func (pc *PingConn) opErr(op, sc string, dst netip.Addr, err error) error {
	return pingOpError(op, sc, pc.v6, pc.laddr, dst, err)
}

// ID returns the echo identifier the socket writes into its requests and
// takes replies by.
func (pc *PingConn) ID() uint16 { return pc.id }

// LocalAddr returns the bound address (unspecified if none) as a
// *net.IPAddr.
func (pc *PingConn) LocalAddr() net.Addr { return ipAddr(pc.laddr) }

// RemoteAddr returns the peer of a connected socket as a *net.IPAddr,
// nil otherwise.
func (pc *PingConn) RemoteAddr() net.Addr { return ipAddr(pc.raddr) }

// LocalAddrNetip and RemoteAddrNetip are LocalAddr and RemoteAddr as
// netip.Addr (the zero Addr when not connected).
func (pc *PingConn) LocalAddrNetip() netip.Addr  { return pc.laddr }
func (pc *PingConn) RemoteAddrNetip() netip.Addr { return pc.raddr }

// ReadFromAddr reads one echo reply, its ICMP header and data, into p
// and returns its length and sender. A reply longer than p is cut to it.
// It blocks until a reply arrives, the read deadline passes
// (os.ErrDeadlineExceeded) or the socket is closed (net.ErrClosed).
func (pc *PingConn) ReadFromAddr(p []byte) (int, netip.Addr, error) {
	n, g, err := pc.dgramSock.read(pc.s, p, nil)
	if err != nil {
		return 0, netip.Addr{}, pc.opErr("read", "recvfrom", pc.raddr, err)
	}
	return n, g.from.Addr(), nil
}

// ReadFrom is ReadFromAddr with the sender as a *net.IPAddr.
func (pc *PingConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, from, err := pc.ReadFromAddr(p)
	if err != nil {
		return 0, nil, err
	}
	return n, ipAddr(from), nil
}

// Read reads one echo reply as ReadFromAddr does, without the sender.
func (pc *PingConn) Read(p []byte) (int, error) {
	n, _, err := pc.ReadFromAddr(p)
	return n, err
}

// WriteToAddr sends the echo request p (an ICMP message of at least 8
// bytes: type echo request, code 0; identifier and checksum are replaced)
// to dst. It does not block. It fails with EINVAL for a message that is
// not an echo request, EAFNOSUPPORT for a dst of the other family,
// ENETUNREACH without a route, EMSGSIZE for a message over what one IP
// packet carries (or, over IPv6, over the link's MTU: no Fragment header
// is built), net.ErrWriteToConnected on a connected socket (as Go's
// net.IPConn), os.ErrDeadlineExceeded after the write deadline.
func (pc *PingConn) WriteToAddr(p []byte, dst netip.Addr) (int, error) {
	dst = dst.Unmap()
	if pc.raddr.IsValid() {
		return 0, &net.OpError{Op: "write", Net: pingNet(pc.v6), Source: ipAddr(pc.laddr), Addr: ipAddr(dst), Err: net.ErrWriteToConnected}
	}
	if err := pc.send(p, dst); err != nil {
		return 0, pc.opErr("write", "sendto", dst, err)
	}
	return len(p), nil
}

// WriteTo is WriteToAddr for a *net.IPAddr, or a *net.UDPAddr whose port
// is ignored (the form golang.org/x/net/icmp uses for Linux's
// unprivileged ping sockets).
func (pc *PingConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	var ip net.IP
	switch a := addr.(type) {
	case *net.IPAddr:
		if a != nil {
			ip = a.IP
		}
	case *net.UDPAddr:
		if a != nil {
			ip = a.IP
		}
	}
	dst, ok := netip.AddrFromSlice(ip)
	if !ok {
		return 0, &net.OpError{Op: "write", Net: pingNet(pc.v6), Source: ipAddr(pc.laddr), Addr: addr, Err: syscall.EINVAL}
	}
	return pc.WriteToAddr(p, dst)
}

// Write sends the echo request p to the peer of a connected socket
// (EDESTADDRREQ on an unconnected one); otherwise as WriteToAddr.
func (pc *PingConn) Write(p []byte) (int, error) {
	if !pc.raddr.IsValid() {
		return 0, pc.opErr("write", "write", netip.Addr{}, syscall.EDESTADDRREQ)
	}
	if err := pc.send(p, pc.raddr); err != nil {
		return 0, pc.opErr("write", "write", pc.raddr, err)
	}
	return len(p), nil
}

// send builds the echo request from p and queues it to dst.
func (pc *PingConn) send(p []byte, dst netip.Addr) error {
	// Linux's ping_common_sendmsg: the message must hold an ICMP header
	// and be an echo request with code 0.
	if len(p) < wire.ICMPHeaderLen {
		return syscall.EINVAL
	}
	want := uint8(wire.ICMPv4EchoRequest)
	if pc.v6 {
		want = wire.ICMPv6EchoRequest
	}
	if p[0] != want || p[1] != 0 {
		return syscall.EINVAL
	}
	if !dst.IsValid() || dst.IsUnspecified() {
		return syscall.EINVAL
	}
	if dst.Is6() != pc.v6 {
		return syscall.EAFNOSUPPORT
	}
	if len(p) > maxUDPPayload(!pc.v6)+wire.UDPHeaderLen {
		return syscall.EMSGSIZE
	}
	s := pc.s
	s.mu.Lock()
	defer s.unlock()
	if pc.closed || s.closed {
		return net.ErrClosed
	}
	if !pc.wdl.IsZero() && expired(s.clock.Now(), &pc.wdl) {
		return os.ErrDeadlineExceeded
	}
	n, src, ok := s.routeTo(dst)
	if !ok {
		return syscall.ENETUNREACH
	}
	if !pc.laddr.IsUnspecified() {
		src = pc.laddr
	}
	seq := binary.BigEndian.Uint16(p[6:])
	rest := uint32(pc.id)<<16 | uint32(seq)
	hdr := wire.IPv4MinHeaderLen
	if pc.v6 {
		hdr = wire.IPv6HeaderLen
	}
	if hdr+len(p) > n.mtu {
		if pc.v6 || n.mtu < wire.IPv4MinHeaderLen+8 {
			return syscall.EMSGSIZE
		}
		m := wire.ICMPv4Message{Type: wire.ICMPv4EchoRequest, Rest: rest, Data: p[wire.ICMPHeaderLen:]}
		s.ping.frag = wire.AppendICMPv4(s.ping.frag[:0], &m)
		s.sendFragments4(n, src, dst, wire.ProtocolICMP, s.ping.frag)
	} else {
		b := n.next()
		b = s.appendIP(b, src, dst, protoICMP(pc.v6), len(p))
		if pc.v6 {
			m := wire.ICMPv6Message{Type: wire.ICMPv6EchoRequest, Rest: rest, Data: p[wire.ICMPHeaderLen:]}
			b = wire.AppendICMPv6(b, &m, src, dst)
		} else {
			m := wire.ICMPv4Message{Type: wire.ICMPv4EchoRequest, Rest: rest, Data: p[wire.ICMPHeaderLen:]}
			b = wire.AppendICMPv4(b, &m)
		}
		n.commit(b)
	}
	s.ctr.ICMP.OutMsgs.add(1)
	return nil
}

func protoICMP(v6 bool) uint8 {
	if v6 {
		return wire.ProtocolICMPv6
	}
	return wire.ProtocolICMP
}

// Close closes the socket: blocked reads return net.ErrClosed, queued
// replies are dropped and the identifier is free again.
func (pc *PingConn) Close() error {
	s := pc.s
	s.mu.Lock()
	defer s.unlock()
	if pc.closed {
		return pc.opErr("close", "close", pc.raddr, net.ErrClosed)
	}
	pc.closed = true
	pc.q, pc.qbytes = nil, 0
	if !pc.removed {
		pc.removed = true
		delete(s.ping.socks[family(pc.v6)], pc.id)
	}
	pc.wake()
	return nil
}

// SetDeadline sets the read and write deadlines.
func (pc *PingConn) SetDeadline(t time.Time) error { return pc.setDeadline(t, true, true) }

// SetReadDeadline sets the deadline for reads, pending ones included.
func (pc *PingConn) SetReadDeadline(t time.Time) error { return pc.setDeadline(t, true, false) }

// SetWriteDeadline sets the deadline for writes (which never block: a
// write after it fails).
func (pc *PingConn) SetWriteDeadline(t time.Time) error { return pc.setDeadline(t, false, true) }

func (pc *PingConn) setDeadline(t time.Time, r, w bool) error {
	if err := pc.dgramSock.setDeadline(pc.s, t, r, w); err != nil {
		return pc.opErr("set", "setsockopt", pc.raddr, err)
	}
	return nil
}

package stack

import (
	"bytes"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/synack/synack/clock"
)

// UDPForwarder is the forwarder's UDP side (see forward.go): it receives
// the datagrams to any address and port, arriving on the links it
// covers, that no UDP socket of ours takes, each with its original
// destination, and sends replies that appear to come from that
// destination. UDP has no connections, so the flows are the user's to
// track (synack forward keeps one host socket per client and
// destination).
//
// Its receive queue is bounded as a socket's (SetReadBuffer, default
// DefaultUDPReadBuffer); datagrams beyond it are dropped and counted in
// RcvbufErrors. While it is installed, a datagram it takes is not
// answered with ICMP port unreachable, even for a port of our own
// addresses that no socket has.
type UDPForwarder struct {
	s   *Stack
	nic NICID

	// Under s.mu.
	dgramSock // the datagrams taken and their readers (dgram.go); no write deadline
}

// ListenUDPAny installs the UDP forwarder on the links opts names
// (opts.NIC; MaxInFlight and Backlog do not apply to UDP). A stack has at
// most one: a second fails with EADDRINUSE. Close uninstalls it.
func (s *Stack) ListenUDPAny(opts ForwarderOptions) (*UDPForwarder, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fail := func(err error) error {
		return udpOpError("listen", "bind", "udp", netip.AddrPort{}, netip.AddrPort{}, err)
	}
	switch {
	case s.closed:
		return nil, fail(net.ErrClosed)
	case s.udpFwd != nil:
		return nil, fail(syscall.EADDRINUSE)
	case opts.NIC < 0 || int(opts.NIC) > len(s.nics):
		return nil, fail(syscall.ENODEV)
	}
	f := &UDPForwarder{s: s, nic: opts.NIC, dgramSock: dgramSock{rcvbuf: DefaultUDPReadBuffer}}
	s.udpFwd = f
	return f, nil
}

// udpFwdCovers reports whether the UDP forwarder takes datagrams arriving
// on n.
func (s *Stack) udpFwdCovers(n *nic) bool {
	f := s.udpFwd
	return f != nil && n != s.lo && (f.nic == 0 || f.nic == n.id)
}

// forwardUDP queues a datagram no socket took on the UDP forwarder, if
// it covers n; it reports whether the datagram is dealt with (queued, or
// dropped for want of room).
func (s *Stack) forwardUDP(n *nic, from, to netip.AddrPort, payload []byte) bool {
	if !s.udpFwdCovers(n) || !forwardable(to.Addr()) {
		return false
	}
	f := s.udpFwd
	c := &s.ctr.UDP
	charge := udpCharge(len(payload))
	if len(f.q) > 0 && f.qbytes+charge > f.rcvbuf {
		c.RcvbufErrors.add(1)
		c.InErrors.add(1)
		return true
	}
	f.q = append(f.q, datagram{from: from, to: to, data: bytes.Clone(payload)})
	f.qbytes += charge
	c.InDatagrams.add(1)
	f.wake()
	return true
}

// ReadFrom reads one datagram into p (cut to p's size, as recvfrom) and
// returns its size, its sender and its original destination. It blocks
// until one arrives, the read deadline passes (os.ErrDeadlineExceeded)
// or the forwarder is closed (net.ErrClosed).
func (f *UDPForwarder) ReadFrom(p []byte) (n int, from, to netip.AddrPort, err error) {
	n, g, err := f.dgramSock.read(f.s, p, nil)
	if err != nil {
		return 0, netip.AddrPort{}, netip.AddrPort{}, udpOpError("read", "recvfrom", "udp", netip.AddrPort{}, netip.AddrPort{}, err)
	}
	return n, g.from, g.to, nil
}

// WriteFrom sends p as one datagram from the address from (the original
// destination of the datagrams it answers, or one of ours) to to, out of
// the forwarder's link (or the route to to, for a forwarder on every
// link). It does not block; errors are WriteToUDPAddrPort's, and EINVAL
// for a source no host may have.
func (f *UDPForwarder) WriteFrom(p []byte, from, to netip.AddrPort) (int, error) {
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	to = netip.AddrPortFrom(to.Addr().Unmap(), to.Port())
	err := func() error {
		s := f.s
		s.mu.Lock()
		defer s.unlock()
		if f.closed || s.closed {
			return net.ErrClosed
		}
		fa, ta := from.Addr(), to.Addr()
		if !forwardable(fa) || from.Port() == 0 || !ta.IsValid() || ta.IsUnspecified() || ta.IsMulticast() || to.Port() == 0 {
			return syscall.EINVAL
		}
		if fa.Is4() != ta.Is4() {
			return syscall.EAFNOSUPPORT
		}
		var n *nic
		if f.nic != 0 {
			n = s.nics[f.nic-1]
		} else if m, _, ok := s.routeTo(ta); ok {
			n = m
		}
		if n == nil {
			return syscall.ENETUNREACH
		}
		return s.sendUDP(n, from, to, p)
	}()
	if err != nil {
		return 0, udpOpError("write", "sendto", "udp", from, to, err)
	}
	return len(p), nil
}

// SetReadDeadline sets the deadline for ReadFrom, pending calls included.
func (f *UDPForwarder) SetReadDeadline(t time.Time) error {
	s := f.s
	s.mu.Lock()
	f.rdl = t
	f.wake()
	s.mu.Unlock()
	return nil
}

// SetReadBuffer bounds the receive queue, as UDPConn.SetReadBuffer.
func (f *UDPForwarder) SetReadBuffer(bytes int) error {
	f.s.mu.Lock()
	f.rcvbuf = max(bytes, 0)
	f.s.mu.Unlock()
	return nil
}

// Close uninstalls the forwarder: queued datagrams are dropped, blocked
// reads return net.ErrClosed, and datagrams to foreign addresses are
// dropped again (to our ports with no socket, answered with port
// unreachable).
func (f *UDPForwarder) Close() error {
	s := f.s
	s.mu.Lock()
	defer s.unlock()
	if f.closed {
		return udpOpError("close", "close", "udp", netip.AddrPort{}, netip.AddrPort{}, net.ErrClosed)
	}
	f.closed = true
	f.q, f.qbytes = nil, 0
	if s.udpFwd == f {
		s.udpFwd = nil
	}
	f.wake()
	return nil
}

// closeUDPForwarderLocked closes the UDP forwarder, for Stack.Close; it
// returns the gate to broadcast once the lock is released (nil if none).
func (s *Stack) closeUDPForwarderLocked() *clock.Gate {
	f := s.udpFwd
	if f == nil {
		return nil
	}
	f.closed = true
	f.q, f.qbytes = nil, 0
	s.udpFwd = nil
	return f.gate
}

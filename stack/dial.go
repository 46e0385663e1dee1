package stack

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"time"

	"github.com/synack/synack/tcp"
)

// DialContext connects to address ("ip:port") on network "tcp", "tcp4" or
// "tcp6", like net.Dialer.DialContext. ctx bounds the connect only. The
// errors wrap syscall.ECONNREFUSED (RST or ICMP port unreachable in answer
// to the SYN), ETIMEDOUT (no answer after the SYN retries), ENETUNREACH
// (no route) or ctx's error. Networks "udp", "udp4" and "udp6" give a
// connected *UDPConn (DialUDP).
func (s *Stack) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if isUDP(network) {
		return s.dialUDPContext(ctx, network, address) // udp.go
	}
	raddr, err := parseDialAddr(network, address)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	c, err := s.dial(ctx, netip.AddrPort{}, raddr, ConnConfig{})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// DialTCP connects to raddr from an address the route chooses and an
// ephemeral port.
func (s *Stack) DialTCP(ctx context.Context, raddr netip.AddrPort) (*TCPConn, error) {
	return s.dial(ctx, netip.AddrPort{}, raddr, ConnConfig{})
}

// DialTCPFrom connects to raddr from laddr. A zero address in laddr lets
// the route choose; port 0 chooses an ephemeral port. Binding a port a
// listener or an identical connection holds fails with EADDRINUSE.
func (s *Stack) DialTCPFrom(ctx context.Context, laddr, raddr netip.AddrPort) (*TCPConn, error) {
	return s.dial(ctx, laddr, raddr, ConnConfig{})
}

// DialTCPWith is DialTCPFrom for a connection made with cc instead of
// Options.TCP where cc sets a field: what must be known before the SYN
// (the receive buffer decides the window scale it offers, RFC 7323
// section 2.2), congestion control, keep-alive. An unknown congestion
// control name fails the dial before any segment is sent.
func (s *Stack) DialTCPWith(ctx context.Context, laddr, raddr netip.AddrPort, cc ConnConfig) (*TCPConn, error) {
	return s.dial(ctx, laddr, raddr, cc)
}

func splitHostPort(address string) (string, uint16, error) {
	host, ps, err := net.SplitHostPort(address)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.ParseUint(ps, 10, 16)
	if err != nil {
		return "", 0, &net.AddrError{Err: "invalid port", Addr: address}
	}
	return host, uint16(p), nil
}

func parseDialAddr(network, address string) (netip.AddrPort, error) {
	host, port, err := splitHostPort(address)
	if err != nil {
		return netip.AddrPort{}, err
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, &net.AddrError{Err: "no such host (synack resolves no names)", Addr: host}
	}
	a = a.Unmap()
	switch network {
	case "tcp":
	case "tcp4":
		if !a.Is4() {
			return netip.AddrPort{}, &net.AddrError{Err: "non-IPv4 address", Addr: address}
		}
	case "tcp6":
		if a.Is4() {
			return netip.AddrPort{}, &net.AddrError{Err: "non-IPv6 address", Addr: address}
		}
	default:
		return netip.AddrPort{}, net.UnknownNetworkError(network)
	}
	return netip.AddrPortFrom(a, port), nil
}

// dial is an active OPEN (RFC 9293 3.10.1): bind, send the SYN, wait
// for the handshake to end.
func (s *Stack) dial(ctx context.Context, laddr, raddr netip.AddrPort, cc ConnConfig) (*TCPConn, error) {
	raddr = netip.AddrPortFrom(raddr.Addr().Unmap(), raddr.Port())
	laddr = netip.AddrPortFrom(laddr.Addr().Unmap(), laddr.Port())
	if err := ctx.Err(); err != nil {
		return nil, opError("dial", "connect", laddr, raddr, err)
	}
	tc, err := s.connect(laddr, raddr, cc)
	if err != nil {
		return nil, err
	}
	err = s.doWait(tc, &tc.owait, nil, ctx.Done(), func(now time.Time, c *tcp.Conn) error {
		if err := ctx.Err(); err != nil {
			// The caller gave up: RST if the peer has answered.
			tc.userClosed = true
			c.Abort(now)
			return err
		}
		switch c.State() {
		case tcp.SynSent, tcp.SynReceived:
			return tcp.ErrWouldBlock
		case tcp.Closed:
			tc.userClosed = true
			return tc.connectErr(c)
		}
		return nil // ESTABLISHED, or later if the peer was quick to close
	})
	if err != nil {
		return nil, tc.opErr("dial", err)
	}
	return tc, nil
}

// connect makes the connection from laddr to raddr (zero parts chosen
// here: the source address by the route, the port by pickEphemeral) and
// sends its SYN.
func (s *Stack) connect(laddr, raddr netip.AddrPort, cc ConnConfig) (*TCPConn, error) {
	ra := raddr.Addr()
	if !ra.IsValid() || ra.IsUnspecified() || ra.IsMulticast() || raddr.Port() == 0 {
		return nil, opError("dial", "connect", laddr, raddr, syscall.EINVAL)
	}
	// A shard door (shard.go): the stack lock for reading, then the
	// shard of the 4-tuple the port choice settles on, whose lock is held
	// from the check that the tuple is free to the connection's insertion.
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, opError("dial", "connect", laddr, raddr, net.ErrClosed)
	}
	if s.cfgErr != nil {
		s.mu.RUnlock()
		return nil, opError("dial", "connect", laddr, raddr, s.cfgErr)
	}
	if err := s.checkConnConfig(cc); err != nil {
		s.mu.RUnlock()
		return nil, opError("dial", "connect", laddr, raddr, err)
	}
	n, src, ok := s.routeTo(ra)
	if !ok {
		s.mu.RUnlock()
		return nil, opError("dial", "connect", laddr, raddr, syscall.ENETUNREACH)
	}
	if la := laddr.Addr(); la.IsValid() && !la.IsUnspecified() {
		if _, ours := s.local[la]; !ours || la.Is4() != ra.Is4() {
			s.mu.RUnlock()
			return nil, opError("dial", "bind", laddr, raddr, syscall.EADDRNOTAVAIL)
		}
		src = la
	}
	now := s.clock.Now()
	port := laddr.Port()
	var sh *shard
	if port == 0 {
		if sh, port, ok = s.pickEphemeral(src, raddr, now); !ok {
			s.mu.RUnlock()
			return nil, opError("dial", "connect", laddr, raddr, syscall.EADDRNOTAVAIL)
		}
	} else {
		sh = s.shardOf(tcp.Tuple{Local: netip.AddrPortFrom(src, port), Remote: raddr})
		sh.mu.Lock()
		if !s.portFree(src, port, raddr) && !s.portReusable(src, port, raddr, now) {
			sh.release()
			return nil, opError("dial", "bind", laddr, raddr, syscall.EADDRINUSE)
		}
	}
	defer sh.unlock()
	id := tcp.Tuple{Local: netip.AddrPortFrom(src, port), Remote: raddr}
	s.reuseTimeWait(id, now) // when the 4-tuple was in TIME-WAIT (portReusable)
	tc := sh.newConn(n, id, s.configFor(n, ra, cc), now)
	if err := s.callLocked(tc, now, func(now time.Time, c *tcp.Conn) error { return c.Connect(now) }); err != nil {
		s.remove(tc)
		return nil, tc.opErr("dial", err)
	}
	return tc, nil
}

// connectErr is why the connect of tc, now CLOSED, failed.
func (tc *TCPConn) connectErr(c *tcp.Conn) error {
	if tc.dialErr != nil {
		return tc.dialErr // a hard ICMP error
	}
	err := c.Err()
	if err == tcp.ErrTimedOut && tc.softErr != nil {
		err = tc.softErr // EHOSTUNREACH rather than ETIMEDOUT, as Linux
	}
	if err == nil {
		err = syscall.ECONNABORTED
	}
	return err
}

// portFree reports whether local port port on src can be used to reach
// raddr: the 4-tuple is unused, and no listener holds the port (a
// connection would otherwise steal its SYNs' replies; Linux refuses the
// same). A port held only by connections to other peers, TIME-WAIT ones
// included, is free: the 4-tuple tells them apart.
func (s *Stack) portFree(src netip.Addr, port uint16, raddr netip.AddrPort) bool {
	if len(s.lports[port]) > 0 {
		return false
	}
	id := tcp.Tuple{Local: netip.AddrPortFrom(src, port), Remote: raddr}
	sh := s.shardOf(id)
	_, used := sh.conns[id]
	return !used && sh.tw.lookup(id) < 0
}

// portReusable reports whether the 4-tuple is held only by a TIME-WAIT
// record that Options.TimeWaitReuse lets an active open take over now.
func (s *Stack) portReusable(src netip.Addr, port uint16, raddr netip.AddrPort, now time.Time) bool {
	if len(s.lports[port]) > 0 {
		return false
	}
	id := tcp.Tuple{Local: netip.AddrPortFrom(src, port), Remote: raddr}
	_, used := s.shardOf(id).conns[id]
	return !used && s.timeWaitReusable(id, now)
}

// pickEphemeral chooses a local port for a connection from src to raddr
// with RFC 6056 section 3.3.4, Algorithm 4 ("Double-Hash Port Selection"):
// a keyed hash of the connection's addresses gives a starting offset, and a
// per-bucket counter moves on from it, so ports are hard to guess from
// outside while successive connections to one peer do not reuse a port
// soon. With Options.TimeWaitReuse, a port whose 4-tuple is in a reusable
// TIME-WAIT is taken when no port is free.
//
// It runs with s.mu held for reading and returns with the lock of the
// chosen tuple's shard held, the tuple checked free (or reusable) under it;
// each candidate is checked under its own shard's lock, one at a time.
func (s *Stack) pickEphemeral(src netip.Addr, raddr netip.AddrPort, now time.Time) (*shard, uint16, bool) {
	first, last := uint32(s.opts.FirstEphemeral), uint32(s.opts.LastEphemeral)
	num := last - first + 1
	offset, idx := s.portHash(src, raddr)
	// When the connections and records together could fill the range,
	// a free port may not be there at all: a port in reusable TIME-WAIT is
	// then taken if the next reuseLookahead candidates are no freer, rather
	// than after a scan of the whole range for every connection.
	crowded := s.opts.TimeWaitReuse && uint32(s.countTuples()) >= num
	reuse, canReuse, since := uint16(0), false, 0
	for range num {
		s.portMu.Lock()
		port := uint16(first + (offset+uint32(s.portTab[idx]))%num)
		s.portTab[idx]++
		s.portMu.Unlock()
		sh := s.shardOf(tcp.Tuple{Local: netip.AddrPortFrom(src, port), Remote: raddr})
		sh.mu.Lock()
		if s.portFree(src, port, raddr) {
			return sh, port, true
		}
		if canReuse {
			if since++; crowded && since >= reuseLookahead {
				sh.mu.Unlock()
				break
			}
		} else if s.opts.TimeWaitReuse && s.portReusable(src, port, raddr, now) {
			reuse, canReuse = port, true
		}
		sh.mu.Unlock()
	}
	if !canReuse {
		return nil, 0, false
	}
	// Checked again under the shard's lock: another dial may have taken
	// the tuple since (then there is no port for this one, as when the
	// range is full).
	sh := s.shardOf(tcp.Tuple{Local: netip.AddrPortFrom(src, reuse), Remote: raddr})
	sh.mu.Lock()
	if s.portFree(src, reuse, raddr) || s.portReusable(src, reuse, raddr, now) {
		return sh, reuse, true
	}
	sh.mu.Unlock()
	return nil, 0, false
}

// countTuples is the connections and TIME-WAIT records of every shard,
// each shard counted under its lock in turn (s.mu held for reading).
func (s *Stack) countTuples() int {
	k := 0
	for _, sh := range s.shards {
		sh.mu.Lock()
		k += len(sh.conns) + sh.tw.live
		sh.mu.Unlock()
	}
	return k
}

// portHash is RFC 6056 Algorithm 4's F() and G() for a connection from
// src to raddr: a keyed hash giving the starting offset, and the index of
// the per-bucket counter (a different part of the hash). UDP uses it too,
// with its own table of counters (udp.go).
func (s *Stack) portHash(src netip.Addr, raddr netip.AddrPort) (offset uint32, idx byte) {
	var buf [32 + 16 + 16 + 2]byte
	k := copy(buf[:], s.portKey[:])
	a := src.As16()
	k += copy(buf[k:], a[:])
	b := raddr.Addr().As16()
	k += copy(buf[k:], b[:])
	binary.BigEndian.PutUint16(buf[k:], raddr.Port())
	sum := sha256.Sum256(buf[:])
	return binary.BigEndian.Uint32(sum[:4]), sum[4]
}

// reuseLookahead bounds the search for a free port once one in reusable
// TIME-WAIT has been found and the range may be full (pickEphemeral).
const reuseLookahead = 8

// pickListenPort chooses a port for a listener on port 0: one no listener
// and no connection of ours uses.
func (s *Stack) pickListenPort(a netip.Addr) (uint16, bool) {
	first, last := uint32(s.opts.FirstEphemeral), uint32(s.opts.LastEphemeral)
	num := last - first + 1
	used := make(map[uint16]bool)
	s.allConns(func(tc *TCPConn) { used[tc.id.Local.Port()] = true })
	for _, sh := range s.shards {
		sh.tw.all(func(r *twSlot) { used[r.tw.ID().Local.Port()] = true })
	}
	var buf [32 + 16]byte
	k := copy(buf[:], s.portKey[:])
	aa := a.As16()
	copy(buf[k:], aa[:])
	sum := sha256.Sum256(buf[:])
	offset := binary.BigEndian.Uint32(sum[:4])
	for i := range num {
		port := uint16(first + (offset+i+uint32(s.portTab[0]))%num)
		if len(s.lports[port]) == 0 && !used[port] {
			s.portTab[0]++
			return port, true
		}
	}
	return 0, false
}

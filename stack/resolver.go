package stack

import (
	"context"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
)

// Resolver returns a *net.Resolver whose DNS queries travel over this
// stack, to servers (port 0 means 53), instead of to the servers in the
// system's resolv.conf. It is Go's own resolver (PreferGo): the stub
// resolver of RFC 1035 7 over UDP with the retry over TCP for a truncated
// answer (RFC 7766 5), so LookupHost, LookupIPAddr, LookupNetIP,
// LookupMX and the rest all work through it.
//
// What the system's configuration still decides: the Go resolver reads
// /etc/hosts first (nsswitch order) and takes resolv.conf's search list,
// ndots, timeout and attempts; only the address of each query is ours.
// Each query the resolver sends to "a server" goes to the next of
// servers in turn, so a retry moves on to the next one (failover); the
// TCP retry of a truncated answer goes to the server that answered it.
func (s *Stack) Resolver(servers []netip.AddrPort) *net.Resolver {
	d := &dnsDialer{s: s}
	for _, ap := range servers {
		if ap.Port() == 0 {
			ap = netip.AddrPortFrom(ap.Addr(), 53)
		}
		d.servers = append(d.servers, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
	}
	return &net.Resolver{PreferGo: true, Dial: d.dial}
}

type dnsDialer struct {
	s       *Stack
	servers []netip.AddrPort
	next    atomic.Uint32 // the next server for a UDP query
	last    atomic.Uint32 // the server of the latest UDP query, for the TCP retry
}

// dial is the Resolver's Dial: network is "udp" or "tcp" (or one with a
// 4 or 6), address the system's server, which is ignored.
func (d *dnsDialer) dial(ctx context.Context, network, _ string) (net.Conn, error) {
	if len(d.servers) == 0 {
		return nil, &net.OpError{Op: "dial", Net: network, Err: os.NewSyscallError("connect", syscall.EDESTADDRREQ)}
	}
	var i uint32
	if isUDP(network) {
		i = d.next.Add(1) - 1
		d.last.Store(i)
	} else {
		i = d.last.Load()
	}
	ap := d.servers[int(i%uint32(len(d.servers)))]
	// The network named by the resolver chooses the transport; the family
	// is the server's.
	switch network {
	case "udp", "udp4", "udp6":
		return d.s.dialUDPContext(ctx, "udp", ap.String())
	}
	return d.s.DialContext(ctx, "tcp", ap.String())
}

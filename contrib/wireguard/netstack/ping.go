package netstack

import (
	"net"
	"net/netip"
	"syscall"

	"github.com/synack/synack/stack"
)

// PingAddr is the address of a ping socket, as in wireguard-go's package:
// an IP address whose Network is "ping4" or "ping6".
type PingAddr struct{ addr netip.Addr }

// PingAddrFromAddr wraps addr.
func PingAddrFromAddr(addr netip.Addr) *PingAddr { return &PingAddr{addr} }

// String is the address.
func (ia PingAddr) String() string { return ia.addr.String() }

// Network is "ping4" or "ping6" by the address's family ("ping" for the
// zero address).
func (ia PingAddr) Network() string {
	switch {
	case ia.addr.Is4():
		return "ping4"
	case ia.addr.Is6():
		return "ping6"
	}
	return "ping"
}

// Addr is the address as a netip.Addr.
func (ia PingAddr) Addr() netip.Addr { return ia.addr }

// PingConn is an ICMP echo socket (stack.PingConn, Linux's ping socket
// semantics: write an echo request, the socket sets identifier and
// checksum, read the echo replies) whose addresses are PingAddrs, as
// wireguard-go's. It is a net.PacketConn and, dialled, a net.Conn.
type PingConn struct {
	*stack.PingConn
	laddr, raddr PingAddr
}

var (
	_ net.PacketConn = (*PingConn)(nil)
	_ net.Conn       = (*PingConn)(nil)
)

// DialPingAddr opens a ping socket bound to laddr (invalid: any address)
// and connected to raddr (invalid: not connected); at least one must be
// valid, and it gives the family.
func (n *Net) DialPingAddr(laddr, raddr netip.Addr) (*PingConn, error) {
	if !laddr.IsValid() && !raddr.IsValid() {
		return nil, &net.OpError{Op: "dial", Net: "ping", Err: errNoAddress}
	}
	pc, err := n.s.ListenPing(laddr, raddr)
	if err != nil {
		return nil, err
	}
	return &PingConn{PingConn: pc, laddr: PingAddr{pc.LocalAddrNetip()}, raddr: PingAddr{raddr.Unmap()}}, nil
}

// ListenPingAddr opens an unconnected ping socket bound to laddr (which
// must be valid: it gives the family; an unspecified one binds any
// address).
func (n *Net) ListenPingAddr(laddr netip.Addr) (*PingConn, error) {
	return n.DialPingAddr(laddr, netip.Addr{})
}

// DialPing is DialPingAddr with PingAddrs (nil: none).
func (n *Net) DialPing(laddr, raddr *PingAddr) (*PingConn, error) {
	var la, ra netip.Addr
	if laddr != nil {
		la = laddr.addr
	}
	if raddr != nil {
		ra = raddr.addr
	}
	return n.DialPingAddr(la, ra)
}

// ListenPing is ListenPingAddr with a PingAddr.
func (n *Net) ListenPing(laddr *PingAddr) (*PingConn, error) {
	var la netip.Addr
	if laddr != nil {
		la = laddr.addr
	}
	return n.ListenPingAddr(la)
}

// LocalAddr is the bound address, a PingAddr.
func (pc *PingConn) LocalAddr() net.Addr { return pc.laddr }

// RemoteAddr is the connected address, a PingAddr (zero if none).
func (pc *PingConn) RemoteAddr() net.Addr { return pc.raddr }

// ReadFrom reads one echo reply (ICMP header and data) and its sender as
// a *PingAddr.
func (pc *PingConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, from, err := pc.ReadFromAddr(p)
	if err != nil {
		return 0, nil, err
	}
	return n, &PingAddr{from}, nil
}

// WriteTo sends the echo request p to addr, a *PingAddr, *net.IPAddr or
// *net.UDPAddr. On a connected socket, addr must be its peer (as
// wireguard-go's, whose Write is a WriteTo to the peer).
func (pc *PingConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	var dst netip.Addr
	switch a := addr.(type) {
	case *PingAddr:
		dst = a.addr
	case PingAddr:
		dst = a.addr
	default:
		return pc.PingConn.WriteTo(p, addr)
	}
	if pc.raddr.addr.IsValid() {
		if dst.Unmap() != pc.raddr.addr {
			return 0, &net.OpError{Op: "write", Net: "ping", Source: pc.laddr, Addr: addr, Err: syscall.EISCONN}
		}
		return pc.Write(p)
	}
	return pc.WriteToAddr(p, dst)
}

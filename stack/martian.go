package stack

import (
	"net/netip"

	"github.com/synack/synack/wire"
)

// ipv6Mapped is the IPv4-mapped IPv6 prefix (RFC 4291 section 2.5.5.2).
var ipv6Mapped = netip.MustParsePrefix("::ffff:0:0/96")

// martian reports whether the packet p, which arrived on n addressed to
// one of our unicast addresses, comes from a source address that no host
// may send from, so that it is discarded silently (counted in
// InAddrErrors) before it reaches TCP or ICMP: a SYN from one would get a
// SYN,ACK sent to a broadcast or to ourselves, and a SYN-queue entry.
//
// IPv4 (RFC 1122 section 3.2.1.3, "a host MUST silently discard an
// incoming datagram containing an IP source address that is invalid by
// the rules of this section"; 4.2.3.10 and RFC 9293 MUST-63 for a SYN):
//   - 0.0.0.0/8, "this host on this network": only allowed while a host
//     learns its address (BOOTP, DHCP), never for TCP or ICMP echo;
//   - 127.0.0.0/8, unless n is a loopback link (one with a 127/8 address):
//     "MUST NOT appear outside a host";
//   - 224.0.0.0/4 multicast and 240.0.0.0/4 class E, which holds the
//     limited broadcast 255.255.255.255;
//   - the directed broadcast of any of our prefixes ({<Network>, -1});
//   - one of our own addresses, unless n is a loopback link: a LAND attack
//     (same address, and port, at both ends) or a spoof.
//
// IPv6 (RFC 4291):
//   - :: (section 2.5.2: "must never be ... used as the source address"
//     of a packet a host forwards, and means no address at all) and ::1
//     (2.5.3: "must never be sent outside a single node"), the latter
//     allowed on a loopback link;
//   - multicast ff00::/8 (2.7: "must not be used as source addresses");
//   - IPv4-mapped ::ffff:0:0/96 (2.5.5.2 keeps it for the IPv4 API of
//     dual-stack nodes; RFC 4942 section 2.2 has hosts drop such packets, an
//     IPv4 ACL would not see the address);
//   - one of our own addresses, as for IPv4.
//
// Other destinations need no check here: deliver takes only our unicast
// addresses (AddLink refuses others) and the forwarder's (forward.go), so a segment to a broadcast or
// multicast address never reaches TCP (RFC 1122 4.2.3.10, RFC 9293
// MUST-57: a TCP "MUST silently discard an incoming SYN segment that is
// addressed to a broadcast or multicast address").
func (s *Stack) martian(n *nic, p *wire.IPPacket) bool {
	if p.Dst.IsLoopback() && !n.loopback() {
		// 127.0.0.1 and ::1 are ours on the loopback link only
		// (loopback.go): from outside they are martian destinations (RFC
		// 1122 3.2.1.3 "MUST NOT appear outside a host", RFC 4291 2.5.3).
		return true
	}
	src := p.Src
	if src.Is4() {
		// The first octet tells 0/8, 127/8, 224/4 and 240/4 apart.
		switch a := src.As4(); {
		case a[0] == 0 || a[0] >= 224:
			return true
		case a[0] == 127:
			return !n.loopback()
		}
		if s.isDirectedBroadcast(src) {
			return true
		}
	} else {
		switch {
		case src.IsUnspecified(), src.IsMulticast(), ipv6Mapped.Contains(src):
			return true
		case src.IsLoopback():
			return !n.loopback()
		}
	}
	if _, own := s.local[src]; own {
		return !n.loopback()
	}
	return false
}

// isDirectedBroadcast reports whether a is the broadcast address of one of
// our IPv4 prefixes. Prefixes of /31 (RFC 3021) and /32 have none.
func (s *Stack) isDirectedBroadcast(a netip.Addr) bool {
	for _, m := range s.nics {
		for _, p := range m.addrs {
			if !p.Addr().Is4() || p.Bits() > 30 || !p.Contains(a) {
				continue
			}
			v := a.As4()
			host := uint32(1)<<(32-p.Bits()) - 1
			if (uint32(v[0])<<24|uint32(v[1])<<16|uint32(v[2])<<8|uint32(v[3]))&host == host {
				return true
			}
		}
	}
	return false
}

// loopback reports whether n is a loopback link: one with an address in
// 127.0.0.0/8 or ::1. Packets from our own addresses are normal there.
func (n *nic) loopback() bool {
	for _, p := range n.addrs {
		if p.Addr().IsLoopback() {
			return true
		}
	}
	return false
}

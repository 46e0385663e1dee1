package wire

import "net/netip"

// IPPacket is what the stack needs from an IP packet of either version.
type IPPacket struct {
	Version  uint8 // 4 or 6
	Src, Dst netip.Addr
	Protocol uint8 // IPv4 protocol, or IPv6 next header after extension headers
	TTL      uint8 // IPv4 TTL or IPv6 hop limit
	Payload  []byte

	IPv4 IPv4Header // the full header when Version == 4
	IPv6 IPv6Header // the full header when Version == 6
}

// ParseIP parses b as IPv4 or IPv6 according to its version nibble (RFC 791
// section 3.1, RFC 8200 section 3), as a TUN device delivers packets. It
// validates as ParseIPv4 and ParseIPv6 do, and like them it fills in the
// packet when the error wraps ErrFragment.
func ParseIP(b []byte) (p IPPacket, err error) {
	if len(b) == 0 {
		return p, errIPShort
	}
	switch b[0] >> 4 {
	case 4:
		p.IPv4, p.Payload, err = ParseIPv4(b)
		if err != nil && err != errIPv4Fragment {
			return IPPacket{}, err
		}
		p.Version = 4
		p.Src, p.Dst = p.IPv4.Src, p.IPv4.Dst
		p.Protocol, p.TTL = p.IPv4.Protocol, p.IPv4.TTL
	case 6:
		p.IPv6, p.Payload, err = ParseIPv6(b)
		if err != nil && err != errIPv6Fragment {
			return IPPacket{}, err
		}
		p.Version = 6
		p.Src, p.Dst = p.IPv6.Src, p.IPv6.Dst
		p.Protocol, p.TTL = p.IPv6.NextHeader, p.IPv6.HopLimit
	default:
		return p, errIPVersion
	}
	return p, err
}

package wire

import (
	"encoding/binary"
	"net/netip"
	"slices"
)

// Layout of the IPv6 fixed header (RFC 8200 section 3).
const (
	ipv6VersionTCFL = 0 // version (4 bits), traffic class (8), flow label (20)
	ipv6PayloadLen  = 4
	ipv6NextHeader  = 6
	ipv6HopLimit    = 7
	ipv6Src         = 8
	ipv6Dst         = 24

	// IPv6HeaderLen is the size of the fixed IPv6 header.
	IPv6HeaderLen = 40
	// IPv6MaxPayloadLen is the largest payload without a jumbogram.
	IPv6MaxPayloadLen = 65535
)

// IPv6Header is the decoded form of an IPv6 header (RFC 8200 section 3).
//
// NextHeader is the upper-layer protocol: ParseIPv6 walks past the extension
// headers it can skip and reports what follows them, and AppendIPv6 writes
// no extension headers, so the value round-trips.
type IPv6Header struct {
	TrafficClass uint8  // DSCP and ECN
	FlowLabel    uint32 // 20 bits (RFC 6437)
	NextHeader   uint8
	HopLimit     uint8
	Src, Dst     netip.Addr
}

// ParseIPv6 decodes and validates the IPv6 packet b: version and payload
// length (RFC 8200 section 3); bytes beyond the payload length are trimmed.
// It then walks the extension headers (RFC 8200 section 4):
//
//   - hop-by-hop options (only allowed first, section 4.3), routing (4.4)
//     and destination options (4.6) are skipped by their length. A routing
//     header with segments left is skipped as well: this stack is never a
//     router, and the final destination is what it checks.
//   - a fragment header (4.5) gives an error wrapping ErrFragment, with
//     h.NextHeader = ProtocolFragment and payload starting at the fragment
//     header, so the caller can count it.
//   - no next header (4.7) gives ErrNoNextHeader.
//   - ESP, AH and the other extension headers of RFC 8200 section 4 and
//     RFC 7045 that we cannot skip give ErrBadExtension.
//
// Any other value is the upper-layer protocol and ends the walk: it is in
// h.NextHeader, and payload (aliasing b) is what follows.
//
// ParseIPv6 allocates nothing.
func ParseIPv6(b []byte) (h IPv6Header, payload []byte, err error) {
	if len(b) < IPv6HeaderLen {
		return h, nil, errIPv6Short
	}
	w := binary.BigEndian.Uint32(b[ipv6VersionTCFL:])
	if w>>28 != 6 {
		return h, nil, errIPv6Version
	}
	plen := int(binary.BigEndian.Uint16(b[ipv6PayloadLen:]))
	if IPv6HeaderLen+plen > len(b) {
		return h, nil, errIPv6Truncated
	}
	h.TrafficClass = uint8(w >> 20)
	h.FlowLabel = w & 0xfffff
	h.HopLimit = b[ipv6HopLimit]
	h.Src = netip.AddrFrom16([16]byte(b[ipv6Src:]))
	h.Dst = netip.AddrFrom16([16]byte(b[ipv6Dst:]))
	payload = b[IPv6HeaderLen : IPv6HeaderLen+plen : IPv6HeaderLen+plen]
	next, off, err := skipIPv6Ext(b[ipv6NextHeader], payload)
	h.NextHeader = next
	if err != nil && err != errIPv6Fragment {
		return h, nil, err
	}
	return h, payload[off:], err
}

// skipIPv6Ext walks the extension header chain that starts with next at the
// beginning of b. It returns the protocol that follows the skippable
// headers and its offset in b.
func skipIPv6Ext(next uint8, b []byte) (proto uint8, off int, err error) {
	first := true
	for {
		switch next {
		case ProtocolHopByHop, ProtocolRouting, ProtocolDestOpts:
			// RFC 8200 section 4.3: the hop-by-hop header may only
			// follow the IPv6 header immediately.
			if next == ProtocolHopByHop && !first {
				return next, off, errIPv6HopByHop
			}
			// Next header, then length in 8-octet units not counting
			// the first 8 (RFC 8200 sections 4.3, 4.4, 4.6).
			if len(b)-off < 8 {
				return next, off, errIPv6ExtShort
			}
			l := (int(b[off+1]) + 1) * 8
			if l > len(b)-off {
				return next, off, errIPv6ExtShort
			}
			// RFC 8200 4.4: a Routing header whose type the node does
			// not know, with Segments Left non-zero, means the packet
			// is to be routed on, and "the node must discard the
			// packet". We know no routing type (type 0 is deprecated,
			// RFC 5095 3), so such a packet is never ours, even when
			// addressed to us: taking it would let a sender route
			// through us unseen. With none left it is ignored.
			if next == ProtocolRouting && b[off+3] != 0 {
				return next, off, errIPv6Routing
			}
			next = b[off]
			off += l
		case ProtocolFragment:
			return next, off, errIPv6Fragment
		case ProtocolNoNext:
			return next, off, errIPv6NoNext
		case ProtocolESP, ProtocolAH,
			135,      // Mobility (RFC 6275)
			139,      // HIP (RFC 7401)
			140,      // Shim6 (RFC 5533)
			253, 254: // experimentation (RFC 3692, RFC 4727)
			return next, off, errIPv6ExtUnsup
		default:
			return next, off, nil
		}
		first = false
	}
}

// AppendIPv6 appends the fixed header h for a payload of payloadLen bytes
// to b and returns the extended slice; the caller appends the payload.
//
// It panics when Src or Dst is not an IPv6 address or when payloadLen
// exceeds 65535 (no jumbograms): those are bugs in the caller.
func AppendIPv6(b []byte, h *IPv6Header, payloadLen int) []byte {
	if payloadLen < 0 || payloadLen > IPv6MaxPayloadLen {
		panic("wire: AppendIPv6: payload longer than 65535 bytes")
	}
	if !h.Src.Is6() || !h.Dst.Is6() {
		panic("wire: AppendIPv6: source or destination is not an IPv6 address")
	}
	start := len(b)
	b = slices.Grow(b, IPv6HeaderLen)
	b = b[:start+IPv6HeaderLen]
	hdr := b[start:]
	binary.BigEndian.PutUint32(hdr[ipv6VersionTCFL:], 6<<28|uint32(h.TrafficClass)<<20|h.FlowLabel&0xfffff)
	binary.BigEndian.PutUint16(hdr[ipv6PayloadLen:], uint16(payloadLen))
	hdr[ipv6NextHeader] = h.NextHeader
	hdr[ipv6HopLimit] = h.HopLimit
	src, dst := h.Src.As16(), h.Dst.As16()
	copy(hdr[ipv6Src:], src[:])
	copy(hdr[ipv6Dst:], dst[:])
	return b
}

// IPv6FragmentHeaderLen is the size of the Fragment header (RFC 8200
// section 4.5).
const IPv6FragmentHeaderLen = 8

// IPv6Fragment is the decoded Fragment header (RFC 8200 section 4.5).
type IPv6Fragment struct {
	NextHeader uint8  // the first header of the fragmentable part
	Offset     uint16 // fragment offset in 8-octet units, 13 bits
	More       bool   // the M flag: more fragments follow
	ID         uint32 // identification
}

// IsAtomic reports whether the header describes a whole packet: offset 0
// and no more fragments. RFC 6946 section 4: such an "atomic fragment"
// is processed as a packet of its own, outside any reassembly.
func (f *IPv6Fragment) IsAtomic() bool { return f.Offset == 0 && !f.More }

// ParseIPv6Fragment decodes the Fragment header at the start of b, as the
// payload ParseIPv6 returns with an ErrFragment error, and returns the
// fragment's data after it. The reserved fields are ignored, as RFC 8200
// section 4.5 says. It allocates nothing.
func ParseIPv6Fragment(b []byte) (f IPv6Fragment, data []byte, err error) {
	if len(b) < IPv6FragmentHeaderLen {
		return f, nil, errIPv6FragShort
	}
	f.NextHeader = b[0]
	w := binary.BigEndian.Uint16(b[2:])
	f.Offset = w >> 3
	f.More = w&1 != 0
	f.ID = binary.BigEndian.Uint32(b[4:])
	return f, b[IPv6FragmentHeaderLen:], nil
}

// AppendIPv6Fragment appends the Fragment header f to b.
func AppendIPv6Fragment(b []byte, f *IPv6Fragment) []byte {
	w := f.Offset << 3
	if f.More {
		w |= 1
	}
	b = append(b, f.NextHeader, 0, byte(w>>8), byte(w))
	return binary.BigEndian.AppendUint32(b, f.ID)
}

// SkipIPv6Extensions walks the extension headers that start, with type
// next, at the beginning of b, as ParseIPv6 does, and returns the header
// type that ends the walk and its offset in b. The error is ParseIPv6's:
// one wrapping ErrTruncated means the chain runs past b, which for the
// first fragment of a packet breaks RFC 7112's rule that it holds the
// whole header chain.
func SkipIPv6Extensions(next uint8, b []byte) (proto uint8, off int, err error) {
	return skipIPv6Ext(next, b)
}

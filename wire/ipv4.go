package wire

import (
	"encoding/binary"
	"net/netip"
	"slices"
)

// Layout of the IPv4 header (RFC 791 section 3.1).
const (
	ipv4VersionIHL = 0
	ipv4TOS        = 1
	ipv4TotalLen   = 2
	ipv4ID         = 4
	ipv4FlagsFrag  = 6 // 3 flag bits, 13-bit fragment offset
	ipv4TTL        = 8
	ipv4Protocol   = 9
	ipv4Checksum   = 10
	ipv4Src        = 12
	ipv4Dst        = 16

	// IPv4MinHeaderLen is the size of an IPv4 header without options.
	IPv4MinHeaderLen = 20
	// IPv4MaxHeaderLen is the largest header a 4-bit IHL can describe.
	IPv4MaxHeaderLen = 60
	// IPv4MaxTotalLen is the largest datagram the 16-bit total length allows.
	IPv4MaxTotalLen = 65535
)

// IPv4Flags are the three flag bits of the IPv4 header (RFC 791 section
// 3.1), as they appear in the top of the flags/fragment-offset word.
type IPv4Flags uint8

const (
	IPv4MoreFragments IPv4Flags = 1 << 0 // MF
	IPv4DontFragment  IPv4Flags = 1 << 1 // DF
	IPv4Reserved      IPv4Flags = 1 << 2 // must be zero; kept as received
)

// IPv4Header is the decoded form of an IPv4 header (RFC 791 section 3.1).
// IHL, total length and checksum are not stored: AppendIPv4 computes them
// and ParseIPv4 checks them.
type IPv4Header struct {
	TOS      uint8 // DSCP and ECN (RFC 2474, RFC 3168)
	ID       uint16
	Flags    IPv4Flags
	FragOff  uint16 // fragment offset in 8-byte units, 13 bits
	TTL      uint8
	Protocol uint8
	Src, Dst netip.Addr
	// Options are the raw option bytes (a multiple of 4, at most 40). On
	// parse they alias the packet; ParseIPv4 checks their format (see
	// checkIPv4Options) but does not act on them.
	Options []byte
}

// HeaderLen is the size of the header AppendIPv4 writes for h.
func (h *IPv4Header) HeaderLen() int { return IPv4MinHeaderLen + (len(h.Options)+3)&^3 }

// IsFragment reports whether the datagram is a fragment of a larger one
// (RFC 791 section 2.3): more fragments follow, or it does not start at 0.
func (h *IPv4Header) IsFragment() bool {
	return h.Flags&IPv4MoreFragments != 0 || h.FragOff != 0
}

// ParseIPv4 decodes and validates the IPv4 datagram b: version, IHL, total
// length, header checksum (RFC 791 section 3.1, RFC 1122 section 3.2.1) and
// the format of the options (checkIPv4Options).
// Bytes beyond the total length (link-layer padding, e.g. Ethernet's
// 60-byte minimum) are trimmed from payload, which aliases b.
//
// A fragment is reported with an error wrapping ErrFragment, and h and
// payload are still filled in, so the caller can count it, and reassemble it
// one day; everything else is validated as for a whole datagram.
//
// ParseIPv4 allocates nothing.
func ParseIPv4(b []byte) (h IPv4Header, payload []byte, err error) {
	if len(b) < IPv4MinHeaderLen {
		return h, nil, errIPv4Short
	}
	if b[ipv4VersionIHL]>>4 != 4 {
		return h, nil, errIPv4Version
	}
	hl := int(b[ipv4VersionIHL]&0x0f) * 4
	if hl < IPv4MinHeaderLen || hl > len(b) {
		return h, nil, errIPv4IHL
	}
	total := int(binary.BigEndian.Uint16(b[ipv4TotalLen:]))
	if total < hl {
		return h, nil, errIPv4TotalLen
	}
	if total > len(b) {
		return h, nil, errIPv4Truncated
	}
	// RFC 1122 section 3.2.1.2: a datagram whose header checksum fails
	// MUST be silently discarded.
	if Checksum(b[:hl], 0) != 0 {
		return h, nil, errIPv4Checksum
	}
	h.TOS = b[ipv4TOS]
	h.ID = binary.BigEndian.Uint16(b[ipv4ID:])
	ff := binary.BigEndian.Uint16(b[ipv4FlagsFrag:])
	h.Flags = IPv4Flags(ff >> 13)
	h.FragOff = ff & 0x1fff
	h.TTL = b[ipv4TTL]
	h.Protocol = b[ipv4Protocol]
	h.Src = netip.AddrFrom4([4]byte(b[ipv4Src:]))
	h.Dst = netip.AddrFrom4([4]byte(b[ipv4Dst:]))
	if hl > IPv4MinHeaderLen {
		h.Options = b[IPv4MinHeaderLen:hl:hl]
		if err := checkIPv4Options(h.Options); err != nil {
			return IPv4Header{}, nil, err
		}
	}
	payload = b[hl:total:total]
	if h.IsFragment() {
		return h, payload, errIPv4Fragment
	}
	return h, payload, nil
}

// IPv4 option types whose format checkIPv4Options knows (RFC 791 section
// 3.1, "Options").
const (
	ipv4OptEOL       = 0   // end of option list, one octet
	ipv4OptNOP       = 1   // no operation, one octet
	ipv4OptRR        = 7   // record route: type, length, pointer, route data
	ipv4OptTimestamp = 68  // Internet timestamp: type, length, pointer, oflw/flg, data
	ipv4OptLSRR      = 131 // loose source and record route
	ipv4OptSSRR      = 137 // strict source and record route
)

// checkIPv4Options checks the option bytes of an IPv4 header against RFC
// 791's format. Every option but EOL and NOP is type, length, data, where
// the length counts the type and length octets: a length below 2 cannot
// be, and one that runs past the header is malformed. The route options'
// pointer starts at 4 and the timestamp's at 5 (RFC 791 section 3.1); a
// smaller one points into the option's own header. Options after EOL are
// padding and not looked at.
//
// A host "MUST ignore" options it does not recognise (RFC 1122 section
// 3.2.1.8), but a malformed one leaves the rest of the header unreadable:
// Linux's ip_options_compile drops such a datagram (counted as a header
// error, with an ICMP parameter problem it is not required to send), and so
// does this stack, silently.
func checkIPv4Options(opts []byte) error {
	for i := 0; i < len(opts); {
		kind := opts[i]
		switch kind {
		case ipv4OptEOL:
			return nil
		case ipv4OptNOP:
			i++
			continue
		}
		if len(opts)-i < 2 {
			return errIPv4OptTrunc
		}
		l := int(opts[i+1])
		if l < 2 {
			return errIPv4OptLen
		}
		if l > len(opts)-i {
			return errIPv4OptOverrun
		}
		switch kind {
		case ipv4OptRR, ipv4OptLSRR, ipv4OptSSRR:
			if l < 3 || opts[i+2] < 4 {
				return errIPv4OptPointer
			}
		case ipv4OptTimestamp:
			if l < 4 || opts[i+2] < 5 {
				return errIPv4OptPointer
			}
		}
		i += l
	}
	return nil
}

// AppendIPv4 appends the header h for a payload of payloadLen bytes to b and
// returns the extended slice; the caller appends the payload. Total length
// and header checksum are computed here. Options are padded with zeros (EOL)
// to a multiple of 4.
//
// It panics when Src or Dst is not an IPv4 address, when the options exceed
// 40 bytes or when the datagram would exceed 65535 bytes: those are bugs in
// the caller, not bad input from the network.
func AppendIPv4(b []byte, h *IPv4Header, payloadLen int) []byte {
	hl := h.HeaderLen()
	if hl > IPv4MaxHeaderLen {
		panic("wire: AppendIPv4: options longer than 40 bytes")
	}
	if payloadLen < 0 || hl+payloadLen > IPv4MaxTotalLen {
		panic("wire: AppendIPv4: datagram longer than 65535 bytes")
	}
	if !h.Src.Is4() || !h.Dst.Is4() {
		panic("wire: AppendIPv4: source or destination is not an IPv4 address")
	}
	start := len(b)
	b = slices.Grow(b, hl)
	b = b[:start+hl]
	hdr := b[start:]
	hdr[ipv4VersionIHL] = 4<<4 | byte(hl/4)
	hdr[ipv4TOS] = h.TOS
	binary.BigEndian.PutUint16(hdr[ipv4TotalLen:], uint16(hl+payloadLen))
	binary.BigEndian.PutUint16(hdr[ipv4ID:], h.ID)
	binary.BigEndian.PutUint16(hdr[ipv4FlagsFrag:], uint16(h.Flags&7)<<13|h.FragOff&0x1fff)
	hdr[ipv4TTL] = h.TTL
	hdr[ipv4Protocol] = h.Protocol
	binary.BigEndian.PutUint16(hdr[ipv4Checksum:], 0)
	src, dst := h.Src.As4(), h.Dst.As4()
	copy(hdr[ipv4Src:], src[:])
	copy(hdr[ipv4Dst:], dst[:])
	n := copy(hdr[IPv4MinHeaderLen:], h.Options)
	clear(hdr[IPv4MinHeaderLen+n:])
	binary.BigEndian.PutUint16(hdr[ipv4Checksum:], Checksum(hdr, 0))
	return b
}

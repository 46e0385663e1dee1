package wire

import (
	"encoding/binary"
	"net/netip"
	"slices"
)

// Layout of the UDP header (RFC 768).
const (
	udpSrcPort  = 0
	udpDstPort  = 2
	udpLength   = 4
	udpChecksum = 6

	// UDPHeaderLen is the size of the UDP header.
	UDPHeaderLen = 8
)

// UDPHeader is the decoded form of a UDP header (RFC 768). The length and
// checksum are not stored: AppendUDP computes them and ParseUDP checks
// them.
type UDPHeader struct {
	SrcPort, DstPort uint16
}

var (
	errUDPShort        = perr("udp", "shorter than 8 bytes", ErrTooShort)
	errUDPLength       = perr("udp", "length field below 8 or beyond the datagram", ErrBadLength)
	errUDPChecksum     = perr("udp", "checksum mismatch", ErrChecksum)
	errUDPZeroChecksum = perr("udp", "zero checksum over IPv6", ErrChecksum)
	errUDPAddr         = perr("udp", "pseudo-header addresses invalid or of mixed families", ErrBadAddress)
)

// ParseUDP decodes and validates the UDP datagram b, the IP payload. The
// length field must lie between 8 and len(b); bytes beyond it are ignored
// (link padding, as Linux trims them). When verifyChecksum is set the
// checksum is checked over the pseudo-header of src and dst (RFC 768; RFC
// 8200 section 8.1 for IPv6). A zero checksum means "none computed" over
// IPv4 (RFC 768) and is accepted; over IPv6 it is an error, as RFC 8200
// section 8.1 requires ("IPv6 receivers must discard UDP packets
// containing a zero checksum"; RFC 6935's exception is for tunnels that
// opt in, which nothing here does).
//
// payload aliases b. ParseUDP allocates nothing, not even on error.
func ParseUDP(b []byte, src, dst netip.Addr, verifyChecksum bool) (h UDPHeader, payload []byte, err error) {
	if len(b) < UDPHeaderLen {
		return h, nil, errUDPShort
	}
	n := int(binary.BigEndian.Uint16(b[udpLength:]))
	if n < UDPHeaderLen || n > len(b) {
		return h, nil, errUDPLength
	}
	b = b[:n]
	if verifyChecksum {
		if !src.IsValid() || !dst.IsValid() || src.Is4() != dst.Is4() {
			return h, nil, errUDPAddr
		}
		if binary.BigEndian.Uint16(b[udpChecksum:]) == 0 {
			if !src.Is4() {
				return h, nil, errUDPZeroChecksum
			}
		} else if Checksum(b, PseudoHeaderChecksum(ProtocolUDP, src, dst, n)) != 0 {
			return h, nil, errUDPChecksum
		}
	}
	h.SrcPort = binary.BigEndian.Uint16(b[udpSrcPort:])
	h.DstPort = binary.BigEndian.Uint16(b[udpDstPort:])
	return h, b[UDPHeaderLen:], nil
}

// AppendUDP appends the datagram h+payload to b and returns the extended
// slice. The length and the checksum (over the pseudo-header of src and
// dst) are computed here; a checksum that comes out as zero is sent as
// all ones, since zero means "no checksum" (RFC 768). payload must be at
// most 65535-8 bytes.
func AppendUDP(b []byte, h *UDPHeader, payload []byte, src, dst netip.Addr) []byte {
	start := len(b)
	n := UDPHeaderLen + len(payload)
	b = slices.Grow(b, n)
	b = b[:start+UDPHeaderLen]
	hdr := b[start:]
	binary.BigEndian.PutUint16(hdr[udpSrcPort:], h.SrcPort)
	binary.BigEndian.PutUint16(hdr[udpDstPort:], h.DstPort)
	binary.BigEndian.PutUint16(hdr[udpLength:], uint16(n))
	binary.BigEndian.PutUint16(hdr[udpChecksum:], 0)
	b = append(b, payload...)
	d := b[start:]
	c := Checksum(d, PseudoHeaderChecksum(ProtocolUDP, src, dst, n))
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(d[udpChecksum:], c)
	return b
}

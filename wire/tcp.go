package wire

import (
	"encoding/binary"
	"net/netip"
	"slices"

	"github.com/synack/synack/seqnum"
)

// Layout of the fixed TCP header (RFC 9293 section 3.1).
const (
	tcpSrcPort    = 0
	tcpDstPort    = 2
	tcpSeq        = 4
	tcpAck        = 8
	tcpDataOffset = 12 // high nibble: header length in 32-bit words
	tcpFlags      = 13
	tcpWindow     = 14
	tcpChecksum   = 16
	tcpUrgent     = 18

	// TCPMinHeaderLen is the size of a TCP header without options.
	TCPMinHeaderLen = 20
	// TCPMaxHeaderLen is the largest header a 4-bit data offset can describe.
	TCPMaxHeaderLen = 60
	// TCPMaxOptionsLen is the option space left in the largest header.
	TCPMaxOptionsLen = TCPMaxHeaderLen - TCPMinHeaderLen
)

// IP protocol numbers (IANA "Assigned Internet Protocol Numbers"), also used
// as IPv6 next-header values.
const (
	ProtocolHopByHop = 0 // IPv6 hop-by-hop options (RFC 8200 section 4.3)
	ProtocolICMP     = 1
	ProtocolTCP      = 6
	ProtocolUDP      = 17
	ProtocolRouting  = 43 // RFC 8200 section 4.4
	ProtocolFragment = 44 // RFC 8200 section 4.5
	ProtocolESP      = 50
	ProtocolAH       = 51
	ProtocolICMPv6   = 58
	ProtocolNoNext   = 59 // RFC 8200 section 4.7
	ProtocolDestOpts = 60 // RFC 8200 section 4.6
)

// TCPHeader is the decoded form of a TCP header (RFC 9293 section 3.1).
// The checksum and data offset are not stored: AppendTCP computes them and
// ParseTCP checks them.
type TCPHeader struct {
	SrcPort, DstPort uint16
	Seq, Ack         seqnum.Value
	Flags            TCPFlags
	Window           uint16
	Urgent           uint16
	Options          TCPOptions
}

// OptionsLen is the size of the options AppendTCP writes for h, a multiple
// of 4 and at most TCPMaxOptionsLen.
func (h *TCPHeader) OptionsLen() int { return h.Options.Len() }

// HeaderLen is the size of the header AppendTCP writes for h, options
// included.
func (h *TCPHeader) HeaderLen() int { return TCPMinHeaderLen + h.Options.Len() }

// ParseTCP decodes and validates the TCP segment b, which must be exactly
// the IP payload (no link padding). It checks the length, the data offset
// and every option length; when verifyChecksum is set it checks the checksum
// with the pseudo-header of src and dst (RFC 9293 section 3.1). Skipping
// the checksum is for links that have verified it already (offload).
//
// payload aliases b. ParseTCP allocates nothing, not even on error.
func ParseTCP(b []byte, src, dst netip.Addr, verifyChecksum bool) (h TCPHeader, payload []byte, err error) {
	if len(b) < TCPMinHeaderLen {
		return h, nil, errTCPShort
	}
	hl := int(b[tcpDataOffset]>>4) * 4
	if hl < TCPMinHeaderLen || hl > len(b) {
		return h, nil, errTCPDataOffset
	}
	if verifyChecksum {
		if !src.IsValid() || src.Is4() != dst.Is4() || !dst.IsValid() {
			return h, nil, errTCPAddr
		}
		if Checksum(b, PseudoHeaderChecksum(ProtocolTCP, src, dst, len(b))) != 0 {
			return h, nil, errTCPChecksum
		}
	}
	if err := parseTCPOptions(b[TCPMinHeaderLen:hl], &h.Options); err != nil {
		return TCPHeader{}, nil, err
	}
	h.SrcPort = binary.BigEndian.Uint16(b[tcpSrcPort:])
	h.DstPort = binary.BigEndian.Uint16(b[tcpDstPort:])
	h.Seq = seqnum.Value(binary.BigEndian.Uint32(b[tcpSeq:]))
	h.Ack = seqnum.Value(binary.BigEndian.Uint32(b[tcpAck:]))
	// The flags byte carries CWR..FIN in the same bit order as TCPFlags.
	// The reserved bits in byte 12 (RFC 9293 section 3.1) are ignored.
	h.Flags = TCPFlags(b[tcpFlags])
	h.Window = binary.BigEndian.Uint16(b[tcpWindow:])
	h.Urgent = binary.BigEndian.Uint16(b[tcpUrgent:])
	return h, b[hl:], nil
}

// AppendTCP appends the segment h+payload to b and returns the extended
// slice. The data offset and the checksum (over the pseudo-header of src and
// dst, RFC 9293 section 3.1) are computed here. The options are written in
// the order Options.Len documents.
func AppendTCP(b []byte, h *TCPHeader, payload []byte, src, dst netip.Addr) []byte {
	return append(AppendTCPHeader(b, h, payload, src, dst), payload...)
}

// AppendTCPHeader is AppendTCP without appending the payload: the header
// alone, its checksum covering the payload as well, for a sender that
// hands the payload to the link as a piece of its own (link.Packet). The
// header's length is a multiple of four, so the payload's 16-bit words
// line up as they would after it (RFC 1071).
func AppendTCPHeader(b []byte, h *TCPHeader, payload []byte, src, dst netip.Addr) []byte {
	start := len(b)
	b = appendTCPFields(b, h, len(payload))
	hdr := b[start:]
	partial := PseudoHeaderChecksum(ProtocolTCP, src, dst, len(hdr)+len(payload)) + uint32(sum(payload))
	binary.BigEndian.PutUint16(hdr[tcpChecksum:], Checksum(hdr, partial))
	return b
}

// AppendTCPHeaderPartial is AppendTCPHeader for a link that completes the
// checksum (checksum offload, link.Packet.PartialChecksum): the checksum
// field holds the pseudo-header's sum over a TCP length of the header and
// payloadLen bytes, folded and not complemented (the kernel's
// CHECKSUM_PARTIAL convention, VIRTIO_NET_HDR_F_NEEDS_CSUM), and the
// header and payload are not summed at all.
func AppendTCPHeaderPartial(b []byte, h *TCPHeader, payloadLen int, src, dst netip.Addr) []byte {
	start := len(b)
	b = appendTCPFields(b, h, payloadLen)
	hdr := b[start:]
	binary.BigEndian.PutUint16(hdr[tcpChecksum:], ^Checksum(nil, PseudoHeaderChecksum(ProtocolTCP, src, dst, len(hdr)+payloadLen)))
	return b
}

// appendTCPFields appends the header's fields and options with a zero
// checksum, with room for payloadLen more bytes.
func appendTCPFields(b []byte, h *TCPHeader, payloadLen int) []byte {
	hl := h.HeaderLen()
	start := len(b)
	b = slices.Grow(b, hl+payloadLen)
	b = b[:start+hl]
	hdr := b[start:]
	binary.BigEndian.PutUint16(hdr[tcpSrcPort:], h.SrcPort)
	binary.BigEndian.PutUint16(hdr[tcpDstPort:], h.DstPort)
	binary.BigEndian.PutUint32(hdr[tcpSeq:], uint32(h.Seq))
	binary.BigEndian.PutUint32(hdr[tcpAck:], uint32(h.Ack))
	hdr[tcpDataOffset] = byte(hl/4) << 4
	hdr[tcpFlags] = byte(h.Flags)
	binary.BigEndian.PutUint16(hdr[tcpWindow:], h.Window)
	binary.BigEndian.PutUint16(hdr[tcpChecksum:], 0)
	binary.BigEndian.PutUint16(hdr[tcpUrgent:], h.Urgent)
	EncodeTCPOptions(hdr[TCPMinHeaderLen:], &h.Options)
	return b
}

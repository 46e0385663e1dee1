package wire

import (
	"encoding/binary"
	"net/netip"
	"slices"

	"github.com/synack/synack/seqnum"
)

// ICMPv4 types and codes (RFC 792, RFC 1191, RFC 1812 section 5.2.7.1).
const (
	ICMPv4EchoReply       = 0
	ICMPv4DestUnreachable = 3
	ICMPv4SourceQuench    = 4
	ICMPv4Redirect        = 5
	ICMPv4EchoRequest     = 8
	ICMPv4TimeExceeded    = 11
	ICMPv4ParamProblem    = 12

	ICMPv4NetUnreachable   = 0  // code of DestUnreachable
	ICMPv4HostUnreachable  = 1  // code of DestUnreachable
	ICMPv4ProtoUnreachable = 2  // code of DestUnreachable
	ICMPv4PortUnreachable  = 3  // code of DestUnreachable
	ICMPv4FragNeeded       = 4  // code of DestUnreachable; Rest holds the next-hop MTU (RFC 1191 section 4)
	ICMPv4AdminProhibited  = 13 // code of DestUnreachable (RFC 1812)
)

// ICMPv6 types and codes (RFC 4443).
const (
	ICMPv6DestUnreachable = 1
	ICMPv6PacketTooBig    = 2
	ICMPv6TimeExceeded    = 3
	ICMPv6ParamProblem    = 4
	ICMPv6EchoRequest     = 128
	ICMPv6EchoReply       = 129

	ICMPv6NoRoute          = 0 // code of DestUnreachable
	ICMPv6AdminProhibited  = 1 // code of DestUnreachable
	ICMPv6BeyondScope      = 2 // code of DestUnreachable
	ICMPv6AddrUnreachable  = 3 // code of DestUnreachable
	ICMPv6PortUnreachable  = 4 // code of DestUnreachable
	ICMPv6PolicyFailed     = 5 // code of DestUnreachable
	ICMPv6RejectRoute      = 6 // code of DestUnreachable
	ICMPv6SourceRoutingErr = 7 // code of DestUnreachable (RFC 8554)
)

// ICMPHeaderLen is the size of the ICMP header common to both versions:
// type, code, checksum and one 32-bit word whose meaning depends on the
// type (RFC 792, RFC 4443 section 2.1).
const ICMPHeaderLen = 8

// Largest quoted datagram when building an error: RFC 1812 section 4.3.2.3
// caps an ICMPv4 error at 576 bytes, RFC 4443 section 2.4(c) an ICMPv6 error
// at the minimum IPv6 MTU, 1280.
const (
	icmpv4MaxQuote = 576 - IPv4MinHeaderLen - ICMPHeaderLen
	icmpv6MaxQuote = 1280 - IPv6HeaderLen - ICMPHeaderLen
)

// ICMPv4Message is a decoded ICMPv4 message (RFC 792).
type ICMPv4Message struct {
	Type, Code uint8
	// Rest is the second header word, raw: identifier and sequence number
	// of an echo, the next-hop MTU of fragmentation-needed in its low 16
	// bits, a pointer, a gateway or unused. The methods decode it.
	Rest uint32
	// Data is the echo data or, for error messages, the quoted datagram
	// (its IP header and at least 8 bytes of its payload). It aliases the
	// parsed bytes.
	Data []byte
}

// ICMPv6Message is a decoded ICMPv6 message (RFC 4443).
type ICMPv6Message struct {
	Type, Code uint8
	// Rest is the second header word, raw: identifier and sequence number
	// of an echo, the MTU of packet-too-big, a pointer or unused.
	Rest uint32
	// Data is the echo data or, for error messages, the invoking packet,
	// as much of it as fit. It aliases the parsed bytes.
	Data []byte
}

// ParseICMPv4 decodes the ICMPv4 message b (the IPv4 payload). When
// verifyChecksum is set it checks the checksum, which covers the whole
// message and no pseudo-header (RFC 792).
func ParseICMPv4(b []byte, verifyChecksum bool) (m ICMPv4Message, err error) {
	if len(b) < ICMPHeaderLen {
		return m, errICMPv4Short
	}
	if verifyChecksum && Checksum(b, 0) != 0 {
		return m, errICMPv4Checksum
	}
	return ICMPv4Message{Type: b[0], Code: b[1], Rest: binary.BigEndian.Uint32(b[4:]), Data: b[ICMPHeaderLen:]}, nil
}

// ParseICMPv6 decodes the ICMPv6 message b (the IPv6 upper-layer payload).
// When verifyChecksum is set it checks the checksum, which covers the IPv6
// pseudo-header of src and dst (RFC 4443 section 2.3).
func ParseICMPv6(b []byte, src, dst netip.Addr, verifyChecksum bool) (m ICMPv6Message, err error) {
	if len(b) < ICMPHeaderLen {
		return m, errICMPv6Short
	}
	if verifyChecksum {
		if !src.Is6() || !dst.Is6() {
			return m, errICMPv6Addr
		}
		if Checksum(b, PseudoHeaderChecksum(ProtocolICMPv6, src, dst, len(b))) != 0 {
			return m, errICMPv6Checksum
		}
	}
	return ICMPv6Message{Type: b[0], Code: b[1], Rest: binary.BigEndian.Uint32(b[4:]), Data: b[ICMPHeaderLen:]}, nil
}

// AppendICMPv4 appends m to b with its checksum and returns the extended
// slice.
func AppendICMPv4(b []byte, m *ICMPv4Message) []byte {
	start := len(b)
	b = appendICMP(b, m.Type, m.Code, m.Rest, m.Data)
	binary.BigEndian.PutUint16(b[start+2:], Checksum(b[start:], 0))
	return b
}

// AppendICMPv6 appends m to b with its checksum over the pseudo-header of
// src and dst (RFC 4443 section 2.3) and returns the extended slice.
func AppendICMPv6(b []byte, m *ICMPv6Message, src, dst netip.Addr) []byte {
	start := len(b)
	b = appendICMP(b, m.Type, m.Code, m.Rest, m.Data)
	msg := b[start:]
	binary.BigEndian.PutUint16(msg[2:], Checksum(msg, PseudoHeaderChecksum(ProtocolICMPv6, src, dst, len(msg))))
	return b
}

func appendICMP(b []byte, typ, code uint8, rest uint32, data []byte) []byte {
	b = slices.Grow(b, ICMPHeaderLen+len(data))
	b = append(b, typ, code, 0, 0)
	b = binary.BigEndian.AppendUint32(b, rest)
	return append(b, data...)
}

func echoRest(id, seq uint16) uint32 { return uint32(id)<<16 | uint32(seq) }

// Echo returns the identifier and sequence number of an echo request or
// reply (RFC 792).
func (m *ICMPv4Message) Echo() (id, seq uint16) { return uint16(m.Rest >> 16), uint16(m.Rest) }

// Echo returns the identifier and sequence number of an echo request or
// reply (RFC 4443 section 4).
func (m *ICMPv6Message) Echo() (id, seq uint16) { return uint16(m.Rest >> 16), uint16(m.Rest) }

// NextHopMTU returns the MTU of a fragmentation-needed message (type 3 code
// 4, RFC 1191 section 4); 0 means the router predates RFC 1191.
func (m *ICMPv4Message) NextHopMTU() uint16 { return uint16(m.Rest) }

// MTU returns the MTU of a packet-too-big message (RFC 4443 section 3.2).
func (m *ICMPv6Message) MTU() uint32 { return m.Rest }

// IsError reports whether m is an error message that quotes a datagram:
// destination unreachable, source quench, redirect, time exceeded or
// parameter problem (RFC 792).
func (m *ICMPv4Message) IsError() bool {
	switch m.Type {
	case ICMPv4DestUnreachable, ICMPv4SourceQuench, ICMPv4Redirect, ICMPv4TimeExceeded, ICMPv4ParamProblem:
		return true
	}
	return false
}

// IsError reports whether m is an error message: types 0 to 127 (RFC 4443
// section 2.1).
func (m *ICMPv6Message) IsError() bool { return m.Type < 128 }

// IsFragNeeded reports whether m is "fragmentation needed and DF set".
func (m *ICMPv4Message) IsFragNeeded() bool {
	return m.Type == ICMPv4DestUnreachable && m.Code == ICMPv4FragNeeded
}

// NewICMPv4Echo builds an echo request, or a reply when reply is set.
func NewICMPv4Echo(reply bool, id, seq uint16, data []byte) ICMPv4Message {
	typ := uint8(ICMPv4EchoRequest)
	if reply {
		typ = ICMPv4EchoReply
	}
	return ICMPv4Message{Type: typ, Rest: echoRest(id, seq), Data: data}
}

// NewICMPv6Echo builds an echo request, or a reply when reply is set.
func NewICMPv6Echo(reply bool, id, seq uint16, data []byte) ICMPv6Message {
	typ := uint8(ICMPv6EchoRequest)
	if reply {
		typ = ICMPv6EchoReply
	}
	return ICMPv6Message{Type: typ, Rest: echoRest(id, seq), Data: data}
}

// NewICMPv4Unreachable builds a destination-unreachable message with code
// quoting orig, the offending datagram from its IP header on, cut to what
// RFC 1812 section 4.3.2.3 allows.
func NewICMPv4Unreachable(code uint8, orig []byte) ICMPv4Message {
	return ICMPv4Message{Type: ICMPv4DestUnreachable, Code: code, Data: orig[:min(len(orig), icmpv4MaxQuote)]}
}

// NewICMPv4FragNeeded builds "fragmentation needed and DF set" with the
// next-hop MTU (RFC 1191 section 4) quoting orig.
func NewICMPv4FragNeeded(mtu uint16, orig []byte) ICMPv4Message {
	m := NewICMPv4Unreachable(ICMPv4FragNeeded, orig)
	m.Rest = uint32(mtu)
	return m
}

// NewICMPv6Unreachable builds a destination-unreachable message with code
// quoting orig, cut so the error fits the minimum MTU (RFC 4443 section 3.1).
func NewICMPv6Unreachable(code uint8, orig []byte) ICMPv6Message {
	return ICMPv6Message{Type: ICMPv6DestUnreachable, Code: code, Data: orig[:min(len(orig), icmpv6MaxQuote)]}
}

// NewICMPv6PacketTooBig builds a packet-too-big message with mtu quoting
// orig (RFC 4443 section 3.2).
func NewICMPv6PacketTooBig(mtu uint32, orig []byte) ICMPv6Message {
	return ICMPv6Message{Type: ICMPv6PacketTooBig, Rest: mtu, Data: orig[:min(len(orig), icmpv6MaxQuote)]}
}

// ICMPQuote identifies the datagram an ICMP error is about, from the IP
// header and the first 8 bytes of transport header it quotes (RFC 792: "the
// internet header plus the first 64 bits of the original datagram's data").
// Those 8 bytes hold a TCP segment's ports and sequence number, enough to
// find the connection and check the segment was in flight (RFC 5927 section
// 4.1).
type ICMPQuote struct {
	Src, Dst         netip.Addr
	Protocol         uint8
	SrcPort, DstPort uint16       // TCP and UDP
	Seq              seqnum.Value // TCP only
}

// Quote decodes the datagram an ICMPv4 error quotes. The quoted header's
// checksum and total length are not checked: routers may quote less than
// the total length says, and the quote is only a lookup key.
func (m *ICMPv4Message) Quote() (ICMPQuote, error) {
	if !m.IsError() {
		return ICMPQuote{}, errICMPNotError
	}
	return parseQuote4(m.Data)
}

// Quote decodes the packet an ICMPv6 error quotes, skipping its extension
// headers.
func (m *ICMPv6Message) Quote() (ICMPQuote, error) {
	if !m.IsError() {
		return ICMPQuote{}, errICMPNotError
	}
	return parseQuote6(m.Data)
}

func parseQuote4(b []byte) (q ICMPQuote, err error) {
	if len(b) < IPv4MinHeaderLen {
		return q, errQuoteShort
	}
	if b[ipv4VersionIHL]>>4 != 4 {
		return q, errQuoteVersion
	}
	hl := int(b[ipv4VersionIHL]&0x0f) * 4
	if hl < IPv4MinHeaderLen {
		return q, errQuoteIHL
	}
	if hl+8 > len(b) {
		return q, errQuoteShort
	}
	// Only the first fragment carries the transport header.
	if binary.BigEndian.Uint16(b[ipv4FlagsFrag:])&0x1fff != 0 {
		return q, errQuoteFragment
	}
	q.Src = netip.AddrFrom4([4]byte(b[ipv4Src:]))
	q.Dst = netip.AddrFrom4([4]byte(b[ipv4Dst:]))
	q.Protocol = b[ipv4Protocol]
	q.setTransport(b[hl:])
	return q, nil
}

func parseQuote6(b []byte) (q ICMPQuote, err error) {
	if len(b) < IPv6HeaderLen {
		return q, errQuoteShort
	}
	if b[ipv6VersionTCFL]>>4 != 6 {
		return q, errQuoteVersion
	}
	q.Src = netip.AddrFrom16([16]byte(b[ipv6Src:]))
	q.Dst = netip.AddrFrom16([16]byte(b[ipv6Dst:]))
	next, rest := b[ipv6NextHeader], b[IPv6HeaderLen:]
	for {
		proto, off, err := skipIPv6Ext(next, rest)
		switch err {
		case nil:
			if len(rest)-off < 8 {
				return ICMPQuote{}, errQuoteShort
			}
			q.Protocol = proto
			q.setTransport(rest[off:])
			return q, nil
		case errIPv6Fragment:
			// A first fragment (offset 0) still starts with the
			// transport header; step over the 8-byte fragment header
			// (RFC 8200 section 4.5).
			if len(rest)-off < 8 {
				return ICMPQuote{}, errQuoteShort
			}
			if binary.BigEndian.Uint16(rest[off+2:])>>3 != 0 {
				return ICMPQuote{}, errQuoteFragment
			}
			next, rest = rest[off], rest[off+8:]
		case errIPv6ExtShort:
			return ICMPQuote{}, errQuoteShort
		default:
			return ICMPQuote{}, err
		}
	}
}

// setTransport reads ports and, for TCP, the sequence number from the first
// 8 bytes of the quoted transport header (RFC 9293 section 3.1; UDP, RFC
// 768, has its ports at the same place). Other protocols leave them zero.
func (q *ICMPQuote) setTransport(t []byte) {
	if q.Protocol != ProtocolTCP && q.Protocol != ProtocolUDP {
		return
	}
	q.SrcPort = binary.BigEndian.Uint16(t[0:])
	q.DstPort = binary.BigEndian.Uint16(t[2:])
	if q.Protocol == ProtocolTCP {
		q.Seq = seqnum.Value(binary.BigEndian.Uint32(t[4:]))
	}
}

package wire

import "encoding/binary"

// ECN is the two-bit ECN field of the IP header (RFC 3168 section 5): the
// low two bits of the IPv4 TOS byte and of the IPv6 Traffic Class.
type ECN uint8

// The four codepoints of RFC 3168 section 5.
const (
	NotECT ECN = 0b00 // not ECN-capable transport
	ECT1   ECN = 0b01 // ECN-capable transport, ECT(1)
	ECT0   ECN = 0b10 // ECN-capable transport, ECT(0): what a TCP sends (RFC 3168 6.1)
	CE     ECN = 0b11 // congestion experienced, set by a router instead of dropping
)

// ecnMask selects the ECN field in a TOS or Traffic Class byte.
const ecnMask = 0b11

// String names the codepoint as packetdrill and tcpdump do.
func (e ECN) String() string {
	switch e & ecnMask {
	case ECT1:
		return "ect1"
	case ECT0:
		return "ect0"
	case CE:
		return "ce"
	}
	return "noecn"
}

// ECNOf returns the ECN field of a TOS or Traffic Class byte.
func ECNOf(tos uint8) ECN { return ECN(tos & ecnMask) }

// WithECN returns tos with its ECN field set to e, the DSCP kept.
func WithECN(tos uint8, e ECN) uint8 { return tos&^ecnMask | uint8(e&ecnMask) }

// ECN returns the packet's ECN field, of either IP version.
func (p *IPPacket) ECN() ECN {
	if p.Version == 6 {
		return ECNOf(p.IPv6.TrafficClass)
	}
	return ECNOf(p.IPv4.TOS)
}

// PacketECN reads the ECN field of the raw IPv4 or IPv6 packet b without
// parsing the rest; ok is false when b is too short or of another version.
func PacketECN(b []byte) (e ECN, ok bool) {
	switch {
	case len(b) >= IPv4MinHeaderLen && b[0]>>4 == 4:
		return ECNOf(b[ipv4TOS]), true
	case len(b) >= IPv6HeaderLen && b[0]>>4 == 6:
		return ECNOf(uint8(binary.BigEndian.Uint16(b[ipv6VersionTCFL:]) >> 4)), true
	}
	return NotECT, false
}

// SetPacketECN rewrites the ECN field of the raw IPv4 or IPv6 packet b in
// place, as a router marking CE does (RFC 3168 section 5), and reports
// whether it could. The IPv4 header checksum is updated incrementally
// (RFC 1624 eqn. 3), so a packet that was valid stays valid; IPv6 has no
// header checksum, and the TCP checksum does not cover the IP header's
// ECN bits.
func SetPacketECN(b []byte, e ECN) bool {
	switch {
	case len(b) >= IPv4MinHeaderLen && b[0]>>4 == 4:
		oldWord := binary.BigEndian.Uint16(b[0:]) // version/IHL and TOS
		b[ipv4TOS] = WithECN(b[ipv4TOS], e)
		newWord := binary.BigEndian.Uint16(b[0:])
		// HC' = ~(~HC + ~m + m') in one's complement arithmetic.
		sum := uint32(^binary.BigEndian.Uint16(b[ipv4Checksum:])) + uint32(^oldWord) + uint32(newWord)
		for sum>>16 != 0 {
			sum = sum&0xffff + sum>>16
		}
		binary.BigEndian.PutUint16(b[ipv4Checksum:], ^uint16(sum))
		return true
	case len(b) >= IPv6HeaderLen && b[0]>>4 == 6:
		w := binary.BigEndian.Uint16(b[ipv6VersionTCFL:])
		// The Traffic Class is bits 4..11 of the first word; its ECN
		// field the low two of them.
		w = w&^(ecnMask<<4) | uint16(e&ecnMask)<<4
		binary.BigEndian.PutUint16(b[ipv6VersionTCFL:], w)
		return true
	}
	return false
}

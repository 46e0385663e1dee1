package wire

import (
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
)

// Packets captured on this machine's loopback with an AF_PACKET socket while
// Python's socket.create_connection dialled a listener: a real Linux SYN and
// SYN-ACK for IPv4 and IPv6. On lo the kernel leaves the TCP checksum
// partial (CHECKSUM_PARTIAL: only the folded pseudo-header sum, 0xfe30 for
// 127.0.0.1 and 0x0030 for ::1), so tests that verify checksums first fill
// in the full one with refChecksum.
const (
	linuxSYN4    = "4500003ca33a40004006997f7f0000017f000001c474e52d4d9ae8bf00000000a002ffd7fe3000000204ffd70402080addb0dc8f000000000103030a"
	linuxSYNACK4 = "4500003c0000400040063cba7f0000017f000001e52dc4747d49a3a24d9ae8c0a012ffcbfe3000000204ffd70402080af2ab133eddb0dc8f0103030a"
	linuxSYN6    = "60048ed7002806400000000000000000000000000000000100000000000000000000000000000001a806ac518ba830a200000000a002ffc4003000000204ffc40402080a3d2916d2000000000103030a"
	linuxSYNACK6 = "600cfa33002806400000000000000000000000000000000100000000000000000000000000000001ac51a806cb5731b58ba830a3a012ffb8003000000204ffc40402080a29d1ba2d3d2916d20103030a"
)

var (
	lo4   = netip.MustParseAddr("127.0.0.1")
	lo6   = netip.MustParseAddr("::1")
	addrA = netip.MustParseAddr("198.18.0.1")
	addrB = netip.MustParseAddr("198.18.0.2")
	addr6 = netip.MustParseAddr("fd00::1")
	addr7 = netip.MustParseAddr("fd00::2")
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// refSum is the textbook RFC 1071 loop, 16 bits at a time: the reference
// the fast sum is checked against.
func refSum(b []byte) uint64 {
	var s uint64
	for i := 0; i+1 < len(b); i += 2 {
		s += uint64(b[i])<<8 | uint64(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint64(b[len(b)-1]) << 8
	}
	return s
}

func refFold(s uint64) uint16 {
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// refPseudo builds the pseudo-header bytes literally (RFC 9293 section 3.1,
// RFC 8200 section 8.1) and sums them.
func refPseudo(proto uint8, src, dst netip.Addr, length int) uint64 {
	var p []byte
	if src.Is4() {
		s, d := src.As4(), dst.As4()
		p = append(append(p, s[:]...), d[:]...)
		p = append(p, 0, proto)
		p = binary.BigEndian.AppendUint16(p, uint16(length))
	} else {
		s, d := src.As16(), dst.As16()
		p = append(append(p, s[:]...), d[:]...)
		p = binary.BigEndian.AppendUint32(p, uint32(length))
		p = append(p, 0, 0, 0, proto)
	}
	return refSum(p)
}

// refChecksum is the checksum of b with the pseudo-header (pseudo false:
// without), computed the slow, obvious way.
func refChecksum(b []byte, proto uint8, src, dst netip.Addr, pseudo bool) uint16 {
	s := refSum(b)
	if pseudo {
		s += refPseudo(proto, src, dst, len(b))
	}
	return ^refFold(s)
}

// fixTCPChecksum stores the correct checksum in the TCP segment seg.
func fixTCPChecksum(seg []byte, src, dst netip.Addr) {
	binary.BigEndian.PutUint16(seg[16:], 0)
	binary.BigEndian.PutUint16(seg[16:], refChecksum(seg, ProtocolTCP, src, dst, true))
}

// fixIPv4Checksum stores the correct header checksum in the IPv4 packet p.
func fixIPv4Checksum(p []byte) {
	hl := int(p[0]&0x0f) * 4
	binary.BigEndian.PutUint16(p[10:], 0)
	binary.BigEndian.PutUint16(p[10:], refChecksum(p[:hl], 0, netip.Addr{}, netip.Addr{}, false))
}

// capturedSYN returns a captured packet with its TCP checksum completed and
// the TCP segment inside it.
func capturedSYN(t testing.TB, s string) (pkt, seg []byte, src, dst netip.Addr) {
	pkt = unhex(t, s)
	if pkt[0]>>4 == 4 {
		seg, src, dst = pkt[20:], lo4, lo4
	} else {
		seg, src, dst = pkt[40:], lo6, lo6
	}
	fixTCPChecksum(seg, src, dst)
	return pkt, seg, src, dst
}

// rawTCP builds a TCP segment from 127.0.0.1 to 127.0.0.1 with the given raw
// option bytes (padded with zeros to a multiple of 4) and a valid checksum.
func rawTCP(opts []byte, payload string) []byte {
	ol := (len(opts) + 3) &^ 3
	b := make([]byte, 20+ol, 20+ol+len(payload))
	binary.BigEndian.PutUint16(b[0:], 1234)
	binary.BigEndian.PutUint16(b[2:], 80)
	binary.BigEndian.PutUint32(b[4:], 1000)
	binary.BigEndian.PutUint32(b[8:], 2000)
	b[12] = byte((20+ol)/4) << 4
	b[13] = byte(ACK)
	binary.BigEndian.PutUint16(b[14:], 512)
	copy(b[20:], opts)
	b = append(b, payload...)
	fixTCPChecksum(b, lo4, lo4)
	return b
}

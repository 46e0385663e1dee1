package wire

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
)

// A header with the checksum left partial, completed as a link with
// checksum offload does (the Internet checksum from the TCP header on,
// with the partial sum in the field, stored there: RFC 1071, the kernel's
// CHECKSUM_PARTIAL), is the header AppendTCP writes, for IPv4 and IPv6 and
// odd payload lengths.
func TestAppendTCPHeaderPartialCompletes(t *testing.T) {
	h := &TCPHeader{SrcPort: 1, DstPort: 2, Seq: 3, Ack: 4, Flags: ACK | PSH, Window: 5}
	h.Options.HasTimestamps, h.Options.TSVal, h.Options.TSEcr = true, 6, 7
	payload := make([]byte, 3000)
	for i := range payload {
		payload[i] = byte(i*131 + 7)
	}
	for _, fam := range []struct{ name, src, dst string }{{"v4", "198.18.0.1", "198.18.0.2"}, {"v6", "fd00::1", "fd00::2"}} {
		src, dst := netip.MustParseAddr(fam.src), netip.MustParseAddr(fam.dst)
		for _, n := range []int{0, 1, 63, 1460, 2999} {
			whole := AppendTCP(nil, h, payload[:n], src, dst)
			seg := append(AppendTCPHeaderPartial(nil, h, n, src, dst), payload[:n]...)
			binary.BigEndian.PutUint16(seg[16:], Checksum(seg, 0))
			if !bytes.Equal(seg, whole) {
				t.Fatalf("%s payload %d: completed checksum %#04x, want %#04x", fam.name, n, binary.BigEndian.Uint16(seg[16:]), binary.BigEndian.Uint16(whole[16:]))
			}
		}
	}
}

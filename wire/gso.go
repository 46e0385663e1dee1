package wire

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// This file is TCP segmentation as a NIC's TSO or the kernel's GSO does
// it, for a link that takes super-segments (link.SegmentOffloader) and
// has no kernel to cut them: each segment is a copy of the super-segment's
// IP and TCP headers followed by its slice of the payload, with the
// header fields that differ per segment fixed up.

var errGSOPacket = errors.New("wire: not a TCP super-segment over IPv4 without options or bare IPv6")

// GSOHeaderLen is the length of the IP and TCP headers of pkt, a TCP
// super-segment: the bytes every segment cut from it starts with. It takes
// an IPv4 header without options or an IPv6 header without extension
// headers, which is what the stack builds.
func GSOHeaderLen(pkt []byte) (int, error) {
	var ipl int
	switch {
	case len(pkt) >= IPv4MinHeaderLen && pkt[0] == 0x45 && pkt[9] == ProtocolTCP:
		ipl = IPv4MinHeaderLen
	case len(pkt) >= IPv6HeaderLen && pkt[0]>>4 == 6 && pkt[6] == ProtocolTCP:
		ipl = IPv6HeaderLen
	default:
		return 0, errGSOPacket
	}
	if len(pkt) < ipl+TCPMinHeaderLen {
		return 0, errGSOPacket
	}
	hl := ipl + int(pkt[ipl+12]>>4)*4
	if hl < ipl+TCPMinHeaderLen || hl > len(pkt) {
		return 0, errGSOPacket
	}
	return hl, nil
}

// FinishGSOSegment makes seg, which holds a copy of a super-segment's hl
// bytes of headers (GSOHeaderLen) followed by its payload from byte off on,
// the index-th segment cut from it: the IP length, the IPv4
// identification (the super-segment's plus index, as Linux's GSO counts)
// and header checksum, the sequence number (plus off), the flags (FIN and
// PSH on the last segment only, RFC 9293 3.10.4 sends FIN after the data;
// CWR on the first only, RFC 3168 6.1.2) and a full TCP checksum.
func FinishGSOSegment(seg []byte, hl, index, off int, last bool) {
	v4 := seg[0]>>4 == 4
	ipl := IPv6HeaderLen
	if v4 {
		ipl = IPv4MinHeaderLen
		binary.BigEndian.PutUint16(seg[2:], uint16(len(seg)))
		binary.BigEndian.PutUint16(seg[4:], binary.BigEndian.Uint16(seg[4:])+uint16(index))
		seg[10], seg[11] = 0, 0
		binary.BigEndian.PutUint16(seg[10:], Checksum(seg[:ipl], 0))
	} else {
		binary.BigEndian.PutUint16(seg[4:], uint16(len(seg)-IPv6HeaderLen))
	}
	t := seg[ipl:]
	binary.BigEndian.PutUint32(t[4:], binary.BigEndian.Uint32(t[4:])+uint32(off))
	if !last {
		t[13] &^= byte(FIN | PSH)
	}
	if index > 0 {
		t[13] &^= byte(CWR)
	}
	var src, dst netip.Addr
	if v4 {
		src, dst = netip.AddrFrom4([4]byte(seg[12:16])), netip.AddrFrom4([4]byte(seg[16:20]))
	} else {
		src, dst = netip.AddrFrom16([16]byte(seg[8:24])), netip.AddrFrom16([16]byte(seg[24:40]))
	}
	t[16], t[17] = 0, 0
	binary.BigEndian.PutUint16(t[16:], Checksum(t, PseudoHeaderChecksum(ProtocolTCP, src, dst, len(t))))
}

package tun

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/synack/synack/wire"
)

// This file is the virtio-net header that a TUN device opened with
// IFF_VNET_HDR puts before every packet (struct virtio_net_hdr, Virtio 1.x
// section 5.1.6, in the host's byte order for a legacy header), and what
// the package does with it: complete a checksum the kernel left partial,
// split the kernel's GSO super-packets (TSO, USO) into the segments a wire
// would have carried, and join consecutive segments of one TCP flow into
// one super-packet the kernel segments on the way in.

// vnetHdrLen is the size of struct virtio_net_hdr: the header this package
// asks for (TUNSETVNETHDRSZ's default).
const vnetHdrLen = 10

// virtio_net_hdr flags and GSO types (linux/virtio_net.h).
const (
	vnetNeedsCsum = 0x1 // VIRTIO_NET_HDR_F_NEEDS_CSUM: checksum from CsumStart on, stored at CsumStart+CsumOffset
	vnetDataValid = 0x2 // VIRTIO_NET_HDR_F_DATA_VALID: the kernel checked the checksum

	gsoNone  = 0
	gsoTCPv4 = 1
	gsoUDP   = 3 // UFO (IPv4 fragmentation): never asked for, refused
	gsoTCPv6 = 4
	gsoUDPL4 = 5 // USO: UDP payload cut into datagrams of GSOSize
	gsoECN   = 0x80
)

// TCP flag bits in the header's flags byte (RFC 9293 section 3.1, RFC 3168
// section 23.2 for ECE and CWR).
const (
	tcpFIN = byte(wire.FIN)
	tcpPSH = byte(wire.PSH)
	tcpACK = byte(wire.ACK)
	tcpECE = byte(wire.ECE)
	tcpCWR = byte(wire.CWR)
)

// vnetHdr is a decoded struct virtio_net_hdr.
type vnetHdr struct {
	Flags      uint8
	GSOType    uint8
	HdrLen     uint16
	GSOSize    uint16
	CsumStart  uint16
	CsumOffset uint16
}

func decodeVnetHdr(b []byte) vnetHdr {
	ne := binary.NativeEndian
	return vnetHdr{
		Flags: b[0], GSOType: b[1],
		HdrLen: ne.Uint16(b[2:]), GSOSize: ne.Uint16(b[4:]),
		CsumStart: ne.Uint16(b[6:]), CsumOffset: ne.Uint16(b[8:]),
	}
}

func (h vnetHdr) encode(b []byte) {
	ne := binary.NativeEndian
	b[0], b[1] = h.Flags, h.GSOType
	ne.PutUint16(b[2:], h.HdrLen)
	ne.PutUint16(b[4:], h.GSOSize)
	ne.PutUint16(b[6:], h.CsumStart)
	ne.PutUint16(b[8:], h.CsumOffset)
}

var (
	errVnetBad   = errors.New("bad virtio-net header")
	errVnetProto = errors.New("GSO packet of an unsupported type")
)

// ipInfo is what splitting and joining need of an IP header.
type ipInfo struct {
	v4       bool
	hl       int // IP header length: where the transport header starts
	proto    uint8
	src, dst netip.Addr
}

// parseIPHeader reads the fixed IPv4 or IPv6 header of pkt. An IPv6
// packet with extension headers is taken only when thoff (the kernel's
// CsumStart) says where its transport header starts.
func parseIPHeader(pkt []byte, thoff int) (ipInfo, bool) {
	var ip ipInfo
	if len(pkt) < 20 {
		return ip, false
	}
	switch pkt[0] >> 4 {
	case 4:
		ip.v4 = true
		ip.hl = int(pkt[0]&0xf) * 4
		ip.proto = pkt[9]
		ip.src = netip.AddrFrom4([4]byte(pkt[12:16]))
		ip.dst = netip.AddrFrom4([4]byte(pkt[16:20]))
		if ip.hl < 20 || len(pkt) < ip.hl {
			return ip, false
		}
	case 6:
		if len(pkt) < 40 {
			return ip, false
		}
		ip.hl = 40
		ip.proto = pkt[6]
		ip.src = netip.AddrFrom16([16]byte(pkt[8:24]))
		ip.dst = netip.AddrFrom16([16]byte(pkt[24:40]))
		if thoff > 40 && thoff <= len(pkt) {
			// Extension headers: the kernel told us where the transport
			// header is; the protocol is the one the GSO type names.
			ip.hl = thoff
			ip.proto = 0
		}
	default:
		return ip, false
	}
	return ip, true
}

// completeChecksum finishes a checksum the kernel left partial
// (VIRTIO_NET_HDR_F_NEEDS_CSUM): the field at start+off holds the
// pseudo-header's sum, and the Internet checksum over pkt[start:] with
// that sum in place is the final value (RFC 1071 section 2; the kernel's
// CHECKSUM_PARTIAL convention).
func completeChecksum(pkt []byte, start, off int) bool {
	if start < 0 || start+off+2 > len(pkt) {
		return false
	}
	c := wire.Checksum(pkt[start:], 0)
	if c == 0 && off == 6 {
		// UDP: a computed 0 is sent as all ones (RFC 768), 0 meaning "no
		// checksum".
		c = 0xffff
	}
	binary.BigEndian.PutUint16(pkt[start+off:], c)
	return true
}

// splitGSO cuts pkt, a GSO super-packet the kernel handed over with header
// h, into the segments (TCP) or datagrams (UDP) a wire would have carried,
// appending each to dst and its bounds to out. Each gets its own IP length,
// IPv4 identification (incremented per segment, as the kernel's own
// segmentation does) and header checksum, TCP sequence number and flags
// (FIN and PSH on the last segment only, CWR on the first only: RFC 9293
// section 3.10.4 sends FIN after the data, RFC 3168 section 6.1.2 sets CWR
// once), and, unless vouch, a full transport checksum; with vouch the
// checksum fields are left as they are and the link vouches for the data
// instead (the kernel made it; nothing can have damaged it).
func splitGSO(dst []byte, out [][]byte, pkt []byte, h vnetHdr, vouch bool) ([]byte, [][]byte, error) {
	gsoType := h.GSOType &^ gsoECN
	thoff := int(h.CsumStart)
	if h.Flags&vnetNeedsCsum == 0 {
		thoff = 0
	}
	ip, ok := parseIPHeader(pkt, thoff)
	if !ok || h.GSOSize == 0 {
		return dst, out, errVnetBad
	}
	var thl int
	switch gsoType {
	case gsoTCPv4, gsoTCPv6:
		if (gsoType == gsoTCPv4) != ip.v4 || (ip.proto != 0 && ip.proto != wire.ProtocolTCP) || len(pkt) < ip.hl+20 {
			return dst, out, errVnetBad
		}
		ip.proto = wire.ProtocolTCP
		thl = int(pkt[ip.hl+12]>>4) * 4
		if thl < 20 {
			return dst, out, errVnetBad
		}
	case gsoUDPL4:
		if ip.proto != 0 && ip.proto != wire.ProtocolUDP {
			return dst, out, errVnetBad
		}
		ip.proto = wire.ProtocolUDP
		thl = 8
	default:
		return dst, out, errVnetProto
	}
	hlen := ip.hl + thl
	if len(pkt) < hlen {
		return dst, out, errVnetBad
	}
	hdr, payload := pkt[:hlen], pkt[hlen:]
	mss := int(h.GSOSize)
	var id uint16
	if ip.v4 {
		id = binary.BigEndian.Uint16(hdr[4:])
	}
	var seq uint32
	var flags byte
	if ip.proto == wire.ProtocolTCP {
		seq = binary.BigEndian.Uint32(hdr[ip.hl+4:])
		flags = hdr[ip.hl+13]
	}
	for i, off := 0, 0; off < len(payload) || off == 0; i, off = i+1, off+mss {
		end := min(off+mss, len(payload))
		start := len(dst)
		dst = append(dst, hdr...)
		dst = append(dst, payload[off:end]...)
		seg := dst[start:]
		if ip.v4 {
			binary.BigEndian.PutUint16(seg[2:], uint16(len(seg)))
			binary.BigEndian.PutUint16(seg[4:], id+uint16(i))
			seg[10], seg[11] = 0, 0
			binary.BigEndian.PutUint16(seg[10:], wire.Checksum(seg[:ip.hl], 0))
		} else {
			binary.BigEndian.PutUint16(seg[4:], uint16(len(seg)-40))
		}
		t := seg[ip.hl:]
		csumOff := 6
		if ip.proto == wire.ProtocolTCP {
			csumOff = 16
			binary.BigEndian.PutUint32(t[4:], seq+uint32(off))
			f := flags
			if end < len(payload) {
				f &^= tcpFIN | tcpPSH
			}
			if i > 0 {
				f &^= tcpCWR
			}
			t[13] = f
		} else {
			binary.BigEndian.PutUint16(t[4:], uint16(len(t)))
		}
		if !vouch {
			t[csumOff], t[csumOff+1] = 0, 0
			c := wire.Checksum(t, wire.PseudoHeaderChecksum(ip.proto, ip.src, ip.dst, len(t)))
			if c == 0 && ip.proto == wire.ProtocolUDP {
				c = 0xffff
			}
			binary.BigEndian.PutUint16(t[csumOff:], c)
		}
		out = append(out, seg)
		if end == len(payload) {
			break
		}
	}
	return dst, out, nil
}

// tcpRun is what joinable TCP segments share, taken from the first one.
type tcpRun struct {
	ip      ipInfo
	hlen    int // IP + TCP header length
	mss     int // payload length of the first segment: the GSO size
	nextSeq uint32
	total   int // bytes of the super-packet so far
}

// maxGSO bounds a super-packet we write: one IP packet's worth.
const maxGSO = 65535

// startRun says whether pkt can begin a super-packet: a TCP segment with
// data and only ACK (and ECE) set, in an IPv4 header without options or
// fragmentation, or a bare IPv6 header.
func startRun(pkt []byte) (tcpRun, bool) {
	var r tcpRun
	ip, ok := parseIPHeader(pkt, 0)
	if !ok || ip.proto != wire.ProtocolTCP {
		return r, false
	}
	if ip.v4 && (ip.hl != 20 || binary.BigEndian.Uint16(pkt[6:])&0x3fff != 0) {
		return r, false // options, or a fragment
	}
	if len(pkt) < ip.hl+20 {
		return r, false
	}
	t := pkt[ip.hl:]
	thl := int(t[12]>>4) * 4
	if thl < 20 || len(t) <= thl || t[13]&^tcpECE != tcpACK {
		return r, false
	}
	r = tcpRun{ip: ip, hlen: ip.hl + thl, mss: len(pkt) - ip.hl - thl, total: len(pkt)}
	r.nextSeq = binary.BigEndian.Uint32(t[4:]) + uint32(r.mss)
	return r, true
}

// extend says whether pkt continues the run whose first segment is first:
// the same IP and TCP header apart from length, identification, checksums
// and sequence number (so the kernel's copies of the first header describe
// it), the next sequence number, and a payload as long as the first's, or
// shorter and then the last (it may carry PSH). It updates r if so.
func (r *tcpRun) extend(first, pkt []byte) (last, ok bool) {
	if len(pkt) <= r.hlen || len(pkt)-r.hlen > r.mss || r.total+len(pkt)-r.hlen > maxGSO {
		return false, false
	}
	if r.ip.v4 {
		// version/IHL, TOS; flags/fragment offset, TTL, protocol; addresses.
		if pkt[0] != first[0] || pkt[1] != first[1] || !eq(pkt[6:10], first[6:10]) || !eq(pkt[12:20], first[12:20]) {
			return false, false
		}
	} else if !eq(pkt[:4], first[:4]) || !eq(pkt[6:40], first[6:40]) {
		return false, false
	}
	t, ft := pkt[r.ip.hl:r.hlen], first[r.ip.hl:r.hlen]
	// Ports; acknowledgment number, data offset; window; urgent pointer
	// and options. Flags may differ by PSH only.
	if !eq(t[:4], ft[:4]) || !eq(t[8:13], ft[8:13]) || !eq(t[14:16], ft[14:16]) || !eq(t[18:], ft[18:]) {
		return false, false
	}
	if t[13]&^tcpPSH != ft[13] || binary.BigEndian.Uint32(t[4:]) != r.nextSeq {
		return false, false
	}
	n := len(pkt) - r.hlen
	r.nextSeq += uint32(n)
	r.total += n
	return n < r.mss || t[13]&tcpPSH != 0, true
}

func eq(a, b []byte) bool { return string(a) == string(b) }

// joinTCP writes the super-packet of segs (a run startRun and extend
// accepted) into dst after a virtio-net header of hdrLen bytes asking the kernel to cut it
// into segments of r.mss bytes, with the TCP checksum left partial
// (the pseudo-header's sum over the super-packet's length, as
// VIRTIO_NET_HDR_F_NEEDS_CSUM expects: the kernel adjusts it per segment).
func joinTCP(dst []byte, hdrLen int, segs [][]byte, r tcpRun) []byte {
	first := segs[0]
	start := len(dst)
	h := vnetHdr{
		Flags: vnetNeedsCsum, GSOType: gsoTCPv4,
		HdrLen: uint16(r.hlen), GSOSize: uint16(r.mss),
		CsumStart: uint16(r.ip.hl), CsumOffset: 16,
	}
	if !r.ip.v4 {
		h.GSOType = gsoTCPv6
	}
	var zero [16]byte
	dst = append(dst, zero[:hdrLen]...)
	h.encode(dst[start:])
	p := len(dst)
	dst = append(dst, first...)
	for _, s := range segs[1:] {
		dst = append(dst, s[r.hlen:]...)
	}
	pkt := dst[p:]
	if last := segs[len(segs)-1]; last[r.ip.hl+13]&tcpPSH != 0 {
		pkt[r.ip.hl+13] |= tcpPSH
	}
	if r.ip.v4 {
		binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
		pkt[10], pkt[11] = 0, 0
		binary.BigEndian.PutUint16(pkt[10:], wire.Checksum(pkt[:20], 0))
	} else {
		binary.BigEndian.PutUint16(pkt[4:], uint16(len(pkt)-40))
	}
	tl := len(pkt) - r.ip.hl
	// Not complemented: the partial sum the kernel completes.
	binary.BigEndian.PutUint16(pkt[r.ip.hl+16:], ^wire.Checksum(nil, wire.PseudoHeaderChecksum(wire.ProtocolTCP, r.ip.src, r.ip.dst, tl)))
	return dst
}

// wholeTCP says whether pkt, a GSO super-packet with header h, is a TCP
// segment whose IP length field covers all of it, so it can be delivered
// as one packet.
func wholeTCP(pkt []byte, h vnetHdr) bool {
	switch h.GSOType &^ gsoECN {
	case gsoTCPv4:
		return len(pkt) >= 40 && pkt[0]>>4 == 4 && pkt[9] == wire.ProtocolTCP && int(binary.BigEndian.Uint16(pkt[2:])) == len(pkt)
	case gsoTCPv6:
		return len(pkt) >= 60 && pkt[0]>>4 == 6 && pkt[6] == wire.ProtocolTCP && int(binary.BigEndian.Uint16(pkt[4:]))+40 == len(pkt)
	}
	return false
}

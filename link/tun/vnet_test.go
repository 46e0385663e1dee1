package tun

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"

	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/wire"
)

var (
	src4, dst4 = netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2")
	src6, dst6 = netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")
)

// tcpPacket builds an IP packet holding one TCP segment with correct
// checksums.
func tcpPacket(src, dst netip.Addr, id uint16, seq uint32, flags wire.TCPFlags, payload []byte) []byte {
	h := wire.TCPHeader{SrcPort: 40000, DstPort: 80, Seq: seqnum.Value(seq), Ack: 7, Flags: flags, Window: 512,
		Options: wire.TCPOptions{HasTimestamps: true, TSVal: 11, TSEcr: 12}}
	seg := wire.AppendTCP(nil, &h, payload, src, dst)
	var b []byte
	if src.Is4() {
		b = wire.AppendIPv4(nil, &wire.IPv4Header{ID: id, Flags: wire.IPv4DontFragment, TTL: 64, Protocol: wire.ProtocolTCP, Src: src, Dst: dst}, len(seg))
	} else {
		b = wire.AppendIPv6(nil, &wire.IPv6Header{NextHeader: wire.ProtocolTCP, HopLimit: 64, Src: src, Dst: dst}, len(seg))
	}
	return append(b, seg...)
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

// partial turns pkt's transport checksum into what the kernel hands over
// with VIRTIO_NET_HDR_F_NEEDS_CSUM: the pseudo-header's sum only.
func partial(pkt []byte, thoff, csumOff int, proto uint8, src, dst netip.Addr) {
	s := wire.PseudoHeaderChecksum(proto, src, dst, len(pkt)-thoff)
	binary.BigEndian.PutUint16(pkt[thoff+csumOff:], ^wire.Checksum(nil, s))
}

// A TSO super-segment from the kernel splits into segments a wire would
// carry: each parses with verified checksums, sequence numbers follow the
// payload, FIN and PSH sit on the last segment only, CWR on the first only,
// and the payloads join back into the original.
func TestSplitTSO(t *testing.T) {
	for _, fam := range []struct {
		name     string
		src, dst netip.Addr
		gso      uint8
	}{{"IPv4", src4, dst4, gsoTCPv4}, {"IPv6", src6, dst6, gsoTCPv6}} {
		for _, n := range []int{1, 1448, 1449, 10000, 65535 - 60 - 32} {
			t.Run(fmt.Sprintf("%s/%d", fam.name, n), func(t *testing.T) {
				data := pattern(n)
				pkt := tcpPacket(fam.src, fam.dst, 100, 1000, wire.ACK|wire.PSH|wire.FIN|wire.CWR, data)
				thoff := 20
				if fam.src.Is6() {
					thoff = 40
				}
				partial(pkt, thoff, 16, wire.ProtocolTCP, fam.src, fam.dst)
				h := vnetHdr{Flags: vnetNeedsCsum, GSOType: fam.gso | gsoECN, HdrLen: uint16(thoff + 32), GSOSize: 1448, CsumStart: uint16(thoff), CsumOffset: 16}
				arena, segs, err := splitGSO(nil, nil, pkt, h, false)
				if err != nil {
					t.Fatal(err)
				}
				if want := (n + 1447) / 1448; len(segs) != want {
					t.Fatalf("%d segments, want %d", len(segs), want)
				}
				_ = arena
				var got []byte
				for i, s := range segs {
					ip, err := wire.ParseIP(s)
					if err != nil {
						t.Fatalf("segment %d: %v", i, err)
					}
					th, payload, err := wire.ParseTCP(ip.Payload, ip.Src, ip.Dst, true)
					if err != nil {
						t.Fatalf("segment %d: %v", i, err)
					}
					if want := seqnum.Value(1000 + len(got)); th.Seq != want {
						t.Errorf("segment %d: seq %d, want %d", i, th.Seq, want)
					}
					last := i == len(segs)-1
					if got, want := th.Flags&(wire.FIN|wire.PSH) != 0, last; got != want {
						t.Errorf("segment %d of %d: flags %v", i, len(segs), th.Flags)
					}
					if got, want := th.Flags&wire.CWR != 0, i == 0; got != want {
						t.Errorf("segment %d: flags %v, CWR only on the first", i, th.Flags)
					}
					if !th.Options.HasTimestamps || th.Options.TSVal != 11 {
						t.Errorf("segment %d: options %+v", i, th.Options)
					}
					if fam.src.Is4() {
						if id := binary.BigEndian.Uint16(s[4:]); id != uint16(100+i) {
							t.Errorf("segment %d: IP ID %d, want %d", i, id, 100+i)
						}
					}
					got = append(got, payload...)
				}
				if !bytes.Equal(got, data) {
					t.Errorf("payloads joined differ from the super-segment's")
				}
			})
		}
	}
}

// A USO super-datagram splits into datagrams of GSOSize bytes.
func TestSplitUSO(t *testing.T) {
	data := pattern(3000)
	udp := wire.AppendUDP(nil, &wire.UDPHeader{SrcPort: 5000, DstPort: 53}, data, src6, dst6)
	pkt := append(wire.AppendIPv6(nil, &wire.IPv6Header{NextHeader: wire.ProtocolUDP, HopLimit: 64, Src: src6, Dst: dst6}, len(udp)), udp...)
	partial(pkt, 40, 6, wire.ProtocolUDP, src6, dst6)
	h := vnetHdr{Flags: vnetNeedsCsum, GSOType: gsoUDPL4, GSOSize: 1200, CsumStart: 40, CsumOffset: 6}
	_, segs, err := splitGSO(nil, nil, pkt, h, false)
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	for i, s := range segs {
		ip, err := wire.ParseIP(s)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		_, payload, err := wire.ParseUDP(ip.Payload, ip.Src, ip.Dst, true)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		got = append(got, payload...)
	}
	if len(segs) != 3 || !bytes.Equal(got, data) {
		t.Errorf("%d datagrams; payload equal: %v", len(segs), bytes.Equal(got, data))
	}
}

// Malformed headers are refused, never a panic.
func TestSplitBad(t *testing.T) {
	pkt := tcpPacket(src4, dst4, 1, 1, wire.ACK, pattern(3000))
	for _, tc := range []struct {
		name string
		pkt  []byte
		h    vnetHdr
	}{
		{"zero gso size", pkt, vnetHdr{GSOType: gsoTCPv4}},
		{"TCPv6 on IPv4", pkt, vnetHdr{GSOType: gsoTCPv6, GSOSize: 1000}},
		{"UFO", pkt, vnetHdr{GSOType: gsoUDP, GSOSize: 1000}},
		{"short", pkt[:30], vnetHdr{GSOType: gsoTCPv4, GSOSize: 1000}},
		{"empty", nil, vnetHdr{GSOType: gsoTCPv4, GSOSize: 1000}},
	} {
		if _, _, err := splitGSO(nil, nil, tc.pkt, tc.h, false); err == nil {
			t.Errorf("%s: split succeeded", tc.name)
		}
	}
}

func TestCompleteChecksum(t *testing.T) {
	pkt := tcpPacket(src6, dst6, 0, 5, wire.ACK, pattern(777))
	partial(pkt, 40, 16, wire.ProtocolTCP, src6, dst6)
	if !completeChecksum(pkt, 40, 16) {
		t.Fatal("completeChecksum refused")
	}
	ip, _ := wire.ParseIP(pkt)
	if _, _, err := wire.ParseTCP(ip.Payload, ip.Src, ip.Dst, true); err != nil {
		t.Errorf("after completing: %v", err)
	}
	if completeChecksum(pkt, 40, len(pkt)) {
		t.Errorf("completeChecksum accepted an offset beyond the packet")
	}
}

// Consecutive segments of a flow join into one super-packet that the
// kernel would cut back into the same segments: splitting the join gives
// the segments back byte for byte, and the join's partial checksum
// completes to a correct checksum of the super-packet.
func TestJoinTCP(t *testing.T) {
	for _, fam := range []struct {
		name     string
		src, dst netip.Addr
	}{{"IPv4", src4, dst4}, {"IPv6", src6, dst6}} {
		t.Run(fam.name, func(t *testing.T) {
			var segs [][]byte
			for i := range 5 {
				n, f := 1000, wire.ACK
				if i == 4 {
					n, f = 300, wire.ACK|wire.PSH
				}
				segs = append(segs, tcpPacket(fam.src, fam.dst, uint16(50+i), uint32(9000+1000*i), f, pattern(n)))
			}
			r, ok := startRun(segs[0])
			if !ok {
				t.Fatal("startRun refused a data segment")
			}
			for i, s := range segs[1:] {
				last, ok := r.extend(segs[0], s)
				if !ok || last != (i == 3) {
					t.Fatalf("extend(segment %d) = last %v, ok %v", i+1, last, ok)
				}
			}
			buf := joinTCP(nil, vnetHdrLen, segs, r)
			h, super := decodeVnetHdr(buf), buf[vnetHdrLen:]
			if h.GSOSize != 1000 || h.Flags != vnetNeedsCsum {
				t.Fatalf("header %+v", h)
			}
			_, back, err := splitGSO(nil, nil, append([]byte(nil), super...), h, false)
			if err != nil {
				t.Fatal(err)
			}
			if len(back) != len(segs) {
				t.Fatalf("split gives %d segments, want %d", len(back), len(segs))
			}
			for i := range segs {
				if !bytes.Equal(back[i], segs[i]) {
					t.Errorf("segment %d differs after join and split:\n got %x\nwant %x", i, back[i][:60], segs[i][:60])
				}
			}
			if !completeChecksum(super, int(h.CsumStart), int(h.CsumOffset)) {
				t.Fatal("completeChecksum refused")
			}
			ip, err := wire.ParseIP(super)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := wire.ParseTCP(ip.Payload, ip.Src, ip.Dst, true); err != nil {
				t.Errorf("super-packet with its checksum completed: %v", err)
			}
		})
	}
}

// Segments that cannot share one header are not joined.
func TestJoinRefuses(t *testing.T) {
	first := tcpPacket(src4, dst4, 1, 100, wire.ACK, pattern(1000))
	if _, ok := startRun(tcpPacket(src4, dst4, 1, 100, wire.SYN|wire.ACK, nil)); ok {
		t.Error("startRun took a SYN")
	}
	if _, ok := startRun(tcpPacket(src4, dst4, 1, 100, wire.ACK, nil)); ok {
		t.Error("startRun took a bare ACK")
	}
	if _, ok := startRun(tcpPacket(src4, dst4, 1, 100, wire.ACK|wire.FIN, pattern(10))); ok {
		t.Error("startRun took a FIN")
	}
	for _, tc := range []struct {
		name string
		pkt  []byte
	}{
		{"gap", tcpPacket(src4, dst4, 2, 1101, wire.ACK, pattern(1000))},
		{"longer", tcpPacket(src4, dst4, 2, 1100, wire.ACK, pattern(1001))},
		{"other flow", tcpPacket(src4, netip.MustParseAddr("198.18.0.3"), 2, 1100, wire.ACK, pattern(1000))},
		{"FIN", tcpPacket(src4, dst4, 2, 1100, wire.ACK|wire.FIN, pattern(1000))},
		{"IPv6", tcpPacket(src6, dst6, 2, 1100, wire.ACK, pattern(1000))},
	} {
		r, _ := startRun(first)
		if _, ok := r.extend(first, tc.pkt); ok {
			t.Errorf("%s: joined", tc.name)
		}
	}
}

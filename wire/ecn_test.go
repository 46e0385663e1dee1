package wire

import (
	"bytes"
	"net/netip"
	"testing"
)

// A router marking CE (RFC 3168 section 5) changes only the ECN bits; the
// IPv4 header checksum it fixes up must equal one computed afresh.
func TestSetPacketECN(t *testing.T) {
	src4, dst4 := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2")
	src6, dst6 := netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")
	for _, tos := range []uint8{0, 0xb8, 0xfe, 0x02} {
		for _, e := range []ECN{NotECT, ECT1, ECT0, CE} {
			h4 := IPv4Header{TOS: tos, ID: 7, TTL: 64, Protocol: ProtocolTCP, Src: src4, Dst: dst4}
			pkt := AppendIPv4(nil, &h4, 4)
			pkt = append(pkt, 1, 2, 3, 4)
			if !SetPacketECN(pkt, e) {
				t.Fatal("SetPacketECN refused an IPv4 packet")
			}
			got, _, err := ParseIPv4(pkt)
			if err != nil {
				t.Fatalf("tos %#x -> %v: %v", tos, e, err)
			}
			if ECNOf(got.TOS) != e || got.TOS>>2 != tos>>2 {
				t.Errorf("tos %#x -> %v: got tos %#x", tos, e, got.TOS)
			}
			h4.TOS = WithECN(tos, e)
			if want := AppendIPv4(nil, &h4, 4); !bytes.Equal(pkt[:20], want) {
				t.Errorf("tos %#x -> %v: header %x, want %x", tos, e, pkt[:20], want)
			}
			if pe, ok := PacketECN(pkt); !ok || pe != e {
				t.Errorf("PacketECN = %v %v, want %v", pe, ok, e)
			}

			h6 := IPv6Header{TrafficClass: tos, FlowLabel: 0xabcde, NextHeader: ProtocolTCP, HopLimit: 64, Src: src6, Dst: dst6}
			pkt = append(AppendIPv6(nil, &h6, 4), 1, 2, 3, 4)
			if !SetPacketECN(pkt, e) {
				t.Fatal("SetPacketECN refused an IPv6 packet")
			}
			p, err := ParseIP(pkt)
			if err != nil {
				t.Fatal(err)
			}
			if p.ECN() != e || p.IPv6.TrafficClass>>2 != tos>>2 || p.IPv6.FlowLabel != 0xabcde {
				t.Errorf("v6 tc %#x -> %v: got %+v", tos, e, p.IPv6)
			}
			if pe, ok := PacketECN(pkt); !ok || pe != e {
				t.Errorf("v6 PacketECN = %v %v, want %v", pe, ok, e)
			}
		}
	}
	if SetPacketECN([]byte{0x45, 0}, CE) {
		t.Error("SetPacketECN took a truncated packet")
	}
}

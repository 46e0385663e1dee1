package wire

import (
	"bytes"
	"errors"
	"testing"
)

func TestParseIP(t *testing.T) {
	syn4 := unhex(t, linuxSYN4)
	syn6 := unhex(t, linuxSYN6)
	frag := ipv4Packet(IPv4Header{Flags: IPv4MoreFragments, TTL: 3, Protocol: ProtocolUDP, Src: addrA, Dst: addrB}, "x", nil)
	tests := []struct {
		name string
		b    []byte
		want IPPacket
		err  error
	}{
		{"IPv4", syn4, IPPacket{Version: 4, Src: lo4, Dst: lo4, Protocol: ProtocolTCP, TTL: 64, Payload: syn4[20:]}, nil},
		{"IPv6", syn6, IPPacket{Version: 6, Src: lo6, Dst: lo6, Protocol: ProtocolTCP, TTL: 64, Payload: syn6[40:]}, nil},
		{"IPv4 fragment", frag, IPPacket{Version: 4, Src: addrA, Dst: addrB, Protocol: ProtocolUDP, TTL: 3, Payload: []byte("x")}, ErrFragment},
		{"empty", nil, IPPacket{}, ErrTooShort},
		{"version 5", []byte{0x50, 0, 0, 0}, IPPacket{}, ErrBadVersion},
		{"bad IPv4", syn4[:10], IPPacket{}, ErrTooShort},
		// Next header 0 (hop-by-hop) with a zero payload length: no
		// room for the extension header.
		{"bad IPv6", append([]byte{0x60}, make([]byte, 39)...), IPPacket{}, ErrTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseIP(tt.b)
			if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Fatalf("error = %v, want %v", err, tt.err)
			}
			if p.Version != tt.want.Version || p.Src != tt.want.Src || p.Dst != tt.want.Dst ||
				p.Protocol != tt.want.Protocol || p.TTL != tt.want.TTL || !bytes.Equal(p.Payload, tt.want.Payload) {
				t.Errorf("got  %+v\nwant %+v", p, tt.want)
			}
		})
	}
}

package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
)

func equalIPv4(a, b IPv4Header) bool {
	return a.TOS == b.TOS && a.ID == b.ID && a.Flags == b.Flags && a.FragOff == b.FragOff &&
		a.TTL == b.TTL && a.Protocol == b.Protocol && a.Src == b.Src && a.Dst == b.Dst &&
		bytes.Equal(a.Options, b.Options)
}

func TestParseIPv4Captured(t *testing.T) {
	pkt := unhex(t, linuxSYN4)
	h, payload, err := ParseIPv4(pkt)
	if err != nil {
		t.Fatalf("ParseIPv4: %v", err)
	}
	want := IPv4Header{ID: 0xa33a, Flags: IPv4DontFragment, TTL: 64, Protocol: ProtocolTCP, Src: lo4, Dst: lo4}
	if !equalIPv4(h, want) {
		t.Errorf("got  %+v\nwant %+v", h, want)
	}
	if !bytes.Equal(payload, pkt[20:]) {
		t.Errorf("payload %x, want %x", payload, pkt[20:])
	}
	if got := AppendIPv4(nil, &h, len(payload)); !bytes.Equal(got, pkt[:20]) {
		t.Errorf("AppendIPv4:\ngot  %x\nwant %x", got, pkt[:20])
	}
}

// ipv4Packet builds a valid datagram with the given header and payload,
// then lets mutate change it; the checksum is fixed afterwards unless
// mutate returns false.
func ipv4Packet(h IPv4Header, payload string, mutate func(b []byte) bool) []byte {
	b := append(AppendIPv4(nil, &h, len(payload)), payload...)
	if mutate != nil && mutate(b) {
		fixIPv4Checksum(b)
	}
	return b
}

func TestParseIPv4(t *testing.T) {
	base := IPv4Header{TOS: 0x02, ID: 7, TTL: 64, Protocol: ProtocolTCP, Src: addrA, Dst: addrB}
	tests := []struct {
		name    string
		b       []byte
		want    error
		payload string
	}{
		{"good", ipv4Packet(base, "abcd", nil), nil, "abcd"},
		{"link padding trimmed", append(ipv4Packet(base, "abcd", nil), 0, 0, 0, 0, 0, 0), nil, "abcd"},
		{"options", ipv4Packet(IPv4Header{TTL: 1, Protocol: 17, Src: addrA, Dst: addrB, Options: []byte{1, 1, 1, 0}}, "x", nil), nil, "x"},
		{"empty", nil, ErrTooShort, ""},
		{"19 bytes", ipv4Packet(base, "", nil)[:19], ErrTooShort, ""},
		{"version 6", ipv4Packet(base, "", func(b []byte) bool { b[0] = 0x65; return true }), ErrBadVersion, ""},
		{"version 0", ipv4Packet(base, "", func(b []byte) bool { b[0] = 0x05; return true }), ErrBadVersion, ""},
		{"IHL 4", ipv4Packet(base, "abcd", func(b []byte) bool { b[0] = 0x44; return false }), ErrBadHeaderLen, ""},
		{"IHL past packet", ipv4Packet(base, "", func(b []byte) bool { b[0] = 0x46; return false }), ErrBadHeaderLen, ""},
		{"total length below IHL", ipv4Packet(base, "abcd", func(b []byte) bool { binary.BigEndian.PutUint16(b[2:], 19); return true }), ErrBadLength, ""},
		{"total length past packet", ipv4Packet(base, "abcd", func(b []byte) bool { binary.BigEndian.PutUint16(b[2:], 25); return true }), ErrTruncated, ""},
		{"bad checksum", ipv4Packet(base, "abcd", func(b []byte) bool { b[8]--; return false }), ErrChecksum, ""},
		{"more fragments", ipv4Packet(IPv4Header{Flags: IPv4MoreFragments, TTL: 9, Protocol: 6, Src: addrA, Dst: addrB}, "frag", nil), ErrFragment, "frag"},
		{"fragment offset", ipv4Packet(IPv4Header{FragOff: 185, TTL: 9, Protocol: 6, Src: addrA, Dst: addrB}, "tail", nil), ErrFragment, "tail"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, payload, err := ParseIPv4(tt.b)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("error = %v, want %v", err, tt.want)
			}
			if err != nil && !errors.Is(err, ErrFragment) {
				return
			}
			if string(payload) != tt.payload {
				t.Errorf("payload %q, want %q", payload, tt.payload)
			}
			// Round trip: build from what was parsed and parse again.
			b := append(AppendIPv4(nil, &h, len(payload)), payload...)
			h2, p2, err2 := ParseIPv4(b)
			if err2 != err || !equalIPv4(h, h2) || !bytes.Equal(payload, p2) {
				t.Errorf("round trip: got %+v %q %v, want %+v %q %v", h2, p2, err2, h, payload, err)
			}
		})
	}
}

// ipv4OptionSeeds are option fields, good and bad, for the table below and
// the fuzz seeds.
var ipv4OptionSeeds = [][]byte{
	{1, 1, 1, 0},
	{0, 5, 5, 5},                            // after EOL: padding, not looked at
	{7, 7, 4, 0, 0, 0, 0, 0},                // record route, room for one address
	{68, 8, 5, 0, 0, 0, 0, 0},               // timestamp, room for one
	{130, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, // security (RFC 1108), unknown here: skipped by length
	{1, 130, 0, 0},                          // length 0
	{1, 1, 1, 0x83},                         // type without a length octet
	{0x83, 1, 0, 0},                         // length 1
	{0x83, 255, 4, 0},                       // length past the header
	{7, 3, 3, 0},                            // record route pointer 3
	{68, 4, 4, 0},                           // timestamp pointer 4
}

func TestParseIPv4Options(t *testing.T) {
	tests := []struct {
		name string
		opts []byte
		want error
	}{
		{"NOPs and EOL", ipv4OptionSeeds[0], nil},
		{"garbage after EOL", ipv4OptionSeeds[1], nil},
		{"record route", ipv4OptionSeeds[2], nil},
		{"timestamp", ipv4OptionSeeds[3], nil},
		{"unknown option skipped", ipv4OptionSeeds[4], nil},
		{"length 0", ipv4OptionSeeds[5], ErrBadIPOption},
		{"no length octet", ipv4OptionSeeds[6], ErrBadIPOption},
		{"length 1", ipv4OptionSeeds[7], ErrBadIPOption},
		{"length 255", ipv4OptionSeeds[8], ErrBadIPOption},
		{"route pointer 3", ipv4OptionSeeds[9], ErrBadIPOption},
		{"timestamp pointer 4", ipv4OptionSeeds[10], ErrBadIPOption},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, flags := range []IPv4Flags{0, IPv4MoreFragments} {
				b := ipv4Packet(IPv4Header{Flags: flags, TTL: 64, Protocol: ProtocolTCP, Src: addrA, Dst: addrB, Options: tt.opts}, "abcd", nil)
				_, payload, err := ParseIPv4(b)
				if tt.want == nil {
					if err != nil && !errors.Is(err, ErrFragment) || string(payload) != "abcd" {
						t.Errorf("flags %v: %q, %v; want the payload", flags, payload, err)
					}
					continue
				}
				if !errors.Is(err, tt.want) {
					t.Errorf("flags %v: error %v, want %v", flags, err, tt.want)
				}
				if _, err := ParseIP(b); !errors.Is(err, tt.want) {
					t.Errorf("flags %v: ParseIP error %v, want %v", flags, err, tt.want)
				}
			}
		})
	}
	bad := ipv4Packet(IPv4Header{TTL: 64, Protocol: 6, Src: addrA, Dst: addrB, Options: ipv4OptionSeeds[8]}, "x", nil)
	if n := testing.AllocsPerRun(100, func() { ParseIPv4(bad) }); n != 0 {
		t.Errorf("ParseIPv4 of bad options allocates %v times per call, want 0", n)
	}
}

func TestAppendIPv4Panics(t *testing.T) {
	for name, f := range map[string]func(){
		"IPv6 source":      func() { AppendIPv4(nil, &IPv4Header{Src: addr6, Dst: addrB}, 0) },
		"zero address":     func() { AppendIPv4(nil, &IPv4Header{Src: addrA}, 0) },
		"too long":         func() { AppendIPv4(nil, &IPv4Header{Src: addrA, Dst: addrB}, 65516) },
		"options too long": func() { AppendIPv4(nil, &IPv4Header{Src: addrA, Dst: addrB, Options: make([]byte, 41)}, 0) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		})
	}
}

func TestParseIPv4Allocs(t *testing.T) {
	pkt := ipv4Packet(IPv4Header{TTL: 64, Protocol: 6, Src: addrA, Dst: addrB}, "payload", nil)
	bad := append([]byte(nil), pkt...)
	bad[10] ^= 1
	for name, b := range map[string][]byte{"good": pkt, "bad checksum": bad} {
		if n := testing.AllocsPerRun(100, func() { ParseIPv4(b) }); n != 0 {
			t.Errorf("%s: ParseIPv4 allocates %v times per call, want 0", name, n)
		}
	}
	if n := testing.AllocsPerRun(100, func() { ParseIP(pkt) }); n != 0 {
		t.Errorf("ParseIP allocates %v times per call, want 0", n)
	}
	_ = netip.Addr{}
}

package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func TestParseIPv6Captured(t *testing.T) {
	pkt := unhex(t, linuxSYN6)
	h, payload, err := ParseIPv6(pkt)
	if err != nil {
		t.Fatalf("ParseIPv6: %v", err)
	}
	want := IPv6Header{FlowLabel: 0x48ed7, NextHeader: ProtocolTCP, HopLimit: 64, Src: lo6, Dst: lo6}
	if h != want {
		t.Errorf("got  %+v\nwant %+v", h, want)
	}
	if !bytes.Equal(payload, pkt[40:]) {
		t.Errorf("payload %x, want %x", payload, pkt[40:])
	}
	if got := AppendIPv6(nil, &h, len(payload)); !bytes.Equal(got, pkt[:40]) {
		t.Errorf("AppendIPv6:\ngot  %x\nwant %x", got, pkt[:40])
	}
}

// ipv6Packet builds an IPv6 packet whose fixed header says next and whose
// payload is the concatenation of parts (extension headers, then data).
func ipv6Packet(next uint8, parts ...[]byte) []byte {
	body := bytes.Join(parts, nil)
	h := IPv6Header{TrafficClass: 0xb8, FlowLabel: 0x12345, NextHeader: next, HopLimit: 255, Src: addr6, Dst: addr7}
	return append(AppendIPv6(nil, &h, len(body)), body...)
}

// ext builds an extension header of 8*(units+1) bytes announcing next.
func ext(next uint8, units int) []byte {
	b := make([]byte, 8*(units+1))
	b[0], b[1] = next, byte(units)
	if len(b) > 2 {
		b[2] = 1 // a PadN option, contents irrelevant to us
	}
	return b
}

// routing is a Routing header (RFC 8200 4.4) of the given type with one
// address and segmentsLeft.
func routing(next, typ, segmentsLeft uint8) []byte {
	b := make([]byte, 24)
	b[0], b[1], b[2], b[3] = next, 2, typ, segmentsLeft
	return b
}

func TestParseIPv6(t *testing.T) {
	data := []byte("transport")
	frag := []byte{ProtocolTCP, 0, 0, 0, 0, 0, 0, 42}
	tests := []struct {
		name    string
		b       []byte
		want    error
		next    uint8
		payload []byte
	}{
		{"no extension headers", ipv6Packet(ProtocolTCP, data), nil, ProtocolTCP, data},
		{"link padding trimmed", append(ipv6Packet(ProtocolUDP, data), 0, 0, 0), nil, ProtocolUDP, data},
		{"empty payload", ipv6Packet(ProtocolICMPv6), nil, ProtocolICMPv6, nil},
		{"hop-by-hop skipped", ipv6Packet(ProtocolHopByHop, ext(ProtocolTCP, 0), data), nil, ProtocolTCP, data},
		{"hop-by-hop, destination options, routing skipped", ipv6Packet(ProtocolHopByHop,
			ext(ProtocolDestOpts, 0), ext(ProtocolRouting, 1), ext(ProtocolICMPv6, 2), data), nil, ProtocolICMPv6, data},
		{"unknown upper layer is returned", ipv6Packet(132, data), nil, 132, data},
		{"fragment header", ipv6Packet(ProtocolDestOpts, ext(ProtocolFragment, 0), frag, data), ErrFragment, ProtocolFragment, append(frag[:8:8], data...)},
		{"empty", nil, ErrTooShort, 0, nil},
		{"39 bytes", ipv6Packet(ProtocolTCP)[:39], ErrTooShort, 0, nil},
		{"version 4", func() []byte { b := ipv6Packet(ProtocolTCP, data); b[0] = 0x46; return b }(), ErrBadVersion, 0, nil},
		{"payload length past packet", func() []byte {
			b := ipv6Packet(ProtocolTCP, data)
			binary.BigEndian.PutUint16(b[4:], uint16(len(data)+1))
			return b
		}(), ErrTruncated, 0, nil},
		{"extension header past payload", ipv6Packet(ProtocolRouting, ext(ProtocolTCP, 1)[:12]), ErrTruncated, 0, nil},
		{"extension length past payload", ipv6Packet(ProtocolDestOpts, ext(ProtocolTCP, 3)[:16]), ErrTruncated, 0, nil},
		{"extension header cut by payload length", func() []byte {
			b := ipv6Packet(ProtocolHopByHop, ext(ProtocolTCP, 0))
			binary.BigEndian.PutUint16(b[4:], 4)
			return b
		}(), ErrTruncated, 0, nil},
		{"hop-by-hop not first", ipv6Packet(ProtocolDestOpts, ext(ProtocolHopByHop, 0), ext(ProtocolTCP, 0), data), ErrBadExtension, 0, nil},
		{"ESP", ipv6Packet(ProtocolESP, data), ErrBadExtension, 0, nil},
		{"AH after routing", ipv6Packet(ProtocolRouting, ext(ProtocolAH, 0), data), ErrBadExtension, 0, nil},
		// RFC 8200 4.4, RFC 5095: a routing header with segments left is
		// for a router; none left, it is skipped.
		{"routing header, segments left", ipv6Packet(ProtocolRouting, routing(ProtocolTCP, 0, 1), data), ErrBadExtension, 0, nil},
		{"routing header type 2, segments left", ipv6Packet(ProtocolDestOpts, ext(ProtocolRouting, 0), routing(ProtocolTCP, 2, 1), data), ErrBadExtension, 0, nil},
		{"routing header type 0, none left", ipv6Packet(ProtocolRouting, routing(ProtocolTCP, 0, 0), data), nil, ProtocolTCP, data},
		{"no next header", ipv6Packet(ProtocolNoNext, data), ErrNoNextHeader, 0, nil},
		{"no next header after options", ipv6Packet(ProtocolDestOpts, ext(ProtocolNoNext, 0)), ErrNoNextHeader, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, payload, err := ParseIPv6(tt.b)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("error = %v, want %v", err, tt.want)
			}
			if err != nil && !errors.Is(err, ErrFragment) {
				return
			}
			if h.NextHeader != tt.next || !bytes.Equal(payload, tt.payload) {
				t.Errorf("got next %d payload %x, want %d %x", h.NextHeader, payload, tt.next, tt.payload)
			}
			want := IPv6Header{TrafficClass: 0xb8, FlowLabel: 0x12345, NextHeader: tt.next, HopLimit: 255, Src: addr6, Dst: addr7}
			if h != want {
				t.Errorf("got  %+v\nwant %+v", h, want)
			}
			if err != nil {
				return
			}
			b := append(AppendIPv6(nil, &h, len(payload)), payload...)
			h2, p2, err := ParseIPv6(b)
			if err != nil || h2 != h || !bytes.Equal(p2, payload) {
				t.Errorf("round trip: got %+v %x %v, want %+v %x", h2, p2, err, h, payload)
			}
		})
	}
}

func TestAppendIPv6Panics(t *testing.T) {
	for name, f := range map[string]func(){
		"IPv4 source": func() { AppendIPv6(nil, &IPv6Header{Src: addrA, Dst: addr7}, 0) },
		"too long":    func() { AppendIPv6(nil, &IPv6Header{Src: addr6, Dst: addr7}, 65536) },
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

func TestParseIPv6Allocs(t *testing.T) {
	pkt := ipv6Packet(ProtocolHopByHop, ext(ProtocolTCP, 0), []byte("data"))
	if n := testing.AllocsPerRun(100, func() { ParseIPv6(pkt) }); n != 0 {
		t.Errorf("ParseIPv6 allocates %v times per call, want 0", n)
	}
}

func TestIPv6Fragment(t *testing.T) {
	for _, f := range []IPv6Fragment{
		{NextHeader: ProtocolTCP, Offset: 0, More: true, ID: 0xdeadbeef},
		{NextHeader: ProtocolUDP, Offset: 8191, More: false, ID: 1},
		{NextHeader: ProtocolTCP}, // atomic
	} {
		b := append(AppendIPv6Fragment(nil, &f), "data"...)
		got, data, err := ParseIPv6Fragment(b)
		if err != nil || got != f || string(data) != "data" {
			t.Errorf("round trip of %+v: %+v %q %v", f, got, data, err)
		}
		if got.IsAtomic() != (f.Offset == 0 && !f.More) {
			t.Errorf("%+v: IsAtomic %v", f, got.IsAtomic())
		}
		// Through ParseIPv6: the payload starts at the Fragment header.
		pkt := ipv6Packet(ProtocolDestOpts, ext(ProtocolFragment, 0), b)
		_, payload, err := ParseIPv6(pkt)
		if !errors.Is(err, ErrFragment) || !bytes.Equal(payload, b) {
			t.Errorf("ParseIPv6: %x %v, want the Fragment header on", payload, err)
		}
	}
	if _, _, err := ParseIPv6Fragment(make([]byte, 7)); !errors.Is(err, ErrTruncated) {
		t.Errorf("7 bytes: %v, want ErrTruncated", err)
	}
	// SkipIPv6Extensions is ParseIPv6's walk.
	chain := append(ext(ProtocolRouting, 0), ext(ProtocolTCP, 1)...)
	if proto, off, err := SkipIPv6Extensions(ProtocolDestOpts, chain); err != nil || proto != ProtocolTCP || off != len(chain) {
		t.Errorf("walk: %d %d %v", proto, off, err)
	}
	if _, _, err := SkipIPv6Extensions(ProtocolDestOpts, chain[:12]); !errors.Is(err, ErrTruncated) {
		t.Errorf("short chain: %v, want ErrTruncated", err)
	}
}

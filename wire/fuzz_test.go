package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
)

var sentinels = []error{ErrTooShort, ErrBadDataOffset, ErrBadOption, ErrChecksum, ErrBadVersion,
	ErrBadHeaderLen, ErrBadLength, ErrTruncated, ErrFragment, ErrBadExtension, ErrNoNextHeader, ErrBadAddress, ErrNoQuote, ErrBadIPOption}

// checkErr fails unless err is a *ParseError wrapping one of the sentinels:
// callers classify drops with errors.Is.
func checkErr(t *testing.T, err error) {
	t.Helper()
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *ParseError", err, err)
	}
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("error %v wraps no sentinel", err)
}

func fuzzAddrs(v6 bool) (src, dst netip.Addr) {
	if v6 {
		return addr6, addr7
	}
	return addrA, addrB
}

func FuzzParseTCP(f *testing.F) {
	for _, s := range []string{linuxSYN4, linuxSYNACK4, linuxSYN6, linuxSYNACK6} {
		pkt := unhex(f, s)
		if pkt[0]>>4 == 4 {
			f.Add(pkt[20:], false)
		} else {
			f.Add(pkt[40:], true)
		}
	}
	f.Add(rawTCP([]byte{1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2}, "data"), false)
	f.Fuzz(func(t *testing.T, b []byte, v6 bool) {
		src, dst := fuzzAddrs(v6)
		// Without verification, so the fuzzer gets past the checksum.
		h, payload, err := ParseTCP(b, src, dst, false)
		if err != nil {
			checkErr(t, err)
			return
		}
		_ = h.String()
		if h.HeaderLen() > TCPMaxHeaderLen || h.HeaderLen()%4 != 0 {
			t.Fatalf("HeaderLen %d", h.HeaderLen())
		}
		if _, _, err := ParseTCP(b, src, dst, true); err != nil {
			checkErr(t, err)
		}
		out := AppendTCP(nil, &h, payload, src, dst)
		h2, p2, err := ParseTCP(out, src, dst, true)
		if err != nil {
			t.Fatalf("re-encoded %v does not parse: %v\n%x", h, err, out)
		}
		if h2 != h || !bytes.Equal(p2, payload) {
			t.Fatalf("round trip:\ngot  %+v %x\nwant %+v %x", h2, p2, h, payload)
		}
	})
}

// fixV4 makes the IPv4 header checksum of b right when the header is
// well-formed enough to have one, so the fuzzer can reach past it.
func fixV4(b []byte) []byte {
	if len(b) < 20 || b[0]>>4 != 4 {
		return b
	}
	hl := int(b[0]&0x0f) * 4
	if hl < 20 || hl > len(b) {
		return b
	}
	b = bytes.Clone(b)
	binary.BigEndian.PutUint16(b[10:], 0)
	binary.BigEndian.PutUint16(b[10:], Checksum(b[:hl], 0))
	return b
}

func FuzzParseIPv4(f *testing.F) {
	f.Add(unhex(f, linuxSYN4), false)
	f.Add(ipv4Packet(IPv4Header{Flags: IPv4MoreFragments, TTL: 1, Protocol: 17, Src: addrA, Dst: addrB, Options: []byte{1, 1, 1, 0}}, "abc", nil), false)
	for _, opts := range ipv4OptionSeeds {
		f.Add(ipv4Packet(IPv4Header{TTL: 1, Protocol: 6, Src: addrA, Dst: addrB, Options: opts}, "abc", nil), true)
	}
	f.Fuzz(func(t *testing.T, b []byte, fix bool) {
		if fix {
			b = fixV4(b)
		}
		h, payload, err := ParseIPv4(b)
		if err != nil && !errors.Is(err, ErrFragment) {
			checkErr(t, err)
			return
		}
		out := append(AppendIPv4(nil, &h, len(payload)), payload...)
		h2, p2, err2 := ParseIPv4(out)
		if err2 != err || !equalIPv4(h, h2) || !bytes.Equal(p2, payload) {
			t.Fatalf("round trip:\ngot  %+v %x %v\nwant %+v %x %v", h2, p2, err2, h, payload, err)
		}
	})
}

func FuzzParseIPv6(f *testing.F) {
	f.Add(unhex(f, linuxSYN6))
	f.Add(ipv6Packet(ProtocolHopByHop, ext(ProtocolDestOpts, 0), ext(ProtocolRouting, 1), ext(ProtocolTCP, 0), []byte("data")))
	f.Add(ipv6Packet(ProtocolDestOpts, ext(ProtocolFragment, 0), []byte{6, 0, 0, 0, 0, 0, 0, 1}))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, payload, err := ParseIPv6(b)
		if err != nil {
			checkErr(t, err)
			return
		}
		out := append(AppendIPv6(nil, &h, len(payload)), payload...)
		h2, p2, err := ParseIPv6(out)
		if err != nil || h2 != h || !bytes.Equal(p2, payload) {
			t.Fatalf("round trip:\ngot  %+v %x %v\nwant %+v %x", h2, p2, err, h, payload)
		}
	})
}

func FuzzParseICMP(f *testing.F) {
	syn4, syn6 := unhex(f, linuxSYN4), unhex(f, linuxSYN6)
	e4 := NewICMPv4Echo(false, 1, 2, []byte("ping"))
	u4 := NewICMPv4FragNeeded(1400, syn4)
	e6 := NewICMPv6Echo(false, 1, 2, []byte("ping"))
	u6 := NewICMPv6PacketTooBig(1280, syn6)
	f.Add(AppendICMPv4(nil, &e4), false)
	f.Add(AppendICMPv4(nil, &u4), false)
	f.Add(AppendICMPv6(nil, &e6, addr6, addr7), true)
	f.Add(AppendICMPv6(nil, &u6, addr6, addr7), true)
	f.Fuzz(func(t *testing.T, b []byte, v6 bool) {
		if !v6 {
			m, err := ParseICMPv4(b, false)
			if err != nil {
				checkErr(t, err)
				return
			}
			if _, err := m.Quote(); err != nil {
				checkErr(t, err)
			}
			out := AppendICMPv4(nil, &m)
			m2, err := ParseICMPv4(out, true)
			if err != nil || !equalICMPv4(m, m2) {
				t.Fatalf("round trip: got %+v %v, want %+v", m2, err, m)
			}
			return
		}
		m, err := ParseICMPv6(b, addr6, addr7, false)
		if err != nil {
			checkErr(t, err)
			return
		}
		if _, err := m.Quote(); err != nil {
			checkErr(t, err)
		}
		out := AppendICMPv6(nil, &m, addr6, addr7)
		m2, err := ParseICMPv6(out, addr6, addr7, true)
		if err != nil || !equalICMPv6(m, m2) {
			t.Fatalf("round trip: got %+v %v, want %+v", m2, err, m)
		}
	})
}

func FuzzParseIP(f *testing.F) {
	f.Add(unhex(f, linuxSYN4), false)
	f.Add(unhex(f, linuxSYN6), false)
	f.Add(ipv6Packet(ProtocolHopByHop, ext(ProtocolTCP, 0), []byte("data")), false)
	for _, opts := range ipv4OptionSeeds {
		f.Add(ipv4Packet(IPv4Header{TTL: 1, Protocol: 6, Src: addrA, Dst: addrB, Options: opts}, "abc", nil), true)
	}
	frag := IPv6Fragment{NextHeader: ProtocolTCP, Offset: 3, More: true, ID: 9}
	f.Add(ipv6Packet(ProtocolFragment, AppendIPv6Fragment(nil, &frag), []byte("fragment")), false)
	f.Fuzz(func(t *testing.T, b []byte, fix bool) {
		if fix {
			b = fixV4(b)
		}
		p, err := ParseIP(b)
		if err != nil && !errors.Is(err, ErrFragment) {
			checkErr(t, err)
			return
		}
		if err != nil && p.Version == 6 {
			// The Fragment header the payload starts with.
			f, data, ferr := ParseIPv6Fragment(p.Payload)
			if ferr != nil {
				checkErr(t, ferr)
			} else if f2, d2, _ := ParseIPv6Fragment(append(AppendIPv6Fragment(nil, &f), data...)); f2 != f || !bytes.Equal(d2, data) {
				t.Fatalf("fragment header round trip: got %+v, want %+v", f2, f)
			}
		}
		var out []byte
		switch p.Version {
		case 4:
			out = AppendIPv4(nil, &p.IPv4, len(p.Payload))
		case 6:
			out = AppendIPv6(nil, &p.IPv6, len(p.Payload))
		default:
			t.Fatalf("version %d parsed", p.Version)
		}
		out = append(out, p.Payload...)
		p2, err2 := ParseIP(out)
		if err2 != err || p2.Version != p.Version || p2.Src != p.Src || p2.Dst != p.Dst ||
			p2.Protocol != p.Protocol || p2.TTL != p.TTL || !bytes.Equal(p2.Payload, p.Payload) ||
			!equalIPv4(p2.IPv4, p.IPv4) || p2.IPv6 != p.IPv6 {
			t.Fatalf("round trip:\ngot  %+v %v\nwant %+v %v", p2, err2, p, err)
		}
	})
}

package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
)

func TestUDPRoundTrip(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		src, dst := fuzzAddrs(v6)
		h := UDPHeader{SrcPort: 40000, DstPort: 53}
		payload := []byte("hello, udp")
		b := AppendUDP([]byte{0xaa}, &h, payload, src, dst)[1:]
		if len(b) != UDPHeaderLen+len(payload) || binary.BigEndian.Uint16(b[4:]) != uint16(len(b)) {
			t.Fatalf("v6=%v: length %d, field %d", v6, len(b), binary.BigEndian.Uint16(b[4:]))
		}
		got, p, err := ParseUDP(b, src, dst, true)
		if err != nil || got != h || !bytes.Equal(p, payload) {
			t.Fatalf("v6=%v: ParseUDP = %+v %q %v", v6, got, p, err)
		}
		// The pseudo-header covers the addresses: the other way round
		// still sums the same, another address does not.
		if _, _, err := ParseUDP(b, src, src, true); !errors.Is(err, ErrChecksum) {
			t.Fatalf("v6=%v: wrong pseudo-header: err %v", v6, err)
		}
		b[len(b)-1] ^= 1
		if _, _, err := ParseUDP(b, src, dst, true); !errors.Is(err, ErrChecksum) {
			t.Fatalf("v6=%v: corrupted: err %v", v6, err)
		}
		if _, _, err := ParseUDP(b, src, dst, false); err != nil {
			t.Fatalf("v6=%v: not verified: err %v", v6, err)
		}
	}
}

// TestUDPZeroChecksum: zero means none over IPv4 (RFC 768) and is refused
// over IPv6 (RFC 8200 section 8.1).
func TestUDPZeroChecksum(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		src, dst := fuzzAddrs(v6)
		b := AppendUDP(nil, &UDPHeader{SrcPort: 1, DstPort: 2}, []byte("x"), src, dst)
		b[6], b[7] = 0, 0
		_, p, err := ParseUDP(b, src, dst, true)
		if v6 {
			if !errors.Is(err, ErrChecksum) {
				t.Fatalf("IPv6 zero checksum: err %v", err)
			}
		} else if err != nil || string(p) != "x" {
			t.Fatalf("IPv4 zero checksum: %q %v", p, err)
		}
	}
}

// TestUDPChecksumNeverZero: a datagram whose checksum computes to zero is
// sent with 0xffff (RFC 768), which verifies as well.
func TestUDPChecksumNeverZero(t *testing.T) {
	src, dst := fuzzAddrs(false)
	h := UDPHeader{SrcPort: 1, DstPort: 2}
	b := AppendUDP(nil, &h, []byte{0, 0}, src, dst)
	// Choose the payload so the sum over everything else is cancelled.
	c := binary.BigEndian.Uint16(b[6:])
	b = AppendUDP(nil, &h, []byte{byte(c >> 8), byte(c)}, src, dst)
	if got := binary.BigEndian.Uint16(b[6:]); got != 0xffff {
		t.Fatalf("checksum %#04x, want 0xffff", got)
	}
	if _, _, err := ParseUDP(b, src, dst, true); err != nil {
		t.Fatal(err)
	}
}

func TestUDPMalformed(t *testing.T) {
	src, dst := fuzzAddrs(false)
	good := AppendUDP(nil, &UDPHeader{SrcPort: 1, DstPort: 2}, []byte("abcd"), src, dst)
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"short", good[:7], ErrTooShort},
		{"length below 8", func() []byte { b := bytes.Clone(good); b[5] = 7; return b }(), ErrBadLength},
		{"length beyond", func() []byte { b := bytes.Clone(good); b[5] = 13; return b }(), ErrBadLength},
	} {
		if _, _, err := ParseUDP(tc.b, src, dst, true); !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
		}
	}
	// Padding after the length is ignored.
	_, p, err := ParseUDP(append(bytes.Clone(good), 0, 0), src, dst, true)
	if err != nil || string(p) != "abcd" {
		t.Fatalf("padded: %q %v", p, err)
	}
	if _, _, err := ParseUDP(good, src, netip.MustParseAddr("::1"), true); !errors.Is(err, ErrBadAddress) {
		t.Fatalf("mixed families: %v", err)
	}
}

func FuzzParseUDP(f *testing.F) {
	for _, v6 := range []bool{false, true} {
		src, dst := fuzzAddrs(v6)
		f.Add(AppendUDP(nil, &UDPHeader{SrcPort: 53, DstPort: 40000}, []byte("seed"), src, dst), v6)
	}
	f.Add([]byte{0, 1, 0, 2, 0, 8, 0, 0}, false)
	f.Fuzz(func(t *testing.T, b []byte, v6 bool) {
		src, dst := fuzzAddrs(v6)
		h, p, err := ParseUDP(b, src, dst, true)
		if err != nil {
			checkErr(t, err)
			return
		}
		// What parses is rebuilt to a datagram that parses the same.
		again := AppendUDP(nil, &h, p, src, dst)
		h2, p2, err := ParseUDP(again, src, dst, true)
		if err != nil || h2 != h || !bytes.Equal(p2, p) {
			t.Fatalf("round trip: %+v %q %v", h2, p2, err)
		}
	})
}

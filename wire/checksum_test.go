package wire

import (
	"math/rand/v2"
	"net/netip"
	"strconv"
	"testing"
)

func TestChecksumKnownVectors(t *testing.T) {
	tests := []struct {
		name string
		hex  string
		want uint16
	}{
		// RFC 1071 section 3: the sum of these words is 0xddf2.
		{"RFC 1071 example", "0001 f203 f4f5 f6f7", ^uint16(0xddf2)},
		// A widely quoted IPv4 header with its checksum field zeroed;
		// the checksum on the wire is 0xb861.
		{"IPv4 header", "4500 0073 0000 4000 4011 0000 c0a8 0001 c0a8 00c7", 0xb861},
		{"empty", "", 0xffff},
		{"odd length pads with zero", "01", ^uint16(0x0100)},
		{"all ones", "ffff ffff", 0x0000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Checksum(unhex(t, tt.hex), 0); got != tt.want {
				t.Errorf("Checksum = %#04x, want %#04x", got, tt.want)
			}
		})
	}
}

// The fast loop must agree with the 16-bit reference for every length and
// alignment, including sums that carry out of 64 bits.
func TestChecksumMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 2048)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	ones := make([]byte, 300)
	for i := range ones {
		ones[i] = 0xff
	}
	for _, data := range [][]byte{buf, ones} {
		for off := range 9 {
			for n := 0; off+n <= len(data) && n < 300; n++ {
				b := data[off : off+n]
				for _, initial := range []uint32{0, 1, 0xffff, 0x1fffe, 0xffffffff} {
					want := ^refFold(refSum(b) + uint64(initial))
					if got := Checksum(b, initial); got != want {
						t.Fatalf("off %d len %d initial %#x: Checksum = %#04x, want %#04x", off, n, initial, got, want)
					}
				}
			}
		}
	}
	if got, want := Checksum(buf, 0), ^refFold(refSum(buf)); got != want {
		t.Errorf("2048 bytes: Checksum = %#04x, want %#04x", got, want)
	}
}

func TestPseudoHeaderChecksum(t *testing.T) {
	// Linux leaves exactly the folded pseudo-header sum in the checksum
	// field of a loopback segment (see helpers_test.go): an independent
	// reading of RFC 9293 section 3.1 and RFC 8200 section 8.1.
	if got := PseudoHeaderChecksum(ProtocolTCP, lo4, lo4, 40); got != 0xfe30 {
		t.Errorf("IPv4 127.0.0.1: got %#04x, want 0xfe30 (Linux)", got)
	}
	if got := PseudoHeaderChecksum(ProtocolTCP, lo6, lo6, 40); got != 0x0030 {
		t.Errorf("IPv6 ::1: got %#04x, want 0x0030 (Linux)", got)
	}
	for _, c := range []struct{ src, dst netip.Addr }{
		{addrA, addrB},
		{netip.MustParseAddr("255.255.255.255"), netip.MustParseAddr("255.255.255.254")},
		{addr6, addr7},
		{netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), netip.MustParseAddr("ffff::ffff")},
	} {
		for _, n := range []int{0, 1, 40, 1500, 65535, 70000} {
			if c.src.Is4() && n > 65535 {
				continue
			}
			got := refFold(uint64(PseudoHeaderChecksum(ProtocolTCP, c.src, c.dst, n)))
			want := refFold(refPseudo(ProtocolTCP, c.src, c.dst, n))
			if got != want && !(got == 0 && want == 0xffff || got == 0xffff && want == 0) {
				t.Errorf("%v > %v len %d: got %#04x, want %#04x", c.src, c.dst, n, got, want)
			}
		}
	}
}

func BenchmarkChecksum(b *testing.B) {
	for _, n := range []int{20, 64, 128, 256, 1500, 9000, 65535} {
		buf := make([]byte, n)
		for i := range buf {
			buf[i] = byte(i * 7)
		}
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			var s uint16
			for b.Loop() {
				s += Checksum(buf, 0)
			}
			_ = s
		})
	}
}

// BenchmarkChecksumReference is the 16-bit loop, for comparison.
func BenchmarkChecksumReference(b *testing.B) {
	buf := make([]byte, 1500)
	b.SetBytes(int64(len(buf)))
	var s uint16
	for b.Loop() {
		s += refFold(refSum(buf))
	}
	_ = s
}

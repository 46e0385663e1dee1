package wire

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
)

func TestParseTCPLinuxSYN(t *testing.T) {
	tests := []struct {
		name string
		pkt  string
		want TCPHeader
		str  string
	}{
		{
			name: "IPv4 SYN",
			pkt:  linuxSYN4,
			want: TCPHeader{
				SrcPort: 50292, DstPort: 58669, Seq: 0x4d9ae8bf, Flags: SYN, Window: 65495,
				Options: TCPOptions{MSS: 65495, HasMSS: true, SACKPermitted: true, WindowScale: 10, HasWindowScale: true,
					TSVal: 0xddb0dc8f, HasTimestamps: true},
			},
			str: "[S] seq 1301997759 win 65495 <mss 65495,sackOK,TS val 3719355535 ecr 0,nop,wscale 10>",
		},
		{
			name: "IPv4 SYN-ACK",
			pkt:  linuxSYNACK4,
			want: TCPHeader{
				SrcPort: 58669, DstPort: 50292, Seq: 0x7d49a3a2, Ack: 0x4d9ae8c0, Flags: SYN | ACK, Window: 65483,
				Options: TCPOptions{MSS: 65495, HasMSS: true, SACKPermitted: true, WindowScale: 10, HasWindowScale: true,
					TSVal: 0xf2ab133e, TSEcr: 0xddb0dc8f, HasTimestamps: true},
			},
			str: "[S.] seq 2101978018 ack 1301997760 win 65483 <mss 65495,sackOK,TS val 4071297854 ecr 3719355535,nop,wscale 10>",
		},
		{
			name: "IPv6 SYN",
			pkt:  linuxSYN6,
			want: TCPHeader{
				SrcPort: 43014, DstPort: 44113, Seq: 0x8ba830a2, Flags: SYN, Window: 65476,
				Options: TCPOptions{MSS: 65476, HasMSS: true, SACKPermitted: true, WindowScale: 10, HasWindowScale: true,
					TSVal: 0x3d2916d2, HasTimestamps: true},
			},
		},
		{
			name: "IPv6 SYN-ACK",
			pkt:  linuxSYNACK6,
			want: TCPHeader{
				SrcPort: 44113, DstPort: 43014, Seq: 0xcb5731b5, Ack: 0x8ba830a3, Flags: SYN | ACK, Window: 65464,
				Options: TCPOptions{MSS: 65476, HasMSS: true, SACKPermitted: true, WindowScale: 10, HasWindowScale: true,
					TSVal: 0x29d1ba2d, TSEcr: 0x3d2916d2, HasTimestamps: true},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, seg, src, dst := capturedSYN(t, tt.pkt)
			h, payload, err := ParseTCP(seg, src, dst, true)
			if err != nil {
				t.Fatalf("ParseTCP: %v", err)
			}
			if h != tt.want {
				t.Errorf("got  %+v\nwant %+v", h, tt.want)
			}
			if len(payload) != 0 {
				t.Errorf("payload %x, want none", payload)
			}
			if tt.str != "" && h.String() != tt.str {
				t.Errorf("String:\ngot  %s\nwant %s", h.String(), tt.str)
			}
			// Our encoder lays out a SYN's options as Linux does, so
			// re-encoding gives back the captured bytes exactly.
			if got := AppendTCP(nil, &h, nil, src, dst); !bytes.Equal(got, seg) {
				t.Errorf("AppendTCP:\ngot  %x\nwant %x", got, seg)
			}
		})
	}
}

func TestParseTCPErrors(t *testing.T) {
	seg := func(opts ...byte) []byte { return rawTCP(opts, "") }
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrTooShort},
		{"19 bytes", seg()[:19], ErrTooShort},
		{"data offset 4", func() []byte { b := seg(); b[12] = 4 << 4; fixTCPChecksum(b, lo4, lo4); return b }(), ErrBadDataOffset},
		{"data offset 0", func() []byte { b := seg(); b[12] = 0; fixTCPChecksum(b, lo4, lo4); return b }(), ErrBadDataOffset},
		{"data offset past segment", func() []byte { b := seg(); b[12] = 6 << 4; fixTCPChecksum(b, lo4, lo4); return b }(), ErrBadDataOffset},
		{"data offset 15 in 56 bytes", func() []byte {
			b := rawTCP(make([]byte, 36), "")
			b[12] = 15 << 4
			fixTCPChecksum(b, lo4, lo4)
			return b
		}(), ErrBadDataOffset},
		{"kind without length byte", seg(1, 1, 1, 2), ErrBadOption},
		{"option length 0", seg(30, 0, 0, 0), ErrBadOption},
		{"option length 1", seg(30, 1, 0, 0), ErrBadOption},
		{"option past header", seg(1, 1, 30, 4), ErrBadOption},
		{"unknown option past header", seg(30, 8, 0, 0), ErrBadOption},
		{"MSS length 3", seg(2, 3, 5, 1), ErrBadOption},
		{"MSS length 6", seg(2, 6, 5, 180, 0, 0, 1, 1), ErrBadOption},
		{"window scale length 2", seg(3, 2, 1, 1), ErrBadOption},
		{"window scale length 4", seg(3, 4, 7, 0), ErrBadOption},
		{"SACK-permitted length 3", seg(4, 3, 0, 1), ErrBadOption},
		{"SACK length 2 (no block)", seg(5, 2, 1, 1), ErrBadOption},
		{"SACK length 9", seg(5, 9, 0, 0, 0, 1, 0, 0, 0), ErrBadOption},
		{"SACK length 12", seg(5, 12, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0), ErrBadOption},
		{"timestamps length 8", seg(8, 8, 0, 0, 0, 1, 0, 0), ErrBadOption},
		{"timestamps length 12", seg(8, 12, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0), ErrBadOption},
		{"bad checksum", func() []byte { b := seg(); b[16] ^= 1; return b }(), ErrChecksum},
		{"payload corrupted", func() []byte { b := rawTCP(nil, "hello"); b[21] ^= 0x10; return b }(), ErrChecksum},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ParseTCP(tt.b, lo4, lo4, true)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseTCP(%x) error = %v, want %v", tt.b, err, tt.want)
			}
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Layer != "tcp" {
				t.Errorf("error %v is not a tcp *ParseError", err)
			}
		})
	}

	t.Run("mixed address families", func(t *testing.T) {
		if _, _, err := ParseTCP(seg(), lo4, lo6, true); !errors.Is(err, ErrBadAddress) {
			t.Errorf("error = %v, want ErrBadAddress", err)
		}
		if _, _, err := ParseTCP(seg(), netip.Addr{}, netip.Addr{}, true); !errors.Is(err, ErrBadAddress) {
			t.Errorf("error = %v, want ErrBadAddress", err)
		}
	})
	t.Run("checksum skipped when not asked", func(t *testing.T) {
		b := seg()
		b[16] ^= 1
		if _, _, err := ParseTCP(b, netip.Addr{}, netip.Addr{}, false); err != nil {
			t.Errorf("error = %v, want nil", err)
		}
	})
}

func TestParseTCPOptions(t *testing.T) {
	tests := []struct {
		name string
		opts []byte
		want TCPOptions
	}{
		{"none", nil, TCPOptions{}},
		{"NOPs only", []byte{1, 1, 1, 1}, TCPOptions{}},
		{"EOL ends the list", []byte{2, 4, 5, 0xb4, 0, 2, 0xff, 0xff}, TCPOptions{MSS: 1460, HasMSS: true}},
		{"unknown skipped by length", []byte{30, 6, 1, 2, 3, 4, 3, 3, 7, 0}, TCPOptions{WindowScale: 7, HasWindowScale: true}},
		{"unknown at the end", []byte{1, 1, 253, 2}, TCPOptions{}},
		{"ACK with NOP NOP TS", []byte{1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 6}, TCPOptions{TSVal: 5, TSEcr: 6, HasTimestamps: true}},
		{"SACK with 3 blocks", []byte{1, 1, 5, 26,
			0, 0, 0, 10, 0, 0, 0, 20,
			0, 0, 0, 30, 0, 0, 0, 40,
			0xff, 0xff, 0xff, 0xf0, 0, 0, 0, 8},
			TCPOptions{NumSACK: 3, SACKBlocks: [4]SACKBlock{{10, 20}, {30, 40}, {0xfffffff0, 8}}}},
		{"SACK with 4 blocks", []byte{1, 1, 5, 34,
			0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4,
			0, 0, 0, 5, 0, 0, 0, 6, 0, 0, 0, 7, 0, 0, 0, 8},
			TCPOptions{NumSACK: 4, SACKBlocks: [4]SACKBlock{{1, 2}, {3, 4}, {5, 6}, {7, 8}}}},
		{"later SACK replaces earlier", []byte{5, 18, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4,
			5, 10, 0, 0, 0, 9, 0, 0, 0, 10},
			TCPOptions{NumSACK: 1, SACKBlocks: [4]SACKBlock{{9, 10}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _, err := ParseTCP(rawTCP(tt.opts, ""), lo4, lo4, true)
			if err != nil {
				t.Fatalf("ParseTCP: %v", err)
			}
			if h.Options != tt.want {
				t.Errorf("got  %+v\nwant %+v", h.Options, tt.want)
			}
		})
	}
}

func TestTCPPayloadAliases(t *testing.T) {
	b := rawTCP([]byte{1, 1, 1, 1}, "hello")
	_, payload, err := ParseTCP(b, lo4, lo4, true)
	if err != nil {
		t.Fatal(err)
	}
	if string(payload) != "hello" {
		t.Fatalf("payload %q, want hello", payload)
	}
	if &payload[0] != &b[24] {
		t.Error("payload is a copy, want a sub-slice of the segment")
	}
}

func TestTCPRoundTrip(t *testing.T) {
	headers := []TCPHeader{
		{SrcPort: 1, DstPort: 2, Seq: 3, Ack: 4, Flags: ACK, Window: 5},
		{SrcPort: 443, DstPort: 50000, Seq: 0xffffffff, Ack: 0, Flags: FIN | PSH | ACK | URG | ECE | CWR, Window: 0xffff, Urgent: 7},
		{SrcPort: 80, DstPort: 8080, Seq: 1000, Flags: SYN | ECE | CWR, Window: 64240, Options: TCPOptions{
			MSS: 1460, HasMSS: true, SACKPermitted: true, WindowScale: 7, HasWindowScale: true, TSVal: 1, TSEcr: 2, HasTimestamps: true}},
		{SrcPort: 80, DstPort: 8080, Seq: 1000, Flags: SYN, Options: TCPOptions{MSS: 536, HasMSS: true}},
		{SrcPort: 80, DstPort: 8080, Seq: 1000, Flags: SYN, Options: TCPOptions{MSS: 536, HasMSS: true, SACKPermitted: true, WindowScale: 14, HasWindowScale: true}},
		{Flags: ACK, Options: TCPOptions{TSVal: 9, TSEcr: 8, HasTimestamps: true, NumSACK: 3,
			SACKBlocks: [4]SACKBlock{{1, 2}, {3, 4}, {5, 6}}}},
		{Flags: ACK, Options: TCPOptions{NumSACK: 4, SACKBlocks: [4]SACKBlock{{1, 2}, {3, 4}, {5, 6}, {7, 8}}}},
		{Flags: RST},
	}
	addrs := []struct{ src, dst netip.Addr }{{addrA, addrB}, {addr6, addr7}}
	for _, h := range headers {
		for _, a := range addrs {
			for _, payload := range []string{"", "x", "hello, world"} {
				b := AppendTCP([]byte("prefix"), &h, []byte(payload), a.src, a.dst)
				if string(b[:6]) != "prefix" {
					t.Fatalf("AppendTCP clobbered the prefix")
				}
				seg := b[6:]
				if len(seg) != h.HeaderLen()+len(payload) || h.HeaderLen()%4 != 0 {
					t.Fatalf("%v: wrote %d bytes, HeaderLen %d", h, len(seg), h.HeaderLen())
				}
				if got, want := refChecksum(seg, ProtocolTCP, a.src, a.dst, true), uint16(0); got != want {
					t.Errorf("%v: reference checksum over built segment = %#x, want 0", h, got)
				}
				got, p, err := ParseTCP(seg, a.src, a.dst, true)
				if err != nil {
					t.Fatalf("%v over %v: ParseTCP: %v", h, a.src, err)
				}
				if got != h || string(p) != payload {
					t.Errorf("round trip over %v:\ngot  %v %+v %q\nwant %v %+v %q", a.src, got, got.Options, p, h, h.Options, payload)
				}
			}
		}
	}
}

func TestTCPOptionsLayout(t *testing.T) {
	tests := []struct {
		name string
		o    TCPOptions
		want string // hex
		str  string
	}{
		{"none", TCPOptions{}, "", ""},
		{"Linux SYN", TCPOptions{MSS: 1460, HasMSS: true, SACKPermitted: true, TSVal: 1, TSEcr: 2, HasTimestamps: true, WindowScale: 7, HasWindowScale: true},
			"020405b4 0402 080a0000000100000002 01 030307", "<mss 1460,sackOK,TS val 1 ecr 2,nop,wscale 7>"},
		{"SYN without timestamps", TCPOptions{MSS: 1460, HasMSS: true, SACKPermitted: true, WindowScale: 7, HasWindowScale: true},
			"020405b4 01010402 01030307", "<mss 1460,nop,nop,sackOK,nop,wscale 7>"},
		{"ACK with timestamps", TCPOptions{TSVal: 1, TSEcr: 2, HasTimestamps: true},
			"0101080a0000000100000002", "<nop,nop,TS val 1 ecr 2>"},
		{"ACK with timestamps and SACK", TCPOptions{TSVal: 1, TSEcr: 2, HasTimestamps: true, NumSACK: 1, SACKBlocks: [4]SACKBlock{{100, 200}}},
			"0101080a0000000100000002 0101050a 00000064 000000c8", "<nop,nop,TS val 1 ecr 2,nop,nop,sack 1 {100:200}>"},
		{"SACK alone", TCPOptions{NumSACK: 2, SACKBlocks: [4]SACKBlock{{1, 2}, {3, 4}}},
			"01010512 00000001 00000002 00000003 00000004", "<nop,nop,sack 2 {1:2} {3:4}>"},
		// Four blocks and timestamps do not fit (RFC 2018 section 3):
		// the oldest block is dropped.
		{"too many SACK blocks", TCPOptions{TSVal: 1, TSEcr: 2, HasTimestamps: true, NumSACK: 4,
			SACKBlocks: [4]SACKBlock{{1, 2}, {3, 4}, {5, 6}, {7, 8}}},
			"0101080a0000000100000002 0101051a 00000001 00000002 00000003 00000004 00000005 00000006", ""},
		// What a parsed header may hold that only fits packed.
		{"packed", TCPOptions{TSVal: 1, TSEcr: 2, HasTimestamps: true, WindowScale: 3, HasWindowScale: true, NumSACK: 3,
			SACKBlocks: [4]SACKBlock{{1, 2}, {3, 4}, {5, 6}}},
			"080a0000000100000002 030303 051a 00000001 00000002 00000003 00000004 00000005 00000006 00", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := unhex(t, tt.want)
			buf := make([]byte, TCPMaxOptionsLen)
			n := EncodeTCPOptions(buf, &tt.o)
			if n != tt.o.Len() {
				t.Errorf("EncodeTCPOptions wrote %d, Len says %d", n, tt.o.Len())
			}
			if !bytes.Equal(buf[:n], want) {
				t.Errorf("got  %x\nwant %x", buf[:n], want)
			}
			if tt.str != "" && tt.o.String() != tt.str {
				t.Errorf("String = %q, want %q", tt.o.String(), tt.str)
			}
		})
	}
}

func TestTCPHeaderString(t *testing.T) {
	tests := []struct {
		h    TCPHeader
		want string
	}{
		{TCPHeader{Seq: 1000, Ack: 2001, Flags: SYN | ACK, Window: 65535, Options: TCPOptions{
			MSS: 1460, HasMSS: true, SACKPermitted: true, TSVal: 1, TSEcr: 2, HasTimestamps: true, WindowScale: 7, HasWindowScale: true}},
			"[S.] seq 1000 ack 2001 win 65535 <mss 1460,sackOK,TS val 1 ecr 2,nop,wscale 7>"},
		{TCPHeader{Seq: 1001, Ack: 2001, Flags: FIN | ACK, Window: 64}, "[F.] seq 1001 ack 2001 win 64"},
		{TCPHeader{Seq: 5, Ack: 99, Flags: RST}, "[R] seq 5 win 0"},
		{TCPHeader{Seq: 5, Flags: PSH | ACK | URG, Urgent: 3}, "[PU.] seq 5 ack 0 win 0 urg 3"},
		{TCPHeader{Seq: 5}, "[none] seq 5 win 0"},
	}
	for _, tt := range tests {
		if got := tt.h.String(); got != tt.want {
			t.Errorf("got  %s\nwant %s", got, tt.want)
		}
	}
}

func TestParseTCPAllocs(t *testing.T) {
	_, seg4, src4, dst4 := capturedSYN(t, linuxSYN4)
	_, seg6, src6, dst6 := capturedSYN(t, linuxSYN6)
	bad := append([]byte(nil), seg4...)
	bad[16] ^= 1
	var sink int
	for _, c := range []struct {
		name     string
		b        []byte
		src, dst netip.Addr
	}{{"IPv4", seg4, src4, dst4}, {"IPv6", seg6, src6, dst6}, {"bad checksum", bad, src4, dst4}} {
		n := testing.AllocsPerRun(100, func() {
			h, p, err := ParseTCP(c.b, c.src, c.dst, true)
			if err == nil {
				sink += int(h.SrcPort) + len(p)
			}
		})
		if n != 0 {
			t.Errorf("%s: ParseTCP allocates %v times per call, want 0", c.name, n)
		}
	}
	h := TCPHeader{Flags: ACK, Options: TCPOptions{TSVal: 1, HasTimestamps: true, NumSACK: 2}}
	buf := make([]byte, 0, 100)
	if n := testing.AllocsPerRun(100, func() { buf = AppendTCP(buf[:0], &h, []byte("data"), addr6, addr7) }); n != 0 {
		t.Errorf("AppendTCP into a big enough buffer allocates %v times per call, want 0", n)
	}
}

func BenchmarkParseTCP(b *testing.B) {
	_, seg, src, dst := capturedSYN(b, linuxSYN4)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ParseTCP(seg, src, dst, true); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendTCP(b *testing.B) {
	h := TCPHeader{SrcPort: 1, DstPort: 2, Flags: ACK, Options: TCPOptions{TSVal: 1, HasTimestamps: true}}
	payload := make([]byte, 1448)
	buf := make([]byte, 0, 1500)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendTCP(buf[:0], &h, payload, addrA, addrB)
	}
}

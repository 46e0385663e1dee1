package wire

import (
	"bytes"
	"errors"
	"testing"
)

func equalICMPv4(a, b ICMPv4Message) bool {
	return a.Type == b.Type && a.Code == b.Code && a.Rest == b.Rest && bytes.Equal(a.Data, b.Data)
}

func equalICMPv6(a, b ICMPv6Message) bool {
	return a.Type == b.Type && a.Code == b.Code && a.Rest == b.Rest && bytes.Equal(a.Data, b.Data)
}

func TestICMPv4Echo(t *testing.T) {
	m := NewICMPv4Echo(false, 0x1234, 7, []byte("ping"))
	b := AppendICMPv4(nil, &m)
	// Type 8, code 0, checksum, id 0x1234, seq 7, "ping".
	want := unhex(t, "0800 0000 1234 0007 70696e67")
	copy(want[2:], []byte{byte(refChecksum(want, 0, lo4, lo4, false) >> 8), byte(refChecksum(want, 0, lo4, lo4, false))})
	if !bytes.Equal(b, want) {
		t.Fatalf("AppendICMPv4:\ngot  %x\nwant %x", b, want)
	}
	got, err := ParseICMPv4(b, true)
	if err != nil {
		t.Fatal(err)
	}
	if id, seq := got.Echo(); got.Type != ICMPv4EchoRequest || id != 0x1234 || seq != 7 || string(got.Data) != "ping" {
		t.Errorf("got type %d id %#x seq %d data %q", got.Type, id, seq, got.Data)
	}
	if got.IsError() {
		t.Error("echo request is an error")
	}
	if _, err := got.Quote(); !errors.Is(err, ErrNoQuote) {
		t.Errorf("Quote of an echo request: error = %v, want ErrNoQuote", err)
	}
	reply := NewICMPv4Echo(true, 0x1234, 7, got.Data)
	if reply.Type != ICMPv4EchoReply {
		t.Errorf("reply type %d", reply.Type)
	}
}

func TestICMPv6Echo(t *testing.T) {
	m := NewICMPv6Echo(true, 1, 2, []byte("pong"))
	b := AppendICMPv6(nil, &m, addr6, addr7)
	if refChecksum(b, ProtocolICMPv6, addr6, addr7, true) != 0 {
		t.Fatalf("reference checksum over %x is not 0", b)
	}
	got, err := ParseICMPv6(b, addr6, addr7, true)
	if err != nil {
		t.Fatal(err)
	}
	if id, seq := got.Echo(); got.Type != ICMPv6EchoReply || id != 1 || seq != 2 || string(got.Data) != "pong" {
		t.Errorf("got type %d id %d seq %d data %q", got.Type, id, seq, got.Data)
	}
	// The pseudo-header is covered (RFC 4443 section 2.3): other addresses
	// fail the checksum.
	if _, err := ParseICMPv6(b, addr7, addr6, true); err != nil {
		t.Errorf("swapped addresses: %v (the sum is symmetric, want nil)", err)
	}
	if _, err := ParseICMPv6(b, addr6, lo6, true); !errors.Is(err, ErrChecksum) {
		t.Errorf("other destination: error = %v, want ErrChecksum", err)
	}
	if _, err := ParseICMPv6(b, addrA, addrB, true); !errors.Is(err, ErrBadAddress) {
		t.Errorf("IPv4 addresses: error = %v, want ErrBadAddress", err)
	}
}

func TestICMPv4FragNeededQuote(t *testing.T) {
	pkt, _, _, _ := capturedSYN(t, linuxSYN4)
	m := NewICMPv4FragNeeded(1400, pkt)
	b := AppendICMPv4(nil, &m)
	got, err := ParseICMPv4(b, true)
	if err != nil {
		t.Fatal(err)
	}
	if !got.IsError() || !got.IsFragNeeded() || got.NextHopMTU() != 1400 {
		t.Errorf("got type %d code %d MTU %d, want 3/4/1400", got.Type, got.Code, got.NextHopMTU())
	}
	q, err := got.Quote()
	if err != nil {
		t.Fatalf("Quote: %v", err)
	}
	want := ICMPQuote{Src: lo4, Dst: lo4, Protocol: ProtocolTCP, SrcPort: 50292, DstPort: 58669, Seq: 0x4d9ae8bf}
	if q != want {
		t.Errorf("Quote = %+v, want %+v", q, want)
	}
	// Only the IP header and 8 bytes are needed (RFC 792).
	got.Data = got.Data[:28]
	if q2, err := got.Quote(); err != nil || q2 != want {
		t.Errorf("minimal quote: %+v, %v", q2, err)
	}
}

func TestICMPv6PacketTooBigQuote(t *testing.T) {
	pkt, _, _, _ := capturedSYN(t, linuxSYNACK6)
	m := NewICMPv6PacketTooBig(1280, pkt)
	b := AppendICMPv6(nil, &m, addr6, lo6)
	got, err := ParseICMPv6(b, addr6, lo6, true)
	if err != nil {
		t.Fatal(err)
	}
	if got.Type != ICMPv6PacketTooBig || got.MTU() != 1280 || !got.IsError() {
		t.Errorf("got type %d MTU %d", got.Type, got.MTU())
	}
	q, err := got.Quote()
	want := ICMPQuote{Src: lo6, Dst: lo6, Protocol: ProtocolTCP, SrcPort: 44113, DstPort: 43014, Seq: 0xcb5731b5}
	if err != nil || q != want {
		t.Errorf("Quote = %+v, %v, want %+v", q, err, want)
	}
}

func TestICMPQuoteErrors(t *testing.T) {
	syn4, _, _, _ := capturedSYN(t, linuxSYN4)
	syn6, _, _, _ := capturedSYN(t, linuxSYN6)
	tcp6 := syn6[40:48]
	frag0 := []byte{ProtocolTCP, 0, 0, 0, 0, 0, 0, 1}
	frag1 := []byte{ProtocolTCP, 0, 0, 8, 0, 0, 0, 1}
	tests := []struct {
		name string
		v6   bool
		body []byte
		want error // nil: parses
	}{
		{"v4 short", false, syn4[:27], ErrTruncated},
		{"v4 in v6 error", true, syn4, ErrBadVersion},
		{"v6 in v4 error", false, syn6, ErrBadVersion},
		{"v4 IHL 3", false, append([]byte{0x43}, syn4[1:]...), ErrBadHeaderLen},
		{"v4 IHL past quote", false, append([]byte{0x4f}, syn4[1:30]...), ErrTruncated},
		{"v4 non-first fragment", false, append(append([]byte(nil), syn4[:6]...), append([]byte{0, 1}, syn4[8:]...)...), ErrFragment},
		{"v6 short", true, syn6[:47], ErrTruncated},
		{"v6 first fragment", true, append(append(append([]byte(nil), syn6[:6]...), ProtocolFragment), append(append(syn6[7:40:40], frag0...), tcp6...)...), nil},
		{"v6 later fragment", true, append(append(append([]byte(nil), syn6[:6]...), ProtocolFragment), append(append(syn6[7:40:40], frag1...), tcp6...)...), ErrFragment},
		{"v6 ESP", true, append(append(append([]byte(nil), syn6[:6]...), ProtocolESP), syn6[7:]...), ErrBadExtension},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			var q ICMPQuote
			if tt.v6 {
				m := NewICMPv6Unreachable(ICMPv6PortUnreachable, tt.body)
				q, err = m.Quote()
			} else {
				m := NewICMPv4Unreachable(ICMPv4PortUnreachable, tt.body)
				q, err = m.Quote()
			}
			if tt.want == nil {
				if err != nil || q.SrcPort != 43014 || q.Seq != 0x8ba830a2 {
					t.Errorf("Quote = %+v, %v", q, err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("error = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestParseICMPErrors(t *testing.T) {
	echo4 := NewICMPv4Echo(false, 1, 1, nil)
	b4 := AppendICMPv4(nil, &echo4)
	if _, err := ParseICMPv4(b4[:7], true); !errors.Is(err, ErrTooShort) {
		t.Errorf("short ICMPv4: %v", err)
	}
	b4[5] ^= 1
	if _, err := ParseICMPv4(b4, true); !errors.Is(err, ErrChecksum) {
		t.Errorf("corrupt ICMPv4: %v", err)
	}
	if _, err := ParseICMPv4(b4, false); err != nil {
		t.Errorf("corrupt ICMPv4 without verification: %v", err)
	}
	echo6 := NewICMPv6Echo(false, 1, 1, nil)
	b6 := AppendICMPv6(nil, &echo6, addr6, addr7)
	if _, err := ParseICMPv6(b6[:7], addr6, addr7, true); !errors.Is(err, ErrTooShort) {
		t.Errorf("short ICMPv6: %v", err)
	}
}

func TestICMPErrorQuoteIsCut(t *testing.T) {
	big := make([]byte, 3000)
	if m := NewICMPv4Unreachable(ICMPv4HostUnreachable, big); 20+8+len(m.Data) != 576 {
		t.Errorf("ICMPv4 error datagram is %d bytes, want 576 (RFC 1812 section 4.3.2.3)", 28+len(m.Data))
	}
	if m := NewICMPv6Unreachable(ICMPv6AddrUnreachable, big); 40+8+len(m.Data) != 1280 {
		t.Errorf("ICMPv6 error packet is %d bytes, want 1280 (RFC 4443 section 2.4)", 48+len(m.Data))
	}
}

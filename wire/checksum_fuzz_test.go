package wire

import (
	"bytes"
	"testing"
)

// The fast sum agrees with the 16-bit reference loop on any input, at
// any length (the vector loop from 256 bytes where the CPU has AVX2, the
// 64-, 32- and 8-byte loops and the tail), and from an odd start too.
// Seeds of 256 bytes and more put the fuzzer on the vector path.
func FuzzChecksum(f *testing.F) {
	f.Add([]byte{}, uint32(0))
	f.Add([]byte{0xff}, uint32(0xffff))
	f.Add(bytes.Repeat([]byte{0xff}, 67), uint32(0xffffffff))
	f.Add([]byte("the quick brown fox jumps over the lazy dog, twice over"), uint32(1))
	f.Add(bytes.Repeat([]byte{0xff}, 257), uint32(0xffffffff))
	f.Add(bytes.Repeat([]byte("0123456789abcdef"), 100), uint32(7))
	f.Fuzz(func(t *testing.T, b []byte, initial uint32) {
		want := ^refFold(refSum(b) + uint64(initial))
		if got := Checksum(b, initial); got != want {
			t.Fatalf("len %d initial %#x: Checksum = %#04x, want %#04x", len(b), initial, got, want)
		}
		if len(b) > 1 {
			// The same bytes one further on in memory: every vector load
			// is misaligned differently.
			odd := append(make([]byte, 1, len(b)+1), b...)[1:]
			if got := Checksum(odd, initial); got != want {
				t.Fatalf("len %d at an odd address: Checksum = %#04x, want %#04x", len(b), got, want)
			}
		}
	})
}

// A header appended alone, with the payload sent as a piece of its own,
// is the header AppendTCP writes, checksum included, at any payload
// length (odd ones too).
func TestAppendTCPHeaderMatchesAppendTCP(t *testing.T) {
	h := &TCPHeader{SrcPort: 1, DstPort: 2, Seq: 3, Ack: 4, Flags: ACK | PSH, Window: 5}
	h.Options.HasTimestamps, h.Options.TSVal, h.Options.TSEcr = true, 6, 7
	payload := make([]byte, 3000)
	for i := range payload {
		payload[i] = byte(i*131 + 7)
	}
	for _, n := range []int{0, 1, 2, 3, 63, 64, 65, 1460, 2999} {
		whole := AppendTCP(nil, h, payload[:n], addrA, addrB)
		head := AppendTCPHeader(nil, h, payload[:n], addrA, addrB)
		if !bytes.Equal(append(head, payload[:n]...), whole) {
			t.Fatalf("payload %d: header and payload differ from AppendTCP's segment", n)
		}
	}
}

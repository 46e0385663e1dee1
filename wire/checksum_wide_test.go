package wire

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// The checksum equals the 16-bit reference loop at every length from 0 to
// 4096 and at every start offset 0..3 (so the vector loads meet every
// misalignment), on random bytes and on all-ones bytes (every add
// carries). Lengths from 256 take the vector path where the CPU has one
// (sumVector), the rest the scalar one: both are checked.
func TestChecksumAllLengthsAndAlignments(t *testing.T) {
	rnd := make([]byte, 4096+3)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range rnd {
		rnd[i] = byte(r.Uint32())
	}
	ones := bytes.Repeat([]byte{0xff}, 4096+3)
	for name, buf := range map[string][]byte{"random": rnd, "0xff": ones} {
		for off := range 4 {
			for n := 0; n <= 4096 && off+n <= len(buf); n++ {
				b := buf[off : off+n]
				for _, initial := range []uint32{0, 0xffff, 0xffffffff} {
					want := ^refFold(refSum(b) + uint64(initial))
					if got := Checksum(b, initial); got != want {
						t.Fatalf("%s, offset %d, len %d, initial %#x: Checksum = %#04x, want %#04x (vector path: %v)",
							name, off, n, initial, got, want, useAVX2 && n >= avx2Min)
					}
				}
			}
		}
	}
}

// Long inputs: a 65535-byte segment and 4 MiB of all-ones (the most any
// lane can be given), at an odd offset.
func TestChecksumLong(t *testing.T) {
	for _, fill := range []byte{0xff, 0x5a} {
		buf := bytes.Repeat([]byte{fill}, 4<<20+1)
		for _, n := range []int{65535, 4 << 20} {
			b := buf[1 : 1+n]
			if got, want := Checksum(b, 0), ^refFold(refSum(b)); got != want {
				t.Errorf("fill %#x len %d: Checksum = %#04x, want %#04x", fill, n, got, want)
			}
		}
	}
}

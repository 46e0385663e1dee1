//go:build amd64 && !purego

package wire

import (
	"math/rand/v2"
	"testing"
)

// The vector loop alone (sumAVX2), on every multiple of 32 up to 4 KiB at
// every offset 0..31, agrees with the reference modulo 2^16-1. Skipped on
// a CPU without AVX2, where the vector loop is never called.
func TestSumAVX2(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2 on this CPU: the scalar sum is used alone")
	}
	buf := make([]byte, 4096+32)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	for off := range 32 {
		for n := 0; n <= 4096; n += 32 {
			b := buf[off : off+n]
			if got, want := refFold(sumAVX2(b)), refFold(refSumLE(b)); got != want {
				t.Fatalf("offset %d len %d: sumAVX2 folds to %#04x, want %#04x", off, n, got, want)
			}
		}
	}
}

// refSumLE is refSum over little-endian 16-bit words, the order the
// vector loop adds in (sum byte-swaps once at the end).
func refSumLE(b []byte) uint64 {
	var s uint64
	for i := 0; i+1 < len(b); i += 2 {
		s += uint64(b[i]) | uint64(b[i+1])<<8
	}
	return s
}

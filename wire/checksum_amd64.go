//go:build amd64 && !purego

package wire

import "golang.org/x/sys/cpu"

// useAVX2 selects the vector sum, decided once at start-up.
var useAVX2 = cpu.X86.HasAVX2

// avx2Min is the length from which the vector loop is used. Its set-up
// and final reduction cost about what the scalar carry chain (sum) takes
// for 128 to 256 bytes: at 128 and 256 the two were within noise of each
// other (BenchmarkChecksum, BENCHMARKS.md 2026-12-04), and from 1500 the
// vector loop is 3.6 to 7 times faster. Below 256 stay ACKs and headers.
const avx2Min = 256

// sumAVX2 adds b, whose length is a multiple of 32, as little-endian
// 32-bit words into 64-bit lanes (checksum_amd64.s) and returns the total
// of its lanes: a sum that is congruent, modulo 2^16-1, to the sum of b's
// little-endian 16-bit words, because 2^16 ≡ 1 (RFC 1071 section 2(C)).
// len(b) must be below 2^32 so that no lane can overflow.
//
//go:noescape
func sumAVX2(b []byte) uint64

// sumVector adds the longest prefix of b that the vector loop can take
// (a multiple of 32 bytes, so the rest starts on a 16-bit word) and
// returns its sum (see sumAVX2) and the rest of b for the scalar loop.
// sum calls it only when useAVX2 and len(b) >= avx2Min.
func sumVector(b []byte) (uint64, []byte) {
	var acc uint64
	for len(b) >= 32 {
		// At most 1 GiB a call: each of the sixteen 64-bit lanes then
		// takes under 2^24 words of 32 bits, and their total stays under
		// 2^61.
		n := min(len(b), 1<<30) &^ 31
		acc += fold(sumAVX2(b[:n]))
		b = b[n:]
	}
	return acc, b
}

package wire

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
)

// Checksum returns the Internet checksum (RFC 1071) of b: the ones'
// complement of the ones' complement sum of b taken as big-endian 16-bit
// words, an odd final byte padded with zero. initial is a partial sum to
// start from, typically PseudoHeaderChecksum's result.
//
// To fill a checksum field, zero it, run Checksum over the message and store
// the result. To verify, run Checksum over the message with its checksum
// field in place: a correct message gives 0.
func Checksum(b []byte, initial uint32) uint16 {
	s := fold(uint64(sum(b)) + uint64(initial))
	return ^uint16(s)
}

// PseudoHeaderChecksum returns the partial sum of the pseudo-header that the
// TCP, UDP and ICMPv6 checksums cover: for IPv4 (RFC 9293 section 3.1) the
// source and destination addresses, a zero byte, the protocol and the 16-bit
// segment length; for IPv6 (RFC 8200 section 8.1) the addresses, the 32-bit
// upper-layer length and the next header. The family follows src: an IPv4
// address (Is4) selects the IPv4 form, anything else the IPv6 form.
// Pass the result to Checksum as initial.
func PseudoHeaderChecksum(proto uint8, src, dst netip.Addr, length int) uint32 {
	var acc uint64
	if src.Is4() {
		s, d := src.As4(), dst.As16()
		acc = uint64(binary.BigEndian.Uint32(s[:])) + uint64(binary.BigEndian.Uint32(d[12:]))
	} else {
		s, d := src.As16(), dst.As16()
		acc = sum64(s[:]) + sum64(d[:])
	}
	// Same words for both families: the length's two halves (the IPv4 form
	// only has the low one, which is all an IPv4 length can fill) and the
	// protocol in the low byte of a word.
	acc += uint64(uint32(length)>>16) + uint64(uint32(length)&0xffff) + uint64(proto)
	return uint32(fold(acc))
}

// sum64 adds a 16-byte address as two 64-bit words; fold reduces it.
func sum64(b []byte) uint64 {
	x, y := binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:])
	s, c := bits.Add64(x, y, 0)
	return fold(s) + fold(c)
}

// fold reduces a 64-bit ones' complement sum to 16 bits with end-around
// carries. Because 2^16 ≡ 1 (mod 2^16-1), adding the 16-bit pieces of any
// wider sum gives the same ones' complement value (RFC 1071 section 2(C)).
func fold(s uint64) uint64 {
	s = (s >> 32) + (s & 0xffffffff)
	s = (s >> 16) + (s & 0xffff)
	s = (s >> 16) + (s & 0xffff)
	s = (s >> 16) + (s & 0xffff)
	return s
}

// sum returns the 16-bit ones' complement sum of b, in network byte order.
//
// It is on the per-packet path, so it adds 64-bit little-endian loads with
// carry chaining, 32 bytes per iteration, and byte-swaps the folded result
// once at the end: the ones' complement sum is independent of byte order up
// to that final swap (RFC 1071 section 2(B)), and little-endian loads are
// plain moves on the machines this runs on.
//
// Where the CPU has AVX2 the long prefix of b is added by sumVector first
// (checksum_amd64.s); its folded sum starts the chain. Short inputs (ACKs,
// headers) skip it for the cost of one test.
func sum(b []byte) uint16 {
	var acc, c uint64
	if useAVX2 && len(b) >= avx2Min {
		acc, b = sumVector(b)
	}
	for len(b) >= 64 {
		// One carry chain of eight, so the carry is kept in a register
		// across twice as many words per pass as below.
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[8:]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[16:]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[24:]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[32:]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[40:]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[48:]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[56:]), c)
		b = b[64:]
	}
	for len(b) >= 32 {
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[8:]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[16:]), c)
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b[24:]), c)
		b = b[32:]
	}
	for len(b) >= 8 {
		acc, c = bits.Add64(acc, binary.LittleEndian.Uint64(b), c)
		b = b[8:]
	}
	// Up to 7 bytes left, at an even offset from the start, so the 16-bit
	// words keep their alignment; a last odd byte is the high byte of a
	// word padded with zero, which is the low byte in little-endian.
	if len(b) >= 4 {
		acc, c = bits.Add64(acc, uint64(binary.LittleEndian.Uint32(b)), c)
		b = b[4:]
	}
	if len(b) >= 2 {
		acc, c = bits.Add64(acc, uint64(binary.LittleEndian.Uint16(b)), c)
		b = b[2:]
	}
	if len(b) == 1 {
		acc, c = bits.Add64(acc, uint64(b[0]), c)
	}
	// End-around carry. acc+c cannot overflow after this Add64: if it
	// carried, acc is at most 2^64-2.
	acc, c = bits.Add64(acc, 0, c)
	acc += c
	return bits.ReverseBytes16(uint16(fold(acc)))
}

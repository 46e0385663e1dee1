//go:build amd64 && !purego

#include "textflag.h"

// func sumAVX2(b []byte) uint64
//
// The ones' complement sum of RFC 1071 does not depend on how the data is
// cut into words, as long as each word's weight is a power of 2^16
// (2^16 ≡ 1 modulo 2^16-1) and no carry is lost. So each 256-bit load is
// taken as four little-endian 64-bit words, and each of those is split
// into its low and high 32-bit halves (an AND with 0x00000000ffffffff and
// a right shift by 32): both halves are added into 64-bit lanes, where a
// 32-bit value can be added 2^32 times without a carry out. No carry
// flags, no horizontal work in the loop; the lanes are added together
// once, at the end. Four independent accumulators keep the adds of one
// 128-byte iteration from waiting on each other.
//
// len(b) is a multiple of 32 (the caller's job); the total of the lanes
// is returned unfolded.
TEXT ·sumAVX2(SB), NOSPLIT, $0-32
	MOVQ b_base+0(FP), SI
	MOVQ b_len+8(FP), CX

	// Y15: 0x00000000ffffffff in each 64-bit lane.
	VPCMPEQQ Y15, Y15, Y15
	VPSRLQ   $32, Y15, Y15

	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	VPXOR Y2, Y2, Y2
	VPXOR Y3, Y3, Y3

	CMPQ CX, $128
	JB   tail32

loop128:
	VMOVDQU 0(SI), Y4
	VMOVDQU 32(SI), Y5
	VMOVDQU 64(SI), Y6
	VMOVDQU 96(SI), Y7

	VPAND  Y15, Y4, Y8
	VPSRLQ $32, Y4, Y4
	VPAND  Y15, Y5, Y9
	VPSRLQ $32, Y5, Y5
	VPAND  Y15, Y6, Y10
	VPSRLQ $32, Y6, Y6
	VPAND  Y15, Y7, Y11
	VPSRLQ $32, Y7, Y7

	VPADDQ Y8, Y0, Y0
	VPADDQ Y4, Y1, Y1
	VPADDQ Y9, Y2, Y2
	VPADDQ Y5, Y3, Y3
	VPADDQ Y10, Y0, Y0
	VPADDQ Y6, Y1, Y1
	VPADDQ Y11, Y2, Y2
	VPADDQ Y7, Y3, Y3

	ADDQ $128, SI
	SUBQ $128, CX
	CMPQ CX, $128
	JAE  loop128

tail32:
	CMPQ CX, $32
	JB   reduce
	VMOVDQU 0(SI), Y4
	VPAND   Y15, Y4, Y8
	VPSRLQ  $32, Y4, Y4
	VPADDQ  Y8, Y0, Y0
	VPADDQ  Y4, Y1, Y1
	ADDQ    $32, SI
	SUBQ    $32, CX
	JMP     tail32

reduce:
	// Each lane takes under 2^24 words of 32 bits for an input of at
	// most 2^30 bytes (the caller's bound): under 2^56, and the sixteen
	// lanes together under 2^61.
	VPADDQ       Y1, Y0, Y0
	VPADDQ       Y3, Y2, Y2
	VPADDQ       Y2, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPADDQ       X1, X0, X0
	VPSHUFD      $0x4e, X0, X1
	VPADDQ       X1, X0, X0
	VMOVQ        X0, AX
	VZEROUPPER
	MOVQ         AX, ret+24(FP)
	RET

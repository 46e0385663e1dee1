//go:build !amd64 || purego

package wire

// useAVX2 is false where there is no vector sum (other architectures, or
// the purego build tag): sum is the scalar loop alone.
const useAVX2 = false

// avx2Min is never reached (useAVX2 is false); tests name it.
const avx2Min = 1 << 62

// sumVector is never called (useAVX2 is false).
func sumVector(b []byte) (uint64, []byte) { return 0, b }

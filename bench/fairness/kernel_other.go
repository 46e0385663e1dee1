//go:build !linux

package fairness

import (
	"errors"
	"time"

	"github.com/synack/synack/bench/pathmatrix"
)

// KernelSample is one second of a kernel flow (Linux only).
type KernelSample struct {
	Bytes  int64
	Cwnd   uint32
	RTT    time.Duration
	BW     float64
	MinRTT time.Duration
}

// RunKernelPair needs Linux (network namespaces and TUN devices).
func RunKernelPair(c pathmatrix.Cell, cc string, d, stagger time.Duration, seed int64) (PairResult, [2][]KernelSample, error) {
	return PairResult{}, [2][]KernelSample{}, errors.New("needs Linux (network namespaces and TUN devices)")
}

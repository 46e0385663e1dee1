//go:build !linux

package fairness

import (
	"errors"
	"time"

	"github.com/synack/synack/bench/pathmatrix"
)

// RunMixedPair needs Linux (network namespaces and TUN devices).
func RunMixedPair(pathmatrix.Cell, time.Duration, int64) (PairResult, error) {
	return PairResult{}, errors.New("needs Linux (network namespaces and TUN devices)")
}

package tun

import (
	"testing"

	"golang.org/x/sys/unix"
)

// RefuseOffloads makes TUNSETOFFLOAD fail with EINVAL, as on a kernel
// without the feature, until the test ends.
func RefuseOffloads(t *testing.T) {
	old := setOffload
	setOffload = func(int, int) error { return unix.EINVAL }
	t.Cleanup(func() { setOffload = old })
}

// RefuseRingReads makes every io_uring read carry a flag the kernel
// refuses (as a kernel whose TUN file cannot be read without waiting
// would), until the test ends.
func RefuseRingReads(t *testing.T) {
	old := readFlags
	readFlags = 1 << 31
	t.Cleanup(func() { readFlags = old })
}

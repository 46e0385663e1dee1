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

//go:build !linux

package pathmatrix

import "errors"

var errNotLinux = errors.New("needs Linux (network namespaces and TUN devices)")

// RootError says why the kernel's implementations cannot run here.
func RootError() error { return errNotLinux }

// Cleanup has nothing to remove off Linux.
func Cleanup() {}

// RemoveStale has nothing to remove off Linux.
func RemoveStale() {}

func linuxWorld(Cell, int64, string) (*world, error) { return nil, errNotLinux }

func mixedWorld(Cell, int64, bool) (*world, error) { return nil, errNotLinux }

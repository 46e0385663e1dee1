//go:build !linux

package pathmatrix

import (
	"context"
	"errors"
	"net"
	"net/netip"

	"github.com/synack/synack/link/memlink"
)

var errNotLinux = errors.New("needs Linux (network namespaces and TUN devices)")

// RootError says why the kernel's implementations cannot run here.
func RootError() error { return errNotLinux }

// Cleanup has nothing to remove off Linux.
func Cleanup() {}

// RemoveStale has nothing to remove off Linux.
func RemoveStale() {}

func linuxWorld(Cell, int64, string) (*world, error) { return nil, errNotLinux }

func mixedWorld(Cell, int64, bool) (*world, error) { return nil, errNotLinux }

// Relay needs Linux.
type Relay struct{}

// Namespaces needs Linux.
func (*Relay) Namespaces() (a, b string) { return "", "" }

// Addrs needs Linux.
func (*Relay) Addrs() (a, b netip.Prefix) { return senderAddr, receiverAddr }

// Stats needs Linux.
func (*Relay) Stats() (ab, ba memlink.Stats) { return }

// Close needs Linux.
func (*Relay) Close() {}

// NewRelay needs Linux.
func NewRelay(Cell, int64) (*Relay, error) { return nil, errNotLinux }

// Listen needs Linux.
func (*Relay) Listen(string) (net.Listener, error) { return nil, errNotLinux }

// Dial needs Linux.
func (*Relay) Dial(context.Context, string) (net.Conn, error) { return nil, errNotLinux }

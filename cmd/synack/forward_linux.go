package main

import (
	"context"
	"net"
	"runtime"
	"strings"
	"syscall"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// bindToDevice is a net.Dialer Control that binds the socket to the
// interface name (SO_BINDTODEVICE), so the kernel sends what it dials out
// of that interface whatever the routing table says: the relay's
// connections cannot be routed back into the TUN device.
func bindToDevice(name string) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) { serr = unix.BindToDevice(int(fd), name) }); err != nil {
			return err
		}
		return serr
	}
}

// netnsDialer dials from inside another network namespace. A socket
// belongs to the namespace of the thread that creates it, and keeps it;
// so each dial locks its goroutine to its thread, moves the thread into
// the namespace, dials, and moves it back. A thread that cannot be moved
// back stays locked, and the runtime ends it with its goroutine rather
// than reuse it.
type netnsDialer struct {
	name string
	h    netns.NsHandle
	nd   *net.Dialer
}

// openNetns opens the namespace name: a name under /run/netns (as `ip
// netns` makes them) or a path such as /proc/1/ns/net.
func openNetns(name string, nd *net.Dialer) (*netnsDialer, error) {
	var h netns.NsHandle
	var err error
	if strings.Contains(name, "/") {
		h, err = netns.GetFromPath(name)
	} else {
		h, err = netns.GetFromName(name)
	}
	if err != nil {
		return nil, err
	}
	return &netnsDialer{name: name, h: h, nd: nd}, nil
}

func (d *netnsDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer orig.Close()
	if err := netns.Set(d.h); err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	c, err := d.nd.DialContext(ctx, network, addr)
	if serr := netns.Set(orig); serr != nil {
		// Leave the thread locked: it dies with this goroutine.
		if c != nil {
			c.Close()
		}
		return nil, serr
	}
	runtime.UnlockOSThread()
	return c, err
}

func (d *netnsDialer) close() { d.h.Close() }

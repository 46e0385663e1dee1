//go:build linux

package tun

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"unsafe"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// errNoNetlink is what Configure and AddRoute wrap on an adopted device
// whose namespace this process cannot reach over rtnetlink.
var errNoNetlink = errors.New("no rtnetlink handle for the interface's namespace (a descriptor adopted without CAP_NET_ADMIN): configure the interface where it was created")

// FromFile makes a Device of f, a TUN device some other code opened and
// set up: the descriptor Android's VpnService.Builder.establish returns, or
// one a parent process passed down. The device must be a TUN (IP packets,
// IFF_TUN) opened with IFF_NO_PI, with or without IFF_VNET_HDR (a
// virtio-net header before every packet: then whatever offloads its creator
// set with TUNSETOFFLOAD are handled, super-packets split and partial
// checksums completed, and the stack's segments go out joined as GSO
// super-packets); a TAP device, or a file that is no TUN device at all, is
// refused with an error saying so.
// Its Name is the interface's, as TUNGETIFF reports it.
//
// IFF_NO_PI cannot be checked: TUNGETIFF reports IFF_NOFILTER in the same
// bit (0x1000) whenever no socket filter is attached, which for a TUN
// device (TUNATTACHFILTER is for TAPs) is always. A device opened without
// it (each packet behind a 4-byte packet information header) is accepted,
// and the stack drops what it reads as malformed. Android's VpnService
// opens its device with IFF_TUN|IFF_NO_PI.
//
// FromFile uses a duplicate of f's descriptor, as net.FileConn does: f
// stays the caller's to close, and should not be read or written any more
// (the duplicate shares its file status flags, and is made non-blocking).
// The interface's life is the kernel's business: a non-persistent TUN
// interface goes away when its last descriptor is closed, Device.Close
// closing only its own.
//
// mtu bounds the packets WritePackets takes; 0 means the interface's MTU
// as the kernel reports it (DefaultMTU when it cannot be read). The
// interface's settings are left alone: it is the creator's to configure,
// though Configure and AddRoute work as on an Open device when this
// process may use rtnetlink in the device's network namespace (found with
// TUNGETDEVNETNS, so it need not be the caller's; without CAP_NET_ADMIN
// the interface is looked up in the caller's namespace instead, for its
// index and MTU only).
func FromFile(f *os.File, mtu int) (*Device, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, &Error{Op: "adopting " + f.Name(), Err: err}
	}
	fd := -1
	var dupErr error
	if err := rc.Control(func(s uintptr) { fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, &Error{Op: "adopting " + f.Name(), Err: err}
	}
	if dupErr != nil {
		return nil, &Error{Op: "adopting " + f.Name(), Err: fmt.Errorf("dup: %w", dupErr)}
	}
	d, err := FromFD(fd, mtu)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return d, nil
}

// FromFD is FromFile for a bare descriptor, which the Device then owns:
// Close closes it. On error fd is left open, still the caller's.
func FromFD(fd int, mtu int) (*Device, error) {
	op := "adopting file descriptor " + strconv.Itoa(fd)
	if mtu != 0 && (mtu < 68 || mtu > maxPacket) {
		return nil, &Error{Op: op, Err: fmt.Errorf("MTU %d out of range [68, %d]", mtu, maxPacket)}
	}
	var req ifreq
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(unix.TUNGETIFF), uintptr(unsafe.Pointer(&req))); errno != 0 {
		return nil, &Error{Op: op, Err: fmt.Errorf("not an attached TUN device (TUNGETIFF: %w)", errno)}
	}
	name := unix.ByteSliceToString(req.name[:])
	if err := checkFlags(req.flags); err != nil {
		return nil, &Error{Op: op, Name: name, Err: err}
	}

	d := &Device{name: name, readerDone: make(chan struct{}), whole: true}
	if req.flags&unix.IFF_VNET_HDR != 0 {
		// The header's size is the creator's choice (TUNSETVNETHDRSZ):
		// 10 bytes, or 12 with the mergeable-buffers count, which a TUN
		// device leaves 0.
		sz, err := unix.IoctlGetInt(fd, unix.TUNGETVNETHDRSZ)
		if err != nil || sz < vnetHdrLen || sz > 16 {
			return nil, &Error{Op: op, Name: name, Err: fmt.Errorf("the device uses IFF_VNET_HDR with a header of %d bytes (TUNGETVNETHDRSZ: %v); want 10 or 12", sz, err)}
		}
		d.vnet = sz
		d.feat.VnetHdr, d.feat.GSOOut = true, true
		d.feat.Fallback = "adopted: offloads as the creator set them"
	}
	kernelMTU := 0
	d.nl = deviceNetlink(fd)
	if d.nl != nil {
		if l, err := d.nl.LinkByName(name); err == nil {
			d.index = l.Attrs().Index
			kernelMTU = l.Attrs().MTU
		} else {
			d.nl.Close()
			d.nl = nil
		}
	}
	switch {
	case mtu != 0:
		d.mtu = mtu
	case kernelMTU >= 68 && kernelMTU <= maxPacket:
		d.mtu = kernelMTU
	default:
		d.mtu = DefaultMTU
	}

	// Non-blocking, so that os.NewFile puts it in the runtime poller (as
	// Open's descriptor): Read parks a goroutine, not a thread, and Close
	// wakes it.
	if err := unix.SetNonblock(fd, true); err != nil {
		if d.nl != nil {
			d.nl.Close()
		}
		return nil, &Error{Op: op, Name: name, Err: err}
	}
	d.files = []*os.File{os.NewFile(uintptr(fd), DevicePath)}
	d.feat.Queues = 1
	return d, nil
}

// checkFlags accepts the TUNGETIFF flags of a device this package can
// read and write: one IP packet per read(2) and write(2), nothing before
// it but a virtio-net header.
func checkFlags(flags uint16) error {
	switch {
	case flags&unix.IFF_TAP != 0:
		return errors.New("a TAP device (Ethernet frames); synack needs a TUN device (IP packets, IFF_TUN)")
	case flags&unix.IFF_TUN == 0:
		return fmt.Errorf("not a TUN device (flags %#x)", flags)
	case flags&unix.IFF_NO_PI == 0:
		// Seen only with a socket filter attached (see FromFile): the bit
		// is IFF_NOFILTER too, so its absence is proof, its presence not.
		return errors.New("the device was opened without IFF_NO_PI (a 4-byte packet information header before every packet), which this package does not support; open it with IFF_TUN|IFF_NO_PI")
	}
	return nil
}

// deviceNetlink returns an rtnetlink handle in the network namespace of
// the TUN device fd, or nil. TUNGETDEVNETNS (Linux 5.2) names that
// namespace, which may not be the calling thread's when the descriptor was
// passed from elsewhere; it needs CAP_NET_ADMIN there. Without it the
// caller's namespace is the best guess: where an unprivileged VPN app's
// interface lives.
func deviceNetlink(fd int) *netlink.Handle {
	if nsfd, err := unix.IoctlRetInt(fd, unix.TUNGETDEVNETNS); err == nil {
		h, err := netlink.NewHandleAt(netns.NsHandle(nsfd))
		unix.Close(nsfd)
		if err == nil {
			return h
		}
	}
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil
	}
	return h
}

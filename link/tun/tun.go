//go:build linux

// Package tun is a link.Endpoint on a Linux TUN device: the kernel routes IP
// packets to an interface, and the device hands them to synack as bare IPv4
// and IPv6 packets (IFF_TUN | IFF_NO_PI); what synack writes to the device
// enters the kernel as if it had arrived on that interface.
//
// Open creates the interface in the network namespace of the calling
// thread; FromFile and FromFD adopt one opened elsewhere (the descriptor of
// Android's VpnService, one a parent process passed down). Configure gives
// the kernel's side of the link its address, brings the interface up and
// installs the on-link route, all over rtnetlink (no `ip` command). Close
// stops delivery and removes the interface.
//
// Reads and writes are one system call per packet: a TUN device without
// IFF_VNET_HDR offloads carries exactly one packet per read(2) and write(2),
// and this package does not (yet) use the GSO/GRO super-packets that
// IFF_VNET_HDR would allow.
package tun

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/synack/synack/link"
)

// DevicePath is the TUN clone device.
const DevicePath = "/dev/net/tun"

// DefaultMTU is the MTU Open uses when given 0.
const DefaultMTU = 1500

// maxPacket bounds what one read can return: an IP packet is at most 64 KiB.
const maxPacket = 65535

// Errors Open and Configure wrap, for errors.Is. They are also matched by
// errors.Is(err, os.ErrPermission) and errors.Is(err, os.ErrNotExist).
var (
	// ErrPermission: creating a TUN interface or configuring it needs root
	// (CAP_NET_ADMIN in the network namespace).
	ErrPermission = &setupError{msg: "needs root (CAP_NET_ADMIN)", is: os.ErrPermission}
	// ErrNoDevice: /dev/net/tun is missing (no tun driver, or a container
	// started without the device).
	ErrNoDevice = &setupError{msg: DevicePath + " does not exist (no tun driver, or a container without the device)", is: os.ErrNotExist}
)

type setupError struct {
	msg string
	is  error
}

func (e *setupError) Error() string        { return e.msg }
func (e *setupError) Is(target error) bool { return target == e.is }

// Error is what Open, Configure and AddRoute return: the step that failed,
// the interface, and the cause. Its message is one line meant for people,
// for example "tun: creating interface synack0: needs root (CAP_NET_ADMIN)".
type Error struct {
	Op   string // "opening /dev/net/tun", "creating interface", "adding address 198.18.0.1/24" ...
	Name string // interface name, if known
	Err  error  // ErrPermission, ErrNoDevice, or the system's error
}

func (e *Error) Error() string {
	s := "tun: " + e.Op
	if e.Name != "" && e.Op != "" {
		s += " on " + e.Name
	}
	return s + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// wrap turns a system error into an *Error, mapping "no permission" and
// "no such device" to the package's sentinels so callers (and people) get
// one clear reason.
func wrap(op, name string, err error) error {
	switch {
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES):
		err = ErrPermission
	case op == "opening "+DevicePath && (errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENODEV) || errors.Is(err, syscall.ENXIO)):
		err = ErrNoDevice
	}
	return &Error{Op: op, Name: name, Err: err}
}

// Stats counts what a Device moved. Read them with Device.Stats.
type Stats struct {
	RxPackets, RxBytes uint64 // read from the kernel and delivered
	TxPackets, TxBytes uint64 // written to the kernel
	TxErrors           uint64 // packets the kernel refused
}

// Device is a TUN interface used as a link.Endpoint. Its methods are safe
// for concurrent use.
type Device struct {
	name  string
	index int
	mtu   int
	f     *os.File        // non-blocking, in Go's poller: Close wakes Read
	nl    *netlink.Handle // rtnetlink socket in the namespace the device was made in

	attachOnce sync.Once
	closeOnce  sync.Once
	readerDone chan struct{} // closed when the reader goroutine has exited
	state      atomic.Int32  // stateIdle, stateDelivering or stateClosed
	readErr    atomic.Pointer[error]

	rxPackets, rxBytes atomic.Uint64
	txPackets, txBytes atomic.Uint64
	txErrors           atomic.Uint64
}

var _ link.Endpoint = (*Device)(nil)

// Reader states. A delivery starts with the swap idle -> delivering, and
// Close stores closed, so no delivery starts once Close has begun.
const (
	stateIdle int32 = iota
	stateDelivering
	stateClosed
)

// ifreq is struct ifreq as TUNSETIFF reads it: the name, then the flags
// (a short) in the union.
type ifreq struct {
	name  [unix.IFNAMSIZ]byte
	flags uint16
	_     [40 - unix.IFNAMSIZ - 2]byte
}

// Open creates a TUN interface named name (empty: the kernel picks tunN; a
// name with %d is a pattern) in the network namespace of the calling
// thread, sets its MTU (0: DefaultMTU) and returns it down and without
// addresses; call Configure next. The interface lives as long as the
// Device: Close removes it.
//
// Without root it returns an error wrapping ErrPermission, and without
// /dev/net/tun one wrapping ErrNoDevice.
func Open(name string, mtu int) (*Device, error) {
	if mtu == 0 {
		mtu = DefaultMTU
	}
	if mtu < 68 || mtu > maxPacket {
		return nil, &Error{Op: "opening", Name: name, Err: fmt.Errorf("MTU %d out of range [68, %d]", mtu, maxPacket)}
	}
	if len(name) >= unix.IFNAMSIZ {
		return nil, &Error{Op: "opening", Name: name, Err: fmt.Errorf("interface name longer than %d bytes", unix.IFNAMSIZ-1)}
	}

	fd, err := unix.Open(DevicePath, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, wrap("opening "+DevicePath, "", err)
	}
	var req ifreq
	copy(req.name[:], name)
	req.flags = unix.IFF_TUN | unix.IFF_NO_PI
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(unix.TUNSETIFF), uintptr(unsafe.Pointer(&req))); errno != 0 {
		unix.Close(fd)
		if errno == unix.EBUSY {
			return nil, &Error{Op: "creating interface", Name: name, Err: fmt.Errorf("%w (is another program using it?)", errno)}
		}
		return nil, wrap("creating interface", name, errno)
	}
	name = unix.ByteSliceToString(req.name[:])

	// The fd is non-blocking, so os.NewFile puts it in the runtime poller:
	// Read parks the goroutine instead of a thread, and Close wakes it.
	f := os.NewFile(uintptr(fd), DevicePath)
	d := &Device{name: name, mtu: mtu, f: f, readerDone: make(chan struct{})}

	// Netlink sockets belong to the namespace of the thread that makes
	// them; making it here ties configuration to the device's namespace
	// even when Configure is called later from another thread.
	d.nl, err = netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		f.Close()
		return nil, wrap("opening rtnetlink", name, err)
	}
	l, err := d.nl.LinkByName(name)
	if err != nil {
		d.nl.Close()
		f.Close()
		return nil, wrap("looking up interface", name, err)
	}
	d.index = l.Attrs().Index
	if err := d.nl.LinkSetMTU(l, mtu); err != nil {
		d.nl.Close()
		f.Close()
		return nil, wrap(fmt.Sprintf("setting MTU %d", mtu), name, err)
	}
	return d, nil
}

// Name is the interface's name, as the kernel knows it.
func (d *Device) Name() string { return d.name }

// Index is the interface's index in its namespace (0 on an adopted device
// whose interface could not be looked up, see FromFile).
func (d *Device) Index() int { return d.index }

// MTU is the largest packet the device carries.
func (d *Device) MTU() int { return d.mtu }

func (d *Device) link() netlink.Link {
	// The handle's calls need only the index.
	return &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Index: d.index, Name: d.name}}
}

// Configure gives the kernel's side of the link the address hostAddr (IPv4
// or IPv6; the prefix length sets the on-link route the kernel installs,
// so the stack's own address should fall inside it, or be routed with
// AddRoute) and brings the interface up. IPv6 addresses are added with
// IFA_F_NODAD, so they skip duplicate address detection, and Configure
// waits (a few milliseconds) until the kernel has finished setting up IPv6
// on the interface, so the address answers as soon as it returns. Call it
// once per address.
func (d *Device) Configure(hostAddr netip.Prefix) error {
	if !hostAddr.IsValid() {
		return &Error{Op: "configuring", Name: d.name, Err: errors.New("invalid host address")}
	}
	if d.nl == nil {
		return &Error{Op: "configuring", Name: d.name, Err: errNoNetlink}
	}
	hostAddr = netip.PrefixFrom(hostAddr.Addr().Unmap(), hostAddr.Bits())
	a := &netlink.Addr{IPNet: prefixToIPNet(hostAddr)}
	if hostAddr.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	if err := d.nl.AddrAdd(d.link(), a); err != nil && !errors.Is(err, syscall.EEXIST) {
		return wrap("adding address "+hostAddr.String(), d.name, err)
	}
	if err := d.nl.LinkSetUp(d.link()); err != nil {
		return wrap("bringing up", d.name, err)
	}
	if hostAddr.Addr().Is6() {
		return d.waitAddrReady(hostAddr.Addr())
	}
	return nil
}

// waitAddrReady waits until the kernel has finished bringing up IPv6 on
// the interface. Even with IFA_F_NODAD an address stays tentative until
// the kernel's address-configuration work runs after the link comes up,
// and until the link-local address is through that too, packets from the
// stack may still be dropped: without this wait the first SYN can be lost
// and cost a one-second retransmission. It gives up after a few seconds,
// with an error only if a itself is not ready.
func (d *Device) waitAddrReady(a netip.Addr) error {
	const limit = 5 * time.Second
	start := time.Now()
	for delay := 100 * time.Microsecond; ; delay = min(2*delay, 20*time.Millisecond) {
		addrs, err := d.nl.AddrList(d.link(), netlink.FAMILY_V6)
		if err != nil {
			return wrap("listing addresses", d.name, err)
		}
		ready, others := false, true
		for _, x := range addrs {
			y, _ := netip.AddrFromSlice(x.IP)
			tentative := x.Flags&unix.IFA_F_TENTATIVE != 0
			if y == a {
				ready = !tentative
			} else if tentative {
				others = false
			}
		}
		if ready && others {
			return nil
		}
		if time.Since(start) > limit {
			if ready {
				return nil
			}
			return &Error{Op: "configuring " + a.String(), Name: d.name, Err: fmt.Errorf("address still tentative after %v", limit)}
		}
		time.Sleep(delay)
	}
}

// AddRoute routes dst to the interface (on-link, no gateway), for stack
// addresses outside the prefix given to Configure. The interface must be
// up.
func (d *Device) AddRoute(dst netip.Prefix) error {
	dst = dst.Masked()
	if d.nl == nil {
		return &Error{Op: "adding route " + dst.String(), Name: d.name, Err: errNoNetlink}
	}
	r := &netlink.Route{LinkIndex: d.index, Dst: prefixToIPNet(dst), Scope: netlink.SCOPE_LINK}
	if err := d.nl.RouteAdd(r); err != nil && !errors.Is(err, syscall.EEXIST) {
		return wrap("adding route "+dst.String(), d.name, err)
	}
	return nil
}

// Netlink returns the rtnetlink handle of the device's namespace, for
// configuration this package does not offer (qdiscs in tests, say). It is
// closed by Close. It is nil on a device adopted (FromFile, FromFD) in a
// namespace this process cannot reach over rtnetlink.
func (d *Device) Netlink() *netlink.Handle { return d.nl }

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	a := p.Addr()
	return &net.IPNet{IP: net.IP(a.AsSlice()), Mask: net.CIDRMask(p.Bits(), a.BitLen())}
}

// Attach starts the reader goroutine, which delivers every packet the
// kernel routes to the interface to disp, one at a time, from one reusable
// buffer (disp copies what it keeps). Only the first call has an effect.
func (d *Device) Attach(disp link.Dispatcher) {
	d.attachOnce.Do(func() { go d.read(disp) })
}

func (d *Device) read(disp link.Dispatcher) {
	defer close(d.readerDone)
	buf := make([]byte, maxPacket)
	for {
		n, err := d.f.Read(buf)
		if err != nil {
			if d.state.Load() != stateClosed && !errors.Is(err, os.ErrClosed) {
				// Unexpected (the fd is never read elsewhere). Keep the
				// reason for Err; delivery ends.
				e := error(&Error{Op: "reading", Name: d.name, Err: err})
				d.readErr.Store(&e)
			}
			return
		}
		if n == 0 {
			continue
		}
		if !d.state.CompareAndSwap(stateIdle, stateDelivering) {
			return // closed
		}
		d.rxPackets.Add(1)
		d.rxBytes.Add(uint64(n))
		disp.DeliverPacket(buf[:n])
		if !d.state.CompareAndSwap(stateDelivering, stateIdle) {
			return // closed during the delivery
		}
	}
}

// WritePackets writes each packet to the kernel, one write(2) per packet,
// and returns how many were taken. It stops at the first packet refused
// (larger than the MTU, or rejected by the kernel) and says why; after
// Close it returns net.ErrClosed. The kernel copies the packet during the
// write, so pkts may be reused at once; the write never waits for the
// stack's reader.
func (d *Device) WritePackets(pkts [][]byte) (int, error) {
	for i, p := range pkts {
		if len(p) > d.mtu {
			d.txErrors.Add(1)
			return i, fmt.Errorf("tun: %s: packet of %d bytes exceeds MTU %d", d.name, len(p), d.mtu)
		}
		if _, err := d.f.Write(p); err != nil {
			if errors.Is(err, os.ErrClosed) {
				return i, net.ErrClosed
			}
			d.txErrors.Add(1)
			return i, &Error{Op: "writing", Name: d.name, Err: err}
		}
		d.txPackets.Add(1)
		d.txBytes.Add(uint64(len(p)))
	}
	return len(pkts), nil
}

// Close stops delivery and removes the interface with its addresses and
// routes (the kernel unregisters a non-persistent TUN interface when its
// file is closed, which Close waits for; on an adopted device, when the
// last descriptor of it is closed, which may not be Close's). It does not wait for a
// DeliverPacket call in progress, so it is safe inside one; Done says when
// the reader goroutine has gone. After Close returns no new delivery
// starts. It is safe to call more than once.
func (d *Device) Close() error {
	var err error
	d.closeOnce.Do(func() {
		d.state.Store(stateClosed)
		// Closing the file wakes the reader parked in the poller; the last
		// reference to a non-persistent TUN going away unregisters the
		// interface in the kernel.
		// Close waits for the close(2), which happens once a Read in
		// progress has returned.
		err = d.f.Close()
		// Never attached: no reader will close readerDone.
		d.attachOnce.Do(func() { close(d.readerDone) })
		if d.nl != nil {
			d.nl.Close()
		}
	})
	return err
}

// Done is closed once the reader goroutine has exited after Close (or
// after a read error, see Err). Close does not wait for it, because it may
// be called from inside DeliverPacket.
func (d *Device) Done() <-chan struct{} { return d.readerDone }

// Err reports why delivery stopped early, if a read failed for any reason
// other than Close.
func (d *Device) Err() error {
	if p := d.readErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Stats returns the device's counters.
func (d *Device) Stats() Stats {
	return Stats{
		RxPackets: d.rxPackets.Load(), RxBytes: d.rxBytes.Load(),
		TxPackets: d.txPackets.Load(), TxBytes: d.txBytes.Load(),
		TxErrors: d.txErrors.Load(),
	}
}

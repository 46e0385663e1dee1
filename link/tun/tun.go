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
// Each queue's reader reads every packet the kernel has ready before it
// hands the batch over (link.BatchDispatcher), so a busy device costs one
// wakeup and one stack lock per batch, not per packet. OpenOptions adds
// the kernel's offloads (IFF_VNET_HDR and TUNSETOFFLOAD: a virtio-net
// header before every packet): the kernel then sends TCP super-segments of
// up to 64 KiB (TSO) with checksums left partial, which reach a stack that
// takes vouched packets (link.ChecksumVouching) whole, or are split into
// MTU-sized segments for anything else; and the stack's consecutive
// segments of a flow leave as one GSO super-packet that the kernel cuts up.
// A large packet (a whole super-segment, or any packet at MTU 65535) is
// lent to a dispatcher that takes loans (link.LoanDispatcher, lend.go): the
// stack keeps its bytes in the buffer they were read into, instead of
// copying them, and the reader reads on into buffers from a pool.
// IFF_MULTI_QUEUE gives each queue its own reader, and the transmit queue
// is lengthened so a burst (a SYN flood) queues instead of dropping the
// legitimate SYNs in it.
package tun

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
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
	RxPackets, RxBytes uint64 // delivered to the dispatcher (segments, after splitting)
	TxPackets, TxBytes uint64 // written to the kernel (the stack's packets, before joining)
	TxErrors           uint64 // packets the kernel refused

	RxReads   uint64 // read(2) calls that returned a packet
	RxBatches uint64 // batches handed to the dispatcher
	RxGSO     uint64 // GSO super-packets (TSO, USO) from the kernel, split into RxGSOSegs segments
	RxGSOSegs uint64
	RxCsum    uint64 // packets whose partial checksum was completed here (NEEDS_CSUM, no vouching)
	RxVouched uint64 // packets delivered with the link vouching for their checksum
	RxDropped uint64 // reads with a virtio-net header this package could not use
	TxGSO     uint64 // super-packets written, carrying TxGSOSegs of the stack's segments
	TxGSOSegs uint64
	TxTSO     uint64 // of TxGSO, the stack's own super-segments (Features.TSOOut), not segments joined here
	TxWrites  uint64 // write(2) calls

	// RxLent counts packets whose read buffer the dispatcher kept (a
	// link.Loan, lend.go: the stack holds a large segment's bytes where
	// they were read instead of copying them); RxBufsMade the read
	// buffers allocated: each reader's first ones, and those made
	// because none lent had come back.
	RxLent, RxBufsMade uint64
}

// Options configures OpenOptions. The zero value is what Open does: one
// queue, no offloads.
type Options struct {
	// MTU of the interface; 0 means DefaultMTU.
	MTU int
	// Offload opens the device with IFF_VNET_HDR and asks the kernel
	// (TUNSETOFFLOAD) for checksum offload, TSO for IPv4 and IPv6 (with
	// ECN) and, where the kernel has it, USO: the kernel then hands over
	// TCP super-segments of up to 64 KiB, which the device splits into
	// MTU-sized segments, and takes the stack's consecutive segments of a
	// flow as one GSO super-packet. A kernel that refuses a feature gets
	// the next smaller set; Features says what is on.
	Offload bool
	// Queues is the number of queues (IFF_MULTI_QUEUE), each with its own
	// reader goroutine; 0 or 1 means one queue without IFF_MULTI_QUEUE.
	Queues int
	// SplitGSO makes the device always split the kernel's TCP
	// super-segments into MTU-sized segments. By default a super-segment
	// goes to a dispatcher that takes vouched packets
	// (link.ChecksumVouching) whole, as one IP packet of up to 64 KiB
	// (larger than the MTU: one segment through the stack instead of
	// dozens, and no copy; 3x the throughput of splitting, measured in
	// BENCHMARKS.md), and is split only for other dispatchers (a capture
	// tap between device and stack, say).
	SplitGSO bool
	// TxQueueLen is the interface's transmit queue length: the packets the
	// kernel holds for the device before dropping (the kernel's TUN default
	// is 500, which a SYN flood overflows before the reader sees the
	// legitimate SYNs). 0 means DefaultTxQueueLen; negative leaves the
	// kernel's value.
	TxQueueLen int
	// NoTSOOut keeps the stack's segments at most one MSS each even where
	// the device could take super-segments (link.SegmentOffloader, TSO
	// out): the fallback, for comparison. The device still joins the
	// stack's consecutive segments (GSOOut).
	NoTSOOut bool
	// NoUring turns off the batching of reads and writes through
	// io_uring (uring.go): every packet is then one read(2) or
	// write(2), as without io_uring in the kernel. The batching costs
	// less CPU per packet when packets come in bursts (BENCHMARKS.md,
	// "io_uring on TUN: the lost TIME-WAIT"). It was off by default for
	// a while: its reads used to wait in the ring and be cancelled at
	// the end of a batch, and one could escape the cancel and hold the
	// batch, with a packet already read, until the kernel sent another
	// (interop's TestShortConnections lost a kernel TIME-WAIT in about
	// one run of three); they no longer wait (RWF_NOWAIT).
	NoUring bool
}

// DefaultTxQueueLen is the transmit queue length OpenOptions sets when
// Options.TxQueueLen is 0.
const DefaultTxQueueLen = 10000

// Features says what a Device negotiated with the kernel.
type Features struct {
	VnetHdr bool // IFF_VNET_HDR: a virtio-net header before every packet
	// Offloads the kernel accepted (TUNSETOFFLOAD); all false without
	// VnetHdr. An adopted device (FromFile) reports what it saw
	// requested: none, since its creator's settings cannot be read.
	Csum, TSO4, TSO6, TSOECN, USO4, USO6 bool
	// GSOOut: the device joins the stack's segments into GSO
	// super-packets (needs VnetHdr only: the kernel always takes them).
	GSOOut bool
	// TSOOut: the device takes the stack's TCP super-segments
	// (link.SegmentOffloader) and hands them to the kernel as GSO packets
	// with the checksum left partial: the kernel accepted TSO, and
	// Options.NoTSOOut is unset.
	TSOOut bool
	// WholeIn: TCP super-segments reach a dispatcher that takes vouched
	// packets whole (Options.SplitGSO unset, TSO on).
	WholeIn    bool
	Queues     int
	TxQueueLen int    // 0: not set by this package
	Uring      bool   // reads and writes batched through io_uring (Options.NoUring unset, the kernel has it)
	Fallback   string // why a requested feature is off ("" when all are on)
}

// String is the list for a ready line: "offloads csum tso4 tso6 tso-ecn
// uso4 uso6 tso-whole gso-out, 2 queues, txqueuelen 10000".
func (f Features) String() string {
	var on []string
	for _, x := range []struct {
		ok   bool
		name string
	}{{f.Csum, "csum"}, {f.TSO4, "tso4"}, {f.TSO6, "tso6"}, {f.TSOECN, "tso-ecn"}, {f.USO4, "uso4"}, {f.USO6, "uso6"}, {f.WholeIn, "tso-whole"}, {f.GSOOut, "gso-out"}, {f.TSOOut, "tso-out"}} {
		if x.ok {
			on = append(on, x.name)
		}
	}
	s := "offloads off"
	switch {
	case len(on) > 0:
		s = "offloads " + strings.Join(on, " ")
	case f.VnetHdr:
		s = "vnet header, no offloads"
	}
	if f.Fallback != "" {
		s += " (" + f.Fallback + ")"
	}
	q := "queue"
	if f.Queues != 1 {
		q = "queues"
	}
	s += fmt.Sprintf(", %d %s", f.Queues, q)
	if f.TxQueueLen > 0 {
		s += fmt.Sprintf(", txqueuelen %d", f.TxQueueLen)
	}
	if f.Uring {
		s += ", io_uring"
	}
	return s
}

// Device is a TUN interface used as a link.Endpoint. Its methods are safe
// for concurrent use.
type Device struct {
	name  string
	index int
	mtu   int
	files []*os.File      // one per queue; non-blocking, in Go's poller: Close wakes the readers
	nl    *netlink.Handle // rtnetlink socket in the namespace the device was made in
	vnet  int             // virtio-net header length; 0 without IFF_VNET_HDR
	feat  Features
	whole bool // !Options.SplitGSO

	attachOnce sync.Once
	closeOnce  sync.Once
	readers    sync.WaitGroup
	readerDone chan struct{} // closed when every reader goroutine has exited
	deliverMu  sync.Mutex    // one delivery at a time across queues (the Dispatcher contract)
	state      atomic.Int32  // stateIdle, stateDelivering or stateClosed
	readErr    atomic.Pointer[error]
	pool       *rxPool // the readers' buffers (lend.go); made by Attach

	txMu  sync.Mutex // guards txBuf and txRing's batch
	txBuf []byte     // a packet or super-packet with its virtio-net header
	uring bool       // batch reads and writes through io_uring rings
	tx    txBatch    // the writes of one ring batch (tx.go)

	partsMu   sync.Mutex // guards the buffers of WritePacketParts
	gatherBuf []byte     // WritePacketParts: complete packets gathered from their parts
	gathered  [][]byte
	superHdr  []byte // a super-segment's virtio-net, IP and TCP headers
	superIov  [][]byte

	rxPackets, rxBytes atomic.Uint64
	txPackets, txBytes atomic.Uint64
	txErrors           atomic.Uint64
	rxReads, rxBatches atomic.Uint64
	rxGSO, rxGSOSegs   atomic.Uint64
	rxCsum, rxVouched  atomic.Uint64
	rxDropped          atomic.Uint64
	rxLent             atomic.Uint64
	txGSO, txGSOSegs   atomic.Uint64
	txTSO              atomic.Uint64
	txWrites           atomic.Uint64
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
// Device: Close removes it. It is OpenOptions with Options{MTU: mtu}.
//
// Without root it returns an error wrapping ErrPermission, and without
// /dev/net/tun one wrapping ErrNoDevice.
func Open(name string, mtu int) (*Device, error) {
	return OpenOptions(name, Options{MTU: mtu})
}

// setOffload is TUNSETOFFLOAD; tests replace it to make the kernel refuse.
var setOffload = func(fd int, flags int) error {
	return unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, flags)
}

// OpenOptions is Open with offloads, queues and a transmit queue length
// (see Options). Where the kernel refuses IFF_VNET_HDR or an offload, the
// device falls back to what it accepts; Features says what is on.
func OpenOptions(name string, o Options) (*Device, error) {
	mtu := o.MTU
	if mtu == 0 {
		mtu = DefaultMTU
	}
	if mtu < 68 || mtu > maxPacket {
		return nil, &Error{Op: "opening", Name: name, Err: fmt.Errorf("MTU %d out of range [68, %d]", mtu, maxPacket)}
	}
	if len(name) >= unix.IFNAMSIZ {
		return nil, &Error{Op: "opening", Name: name, Err: fmt.Errorf("interface name longer than %d bytes", unix.IFNAMSIZ-1)}
	}
	queues := max(o.Queues, 1)
	if queues > 256 {
		return nil, &Error{Op: "opening", Name: name, Err: fmt.Errorf("%d queues: the kernel allows at most 256", queues)}
	}
	d := &Device{mtu: mtu, readerDone: make(chan struct{}), whole: !o.SplitGSO}
	d.feat.Queues = queues
	flags := uint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if queues > 1 {
		flags |= unix.IFF_MULTI_QUEUE
	}
	if o.Offload {
		flags |= unix.IFF_VNET_HDR
	}
	fail := func(err error) (*Device, error) {
		for _, f := range d.files {
			f.Close()
		}
		if d.nl != nil {
			d.nl.Close()
		}
		return nil, err
	}
	for q := 0; q < queues; q++ {
		fd, err := openQueue(&name, flags)
		if err != nil && q == 0 && flags&unix.IFF_VNET_HDR != 0 && errors.Is(err, unix.EINVAL) {
			// A kernel without IFF_VNET_HDR for TUN: no offloads.
			flags &^= unix.IFF_VNET_HDR
			d.feat.Fallback = "kernel refused IFF_VNET_HDR"
			fd, err = openQueue(&name, flags)
		}
		if err != nil {
			return fail(err)
		}
		if q == 0 && flags&unix.IFF_VNET_HDR != 0 {
			// Before os.NewFile: the raw fd, never File.Fd (which would
			// make the file blocking).
			d.negotiateOffloads(fd)
		}
		// The fd is non-blocking, so os.NewFile puts it in the runtime
		// poller: a read parks the goroutine instead of a thread, and
		// Close wakes it.
		d.files = append(d.files, os.NewFile(uintptr(fd), DevicePath))
	}
	d.name = name
	if flags&unix.IFF_VNET_HDR != 0 {
		d.vnet = vnetHdrLen
		d.feat.VnetHdr, d.feat.GSOOut = true, true
		d.feat.WholeIn = d.whole && (d.feat.TSO4 || d.feat.TSO6)
		d.feat.TSOOut = !o.NoTSOOut && (d.feat.TSO4 || d.feat.TSO6)
	}

	// Netlink sockets belong to the namespace of the thread that makes
	// them; making it here ties configuration to the device's namespace
	// even when Configure is called later from another thread.
	var err error
	d.nl, err = netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return fail(wrap("opening rtnetlink", name, err))
	}
	l, err := d.nl.LinkByName(name)
	if err != nil {
		return fail(wrap("looking up interface", name, err))
	}
	d.index = l.Attrs().Index
	if err := d.nl.LinkSetMTU(l, mtu); err != nil {
		return fail(wrap(fmt.Sprintf("setting MTU %d", mtu), name, err))
	}
	if qlen := o.TxQueueLen; qlen >= 0 {
		if qlen == 0 {
			qlen = DefaultTxQueueLen
		}
		if err := d.nl.LinkSetTxQLen(l, qlen); err != nil {
			return fail(wrap(fmt.Sprintf("setting txqueuelen %d", qlen), name, err))
		}
		d.feat.TxQueueLen = qlen
	}
	if !o.NoUring {
		d.startUring()
	}
	return d, nil
}

// openQueue opens /dev/net/tun and attaches it to the interface *name
// (creating it for the first queue), storing the name the kernel chose.
func openQueue(name *string, flags uint16) (int, error) {
	fd, err := unix.Open(DevicePath, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, wrap("opening "+DevicePath, "", err)
	}
	var req ifreq
	copy(req.name[:], *name)
	req.flags = flags
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(unix.TUNSETIFF), uintptr(unsafe.Pointer(&req))); errno != 0 {
		unix.Close(fd)
		if errno == unix.EBUSY {
			return -1, &Error{Op: "creating interface", Name: *name, Err: fmt.Errorf("%w (is another program using it?)", errno)}
		}
		if errno == unix.EINVAL {
			return -1, &Error{Op: "creating interface", Name: *name, Err: errno}
		}
		return -1, wrap("creating interface", *name, errno)
	}
	*name = unix.ByteSliceToString(req.name[:])
	return fd, nil
}

// offloadSets are the TUNSETOFFLOAD requests tried in turn: everything,
// then without USO (Linux before 6.2), then checksums and TSO without ECN,
// then checksums only. TUN_F_CSUM is what lets the kernel leave checksums
// partial; the TSO flags let it hand over super-segments.
var offloadSets = []struct {
	flags int
	why   string
}{
	{unix.TUN_F_CSUM | unix.TUN_F_TSO4 | unix.TUN_F_TSO6 | unix.TUN_F_TSO_ECN | unix.TUN_F_USO4 | unix.TUN_F_USO6, ""},
	{unix.TUN_F_CSUM | unix.TUN_F_TSO4 | unix.TUN_F_TSO6 | unix.TUN_F_TSO_ECN, "kernel refused USO"},
	{unix.TUN_F_CSUM | unix.TUN_F_TSO4 | unix.TUN_F_TSO6, "kernel refused USO and TSO-ECN"},
	{unix.TUN_F_CSUM, "kernel refused TSO"},
}

// negotiateOffloads sets the largest offload set the kernel takes, on
// the first queue's descriptor (the setting is the interface's, shared by
// its queues).
func (d *Device) negotiateOffloads(fd int) {
	for _, s := range offloadSets {
		if setOffload(fd, s.flags) == nil {
			d.feat.Csum = true
			d.feat.TSO4 = s.flags&unix.TUN_F_TSO4 != 0
			d.feat.TSO6 = s.flags&unix.TUN_F_TSO6 != 0
			d.feat.TSOECN = s.flags&unix.TUN_F_TSO_ECN != 0
			d.feat.USO4 = s.flags&unix.TUN_F_USO4 != 0
			d.feat.USO6 = s.flags&unix.TUN_F_USO6 != 0
			d.feat.Fallback = s.why
			return
		}
	}
	d.feat.Fallback = "kernel refused TUNSETOFFLOAD"
}

// Features says what the device negotiated with the kernel.
func (d *Device) Features() Features { return d.feat }

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

// Attach starts one reader goroutine per queue. Each reads every packet
// the kernel has ready (until the device would block, or a batch is full),
// splits GSO super-packets, completes partial checksums, and hands the
// batch to disp in one DeliverPackets call when disp is a
// link.BatchDispatcher (one DeliverPacket call per packet otherwise). The
// packets live in the reader's buffers: disp copies what it keeps, or,
// when it is a link.LoanDispatcher, may keep a large packet's buffer (a
// loan) until it releases it, and the reader reads into another (lend.go).
// Deliveries from different queues never overlap. Only the first call has
// an effect.
func (d *Device) Attach(disp link.Dispatcher) {
	d.attachOnce.Do(func() {
		size, n := d.readBufs()
		d.pool = newRxPool(size, 2*n*len(d.files))
		d.readers.Add(len(d.files))
		for _, f := range d.files {
			go d.read(f, disp)
		}
		go func() {
			d.readers.Wait()
			close(d.readerDone)
		}()
	})
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
		for _, f := range d.files {
			if e := f.Close(); err == nil {
				err = e
			}
		}
		// Never attached: no reader will close readerDone.
		d.attachOnce.Do(func() { close(d.readerDone) })
		if d.nl != nil {
			d.nl.Close()
		}
		d.stopUring()
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
		RxReads:  d.rxReads.Load(), RxBatches: d.rxBatches.Load(),
		RxGSO: d.rxGSO.Load(), RxGSOSegs: d.rxGSOSegs.Load(),
		RxCsum: d.rxCsum.Load(), RxVouched: d.rxVouched.Load(),
		RxDropped: d.rxDropped.Load(),
		TxGSO:     d.txGSO.Load(), TxGSOSegs: d.txGSOSegs.Load(), TxTSO: d.txTSO.Load(),
		TxWrites: d.txWrites.Load(),
		RxLent:   d.rxLent.Load(), RxBufsMade: d.pool.madeCount(),
	}
}

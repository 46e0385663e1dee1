// Package netstack puts a synack stack behind a wireguard-go tun.Device,
// in the shape of golang.zx2c4.com/wireguard/tun/netstack (which puts
// gVisor's there): CreateNetTUN gives the tun.Device to hand to
// device.NewDevice and a *Net whose Dial, Listen and Lookup methods have
// the same names and arguments. A program written against wireguard-go's
// package moves to this one by changing its import:
//
//	import "github.com/synack/synack/contrib/wireguard/netstack"
//
// The connections are synack's: *stack.TCPConn, *stack.Listener and
// *stack.UDPConn where wireguard-go's package returns gonet's types, with
// the errors of Go's net package (errors.Is(err, syscall.ECONNREFUSED)
// and the rest work).
package netstack

import (
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/synack/synack/link"
	"github.com/synack/synack/stack"
	"golang.zx2c4.com/wireguard/tun"
)

// batchSize is what the device reports as BatchSize: wireguard-go reads
// and writes up to this many packets per call (its conn.IdealBatchSize).
const batchSize = 128

// queueLen bounds each direction's queue, in packets. Towards WireGuard a
// full queue refuses what the stack sends, which the stack drops and
// counts (Counters().IP.OutDiscards), as a full NIC queue drops: a link
// must never block the stack (link.Endpoint). Towards the stack a full
// queue makes WireGuard's Write wait. gVisor's channel endpoint in
// wireguard-go's package holds 1024 too.
const queueLen = 1024

// device is both ends of the pipe between the stack and WireGuard. The
// stack's link.Endpoint puts what the stack sends on out, which the
// tun.Device's Read takes; the tun.Device's Write puts what WireGuard
// decrypted on in, which a goroutine of the device delivers to the
// stack in batches. That goroutine, rather than WireGuard's writer,
// does the stack's work on receive, so WireGuard's per-peer receiver is
// never held on the stack's lock (while a reader holds it) and both
// cores can be busy, as with gVisor, whose Write hands packets to its
// own goroutines too.
type device struct {
	s      *stack.Stack
	mtu    int
	events chan tun.Event

	out, in *pktQueue
	disp    atomic.Pointer[link.Dispatcher] // nil until Attach and after Close
	done    chan struct{}                   // closed when the delivering goroutine ends

	closeOnce sync.Once
}

// endpoint is the device as the stack's link. It is a type of its own
// because link.Endpoint's MTU and tun.Device's differ in their results.
type endpoint struct{ d *device }

var (
	_ tun.Device    = (*device)(nil)
	_ link.Endpoint = endpoint{}
)

// CreateNetTUN makes a synack stack with localAddresses (each as a
// single address, /32 or /128) on a link of mtu bytes whose far side is
// the returned tun.Device, with default routes of each family it has an
// address of into that link. dnsServers (port 53) are where Net's
// LookupHost and the names given to Dial go. The device sends EventUp
// once.
func CreateNetTUN(localAddresses, dnsServers []netip.Addr, mtu int) (tun.Device, *Net, error) {
	return CreateNetTUNWithOptions(localAddresses, dnsServers, mtu, stack.Options{})
}

// Buffer bounds of the stack CreateNetTUN makes, larger than synack's
// defaults (1 MiB) because of where the stack sits: the round trip
// through wireguard-go includes its queues (encryption, decryption, the
// UDP socket), which hold tens of milliseconds of data on a busy host,
// so a 1 MiB window caps a connection at 1 MiB per such round trip
// (measured: the window was the limit, BENCHMARKS.md). These are the
// maxima of Linux's tcp_rmem and tcp_wmem; memory is taken only as it is
// used, and the receive window grows to the bound only as the
// application keeps up (auto-tuning).
const (
	tunReceiveBuffer = 6 << 20
	tunSendBuffer    = 4 << 20
)

// CreateNetTUNWithOptions is CreateNetTUN with the stack made from opts
// (buffer sizes, congestion control, a virtual clock ...). Zero buffer
// sizes in opts.TCP take this package's defaults (tunReceiveBuffer,
// tunSendBuffer), not the stack's.
func CreateNetTUNWithOptions(localAddresses, dnsServers []netip.Addr, mtu int, opts stack.Options) (tun.Device, *Net, error) {
	if opts.TCP.ReceiveBufferSize == 0 {
		opts.TCP.ReceiveBufferSize = tunReceiveBuffer
	}
	if opts.TCP.SendBufferSize == 0 {
		opts.TCP.SendBufferSize = tunSendBuffer
	}
	d := &device{
		mtu: mtu, events: make(chan tun.Event, 1),
		out: newPktQueue(queueLen, mtu), in: newPktQueue(queueLen, mtu),
		done: make(chan struct{}),
	}
	s := stack.New(opts)
	var prefixes []netip.Prefix
	var has4, has6 bool
	for _, a := range localAddresses {
		a = a.Unmap()
		prefixes = append(prefixes, netip.PrefixFrom(a, a.BitLen()))
		has4 = has4 || a.Is4()
		has6 = has6 || a.Is6()
	}
	id, err := s.AddLink(endpoint{d}, prefixes...)
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	if has4 {
		if err := s.AddRoute(netip.PrefixFrom(netip.IPv4Unspecified(), 0), netip.Addr{}, id); err != nil {
			s.Close()
			return nil, nil, err
		}
	}
	if has6 {
		if err := s.AddRoute(netip.PrefixFrom(netip.IPv6Unspecified(), 0), netip.Addr{}, id); err != nil {
			s.Close()
			return nil, nil, err
		}
	}
	d.s = s
	go d.deliver()
	var servers []netip.AddrPort
	for _, a := range dnsServers {
		servers = append(servers, netip.AddrPortFrom(a, 53))
	}
	n := &Net{s: s, has4: has4, has6: has6, resolver: s.Resolver(servers)}
	d.events <- tun.EventUp
	return d, n, nil
}

// Stack returns the synack stack behind the device, for what Net does
// not offer (counters, events, options).
func (n *Net) Stack() *stack.Stack { return n.s }

// link.Endpoint: the stack's side.

// MTU is the largest packet the stack may send.
func (e endpoint) MTU() int { return e.d.mtu }

// Attach sets the receiver of what WireGuard writes.
func (e endpoint) Attach(disp link.Dispatcher) { e.d.disp.Store(&disp) }

// Close is called by the stack's Close: Read ends, Write refuses.
func (e endpoint) Close() error {
	e.d.closeLink()
	return nil
}

// WritePackets queues the stack's packets for Read, copying them; it
// refuses (ENOBUFS) the first that finds the queue full.
func (e endpoint) WritePackets(pkts [][]byte) (int, error) { return e.d.out.put(pkts, false) }

// deliver hands what Write queued to the stack, a batch at a time, until
// the device closes.
func (d *device) deliver() {
	defer close(d.done)
	batch := make([][]byte, 0, batchSize)
	for {
		var ok bool
		batch, ok = d.in.take(batch[:0], batchSize)
		if !ok {
			return
		}
		if dp := d.disp.Load(); dp != nil {
			if bd, isBatch := (*dp).(link.BatchDispatcher); isBatch && len(batch) > 1 {
				bd.DeliverPackets(batch)
			} else {
				for _, p := range batch {
					(*dp).DeliverPacket(p)
				}
			}
		}
		d.in.release(batch)
	}
}

// closeLink stops both directions. It takes no lock a delivery holds, so
// the stack may close its links from inside one (link.Endpoint).
func (d *device) closeLink() {
	d.disp.Store(nil)
	d.out.close()
	d.in.close()
}

// tun.Device: WireGuard's side.

// File returns nil: there is no file descriptor behind the device.
func (d *device) File() *os.File { return nil }

// Name returns "go", as wireguard-go's netstack device does.
func (d *device) Name() (string, error) { return "go", nil }

// Events delivers EventUp once; it is closed by Close.
func (d *device) Events() <-chan tun.Event { return d.events }

// BatchSize is the most packets Read returns and Write is given at once.
func (d *device) BatchSize() int { return batchSize }

// Read waits for the stack to send and moves up to len(bufs) packets
// into bufs[i][offset:], their lengths into sizes. A packet that does not
// fit its buffer is dropped. It returns os.ErrClosed once the device is
// closed.
func (d *device) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	var scratch [batchSize][]byte
	pkts, ok := d.out.take(scratch[:0], min(len(bufs), batchSize))
	if !ok {
		return 0, os.ErrClosed
	}
	n := 0
	for _, p := range pkts {
		if offset+len(p) <= len(bufs[n]) {
			sizes[n] = copy(bufs[n][offset:], p)
			n++
		}
	}
	d.out.release(pkts)
	return n, nil
}

// Write queues the packets bufs[i][offset:] for the stack, copying them,
// and waits while the queue is full. Empty ones are skipped; one that
// is not IPv4 or IPv6 ends the call with EAFNOSUPPORT after the packets
// before it were queued, as wireguard-go's netstack device does.
func (d *device) Write(bufs [][]byte, offset int) (int, error) {
	var scratch [batchSize][]byte
	pkts := scratch[:0]
	var err error
	for _, b := range bufs {
		if len(b) <= offset {
			continue
		}
		p := b[offset:]
		if v := p[0] >> 4; v != 4 && v != 6 {
			err = syscall.EAFNOSUPPORT
			break
		}
		pkts = append(pkts, p)
	}
	if _, qerr := d.in.put(pkts, true); qerr != nil {
		return 0, qerr
	}
	if err != nil {
		return 0, err
	}
	return len(bufs), nil
}

// MTU returns the MTU given to CreateNetTUN.
func (d *device) MTU() (int, error) { return d.mtu, nil }

// Close closes the stack (every connection aborted, blocked calls
// ended), ends Read and closes the Events channel.
func (d *device) Close() error {
	d.closeOnce.Do(func() {
		d.s.Close()
		d.closeLink()
		<-d.done
		close(d.events)
	})
	return nil
}

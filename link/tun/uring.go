//go:build linux

package tun

import (
	"errors"
	"net"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Batched system calls through io_uring. A TUN file gives one packet per
// read(2) and takes one per write(2), and on a VM with page-table
// isolation a system call costs more than the work it carries (about
// 1.2 µs for an empty one on the machine of BENCHMARKS.md): under a SYN
// flood a reader paid two calls per SYN, one read and one write of the
// SYN,ACK, plus the read that found the queue empty. An io_uring ring
// carries many reads, or many writes, in one io_uring_enter(2).
//
// The use is deliberately narrow: every call submits a batch and waits
// for all of it, so no request outlives the call and no buffer is in the
// kernel's hands between calls. A write to a TUN device never waits (its
// socket has no send limit), and neither does a read: each is asked with
// RWF_NOWAIT, so one that finds the queue empty completes at once with
// EAGAIN instead of waiting in the ring. Waiting for packets stays with
// Go's poller (the reader parks in RawConn.Read when a batch read
// nothing), and each batch runs inside the file's RawConn callback, so
// Close cannot close the descriptor under a batch in flight.
//
// Reads used to wait in the ring (io_uring parks a read that finds
// nothing on the file's poll) and the batch ended with a cancel of every
// read of the file still waiting. That cancel is a single sweep over the
// reads parked at that moment, and it missed one: a read that found the
// queue empty, then found it ready when it came to park (a packet had
// just arrived) is queued to be tried again rather than parked; the next
// read takes the packet, the sweep runs, and the retried read finds the
// queue empty and parks, after the sweep, with nothing left to cancel
// it. The batch then waited for the next packet the kernel sent, holding
// the packet it had read: in interop's TestShortConnections the kernel's
// last ACK came 200 ms late, with its answer to synack's retransmitted
// FIN, and synack, CLOSED by the first, answered the second with a RST
// that ended the kernel's TIME-WAIT (TestRingReadsQuietDevice).

// The ABI of io_uring (include/uapi/linux/io_uring.h), the parts used.
const (
	uringOpWritev = 2
	uringOpRead   = 22

	uringSQELink = 1 << 2 // IOSQE_IO_LINK

	uringOffSQRing = 0
	uringOffCQRing = 0x8000000
	uringOffSQEs   = 0x10000000

	uringFeatSingleMmap = 1 << 0
	uringEnterGetEvents = 1 << 0

	uringSetupSubmitAll = 1 << 7 // keep submitting past a request that fails at submission
)

type uringSQOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type uringCQOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

type uringParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFd uint32
	resv                                                                   [3]uint32
	sqOff                                                                  uringSQOffsets
	cqOff                                                                  uringCQOffsets
}

// uringSQE is struct io_uring_sqe (64 bytes).
type uringSQE struct {
	opcode      uint8
	flags       uint8
	ioprio      uint16
	fd          int32
	off         uint64
	addr        uint64
	len         uint32
	rwFlags     uint32
	userData    uint64
	bufIndex    uint16
	personality uint16
	spliceFdIn  int32
	addr3       uint64
	_           uint64
}

// uringCQE is struct io_uring_cqe (16 bytes).
type uringCQE struct {
	userData uint64
	res      int32
	flags    uint32
}

// ring is one io_uring instance, used by one goroutine at a time (a
// queue's reader, or the writer holding txMu).
type ring struct {
	fd      int
	sqMem   []byte
	cqMem   []byte // aliases sqMem with IORING_FEAT_SINGLE_MMAP
	sqeMem  []byte
	entries uint32

	sqTail, sqHead, sqMask *uint32
	sqArray                unsafe.Pointer
	sqes                   unsafe.Pointer
	cqHead, cqTail, cqMask *uint32
	cqes                   unsafe.Pointer

	tail    uint32 // the next SQ tail to publish
	pending uint32 // SQEs queued since the last submit
}

// errNoUring is why a device goes without rings: the kernel has no
// io_uring (ENOSYS), or it is turned off (EPERM from
// kernel.io_uring_disabled, seccomp).
var errNoUring = errors.New("tun: io_uring unavailable")

// newRing sets up a ring of entries submission slots (a power of two).
func newRing(entries uint32) (*ring, error) {
	var p uringParams
	p.flags = uringSetupSubmitAll
	fd, _, e := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if e == unix.EINVAL {
		// A kernel older than 5.18 has no SUBMIT_ALL; nothing here
		// fails at submission, so it is not needed.
		p = uringParams{}
		fd, _, e = unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	}
	if e != 0 {
		return nil, errNoUring
	}
	r := &ring{fd: int(fd), entries: p.sqEntries}
	fail := func(err error) (*ring, error) {
		r.close()
		return nil, err
	}
	sqSize := int(p.sqOff.array) + int(p.sqEntries)*4
	cqSize := int(p.cqOff.cqes) + int(p.cqEntries)*int(unsafe.Sizeof(uringCQE{}))
	single := p.features&uringFeatSingleMmap != 0
	if single {
		sqSize = max(sqSize, cqSize)
	}
	var err error
	if r.sqMem, err = unix.Mmap(r.fd, uringOffSQRing, sqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return fail(err)
	}
	r.cqMem = r.sqMem
	if !single {
		if r.cqMem, err = unix.Mmap(r.fd, uringOffCQRing, cqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
			return fail(err)
		}
	}
	if r.sqeMem, err = unix.Mmap(r.fd, uringOffSQEs, int(p.sqEntries)*int(unsafe.Sizeof(uringSQE{})), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return fail(err)
	}
	sq, cq := unsafe.Pointer(&r.sqMem[0]), unsafe.Pointer(&r.cqMem[0])
	r.sqHead = (*uint32)(unsafe.Add(sq, p.sqOff.head))
	r.sqTail = (*uint32)(unsafe.Add(sq, p.sqOff.tail))
	r.sqMask = (*uint32)(unsafe.Add(sq, p.sqOff.ringMask))
	r.sqArray = unsafe.Add(sq, p.sqOff.array)
	r.sqes = unsafe.Pointer(&r.sqeMem[0])
	r.cqHead = (*uint32)(unsafe.Add(cq, p.cqOff.head))
	r.cqTail = (*uint32)(unsafe.Add(cq, p.cqOff.tail))
	r.cqMask = (*uint32)(unsafe.Add(cq, p.cqOff.ringMask))
	r.cqes = unsafe.Add(cq, p.cqOff.cqes)
	r.tail = atomic.LoadUint32(r.sqTail)
	return r, nil
}

func (r *ring) close() {
	if r.sqeMem != nil {
		unix.Munmap(r.sqeMem)
	}
	if r.cqMem != nil && unsafe.SliceData(r.cqMem) != unsafe.SliceData(r.sqMem) {
		unix.Munmap(r.cqMem)
	}
	if r.sqMem != nil {
		unix.Munmap(r.sqMem)
	}
	r.sqMem, r.cqMem, r.sqeMem = nil, nil, nil
	if r.fd >= 0 {
		unix.Close(r.fd)
		r.fd = -1
	}
}

// room is how many more requests fit before submit.
func (r *ring) room() int { return int(r.entries - r.pending) }

// queue fills the next submission slot; addr must stay reachable (the
// caller keeps it alive) until submit returns.
func (r *ring) queue(op uint8, fd int, addr unsafe.Pointer, n int, user uint64) {
	i := r.tail & *r.sqMask
	sqe := (*uringSQE)(unsafe.Add(r.sqes, uintptr(i)*unsafe.Sizeof(uringSQE{})))
	*sqe = uringSQE{opcode: op, fd: int32(fd), addr: uint64(uintptr(addr)), len: uint32(n), userData: user}
	*(*uint32)(unsafe.Add(r.sqArray, uintptr(i)*4)) = i
	r.tail++
	r.pending++
}

// linkLast makes the last request queued a link to the next one
// (IOSQE_IO_LINK): the next runs only once it has completed, and is
// cancelled if it fails.
func (r *ring) linkLast() {
	i := (r.tail - 1) & *r.sqMask
	(*uringSQE)(unsafe.Add(r.sqes, uintptr(i)*unsafe.Sizeof(uringSQE{}))).flags |= uringSQELink
}

// queueRead queues a read of one packet into buf that does not wait
// (RWF_NOWAIT): with the device's queue empty it completes with EAGAIN
// at once; never parked in the ring, it needs no cancel.
func (r *ring) queueRead(fd int, buf []byte, user uint64) {
	r.queue(uringOpRead, fd, unsafe.Pointer(&buf[0]), len(buf), user)
	i := (r.tail - 1) & *r.sqMask
	(*uringSQE)(unsafe.Add(r.sqes, uintptr(i)*unsafe.Sizeof(uringSQE{}))).rwFlags = readFlags
}

// readFlags are the ring reads' flags; a test sets ones the kernel
// refuses, to take the fallback to read(2).
var readFlags uint32 = unix.RWF_NOWAIT

// submit hands the queued requests to the kernel and waits until all of
// them have completed, then calls done with each one's user data and
// result (a byte count, or a negated errno), in the order the kernel
// completed them.
func (r *ring) submit(done func(user uint64, res int32)) error {
	want := r.pending
	if want == 0 {
		return nil
	}
	atomic.StoreUint32(r.sqTail, r.tail)
	r.pending = 0
	got := uint32(0)
	for got < want {
		toSubmit := r.tail - atomic.LoadUint32(r.sqHead)
		head, tail := *r.cqHead, atomic.LoadUint32(r.cqTail)
		for ; head != tail; head++ {
			c := (*uringCQE)(unsafe.Add(r.cqes, uintptr(head&*r.cqMask)*unsafe.Sizeof(uringCQE{})))
			done(c.userData, c.res)
			got++
		}
		atomic.StoreUint32(r.cqHead, head)
		if got >= want {
			break
		}
		_, _, e := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(toSubmit), uintptr(want-got), uringEnterGetEvents, 0, 0)
		switch e {
		case 0, unix.EINTR, unix.EAGAIN, unix.EBUSY:
		default:
			// The ring itself failed (never seen): what was submitted
			// may still complete, so the ring must not be used again.
			return e
		}
	}
	return nil
}

// txRingSize is how many writes one io_uring_enter(2) carries at most.
const txRingSize = 64

// txBatch is the writer's ring and the writes of one batch, guarded by
// txMu.
type txBatch struct {
	ring *ring
	iov  []unix.Iovec // per write: the virtio-net header, the packet; or the super-packet
	bufs [][]byte     // per write: the super-packet joined for it
	n    []int        // per write: the packets it carries
	res  []int32      // per write: what the kernel said
	zero [16]byte     // the virtio-net header that asks nothing of the kernel
}

// startUring makes the writer's ring; without one (no io_uring in the
// kernel) the device reads and writes one packet per system call.
func (d *Device) startUring() {
	r, err := newRing(txRingSize)
	if err != nil {
		return
	}
	t := &d.tx
	t.ring = r
	t.iov = make([]unix.Iovec, 2*r.entries)
	t.bufs = make([][]byte, r.entries)
	t.n = make([]int, r.entries)
	t.res = make([]int32, r.entries)
	d.uring = true
	d.feat.Uring = true
}

// stopUring closes the writer's ring (Close: after the files, under txMu
// so that no batch is in flight). Each reader closes its own.
func (d *Device) stopUring() {
	d.txMu.Lock()
	defer d.txMu.Unlock()
	if d.tx.ring != nil {
		d.tx.ring.close()
		d.tx.ring = nil
	}
}

// writeRing is WritePackets's loop with up to txRingSize writes per
// io_uring_enter(2), each built as nextWrite builds it but without the
// copy of a lone packet: its header and the packet go as two pieces
// (writev). The writes of a batch are linked (IOSQE_IO_LINK): each runs
// after the one before it, so the kernel takes them in order, and one the
// kernel refuses cancels the rest, so what was taken is a prefix as with
// write(2). It returns how many packets the kernel took, and an error for
// a write it refused. A device that reports a full queue (EAGAIN, not seen
// on TUN: its socket has no send limit) leaves the rest to the caller's
// write(2) loop, and so does a lone packet, for which one write(2) costs
// less than the ring. The links cost about 8 % of a batch
// (BenchmarkWriteBatch: 0.81–0.84 µs a packet without, 0.88–0.92 with,
// 2.5–3.0 by write(2)).
func (d *Device) writeRing(rc syscall.RawConn, pkts [][]byte) (int, error) {
	t := &d.tx
	done := 0
	if len(pkts) < 2 {
		// One write(2) costs less than a ring for one.
		return 0, nil
	}
	for done < len(pkts) && t.ring != nil {
		nw := 0
		var broken error
		err := rc.Write(func(fd uintptr) bool {
			for i := done; i < len(pkts) && t.ring.room() > 0; nw++ {
				n := 1
				iov := t.iov[2*nw : 2*nw+2]
				switch {
				case d.vnet == 0:
					iov = iov[:1]
					iov[0] = iovec(pkts[i])
				default:
					var r tcpRun
					if n, r = joinable(pkts[i:]); n > 1 {
						t.bufs[nw] = joinTCP(t.bufs[nw][:0], d.vnet, pkts[i:i+n], r)
						iov = iov[:1]
						iov[0] = iovec(t.bufs[nw])
					} else {
						iov[0], iov[1] = iovec(t.zero[:d.vnet]), iovec(pkts[i])
					}
				}
				t.n[nw] = n
				if nw > 0 {
					t.ring.linkLast()
				}
				t.ring.queue(uringOpWritev, int(fd), unsafe.Pointer(&iov[0]), len(iov), uint64(nw))
				i += n
			}
			broken = t.ring.submit(func(w uint64, res int32) { t.res[w] = res })
			runtime.KeepAlive(pkts)
			return true
		})
		if err != nil {
			if errors.Is(err, os.ErrClosed) || d.state.Load() == stateClosed {
				return done, net.ErrClosed
			}
			return done, &Error{Op: "writing", Name: d.name, Err: err}
		}
		if broken != nil {
			// Never seen: give the ring up (its requests may still run,
			// so its buffers go with it) and let write(2) go on from
			// here.
			t.ring = nil
			t.bufs = make([][]byte, len(t.bufs))
			return done, nil
		}
		for w := range nw {
			n, res := t.n[w], t.res[w]
			if res == -int32(unix.EAGAIN) {
				return done, nil
			}
			if res < 0 {
				if d.state.Load() == stateClosed {
					return done, net.ErrClosed
				}
				d.txErrors.Add(uint64(n))
				return done, &Error{Op: "writing", Name: d.name, Err: unix.Errno(-res)}
			}
			d.wrote(pkts[done : done+n])
			done += n
		}
	}
	return done, nil
}

func iovec(b []byte) unix.Iovec {
	v := unix.Iovec{Base: unsafe.SliceData(b)}
	v.SetLen(len(b))
	return v
}

//go:build linux

package tun

import (
	"errors"
	"os"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/synack/synack/link"
)

// The receive side: each queue's reader, its batches, and what it does
// with a virtio-net header.

// maxBatch bounds the packets handed over in one DeliverPackets call, and
// the reads done before one.
const maxBatch = 64

// reader is one queue's buffers.
type reader struct {
	d      *Device
	disp   link.Dispatcher
	batch  link.BatchDispatcher  // disp, if it takes batches
	vouch  link.ChecksumVouching // disp, if the link may vouch for checksums to it
	lend   link.LoanDispatcher   // disp, if the reader lends it its buffers (lend.go)
	bufs   []*rxBuf              // one per read; nil: lent, to be replaced before the next read
	lens   []int
	loans  []link.Loan // per packet of the batch: its buffer, offered as a loan, or nil
	src    []int       // per packet of the batch: the index in bufs of the buffer offered, or -1
	arena  []byte      // the segments split from super-packets
	pkts   [][]byte    // the batch
	vouchd []bool      // per packet of the batch: the link vouches for its checksum
	ring   *ring       // the batch's reads in one system call (uring.go); nil: read(2) each
	want   int         // reads to ask the ring for next
	order  []int       // the ring's reads that brought a packet, in the order they completed
	// The other set of buffer and length slices, that readRing
	// reorders into.
	spare     []*rxBuf
	spareLens []int
}

func (d *Device) read(f *os.File, disp link.Dispatcher) {
	defer d.readers.Done()
	r := &reader{d: d, disp: disp}
	r.batch, _ = disp.(link.BatchDispatcher)
	r.vouch, _ = disp.(link.ChecksumVouching)
	_, nbuf := d.readBufs()
	if d.vnet > 0 {
		r.arena = make([]byte, 0, 256<<10)
	}
	if d.lends(disp) {
		r.lend = disp.(link.LoanDispatcher)
	}
	r.bufs = make([]*rxBuf, nbuf)
	for i := range r.bufs {
		r.bufs[i] = d.pool.get()
	}
	r.lens = make([]int, nbuf)
	rc, err := f.SyscallConn()
	if err != nil {
		d.setReadErr(err)
		return
	}
	if d.uring {
		// A buffer's read each.
		if r.ring, err = newRing(uint32(nbuf)); err == nil {
			defer r.ring.close()
			r.want = 2
			r.order = make([]int, 0, nbuf)
			r.spare, r.spareLens = make([]*rxBuf, 0, nbuf), make([]int, 0, nbuf)
		}
	}
	for {
		var n int
		if r.ring != nil && r.want > 2 {
			n, err = r.readRing(rc)
		} else {
			// One packet at a time came last: read(2) is cheaper than
			// a ring whose second read waits and is cancelled.
			n, err = r.readBatch(rc)
			r.want = min(max(2*n, 2), len(r.bufs))
		}
		if err != nil {
			if d.state.Load() != stateClosed && !errors.Is(err, os.ErrClosed) {
				// Unexpected (the fd is never read elsewhere). Keep the
				// reason for Err; delivery ends.
				d.setReadErr(err)
			}
			return
		}
		d.rxReads.Add(uint64(n))
		for i := 0; i < n; i++ {
			if !r.take(i, r.bufs[i].b[:r.lens[i]]) {
				return // closed
			}
		}
		if !r.flush() {
			return
		}
		// The buffers the dispatcher kept are its until it releases
		// them: the next reads go into others.
		for i, b := range r.bufs[:n] {
			if b == nil {
				r.bufs[i] = d.pool.get()
			}
		}
	}
}

// readBufs is the size of a read's buffer and how many each queue's
// reader has.
func (d *Device) readBufs() (size, n int) {
	if d.vnet > 0 {
		// A super-packet is up to 64 KiB; fewer reads per batch keep a
		// queue's buffers near 1 MiB.
		return d.vnet + maxPacket, 16
	}
	return d.mtu, maxBatch
}

func (d *Device) setReadErr(err error) {
	e := error(&Error{Op: "reading", Name: d.name, Err: err})
	d.readErr.Store(&e)
}

// readBatch reads packets into r.bufs until the device has no more ready
// or the buffers are full; it parks in the poller only when none is ready.
func (r *reader) readBatch(rc syscall.RawConn) (int, error) {
	n := 0
	var rerr error
	err := rc.Read(func(fd uintptr) bool {
		for n < len(r.bufs) {
			m, err := unix.Read(int(fd), r.bufs[n].b)
			switch {
			case err == unix.EINTR:
				continue
			case err == unix.EAGAIN:
				return n > 0 // none yet: wait for the poller
			case err != nil:
				rerr = err
				return true
			case m > 0:
				r.lens[n] = m
				n++
			}
		}
		return true
	})
	if err != nil {
		return 0, err
	}
	if rerr != nil && n == 0 {
		return 0, rerr
	}
	return n, nil
}

// readRing is readBatch with the reads in one io_uring_enter(2)
// (uring.go): it asks for up to r.want packets, twice as many as the last
// batch brought (at most a buffer each), so a busy device costs a system
// call per batch where readBatch pays one per packet and one more for the
// read that finds none. The reader uses it while batches hold more than
// one packet; a quiet device is read with read(2), which costs less for a
// single packet (BenchmarkRoundTrip). No read waits in the ring
// (RWF_NOWAIT: one that finds the queue empty says EAGAIN), so the batch
// ends when the kernel has run all of them, and the reads run in order,
// so the packets are in the order the kernel queued them.
func (r *reader) readRing(rc syscall.RawConn) (int, error) {
	n := 0
	var rerr error
	err := rc.Read(func(fd uintptr) bool {
		k := min(r.want, len(r.bufs), r.ring.room())
		for i := range k {
			r.lens[i] = 0
			r.ring.queueRead(int(fd), r.bufs[i].b, uint64(i))
		}
		var failed error
		unsupported := false
		r.order = r.order[:0]
		if err := r.ring.submit(func(i uint64, res int32) {
			switch {
			case res > 0:
				r.lens[i] = int(res)
				r.order = append(r.order, int(i))
			case res == 0, res == -int32(unix.EAGAIN), res == -int32(unix.EINTR):
			case res == -int32(unix.EOPNOTSUPP), res == -int32(unix.EINVAL):
				// A kernel whose TUN file reads cannot be asked not
				// to wait (no FMODE_NOWAIT), or whose ring takes no
				// read flags: the read took nothing.
				unsupported = true
			case failed == nil:
				failed = unix.Errno(-res)
			}
		}); err != nil {
			// The ring broke: requests may still land in the
			// buffers, so give them up with it (to no one: they go
			// neither back to the pool nor out as loans) and go on
			// with read(2).
			r.ring = nil
			for i := range r.bufs {
				r.bufs[i] = r.d.pool.fresh()
			}
			return true // n == 0: the next batch is read(2)'s
		}
		if unsupported && len(r.order) == 0 {
			r.ring.close()
			r.ring = nil
			return true // n == 0: the next batch is read(2)'s
		}
		runtime.KeepAlive(r.bufs)
		// The packets in the order the reads completed (the order of
		// the reads, since none waits), which is the order they left
		// the device's queue; the buffers of reads that found none go
		// after them.
		n = len(r.order)
		bufs, lens := r.spare[:0], r.spareLens[:0]
		for _, i := range r.order {
			bufs, lens = append(bufs, r.bufs[i]), append(lens, r.lens[i])
		}
		for i, b := range r.bufs {
			if r.lens[i] == 0 || i >= k {
				bufs, lens = append(bufs, b), append(lens, 0)
			}
		}
		r.bufs, r.spare = bufs, r.bufs
		r.lens, r.spareLens = lens, r.lens
		switch {
		case n > 0:
			r.want = min(2*n, len(r.bufs))
			return true
		case failed != nil:
			rerr = failed
			return true
		}
		return false // none yet: wait for the poller
	})
	if err != nil {
		return 0, err
	}
	if rerr != nil && n == 0 {
		return 0, rerr
	}
	return n, nil
}

// take adds one read's packet(s), read into r.bufs[i], to the batch,
// delivering first if the arena cannot hold a super-packet's segments. It
// reports false once the device is closed.
func (r *reader) take(i int, b []byte) bool {
	d := r.d
	if d.vnet == 0 {
		r.add(b, false, r.lendable(i, b))
		return len(r.pkts) < maxBatch || r.flush()
	}
	if len(b) <= d.vnet {
		d.rxDropped.Add(1)
		return true
	}
	h, pkt := decodeVnetHdr(b), b[d.vnet:]
	vouch := r.vouch != nil
	switch {
	case vouch && d.whole && wholeTCP(pkt, h):
		// One segment larger than the MTU: the stack takes it as it is.
		d.rxGSO.Add(1)
		d.rxGSOSegs.Add(1)
		d.rxVouched.Add(1)
		r.add(pkt, true, r.lendable(i, pkt))
	case h.GSOType != gsoNone:
		// The segments of up to 64 KiB with their headers repeated:
		// make room for all of them.
		need := len(pkt) + (len(pkt)/max(int(h.GSOSize), 1)+1)*int(h.CsumStart+60)
		if cap(r.arena)-len(r.arena) < need || len(r.pkts)+len(pkt)/max(int(h.GSOSize), 1)+1 > 4*maxBatch {
			if !r.flush() {
				return false
			}
			if cap(r.arena) < need {
				r.arena = make([]byte, 0, need)
			}
		}
		before := len(r.pkts)
		var err error
		r.arena, r.pkts, err = splitGSO(r.arena, r.pkts, pkt, h, vouch)
		if err != nil {
			r.pkts = r.pkts[:before]
			d.rxDropped.Add(1)
			return true
		}
		d.rxGSO.Add(1)
		d.rxGSOSegs.Add(uint64(len(r.pkts) - before))
		// The segments lie in the arena, which the next batch reuses:
		// never lent.
		for range len(r.pkts) - before {
			r.vouchd = append(r.vouchd, vouch)
			r.loans = append(r.loans, nil)
			r.src = append(r.src, -1)
		}
		if vouch {
			d.rxVouched.Add(uint64(len(r.pkts) - before))
		}
	case h.Flags&vnetNeedsCsum != 0:
		// The kernel's own packet, checksum left for the device: the
		// dispatcher may take it vouched; otherwise finish the sum.
		if !vouch {
			if !completeChecksum(pkt, int(h.CsumStart), int(h.CsumOffset)) {
				d.rxDropped.Add(1)
				return true
			}
			d.rxCsum.Add(1)
		} else {
			d.rxVouched.Add(1)
		}
		r.add(pkt, vouch, r.lendable(i, pkt))
	case h.Flags&vnetDataValid != 0:
		if vouch {
			d.rxVouched.Add(1)
		}
		r.add(pkt, vouch, r.lendable(i, pkt))
	default:
		r.add(pkt, false, r.lendable(i, pkt))
	}
	return len(r.pkts) < maxBatch || r.flush()
}

// add appends p to the batch; buf is the index in r.bufs of the buffer p
// lies in, to offer as a loan, or -1.
func (r *reader) add(p []byte, vouched bool, buf int) {
	r.pkts = append(r.pkts, p)
	r.vouchd = append(r.vouchd, vouched)
	var loan link.Loan
	if buf >= 0 {
		loan = r.bufs[buf]
	}
	r.loans = append(r.loans, loan)
	r.src = append(r.src, buf)
}

// flush delivers the batch and empties it; false once the device is
// closed.
func (r *reader) flush() bool {
	if len(r.pkts) == 0 {
		return true
	}
	d := r.d
	d.deliverMu.Lock()
	defer d.deliverMu.Unlock()
	if !d.state.CompareAndSwap(stateIdle, stateDelivering) {
		return false // closed
	}
	var bytes uint64
	for _, p := range r.pkts {
		bytes += uint64(len(p))
	}
	d.rxPackets.Add(uint64(len(r.pkts)))
	d.rxBytes.Add(bytes)
	d.rxBatches.Add(1)
	switch {
	case r.batch == nil:
		for _, p := range r.pkts {
			r.disp.DeliverPacket(p)
		}
	case r.vouch == nil && r.lend == nil:
		r.batch.DeliverPackets(r.pkts)
	default:
		// Runs of vouched and not-vouched packets, in order.
		for i := 0; i < len(r.pkts); {
			j := i + 1
			lent := r.src[i] >= 0
			for j < len(r.pkts) && r.vouchd[j] == r.vouchd[i] {
				lent = lent || r.src[j] >= 0
				j++
			}
			switch {
			case lent:
				r.lend.DeliverLoanedPackets(r.pkts[i:j], r.loans[i:j], r.vouchd[i])
			case r.vouchd[i]:
				r.vouch.DeliverVouchedPackets(r.pkts[i:j])
			default:
				r.batch.DeliverPackets(r.pkts[i:j])
			}
			i = j
		}
		r.kept()
	}
	clear(r.pkts)
	clear(r.loans)
	r.pkts, r.vouchd, r.arena = r.pkts[:0], r.vouchd[:0], r.arena[:0]
	r.loans, r.src = r.loans[:0], r.src[:0]
	return d.state.CompareAndSwap(stateDelivering, stateIdle) // false: closed during the delivery
}

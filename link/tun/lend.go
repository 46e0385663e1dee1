//go:build linux

package tun

import (
	"sync"
	"sync/atomic"

	"github.com/synack/synack/link"
)

// Lending the read buffers (issue 13: one copy of each received byte
// fewer). A dispatcher that takes loans (link.LoanDispatcher: synack's
// stack) may keep a large TCP segment's bytes in the buffer the reader
// read it into, and copy them to its user from there, instead of copying
// them into its receive buffer first. The reader then reads into another
// buffer, taken from the device's pool, and the one kept comes back to the
// pool when the dispatcher releases it.
//
// Only buffers that hold one packet are lent, the one read: a split
// super-packet's segments lie in the reader's arena, which the next batch
// reuses. A read through io_uring is lent only after its batch has
// completed: every request of a batch has ended when the ring's submit
// returns (uring.go), so the kernel writes into no buffer the dispatcher
// holds; and the buffers of a ring that broke go to no one.

// lendMin is the least packet a reader offers as a loan: smaller ones are
// copied by the dispatcher for less than the loan's round trip costs (the
// stack keeps no segment of under 4 KiB of text), and a small packet
// would hold a whole buffer. It is memlink's lending MTU too.
const lendMin = 8192

// rxBuf is one read's buffer, lent as a link.Loan.
type rxBuf struct {
	b    []byte
	pool *rxPool
}

// Release gives the buffer back to the device's pool.
func (b *rxBuf) Release() { b.pool.put(b) }

// Size is the buffer's length.
func (b *rxBuf) Size() int { return len(b.b) }

// rxPool is the free buffers of a device's readers: the readers take
// from it for the buffers they lent, and dispatchers' Release (from any
// goroutine) put them back. It keeps at most keep free buffers; more
// (when a transfer ends and its loans all come back) are left to the
// garbage collector.
type rxPool struct {
	mu   sync.Mutex
	free []*rxBuf
	size int
	keep int
	made atomic.Uint64
}

func newRxPool(size, keep int) *rxPool {
	return &rxPool{size: size, keep: keep, free: make([]*rxBuf, 0, keep)}
}

// get returns a free buffer, or a new one.
func (p *rxPool) get() *rxBuf {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return b
	}
	p.mu.Unlock()
	return p.fresh()
}

// fresh returns a new buffer.
func (p *rxPool) fresh() *rxBuf {
	p.made.Add(1)
	return &rxBuf{b: make([]byte, p.size), pool: p}
}

func (p *rxPool) put(b *rxBuf) {
	p.mu.Lock()
	if len(p.free) < p.keep {
		p.free = append(p.free, b)
	}
	p.mu.Unlock()
}

// madeCount is how many buffers the pool allocated; 0 before Attach.
func (p *rxPool) madeCount() uint64 {
	if p == nil {
		return 0
	}
	return p.made.Load()
}

// lends reports whether the device's readers lend their buffers to disp:
// it takes loans, and packets of lendMin bytes can arrive, larger than
// the MTU (the kernel's TSO super-segments reaching it whole) or within
// it.
func (d *Device) lends(disp link.Dispatcher) bool {
	if _, ok := disp.(link.LoanDispatcher); !ok {
		return false
	}
	return d.mtu >= lendMin || (d.vnet > 0 && d.whole)
}

// lendable returns i, the index of the buffer b was read into, if the
// packet b is to be offered as its loan, or -1: when the reader lends,
// and b is large, and at least half its buffer (a loan holds the whole
// buffer; the stack takes none larger than twice the text it keeps).
func (r *reader) lendable(i int, b []byte) int {
	if r.lend == nil || len(b) < lendMin || 2*len(b) < len(r.bufs[i].b) {
		return -1
	}
	return i
}

// kept takes the buffers the dispatcher kept, after a delivery, out of
// the reader's hands: the next read of their slots goes into new ones.
func (r *reader) kept() {
	n := 0
	for j, i := range r.src {
		if i >= 0 && r.loans[j] == nil {
			r.bufs[i] = nil
			n++
		}
	}
	if n > 0 {
		r.d.rxLent.Add(uint64(n))
	}
}

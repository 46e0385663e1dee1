package netstack

import (
	"os"
	"sync"
	"syscall"
)

// pktQueue is a bounded FIFO of packets between two goroutines, copied
// in and handed out in batches, with the copies' buffers reused.
type pktQueue struct {
	mu     sync.Mutex
	ready  sync.Cond // signalled when q grows or the queue closes
	room   sync.Cond // signalled when q shrinks or the queue closes
	q      [][]byte  // oldest first
	free   [][]byte  // buffers to reuse
	limit  int       // the most packets q holds
	bufCap int       // capacity of a new buffer (the MTU)
	closed bool
}

func newPktQueue(limit, bufCap int) *pktQueue {
	q := &pktQueue{limit: limit, bufCap: bufCap}
	q.ready.L = &q.mu
	q.room.L = &q.mu
	return q
}

// errQueueFull is why put refuses a packet when it may not wait.
var errQueueFull = syscall.ENOBUFS

// put copies pkts in, in order. When the queue is full it waits for room
// if wait is set, and otherwise returns how many it took and
// errQueueFull. After close it returns os.ErrClosed.
func (q *pktQueue) put(pkts [][]byte, wait bool) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, p := range pkts {
		for !q.closed && len(q.q) >= q.limit {
			if !wait {
				if i > 0 {
					q.ready.Signal()
				}
				return i, errQueueFull
			}
			q.ready.Signal() // what is in already may go while we wait
			q.room.Wait()
		}
		if q.closed {
			return i, os.ErrClosed
		}
		var b []byte
		if k := len(q.free); k > 0 && cap(q.free[k-1]) >= len(p) {
			b = q.free[k-1][:len(p)]
			q.free = q.free[:k-1]
		} else {
			b = make([]byte, len(p), max(len(p), q.bufCap))
		}
		copy(b, p)
		q.q = append(q.q, b)
	}
	q.ready.Signal()
	return len(pkts), nil
}

// take waits for packets and moves up to max of them, oldest first, onto
// dst, which it returns; the caller gives the buffers back with release.
// It reports false once the queue is closed.
func (q *pktQueue) take(dst [][]byte, max int) ([][]byte, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.q) == 0 && !q.closed {
		q.ready.Wait()
	}
	if q.closed {
		return dst, false
	}
	k := min(max, len(q.q))
	dst = append(dst, q.q[:k]...)
	clear(q.q[:k])
	q.q = q.q[:copy(q.q, q.q[k:])]
	q.room.Broadcast()
	return dst, true
}

// release takes back buffers handed out by take.
func (q *pktQueue) release(bufs [][]byte) {
	q.mu.Lock()
	if !q.closed {
		q.free = append(q.free, bufs...)
	}
	q.mu.Unlock()
	clear(bufs)
}

// close ends the waits of put and take and drops what is queued.
func (q *pktQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.q, q.free = nil, nil
	q.ready.Broadcast()
	q.room.Broadcast()
	q.mu.Unlock()
}

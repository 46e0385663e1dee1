package memlink

import "sync"

// packet is a copy in flight. at is its delivery time in nanoseconds since
// the direction's origin (a monotonic offset, so wall-clock jumps of the
// real clock cannot reorder anything); seq breaks ties in send order.
type packet struct {
	at  int64
	seq uint64
	buf *pbuf
	n   int
}

func (p *packet) before(q *packet) bool {
	return p.at < q.at || (p.at == q.at && p.seq < q.seq)
}

// pbuf is a pooled buffer; the pool holds pointers so Put does not allocate.
// It is also the link.Loan of a packet a receiver keeps (deliverLoaned).
type pbuf struct {
	b    []byte
	pool *sync.Pool
}

// Release returns the buffer to its pool (link.Loan).
func (b *pbuf) Release() { b.pool.Put(b) }

// Size is the buffer's memory (link.Loan).
func (b *pbuf) Size() int { return cap(b.b) }

// ring is a FIFO that reuses its array: after warm-up, a steady flow of
// packets allocates nothing.
type ring[T any] struct {
	buf  []T // len is a power of two
	head int
	n    int
}

func (r *ring[T]) len() int { return r.n }

func (r *ring[T]) push(x T) {
	if r.n == len(r.buf) {
		nb := make([]T, max(16, 2*len(r.buf)))
		for i := range r.n {
			nb[i] = r.buf[(r.head+i)&(len(r.buf)-1)]
		}
		r.buf, r.head = nb, 0
	}
	r.buf[(r.head+r.n)&(len(r.buf)-1)] = x
	r.n++
}

// peek returns the oldest element; the ring must not be empty.
func (r *ring[T]) peek() *T { return &r.buf[r.head] }

func (r *ring[T]) pop() T {
	var zero T
	x := r.buf[r.head]
	r.buf[r.head] = zero
	r.head = (r.head + 1) & (len(r.buf) - 1)
	r.n--
	return x
}

// held is a min-heap by (at, seq) for packets that leave FIFO order
// (reordered ones). It is a hand-written heap rather than container/heap so
// pushing a packet does not box it in an interface.
type held []packet

func (h *held) push(p packet) {
	*h = append(*h, p)
	s := *h
	i := len(s) - 1
	for i > 0 {
		parent := (i - 1) / 2
		if !s[i].before(&s[parent]) {
			break
		}
		s[i], s[parent] = s[parent], s[i]
		i = parent
	}
}

func (h *held) pop() packet {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s[last] = packet{}
	s = s[:last]
	i := 0
	for {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(s) && s[l].before(&s[m]) {
			m = l
		}
		if r < len(s) && s[r].before(&s[m]) {
			m = r
		}
		if m == i {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}

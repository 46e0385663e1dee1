package tcp

// ring is a byte ring buffer that grows on demand up to a limit, so an idle
// connection holds no buffer memory at all.
type ring struct {
	buf   []byte
	head  int // index of the first byte
	n     int // bytes held, starting at head
	limit int // the most the ring may ever hold
}

func (r *ring) len() int  { return r.n }
func (r *ring) free() int { return r.limit - r.n }

// grow makes room for at least need bytes in all, keeping the content
// (including bytes written beyond n by writeAt) in order.
func (r *ring) grow(need int) {
	if need <= len(r.buf) {
		return
	}
	size := len(r.buf) * 2
	if size < 4096 {
		size = 4096
	}
	for size < need {
		size *= 2
	}
	if size > r.limit {
		size = r.limit
	}
	nb := make([]byte, size)
	if len(r.buf) > 0 {
		k := copy(nb, r.buf[r.head:])
		copy(nb[k:], r.buf[:r.head])
	}
	r.buf = nb
	r.head = 0
}

// write appends p, as much as fits, and returns how much it took.
func (r *ring) write(p []byte) int {
	if len(p) > r.free() {
		p = p[:r.free()]
	}
	if len(p) == 0 {
		return 0
	}
	r.writeAt(0, p)
	r.n += len(p)
	return len(p)
}

// writeAt stores p at offset off past the end of the held bytes, without
// making it part of them: out-of-order data waits there until the gap
// before it is filled. The caller keeps off+len(p) within free().
func (r *ring) writeAt(off int, p []byte) {
	end := r.n + off + len(p)
	r.grow(end)
	pos := (r.head + r.n + off) % len(r.buf)
	k := copy(r.buf[pos:], p)
	copy(r.buf, p[k:])
}

// commit makes k bytes written by writeAt part of the held bytes.
func (r *ring) commit(k int) { r.n += k }

// peek returns the bytes at [off, off+k) as one slice when they are
// contiguous in the ring, or copies them into scratch when they wrap.
func (r *ring) peek(off, k int, scratch []byte) []byte {
	if k == 0 {
		return nil
	}
	pos := (r.head + off) % len(r.buf)
	if pos+k <= len(r.buf) {
		return r.buf[pos : pos+k]
	}
	scratch = scratch[:k]
	n := copy(scratch, r.buf[pos:])
	copy(scratch[n:], r.buf[:k-n])
	return scratch
}

// read copies the first bytes into p and discards them.
func (r *ring) read(p []byte) int {
	k := min(len(p), r.n)
	if k == 0 {
		return 0
	}
	pos := r.head
	n := copy(p[:k], r.buf[pos:min(pos+k, len(r.buf))])
	copy(p[n:k], r.buf)
	r.discard(k)
	return k
}

// discard drops the first k bytes.
func (r *ring) discard(k int) {
	if k == 0 {
		return
	}
	r.n -= k
	// head is not reset to 0 when the ring empties: the receive ring may
	// hold out-of-order bytes past the end (writeAt).
	r.head = (r.head + k) % len(r.buf)
}

// release frees the memory of an empty ring (for TIME-WAIT and CLOSED).
func (r *ring) release() {
	r.buf = nil
	r.head = 0
	r.n = 0
}

// span is a range [start, end) of sequence-space offsets from RCV.NXT
// holding out-of-order data.
type span struct{ start, end int }

// reassembly tracks which bytes beyond RCV.NXT have arrived out of order
// (RFC 9293 section 3.10.7.4, "seventh": segments beyond RCV.NXT are kept
// for later). The bytes themselves wait in the receive ring at their
// offsets; this only keeps the sorted, disjoint list of what is present.
type reassembly struct {
	spans []span // sorted, disjoint, non-adjacent
	last  span   // the most recently received span, first in SACK (RFC 2018 section 4)
}

// maxOOOSpans bounds the out-of-order islands one connection keeps, so a
// peer sending one-byte fragments cannot make the list (and the work of
// keeping it sorted) grow with the window.
const maxOOOSpans = 64

// add records [start, end) and merges it with its neighbours. It reports
// false, and records nothing, when the bytes would make a new island
// beyond maxOOOSpans: the caller drops them, unacknowledged.
func (q *reassembly) add(start, end int) bool {
	i := 0
	for i < len(q.spans) && q.spans[i].end < start {
		i++
	}
	j := i
	for j < len(q.spans) && q.spans[j].start <= end {
		start = min(start, q.spans[j].start)
		end = max(end, q.spans[j].end)
		j++
	}
	if i == j && len(q.spans) >= maxOOOSpans {
		return false
	}
	q.last = span{start, end}
	if i == j {
		// The only allocation on the receive path: the list grows to at
		// most maxOOOSpans once and is reused after.
		q.spans = append(q.spans, span{})
		copy(q.spans[i+1:], q.spans[i:])
		q.spans[i] = span{start, end}
		return true
	}
	q.spans[i] = span{start, end}
	q.spans = append(q.spans[:i+1], q.spans[j:]...)
	return true
}

// advance shifts every offset down by k bytes (RCV.NXT moved forward by k)
// and returns how many further bytes, now contiguous at offset 0, can be
// delivered.
func (q *reassembly) advance(k int) int {
	out := q.spans[:0]
	for _, s := range q.spans {
		s.start -= k
		s.end -= k
		if s.end <= 0 {
			continue
		}
		if s.start < 0 {
			s.start = 0
		}
		out = append(out, s)
	}
	q.spans = out
	q.last.start -= k
	q.last.end -= k
	if len(q.spans) > 0 && q.spans[0].start == 0 {
		n := q.spans[0].end
		return n
	}
	return 0
}

func (q *reassembly) empty() bool { return len(q.spans) == 0 }

package tcp

import "time"

// ring is a byte ring buffer that grows on demand up to a limit, and gives
// its memory back once it has stayed empty a while (shrink, called by the
// connection's reclaim timer), so what a connection holds follows the
// bytes it holds, not the most it ever held (issue 12).
type ring struct {
	buf   []byte
	head  int // index of the first byte
	n     int // bytes held, starting at head
	limit int // the most the ring may ever hold

	emptied time.Time // when the ring last became empty (armReclaim)
}

func (r *ring) len() int  { return r.n }
func (r *ring) free() int { return r.limit - r.n }

// ringKeep is the largest backing array a ring keeps when it empties. A
// connection trading small messages then reuses it without allocating;
// anything larger is given back.
const ringKeep = 4096

// ringMin is the smallest backing array a ring allocates. A ring grows to
// what it is asked to hold (in powers of two from here), not straight to
// ringKeep: a short connection that trades a few bytes each way then
// allocates a few hundred bytes per ring instead of four 4 KiB arrays
// (issue 13 item 6).
const ringMin = 256

// grow makes room for at least need bytes in all, keeping the content
// (including bytes written beyond n by writeAt) in order.
func (r *ring) grow(need int) {
	if need <= len(r.buf) {
		return
	}
	size := max(len(r.buf)*2, ringMin)
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
// making it part of them until commit: the text of a SYN waits there until
// the connection is synchronized. (Out-of-order data does not: it waits in
// the reassembly chunks, ooo.go, so that it costs what was received.) The
// caller keeps off+len(p) within free().
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

// wraps reports whether the bytes at [off, off+k) wrap around the end of
// the backing array, so that peek needs a scratch buffer for them.
func (r *ring) wraps(off, k int) bool {
	if k == 0 {
		return false
	}
	return (r.head+off)%len(r.buf)+k > len(r.buf)
}

// runAt is how many bytes from offset off lie contiguous in the backing
// array, before it wraps (0 for an empty ring).
func (r *ring) runAt(off int) int {
	if len(r.buf) == 0 {
		return 0
	}
	return len(r.buf) - (r.head+off)%len(r.buf)
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
	r.head = (r.head + k) % len(r.buf)
	if r.n == 0 {
		r.head = 0
	}
}

// shrink gives the backing array back when the ring is empty and larger
// than ringKeep (the connection's reclaim timer calls it a while after the
// ring emptied, armReclaim). The caller must hold no uncommitted bytes
// (writeAt) in the ring.
func (r *ring) shrink() {
	if r.n == 0 && len(r.buf) > ringKeep {
		r.buf = nil
		r.head = 0
	}
}

// size is the length of the backing array: the memory the ring holds.
func (r *ring) size() int { return len(r.buf) }

// release frees the memory of an empty ring (for TIME-WAIT and CLOSED).
func (r *ring) release() {
	r.buf = nil
	r.head = 0
	r.n = 0
}

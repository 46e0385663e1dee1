package tcp

import "time"

// Lent receive memory (issue 13 item 1). A link that delivers a packet in
// a buffer of its own can lend the buffer (HandleLentSegment): in-order text
// large enough to be worth it then stays where the link put it, queued
// behind the receive ring's bytes, and RECEIVE (RFC 9293 3.10.3) copies it
// out to the reader from there. That is one copy of each byte fewer than
// taking it into the ring and reading it out again, whether or not a
// reader is waiting (PostRead covers only a waiting reader, and only as
// much as its buffer holds). The core never gives memory back itself: a
// loan whose bytes have all been read, or dropped, is handed back to the
// runtime (TakeReturned), which returns it to its link.
//
// The in-order bytes not yet read are then a sequence: first the ring's
// bytes up to lent.before, then the queue q in order, each entry either
// lent bytes or a run of the ring's bytes that arrived after lent ones.
// With q empty, the ring holds all of them, as without lending.

// Loan is memory a link lent with a delivered segment (HandleLentSegment). The
// core keeps it while it holds the segment's bytes and then hands it back
// (TakeReturned); it never calls Release itself.
type Loan interface {
	// Release gives the memory back to the link, once.
	Release()
	// Size is the memory the loan holds, in bytes: what BufferMemory
	// counts for it.
	Size() int
}

// lendMin is the least in-order text a segment must carry for its loan to
// be taken: below it a copy into the ring costs less than the queue entry
// and the return, and a small segment would hold a whole packet buffer.
const lendMin = 4096

// lentChunk is one entry of the queue: lent bytes not yet read, with
// their loan, or (loan nil) a run of ring bytes.
type lentChunk struct {
	data []byte
	loan Loan
	ring int
}

// lentQueue is the part of the received in-order bytes that follows the
// first lent segment still unread.
type lentQueue struct {
	q      []lentChunk
	head   int // q[head:] is the queue
	before int // ring bytes before q[head]
	bytes  int // lent bytes not yet read
	mem    int // the Size of the loans held

	returned []Loan // loans done with, for TakeReturned
	offer    Loan   // the loan of the segment being handled
}

func (l *lentQueue) empty() bool { return l == nil || l.head == len(l.q) }

// HandleLentSegment is HandleSegment for a segment whose payload lies in
// memory its link lends (a link.Loan): the connection may keep the
// payload there past the call instead of copying it (in-order text of at
// least lendMin bytes, lendable), and then owes the loan back (it comes
// out of TakeReturned once its bytes have been read or dropped). It
// reports whether it kept the loan.
func (c *Conn) HandleLentSegment(now time.Time, seg *Segment, loan Loan) bool {
	if loan == nil || len(seg.Payload) < lendMin {
		c.HandleSegment(now, seg)
		return false
	}
	l := c.rcv.lent
	if l == nil {
		l = new(lentQueue) // once per connection that gets large segments
		c.rcv.lent = l
	}
	l.offer = loan
	c.HandleSegment(now, seg)
	taken := l.offer == nil
	l.offer = nil
	return taken
}

// offered is the loan of the segment being handled, if any.
func (c *Conn) offered() Loan {
	if c.rcv.lent == nil {
		return nil
	}
	return c.rcv.lent.offer
}

// push appends e. The entries already read are dropped first when the
// array is full, so a queue that never quite empties (a reader always a
// segment behind) reuses its array instead of growing without end.
func (l *lentQueue) push(e lentChunk) {
	if len(l.q) == cap(l.q) && l.head > 0 {
		n := copy(l.q, l.q[l.head:])
		clear(l.q[n:])
		l.q, l.head = l.q[:n], 0
	}
	l.q = append(l.q, e)
}

// pop drops the first entry.
func (l *lentQueue) pop() {
	l.q[l.head] = lentChunk{}
	l.head++
	if l.head == len(l.q) {
		l.q, l.head = l.q[:0], 0
	}
}

// rcvBuffered is how many in-order bytes wait to be read: the ring's and
// the lent ones.
func (c *Conn) rcvBuffered() int {
	if c.rcv.lent == nil {
		return c.rcv.buf.len()
	}
	return c.rcv.buf.len() + c.rcv.lent.bytes
}

// lentMem is the memory of the loans held.
func (c *Conn) lentMem() int {
	if c.rcv.lent == nil {
		return 0
	}
	return c.rcv.lent.mem
}

// lendable reports whether c takes the loan of a segment whose n bytes of
// in-order text (what is left after placeDirect) are to be buffered: when
// they are many, the loan is at most twice their size (a small piece of
// a large buffer would hold the whole buffer), the stack has memory to
// spare, and the reader still reads.
func (c *Conn) lendable(loan Loan, n int) bool {
	return loan != nil && n >= lendMin && loan.Size() <= 2*n &&
		c.memState == MemoryNormal && !c.readShut
}

// takeLoan queues data, the lent in-order text of the segment being
// handled, behind the bytes buffered before it, and takes its loan.
func (c *Conn) takeLoan(data []byte) {
	l := c.rcv.lent
	loan := l.offer
	l.offer = nil
	if l.empty() {
		l.before = c.rcv.buf.len()
	}
	l.push(lentChunk{data: data, loan: loan})
	l.bytes += len(data)
	l.mem += loan.Size()
}

// ringAppended notes that k bytes were appended to the receive ring: with
// lent bytes queued they come after those.
func (c *Conn) ringAppended(k int) {
	l := c.rcv.lent
	if k == 0 || l.empty() {
		return
	}
	if last := &l.q[len(l.q)-1]; last.loan == nil {
		last.ring += k
		return
	}
	l.push(lentChunk{ring: k})
}

// readBuffered copies the first buffered in-order bytes into p and
// consumes them (peek false), or only copies them (peek true). It returns
// how many it copied.
func (c *Conn) readBuffered(p []byte, peek bool) int {
	l := c.rcv.lent
	if l.empty() {
		if peek {
			k := min(len(p), c.rcv.buf.len())
			// peek returns a slice of the ring when the bytes are
			// contiguous, else copies them into p; copy handles both.
			copy(p, c.rcv.buf.peek(0, k, p))
			return k
		}
		return c.rcv.buf.read(p)
	}
	if peek {
		return c.peekLent(p)
	}
	n := 0
	for n < len(p) && !l.empty() {
		if l.before > 0 {
			k := c.rcv.buf.read(p[n:min(len(p), n+l.before)])
			l.before -= k
			n += k
			continue
		}
		ch := &l.q[l.head]
		if ch.loan == nil {
			l.before = ch.ring
			l.pop()
			continue
		}
		k := copy(p[n:], ch.data)
		ch.data = ch.data[k:]
		l.bytes -= k
		n += k
		if len(ch.data) == 0 {
			l.giveBack(ch.loan)
			l.pop()
		}
	}
	// The queue emptied: what is left is the ring's.
	n += c.rcv.buf.read(p[n:])
	return n
}

// peekLent is readBuffered's peek with lent bytes queued.
func (c *Conn) peekLent(p []byte) int {
	l := c.rcv.lent
	n, off := 0, 0 // off: ring bytes passed
	ringRun := func(k int) {
		k = min(k, len(p)-n)
		copy(p[n:n+k], c.rcv.buf.peek(off, k, p[n:n+k]))
		n += k
		off += k
	}
	ringRun(l.before)
	for i := l.head; i < len(l.q) && n < len(p); i++ {
		if ch := &l.q[i]; ch.loan == nil {
			ringRun(ch.ring)
		} else {
			n += copy(p[n:], ch.data)
		}
	}
	return n
}

// giveBack hands a loan back to the runtime (TakeReturned).
func (l *lentQueue) giveBack(loan Loan) {
	l.mem -= loan.Size()
	l.returned = append(l.returned, loan)
}

// discardBuffered drops every buffered in-order byte, the ring's and the
// lent ones, whose loans go back.
func (c *Conn) discardBuffered() {
	c.rcv.buf.discard(c.rcv.buf.len())
	l := c.rcv.lent
	if l == nil {
		return
	}
	for !l.empty() {
		if ch := &l.q[l.head]; ch.loan != nil {
			l.giveBack(ch.loan)
		}
		l.pop()
	}
	l.before, l.bytes = 0, 0
}

// TakeReturned returns the loans (HandleLentSegment) the connection is done
// with, for the runtime to release, and forgets them. The slice is valid
// until the next call into c.
func (c *Conn) TakeReturned() []Loan {
	l := c.rcv.lent
	if l == nil || len(l.returned) == 0 {
		return nil
	}
	r := l.returned
	l.returned = r[:0]
	return r
}

// LentBytes is how many of the bytes waiting to be read lie in lent
// memory (HandleLentSegment) rather than in the receive ring.
func (c *Conn) LentBytes() int { return c.rcvBuffered() - c.rcv.buf.len() }

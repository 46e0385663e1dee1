package tcp

import "slices"

// This file keeps out-of-order data (RFC 9293 section 3.10.7.4, "seventh":
// segments beyond RCV.NXT are kept for later). What is kept costs what was
// received, not where it lands: each segment's new bytes are copied into a
// chunk of their own size, beside the receive ring rather than in it, so a
// byte a megabyte ahead of RCV.NXT costs a few dozen bytes, not a megabyte
// of ring (issue 12). The total is bounded per connection
// (Config.OutOfOrderLimit) and can be given back at any time (Conn.Prune),
// as Linux bounds and prunes its out-of-order queue (tcp_prune_ofo_queue).

// span is a range [start, end) of sequence-space offsets from RCV.NXT
// holding out-of-order data.
type span struct{ start, end int }

// oooChunk is bytes received out of order, at offset off from RCV.NXT.
type oooChunk struct {
	off  int
	data []byte
	cost int // what the chunk counts against the limit: see chunkCost
}

// oooChunkOverhead is what a chunk costs beyond its bytes: its entry in
// the list and the allocator's rounding, roughly. Counting it makes a
// flood of one-byte segments cost what it really costs (Linux counts an
// skb's truesize, not its length, for the same reason).
const oooChunkOverhead = 64

func chunkCost(n int) int { return n + oooChunkOverhead }

// reassembly holds the bytes beyond RCV.NXT that have arrived out of
// order, as sorted, disjoint chunks, and the islands they form.
type reassembly struct {
	chunks []oooChunk // sorted by off, disjoint
	spans  []span     // the islands: chunks merged where they touch; sorted, disjoint, non-adjacent
	last   span       // the most recently received range, whose island goes first in SACK (RFC 2018 section 4)
	cost   int        // sum of the chunks' costs
}

// maxOOOSpans bounds the out-of-order islands one connection keeps, so a
// peer sending one-byte fragments cannot make the list (and the work of
// keeping it sorted) grow with the window.
const maxOOOSpans = 64

// oooResult says what add did with a segment.
type oooResult int

const (
	oooStored    oooResult = iota // new bytes kept (or nothing new: a duplicate)
	oooTooMany                    // dropped: it would make island maxOOOSpans+1
	oooOverLimit                  // dropped: no room under the byte limit
)

// add keeps the bytes of data, which lie at offset off from RCV.NXT, that
// are not held yet. limit bounds the total cost. When the new bytes do not
// fit, chunks lying beyond them are dropped first to make room (data
// nearer RCV.NXT is worth more: it is what fills the next hole; Linux's
// tcp_prune_ofo_queue also drops from the far end). It returns what it
// did and how many bytes it dropped to make room. Nothing dropped was
// ever acknowledged: RFC 2018 section 8 lets a receiver discard data it
// has SACKed, and the sender keeps it until it is cumulatively ACKed.
func (q *reassembly) add(off int, data []byte, limit int) (oooResult, int) {
	start, end := off, off+len(data)
	// Would it make a new island?
	i := 0
	for i < len(q.spans) && q.spans[i].end < start {
		i++
	}
	if (i == len(q.spans) || q.spans[i].start > end) && len(q.spans) >= maxOOOSpans {
		return oooTooMany, 0
	}
	need := q.newCost(start, end)
	pruned := 0
	for q.cost+need > limit && len(q.chunks) > 0 && q.chunks[len(q.chunks)-1].off >= end {
		pruned += len(q.chunks[len(q.chunks)-1].data)
		q.dropLast()
	}
	if q.cost+need > limit {
		q.rebuild()
		return oooOverLimit, pruned
	}
	// Copy in the parts of [start, end) that no chunk holds yet.
	j := 0
	pos := start
	for pos < end {
		for j < len(q.chunks) && q.chunks[j].off+len(q.chunks[j].data) <= pos {
			j++
		}
		gapEnd := end
		if j < len(q.chunks) {
			if q.chunks[j].off <= pos {
				pos = q.chunks[j].off + len(q.chunks[j].data) // held already
				continue
			}
			gapEnd = min(end, q.chunks[j].off)
		}
		b := make([]byte, gapEnd-pos)
		copy(b, data[pos-start:gapEnd-start])
		ch := oooChunk{off: pos, data: b, cost: chunkCost(len(b))}
		q.chunks = slices.Insert(q.chunks, j, ch)
		q.cost += ch.cost
		j++
		pos = gapEnd
	}
	q.last = span{start, end}
	q.rebuild()
	return oooStored, pruned
}

// newCost is what storing [start, end) would add: the bytes no chunk holds
// yet, each run of them in a chunk of its own.
func (q *reassembly) newCost(start, end int) int {
	cost := 0
	pos := start
	for _, ch := range q.chunks {
		chEnd := ch.off + len(ch.data)
		if chEnd <= pos {
			continue
		}
		if ch.off >= end {
			break
		}
		if ch.off > pos {
			cost += chunkCost(ch.off - pos)
		}
		pos = chEnd
		if pos >= end {
			return cost
		}
	}
	if pos < end {
		cost += chunkCost(end - pos)
	}
	return cost
}

func (q *reassembly) dropLast() {
	n := len(q.chunks) - 1
	q.cost -= q.chunks[n].cost
	q.chunks[n] = oooChunk{}
	q.chunks = q.chunks[:n]
}

// rebuild derives the islands from the chunks.
func (q *reassembly) rebuild() {
	q.spans = q.spans[:0]
	for _, ch := range q.chunks {
		end := ch.off + len(ch.data)
		if n := len(q.spans); n > 0 && q.spans[n-1].end == ch.off {
			q.spans[n-1].end = end
			continue
		}
		q.spans = append(q.spans, span{ch.off, end})
	}
	if len(q.chunks) == 0 {
		// Give the lists back: an idle connection holds no
		// reassembly memory.
		q.chunks, q.spans = nil, nil
	}
}

// advance shifts every offset down by k bytes (RCV.NXT moved forward by k),
// forgetting what now lies before RCV.NXT.
func (q *reassembly) advance(k int) {
	if len(q.chunks) == 0 {
		return
	}
	drop := 0
	for i := range q.chunks {
		ch := &q.chunks[i]
		ch.off -= k
		if ch.off+len(ch.data) <= 0 {
			drop++
			continue
		}
		if ch.off < 0 {
			ch.data = ch.data[-ch.off:]
			ch.off = 0
		}
	}
	for i := range drop {
		q.cost -= q.chunks[i].cost
	}
	q.chunks = slices.Delete(q.chunks, 0, drop)
	q.last.start -= k
	q.last.end -= k
	q.rebuild()
}

// front removes and returns the chunk at offset 0, now in order, or nil.
func (q *reassembly) front() []byte {
	if len(q.chunks) == 0 || q.chunks[0].off != 0 {
		return nil
	}
	b := q.chunks[0].data
	q.cost -= q.chunks[0].cost
	q.chunks = slices.Delete(q.chunks, 0, 1)
	q.rebuild()
	return b
}

// bytes is how many out-of-order bytes are held.
func (q *reassembly) bytes() int {
	n := 0
	for _, s := range q.spans {
		n += s.end - s.start
	}
	return n
}

// clear drops everything and reports how many bytes that was.
func (q *reassembly) clear() int {
	n := q.bytes()
	*q = reassembly{}
	return n
}

func (q *reassembly) empty() bool { return len(q.chunks) == 0 }

// receiveOutOfOrder keeps data that arrived at offset off > 0 from
// RCV.NXT, within the window, and counts what happened to it.
func (c *Conn) receiveOutOfOrder(off int, data []byte) {
	res, pruned := c.rcv.ooo.add(off, data, c.cfg.outOfOrderLimit())
	c.stats.OutOfOrderPruned += uint64(pruned)
	if res == oooStored {
		c.stats.OutOfOrderSegs++
		return
	}
	// Dropped unacknowledged: the peer sends it again. (Linux counts
	// this as TCPOFODrop.)
	c.stats.OutOfOrderDropped++
}

// Prune gives back the memory of the out-of-order data the connection
// holds, and the arrays of its empty rings, and reports how many
// out-of-order bytes it dropped: what a stack calls under
// memory pressure, as Linux's tcp_prune_queue drops the out-of-order queue
// first. Only data never acknowledged goes: RCV.NXT and everything before
// it stay, and so does the window we advertised (its right edge never
// moves back, RFC 9293 3.8.6 and RFC 7323 section 2.4: the room the
// dropped bytes took is still offered, they just have to come again).
// Some of the dropped data may have been SACKed; RFC 2018 section 8 lets a
// receiver discard it, and the sender keeps it until it is cumulatively
// acknowledged. Our next ACKs stop reporting those blocks.
func (c *Conn) Prune() int {
	c.reclaimBuffers() // and rings that are empty need not wait for the timer
	n := c.rcv.ooo.clear()
	c.stats.OutOfOrderPruned += uint64(n)
	return n
}

// BufferMemory reports the memory the connection's buffers hold now: the
// backing arrays of both rings plus the out-of-order chunks (with their
// bookkeeping), in bytes.
func (c *Conn) BufferMemory() int {
	return c.snd.buf.size() + c.rcv.buf.size() + c.rcv.ooo.cost
}

package tcp

import (
	"slices"

	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/wire"
)

// This file keeps out-of-order data (RFC 9293 section 3.10.7.4, "seventh":
// segments beyond RCV.NXT are kept for later). What is kept costs what was
// received, not where it lands: each segment's new bytes are copied into a
// chunk of their own size, beside the receive ring rather than in it, so a
// byte a megabyte ahead of RCV.NXT costs a few dozen bytes, not a megabyte
// of ring (issue 12). The total is bounded per connection (oooLimit: by
// default what the window lets the peer send, so that nothing inside the
// window is dropped) and can be given back at any time (Conn.Prune),
// as Linux bounds and prunes its out-of-order queue (tcp_prune_ofo_queue).

// span is a range [start, end) of stream offsets (see reassembly.base)
// holding out-of-order data.
type span struct{ start, end int }

// oooChunk is bytes received out of order, at stream offset off.
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
// order, as sorted, disjoint chunks, and the islands they form. Positions
// are stream offsets: bytes counted from an origin that stays put while
// RCV.NXT moves (base is RCV.NXT's), so taking in-order data never shifts
// what is held.
type reassembly struct {
	base   int        // stream offset of RCV.NXT
	chunks []oooChunk // sorted by off, disjoint, all beyond base
	spans  []span     // the islands: chunks merged where they touch; sorted, disjoint, non-adjacent
	cost   int        // sum of the chunks' costs

	// recent names the islands most recently reported as the first
	// block of a SACK option, the most recent first, each by a stream
	// offset inside it: RFC 2018 section 4 fills the blocks after the
	// first by "repeating the most recently reported SACK blocks". An
	// offset finds its island again whatever the island has grown into
	// since, and one that names no island any more (delivered, pruned)
	// is skipped. A fixed array: keeping the order allocates nothing.
	recent  [wire.MaxSACKBlocks]int
	nrecent int
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

// find returns the index of the first chunk that ends after pos.
func (q *reassembly) find(pos int) int {
	lo, hi := 0, len(q.chunks)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if ch := q.chunks[m]; ch.off+len(ch.data) <= pos {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// add keeps the bytes of data, which lie off bytes beyond RCV.NXT, that
// are not held yet. limit bounds the total cost. When the new bytes do not
// fit, chunks lying beyond them are dropped first to make room (data
// nearer RCV.NXT is worth more: it is what fills the next hole; Linux's
// tcp_prune_ofo_queue also drops from the far end). It returns what it
// did and how many bytes it dropped to make room. Nothing dropped was
// ever acknowledged: RFC 2018 section 8 lets a receiver discard data it
// has SACKed, and the sender keeps it until it is cumulatively ACKed.
func (q *reassembly) add(off int, data []byte, limit int) (oooResult, int) {
	start, end := q.base+off, q.base+off+len(data)
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
		q.tidy()
		return oooOverLimit, pruned
	}
	// Copy in the parts of [start, end) that no chunk holds yet.
	j := q.find(start)
	for pos := start; pos < end; {
		gapEnd := end
		if j < len(q.chunks) {
			if q.chunks[j].off <= pos {
				pos = q.chunks[j].off + len(q.chunks[j].data) // held already
				j++
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
	q.addSpan(start, end)
	return oooStored, pruned
}

// island returns the index of the island holding stream offset pos, or
// -1 if none does.
func (q *reassembly) island(pos int) int {
	lo, hi := 0, len(q.spans)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if q.spans[m].end <= pos {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(q.spans) && q.spans[lo].start <= pos {
		return lo
	}
	return -1
}

// held returns the first run of [start, end) that an island holds
// already, if any.
func (q *reassembly) held(start, end int) (span, bool) {
	lo, hi := 0, len(q.spans)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if q.spans[m].end <= start {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == len(q.spans) || q.spans[lo].start >= end {
		return span{}, false
	}
	return span{max(start, q.spans[lo].start), min(end, q.spans[lo].end)}, true
}

// touch makes the island holding pos the most recently reported one: it
// holds the segment that triggers the ACK about to go out, which RFC 2018
// section 4 puts in the first SACK block. Entries for the same island,
// or for none, leave the list.
func (q *reassembly) touch(pos int) {
	k := q.island(pos)
	if k < 0 {
		return
	}
	var keep [len(q.recent)]int
	keep[0] = pos
	n := 1
	for _, p := range q.recent[:q.nrecent] {
		if n == len(keep) {
			break
		}
		if j := q.island(p); j >= 0 && j != k {
			keep[n] = p
			n++
		}
	}
	q.recent, q.nrecent = keep, n
}

// sackBlocks puts into out up to limit islands, in the order RFC 2018
// section 4 gives SACK blocks: the most recently reported first (the
// first of them holds the segment that triggered this ACK, see touch),
// then, while room is left, the others from RCV.NXT on: the holes
// nearest RCV.NXT are the ones the sender must fill first. It returns how
// many it put.
func (q *reassembly) sackBlocks(out []span, limit int) int {
	limit = min(limit, len(out))
	var used [len(q.recent)]int // islands already in out, by index
	n := 0
	for _, p := range q.recent[:q.nrecent] {
		if n == limit {
			return n
		}
		k := q.island(p)
		if k < 0 || slices.Contains(used[:n], k) {
			continue
		}
		used[n] = k
		out[n] = q.spans[k]
		n++
	}
	recent := used[:n]
	for k, sp := range q.spans {
		if n == limit {
			break
		}
		if !slices.Contains(recent, k) {
			out[n] = sp
			n++
		}
	}
	return n
}

// addSpan merges [start, end), now held whole, into the islands.
func (q *reassembly) addSpan(start, end int) {
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
	if i == j {
		q.spans = slices.Insert(q.spans, i, span{start, end})
		return
	}
	q.spans[i] = span{start, end}
	q.spans = slices.Delete(q.spans, i+1, j)
}

// newCost is what storing [start, end) would add: the bytes no chunk holds
// yet, each run of them in a chunk of its own.
func (q *reassembly) newCost(start, end int) int {
	cost := 0
	pos := start
	for _, ch := range q.chunks[q.find(start):] {
		if ch.off >= end {
			break
		}
		if ch.off > pos {
			cost += chunkCost(ch.off - pos)
		}
		pos = ch.off + len(ch.data)
		if pos >= end {
			return cost
		}
	}
	if pos < end {
		cost += chunkCost(end - pos)
	}
	return cost
}

// dropLast drops the farthest chunk, which ends the last island.
func (q *reassembly) dropLast() {
	n := len(q.chunks) - 1
	ch := q.chunks[n]
	q.cost -= ch.cost
	q.chunks[n] = oooChunk{}
	q.chunks = q.chunks[:n]
	// Chunks within an island touch, so the island loses its tail.
	k := len(q.spans) - 1
	if q.spans[k].start >= ch.off {
		q.spans = q.spans[:k]
	} else {
		q.spans[k].end = ch.off
	}
}

// deliver is called when RCV.NXT has moved k bytes forward: what is held
// now before RCV.NXT is forgotten, and the chunks that continue the
// in-order data are written into r and leave. It returns how many bytes
// they added, by which RCV.NXT moves on too.
func (q *reassembly) deliver(k int, r *ring) int {
	q.base += k
	if len(q.chunks) == 0 {
		return 0
	}
	total := 0
	i := q.find(q.base) // chunks before i lie wholly before RCV.NXT
	for ; i < len(q.chunks) && q.chunks[i].off <= q.base; i++ {
		ch := q.chunks[i]
		p := ch.data[q.base-ch.off:]
		w := r.write(p)
		total += w
		q.base += w
		if w < len(p) {
			break // no room (cannot happen: it was in the window); the rest stays
		}
	}
	for _, ch := range q.chunks[:i] {
		q.cost -= ch.cost
	}
	q.chunks = slices.Delete(q.chunks, 0, i)
	if len(q.chunks) > 0 && q.chunks[0].off < q.base {
		d := q.base - q.chunks[0].off
		q.chunks[0].data = q.chunks[0].data[d:]
		q.chunks[0].off = q.base
	}
	i = 0
	for i < len(q.spans) && q.spans[i].end <= q.base {
		i++
	}
	q.spans = slices.Delete(q.spans, 0, i)
	if len(q.spans) > 0 && q.spans[0].start < q.base {
		q.spans[0].start = q.base
	}
	q.tidy()
	return total
}

// tidy gives the lists back when nothing is held: an idle connection
// holds no reassembly memory.
func (q *reassembly) tidy() {
	if len(q.chunks) == 0 {
		q.chunks, q.spans = nil, nil
	}
}

// rel returns s as offsets from RCV.NXT.
func (q *reassembly) rel(s span) span { return span{s.start - q.base, s.end - q.base} }

// bytes is how many out-of-order bytes are held.
func (q *reassembly) bytes() int {
	n := 0
	for _, s := range q.spans {
		n += s.end - s.start
	}
	return n
}

// clear drops everything held and reports how many bytes that was.
func (q *reassembly) clear() int {
	n := q.bytes()
	*q = reassembly{base: q.base}
	return n
}

func (q *reassembly) empty() bool { return len(q.chunks) == 0 }

// receiveOutOfOrder keeps data that arrived at offset off > 0 from
// RCV.NXT, within the window, and counts what happened to it.
func (c *Conn) receiveOutOfOrder(off int, data []byte) {
	c.noteHeldDuplicate(off, len(data))
	res, pruned := c.rcv.ooo.add(off, data, c.oooLimit())
	c.stats.OutOfOrderPruned += uint64(pruned)
	if res == oooStored {
		c.stats.OutOfOrderSegs++
		c.rcv.ooo.touch(c.rcv.ooo.base + off)
		return
	}
	// Dropped unacknowledged: the peer sends it again. (Linux counts
	// this as TCPOFODrop.)
	c.stats.OutOfOrderDropped++
}

// oooLimit is the out-of-order memory the connection may hold now
// (Config.OutOfOrderLimit). The default follows the window: everything
// the peer may send beyond RCV.NXT (rcvWindow, what segment processing
// accepts) must fit, or a flight that fills the window with its first
// segment lost would lose its far end (RFC 9293 3.8.6: data inside the
// window is acceptable). The segments are counted at the smaller of the
// two MSSes: the peer sends no larger than ours allows, and on a
// symmetric path no smaller than its own.
func (c *Conn) oooLimit() int {
	return c.cfg.outOfOrderLimit(int(c.rcvWindow()), c.rcvSegSize())
}

// rcvSegSize is the size the peer's full segments are taken to have, for
// oooLimit.
func (c *Conn) rcvSegSize() int {
	return min(c.mss, int(c.ourMSS()))
}

// noteHeldDuplicate reports, in a D-SACK block, the first run of the n
// bytes at offset off from RCV.NXT that an island holds already (RFC 2883
// section 4.1.3; sections 4.2.2 and 4.2.3: of several duplicate runs only
// the first is reported).
func (c *Conn) noteHeldDuplicate(off, n int) {
	if !c.sackOK {
		return
	}
	if d, ok := c.rcv.ooo.held(c.rcv.ooo.base+off, c.rcv.ooo.base+off+n); ok {
		d = c.rcv.ooo.rel(d)
		c.noteDuplicate(c.rcv.nxt.Add(seqnum.Size(d.start)), c.rcv.nxt.Add(seqnum.Size(d.end)))
	}
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

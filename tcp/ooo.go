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

// oooChunkOverhead is what a chunk costs beyond its bytes: its node in
// the tree and the allocator's rounding, roughly. Counting it makes a
// flood of one-byte segments cost what it really costs (Linux counts an
// skb's truesize, not its length, for the same reason). Every island is
// at least one chunk, so the limit bounds the number of islands too: there
// is no separate count, and a window full of islands (a slow-start
// overshoot losing every other segment) is kept whole.
const oooChunkOverhead = 64

// oooExtraChunks is how many chunks beyond one per full-sized segment the
// default limit pays for (config.go outOfOrderLimit): the pieces a
// retransmission cut differently from the original leaves.
const oooExtraChunks = 64

func chunkCost(n int) int { return n + oooChunkOverhead }

// reassembly holds the bytes beyond RCV.NXT that have arrived out of
// order, as disjoint chunks, and the islands they form, each in a
// balanced tree (itree.go) so that thousands of islands cost O(log n) a
// segment. Positions are stream offsets: bytes counted from an origin
// that stays put while RCV.NXT moves (base is RCV.NXT's), so taking
// in-order data never shifts what is held.
type reassembly struct {
	base   int   // stream offset of RCV.NXT
	chunks itree // the bytes: disjoint, all beyond base
	spans  itree // the islands: chunks merged where they touch; disjoint, non-adjacent
	cost   int   // sum of the chunks' costs
	nbytes int   // sum of the chunks' lengths

	// recent names the islands most recently reported as the first
	// block of a SACK option, the most recent first, each by a stream
	// offset inside it: RFC 2018 section 4 fills the blocks after the
	// first by "repeating the most recently reported SACK blocks". An
	// offset finds its island again whatever the island has grown into
	// since, and one that names no island any more (delivered, pruned)
	// is skipped. A fixed array: keeping the order allocates nothing.
	recent  [wire.MaxSACKBlocks]int
	nrecent int

	// free holds up to maxFreeNodes nodes that left the trees (linked
	// by right), for the next chunk or island: a steady flow of holes
	// filled and islands made then allocates only the chunks' bytes.
	free  *inode
	nfree int
}

// maxFreeNodes bounds the spare nodes a connection keeps.
const maxFreeNodes = 64

// node returns a zeroed node, a spare one if any.
func (q *reassembly) node() *inode {
	n := q.free
	if n == nil {
		return new(inode)
	}
	q.free, n.right = n.right, nil
	q.nfree--
	return n
}

// release keeps n, which left a tree, as a spare.
func (q *reassembly) release(n *inode) {
	if q.nfree == maxFreeNodes {
		return
	}
	*n = inode{right: q.free}
	q.free = n
	q.nfree++
}

// oooResult says what add did with a segment.
type oooResult int

const (
	oooStored    oooResult = iota // new bytes kept (or nothing new: a duplicate)
	oooOverLimit                  // dropped: no room under the byte limit
)

// add keeps the bytes of data, which lie off bytes beyond RCV.NXT, that
// are not held yet. limit bounds the total cost. When the new bytes do not
// fit, chunks lying beyond them are dropped first to make room (data
// nearer RCV.NXT is worth more: it is what fills the next hole; Linux's
// tcp_prune_ofo_queue also drops from the far end). It returns what it
// did and how many bytes it dropped to make room. Nothing dropped was
// ever acknowledged: RFC 2018 section 8 lets a receiver discard data it
// has SACKed, and the sender keeps it until it is cumulatively ACKed.
//
// The work is O(log n) per island the segment touches: the new bytes are
// the gaps between the islands it overlaps, and those islands merge into
// one, so a segment pays for walking an island only once.
func (q *reassembly) add(off int, data []byte, limit int) (oooResult, int) {
	start, end := q.base+off, q.base+off+len(data)
	need := q.newCost(start, end)
	if need == 0 {
		return oooStored, 0 // a duplicate: every byte is held
	}
	pruned := 0
	for q.cost+need > limit {
		last := q.chunks.max()
		if last == nil || last.start < end {
			break
		}
		pruned += len(last.data)
		q.dropLast()
	}
	if q.cost+need > limit {
		return oooOverLimit, pruned
	}
	// Copy in the gaps between the islands: the bytes no chunk holds.
	for pos := start; pos < end; {
		gapEnd := end
		if sp := q.spans.ceilEnd(pos); sp != nil {
			if sp.start <= pos {
				pos = sp.end // held already
				continue
			}
			gapEnd = min(end, sp.start)
		}
		b := make([]byte, gapEnd-pos)
		copy(b, data[pos-start:gapEnd-start])
		ch := q.node()
		ch.start, ch.end, ch.data, ch.cost = pos, gapEnd, b, chunkCost(len(b))
		q.chunks.insert(ch)
		q.cost += ch.cost
		q.nbytes += len(b)
		pos = gapEnd
	}
	q.addSpan(start, end)
	return oooStored, pruned
}

// newCost is what storing [start, end) would add: the bytes no chunk holds
// yet, each gap between islands in a chunk of its own.
func (q *reassembly) newCost(start, end int) int {
	cost := 0
	for pos := start; pos < end; {
		gapEnd := end
		if sp := q.spans.ceilEnd(pos); sp != nil {
			if sp.start <= pos {
				pos = sp.end
				continue
			}
			gapEnd = min(end, sp.start)
		}
		cost += chunkCost(gapEnd - pos)
		pos = gapEnd
	}
	return cost
}

// island returns the island holding stream offset pos, or nil.
func (q *reassembly) island(pos int) *inode {
	if sp := q.spans.ceilEnd(pos); sp != nil && sp.start <= pos {
		return sp
	}
	return nil
}

// held returns the first run of [start, end) that an island holds
// already, if any.
func (q *reassembly) held(start, end int) (span, bool) {
	sp := q.spans.ceilEnd(start)
	if sp == nil || sp.start >= end {
		return span{}, false
	}
	return span{max(start, sp.start), min(end, sp.end)}, true
}

// touch makes the island holding pos the most recently reported one: it
// holds the segment that triggers the ACK about to go out, which RFC 2018
// section 4 puts in the first SACK block. Entries for the same island,
// or for none, leave the list.
func (q *reassembly) touch(pos int) {
	k := q.island(pos)
	if k == nil {
		return
	}
	var keep [len(q.recent)]int
	keep[0] = pos
	n := 1
	for _, p := range q.recent[:q.nrecent] {
		if n == len(keep) {
			break
		}
		if j := q.island(p); j != nil && j != k {
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
// many it put. It visits at most limit plus len(recent) islands, each
// found in O(log n).
func (q *reassembly) sackBlocks(out []span, limit int) int {
	limit = min(limit, len(out))
	var used [len(q.recent)]int // islands already in out, by start
	n := 0
	for _, p := range q.recent[:q.nrecent] {
		if n == limit {
			return n
		}
		k := q.island(p)
		if k == nil || slices.Contains(used[:n], k.start) {
			continue
		}
		used[n] = k.start
		out[n] = span{k.start, k.end}
		n++
	}
	recent := used[:n]
	for sp := q.spans.min(); sp != nil && n < limit; sp = q.spans.after(sp.start) {
		if !slices.Contains(recent, sp.start) {
			out[n] = span{sp.start, sp.end}
			n++
		}
	}
	return n
}

// addSpan merges [start, end), now held whole, into the islands: the
// islands it overlaps or touches leave, and one covering them all comes
// in (reusing a node that left, so that growing an island allocates
// nothing).
func (q *reassembly) addSpan(start, end int) {
	var node *inode
	for {
		sp := q.spans.ceilEnd(start - 1) // the first island ending at or after start
		if sp == nil || sp.start > end {
			break
		}
		start, end = min(start, sp.start), max(end, sp.end)
		if node != nil {
			q.release(node)
		}
		node = q.spans.remove(sp.start)
	}
	if node == nil {
		node = q.node()
	}
	node.start, node.end = start, end
	q.spans.insert(node)
}

// dropLast drops the farthest chunk, which ends the last island.
func (q *reassembly) dropLast() {
	ch := q.chunks.remove(q.chunks.max().start)
	q.cost -= ch.cost
	q.nbytes -= len(ch.data)
	// Chunks within an island touch, so the island loses its tail.
	if last := q.spans.max(); last.start >= ch.start {
		q.release(q.spans.remove(last.start))
	} else {
		last.end = ch.start
	}
	q.release(ch)
	q.tidy()
}

// deliver is called when RCV.NXT has moved k bytes forward: what is held
// now before RCV.NXT is forgotten, and the chunks that continue the
// in-order data are written into r and leave. It returns how many bytes
// they added, by which RCV.NXT moves on too.
func (q *reassembly) deliver(k int, r *ring) int {
	q.base += k
	total := 0
	for ch := q.chunks.min(); ch != nil && ch.start <= q.base; ch = q.chunks.min() {
		if ch.end > q.base {
			p := ch.data[q.base-ch.start:]
			w := r.write(p)
			total += w
			q.base += w
			if w < len(p) {
				// No room (cannot happen: it was in the window); the
				// rest stays. Moving the first chunk's start up keeps
				// the tree's order.
				d := q.base - ch.start
				ch.data, ch.start = ch.data[d:], q.base
				q.nbytes -= d
				break
			}
		}
		q.chunks.remove(ch.start)
		q.cost -= ch.cost
		q.nbytes -= len(ch.data)
		q.release(ch)
	}
	for sp := q.spans.min(); sp != nil && sp.start < q.base; sp = q.spans.min() {
		if sp.end > q.base {
			sp.start = q.base // the first island: its order stays
			break
		}
		q.release(q.spans.remove(sp.start))
	}
	q.tidy()
	return total
}

// tidy forgets the islands and the spare nodes when no chunk is left:
// the islands were made of chunks, and an idle connection holds no
// reassembly memory.
func (q *reassembly) tidy() {
	if q.chunks.len() == 0 {
		q.spans = itree{}
		q.free, q.nfree = nil, 0
	}
}

// rel returns s as offsets from RCV.NXT.
func (q *reassembly) rel(s span) span { return span{s.start - q.base, s.end - q.base} }

// bytes is how many out-of-order bytes are held.
func (q *reassembly) bytes() int { return q.nbytes }

// clear drops everything held and reports how many bytes that was.
func (q *reassembly) clear() int {
	n := q.nbytes
	*q = reassembly{base: q.base}
	return n
}

func (q *reassembly) empty() bool { return q.chunks.len() == 0 }

// receiveOutOfOrder keeps data that arrived at offset off > 0 from
// RCV.NXT, within the window, and counts what happened to it.
func (c *Conn) receiveOutOfOrder(off int, data []byte) {
	c.noteHeldDuplicate(off, len(data))
	res, pruned := c.rcv.ooo.add(off, data, c.oooLimit())
	if pruned > 0 {
		c.cold().OutOfOrderPruned += uint64(pruned)
	}
	if res == oooStored {
		c.cold().OutOfOrderSegs++
		c.rcv.ooo.touch(c.rcv.ooo.base + off)
		return
	}
	// Dropped unacknowledged: the peer sends it again. (Linux counts
	// this as TCPOFODrop.)
	c.cold().OutOfOrderDropped++
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
	if n > 0 {
		c.cold().OutOfOrderPruned += uint64(n)
	}
	return n
}

// BufferMemory reports the memory the connection's buffers hold now: the
// backing arrays of both rings plus the out-of-order chunks (with their
// bookkeeping) and the memory lent to it (lend.go), in bytes.
func (c *Conn) BufferMemory() int {
	return c.snd.buf.size() + c.rcv.buf.size() + c.rcv.ooo.cost + c.lentMem()
}

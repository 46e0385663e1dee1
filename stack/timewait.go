package stack

import (
	"hash/maphash"
	"time"
	"unsafe"

	"github.com/synack/synack/tcp"
	"github.com/synack/synack/wire"
)

// TIME-WAIT without connections. When a connection enters TIME-WAIT after
// its owner closed it (or its owner closes it there, once nothing is left
// to read), the stack keeps a tcp.TimeWaitRecord (104 bytes) in place of
// the TCPConn and its tcp.Conn (some 1.5 KB), with the connection's number
// so its events go on under the same ID (DESIGN: "a million TIME-WAIT
// entries must be cheap").
//
// The records live in twTable: a queue of slots in order of expiry, which
// is also their storage, and an open-addressing index from 4-tuple to
// slot. 2MSL is the same for every connection of a stack, so records are
// appended in order of expiry and expire from the head, which the stack's
// one clock timer watches next to the connections' heap. A retransmitted
// FIN restarts 2MSL: the record moves to the tail (now + 2MSL is the
// latest expiry there can be), leaving a dead slot behind. A connection
// compacted late (its owner closed it after it entered TIME-WAIT) is put
// in its place by moving the later ones back. Dead slots are skipped at
// the head.
//
// The queue is a list of chunks of 73 slots (a slot is 112 bytes, a chunk
// 8,176 in the allocator's 8 KiB class): it grows by a chunk at the tail
// and gives one back when the head leaves it, keeping one spare, so a
// record is never copied to make room. (It was one ring that grew by a
// quarter and was copied each time: some 620 bytes of allocation per
// record while the table grew, five times the record; issue 13 item 6.)
// With the index (4 bytes a slot at a load of at most one half, doubled
// and rebuilt as the table grows), a record costs about 120 to 130 bytes
// of heap, and a growing table allocates about that much per record.
// Records taken out of the middle leave dead slots there; when they
// outnumber the live ones the queue is compacted in place (compact).

// twSlot is one record and the number of its connection; cid 0 marks a
// dead slot.
type twSlot struct {
	tw  tcp.TimeWaitRecord
	cid uint64
}

// twChunkSlots is how many slots make a chunk: as many as fit in 8 KiB.
const twChunkSlots = 8192 / int(unsafe.Sizeof(twSlot{}))

type twChunk [twChunkSlots]twSlot

// A position names a slot for as long as the record stays in it:
// positions grow by one a slot from the head to the tail, chunks[0][0] is
// position base, and the index holds position + 1.
type twTable struct {
	chunks []*twChunk
	base   uint32 // position of chunks[0][0]
	head   uint32 // position of the first slot in use
	n      int    // slots in use from head, dead ones included
	live   int
	index  []uint32 // by hash of the tuple, linear probing: 0 empty, else position + 1
	spare  *twChunk // the last chunk given back, for the next one needed
	seed   maphash.Seed
}

// twRebase is how far base may grow before the positions are renumbered
// from 0, so that a position + 1 never wraps.
const twRebase = 1 << 31

func (t *twTable) hash(id tcp.Tuple) int {
	return int(maphash.Comparable(t.seed, id) & uint64(len(t.index)-1))
}

// pos is the position of the i-th slot in use.
func (t *twTable) pos(i int) int { return int(t.head) + i }

// at returns the slot at position p.
func (t *twTable) at(p int) *twSlot {
	k := p - int(t.base)
	return &t.chunks[k/twChunkSlots][k%twChunkSlots]
}

// lookup returns the position of id's record, or -1.
func (t *twTable) lookup(id tcp.Tuple) int {
	if t.live == 0 {
		return -1
	}
	mask := len(t.index) - 1
	for i := t.hash(id); ; i = (i + 1) & mask {
		v := t.index[i]
		if v == 0 {
			return -1
		}
		if p := int(v - 1); t.at(p).tw.ID() == id {
			return p
		}
	}
}

// get returns id's record, or nil.
func (t *twTable) get(id tcp.Tuple) *twSlot {
	if p := t.lookup(id); p >= 0 {
		return t.at(p)
	}
	return nil
}

// indexSlot finds the index entry pointing at position p.
func (t *twTable) indexSlot(p int) int {
	mask := len(t.index) - 1
	for i := t.hash(t.at(p).tw.ID()); ; i = (i + 1) & mask {
		if int(t.index[i]) == p+1 {
			return i
		}
	}
}

func (t *twTable) indexAdd(p int) {
	mask := len(t.index) - 1
	i := t.hash(t.at(p).tw.ID())
	for t.index[i] != 0 {
		i = (i + 1) & mask
	}
	t.index[i] = uint32(p + 1)
}

// indexDelete removes entry i, moving later entries of its probe run back
// (deletion without tombstones for linear probing).
func (t *twTable) indexDelete(i int) {
	mask := len(t.index) - 1
	t.index[i] = 0
	for j := (i + 1) & mask; t.index[j] != 0; j = (j + 1) & mask {
		k := t.hash(t.at(int(t.index[j]) - 1).tw.ID())
		// Move j to i unless its home k lies cyclically in (i, j].
		if (i < j && (k <= i || k > j)) || (i > j && k <= i && k > j) {
			t.index[i], t.index[j] = t.index[j], 0
			i = j
		}
	}
}

// reindex makes an index of size entries (a power of two) for the live
// records.
func (t *twTable) reindex(size int) {
	t.index = make([]uint32, size)
	for i := range t.n {
		if p := t.pos(i); t.at(p).cid != 0 {
			t.indexAdd(p)
		}
	}
}

// insert adds a record, in order of expiry.
func (t *twTable) insert(tw tcp.TimeWaitRecord, cid uint64) {
	if 2*(t.live+1) > len(t.index) {
		t.reindex(max(16, 2*len(t.index)))
	}
	if dead := t.n - t.live; dead > t.live && dead >= twChunkSlots {
		t.compact()
	}
	if t.pos(t.n) == int(t.base)+len(t.chunks)*twChunkSlots {
		c := t.spare
		if c == nil {
			c = new(twChunk)
		}
		t.spare = nil
		t.chunks = append(t.chunks, c)
	}
	// Usually the latest: append. Otherwise move the later ones back.
	i := t.n
	exp := tw.Expiry()
	for i > 0 {
		if s := t.at(t.pos(i - 1)); s.cid != 0 && !s.tw.Expiry().After(exp) {
			break
		}
		i--
	}
	for k := t.n; k > i; k-- {
		from, to := t.pos(k-1), t.pos(k)
		f, d := t.at(from), t.at(to)
		*d = *f
		f.cid = 0
		if d.cid != 0 {
			t.repoint(from, to)
		}
	}
	p := t.pos(i)
	*t.at(p) = twSlot{tw: tw, cid: cid}
	t.n++
	t.live++
	t.indexAdd(p)
}

// compact moves the live records to the front of the queue, in order,
// and gives back the chunks left empty behind them. Records taken out of
// the middle (an active open reusing a 4-tuple in TIME-WAIT, a FIN
// restarting 2MSL) leave dead slots that the head reaches only when the
// records before them expire: at a high connection rate with reuse, all
// but a few of the slots of 2MSL's worth of connections. insert compacts
// when the dead outnumber the live (and fill a chunk), so the queue holds
// at most about twice the live records, and the moves cost O(1) a record
// over time. It moves records, so positions taken before it are void: as
// for insert, which calls it.
func (t *twTable) compact() {
	k := 0
	for i := range t.n {
		f := t.at(t.pos(i))
		if f.cid == 0 {
			continue
		}
		if k != i {
			*t.at(t.pos(k)) = *f
			f.cid = 0
		}
		k++
	}
	for i := k; i < t.n; i++ {
		*t.at(t.pos(i)) = twSlot{}
	}
	t.n = k
	// The index points at the old positions: fill it again, in place.
	clear(t.index)
	for i := range k {
		t.indexAdd(t.pos(i))
	}
	// Chunks past the one holding the tail (one kept as the spare).
	need := (int(t.head-t.base) + t.n + twChunkSlots - 1) / twChunkSlots
	need = max(need, 1)
	for j := need; j < len(t.chunks); j++ {
		if t.spare == nil {
			t.spare = t.chunks[j]
		}
		t.chunks[j] = nil
	}
	if need < len(t.chunks) {
		t.chunks = t.chunks[:need]
	}
}

// repoint points the index entry of the record moved from position from to
// to.
func (t *twTable) repoint(from, to int) {
	mask := len(t.index) - 1
	for i := t.hash(t.at(to).tw.ID()); ; i = (i + 1) & mask {
		if int(t.index[i]) == from+1 {
			t.index[i] = uint32(to + 1)
			return
		}
	}
}

// remove drops the record at position p.
func (t *twTable) remove(p int) {
	t.indexDelete(t.indexSlot(p))
	t.at(p).cid = 0
	t.live--
}

// moved re-files the record at p after its expiry moved later (a
// retransmitted FIN restarted 2MSL).
func (t *twTable) moved(p int) {
	s := *t.at(p)
	t.remove(p)
	t.insert(s.tw, s.cid)
}

// earliest returns the first expiry, or the zero time.
func (t *twTable) earliest() time.Time {
	t.skipDead()
	if t.live == 0 {
		return time.Time{}
	}
	return t.at(int(t.head)).tw.Expiry()
}

// skipDead drops the dead slots at the head, and the chunks the head
// leaves behind (keeping one spare).
func (t *twTable) skipDead() {
	for t.n > 0 {
		s := t.at(int(t.head))
		if s.cid != 0 {
			return
		}
		*s = twSlot{}
		t.head++
		t.n--
		if int(t.head-t.base) == twChunkSlots {
			if t.spare == nil {
				t.spare = t.chunks[0]
			}
			t.chunks[0] = nil
			t.chunks = t.chunks[1:]
			t.base += uint32(twChunkSlots)
			if t.base >= twRebase {
				t.rebase()
			}
		}
	}
}

// rebase numbers the positions from 0 again.
func (t *twTable) rebase() {
	for i, v := range t.index {
		if v != 0 {
			t.index[i] = v - t.base
		}
	}
	t.head -= t.base
	t.base = 0
}

// popDue takes out the first record if it has expired at now.
func (t *twTable) popDue(now time.Time) (twSlot, bool) {
	t.skipDead()
	if t.live == 0 || t.at(int(t.head)).tw.Expiry().After(now) {
		if t.live == 0 {
			// Keep the chunk in use (a stack with a few connections at a
			// time keeps a few records); let the spare and a large index
			// go.
			t.spare = nil
			if len(t.index) > 64 {
				t.index = nil
			}
		} else if len(t.index) > 1024 && 8*t.live < len(t.index) {
			t.reindex(len(t.index) / 4)
		}
		return twSlot{}, false
	}
	s := *t.at(int(t.head))
	t.remove(int(t.head))
	return s, true
}

// all calls f for every live record.
func (t *twTable) all(f func(s *twSlot)) {
	for i := range t.n {
		if s := t.at(t.pos(i)); s.cid != 0 {
			f(s)
		}
	}
}

// compact replaces tc, in TIME-WAIT, closed by its owner and with nothing
// left to read, by its record. tc leaves the demux table and the timers,
// and drops its tcp.Conn; its ID goes on in the record's events.
func (sh *shard) compact(tc *TCPConn) {
	tw := tc.tcb.TimeWaitRecord()
	sh.s.remove(tc)
	sh.dropTCB(tc)
	if sh.tw.index == nil {
		sh.tw.seed = maphash.MakeSeed()
	}
	sh.tw.insert(tw, tc.cid)
}

// timeWaitSegment handles a segment for the record at ring position p
// (RFC 9293 3.10.7.4 in TIME-WAIT, tcp.TimeWaitRecord.HandleSegment), or
// reopens the 4-tuple for listener l when seg is a SYN that may (RFC 6191).
// It returns the new connection (none: a listener keeps half-open ones
// without) and the state seg found, as demux1 does.
func (sh *shard) timeWaitSegment(n *nic, id tcp.Tuple, p int, seg *tcp.Segment, now time.Time) (*TCPConn, tcp.State) {
	s := sh.s
	slot := sh.tw.at(p)
	cid := slot.cid
	if seg.Flags&(wire.SYN|wire.ACK|wire.RST) == wire.SYN && slot.tw.Reopen(seg) {
		if l := s.listenerFor(n, id.Local); l != nil {
			// A new incarnation: the old one ends now, and the new ISS
			// starts beyond its sequence space.
			s.setISNNext(id, uint32(slot.tw.NextISS()))
			sh.tw.remove(p)
			sh.stateChanged(cid, id, tcp.Transition{Time: now, From: tcp.TimeWait, To: tcp.Closed, Cause: tcp.UserAbort})
			s.ctr.TCP.TCPTimeWaitReopen.add(1)
			s.lmu.Lock()
			child := sh.onSYN(l, n, id, seg, now)
			s.lmu.Unlock()
			if child == nil {
				s.dropISNNext(id)
			}
			return child, tcp.Closed
		}
	}
	sh.traceAs(cid, tcp.TimeWait, tcp.TimeWait)
	if m, _, ok := s.routeTo(id.Remote.Addr()); ok {
		n = m
	}
	sh.twOut.n, sh.twOut.id, sh.twOut.cid = n, id, cid
	before := slot.tw.Expiry()
	closed, drop := slot.tw.HandleSegmentDrop(now, seg, sh.twSend)
	sh.segmentDropped(drop)
	if closed {
		sh.tw.remove(p)
		sh.traceAs(cid, tcp.TimeWait, tcp.Closed)
		sh.stateChanged(cid, id, tcp.Transition{Time: now, From: tcp.TimeWait, To: tcp.Closed, Cause: tcp.RcvSYN})
		return nil, tcp.TimeWait
	}
	if !slot.tw.Expiry().Equal(before) {
		sh.tw.moved(p)
	}
	return nil, tcp.TimeWait
}

// twOut is where the record being handled sends: twSend is bound once, so
// handing it to HandleSegment does not allocate.
type twOut struct {
	n   *nic
	id  tcp.Tuple
	cid uint64
}

func (sh *shard) sendTimeWait(seg *tcp.Segment) {
	o := &sh.twOut
	sh.sendAs(o.n, o.id, seg, o.cid, tcp.TimeWait)
}

// expireTimeWait ends the records whose 2MSL has passed: TIME-WAIT ->
// CLOSED, "2MSL timeout" (RFC 9293 3.10.8), as their connections would.
func (sh *shard) expireTimeWait(now time.Time) {
	for {
		slot, ok := sh.tw.popDue(now)
		if !ok {
			return
		}
		sh.stateChanged(slot.cid, slot.tw.ID(), tcp.Transition{Time: now, From: tcp.TimeWait, To: tcp.Closed, Cause: tcp.Timeout2MSL})
	}
}

// reuseTimeWait lets an active open take over id from its record in
// TIME-WAIT (Options.TimeWaitReuse): the record ends, and the new
// connection's ISS follows the old one's sequence space.
func (s *Stack) reuseTimeWait(id tcp.Tuple, now time.Time) {
	sh := s.shardOf(id)
	p := sh.tw.lookup(id)
	if p < 0 {
		return
	}
	slot := *sh.tw.at(p)
	sh.tw.remove(p)
	s.setISNNext(id, uint32(slot.tw.NextISS()))
	s.ctr.TCP.TCPTimeWaitReuse.add(1)
	sh.stateChanged(slot.cid, id, tcp.Transition{Time: now, From: tcp.TimeWait, To: tcp.Closed, Cause: tcp.ReusedByConnect})
}

// timeWaitReusable reports whether an active open may take id now.
func (s *Stack) timeWaitReusable(id tcp.Tuple, now time.Time) bool {
	if !s.opts.TimeWaitReuse {
		return false
	}
	slot := s.shardOf(id).tw.get(id)
	after := s.opts.TimeWaitReuseAfter
	if after <= 0 {
		after = DefaultTimeWaitReuseAfter
	}
	return slot != nil && slot.tw.Reusable(now, after)
}

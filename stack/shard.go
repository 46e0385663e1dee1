package stack

import (
	"encoding/binary"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/synack/synack/clock"
	"github.com/synack/synack/internal/siphash"
	"github.com/synack/synack/link"
	"github.com/synack/synack/tcp"
)

// Shards: the stack's connections are split over a few shards, each with
// its own lock, so that two cores can process two connections at once
// (issue 13 item 5; DESIGN: "a few shards, about one per core").
//
// # What a shard owns
//
// A connection lives in the shard its 4-tuple hashes to (shardOf: SipHash
// under a key drawn from Options.Rand, so a peer cannot aim every tuple at
// one shard). The shard owns, under its lock sh.mu:
//
//   - its slice of the demux table (conns) and its TIME-WAIT records (tw),
//   - its timer heap and the clock timer pointed at its earliest deadline,
//   - its output batch: per link, the packet buffers built under its lock
//     and written before it is released (two shards never share buffers),
//   - its receive-batch state (batching, batched), the segment and header
//     scratch, the trace state of the segment being handled,
//   - its orphans.
//
// A TCPConn's fields are under its shard's lock.
//
// # The stack lock
//
// Everything else (links, routes, addresses, listener tables, UDP and ping
// sockets, subscribers, the forwarders) is the stack's, under s.mu, which
// is a sync.RWMutex:
//
//   - held for reading together with a shard lock by the shard doors
//     (sh.lock and sh.unlock: user calls on a connection, TCP segments,
//     the shard's timers, Dial): stack-wide fields may be read, not
//     written, and the shard's own state is the holder's;
//   - held for writing (run, and the calls that took s.mu.Lock before
//     shards existed) it excludes every shard door, so the holder may touch
//     any shard and any stack-wide field, as the single lock allowed.
//
// The few stack-wide things a shard door has to change get their own
// small locks, always taken after the shard's: s.lmu for the listeners'
// SYN and accept queues and the SYN defence (syndefence.go), and leaf
// locks for the shared tcp.Config classes, the ISN overrides, RFC 6056's
// port table, IP reassembly, the memory-state transitions and the trace
// callback. A leaf lock is never held while another is taken, but for IP
// reassembly's, which takes the memory-state lock. Counters, the memory in
// use and the orphan count are atomics.
//
// Lock order: s.mu (read) -> one shard's mu -> s.lmu -> a leaf lock. A
// goroutine never holds two shard locks; code that must see every shard
// (Close, Connections, the memory prune pass, Listen's port choice, a
// listener closing) takes s.mu for writing instead. Dial checks each
// ephemeral port it tries under the lock of that tuple's shard, one at a
// time, and keeps the lock of the one it takes (dial.go: pickEphemeral), so
// two dials never get one tuple. TestOneDoor keeps the
// door contract per shard: every call into a tcp.Conn happens under its
// shard's lock (or s.mu held for writing), with one clock reading, and is
// settled, flushed and its timer re-armed before the lock is released.
//
// A packet batch from a link is split by shard: each TCP segment goes to
// the shard of its tuple and each shard's part is handled under that
// shard's lock, so a link with one reader per queue, or the two directions
// of a memlink pipe, keep two cores busy. Everything that is not plain TCP
// to one of our addresses (fragments, ICMP, UDP, forwarded packets) is
// handled under s.mu held for writing.

// maxShards caps Options.Shards' default: beyond a few shards the lock is
// no longer what limits, and every shard has its own timer and buffers.
const maxShards = 8

// shard is one lock's share of the stack (see the top of this file).
type shard struct {
	mu  sync.Mutex
	s   *Stack
	idx int

	conns map[tcp.Tuple]*TCPConn // the demux table's slice
	pool  connPool               // tcp.Conns of ended connections, for new ones (connpool.go)

	tw     twTable // connections in TIME-WAIT, as records (timewait.go)
	twOut  twOut
	twSend func(*tcp.Segment)

	timers  timerHeap
	timer   clock.Timer
	timerAt time.Time // when timer fires; zero when not armed
	dueBuf  []*TCPConn

	dirty []*nicOut // output batches with pending packets
	inSeg tcp.Segment
	hdr   tcpScratch
	tr    tracer
	as    tracedAs // a segment handled for a listener (syndefence.go)
	orph  orphans  // connections closed by their owners, still finishing (orphans.go)

	// synOut is the SYN,ACK being sent for a listener (a cookie's, or a
	// SYN-queue entry's). A field rather than a local: the tracer takes a
	// pointer to what it traces, so a local would escape, one heap
	// allocation for every SYN of a flood. sendSegment is done with it
	// when it returns.
	synOut tcp.Segment

	// The receive batch being processed (input.go, beginBatch): whether
	// there is one, and the connections it reached so far.
	batching bool
	batched  []*TCPConn
}

// nicOut is one shard's output batch on one link. bufs keeps its buffers
// from batch to batch: the link copies what it takes, so they are reused
// at once.
type nicOut struct {
	n       *nic
	sh      *shard
	bufs    [][]byte
	pending int
	queued  bool // on sh.dirty

	// A link that takes packets in pieces (link.PartsWriter) gets them
	// as parts: bufs[i] as the head, and a data segment's payload left
	// in its connection's send buffer, so that the link's copy is the
	// only one (issue 13 item 1).
	parts []link.Packet
}

// shardCount is Options.Shards with its default: 0 is one shard per
// core (runtime.GOMAXPROCS), at most maxShards. SYNACK_SHARDS, when set,
// replaces the default (not an explicit Options.Shards): the test suites
// run once with it at 1 and once at 2.
func shardCount(n int) int {
	if n > 0 {
		return n
	}
	if v, err := strconv.Atoi(os.Getenv("SYNACK_SHARDS")); err == nil && v > 0 {
		return v
	}
	return min(runtime.GOMAXPROCS(0), maxShards)
}

// initShards makes n shards, keyed by key.
func (s *Stack) initShards(n int, key [16]byte) {
	s.shardKey = [2]uint64{binary.LittleEndian.Uint64(key[:8]), binary.LittleEndian.Uint64(key[8:])}
	s.shards = make([]*shard, n)
	for i := range s.shards {
		sh := &shard{s: s, idx: i, conns: make(map[tcp.Tuple]*TCPConn)}
		sh.tr.s = s
		sh.twSend = sh.sendTimeWait
		s.shards[i] = sh
	}
}

// shardOf returns the shard of the connection on id: SipHash of the
// 4-tuple under the stack's key.
func (s *Stack) shardOf(id tcp.Tuple) *shard {
	if len(s.shards) == 1 {
		return s.shards[0]
	}
	var b [36]byte
	l, r := id.Local.Addr().As16(), id.Remote.Addr().As16()
	copy(b[:16], l[:])
	copy(b[16:32], r[:])
	binary.BigEndian.PutUint16(b[32:], id.Local.Port())
	binary.BigEndian.PutUint16(b[34:], id.Remote.Port())
	h := siphash.Sum64(s.shardKey[0], s.shardKey[1], b[:])
	return s.shards[h%uint64(len(s.shards))]
}

// lock takes the shard door's locks: the stack's for reading, then the
// shard's.
func (sh *shard) lock() {
	sh.s.mu.RLock()
	sh.mu.Lock()
}

// unlock ends a shard door: it writes what the door produced, re-arms the
// shard's timer and releases the locks. A prune pass a call asked for
// (memory.go) needs every shard, so it runs afterwards under s.mu held for
// writing.
func (sh *shard) unlock() {
	sh.flush()
	sh.armTimer()
	sh.mu.Unlock()
	s := sh.s
	s.mu.RUnlock()
	if s.mem.prunePending.Load() {
		s.run(func(time.Time) {}) // s.unlock prunes
	}
}

// release drops the shard door's locks without flushing, for the calls
// that only read or set a field under them.
func (sh *shard) release() {
	sh.mu.Unlock()
	sh.s.mu.RUnlock()
}

// out returns the shard's output batch on n.
func (sh *shard) out(n *nic) *nicOut { return n.out[sh.idx] }

// numConns is the connections in the demux table, every shard's; s.mu
// held for writing.
func (s *Stack) numConns() int {
	k := 0
	for _, sh := range s.shards {
		k += len(sh.conns)
	}
	return k
}

// numTimeWait is the TIME-WAIT records, every shard's; s.mu held for
// writing.
func (s *Stack) numTimeWait() int {
	k := 0
	for _, sh := range s.shards {
		k += sh.tw.live
	}
	return k
}

// allConns calls f for every connection of every shard; s.mu held for
// writing.
func (s *Stack) allConns(f func(tc *TCPConn)) {
	for _, sh := range s.shards {
		for _, tc := range sh.conns {
			f(tc)
		}
	}
}

// locker is a pair of lock and unlock for the blocking loops (block,
// wait): a shard door's, or the listener queues' for Accept.
type locker interface {
	lock()
	unlock()
}

// acceptLocker is the lock of the listeners' accept queues: s.mu for
// reading, then s.lmu.
type acceptLocker struct{ s *Stack }

func (a acceptLocker) lock() {
	a.s.mu.RLock()
	a.s.lmu.Lock()
}

func (a acceptLocker) unlock() {
	a.s.lmu.Unlock()
	a.s.mu.RUnlock()
}

// newNIC makes the nic of ep, with an output batch per shard.
func (s *Stack) newNIC(id NICID, ep link.Endpoint) *nic {
	n := &nic{s: s, id: id, ep: ep, mtu: ep.MTU()}
	n.pw, _ = ep.(link.PartsWriter)
	if so, ok := ep.(link.SegmentOffloader); ok {
		n.tso = so.SegmentOffload()
	}
	n.out = make([]*nicOut, len(s.shards))
	for i, sh := range s.shards {
		n.out[i] = &nicOut{n: n, sh: sh}
	}
	return n
}

// stackLocker is s.mu held for writing, as a locker: what the datagram
// sockets block under.
type stackLocker struct{ s *Stack }

func (x stackLocker) lock()   { x.s.mu.Lock() }
func (x stackLocker) unlock() { x.s.unlock() }

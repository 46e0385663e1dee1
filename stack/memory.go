package stack

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/synack/synack/tcp"
)

// The stack-wide memory budget (issue 12; DESIGN: "the whole stack lives
// within one budget, like Linux's tcp_mem").
//
// What is counted: the buffers of every connection in the demux table
// (tcp.Conn.BufferMemory: both rings' arrays and the out-of-order chunks)
// and the IP reassembly queue (ipreasm's own count). It is accounted
// incrementally: settle, which follows every call into a connection,
// compares the connection's BufferMemory (three field reads) with what was
// last counted for it and adds the difference; a connection leaving the
// demux table takes its share with it. Nothing walks the connections on
// the data path.
//
// Three thresholds, as Linux's three tcp_mem numbers (low, pressure,
// high), at 50 %, 75 % and 100 % of Options.MemoryLimit, give three
// states (tcp.MemoryState):
//
//   - normal, until the memory in use passes the pressure threshold;
//   - pressure: every connection's receive window stops opening beyond a
//     few segments (the right edge already offered is kept: RFC 9293
//     3.8.6, RFC 7323 section 2.4), rings that drain give their arrays back
//     at once, and out-of-order data is pruned across connections, the
//     largest holders first, down to the low threshold if it can be. The
//     stack leaves pressure only below the low threshold (hysteresis), as
//     Linux does;
//   - over the limit (memory in use at or above MemoryLimit): as pressure,
//     and text that would take memory is dropped before it is queued (the
//     segment's ACK is still processed), counted in TCPRcvQDrop. The stack
//     falls back to pressure as soon as it is under the limit again.
//
// A connection learns the state lazily, before the next call into it
// (callLocked): windows are only ever advertised inside a call, so that is
// exactly when it matters, and a change of state costs nothing per
// connection.
//
// What the application writes counts too: the send buffers grow with cwnd
// (tcp/sndtune.go) but not under pressure, and over the limit Write takes
// only what fits in a connection's present send array, or in 4 KiB when
// the array is smaller (the minimum every connection keeps so it can make
// progress, as Linux's tcp_wmem[0]); a writer then blocks until its data
// is acknowledged. The growth of one call already under way is not
// refused either. The memory in use can therefore pass the limit by
// memorySlack: what one call can add (one ring's growth: at most the
// larger of TCP.ReceiveBufferSize and TCP.SendBufferSize), plus 4 KiB of
// send buffer per connection. FuzzStack checks that bound after every
// operation; TestMemoryLimitUnderAttack measures the slack an attack
// reaches.

// DefaultMemoryLimit is Options.MemoryLimit's default: 256 MiB. Linux
// sizes tcp_mem from the machine's RAM (its high mark is about 3/32 of the
// free pages at boot), because the kernel owns the machine. A stack
// embedded in a program does not: it shares the process with its host,
// which may run in a container whose limit the stack cannot see. A fixed
// default, documented, is the honest choice: 256 MiB holds a thousand
// connections each with 256 KiB in flight, is a small share of a
// server's memory and still keeps a flood of attackers from taking the
// process down. Programs that know their budget set their own.
const DefaultMemoryLimit = 256 << 20

// memState is the stack's side of the budget. Shards change it at once:
// the count and the state are atomics, the moves between states are made
// under mu, and the prune pass runs under s.mu held for writing.
type memState struct {
	limit         int64        // 0: unlimited (Options.MemoryLimit < 0)
	low, pressure int64        // thresholds: 50 % and 75 % of limit
	tcp           atomic.Int64 // the connections' buffers, as last counted
	frag          atomic.Int64 // the IP reassembly queue, as last counted (reasm.go)
	state         atomic.Uint32
	prunePending  atomic.Bool // a prune pass is due at the end of the door

	mu               sync.Mutex // a leaf lock (shard.go)
	since            time.Time  // when pressure was entered
	pressureDuration time.Duration

	pruning  bool // under s.mu held for writing
	pruneBuf []*TCPConn
}

// memState is the stack's memory state now.
func (s *Stack) memState() tcp.MemoryState { return tcp.MemoryState(s.mem.state.Load()) }

// initMemory sets the thresholds from Options.MemoryLimit.
func (s *Stack) initMemory() {
	switch l := s.opts.MemoryLimit; {
	case l == 0:
		s.opts.MemoryLimit = DefaultMemoryLimit
	case l < 0:
		return
	}
	m := &s.mem
	m.limit = s.opts.MemoryLimit
	m.low, m.pressure = m.limit/2, m.limit/4*3
}

// memoryInUse is what the budget counts now: the connections' buffers and
// the IP reassembly queue.
func (s *Stack) memoryInUse() int64 {
	return s.mem.tcp.Load() + s.mem.frag.Load()
}

// pushMemoryState tells tc's connection the stack's memory state when it
// changed since the connection last heard: part of the door (callLocked),
// before the call.
func (s *Stack) pushMemoryState(tc *TCPConn) {
	if st := s.memState(); tc.memState != st {
		tc.memState = st
		tc.tcb.SetMemoryState(st)
	}
}

// accountMemory brings the count of tc's buffers up to date after a call
// into it: part of settle.
func (s *Stack) accountMemory(tc *TCPConn, now time.Time) {
	if tc.tcb == nil || tc.removed && tc.mem == 0 {
		return // gone, or out of the table with nothing counted (remove)
	}
	m := int64(tc.tcb.BufferMemory())
	if m == tc.mem {
		return
	}
	s.mem.tcp.Add(m - tc.mem)
	tc.mem = m
	s.updateMemoryState(now)
}

// forgetMemory takes a connection leaving the demux table out of the
// count.
func (s *Stack) forgetMemory(tc *TCPConn) {
	if tc.mem == 0 {
		return
	}
	s.mem.tcp.Add(-tc.mem)
	tc.mem = 0
	s.updateMemoryState(s.clock.Now())
}

// updateMemoryState moves between the states with the memory in use (see
// the top of this file).
func (s *Stack) updateMemoryState(now time.Time) {
	m := &s.mem
	if m.limit == 0 {
		s.ctr.TCP.TCPMemoryBytes.v.Store(uint64(max(s.memoryInUse(), 0)))
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	// Read under m.mu, so that two shards' updates settle in the order
	// of their reads and the last one sees the last count.
	used := s.memoryInUse()
	s.ctr.TCP.TCPMemoryBytes.v.Store(uint64(max(used, 0)))
	was := s.memState()
	st := was
	switch {
	case used >= m.limit:
		st = tcp.MemoryOverLimit
	case st != tcp.MemoryNormal && used < m.low:
		// Also straight from over the limit: a drop from there to below
		// the low threshold in one step (a large holder closing) must
		// not leave the stack in pressure with nothing left to change
		// it (FuzzStack found that).
		st = tcp.MemoryNormal
	case st == tcp.MemoryOverLimit:
		st = tcp.MemoryPressure
	case st == tcp.MemoryNormal && used > m.pressure:
		st = tcp.MemoryPressure
	}
	if st == was {
		return
	}
	m.state.Store(uint32(st))
	s.ctr.TCP.TCPMemoryState.v.Store(uint64(st))
	if was == tcp.MemoryNormal {
		s.ctr.TCP.TCPMemoryPressures.add(1)
		m.since = now
	}
	if st == tcp.MemoryNormal {
		m.pressureDuration += now.Sub(m.since)
		s.ctr.TCP.TCPMemoryPressuresChrono.v.Store(uint64(m.pressureDuration.Milliseconds()))
	}
	if st > was {
		// Entering pressure, or reaching the limit: give back what can
		// be given back, after the call under way (end of the door).
		m.prunePending.Store(true)
	}
}

// pruneMemory is the prune pass, run at the end of a door (unlock) after
// a call raised the state: out-of-order data and empty rings
// (tcp.Conn.Prune) from the connections holding the most memory first,
// until the memory in use is under the low threshold, where pressure ends
// (pruning only to the pressure threshold would leave the next few
// segments to start it all again). Linux
// prunes a socket's own out-of-order queue when it is over its budget
// (tcp_prune_ofo_queue); a stack-wide pass that starts with the largest
// holders takes from attackers first, since a connection holding much
// out-of-order data is the signature of the issue 12 attack. Data already
// acknowledged (in the rings) is never dropped. It needs every shard, so
// it runs under s.mu held for writing (a shard door asks for it at its
// end: shard.unlock).
func (s *Stack) pruneMemory() {
	m := &s.mem
	if m.pruning || !m.prunePending.Load() {
		return
	}
	m.prunePending.Store(false)
	m.pruning = true
	defer func() { m.pruning = false }()
	s.ctr.TCP.PruneCalled.add(1)
	cand := m.pruneBuf[:0]
	s.allConns(func(tc *TCPConn) {
		if tc.mem > 0 {
			cand = append(cand, tc)
		}
	})
	slices.SortFunc(cand, func(a, b *TCPConn) int { return cmp.Compare(b.mem, a.mem) })
	now := s.clock.Now()
	for _, tc := range cand {
		if s.memoryInUse() < m.low {
			break
		}
		var n int
		s.callLocked(tc, now, func(now time.Time, c *tcp.Conn) error {
			n = c.Prune()
			return nil
		})
		s.ctr.TCP.OFOPruned.add(uint64(n))
	}
	clear(cand)
	m.pruneBuf = cand[:0]
}

// MemoryInfo is the state of the stack's memory budget.
type MemoryInfo struct {
	Limit              int64           // Options.MemoryLimit; 0: unlimited
	Low, Pressure      int64           // the thresholds: leave pressure below Low, enter it above Pressure
	InUse              int64           // connections' buffers and IP reassembly, bytes
	Reassembly         int64           // of which IP reassembly
	State              tcp.MemoryState // normal, pressure, over_limit
	InPressure         time.Duration   // how long the current spell of pressure has lasted; 0 if normal
	PressureTotal      time.Duration   // time spent in pressure since New, the current spell included
	Pressures, Prunes  uint64          // TCPMemoryPressures, PruneCalled
	OFOPruned, Dropped uint64          // OFOPruned bytes, TCPRcvQDrop segments
}

// Memory returns the state of the stack's memory budget.
func (s *Stack) Memory() MemoryInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := &s.mem
	m.mu.Lock()
	defer m.mu.Unlock()
	mi := MemoryInfo{
		Limit: m.limit, Low: m.low, Pressure: m.pressure,
		InUse: s.memoryInUse(), State: s.memState(), PressureTotal: m.pressureDuration,
		Pressures: s.ctr.TCP.TCPMemoryPressures.v.Load(), Prunes: s.ctr.TCP.PruneCalled.v.Load(),
		OFOPruned: s.ctr.TCP.OFOPruned.v.Load(), Dropped: s.ctr.TCP.TCPRcvQDrop.v.Load(),
	}
	mi.Reassembly = m.frag.Load()
	if mi.State != tcp.MemoryNormal {
		mi.InPressure = s.clock.Now().Sub(m.since)
		mi.PressureTotal += mi.InPressure
	}
	return mi
}

// memorySlack is how far the memory in use may pass the limit (see the top
// of this file): one ring's growth by the call that crosses the limit,
// plus the send minimum of every connection, with the configured buffer
// sizes.
func (s *Stack) memorySlack() int64 {
	c := s.opts.TCP.WithDefaults()
	return int64(max(c.ReceiveBufferSize, c.SendBufferSize)) + int64(s.numConns())*sendMinimum
}

// sendMinimum is the send buffer a connection may fill over the memory
// limit (tcp/sndtune.go: the ring's smallest array).
const sendMinimum = 4096

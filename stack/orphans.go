package stack

import (
	"time"

	"github.com/synack/synack/tcp"
)

// DefaultMaxOrphans is Options.MaxOrphans' default.
const DefaultMaxOrphans = 65536

// orphans tracks the connections their owners have closed that the stack
// still finishes on its own (FIN-WAIT-1, FIN-WAIT-2, CLOSING, LAST-ACK):
// "orphaned sockets" in Linux's words. Each holds its unsent and
// unacknowledged data until it ends, so their number is bounded
// (Options.MaxOrphans, like Linux's tcp_max_orphans; issue 12).
type orphans struct {
	q    []*TCPConn            // in the order they were orphaned; may hold ones that have ended
	live map[*TCPConn]struct{} // those still orphans
}

// noteOrphan is called after Close: if tc goes on without its owner it
// becomes an orphan, and if that makes too many, the oldest ones are reset
// (counted in TCPAbortOnMemory, Linux's counter for "too many orphaned
// sockets"). Linux resets the socket being closed instead; resetting the
// oldest keeps the newest, which are the likeliest to finish, and bounds
// how long any orphan lives under pressure. Called with tc's shard lock
// held.
//
// Each shard keeps its own orphans and the bound is the stack's: the
// count is an atomic over every shard, and a shard over it resets its own
// oldest (a shard cannot reach into another's). With one shard that is
// exactly the oldest of all.
func (s *Stack) noteOrphan(tc *TCPConn, now time.Time) {
	if tc.removed || tc.tcb == nil {
		return
	}
	switch tc.state() {
	case tcp.FinWait1, tcp.FinWait2, tcp.Closing, tcp.LastAck:
	default:
		return // ended, or TIME-WAIT, which becomes a small record
	}
	o := &tc.sh.orph
	if o.live == nil {
		o.live = make(map[*TCPConn]struct{})
	}
	if _, dup := o.live[tc]; !dup {
		s.orphans.Add(1)
	}
	o.live[tc] = struct{}{}
	o.q = append(o.q, tc)
	limit := s.opts.MaxOrphans
	if limit <= 0 {
		limit = DefaultMaxOrphans
	}
	for s.orphans.Load() > int64(limit) && len(o.q) > 0 {
		old := o.q[0]
		o.q[0] = nil
		o.q = o.q[1:]
		if _, ok := o.live[old]; !ok {
			continue
		}
		delete(o.live, old)
		s.orphans.Add(-1)
		s.ctr.TCP.TCPAbortOnMemory.add(1)
		s.callLocked(old, now, abort) // RST to the peer, buffers freed
	}
	if len(o.q) > 2*len(o.live)+64 {
		// Drop the entries of orphans that have ended.
		q := o.q[:0]
		for _, x := range o.q {
			if _, ok := o.live[x]; ok {
				q = append(q, x)
			}
		}
		clear(o.q[len(q):])
		o.q = q
	}
}

// forgetOrphan is called when tc leaves the demux table.
func (s *Stack) forgetOrphan(tc *TCPConn) {
	o := &tc.sh.orph
	if _, ok := o.live[tc]; ok {
		delete(o.live, tc)
		s.orphans.Add(-1)
	}
}

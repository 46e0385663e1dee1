package stack

import (
	"time"

	"github.com/synack/synack/clock"
	"github.com/synack/synack/tcp"
)

// A short connection used to allocate a tcp.Conn a side (2 KB) and the
// parts of it made on first use (congestion controller, loss and rate
// state: another 1.5 KB or so), which lived a few milliseconds and were
// garbage (issue 13 item 6). The stack keeps the tcp.Conns of connections
// that have ended and that nothing can call into any more, and starts new
// connections on them (tcp.Conn.Reinit, which keeps only cleared memory).
//
// A tcp.Conn is unreachable once its TCPConn has dropped it: when the
// connection became a TIME-WAIT record (compact), or ended in CLOSED after
// its owner closed it (settle). The owner's handle keeps answering from
// the TCPConn alone (state, info: CLOSED; calls: net.ErrClosed), as it does
// for a TIME-WAIT record.

// connPoolMax bounds the kept tcp.Conns: enough for the connections
// that end between two opens of a busy stack (16 clients at once need
// fewer than 32); each is some 3.5 KB with its parts and ring arrays, so
// the list holds at most about 230 KB.
const connPoolMax = 64

// connPool is a shard's free list of reset tcp.Conns. Like the shard's
// slice of the demux table it is guarded by the shard's lock: a tcp.Conn
// goes back to the list of the shard it served and is taken again there.
type connPool struct {
	free []*tcp.Conn
	// gates are clock.Gates that no call waits on, each with the waiter
	// and channel it keeps for its next wait. A connection holds one only
	// while a call of its owner waits (Dial, Read, Write...), and takes it
	// from here: a Gate and a channel made for every connection that
	// blocked, and kept while it lived, was a quarter of the allocation of
	// a short connection (issue 13 item 6) and some 250 bytes of an idle
	// one.
	gates []*clock.Gate
}

func (p *connPool) take() *tcp.Conn {
	n := len(p.free)
	if n == 0 {
		return nil
	}
	c := p.free[n-1]
	p.free[n-1] = nil
	p.free = p.free[:n-1]
	return c
}

// newTCB returns a tcp.Conn for tc in state CLOSED, as tcp.NewConn.
func (sh *shard) newTCB(cfg *tcp.Config, id tcp.Tuple, tc *TCPConn) *tcp.Conn {
	if c := sh.pool.take(); c != nil {
		c.Reinit(cfg, id, (*connSink)(tc))
		return c
	}
	return tcp.NewConn(cfg, id, (*connSink)(tc))
}

// resumeTCB returns a tcp.Conn for tc in SYN-RECEIVED, as
// tcp.ResumeSynReceived.
func (sh *shard) resumeTCB(cfg *tcp.Config, id tcp.Tuple, tc *TCPConn, hs *tcp.Handshake, now time.Time) *tcp.Conn {
	if c := sh.pool.take(); c != nil {
		c.ReinitSynReceived(cfg, id, (*connSink)(tc), hs, now)
		return c
	}
	return tcp.ResumeSynReceived(cfg, id, (*connSink)(tc), hs, now)
}

// dropTCB takes tc's tcp.Conn from it for good and keeps it for a later
// connection, reset, unless enough are kept. The caller has made sure
// nothing will call into it again: tc is out of the demux table and the
// timers, and its owner can no longer reach it.
func (sh *shard) dropTCB(tc *TCPConn) {
	c := tc.tcb
	tc.tcb = nil
	if c == nil || len(sh.pool.free) >= connPoolMax {
		return
	}
	c.Reset()
	sh.pool.free = append(sh.pool.free, c)
}

// settleEnded drops the tcp.Conn of a connection that ended in CLOSED
// after its owner closed it, at the end of settle. Not while a call of
// the owner's is still inside the door (a blocked Read or Write wakes to
// net.ErrClosed, and a posted Read buffer is taken back first), nor while
// the owner has unread data counted against the memory budget.
func (sh *shard) settleEnded(tc *TCPConn, st tcp.State) {
	if st != tcp.Closed || !tc.userClosed || !tc.removed || tc.stackClosed ||
		tc.posted || tc.rwait+tc.wwait+tc.owait > 0 || tc.mem != 0 {
		return
	}
	sh.dropTCB(tc)
}

// gate returns tc's Gate, from the free list when tc has none (no call of
// tc's is waiting).
func (sh *shard) gate(tc *TCPConn) *clock.Gate {
	if tc.gate != nil {
		return tc.gate
	}
	if n := len(sh.pool.gates); n > 0 {
		tc.gate = sh.pool.gates[n-1]
		sh.pool.gates[n-1] = nil
		sh.pool.gates = sh.pool.gates[:n-1]
	} else {
		tc.gate = sh.s.clock.NewGate()
	}
	return tc.gate
}

// dropGate gives tc's Gate back to the shard once no call waits on it. A
// call counts itself in rwait, wwait or owait, under the shard's lock,
// from before it takes its ticket until after its wait has returned; so
// with the three at zero nobody holds a ticket of the Gate or sleeps on
// it. The wake-ups of tc (settle, wake) Broadcast only while one of the
// three is counted; Stack.Close broadcasts the Gates it collected after
// letting go of the lock, which at worst wakes a call of the connection
// that took the Gate since, and a woken call looks again at its
// condition.
func (sh *shard) dropGate(tc *TCPConn) {
	g := tc.gate
	if g == nil || tc.rwait+tc.wwait+tc.owait > 0 {
		return
	}
	tc.gate = nil
	if len(sh.pool.gates) < connPoolMax {
		sh.pool.gates = append(sh.pool.gates, g)
	}
}

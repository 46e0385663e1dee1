package stack

import (
	"io"
	"net"
	"syscall"
	"time"

	"github.com/synack/synack/clock"
	"github.com/synack/synack/tcp"
)

// TCPConn is a TCP connection: a net.Conn with what *net.TCPConn offers
// (CloseWrite, CloseRead, SetLinger, SetKeepAlive, SetKeepAliveConfig,
// SetNoDelay, SetReadBuffer, SetWriteBuffer), plus State and Info. Its methods are safe for concurrent
// use.
type TCPConn struct {
	s       *Stack
	sh      *shard // the shard of id, whose lock guards the fields below (shard.go)
	tcb     *tcp.Conn
	id      tcp.Tuple
	cid     uint64
	nic     *nic
	cfg     *tcp.Config
	gate    *clock.Gate // held while a call waits, from the shard's free list (connpool.go)
	created time.Time

	// Who waits on gate, so settle wakes only those who may care.
	rwait, wwait, owait int32
	lastState           tcp.State
	// memState is what the stack last told the connection of its memory
	// state (memory.go). It sits beside lastState, in the same word, which
	// keeps a TCPConn in the allocator's 320-byte class.
	memState tcp.MemoryState

	timerIdx int // position in s.timers, -1 when not there
	timerAt  time.Time

	listener          *Listener // until accepted: in its SYN queue or accept queue
	inSynQ, inAcceptQ bool

	removed     bool // out of the demux table: the core said CLOSED
	inBatch     bool // in s.batched: the receive batch being processed reached it (input.go)
	userClosed  bool // Close was called: the stack finishes the connection alone
	stackClosed bool
	readShut    bool
	gotFIN      bool  // the peer's FIN arrived: Read ends with io.EOF
	posted      bool  // a waiting Read's buffer is posted to the core (receive)
	linger      int   // SetLinger; -1 is the default (close in the background)
	dialErr     error // why the connect failed, when the core's Err does not say (ICMP)
	softErr     error // the last soft ICMP error, reported instead of ETIMEDOUT

	rdl, wdl time.Time // read and write deadlines; zero: none

	// The memory budget (memory.go): what the stack counts for this
	// connection's buffers (and memState above).
	mem int64
}

var _ net.Conn = (*TCPConn)(nil)

// newConn makes a connection on id and enters it in the demux table.
func (sh *shard) newConn(n *nic, id tcp.Tuple, cfg *tcp.Config, now time.Time) *TCPConn {
	s := sh.s
	tc := &TCPConn{
		s: s, sh: sh, id: id, cid: s.nextConnID(), nic: n, cfg: cfg,
		created: now, timerIdx: -1, linger: -1,
	}
	tc.tcb = sh.newTCB(cfg, id, tc)
	sh.conns[id] = tc
	return tc
}

// settle brings the stack up to date with what a call into tc's tcp.Conn
// changed: listen queues, the demux table, the timer queue, counters,
// and wakes the goroutines waiting on tc. Every call into a tcp.Conn is
// followed by settle: the doors (door.go) see to it.
func (s *Stack) settle(tc *TCPConn, now time.Time) {
	st := tc.tcb.State()
	if st != tc.lastState && (tc.lastState == tcp.SynSent || tc.lastState == tcp.SynReceived) && st.Synchronized() {
		// First, as it may send again in smaller segments, which moves
		// the deadline and the retransmission count read below.
		s.clampMSS(tc, now)
	}
	s.count(tc.tcb)
	s.accountMemory(tc, now)
	// inSynQ is only ever changed under both tc's shard lock and s.lmu,
	// so it can be read under either; the listener's queues need s.lmu.
	if tc.inSynQ && st != tcp.SynReceived {
		st = s.settleChild(tc, st, now)
	}
	if !tc.gotFIN && tc.tcb.EOF() {
		tc.gotFIN = true
	}
	if st == tcp.Closed {
		s.remove(tc)
	} else {
		tc.sh.timers.set(tc, tc.tcb.Deadline())
	}
	wake := st != tc.lastState
	tc.lastState = st
	if tc.rwait > 0 && (tc.tcb.Readable() > 0 || tc.tcb.Placed() > 0) {
		wake = true
	}
	if tc.wwait > 0 && tc.tcb.Writable() >= min(tc.tcb.SendBufferSize()/4, 64<<10) {
		wake = true
	}
	if wake && tc.rwait+tc.wwait+tc.owait > 0 {
		tc.gate.Broadcast()
	}
	// Lent memory read or dropped goes back to its link (tcp/lend.go),
	// before the Conn may be compacted or reused below.
	for _, l := range tc.tcb.TakeReturned() {
		l.Release()
	}
	if st == tcp.TimeWait && tc.userClosed && !tc.stackClosed && tc.tcb.Readable() == 0 {
		tc.sh.compact(tc)
	}
	tc.sh.settleEnded(tc, st) // connpool.go
}

// settleChild moves tc, a child of a listener that has left SYN-RECEIVED
// for st, out of the SYN queue: to the accept queue, or away. It returns
// tc's state after.
func (s *Stack) settleChild(tc *TCPConn, st tcp.State, now time.Time) tcp.State {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	l := tc.listener
	// The handshake ended one way or the other.
	tc.inSynQ = false
	l.synQ--
	delete(l.children, tc)
	switch st {
	case tcp.Listen:
		// RST in SYN-RECEIVED on a passive open, or SYN,ACK retries
		// exhausted: the child goes back to LISTEN (RFC 9293
		// 3.10.7.4), which for us means it is gone.
		tc.tcb.Release(now, true)
		st = tc.tcb.State()
		tc.listener = nil
	case tcp.Closed:
		tc.listener = nil
	default:
		// ESTABLISHED, or CLOSE-WAIT when the FIN came with the ACK.
		tc.inAcceptQ = true
		l.acceptQ = append(l.acceptQ, tc)
		l.acceptQMax = max(l.acceptQMax, len(l.acceptQ))
		if l.waiters > 0 {
			l.gate.Broadcast()
		}
	}
	return st
}

// clampMSS keeps the segments we send within the link's MTU when the
// peer's MSS option allows more than the link carries (a peer on a link
// with a larger MTU), by telling the core the path MTU is the link's.
// On a link that segments (link.SegmentOffloader) it also lets the
// connection send super-segments (tcp/gso.go) up to the link's largest,
// less the largest IP and TCP headers (40 bytes of TCP options).
func (s *Stack) clampMSS(tc *TCPConn, now time.Time) {
	if tc.nic == nil {
		return
	}
	hdr := 40
	if !tc.id.Remote.Addr().Is4() {
		hdr = 60
	}
	if info := tc.tcb.Info(); info.PeerMSS+hdr > tc.nic.mtu {
		tc.tcb.HandlePacketTooBig(now, tc.nic.mtu)
	}
	if tso := tc.nic.tso.MaxSize; tso > 0 {
		tc.tcb.SetSegmentOffload(tso - hdr - 40)
	}
}

// remove takes a CLOSED connection out of the demux table and the timers.
func (s *Stack) remove(tc *TCPConn) {
	if tc.removed {
		return
	}
	tc.removed = true
	s.forgetOrphan(tc)
	if tc.userClosed || tc.stackClosed || tc.tcb == nil || tc.mem == 0 {
		s.forgetMemory(tc)
	}
	// Otherwise the connection still holds received data its owner has
	// not read (CLOSED after LAST-ACK, TIME-WAIT's readable rest): that
	// memory stays in the budget until Read or Close gives it back
	// (accountMemory, through the door that reads or closes).
	sh := tc.sh
	if sh.conns[tc.id] == tc {
		delete(sh.conns, tc.id)
	}
	sh.timers.remove(tc)
	if tc.inSynQ {
		s.lmu.Lock()
		l := tc.listener
		tc.inSynQ = false
		l.synQ--
		delete(l.children, tc)
		tc.listener = nil
		s.lmu.Unlock()
	}
}

func (tc *TCPConn) opErr(op string, err error) error {
	return opError(op, syscallFor(op), tc.id.Local, tc.id.Remote, err)
}

// closedErr reports whether the connection may no longer be used.
func (tc *TCPConn) closedErr() bool { return tc.userClosed || tc.stackClosed }

// Read reads data the peer sent. It returns io.EOF after the peer's FIN,
// an error wrapping syscall.ECONNRESET (or ETIMEDOUT) after the connection
// failed, os.ErrDeadlineExceeded after the read deadline, and net.ErrClosed
// after Close.
func (tc *TCPConn) Read(p []byte) (int, error) { return tc.receive(p, false) }

// Peek is Read without consuming, recv(2) with MSG_PEEK: it blocks like
// Read until data, the peer's FIN, an error or the read deadline, then
// copies the buffered in-order bytes into p and leaves them there for the
// next Read. It returns what Read would: io.EOF after the peer's FIN once
// nothing is buffered, the connection's error, os.ErrDeadlineExceeded,
// net.ErrClosed. Peeking does not open the receive window.
func (tc *TCPConn) Peek(p []byte) (int, error) { return tc.receive(p, true) }

// receive is Read, or Peek when peek is set.
//
// A Read that has to wait posts p to the core (tcp.Conn.PostRead), so
// in-order data that arrives meanwhile is copied straight into it rather
// than into the receive buffer and out again: one copy fewer for a reader
// that keeps up (issue 13 item 1). One Read at a time posts; mine says it
// is this one.
func (tc *TCPConn) receive(p []byte, peek bool) (int, error) {
	n := 0
	mine := false
	err := tc.s.doWait(tc, &tc.rwait, &tc.rdl, nil, func(now time.Time, c *tcp.Conn) error {
		if mine {
			mine, tc.posted = false, false
			if n = c.TakeRead(now); n > 0 {
				return nil
			}
		}
		if tc.readShut {
			return io.EOF
		}
		var err error
		if peek {
			n, err = c.Peek(now, p)
		} else {
			n, err = c.Read(now, p)
		}
		if err == tcp.ErrNotConnected && tc.gotFIN {
			err = io.EOF
		}
		if err == tcp.ErrWouldBlock && !peek && !tc.posted && len(p) > 0 {
			c.PostRead(p)
			mine, tc.posted = true, true
		}
		return err
	})
	if mine {
		// The wait ended without another attempt (closed, deadline):
		// take p back, with what was placed in it, which has been read.
		if k := tc.takePosted(); k > 0 {
			return k, nil
		}
	}
	return n, tc.opErr("read", err)
}

// takePosted ends the post of a Read that is returning and returns how
// many bytes went into its buffer.
func (tc *TCPConn) takePosted() int {
	s := tc.s
	n := 0
	tc.sh.lock()
	if tc.tcb != nil {
		s.callLocked(tc, s.clock.Now(), func(now time.Time, c *tcp.Conn) error {
			n = c.TakeRead(now)
			return nil
		})
	}
	tc.posted = false
	tc.sh.unlock()
	return n
}

// Write writes p, blocking until all of it is in the send buffer. It
// returns an error wrapping syscall.EPIPE after CloseWrite, ECONNRESET or
// ETIMEDOUT after the connection failed, os.ErrDeadlineExceeded after the
// write deadline (with the count written so far), and net.ErrClosed after
// Close.
func (tc *TCPConn) Write(p []byte) (int, error) {
	total := 0
	err := tc.s.doWait(tc, &tc.wwait, &tc.wdl, nil, func(now time.Time, c *tcp.Conn) error {
		n, err := c.Write(now, p[total:])
		total += n
		switch {
		case err == nil && total < len(p):
			return errMore // the send buffer is full: wait for room
		case err == tcp.ErrNotConnected:
			return syscall.EPIPE
		}
		return err
	})
	return total, tc.opErr("write", err)
}

// Close closes the connection. The owner can no longer read or write; the
// stack sends what is buffered, then the FIN, and finishes the closing
// handshake (FIN-WAIT, TIME-WAIT, LAST-ACK) on its own. Unread received
// data, or SetLinger(0), turn it into an abort with RST (RFC 9293 3.6).
// Blocked Reads and Writes return net.ErrClosed.
func (tc *TCPConn) Close() error {
	return tc.opErr("close", tc.s.do(tc, func(now time.Time, c *tcp.Conn) error {
		tc.userClosed = true
		c.Release(now, tc.linger == 0)
		tc.s.noteOrphan(tc, now) // before settle is as good: it reads only tc's state
		tc.wake()
		return nil
	}))
}

// CloseWrite shuts down the sending side (a FIN follows the buffered
// data); reading goes on until the peer's FIN.
func (tc *TCPConn) CloseWrite() error {
	return tc.opErr("close", tc.s.do(tc, func(now time.Time, c *tcp.Conn) error {
		err := c.Close(now)
		tc.wake()
		if err == tcp.ErrNotConnected {
			return syscall.ENOTCONN
		}
		return err
	}))
}

// CloseRead shuts down the receiving side: buffered data is dropped,
// what arrives later is acknowledged and discarded, and Read returns
// io.EOF.
func (tc *TCPConn) CloseRead() error {
	return tc.opErr("close", tc.s.do(tc, func(now time.Time, c *tcp.Conn) error {
		tc.readShut = true
		c.CloseRead(now)
		tc.wake()
		return nil
	}))
}

// wake wakes the calls blocked on tc, which re-check their conditions:
// for a change settle does not see (tc closed, shut down, its deadlines
// moved). The lock is held.
func (tc *TCPConn) wake() {
	if tc.rwait+tc.wwait+tc.owait > 0 {
		tc.gate.Broadcast()
	}
}

// setOpt runs f on tc's tcp.Conn through the door, for the option setters.
func (tc *TCPConn) setOpt(f func(now time.Time, c *tcp.Conn)) error {
	err := tc.s.do(tc, func(now time.Time, c *tcp.Conn) error {
		f(now, c)
		return nil
	})
	return opError("set", "setsockopt", tc.id.Local, tc.id.Remote, err)
}

// SetLinger sets what Close does with unsent data: sec < 0 (the default)
// finishes in the background; sec == 0 discards it and resets the
// connection (RST). sec > 0 is treated as the default for now (Close does
// not block).
func (tc *TCPConn) SetLinger(sec int) error {
	return tc.setOpt(func(time.Time, *tcp.Conn) { tc.linger = sec })
}

// SetReadBuffer sets the receive buffer, as *net.TCPConn's does
// (SO_RCVBUF): as on Linux the buffer becomes twice bytes (at least
// 4 KiB) and the receive window stops auto-tuning and offers the whole
// buffer. The window scale was fixed by the handshake (RFC 7323 section
// 2.2), so after it the window can offer at most 65,535 << scale bytes:
// with the default 1 MiB buffer the scale allows 2 MiB; a larger buffer
// wants the stack's TCP.ReceiveBufferSize raised instead, which sizes
// the scale of every handshake. A smaller buffer than the window already
// offered does not take the offer back (RFC 9293 3.8.6). It works on
// dialed and accepted connections alike; a negative size is EINVAL.
func (tc *TCPConn) SetReadBuffer(bytes int) error {
	var err error
	if e := tc.setOpt(func(now time.Time, c *tcp.Conn) { err = c.SetReceiveBuffer(bytes) }); e != nil {
		return e
	}
	return opError("set", "setsockopt", tc.id.Local, tc.id.Remote, err)
}

// SetWriteBuffer sets the send buffer, as *net.TCPConn's does
// (SO_SNDBUF): as on Linux the buffer becomes twice bytes (at least
// 4 KiB) and stops auto-tuning (tcp/sndtune.go), which otherwise grows it
// with the congestion window up to TCP.SendBufferSize. Data already
// queued beyond a smaller size stays; Write waits until it drains below.
// A negative size is EINVAL.
func (tc *TCPConn) SetWriteBuffer(bytes int) error {
	var err error
	if e := tc.setOpt(func(now time.Time, c *tcp.Conn) { err = c.SetSendBuffer(bytes) }); e != nil {
		return e
	}
	tc.wake() // a larger buffer may have room for a blocked Write
	return opError("set", "setsockopt", tc.id.Local, tc.id.Remote, err)
}

// ReadBufferSize and WriteBufferSize are getsockopt(SO_RCVBUF) and
// getsockopt(SO_SNDBUF): the receive buffer's size (set, or the maximum
// auto-tuning grows the window to) and the send buffer's present size
// (set, or auto-tuned).
// They return 0 once the connection is closed.
func (tc *TCPConn) ReadBufferSize() int {
	n := 0
	tc.s.do(tc, func(_ time.Time, c *tcp.Conn) error { n = c.ReceiveBufferSize(); return nil })
	return n
}

func (tc *TCPConn) WriteBufferSize() int {
	n := 0
	tc.s.do(tc, func(_ time.Time, c *tcp.Conn) error { n = c.SendBufferSize(); return nil })
	return n
}

// SetNoDelay turns Nagle's algorithm off (true) or on (false).
func (tc *TCPConn) SetNoDelay(noDelay bool) error {
	return tc.setOpt(func(now time.Time, c *tcp.Conn) { c.SetNoDelay(now, noDelay) })
}

// SetCongestionControl chooses the congestion controller of this
// connection by name, as Linux's TCP_CONGESTION socket option: "cubic"
// (the default), "newreno" or "bbr" (tcp.CongestionControls lists them).
// The new controller starts from the current cwnd and
// ssthresh. An unknown name is an error wrapping
// tcp.ErrUnknownCongestionControl, naming the registered ones, and
// changes nothing.
func (tc *TCPConn) SetCongestionControl(name string) error {
	err := tc.s.do(tc, func(_ time.Time, c *tcp.Conn) error { return c.SetCongestionControl(name) })
	return opError("set", "setsockopt", tc.id.Local, tc.id.Remote, err)
}

// SetKeepAlive turns keep-alive probes on or off.
func (tc *TCPConn) SetKeepAlive(on bool) error {
	return tc.setOpt(func(now time.Time, c *tcp.Conn) { c.SetKeepAlive(now, on) })
}

// SetKeepAlivePeriod sets the idle time before the first probe and the
// interval between probes, and turns keep-alive on, as net.TCPConn does.
func (tc *TCPConn) SetKeepAlivePeriod(d time.Duration) error {
	return tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: d, Interval: d, Count: -1})
}

// Go's net package's keep-alive defaults for fields left zero in a
// net.KeepAliveConfig.
const (
	netKeepAliveIdle     = 15 * time.Second
	netKeepAliveInterval = 15 * time.Second
	netKeepAliveCount    = 9
)

// SetKeepAliveConfig sets keep-alive as net.TCPConn's method does: a zero
// field takes Go's default (15 s, 15 s, 9), a negative one leaves the
// current value.
func (tc *TCPConn) SetKeepAliveConfig(kc net.KeepAliveConfig) error {
	orDefault := func(v, def time.Duration) time.Duration {
		if v == 0 {
			return def
		}
		return v // negative: the core leaves the value as it is
	}
	count := kc.Count
	if count == 0 {
		count = netKeepAliveCount
	}
	return tc.setOpt(func(now time.Time, c *tcp.Conn) {
		c.SetKeepAliveParams(now, orDefault(kc.Idle, netKeepAliveIdle), orDefault(kc.Interval, netKeepAliveInterval), count)
		c.SetKeepAlive(now, kc.Enable)
	})
}

// SetDeadline sets the read and write deadlines.
func (tc *TCPConn) SetDeadline(t time.Time) error { return tc.setDeadline(t, true, true) }

// SetReadDeadline sets the deadline for Read calls, pending ones included.
func (tc *TCPConn) SetReadDeadline(t time.Time) error { return tc.setDeadline(t, true, false) }

// SetWriteDeadline sets the deadline for Write calls, pending ones
// included.
func (tc *TCPConn) SetWriteDeadline(t time.Time) error { return tc.setDeadline(t, false, true) }

func (tc *TCPConn) setDeadline(t time.Time, r, w bool) error {
	tc.sh.lock()
	defer tc.sh.release()
	if tc.closedErr() {
		return opError("set", "setsockopt", tc.id.Local, tc.id.Remote, net.ErrClosed)
	}
	if r {
		tc.rdl = t
	}
	if w {
		tc.wdl = t
	}
	tc.wake() // waiters re-read their deadline
	return nil
}

// LocalAddr returns the local address, a *net.TCPAddr.
func (tc *TCPConn) LocalAddr() net.Addr { return net.TCPAddrFromAddrPort(tc.id.Local) }

// RemoteAddr returns the peer's address, a *net.TCPAddr.
func (tc *TCPConn) RemoteAddr() net.Addr { return net.TCPAddrFromAddrPort(tc.id.Remote) }

// Tuple returns the connection's 4-tuple.
func (tc *TCPConn) Tuple() tcp.Tuple { return tc.id }

// ID returns the connection's number in events and Connections.
func (tc *TCPConn) ID() uint64 { return tc.cid }

// State returns the connection's RFC 9293 state.
func (tc *TCPConn) State() tcp.State {
	tc.sh.lock()
	defer tc.sh.release()
	return tc.state()
}

// Info returns the connection's status, like Linux's tcp_info.
func (tc *TCPConn) Info() tcp.Info {
	tc.sh.lock()
	defer tc.sh.release()
	return tc.info()
}

// state is State with the lock held. A connection kept as a TIME-WAIT
// record (timewait.go) has no tcp.Conn any more: it is in TIME-WAIT while
// its record is, then CLOSED.
func (tc *TCPConn) state() tcp.State {
	if tc.tcb == nil {
		if tc.record() != nil {
			return tcp.TimeWait
		}
		return tcp.Closed
	}
	return tc.tcb.State()
}

// info is Info with the lock held.
func (tc *TCPConn) info() tcp.Info {
	if tc.tcb == nil {
		if r := tc.record(); r != nil {
			return r.tw.Info()
		}
		return tcp.Info{State: tcp.Closed}
	}
	return tc.tcb.Info()
}

// record returns tc's TIME-WAIT record, if tc has been replaced by one
// and it has not ended.
func (tc *TCPConn) record() *twSlot {
	if r := tc.sh.tw.get(tc.id); r != nil && r.cid == tc.cid {
		return r
	}
	return nil
}

// Package sock is the socket layer packetdrill scripts talk to, over a
// synack stack on a virtual clock: a file descriptor table and the
// semantics of socket, bind, listen, accept, connect, read, write, close,
// shutdown, fcntl, getsockopt, setsockopt and poll, with errno as a
// kernel reports it, and the one sysctl table (Settings). The Go runner
// (internal/pktdrill) and the shared object for the real packetdrill
// (contrib/packetdrill) both use it; they differ only in how a blocking
// call waits (the runner lets the script go on and checks the call later;
// the object blocks packetdrill's syscall thread) and in how fds are
// numbered (the runner counts from 3; the object backs each socket with a
// real fd, see Table.NewFD).
package sock

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/synack/synack/clock"
	"github.com/synack/synack/stack"
	"github.com/synack/synack/tcp"
)

// Table is the file descriptor table of one script run.
type Table struct {
	Clock *clock.Virtual
	Stack *stack.Stack

	// Local4 and Local6 are the stack's addresses: what a listen on an
	// unspecified address listens on.
	Local4, Local6 netip.Addr

	// Base is the settings the stack was made with; Live the sysctls as
	// the script has set them so far, whose keep-alive timing a new
	// socket takes (see Settings.PerStack).
	Base, Live Settings

	// RcvBuf is what getsockopt(SO_RCVBUF) reports.
	RcvBuf int

	// NewFD numbers a new socket; nil counts from 3, taking the lowest
	// free number, as a process's first sockets get. Valid reports
	// whether fd still names the socket it was given to (nil: always);
	// Release is called when a socket is closed.
	NewFD   func() (int, syscall.Errno)
	Valid   func(fd int) bool
	Release func(fd int)

	mu  sync.Mutex
	fds map[int]*Socket
}

// Socket is one file descriptor of a script.
type Socket struct {
	FD       int
	V6       bool
	Nonblock bool

	bound bool
	laddr netip.AddrPort

	ln      *stack.Listener
	conn    *stack.TCPConn
	dialing bool
	cancel  context.CancelFunc
	async   bool // a connect returned EINPROGRESS: its outcome goes to SO_ERROR

	// Tuple is the connection's four-tuple once known (HaveTuple): from
	// the connection, or set by the caller from the SYN it saw while a
	// connect is still under way.
	Tuple     tcp.Tuple
	HaveTuple bool

	soErr    syscall.Errno // pending error (a failed non-blocking connect)
	reported bool          // the connection's error was reported by SO_ERROR

	linger0    bool
	nodelay    int    // -1 unset, 0 or 1
	keepalive  int    // -1 unset, 0 or 1
	congestion string // TCP_CONGESTION; "" unset: the stack's

	// SO_RCVBUF and SO_SNDBUF: the value given (-1 unset) and the size
	// it makes (doubled, as the stack's SetReadBuffer does). A connection
	// made by connect has already sent its SYN when they are applied, so
	// one set before connect does not choose the window scale.
	rcvbufSet, sndbufSet int
	rcvbuf, sndbuf       int

	// Keep-alive timing (TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT): taken
	// from the sysctls when the socket is made, or from the listening
	// socket on accept, and set on the connection.
	keepIdle, keepIntvl time.Duration
	keepCnt             int
}

// Listener is the socket's listener, or nil.
func (s *Socket) Listener() *stack.Listener { return s.ln }

// Conn is the socket's connection, or nil.
func (s *Socket) Conn() *stack.TCPConn { return s.conn }

// Dialing reports whether a connect is under way.
func (s *Socket) Dialing() bool { return s.dialing }

// Cancel stops a connect under way (the runner's and the object's end of
// a run).
func (s *Socket) Cancel() {
	if s.cancel != nil {
		s.cancel()
	}
}

// Get returns the socket behind fd, or nil.
func (t *Table) Get(fd int) *Socket {
	t.mu.Lock()
	s := t.fds[fd]
	t.mu.Unlock()
	if s != nil && t.Valid != nil && !t.Valid(fd) {
		return nil
	}
	return s
}

// Sockets lists the open sockets by fd.
func (t *Table) Sockets() []*Socket {
	t.mu.Lock()
	out := make([]*Socket, 0, len(t.fds))
	for _, s := range t.fds {
		out = append(out, s)
	}
	t.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].FD < out[j].FD })
	return out
}

// Forget drops every socket from the table without closing anything (the
// end of a run: the stack is closed as a whole).
func (t *Table) Forget() []*Socket {
	all := t.Sockets()
	t.mu.Lock()
	t.fds = nil
	t.mu.Unlock()
	return all
}

func (t *Table) add(v6, nonblock bool) (*Socket, syscall.Errno) {
	var fd int
	if t.NewFD != nil {
		n, e := t.NewFD()
		if e != 0 {
			return nil, e
		}
		fd = n
	}
	s := &Socket{V6: v6, Nonblock: nonblock, nodelay: -1, keepalive: -1, rcvbufSet: -1, sndbufSet: -1}
	s.keepIdle, s.keepIntvl, s.keepCnt = t.Live.KeepAlive()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.fds == nil {
		t.fds = map[int]*Socket{}
	}
	if t.NewFD == nil {
		fd = 3
		for t.fds[fd] != nil {
			fd++
		}
	}
	s.FD = fd
	t.fds[fd] = s
	return s, 0
}

// Socket makes a TCP socket.
func (t *Table) Socket(v6, nonblock bool) (*Socket, syscall.Errno) {
	return t.add(v6, nonblock)
}

// Call is a system call running as a participant of the virtual clock,
// so that it can block on the stack while time moves on.
type Call struct {
	done  chan struct{}
	Ret   int64
	Errno syscall.Errno
	At    time.Time // when it returned (virtual time)
}

// Done reports whether the call has returned.
func (c *Call) Done() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// Wait blocks until the call returns (the shared object's blocking
// calls: another thread moves the clock).
func (c *Call) Wait() { <-c.done }

func (t *Table) returned(ret int64, e syscall.Errno) *Call {
	c := &Call{done: make(chan struct{}), Ret: ret, Errno: e, At: t.Clock.Now()}
	close(c.done)
	return c
}

func (t *Table) start(op func() (int64, syscall.Errno)) *Call {
	c := &Call{done: make(chan struct{})}
	t.Clock.Go(func() {
		ret, e := op()
		c.Ret, c.Errno, c.At = ret, e, t.Clock.Now()
		close(c.done)
	})
	t.Clock.WaitIdle()
	return c
}

// blocking runs op. On a non-blocking socket an op that would block is
// cancelled (cancel makes the stack's call return at once, reset undoes
// that) and gives EAGAIN; if it still has not returned, the Call is
// returned unfinished and the caller reports the bug. On a blocking
// socket the Call may be unfinished: the caller waits or goes on.
func (t *Table) blocking(s *Socket, op func() (int64, syscall.Errno), cancel, reset func()) *Call {
	c := t.start(op)
	if c.Done() || !s.Nonblock {
		return c
	}
	cancel()
	t.Clock.WaitIdle()
	reset()
	if c.Done() && (c.Errno == syscall.EAGAIN || c.Ret == 0 && c.Errno == 0) {
		return t.returned(-1, syscall.EAGAIN)
	}
	return c
}

// epoch is a deadline in the past, for cancelling a blocked call.
var epoch = time.Unix(1, 0)

// Bind records the address a later listen or connect uses.
func (t *Table) Bind(fd int, ap netip.AddrPort) syscall.Errno {
	s := t.Get(fd)
	if s == nil {
		return syscall.EBADF
	}
	s.bound, s.laddr = true, ap
	return 0
}

// Listen listens on the bound address; an unspecified address is the
// stack's address of the socket's family.
func (t *Table) Listen(fd, backlog int) syscall.Errno {
	s := t.Get(fd)
	if s == nil {
		return syscall.EBADF
	}
	ap := s.laddr
	if !ap.Addr().IsValid() || ap.Addr().IsUnspecified() {
		a := t.Local4
		if s.V6 {
			a = t.Local6
		}
		ap = netip.AddrPortFrom(a, ap.Port())
	}
	ln, err := t.Stack.ListenTCP(ap, max(backlog, 1))
	if err != nil {
		return Errno(err)
	}
	s.ln = ln
	t.Clock.WaitIdle()
	return 0
}

// Accept takes a connection from the listening socket; the new socket
// inherits the listening socket's options (as on FreeBSD and Linux). The
// Call's result is the new fd.
func (t *Table) Accept(fd int) *Call {
	s := t.Get(fd)
	if s == nil {
		return t.returned(-1, syscall.EBADF)
	}
	if s.ln == nil {
		return t.returned(-1, syscall.EINVAL)
	}
	ln := s.ln
	return t.blocking(s, func() (int64, syscall.Errno) {
		tc, err := ln.AcceptTCP()
		if err != nil {
			return -1, Errno(err)
		}
		ns, e := t.add(s.V6, false)
		if e != 0 {
			tc.Close()
			return -1, e
		}
		ns.conn, ns.Tuple, ns.HaveTuple = tc, tc.Tuple(), true
		ns.linger0, ns.nodelay, ns.keepalive, ns.congestion = s.linger0, s.nodelay, s.keepalive, s.congestion
		ns.rcvbufSet, ns.sndbufSet, ns.rcvbuf, ns.sndbuf = s.rcvbufSet, s.sndbufSet, s.rcvbuf, s.sndbuf
		ns.keepIdle, ns.keepIntvl, ns.keepCnt = s.keepIdle, s.keepIntvl, s.keepCnt
		t.applyOpts(ns)
		return int64(ns.FD), 0
	}, func() { ln.SetDeadline(epoch) }, func() { ln.SetDeadline(time.Time{}) })
}

// Connect opens a connection to raddr from the bound address (or one the
// stack picks). On a non-blocking socket that has not connected at once it
// gives EINPROGRESS and the outcome is reported by SO_ERROR; on a blocking
// one the Call returns when the handshake ends.
func (t *Table) Connect(fd int, raddr netip.AddrPort) *Call {
	s := t.Get(fd)
	if s == nil {
		return t.returned(-1, syscall.EBADF)
	}
	if s.conn != nil {
		return t.returned(-1, syscall.EISCONN)
	}
	if s.dialing {
		return t.returned(-1, syscall.EALREADY)
	}
	var laddr netip.AddrPort
	if s.bound {
		laddr = s.laddr
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.dialing, s.cancel, s.async = true, cancel, s.Nonblock
	c := t.start(func() (int64, syscall.Errno) {
		tc, err := t.Stack.DialTCPFrom(ctx, laddr, raddr)
		s.dialing = false
		if err != nil {
			e := Errno(err)
			if ctx.Err() == nil && s.async {
				s.soErr = e
			}
			return -1, e
		}
		s.conn = tc
		s.Tuple, s.HaveTuple = tc.Tuple(), true
		t.applyOpts(s)
		return 0, 0
	})
	if c.Done() {
		s.soErr = 0 // reported by connect itself
		return c
	}
	if s.Nonblock {
		return t.returned(-1, syscall.EINPROGRESS)
	}
	return c
}

// Read reads up to len(b) bytes; 0 is the end of the stream.
func (t *Table) Read(fd int, b []byte) *Call { return t.recv(fd, b, false) }

// Peek is recv(fd, b, len(b), MSG_PEEK): Read that leaves the bytes for
// the next Read (stack.TCPConn.Peek).
func (t *Table) Peek(fd int, b []byte) *Call { return t.recv(fd, b, true) }

// Recv is recv(2) with flags: MSG_PEEK peeks, any other flag is
// EOPNOTSUPP (no out-of-band data, MSG_WAITALL or MSG_TRUNC here).
func (t *Table) Recv(fd int, b []byte, flags int) *Call {
	if flags&^syscall.MSG_PEEK != 0 {
		return t.returned(-1, syscall.EOPNOTSUPP)
	}
	return t.recv(fd, b, flags&syscall.MSG_PEEK != 0)
}

func (t *Table) recv(fd int, b []byte, peek bool) *Call {
	s := t.Get(fd)
	if s == nil {
		return t.returned(-1, syscall.EBADF)
	}
	if s.conn == nil {
		if s.dialing && s.Nonblock {
			return t.returned(-1, syscall.EAGAIN) // not connected yet
		}
		return t.returned(-1, syscall.ENOTCONN)
	}
	c := s.conn
	return t.blocking(s, func() (int64, syscall.Errno) {
		var n int
		var err error
		if peek {
			n, err = c.Peek(b)
		} else {
			n, err = c.Read(b)
		}
		if n > 0 || err == nil || err == io.EOF {
			return int64(n), 0
		}
		return -1, Errno(err)
	}, func() { c.SetReadDeadline(epoch) }, func() { c.SetReadDeadline(time.Time{}) })
}

// Write writes b.
func (t *Table) Write(fd int, b []byte) *Call {
	s := t.Get(fd)
	if s == nil {
		return t.returned(-1, syscall.EBADF)
	}
	if s.conn == nil {
		return t.returned(-1, syscall.ENOTCONN)
	}
	c := s.conn
	return t.blocking(s, func() (int64, syscall.Errno) {
		n, err := c.Write(b)
		if n > 0 {
			return int64(n), 0
		}
		return -1, Errno(err)
	}, func() { c.SetWriteDeadline(epoch) }, func() { c.SetWriteDeadline(time.Time{}) })
}

// Close closes fd: a listener stops, a connection closes (or resets with
// SO_LINGER 0), a connect under way is abandoned.
func (t *Table) Close(fd int) syscall.Errno {
	s := t.Get(fd)
	if s == nil {
		return syscall.EBADF
	}
	t.mu.Lock()
	delete(t.fds, fd)
	t.mu.Unlock()
	switch {
	case s.ln != nil:
		s.ln.Close()
	case s.conn != nil:
		if s.linger0 {
			s.conn.SetLinger(0)
		}
		s.conn.Close()
	case s.dialing:
		s.cancel()
	}
	t.Clock.WaitIdle()
	if t.Release != nil {
		t.Release(fd)
	}
	return 0
}

// Shutdown half-closes: SHUT_RD, SHUT_WR or SHUT_RDWR (syscall's values).
func (t *Table) Shutdown(fd, how int) syscall.Errno {
	s := t.Get(fd)
	if s == nil {
		return syscall.EBADF
	}
	if s.conn == nil {
		return syscall.ENOTCONN
	}
	if how != syscall.SHUT_RD && how != syscall.SHUT_WR && how != syscall.SHUT_RDWR {
		return syscall.EINVAL
	}
	var err error
	if how == syscall.SHUT_RD || how == syscall.SHUT_RDWR {
		err = s.conn.CloseRead()
	}
	if how == syscall.SHUT_WR || how == syscall.SHUT_RDWR {
		if e := s.conn.CloseWrite(); err == nil {
			err = e
		}
	}
	t.Clock.WaitIdle()
	return Errno(err)
}

// SetNonblock is fcntl(F_SETFL) with or without O_NONBLOCK.
func (t *Table) SetNonblock(fd int, on bool) syscall.Errno {
	s := t.Get(fd)
	if s == nil {
		return syscall.EBADF
	}
	s.Nonblock = on
	return 0
}

// Opt is a socket option, by the name scripts use.
type Opt string

const (
	SO_REUSEADDR  Opt = "SO_REUSEADDR"
	SO_LINGER     Opt = "SO_LINGER"
	SO_ERROR      Opt = "SO_ERROR"
	SO_RCVBUF     Opt = "SO_RCVBUF"
	SO_SNDBUF     Opt = "SO_SNDBUF"
	SO_KEEPALIVE  Opt = "SO_KEEPALIVE"
	TCP_NODELAY   Opt = "TCP_NODELAY"
	TCP_KEEPIDLE  Opt = "TCP_KEEPIDLE"
	TCP_KEEPINTVL Opt = "TCP_KEEPINTVL"
	TCP_KEEPCNT   Opt = "TCP_KEEPCNT"
	// TCP_CONGESTION takes and gives a name, not an int: SetCongestion
	// and Congestion.
	TCP_CONGESTION Opt = "TCP_CONGESTION"
)

// Gettable and Settable say which options the layer has.
func Gettable(o Opt) bool {
	switch o {
	case SO_ERROR, SO_RCVBUF, SO_SNDBUF, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT:
		return true
	}
	return false
}

func Settable(o Opt) bool {
	switch o {
	case SO_REUSEADDR, SO_LINGER, SO_KEEPALIVE, TCP_NODELAY, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT,
		SO_RCVBUF, SO_SNDBUF:
		return true
	}
	return false
}

// Linux's (level, name) numbers for the options, which packetdrill passes
// through to the shared object.
var linuxOpts = map[[2]int]Opt{
	{1, 2}: SO_REUSEADDR, {1, 13}: SO_LINGER, {1, 4}: SO_ERROR, {1, 8}: SO_RCVBUF, {1, 7}: SO_SNDBUF, {1, 9}: SO_KEEPALIVE,
	{6, 1}: TCP_NODELAY, {6, 4}: TCP_KEEPIDLE, {6, 5}: TCP_KEEPINTVL, {6, 6}: TCP_KEEPCNT,
	{6, 13}: TCP_CONGESTION,
}

// LinuxOpt names the option Linux numbers (level, name), or "".
func LinuxOpt(level, name int) Opt { return linuxOpts[[2]int{level, name}] }

// Getsockopt reads an option: an errno for SO_ERROR, seconds for the
// keep-alive times, a count or a size otherwise.
func (t *Table) Getsockopt(fd int, o Opt) (int, syscall.Errno) {
	s := t.Get(fd)
	if s == nil {
		return -1, syscall.EBADF
	}
	switch o {
	case SO_ERROR:
		return int(t.pendingError(s)), 0
	case SO_RCVBUF:
		switch {
		case s.conn != nil:
			return s.conn.ReadBufferSize(), 0
		case s.rcvbuf > 0:
			return s.rcvbuf, 0
		}
		return t.RcvBuf, 0
	case SO_SNDBUF:
		switch {
		case s.conn != nil:
			return s.conn.WriteBufferSize(), 0
		case s.sndbuf > 0:
			return s.sndbuf, 0
		}
		// What a new connection starts with (tcp/sndtune.go).
		c := t.Stack.Options().TCP.WithDefaults()
		if c.NoAutoTune {
			return c.SendBufferSize, 0
		}
		return min(tcp.InitialSendBuffer, c.SendBufferSize), 0
	case TCP_KEEPIDLE:
		return int(s.keepIdle / time.Second), 0
	case TCP_KEEPINTVL:
		return int(s.keepIntvl / time.Second), 0
	case TCP_KEEPCNT:
		return s.keepCnt, 0
	}
	return -1, syscall.ENOPROTOOPT
}

// Setsockopt sets an option. v is the option's int; SO_LINGER takes two,
// l_onoff and l_linger.
func (t *Table) Setsockopt(fd int, o Opt, v ...int) syscall.Errno {
	s := t.Get(fd)
	if s == nil {
		return syscall.EBADF
	}
	arg := func(i int) int {
		if i < len(v) {
			return v[i]
		}
		return 0
	}
	switch o {
	case SO_REUSEADDR:
		// Every script has its own stack: nothing to reuse.
	case SO_LINGER:
		s.linger0 = arg(0) != 0 && arg(1) == 0
		if s.conn != nil {
			if s.linger0 {
				s.conn.SetLinger(0)
			} else {
				s.conn.SetLinger(-1)
			}
		}
	case SO_RCVBUF, SO_SNDBUF:
		// (*stack.TCPConn).SetReadBuffer and SetWriteBuffer: doubled, as
		// on Linux; what the socket reports until it has a connection.
		n := arg(0)
		if n < 0 {
			return syscall.EINVAL
		}
		if o == SO_RCVBUF {
			s.rcvbuf, s.rcvbufSet = max(2*n, 4096), n
		} else {
			s.sndbuf, s.sndbufSet = max(2*n, 4096), n
		}
	case TCP_NODELAY:
		s.nodelay = min(max(arg(0), 0), 1)
	case SO_KEEPALIVE:
		s.keepalive = min(max(arg(0), 0), 1)
	case TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT:
		n := arg(0)
		if n < 1 {
			return syscall.EINVAL
		}
		switch o {
		case TCP_KEEPIDLE:
			s.keepIdle = time.Duration(n) * time.Second
		case TCP_KEEPINTVL:
			s.keepIntvl = time.Duration(n) * time.Second
		default:
			s.keepCnt = n
		}
	default:
		return syscall.ENOPROTOOPT
	}
	t.applyOpts(s)
	return 0
}

// SetCongestion is setsockopt(TCP_CONGESTION): the socket's connection,
// and those accepted from it, use the congestion controller registered
// under name. An unknown name is ENOENT, as on Linux.
func (t *Table) SetCongestion(fd int, name string) syscall.Errno {
	s := t.Get(fd)
	if s == nil {
		return syscall.EBADF
	}
	if !KnownCongestion(name) {
		return syscall.ENOENT
	}
	s.congestion = name
	t.applyOpts(s)
	return 0
}

// Congestion is getsockopt(TCP_CONGESTION): the name of the socket's
// congestion controller.
func (t *Table) Congestion(fd int) (string, syscall.Errno) {
	s := t.Get(fd)
	switch {
	case s == nil:
		return "", syscall.EBADF
	case s.conn != nil:
		return s.conn.Info().CongestionControl, 0
	case s.congestion != "":
		return s.congestion, 0
	}
	return t.Stack.Options().TCP.CongestionControl, 0
}

// applyOpts sets the socket's options on its connection.
func (t *Table) applyOpts(s *Socket) {
	if s.conn == nil {
		return
	}
	if s.linger0 {
		s.conn.SetLinger(0)
	}
	if s.nodelay >= 0 {
		s.conn.SetNoDelay(s.nodelay == 1)
	}
	if s.keepalive >= 0 {
		s.conn.SetKeepAlive(s.keepalive == 1)
	}
	if s.rcvbufSet >= 0 && s.conn.ReadBufferSize() != s.rcvbuf {
		s.conn.SetReadBuffer(s.rcvbufSet)
	}
	if s.sndbufSet >= 0 && s.conn.WriteBufferSize() != s.sndbuf {
		s.conn.SetWriteBuffer(s.sndbufSet)
	}
	if s.congestion != "" && s.conn.Info().CongestionControl != s.congestion {
		s.conn.SetCongestionControl(s.congestion) // a known name: SetCongestion checked it
	}
	// The stack's configuration holds the keep-alive timing of the
	// sysctls at the start; a socket with other values sets its own.
	if idle, intvl, cnt := t.Base.KeepAlive(); s.keepIdle != idle || s.keepIntvl != intvl || s.keepCnt != cnt {
		s.conn.SetKeepAliveConfig(net.KeepAliveConfig{
			Enable: s.keepalive == 1, Idle: s.keepIdle, Interval: s.keepIntvl, Count: s.keepCnt,
		})
	}
}

// pendingError is SO_ERROR: the error of a failed non-blocking connect,
// or of a connection that was reset or timed out, reported once.
func (t *Table) pendingError(s *Socket) syscall.Errno {
	if e := s.soErr; e != 0 {
		s.soErr = 0
		return e
	}
	if s.conn != nil && !s.reported {
		_, err := s.conn.Read(nil)
		t.Clock.WaitIdle()
		if e := Errno(err); e != 0 && e != syscall.EAGAIN && e != syscall.ENOTCONN && e != syscall.EBADF {
			s.reported = true
			return e
		}
	}
	return 0
}

// poll(2) events, Linux's values (FreeBSD's are the same).
const (
	POLLIN  = 0x1
	POLLOUT = 0x4
	POLLERR = 0x8
	POLLHUP = 0x10
)

// Poll reports the events of want that are ready on fd, plus POLLERR and
// POLLHUP, which are always reported.
func (t *Table) Poll(fd int, want int16) int16 {
	s := t.Get(fd)
	if s == nil || s.conn == nil {
		return 0
	}
	var ev int16
	info := s.conn.Info()
	if info.RecvQueue > 0 || info.State == tcp.Closed || info.State == tcp.CloseWait {
		ev |= POLLIN
	}
	if info.State == tcp.Established || info.State == tcp.CloseWait {
		ev |= POLLOUT
	}
	return ev & (want | POLLERR | POLLHUP)
}

// Errno turns a stack error into the errno a socket call returns: the
// errno inside a net-package error, EAGAIN for a deadline, EBADF for a
// closed socket, EINTR for a cancelled call, EIO otherwise; 0 for none
// and for the end of the stream.
func Errno(err error) syscall.Errno {
	if err == nil || err == io.EOF {
		return 0
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return syscall.EAGAIN
	case errors.Is(err, net.ErrClosed):
		return syscall.EBADF
	case errors.Is(err, context.Canceled):
		return syscall.EINTR
	}
	return syscall.EIO
}

package pktdrill

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/synack/synack/stack"
	"github.com/synack/synack/tcp"
)

// socket is a script's file descriptor: a socket of synack's stack.
type socket struct {
	fd       int
	nonblock bool
	bound    bool

	ln         *stack.Listener
	conn       *stack.TCPConn
	dialing    bool
	dialCancel context.CancelFunc
	tuple      tcp.Tuple
	haveTuple  bool

	soError     syscall.Errno // pending error (a failed connect)
	errReported bool          // the connection's error was reported by SO_ERROR
	linger0     bool
	nodelay     int // -1 unset, 0 or 1
	keepalive   int

	// Keep-alive timing (TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT): taken
	// from the keepidle / keepintvl / keepcnt sysctls when the socket is
	// made, or from the listening socket on accept, then set on the
	// connection (tcp.Conn.SetKeepAliveParams).
	keepIdle, keepIntvl time.Duration
	keepCnt             int
}

// newSocket makes a socket with the defaults a new socket inherits.
func (r *runner) newSocket(fd int) *socket {
	s := &socket{fd: fd, nodelay: -1, keepalive: -1}
	s.keepIdle, s.keepIntvl, s.keepCnt = r.live.keepAlive()
	return s
}

// call is a system call running in a goroutine of the virtual clock, so
// that it can block while the script goes on.
type call struct {
	done  bool
	ret   int64
	errno syscall.Errno
	at    time.Time
}

// startCall runs fn as a participant of the virtual clock and returns once
// it has finished or blocked.
func (r *runner) startCall(fn func() (int64, syscall.Errno)) *call {
	c := &call{}
	r.v.Go(func() {
		ret, e := fn()
		c.ret, c.errno, c.at = ret, e, r.v.Now()
		c.done = true // read by the runner after WaitIdle, which orders it
	})
	r.v.WaitIdle()
	return c
}

func (r *runner) newFD() int {
	fd := 3
	for r.fds[fd] != nil {
		fd++
	}
	return fd
}

// result compares a call's outcome with the script's.
func (r *runner) result(ev *Event, ret int64, e syscall.Errno) error {
	c := ev.Syscall
	r.logf("%s = %d %s", ev.Text[strings.Index(ev.Text, c.Name):strings.Index(ev.Text, "=")], ret, errnoName(e))
	if c.Errno != "" {
		want, ok := errnoNames[c.Errno]
		if !ok {
			return skipError("unknown errno " + c.Errno)
		}
		if ret != c.Result || !r.errnoMatches(e, want) {
			return r.fail("%s returned %d (%s), want %d (%s)", c.Name, ret, errnoName(e), c.Result, c.Errno)
		}
		return nil
	}
	if ret != c.Result || (ret < 0 && e != 0 && c.Result >= 0) {
		return r.fail("%s returned %d (%s), want %d", c.Name, ret, errnoName(e), c.Result)
	}
	return nil
}

// errnoMatches compares an errno with the script's, allowing what the
// profile says is the same report (Profile.ProtoUnreachRefused).
func (r *runner) errnoMatches(got, want syscall.Errno) bool {
	return got == want ||
		r.prof.ProtoUnreachRefused && got == syscall.ENOPROTOOPT && want == syscall.ECONNREFUSED
}

// callEnd is when a blocking call with a range a...b must return.
func (r *runner) callEnd(ev *Event, start time.Duration) time.Duration {
	if ev.EndRel {
		return start - ev.Time + ev.End
	}
	return ev.End
}

// finishCall checks a call that has returned.
func (r *runner) finishCall(ev *Event, c *call, start time.Duration) error {
	if ev.HasEnd {
		end := r.callEnd(ev, start)
		at := c.at.Sub(epoch)
		if at < end-r.tol || at > end+r.tol {
			return r.fail("%s returned at %.6f, want at %.6f", ev.Syscall.Name, at.Seconds(), end.Seconds())
		}
	}
	return r.result(ev, c.ret, c.errno)
}

// checkPending checks the blocking call in progress when it has returned.
// With wait, it first lets time run until it returns.
func (r *runner) checkPending(wait bool) error {
	c := r.pending
	if c == nil {
		return nil
	}
	if !c.done && wait {
		limit := r.now() + maxAnyWait
		if r.pendingEv.HasEnd {
			limit = r.callEnd(r.pendingEv, r.pendingT) + r.tol
		}
		for !c.done && r.now() < limit {
			target := limit
			if nt, ok := r.v.NextTimer(); ok && nt.Sub(epoch) < target {
				target = max(nt.Sub(epoch), r.now()+time.Microsecond)
			}
			r.advance(target)
		}
	}
	if !c.done {
		if wait {
			saved := r.cur
			r.cur = r.pendingEv
			defer func() { r.cur = saved }()
			return r.fail("%s is still blocked", r.pendingEv.Syscall.Name)
		}
		return nil
	}
	r.pending = nil
	saved := r.cur
	r.cur = r.pendingEv
	defer func() { r.cur = saved }()
	return r.finishCall(r.pendingEv, c, r.pendingT)
}

// blocking runs a call that may block. A non-blocking socket gets EAGAIN
// if it would (cancel makes the stack's call return at once); on a
// blocking socket the call goes on while the script does.
func (r *runner) blocking(ev *Event, t time.Duration, s *socket, fn func() (int64, syscall.Errno), cancel, reset func()) error {
	c := r.startCall(fn)
	if c.done {
		return r.finishCall(ev, c, t)
	}
	if s.nonblock {
		cancel()
		r.v.WaitIdle()
		reset()
		if !c.done {
			return r.fail("%s did not return on a non-blocking socket", ev.Syscall.Name)
		}
		e := c.errno
		if e == syscall.EAGAIN || c.ret >= 0 && c.ret == 0 && e == 0 {
			return r.result(ev, -1, syscall.EAGAIN)
		}
		return r.finishCall(ev, c, t)
	}
	r.pending, r.pendingEv, r.pendingT = c, ev, t
	return nil
}

func (r *runner) syscall(ev *Event, t time.Duration) error {
	c := ev.Syscall
	if c.Name == "socket" {
		fd := r.newFD()
		r.fds[fd] = r.newSocket(fd)
		r.lastFD = fd
		return r.result(ev, int64(fd), 0)
	}
	if len(c.Args) == 0 {
		return r.fail("%s without a file descriptor", c.Name)
	}
	fd, err := strconv.Atoi(c.Args[0])
	if err != nil {
		return r.fail("bad file descriptor %q", c.Args[0])
	}
	r.lastFD = fd
	s := r.fds[fd]
	if s == nil {
		return r.result(ev, -1, syscall.EBADF)
	}
	arg := func(i int) string {
		if i < len(c.Args) {
			return c.Args[i]
		}
		return ""
	}
	switch c.Name {
	case "fcntl":
		switch arg(1) {
		case "F_GETFL":
			v := r.prof.FGETFL
			if s.nonblock {
				v |= r.prof.ONONBLOCK
			}
			return r.result(ev, v, 0)
		case "F_SETFL":
			s.nonblock = strings.Contains(arg(2), "O_NONBLOCK")
			return r.result(ev, 0, 0)
		}
		return skipError("fcntl " + arg(1) + " is not supported")

	case "bind":
		s.bound = true
		return r.result(ev, 0, 0)

	case "listen":
		backlog, _ := strconv.Atoi(arg(1))
		ln, err := r.st.ListenTCP(netip.AddrPortFrom(r.local, boundPort), max(backlog, 1))
		if err != nil {
			return r.result(ev, -1, Errno(err))
		}
		s.ln = ln
		r.v.WaitIdle()
		return r.result(ev, 0, 0)

	case "accept":
		if s.ln == nil {
			return r.result(ev, -1, syscall.EINVAL)
		}
		ln := s.ln
		return r.blocking(ev, t, s, func() (int64, syscall.Errno) {
			tc, err := ln.AcceptTCP()
			if err != nil {
				return -1, Errno(err)
			}
			nfd := r.newFD()
			ns := r.newSocket(nfd)
			ns.conn, ns.tuple, ns.haveTuple = tc, tc.Tuple(), true
			// A socket from accept inherits the listening socket's
			// options.
			ns.linger0, ns.nodelay, ns.keepalive = s.linger0, s.nodelay, s.keepalive
			ns.keepIdle, ns.keepIntvl, ns.keepCnt = s.keepIdle, s.keepIntvl, s.keepCnt
			r.fds[nfd] = ns
			r.applyOpts(ns)
			return int64(nfd), 0
		}, func() { ln.SetDeadline(epoch) }, func() { ln.SetDeadline(time.Time{}) })

	case "connect":
		if s.conn != nil {
			return r.result(ev, -1, syscall.EISCONN)
		}
		if s.dialing {
			return r.result(ev, -1, syscall.EALREADY)
		}
		var laddr netip.AddrPort
		if s.bound {
			laddr = netip.AddrPortFrom(r.local, boundPort)
		}
		raddr := netip.AddrPortFrom(r.remote, remotePort)
		ctx, cancel := context.WithCancel(context.Background())
		s.dialing, s.dialCancel = true, cancel
		r.livePort = 0
		cl := r.startCall(func() (int64, syscall.Errno) {
			tc, err := r.st.DialTCPFrom(ctx, laddr, raddr)
			s.dialing = false
			if err != nil {
				e := Errno(err)
				if ctx.Err() == nil {
					s.soError = e
				}
				return -1, e
			}
			s.conn = tc
			s.tuple, s.haveTuple = tc.Tuple(), true
			r.applyOpts(s)
			return 0, 0
		})
		if r.livePort != 0 && !s.haveTuple {
			s.tuple = tcp.Tuple{Local: netip.AddrPortFrom(r.local, r.livePort), Remote: raddr}
			s.haveTuple = true
		}
		if cl.done {
			if cl.errno != 0 {
				s.soError = 0 // reported by connect itself
			}
			return r.finishCall(ev, cl, t)
		}
		if s.nonblock {
			return r.result(ev, -1, syscall.EINPROGRESS)
		}
		r.pending, r.pendingEv, r.pendingT = cl, ev, t
		return nil

	case "close":
		delete(r.fds, fd)
		switch {
		case s.ln != nil:
			s.ln.Close()
		case s.conn != nil:
			if s.linger0 {
				s.conn.SetLinger(0)
			}
			s.conn.Close()
		case s.dialing:
			s.dialCancel()
		}
		r.v.WaitIdle()
		return r.result(ev, 0, 0)

	case "shutdown":
		if s.conn == nil {
			return r.result(ev, -1, syscall.ENOTCONN)
		}
		var err error
		switch arg(1) {
		case "SHUT_WR":
			err = s.conn.CloseWrite()
		case "SHUT_RD":
			err = s.conn.CloseRead()
		case "SHUT_RDWR":
			err = s.conn.CloseRead()
			if e := s.conn.CloseWrite(); err == nil {
				err = e
			}
		default:
			return r.fail("bad shutdown mode %q", arg(1))
		}
		r.v.WaitIdle()
		if e := Errno(err); e != 0 {
			return r.result(ev, -1, e)
		}
		return r.result(ev, 0, 0)

	case "read", "recv":
		if s.conn == nil && s.dialing && s.nonblock {
			return r.result(ev, -1, syscall.EAGAIN) // not connected yet
		}
		if s.conn == nil {
			return r.result(ev, -1, syscall.ENOTCONN)
		}
		n, _ := strconv.Atoi(arg(2))
		conn := s.conn
		return r.blocking(ev, t, s, func() (int64, syscall.Errno) {
			k, err := conn.Read(make([]byte, n))
			if k > 0 || err == nil {
				return int64(k), 0
			}
			if e := Errno(err); e != 0 {
				return -1, e
			}
			return 0, 0 // EOF
		}, func() { conn.SetReadDeadline(epoch) }, func() { conn.SetReadDeadline(time.Time{}) })

	case "write", "send":
		if s.conn == nil {
			return r.result(ev, -1, syscall.ENOTCONN)
		}
		n, _ := strconv.Atoi(arg(2))
		conn := s.conn
		return r.blocking(ev, t, s, func() (int64, syscall.Errno) {
			k, err := conn.Write(make([]byte, n))
			if k > 0 {
				return int64(k), 0
			}
			return -1, Errno(err)
		}, func() { conn.SetWriteDeadline(epoch) }, func() { conn.SetWriteDeadline(time.Time{}) })

	case "getsockopt":
		return r.getsockopt(ev, s, arg(2), strings.Trim(arg(3), "[] "))

	case "setsockopt":
		return r.setsockopt(ev, s, arg(2), arg(3))
	}
	return skipError("system call " + c.Name + " is not supported")
}

func (r *runner) applyOpts(s *socket) {
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
	// The stack's configuration holds the keep-alive timing of the
	// sysctls at the start; a socket with other values sets its own.
	if idle, intvl, cnt := r.set.keepAlive(); s.keepIdle != idle || s.keepIntvl != intvl || s.keepCnt != cnt {
		s.conn.SetKeepAliveConfig(net.KeepAliveConfig{
			Enable: s.keepalive == 1, Idle: s.keepIdle, Interval: s.keepIntvl, Count: s.keepCnt,
		})
	}
}

// pendingError is SO_ERROR: the error of a failed connect, or of a
// connection that was reset or timed out, reported once.
func (r *runner) pendingError(s *socket) syscall.Errno {
	if e := s.soError; e != 0 {
		s.soError = 0
		return e
	}
	if s.conn != nil && !s.errReported {
		_, err := s.conn.Read(nil)
		r.v.WaitIdle()
		if e := Errno(err); e != 0 && e != syscall.EAGAIN && e != syscall.ENOTCONN && e != syscall.EBADF {
			s.errReported = true
			return e
		}
	}
	return 0
}

func (r *runner) getsockopt(ev *Event, s *socket, opt, want string) error {
	var got string
	switch opt {
	case "SO_ERROR":
		e := r.pendingError(s)
		got = errnoName(e)
		if w, ok := errnoNames[want]; ok && r.errnoMatches(e, w) {
			got = want
		}
	case "SO_RCVBUF":
		if r.prof.AnySORCVBUF {
			got = want
		} else {
			got = strconv.Itoa(r.rcvbuf)
		}
	case "TCP_KEEPIDLE":
		got = strconv.Itoa(int(s.keepIdle / time.Second))
	case "TCP_KEEPINTVL":
		got = strconv.Itoa(int(s.keepIntvl / time.Second))
	case "TCP_KEEPCNT":
		got = strconv.Itoa(s.keepCnt)
	default:
		return skipError("getsockopt " + opt + " is not supported")
	}
	if got != want {
		return r.fail("getsockopt(%s) gave [%s], want [%s]", opt, got, want)
	}
	return r.result(ev, 0, 0)
}

func (r *runner) setsockopt(ev *Event, s *socket, opt, val string) error {
	num := func() int {
		n, _ := strconv.Atoi(strings.Trim(val, "[] "))
		return n
	}
	switch opt {
	case "SO_REUSEADDR":
	case "SO_LINGER":
		onoff, linger := 0, 0
		for _, kv := range strings.Split(strings.Trim(val, "{} "), ",") {
			k, v, _ := strings.Cut(kv, "=")
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			switch strings.TrimSpace(k) {
			case "onoff", "l_onoff":
				onoff = n
			case "linger", "l_linger":
				linger = n
			}
		}
		s.linger0 = onoff != 0 && linger == 0
		if s.conn != nil {
			if s.linger0 {
				s.conn.SetLinger(0)
			} else {
				s.conn.SetLinger(-1)
			}
		}
	case "TCP_NODELAY":
		s.nodelay = min(num(), 1)
	case "SO_KEEPALIVE":
		s.keepalive = min(num(), 1)
	case "TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT":
		n := num()
		if n < 1 {
			return r.result(ev, -1, syscall.EINVAL)
		}
		switch opt {
		case "TCP_KEEPIDLE":
			s.keepIdle = time.Duration(n) * time.Second
		case "TCP_KEEPINTVL":
			s.keepIntvl = time.Duration(n) * time.Second
		default:
			s.keepCnt = n
		}
	default:
		return skipError("setsockopt " + opt + " is not supported")
	}
	r.applyOpts(s)
	return r.result(ev, 0, 0)
}

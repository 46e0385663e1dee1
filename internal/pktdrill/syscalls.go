package pktdrill

import (
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/synack/synack/internal/pktdrill/sock"
	"github.com/synack/synack/tcp"
)

// The script's system calls go to the socket layer shared with the shared
// object (package sock). What is the runner's own: the script's file
// descriptors and addresses are implied ("..."), a blocking call goes on
// while the script does and is checked when it returns (checkPending),
// and results are compared with the script's.

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
func (r *runner) finishCall(ev *Event, c *sock.Call, start time.Duration) error {
	if ev.HasEnd {
		end := r.callEnd(ev, start)
		at := c.At.Sub(epoch)
		if at < end-r.tol || at > end+r.tol {
			return r.fail("%s returned at %.6f, want at %.6f", ev.Syscall.Name, at.Seconds(), end.Seconds())
		}
	}
	return r.result(ev, c.Ret, c.Errno)
}

// checkPending checks the blocking call in progress when it has returned.
// With wait, it first lets time run until it returns.
func (r *runner) checkPending(wait bool) error {
	c := r.pending
	if c == nil {
		return nil
	}
	if !c.Done() && wait {
		limit := r.now() + maxAnyWait
		if r.pendingEv.HasEnd {
			limit = r.callEnd(r.pendingEv, r.pendingT) + r.tol
		}
		for !c.Done() && r.now() < limit {
			target := limit
			if nt, ok := r.v.NextTimer(); ok && nt.Sub(epoch) < target {
				target = max(nt.Sub(epoch), r.now()+time.Microsecond)
			}
			r.advance(target)
		}
	}
	if !c.Done() {
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

// call checks a call that may block: one that has returned is compared
// now; one still blocked on a blocking socket goes on while the script
// does; on a non-blocking socket that is a bug of the layer.
func (r *runner) call(ev *Event, t time.Duration, s *sock.Socket, c *sock.Call) error {
	if c.Done() {
		return r.finishCall(ev, c, t)
	}
	if s.Nonblock {
		return r.fail("%s did not return on a non-blocking socket", ev.Syscall.Name)
	}
	r.pending, r.pendingEv, r.pendingT = c, ev, t
	return nil
}

func (r *runner) syscall(ev *Event, t time.Duration) error {
	c := ev.Syscall
	if c.Name == "socket" {
		s, e := r.tab.Socket(r.ipv6, false)
		if e != 0 {
			return r.result(ev, -1, e)
		}
		r.lastFD = s.FD
		return r.result(ev, int64(s.FD), 0)
	}
	if len(c.Args) == 0 {
		return r.fail("%s without a file descriptor", c.Name)
	}
	fd, err := strconv.Atoi(c.Args[0])
	if err != nil {
		return r.fail("bad file descriptor %q", c.Args[0])
	}
	r.lastFD = fd
	s := r.tab.Get(fd)
	if s == nil {
		return r.result(ev, -1, syscall.EBADF)
	}
	arg := func(i int) string {
		if i < len(c.Args) {
			return c.Args[i]
		}
		return ""
	}
	// The script's own addresses: bind(fd, ..., ...) binds packetdrill's
	// default port; connect goes to the script's peer.
	bound := netip.AddrPortFrom(r.local, boundPort)
	switch c.Name {
	case "fcntl":
		switch arg(1) {
		case "F_GETFL":
			v := r.prof.FGETFL
			if s.Nonblock {
				v |= r.prof.ONONBLOCK
			}
			return r.result(ev, v, 0)
		case "F_SETFL":
			return r.result(ev, 0, r.tab.SetNonblock(fd, strings.Contains(arg(2), "O_NONBLOCK")))
		}
		return skipError("fcntl " + arg(1) + " is not supported")

	case "bind":
		return r.result(ev, 0, r.tab.Bind(fd, bound))

	case "listen":
		backlog, _ := strconv.Atoi(arg(1))
		if s.Listener() == nil {
			r.tab.Bind(fd, bound) // packetdrill's listen is on its port
		}
		if e := r.tab.Listen(fd, backlog); e != 0 {
			return r.result(ev, -1, e)
		}
		return r.result(ev, 0, 0)

	case "accept":
		return r.call(ev, t, s, r.tab.Accept(fd))

	case "connect":
		r.livePort = 0
		cl := r.tab.Connect(fd, netip.AddrPortFrom(r.remote, remotePort))
		if r.livePort != 0 && !s.HaveTuple {
			s.Tuple = tcp.Tuple{Local: netip.AddrPortFrom(r.local, r.livePort), Remote: netip.AddrPortFrom(r.remote, remotePort)}
			s.HaveTuple = true
		}
		return r.call(ev, t, s, cl)

	case "close":
		return r.result(ev, 0, r.tab.Close(fd))

	case "shutdown":
		how, ok := map[string]int{"SHUT_RD": syscall.SHUT_RD, "SHUT_WR": syscall.SHUT_WR, "SHUT_RDWR": syscall.SHUT_RDWR}[arg(1)]
		if !ok {
			return r.fail("bad shutdown mode %q", arg(1))
		}
		if e := r.tab.Shutdown(fd, how); e != 0 {
			return r.result(ev, -1, e)
		}
		return r.result(ev, 0, 0)

	case "read":
		n, _ := strconv.Atoi(arg(2))
		return r.call(ev, t, s, r.tab.Read(fd, make([]byte, n)))

	case "recv":
		n, _ := strconv.Atoi(arg(2))
		flags, _ := recvFlags(arg(3)) // unsupportedCall refused the others
		return r.call(ev, t, s, r.tab.Recv(fd, make([]byte, n), flags))

	case "write", "send":
		n, _ := strconv.Atoi(arg(2))
		return r.call(ev, t, s, r.tab.Write(fd, make([]byte, n)))

	case "getsockopt":
		return r.getsockopt(ev, fd, sock.Opt(arg(2)), strings.Trim(arg(3), "[] "))

	case "setsockopt":
		return r.setsockopt(ev, fd, sock.Opt(arg(2)), arg(3))
	}
	return skipError("system call " + c.Name + " is not supported")
}

func (r *runner) getsockopt(ev *Event, fd int, opt sock.Opt, want string) error {
	if opt == sock.TCP_CONGESTION {
		name, e := r.tab.Congestion(fd)
		if e != 0 {
			return r.result(ev, -1, e)
		}
		if w := strings.Trim(want, `"`); name != w {
			return r.fail("getsockopt(TCP_CONGESTION) gave %q, want %q", name, w)
		}
		return r.result(ev, 0, 0)
	}
	if !sock.Gettable(opt) {
		return skipError("getsockopt " + string(opt) + " is not supported")
	}
	v, e := r.tab.Getsockopt(fd, opt)
	if e != 0 {
		return r.result(ev, -1, e)
	}
	got := strconv.Itoa(v)
	switch opt {
	case sock.SO_ERROR:
		e := syscall.Errno(v)
		got = errnoName(e)
		if w, ok := errnoNames[want]; ok && r.errnoMatches(e, w) {
			got = want
		}
	case sock.SO_RCVBUF:
		if r.prof.AnySORCVBUF {
			got = want
		}
	}
	if got != want {
		return r.fail("getsockopt(%s) gave [%s], want [%s]", opt, got, want)
	}
	return r.result(ev, 0, 0)
}

func (r *runner) setsockopt(ev *Event, fd int, opt sock.Opt, val string) error {
	if opt == sock.TCP_CONGESTION {
		// setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, "cubic", 5): a name.
		if e := r.tab.SetCongestion(fd, strings.Trim(val, `"`)); e != 0 {
			return r.result(ev, -1, e)
		}
		return r.result(ev, 0, 0)
	}
	if !sock.Settable(opt) {
		return skipError("setsockopt " + string(opt) + " is not supported")
	}
	var v []int
	if opt == sock.SO_LINGER {
		onoff, linger := 0, 0
		for _, kv := range strings.Split(strings.Trim(val, "{} "), ",") {
			k, x, _ := strings.Cut(kv, "=")
			n, _ := strconv.Atoi(strings.TrimSpace(x))
			switch strings.TrimSpace(k) {
			case "onoff", "l_onoff":
				onoff = n
			case "linger", "l_linger":
				linger = n
			}
		}
		v = []int{onoff, linger}
	} else {
		n, _ := strconv.Atoi(strings.Trim(val, "[] "))
		v = []int{n}
	}
	if e := r.tab.Setsockopt(fd, opt, v...); e != 0 {
		return r.result(ev, -1, e)
	}
	return r.result(ev, 0, 0)
}

// recvFlags reads recv(2)'s flags argument: 0 (or none given) or MSG_PEEK,
// the one flag the socket layer supports; ok is false for anything else.
func recvFlags(a string) (flags int, ok bool) {
	switch strings.TrimSpace(a) {
	case "", "0":
		return 0, true
	case "MSG_PEEK":
		return syscall.MSG_PEEK, true
	}
	return 0, false
}

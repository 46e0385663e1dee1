//go:build cgo && linux

package main

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/synack/synack/internal/clock"
	"github.com/synack/synack/link"
	"github.com/synack/synack/stack"
	"github.com/synack/synack/tcp"
)

// Linux values: packetdrill passes its host's constants through.
const (
	fGETFL, fSETFL = 3, 4
	oRDWR          = 2
	oNONBLOCK      = 0x800
	sockNONBLOCK   = 0x800
	solSocket      = 1
	soReuseAddr    = 2
	soError        = 4
	soKeepAlive    = 9
	soRcvBuf       = 8
	soLinger       = 13
	ipprotoTCP     = 6
	tcpNoDelay     = 1
	pollIn         = 0x1
	pollOut        = 0x4
)

// instance is one script run: a fresh stack on a virtual clock.
type instance struct {
	mu   sync.Mutex // serialises clock moves and injections
	v    *clock.Virtual
	st   *stack.Stack
	ep   *endpoint
	cfg  tcp.Config
	fdMu sync.Mutex
	fds  map[int]*sock

	local4, local6 netip.Addr
}

var inst *instance

type sock struct {
	v6       bool
	nonblock bool
	laddr    netip.AddrPort
	ln       *stack.Listener
	conn     *stack.TCPConn
	dialing  bool
	cancel   context.CancelFunc
	soErr    syscall.Errno
	reported bool
	linger0  bool
}

// newInstance reads the --so_flags string: comma-separated key=value
// pairs local4=IP, local6=IP, mtu=N, rcvbuf=N.
func newInstance(flags string) {
	if inst != nil {
		inst.close()
	}
	in := &instance{
		fds:    map[int]*sock{},
		local4: netip.MustParseAddr("192.168.0.1"),
		local6: netip.MustParseAddr("fd3d:fa7b:d17d::1"),
	}
	mtu := 1500
	for _, kv := range strings.Split(flags, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		switch k {
		case "local4":
			if a, err := netip.ParseAddr(v); err == nil {
				in.local4 = a
			}
		case "local6":
			if a, err := netip.ParseAddr(v); err == nil {
				in.local6 = a
			}
		case "mtu":
			mtu, _ = strconv.Atoi(v)
		case "rcvbuf":
			in.cfg.ReceiveBufferSize, _ = strconv.Atoi(v)
		}
	}
	in.v = clock.NewVirtual(time.Now().Truncate(time.Second))
	in.ep = &endpoint{mtu: mtu, now: in.v.Now}
	in.st = stack.New(stack.Options{Clock: in.v, TCP: in.cfg, Nagle: true,
		Rand: rand.NewChaCha8([32]byte{'s', 'o'})})
	id, err := in.st.AddLink(in.ep, netip.PrefixFrom(in.local4, 24), netip.PrefixFrom(in.local6, 64))
	if err == nil {
		in.st.AddRoute(netip.MustParsePrefix("0.0.0.0/0"), netip.Addr{}, id)
		in.st.AddRoute(netip.MustParsePrefix("::/0"), netip.Addr{}, id)
	}
	inst = in
}

func (in *instance) close() {
	in.fdMu.Lock()
	for fd, s := range in.fds {
		if s.cancel != nil {
			s.cancel()
		}
		syscall.Close(fd)
	}
	in.fds = map[int]*sock{}
	in.fdMu.Unlock()
	in.st.Close()
}

// run executes op as a participant of the virtual clock and waits for it.
// With nonblock, an op that blocks is cancelled with cancel and its
// result is EAGAIN.
func (in *instance) run(nonblock bool, op func() (int, syscall.Errno), cancel, reset func()) (int, syscall.Errno) {
	done := make(chan struct{})
	var r int
	var e syscall.Errno
	in.v.Go(func() { r, e = op(); close(done) })
	in.v.WaitIdle()
	select {
	case <-done:
		return r, e
	default:
	}
	if nonblock && cancel != nil {
		cancel()
		<-done
		reset()
		if e == 0 && r == 0 {
			return 0, syscall.EAGAIN
		}
		return r, e
	}
	<-done // time moves on packetdrill's other thread (usleep)
	return r, e
}

func (in *instance) get(fd int) *sock {
	in.fdMu.Lock()
	defer in.fdMu.Unlock()
	return in.fds[fd]
}

func (in *instance) socket(domain, typ int) (int, syscall.Errno) {
	fd, err := syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return -1, errnoOf(err)
	}
	in.fdMu.Lock()
	in.fds[fd] = &sock{v6: domain == syscall.AF_INET6, nonblock: typ&sockNONBLOCK != 0}
	in.fdMu.Unlock()
	return fd, 0
}

func parseSockaddr(b []byte) (netip.AddrPort, bool) {
	if len(b) < 8 {
		return netip.AddrPort{}, false
	}
	fam := binary.NativeEndian.Uint16(b)
	port := binary.BigEndian.Uint16(b[2:])
	switch {
	case fam == syscall.AF_INET:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), port), true
	case fam == syscall.AF_INET6 && len(b) >= 24:
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])).Unmap(), port), true
	}
	return netip.AddrPort{}, false
}

func (in *instance) bind(fd int, sa []byte) syscall.Errno {
	s := in.get(fd)
	if s == nil {
		return syscall.EBADF
	}
	ap, ok := parseSockaddr(sa)
	if !ok {
		return syscall.EINVAL
	}
	s.laddr = ap
	return 0
}

func (in *instance) listen(fd, backlog int) syscall.Errno {
	s := in.get(fd)
	if s == nil {
		return syscall.EBADF
	}
	ap := s.laddr
	if !ap.Addr().IsValid() || ap.Addr().IsUnspecified() {
		a := in.local4
		if s.v6 {
			a = in.local6
		}
		ap = netip.AddrPortFrom(a, ap.Port())
	}
	ln, err := in.st.ListenTCP(ap, max(backlog, 1))
	if err != nil {
		return errnoOf(err)
	}
	s.ln = ln
	return 0
}

func (in *instance) accept(fd int) (int, syscall.Errno) {
	s := in.get(fd)
	if s == nil {
		return -1, syscall.EBADF
	}
	if s.ln == nil {
		return -1, syscall.EINVAL
	}
	ln := s.ln
	var tc *stack.TCPConn
	_, e := in.run(s.nonblock, func() (int, syscall.Errno) {
		c, err := ln.AcceptTCP()
		tc = c
		return 0, errnoOf(err)
	}, func() { ln.SetDeadline(time.Unix(1, 0)) }, func() { ln.SetDeadline(time.Time{}) })
	if e != 0 {
		return -1, e
	}
	nfd, e := in.socket(syscall.AF_INET, 0)
	if e != 0 {
		tc.Close()
		return -1, e
	}
	in.get(nfd).conn = tc
	return nfd, 0
}

func (in *instance) connect(fd int, sa []byte) syscall.Errno {
	s := in.get(fd)
	if s == nil {
		return syscall.EBADF
	}
	if s.conn != nil {
		return syscall.EISCONN
	}
	if s.dialing {
		return syscall.EALREADY
	}
	ra, ok := parseSockaddr(sa)
	if !ok {
		return syscall.EINVAL
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.dialing, s.cancel = true, cancel
	done := make(chan syscall.Errno, 1)
	in.v.Go(func() {
		tc, err := in.st.DialTCPFrom(ctx, s.laddr, ra)
		s.dialing = false
		e := errnoOf(err)
		if e == 0 {
			s.conn = tc
			if s.linger0 {
				tc.SetLinger(0)
			}
		} else if ctx.Err() == nil {
			s.soErr = e
		}
		done <- e
	})
	in.v.WaitIdle()
	select {
	case e := <-done:
		s.soErr = 0
		return e
	default:
	}
	if s.nonblock {
		return syscall.EINPROGRESS
	}
	e := <-done
	s.soErr = 0
	return e
}

func (in *instance) read(fd int, b []byte) (int, syscall.Errno) {
	s := in.get(fd)
	if s == nil {
		return -1, syscall.EBADF
	}
	if s.conn == nil {
		if s.dialing {
			return -1, syscall.EAGAIN
		}
		return -1, syscall.ENOTCONN
	}
	c := s.conn
	return in.run(s.nonblock, func() (int, syscall.Errno) {
		n, err := c.Read(b)
		if n > 0 || err == io.EOF {
			return n, 0
		}
		return -1, errnoOf(err)
	}, func() { c.SetReadDeadline(time.Unix(1, 0)) }, func() { c.SetReadDeadline(time.Time{}) })
}

func (in *instance) write(fd int, b []byte) (int, syscall.Errno) {
	s := in.get(fd)
	if s == nil {
		return -1, syscall.EBADF
	}
	if s.conn == nil {
		return -1, syscall.ENOTCONN
	}
	c := s.conn
	return in.run(s.nonblock, func() (int, syscall.Errno) {
		n, err := c.Write(b)
		if n > 0 {
			return n, 0
		}
		return -1, errnoOf(err)
	}, func() { c.SetWriteDeadline(time.Unix(1, 0)) }, func() { c.SetWriteDeadline(time.Time{}) })
}

func (in *instance) fcntl(fd, cmd, arg int) (int, syscall.Errno) {
	s := in.get(fd)
	if s == nil {
		return -1, syscall.EBADF
	}
	switch cmd {
	case fGETFL:
		v := oRDWR
		if s.nonblock {
			v |= oNONBLOCK
		}
		return v, 0
	case fSETFL:
		s.nonblock = arg&oNONBLOCK != 0
		return 0, 0
	}
	return -1, syscall.EINVAL
}

func (in *instance) closeFD(fd int) syscall.Errno {
	s := in.get(fd)
	if s == nil {
		return syscall.EBADF
	}
	in.fdMu.Lock()
	delete(in.fds, fd)
	in.fdMu.Unlock()
	switch {
	case s.ln != nil:
		s.ln.Close()
	case s.conn != nil:
		s.conn.Close()
	case s.dialing:
		s.cancel()
	}
	in.v.WaitIdle()
	syscall.Close(fd)
	return 0
}

func (in *instance) shutdown(fd, how int) syscall.Errno {
	s := in.get(fd)
	if s == nil {
		return syscall.EBADF
	}
	if s.conn == nil {
		return syscall.ENOTCONN
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
	in.v.WaitIdle()
	return errnoOf(err)
}

func (in *instance) getsockopt(fd, level, name int) (int, syscall.Errno) {
	s := in.get(fd)
	if s == nil {
		return -1, syscall.EBADF
	}
	switch {
	case level == solSocket && name == soError:
		if e := s.soErr; e != 0 {
			s.soErr = 0
			return int(e), 0
		}
		if s.conn != nil && !s.reported {
			_, err := s.conn.Read(nil)
			if e := errnoOf(err); e != 0 && e != syscall.EAGAIN && e != syscall.ENOTCONN && e != syscall.EBADF {
				s.reported = true
				return int(e), 0
			}
		}
		return 0, 0
	case level == solSocket && name == soRcvBuf:
		n := in.cfg.ReceiveBufferSize
		if n == 0 {
			n = tcp.DefaultBufferSize
		}
		return n, 0
	}
	return -1, syscall.ENOPROTOOPT
}

func (in *instance) setsockopt(fd, level, name int, v []byte) syscall.Errno {
	s := in.get(fd)
	if s == nil {
		return syscall.EBADF
	}
	i32 := func(off int) int {
		if len(v) >= off+4 {
			return int(int32(binary.NativeEndian.Uint32(v[off:])))
		}
		return 0
	}
	switch {
	case level == solSocket && name == soReuseAddr:
	case level == solSocket && name == soLinger:
		s.linger0 = i32(0) != 0 && i32(4) == 0
		if s.conn != nil && s.linger0 {
			s.conn.SetLinger(0)
		}
	case level == solSocket && name == soKeepAlive:
		if s.conn != nil {
			s.conn.SetKeepAlive(i32(0) != 0)
		}
	case level == ipprotoTCP && name == tcpNoDelay:
		if s.conn != nil {
			s.conn.SetNoDelay(i32(0) != 0)
		}
	default:
		return syscall.ENOPROTOOPT
	}
	return 0
}

func (in *instance) pollEvents(fd int, want int16) int16 {
	s := in.get(fd)
	if s == nil || s.conn == nil {
		return 0
	}
	var ev int16
	info := s.conn.Info()
	if info.RecvQueue > 0 || info.State == tcp.Closed || info.State.String() == "CLOSE-WAIT" {
		ev |= pollIn
	}
	if info.State == tcp.Established || info.State.String() == "CLOSE-WAIT" {
		ev |= pollOut
	}
	return ev & (want | 0x18) // POLLERR|POLLHUP always
}

// Time: gettimeofday moves the clock by a microsecond on every call, so
// packetdrill always sees time pass; usleep advances it and runs timers.
func (in *instance) now() time.Time {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.v.AdvanceTo(in.v.Now().Add(time.Microsecond))
	in.v.WaitIdle()
	return in.v.Now()
}

func (in *instance) sleep(d time.Duration) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.v.AdvanceTo(in.v.Now().Add(d))
	in.v.WaitIdle()
}

func (in *instance) inject(pkt []byte) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.ep.deliver(pkt)
	in.v.WaitIdle()
}

func (in *instance) sniff() ([]byte, time.Time, bool) { return in.ep.pop() }

// endpoint is the stack's link: what it sends is queued for
// netdev_receive; netdev_send delivers to it.
type endpoint struct {
	mtu int
	now func() time.Time
	mu  sync.Mutex
	d   link.Dispatcher
	out []pkt
}

type pkt struct {
	b  []byte
	at time.Time
}

func (e *endpoint) MTU() int                 { return e.mtu }
func (e *endpoint) Attach(d link.Dispatcher) { e.mu.Lock(); e.d = d; e.mu.Unlock() }
func (e *endpoint) Close() error             { return nil }

func (e *endpoint) WritePackets(ps [][]byte) (int, error) {
	now := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, p := range ps {
		e.out = append(e.out, pkt{append([]byte(nil), p...), now})
	}
	return len(ps), nil
}

func (e *endpoint) deliver(b []byte) {
	e.mu.Lock()
	d := e.d
	e.mu.Unlock()
	if d != nil {
		d.DeliverPacket(b)
	}
}

func (e *endpoint) pop() ([]byte, time.Time, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.out) == 0 {
		return nil, time.Time{}, false
	}
	p := e.out[0]
	e.out = e.out[1:]
	return p.b, p.at, true
}

func errnoOf(err error) syscall.Errno {
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

//go:build cgo && linux

package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/synack/synack/internal/clock"
	"github.com/synack/synack/internal/pktdrill"
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
	st   *stack.Stack // made by the first socket() or packet (see ensure)
	ep   *endpoint
	cfg  tcp.Config
	mtu  int
	fdMu sync.Mutex
	fds  map[int]*sock

	local4, local6 netip.Addr
	sysctlFile     string // --so_flags sysctl_file=: FreeBSD sysctls recorded by a stub
	sockstatFile   string // --so_flags sockstat_file=: the connection table, for a stub sockstat
	lastSockstat   string
	debug          bool          // --so_flags debug=1: log calls' packets to stderr
	waitLimit      time.Duration // how much virtual time netdev_receive waits for a packet
}

var inst *instance

type sock struct {
	v6       bool
	nonblock bool
	ino      uint64 // inode of the backing fd, so that free() closes only ours
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
// pairs (see README.md):
//
//	local4=IP local6=IP   the stack's addresses (packetdrill's --local_ip)
//	mtu=N                 link MTU (default 1500)
//	rcvbuf=N sndbuf=N     tcp.Config.ReceiveBufferSize / SendBufferSize
//	rfc793_rst=1          tcp.Config.RFC793Reset (RFC 793 instead of RFC 5961 3)
//	rfc793_syn=1          tcp.Config.RFC793SYN (RFC 793 instead of RFC 5961 4)
//	no_ts=1 no_ws=1 no_sack=1   tcp.Config.NoTimestamps / NoWindowScale / NoSACK
//	initial_rto_ms=N      tcp.Config.InitialRTO
//	sysctl_file=PATH      read FreeBSD sysctls (name=value lines) when the stack is made
//	sockstat_file=PATH    keep the connection table in PATH (see dumpSockstat)
//	debug=1               log every packet in and out to stderr
//	wait_limit_s=N        virtual seconds netdev_receive waits for a packet (default 600)
func newInstance(flags string) {
	if inst != nil {
		inst.close()
	}
	in := &instance{
		fds:       map[int]*sock{},
		mtu:       1500,
		local4:    netip.MustParseAddr("192.168.0.1"),
		local6:    netip.MustParseAddr("fd3d:fa7b:d17d::1"),
		waitLimit: 600 * time.Second,
	}
	for _, kv := range strings.Split(flags, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		switch k {
		case "":
		case "local4", "local6":
			if a, err := netip.ParseAddr(v); err == nil {
				if a.Is4() {
					in.local4 = a
				} else {
					in.local6 = a
				}
			}
		case "mtu":
			in.mtu, _ = strconv.Atoi(v)
		case "sysctl_file":
			in.sysctlFile = v
		case "sockstat_file":
			in.sockstatFile = v
		case "debug":
			in.debug = v != "0"
		case "wait_limit_s":
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				in.waitLimit = time.Duration(n) * time.Second
			}
		default:
			if !in.setKnob(k, v) {
				fmt.Fprintf(os.Stderr, "synack.so: unknown --so_flags key %q\n", k)
			}
		}
	}
	in.v = clock.NewVirtual(time.Now().Truncate(time.Second))
	inst = in
}

// setKnob applies one stack setting, from --so_flags or a sysctl.
func (in *instance) setKnob(k, v string) bool {
	n, _ := strconv.Atoi(v)
	switch k {
	case "rcvbuf":
		in.cfg.ReceiveBufferSize = n
	case "sndbuf":
		in.cfg.SendBufferSize = n
	case "rfc793_rst":
		in.cfg.RFC793Reset = n != 0
	case "rfc793_syn":
		in.cfg.RFC793SYN = n != 0
	case "no_ts":
		in.cfg.NoTimestamps = n != 0
	case "no_ws":
		in.cfg.NoWindowScale = n != 0
	case "no_sack":
		in.cfg.NoSACK = n != 0
	case "initial_rto_ms":
		in.cfg.InitialRTO = time.Duration(n) * time.Millisecond
	default:
		return false
	}
	return true
}

// freebsdSysctls maps the FreeBSD sysctls of the test suite that select a
// behaviour synack has onto its knobs (the same table as the Go runner's,
// internal/pktdrill/sysctl.go). Others are ignored here: the object cannot
// skip a script, so a script that needs a knob synack lacks just runs.
func (in *instance) sysctl(name, val string) {
	n, err := strconv.Atoi(val)
	if err != nil {
		return
	}
	b := "0"
	if n != 0 {
		b = "1"
	}
	nb := "1"
	if n != 0 {
		nb = "0"
	}
	switch name {
	case "net.inet.tcp.insecure_rst":
		in.setKnob("rfc793_rst", b)
	case "net.inet.tcp.insecure_syn":
		in.setKnob("rfc793_syn", b)
	case "net.inet.tcp.rfc1323":
		in.setKnob("no_ts", nb)
		in.setKnob("no_ws", nb)
	case "net.inet.tcp.sack.enable":
		in.setKnob("no_sack", nb)
	case "net.inet.tcp.recvspace":
		in.setKnob("rcvbuf", val)
	case "net.inet.tcp.sendspace":
		in.setKnob("sndbuf", val)
	case "net.inet.tcp.rexmit_initial":
		in.setKnob("initial_rto_ms", val)
	case "net.inet.tcp.keepidle":
		in.cfg.KeepAliveIdle = time.Duration(n) * time.Millisecond
	case "net.inet.tcp.keepintvl":
		in.cfg.KeepAliveInterval = time.Duration(n) * time.Millisecond
	case "net.inet.tcp.keepcnt":
		in.cfg.KeepAliveCount = n
	}
}

// ensure makes the stack if it is not made yet. It is made lazily, by the
// first socket() or injected packet, so that the sysctls a script sets
// before (recorded in sysctl_file by a stub sysctl command, see
// run-real.sh) configure it, as FreeBSD's sockets take them when made.
func (in *instance) ensure() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.st != nil {
		return
	}
	if in.sysctlFile != "" {
		if b, err := os.ReadFile(in.sysctlFile); err == nil {
			for _, l := range strings.Split(string(b), "\n") {
				for _, a := range strings.Fields(l) {
					if k, v, ok := strings.Cut(a, "="); ok {
						in.sysctl(k, v)
					}
				}
			}
		}
	}
	in.ep = &endpoint{mtu: in.mtu, now: in.v.Now}
	in.cfg.Nagle = true // a socket's default: TCP_NODELAY off
	in.st = stack.New(stack.Options{Clock: in.v, TCP: in.cfg,
		Rand: rand.NewChaCha8([32]byte{'s', 'o'})})
	id, err := in.st.AddLink(in.ep, netip.PrefixFrom(in.local4, 24), netip.PrefixFrom(in.local6, 64))
	if err == nil {
		in.st.AddRoute(netip.MustParsePrefix("0.0.0.0/0"), netip.Addr{}, id)
		in.st.AddRoute(netip.MustParsePrefix("::/0"), netip.Addr{}, id)
	} else {
		fmt.Fprintf(os.Stderr, "synack.so: AddLink: %v\n", err)
	}
}

// close ends the run. packetdrill has usually closed its fds with libc's
// close already (and the numbers may be reused), so a backing fd is
// closed only if it is still the socket we made (same inode).
func (in *instance) close() {
	in.fdMu.Lock()
	for fd, s := range in.fds {
		if s.cancel != nil {
			s.cancel()
		}
		if fdInode(fd) == s.ino {
			syscall.Close(fd)
		}
	}
	in.fds = map[int]*sock{}
	in.fdMu.Unlock()
	if in.st != nil {
		in.st.Close()
	}
}

func fdInode(fd int) uint64 {
	var st syscall.Stat_t
	if syscall.Fstat(fd, &st) != nil {
		return 0
	}
	return st.Ino
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

// get returns the socket behind fd. An fd packetdrill closed with libc's
// close (its cleanup does) and the kernel then reused is not ours any more:
// the inode check notices.
func (in *instance) get(fd int) *sock {
	in.fdMu.Lock()
	s := in.fds[fd]
	in.fdMu.Unlock()
	if s != nil && fdInode(fd) != s.ino {
		return nil
	}
	return s
}

// socket makes a synack socket backed by a real file descriptor: an
// AF_UNIX datagram socket nobody uses, one per socket (so each has its own
// inode). packetdrill may close it with libc's close; nothing leaks.
func (in *instance) socket(domain, typ int) (int, syscall.Errno) {
	if domain != syscall.AF_INET && domain != syscall.AF_INET6 {
		return -1, syscall.EAFNOSUPPORT
	}
	if t := typ &^ (sockNONBLOCK | syscall.SOCK_CLOEXEC); t != syscall.SOCK_STREAM {
		return -1, syscall.EPROTONOSUPPORT
	}
	in.ensure()
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, pktdrill.Errno(err)
	}
	in.fdMu.Lock()
	in.fds[fd] = &sock{v6: domain == syscall.AF_INET6, nonblock: typ&sockNONBLOCK != 0, ino: fdInode(fd)}
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
		return pktdrill.Errno(err)
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
		return 0, pktdrill.Errno(err)
	}, func() { ln.SetDeadline(time.Unix(1, 0)) }, func() { ln.SetDeadline(time.Time{}) })
	if e != 0 {
		return -1, e
	}
	nfd, e := in.socket(syscall.AF_INET, syscall.SOCK_STREAM)
	if e != 0 {
		tc.Close()
		return -1, e
	}
	in.get(nfd).conn = tc
	return nfd, 0
}

// putSockaddr writes ap as a sockaddr_in / sockaddr_in6 into b, returning
// the length of the whole address (which may be more than len(b), as
// accept(2) reports).
func putSockaddr(b []byte, ap netip.AddrPort) int {
	var sa []byte
	if ap.Addr().Is4() {
		sa = make([]byte, 16)
		binary.NativeEndian.PutUint16(sa, syscall.AF_INET)
		a := ap.Addr().As4()
		copy(sa[4:], a[:])
	} else {
		sa = make([]byte, 28)
		binary.NativeEndian.PutUint16(sa, syscall.AF_INET6)
		a := ap.Addr().As16()
		copy(sa[8:], a[:])
	}
	binary.BigEndian.PutUint16(sa[2:], ap.Port())
	copy(b, sa)
	return len(sa)
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
		e := pktdrill.Errno(err)
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
		return -1, pktdrill.Errno(err)
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
		return -1, pktdrill.Errno(err)
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
	return pktdrill.Errno(err)
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
			if e := pktdrill.Errno(err); e != 0 && e != syscall.EAGAIN && e != syscall.ENOTCONN && e != syscall.EBADF {
				s.reported = true
				return int(e), 0
			}
		}
		return 0, 0
	case level == solSocket && name == soRcvBuf:
		return in.cfg.WithDefaults().ReceiveBufferSize, 0
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
	in.dumpSockstat()
	return in.v.Now()
}

// dumpSockstat writes the stack's connection table to sockstatFile, one
// line per connection: "tcp4|tcp6 LOCAL REMOTE STATE owned|released",
// states named as FreeBSD's sockstat names them. A stub sockstat command
// (run-real.sh) formats it for the suite's `sockstat ... | grep` lines.
// packetdrill reads the time just before it runs a shell command, and the
// stack only moves inside calls into this object, so the file written
// here is the table the command sees. A socket whose connection has ended
// is still its owner's until closed: it is listed as CLOSED, owned.
func (in *instance) dumpSockstat() {
	if in.sockstatFile == "" || in.st == nil {
		return
	}
	var b strings.Builder
	line := func(t tcp.Tuple, st tcp.State, owned bool) {
		fam := "tcp4"
		if t.Local.Addr().Is6() && !t.Local.Addr().Is4In6() {
			fam = "tcp6"
		}
		name := strings.ReplaceAll(st.String(), "-", "_")
		if st == tcp.SynReceived {
			name = "SYN_RCVD"
		}
		who := "released"
		if owned {
			who = "owned"
		}
		fmt.Fprintf(&b, "%s %s %s %s %s\n", fam, t.Local, t.Remote, name, who)
	}
	in.fdMu.Lock()
	for _, s := range in.fds {
		if s.conn != nil && s.conn.State() == tcp.Closed {
			line(s.conn.Tuple(), tcp.Closed, true)
		}
	}
	in.fdMu.Unlock()
	for _, c := range in.st.Connections() {
		line(c.Tuple, c.State, !c.Released)
	}
	if out := b.String(); out != in.lastSockstat {
		in.lastSockstat = out
		os.WriteFile(in.sockstatFile, []byte(out), 0o644)
	}
}

func (in *instance) sleep(d time.Duration) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.v.AdvanceTo(in.v.Now().Add(d))
	in.v.WaitIdle()
}

func (in *instance) inject(pkt []byte) {
	in.ensure()
	in.mu.Lock()
	defer in.mu.Unlock()
	in.logPacket("in ", pkt)
	in.ep.deliver(pkt)
	in.v.WaitIdle()
}

// sniff returns the next packet the stack sent. Like a read from a packet
// socket it blocks: with nothing queued, virtual time moves to the stack's
// next timer (a retransmission, a delayed ACK, ...) until a packet comes
// out. packetdrill's so netdev loops on netdev_receive without a timeout,
// so when no timer is pending (nothing can ever be sent) or waitLimit of
// virtual time has passed, sniff gives up: ok is false and a message says
// why.
func (in *instance) logPacket(dir string, p []byte) {
	if !in.debug {
		return
	}
	fmt.Fprintf(os.Stderr, "synack.so: %s %s % x\n", in.v.Now().Format("15:04:05.000000"), dir, p)
}

func (in *instance) sniff() (p []byte, at time.Time, ok bool, why string) {
	in.ensure()
	in.mu.Lock()
	defer in.mu.Unlock()
	in.v.WaitIdle()
	limit := in.v.Now().Add(in.waitLimit)
	for {
		if p, at, ok := in.ep.pop(); ok {
			in.logPacket("out", p)
			return p, at, true, ""
		}
		next, pending := in.v.NextTimer()
		if !pending {
			return nil, time.Time{}, false, "the stack has nothing to send and no timer pending"
		}
		if next.After(limit) {
			in.v.AdvanceTo(limit)
			in.v.WaitIdle()
			return nil, time.Time{}, false, fmt.Sprintf("nothing sent within %v of virtual time", in.waitLimit)
		}
		in.v.AdvanceTo(next)
		in.v.WaitIdle()
	}
}

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

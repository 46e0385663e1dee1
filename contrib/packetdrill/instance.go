//go:build cgo && linux

package main

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/synack/synack/clock"
	"github.com/synack/synack/internal/pktdrill/sock"
	"github.com/synack/synack/stack"
	"github.com/synack/synack/tcp"
)

// Linux values: packetdrill passes its host's constants through.
const (
	fGETFL, fSETFL = 3, 4
	oRDWR          = 2
	oNONBLOCK      = 0x800
	sockNONBLOCK   = 0x800
)

// instance is one script run: a fresh stack on a virtual clock, and the
// socket layer shared with the Go runner (internal/pktdrill/sock).
type instance struct {
	mu  sync.Mutex // serialises clock moves and injections
	v   *clock.Virtual
	st  *stack.Stack // made by the first socket() or packet (see ensure)
	ep  *sock.Link
	set sock.Settings
	mtu int
	tab *sock.Table

	inoMu sync.Mutex
	inos  map[int]uint64 // inode of each socket's backing fd, so that free() closes only ours

	local4, local6 netip.Addr
	sysctlFile     string // --so_flags sysctl_file=: sysctls recorded by a stub
	sockstatFile   string // --so_flags sockstat_file=: the connection table, for a stub sockstat
	lastSockstat   string
	debug          bool          // --so_flags debug=1: log calls' packets to stderr
	waitLimit      time.Duration // how much virtual time netdev_receive waits for a packet
}

var inst *instance

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
//	delack_ms=N           tcp.Config.DelayedACK
//	sysctl_file=PATH      read sysctls (name=value lines) when the stack is made
//	sockstat_file=PATH    keep the connection table in PATH (see dumpSockstat)
//	debug=1               log every packet in and out to stderr
//	wait_limit_s=N        virtual seconds netdev_receive waits for a packet (default 600)
//
// The knobs are the sysctl table's (sock.Settings) under short names.
func newInstance(flags string) {
	if inst != nil {
		inst.close()
	}
	in := &instance{
		inos:      map[int]uint64{},
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
			name, ok := knobs[k]
			if !ok {
				fmt.Fprintf(os.Stderr, "synack.so: unknown --so_flags key %q\n", k)
				continue
			}
			if strings.HasPrefix(k, "no_") {
				// no_X=1 is X=0.
				if v == "0" {
					v = "1"
				} else {
					v = "0"
				}
			}
			if why := in.set.Set(name, v); why != "" {
				fmt.Fprintf(os.Stderr, "synack.so: --so_flags %s=%s: %s\n", k, v, why)
			}
		}
	}
	in.v = clock.NewVirtual(time.Now().Truncate(time.Second))
	in.tab = &sock.Table{Clock: in.v, Local4: in.local4, Local6: in.local6,
		NewFD: in.newFD, Valid: in.valid, Release: in.release}
	inst = in
}

// knobs are the --so_flags names of sysctls of the table.
var knobs = map[string]string{
	"rcvbuf":         "net.inet.tcp.recvspace",
	"sndbuf":         "net.inet.tcp.sendspace",
	"rfc793_rst":     "net.inet.tcp.insecure_rst",
	"rfc793_syn":     "net.inet.tcp.insecure_syn",
	"no_ts":          "net.ipv4.tcp_timestamps",
	"no_ws":          "net.ipv4.tcp_window_scaling",
	"no_sack":        "net.ipv4.tcp_sack",
	"initial_rto_ms": "net.inet.tcp.rexmit_initial",
	"delack_ms":      "net.inet.tcp.delacktime",
}

// ensure makes the stack if it is not made yet. It is made lazily, by the
// first socket() or injected packet, so that the sysctls a script sets
// before (recorded in sysctl_file by a stub sysctl command, see
// run-real.sh) configure it, as FreeBSD's sockets take them when made.
// Every sysctl goes through the table (sock.Settings); one synack has no
// knob for is ignored: the object cannot skip a script.
func (in *instance) ensure() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.st != nil {
		return
	}
	set := in.sysctls()
	in.ep = sock.NewLink(in.mtu, in.v.Now)
	cfg := set.Config()
	cfg.Nagle = true // a socket's default: TCP_NODELAY off
	in.st = stack.New(stack.Options{Clock: in.v, TCP: cfg,
		Rand: rand.NewChaCha8([32]byte{'s', 'o'})})
	id, err := in.st.AddLink(in.ep, netip.PrefixFrom(in.local4, 24), netip.PrefixFrom(in.local6, 64))
	if err == nil {
		in.st.AddRoute(netip.MustParsePrefix("0.0.0.0/0"), netip.Addr{}, id)
		in.st.AddRoute(netip.MustParsePrefix("::/0"), netip.Addr{}, id)
	} else {
		fmt.Fprintf(os.Stderr, "synack.so: AddLink: %v\n", err)
	}
	in.tab.Stack = in.st
	in.tab.Base, in.tab.Live = set, set
	in.tab.RcvBuf = cfg.WithDefaults().ReceiveBufferSize
}

// sysctls are the settings of --so_flags with the sysctls recorded in
// sysctl_file so far applied on top.
func (in *instance) sysctls() sock.Settings {
	set := in.set
	if in.sysctlFile != "" {
		if b, err := os.ReadFile(in.sysctlFile); err == nil {
			for _, l := range strings.Split(string(b), "\n") {
				set.SetLine(l)
			}
		}
	}
	return set
}

// newFD backs a synack socket with a real file descriptor: an AF_UNIX
// datagram socket nobody uses, one per socket (so each has its own
// inode). packetdrill may close it with libc's close; nothing leaks.
func (in *instance) newFD() (int, syscall.Errno) {
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, sock.Errno(err)
	}
	in.inoMu.Lock()
	in.inos[fd] = fdInode(fd)
	in.inoMu.Unlock()
	return fd, 0
}

// valid reports whether fd is still the socket we made: an fd packetdrill
// closed with libc's close (its cleanup does) and the kernel then reused
// is not ours any more.
func (in *instance) valid(fd int) bool {
	in.inoMu.Lock()
	ino, ok := in.inos[fd]
	in.inoMu.Unlock()
	return ok && fdInode(fd) == ino
}

func (in *instance) release(fd int) {
	in.inoMu.Lock()
	delete(in.inos, fd)
	in.inoMu.Unlock()
	syscall.Close(fd)
}

// close ends the run. packetdrill has usually closed its fds with libc's
// close already (and the numbers may be reused), so a backing fd is
// closed only if it is still the socket we made (same inode).
func (in *instance) close() {
	for _, s := range in.tab.Forget() {
		s.Cancel()
		if in.valid(s.FD) {
			syscall.Close(s.FD)
		}
	}
	in.inoMu.Lock()
	in.inos = map[int]uint64{}
	in.inoMu.Unlock()
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

// wait finishes a call: a blocking one waits while packetdrill's other
// thread moves time (usleep) and injects packets.
func wait(c *sock.Call) (int, syscall.Errno) {
	c.Wait()
	return int(c.Ret), c.Errno
}

func (in *instance) socket(domain, typ int) (int, syscall.Errno) {
	if domain != syscall.AF_INET && domain != syscall.AF_INET6 {
		return -1, syscall.EAFNOSUPPORT
	}
	if t := typ &^ (sockNONBLOCK | syscall.SOCK_CLOEXEC); t != syscall.SOCK_STREAM {
		return -1, syscall.EPROTONOSUPPORT
	}
	in.ensure()
	// A new socket takes the keep-alive sysctls as they stand now (the
	// stack's configuration was fixed when it was made).
	in.tab.Live = in.sysctls()
	s, e := in.tab.Socket(domain == syscall.AF_INET6, typ&sockNONBLOCK != 0)
	if e != 0 {
		return -1, e
	}
	return s.FD, 0
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
	ap, ok := parseSockaddr(sa)
	if !ok {
		if in.tab.Get(fd) == nil {
			return syscall.EBADF
		}
		return syscall.EINVAL
	}
	return in.tab.Bind(fd, ap)
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
	ra, ok := parseSockaddr(sa)
	if !ok {
		if in.tab.Get(fd) == nil {
			return syscall.EBADF
		}
		return syscall.EINVAL
	}
	_, e := wait(in.tab.Connect(fd, ra))
	return e
}

func (in *instance) fcntl(fd, cmd, arg int) (int, syscall.Errno) {
	s := in.tab.Get(fd)
	if s == nil {
		return -1, syscall.EBADF
	}
	switch cmd {
	case fGETFL:
		v := oRDWR
		if s.Nonblock {
			v |= oNONBLOCK
		}
		return v, 0
	case fSETFL:
		return 0, in.tab.SetNonblock(fd, arg&oNONBLOCK != 0)
	}
	return -1, syscall.EINVAL
}

func (in *instance) getsockopt(fd, level, name int) (int, syscall.Errno) {
	o := sock.LinuxOpt(level, name)
	if !sock.Gettable(o) {
		if in.tab.Get(fd) == nil {
			return -1, syscall.EBADF
		}
		return -1, syscall.ENOPROTOOPT
	}
	return in.tab.Getsockopt(fd, o)
}

func (in *instance) setsockopt(fd, level, name int, v []byte) syscall.Errno {
	o := sock.LinuxOpt(level, name)
	if o == sock.TCP_CONGESTION {
		return in.tab.SetCongestion(fd, strings.TrimRight(string(v), "\x00")) // a name, not an int
	}
	if !sock.Settable(o) {
		if in.tab.Get(fd) == nil {
			return syscall.EBADF
		}
		return syscall.ENOPROTOOPT
	}
	i32 := func(off int) int {
		if len(v) >= off+4 {
			return int(int32(binary.NativeEndian.Uint32(v[off:])))
		}
		return 0
	}
	return in.tab.Setsockopt(fd, o, i32(0), i32(4))
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
	for _, s := range in.tab.Sockets() {
		if c := s.Conn(); c != nil && c.State() == tcp.Closed {
			line(c.Tuple(), tcp.Closed, true)
		}
	}
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
	in.ep.Deliver(pkt)
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
		if p, ok := in.ep.Pop(); ok {
			in.logPacket("out", p.B)
			return p.B, p.At, true, ""
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

//go:build linux

// Package nstest runs test code inside a throwaway Linux network namespace,
// so tests can create TUN devices, addresses and kernel sockets without
// touching the host's network.
//
// A namespace belongs to threads, not goroutines: NS keeps one OS thread
// (a locked goroutine) inside the namespace and runs the functions given to
// Do on it. Sockets and TUN devices created there belong to the namespace
// for good; the file descriptors they return work from any goroutine. Code
// that only reads and writes them needs no Do.
package nstest

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Prefix starts the name of every namespace this package creates; the
// process id follows, so stale ones (from a killed test binary) can be
// recognised and removed.
const Prefix = "synack-test-"

const netnsDir = "/run/netns"

// Require skips the test unless it can create network namespaces and TUN
// devices: it needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and
// /dev/net/tun. When the environment variable CI is "true" it fails
// instead of skipping, since CI runs as root and must run these tests.
func Require(t testing.TB) {
	t.Helper()
	why := ""
	switch {
	case runtime.GOOS != "linux":
		why = "needs Linux"
	case os.Geteuid() != 0:
		why = "needs root to create network namespaces and TUN devices (run as root, or with CAP_SYS_ADMIN and CAP_NET_ADMIN; CI does)"
	default:
		if _, err := os.Stat("/dev/net/tun"); err != nil {
			why = "needs /dev/net/tun (" + err.Error() + ")"
		}
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("interop test %s; CI=true, so this is a failure, not a skip", why)
	}
	t.Skipf("interop test %s", why)
}

// NS is a named network namespace with one OS thread inside it.
type NS struct {
	Name string

	handle netns.NsHandle
	jobs   chan func()
	exited chan struct{}
	once   sync.Once
}

var seq atomic.Uint64

// New creates a network namespace named Prefix+pid+"-"+n (visible to
// `ip netns` while the test runs), brings its loopback up and removes it
// when the test ends, pass or fail. It calls Require first.
func New(t testing.TB) *NS {
	t.Helper()
	Require(t)
	removeStale()
	ns, err := Create()
	if err != nil {
		t.Fatalf("creating network namespace: %v", err)
	}
	t.Cleanup(ns.Close)
	return ns
}

// NewPrefixed is New with the namespace named prefix+pid+"-"+n, for
// tests whose briefs give them a prefix of their own. Stale ones are not
// recognised: Close (at the test's end) is what removes them.
func NewPrefixed(t testing.TB, prefix string) *NS {
	t.Helper()
	Require(t)
	ns, err := create(prefix)
	if err != nil {
		t.Fatalf("creating network namespace: %v", err)
	}
	t.Cleanup(ns.Close)
	return ns
}

// Create is New without a testing.TB: the caller must Close the NS.
func Create() (*NS, error) { return create(Prefix) }

// CreatePrefixed is Create with names starting with prefix instead of
// Prefix (a tool's own namespaces: bench/pathmatrix); the process id
// follows it, which RemoveStale relies on.
func CreatePrefixed(prefix string) (*NS, error) { return create(prefix) }

func create(prefix string) (*NS, error) {
	ns := &NS{
		Name:   fmt.Sprintf("%s%d-%d", prefix, os.Getpid(), seq.Add(1)),
		jobs:   make(chan func()),
		exited: make(chan struct{}),
	}
	ready := make(chan error, 1)
	go ns.thread(ready)
	if err := <-ready; err != nil {
		return nil, err
	}
	var err error
	ns.Do(func() { err = loopbackUp() })
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("bringing up lo in %s: %w", ns.Name, err)
	}
	return ns, nil
}

func (ns *NS) thread(ready chan<- error) {
	// The goroutine never unlocks: when it exits, the runtime ends the
	// thread instead of handing a thread in a foreign namespace to other
	// goroutines.
	runtime.LockOSThread()
	defer close(ns.exited)
	h, err := netns.NewNamed(ns.Name)
	if err != nil {
		ready <- fmt.Errorf("%s: %w", ns.Name, err)
		return
	}
	ns.handle = h
	ready <- nil
	for f := range ns.jobs {
		f()
	}
}

// Do runs f on the namespace's thread and waits for it. Calls are
// serialised; f must not call Do.
func (ns *NS) Do(f func()) {
	done := make(chan struct{})
	var p any
	ns.jobs <- func() {
		defer close(done)
		defer func() { p = recover() }()
		f()
	}
	<-done
	if p != nil {
		panic(p)
	}
}

// Close ends the namespace's thread and removes the name. The namespace
// itself goes away once the last socket and device in it are closed.
func (ns *NS) Close() {
	ns.once.Do(func() {
		close(ns.jobs)
		<-ns.exited
		if ns.handle.IsOpen() {
			ns.handle.Close()
		}
		netns.DeleteNamed(ns.Name)
	})
}

// Go runs f on a new goroutine whose OS thread has entered the
// namespace, so sockets f makes belong to it. Unlike Do, calls run in
// parallel with each other and with Do (a load generator's workers, each
// dialling on its own). The thread is discarded when f returns.
func (ns *NS) Go(f func()) {
	go func() {
		// Never unlocked: the runtime ends the thread with the goroutine
		// instead of handing a thread in a foreign namespace to others.
		runtime.LockOSThread()
		if err := netns.Set(ns.handle); err != nil {
			panic(fmt.Sprintf("nstest: entering %s: %v", ns.Name, err))
		}
		f()
	}()
}

// Listen is net.Listen inside the namespace.
func (ns *NS) Listen(network, addr string) (l net.Listener, err error) {
	ns.Do(func() { l, err = net.Listen(network, addr) })
	return l, err
}

// ListenPacket is net.ListenPacket inside the namespace.
func (ns *NS) ListenPacket(network, addr string) (c net.PacketConn, err error) {
	ns.Do(func() { c, err = net.ListenPacket(network, addr) })
	return c, err
}

// DialContext dials from inside the namespace. While it waits for the
// connection, other Do calls wait too.
func (ns *NS) DialContext(ctx context.Context, network, addr string) (c net.Conn, err error) {
	ns.Do(func() {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
	})
	return c, err
}

// Dial is DialContext with context.Background.
func (ns *NS) Dial(network, addr string) (net.Conn, error) {
	return ns.DialContext(context.Background(), network, addr)
}

// ReadFile reads a file from the namespace's thread, for per-namespace
// files such as /proc/thread-self/net/tcp (note thread-self: /proc/self/net
// shows the namespace of the process's main thread).
func (ns *NS) ReadFile(name string) (b []byte, err error) {
	ns.Do(func() { b, err = os.ReadFile(name) })
	return b, err
}

func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	req, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, req); err != nil {
		return err
	}
	req.SetUint16(req.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, req)
}

// removeStale removes namespaces left by test processes that no longer
// exist (killed before their cleanups ran).
func removeStale() { RemoveStale(Prefix) }

// RemoveStale removes the namespaces named prefix<pid>-<n> whose process
// no longer runs.
func RemoveStale(prefix string) {
	ents, err := os.ReadDir(netnsDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(filepath.Join("/proc", pidStr)); err == nil {
			continue // still running
		}
		netns.DeleteNamed(e.Name())
	}
}

// SocketState is one row of /proc/net/tcp or /proc/net/tcp6.
type SocketState struct {
	Local, Remote netip.AddrPort
	State         int // Linux TCP state number: 1 ESTABLISHED ... 6 TIME_WAIT ... 10 LISTEN
}

// parseProcAddr decodes /proc/net/tcp's "0100007F:1F90": the address as
// 32-bit words printed in hex from memory (so in host byte order), then
// the port.
func parseProcAddr(s string) (netip.AddrPort, error) {
	hexAddr, hexPort, ok := strings.Cut(s, ":")
	if !ok || (len(hexAddr) != 8 && len(hexAddr) != 32) {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", s)
	}
	var raw [16]byte
	for i := 0; i < len(hexAddr)/8; i++ {
		w, err := strconv.ParseUint(hexAddr[8*i:8*i+8], 16, 32)
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("bad address %q", s)
		}
		binary.NativeEndian.PutUint32(raw[4*i:], uint32(w))
	}
	port, err := strconv.ParseUint(hexPort, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bad port in %q", s)
	}
	var a netip.Addr
	if len(hexAddr) == 8 {
		a = netip.AddrFrom4([4]byte(raw[:4]))
	} else {
		a = netip.AddrFrom16(raw).Unmap()
	}
	return netip.AddrPortFrom(a, uint16(port)), nil
}

// Linux TCP state numbers (include/net/tcp_states.h).
const (
	TCPEstablished = 1
	TCPTimeWait    = 6
	TCPListen      = 10
)

// TCPSockets reads the kernel's TCP sockets in the namespace
// (/proc/thread-self/net/tcp and tcp6, read from the namespace's thread).
func (ns *NS) TCPSockets() ([]SocketState, error) {
	var out []SocketState
	for _, f := range []string{"/proc/thread-self/net/tcp", "/proc/thread-self/net/tcp6"} {
		b, err := ns.ReadFile(f)
		if err != nil {
			return nil, err
		}
		lines := strings.Split(string(b), "\n")
		for _, l := range lines[1:] {
			fs := strings.Fields(l)
			if len(fs) < 4 {
				continue
			}
			st, err := strconv.ParseUint(fs[3], 16, 8)
			if err != nil {
				return nil, fmt.Errorf("%s: bad state in %q", f, l)
			}
			local, err := parseProcAddr(fs[1])
			if err != nil {
				return nil, fmt.Errorf("%s: %v", f, err)
			}
			remote, err := parseProcAddr(fs[2])
			if err != nil {
				return nil, fmt.Errorf("%s: %v", f, err)
			}
			out = append(out, SocketState{Local: local, Remote: remote, State: int(st)})
		}
	}
	return out, nil
}

// CountStates returns how many of the namespace's TCP sockets are in each
// Linux state.
func (ns *NS) CountStates() (map[int]int, error) {
	ss, err := ns.TCPSockets()
	if err != nil {
		return nil, err
	}
	m := map[int]int{}
	for _, s := range ss {
		m[s.State]++
	}
	return m, nil
}

// Start starts cmd inside the namespace: the child is forked from the
// namespace's thread and so belongs to the namespace.
func (ns *NS) Start(cmd *exec.Cmd) (err error) {
	ns.Do(func() { err = cmd.Start() })
	return err
}

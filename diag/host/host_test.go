//go:build linux

package host_test

import (
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/synack/synack/diag"
	"github.com/synack/synack/diag/host"
	"github.com/synack/synack/tcp"
)

// enterNetns moves the test's goroutine, locked to its OS thread, into a
// new network namespace with loopback up, and moves it back when the test
// ends. The thread stays locked, so the runtime throws it away with the
// goroutine rather than reuse a thread whose namespace was changed.
// Sockets the test makes from now on belong to the new namespace, and so do
// host.Read's netlink socket and /proc/thread-self/net. The namespace goes
// away with its last socket.
func enterNetns(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("host tests need root to create a network namespace, and CI must run them")
		}
		t.Skip("host tests need root to create a network namespace; skipping")
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatalf("netns.Get: %v", err)
	}
	ns, err := netns.New()
	if err != nil {
		orig.Close()
		t.Fatalf("netns.New: %v", err)
	}
	t.Cleanup(func() {
		if err := netns.Set(orig); err != nil {
			t.Errorf("back to the original namespace: %v", err)
		}
		orig.Close()
		ns.Close()
	})
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		t.Fatalf("loopback: %v", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		t.Fatalf("loopback up: %v", err)
	}
}

// sysctl writes a sysctl of the current thread's namespace.
func sysctl(t *testing.T, name, value string) {
	t.Helper()
	p := "/proc/sys/" + strings.ReplaceAll(name, ".", "/")
	if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
		t.Fatalf("sysctl %s=%s: %v", name, value, err)
	}
}

// listen makes a listening socket with a given backlog (net.Listen always
// asks for somaxconn), optionally with TCP_DEFER_ACCEPT: the kernel then
// keeps a handshake whose final ACK carries no data in SYN-RECEIVED, which
// is how a client that connects and never speaks looks to a server.
func listen(t *testing.T, addr netip.AddrPort, backlog int, deferAccept bool) net.Listener {
	t.Helper()
	family := unix.AF_INET
	var sa unix.Sockaddr = &unix.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().As4()}
	if addr.Addr().Is6() {
		family = unix.AF_INET6
		sa = &unix.SockaddrInet6{Port: int(addr.Port()), Addr: addr.Addr().As16()}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socket: %v", err)
	}
	f := os.NewFile(uintptr(fd), "listener")
	defer f.Close()
	if deferAccept {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, 30); err != nil {
			t.Fatalf("TCP_DEFER_ACCEPT: %v", err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		t.Fatalf("bind %s: %v", addr, err)
	}
	if err := unix.Listen(fd, backlog); err != nil {
		t.Fatalf("listen: %v", err)
	}
	ln, err := net.FileListener(f)
	if err != nil {
		t.Fatalf("FileListener: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// connectNoWait starts a connection and returns without waiting for it.
func connectNoWait(t *testing.T, addr netip.AddrPort) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socket: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	err = unix.Connect(fd, &unix.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().As4()})
	if err != nil && err != unix.EINPROGRESS {
		t.Fatalf("connect %s: %v", addr, err)
	}
}

func accept(t *testing.T, ln net.Listener) net.Conn {
	t.Helper()
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(5 * time.Second))
	c, err := ln.Accept()
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readEOF reads until the peer's FIN.
func readEOF(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatalf("reading to EOF: %v", err)
	}
}

// settle reads snapshots until ok accepts one: the last ACKs of a close
// may still be on their way through loopback when the test's calls return.
// It polls a condition; it never waits a fixed time.
func settle(t *testing.T, ok func(diag.Snapshot) bool) diag.Snapshot {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s, err := host.Read(host.Options{})
		if err != nil {
			t.Fatalf("host.Read: %v", err)
		}
		if ok(s) || time.Now().After(deadline) {
			return s
		}
		runtime.Gosched()
		time.Sleep(5 * time.Millisecond)
	}
}

func self(t *testing.T) (pid int, name string) {
	b, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	return os.Getpid(), strings.TrimSpace(string(b))
}

func TestQuietNamespace(t *testing.T) {
	enterNetns(t)
	s, err := host.Read(host.Options{})
	if err != nil {
		t.Fatalf("host.Read: %v", err)
	}
	if len(s.Rows) != 0 {
		t.Errorf("a new namespace has %d sockets, want 0: %v", len(s.Rows), s.Rows)
	}
	if fs := diag.Diagnose(s, nil, diag.Thresholds{}); len(fs) != 0 {
		t.Errorf("findings on a quiet namespace: %+v", fs)
	}
	if _, ok := s.Counters["ListenOverflows"]; !ok {
		t.Errorf("counters lack ListenOverflows: %v", s.Counters)
	}
	if _, ok := s.Counters["ActiveOpens"]; !ok {
		t.Errorf("counters lack ActiveOpens: %v", s.Counters)
	}
	if s.EphemeralSize() == 0 {
		t.Errorf("ephemeral range unknown; settings %v", s.Settings)
	}
	for _, k := range []string{diag.SysctlFinTimeout, diag.SysctlSomaxconn, diag.SysctlSyncookies, diag.SysctlMaxSynBacklog} {
		if s.Settings[k] == "" {
			t.Errorf("setting %s not read", k)
		}
	}
}

// TestStates makes the kernel of a fresh namespace hold sockets in the
// states the rules are about, reads them back and diagnoses them.
func TestStates(t *testing.T) {
	enterNetns(t)
	pid, name := self(t)
	// A small ephemeral range makes TIME-WAIT toward one destination a
	// visible share of it: the rule is relative to the range's size.
	sysctl(t, diag.SysctlPortRange, "40000 40049")

	const (
		nCloseWait = 12
		nTimeWait  = 15
		nDeferred  = 3
		nQueued    = 4
	)
	lo := netip.MustParseAddr("127.0.0.1")

	// CLOSE-WAIT on the server, FIN-WAIT-2 on the client: the client
	// closes, the server reads the FIN and never closes.
	leaky := listen(t, netip.AddrPortFrom(lo, 7001), 128, false)
	for range nCloseWait {
		c := dial(t, "127.0.0.1:7001")
		s := accept(t, leaky)
		c.Close()
		readEOF(t, s)
	}

	// TIME-WAIT on the client, the active closer: client closes, server
	// reads the FIN and closes too. One connection stays open, so the
	// destination's likely owner is known.
	tidy := listen(t, netip.AddrPortFrom(lo, 7002), 128, false)
	for range nTimeWait {
		c := dial(t, "127.0.0.1:7002")
		s := accept(t, tidy)
		c.Close()
		readEOF(t, s)
		s.Close()
	}
	dial(t, "127.0.0.1:7002")
	accept(t, tidy) // ESTABLISHED, both ends

	// SYN-RECEIVED: with TCP_DEFER_ACCEPT the server keeps handshakes
	// whose ACK brought no data half-open; the clients think they are
	// connected.
	deferred := listen(t, netip.AddrPortFrom(lo, 7003), 4, true)
	_ = deferred
	for range nDeferred {
		dial(t, "127.0.0.1:7003")
	}

	// A full accept queue: nobody accepts.
	listen(t, netip.AddrPortFrom(lo, 7004), nQueued, false)
	for range nQueued {
		dial(t, "127.0.0.1:7004")
	}

	// IPv6, when the namespace has it.
	v6 := false
	if ln6, err := net.Listen("tcp6", "[::1]:7005"); err == nil {
		defer ln6.Close()
		dial(t, "[::1]:7005")
		accept(t, ln6)
		v6 = true
	} else {
		t.Logf("no IPv6 on loopback (%v); IPv6 rows not checked", err)
	}

	// ESTABLISHED: 7002's pair, 7003's clients, 7004's clients and the
	// children waiting in its accept queue, 7005's pair.
	want := diag.Counts{
		tcp.CloseWait:   nCloseWait,
		tcp.FinWait2:    nCloseWait,
		tcp.TimeWait:    nTimeWait,
		tcp.SynReceived: nDeferred,
		tcp.Listen:      4,
		tcp.Established: 2 + nDeferred + 2*nQueued,
	}
	if v6 {
		want[tcp.Listen]++
		want[tcp.Established] += 2
	}
	snap := settle(t, func(s diag.Snapshot) bool {
		got := diag.CountStates(s.Rows)
		for st, n := range want {
			if got[st] != n {
				return false
			}
		}
		return got.Total() == want.Total()
	})
	got := diag.CountStates(snap.Rows)
	for _, st := range tcp.States() {
		if got[st] != want[st] {
			t.Errorf("%s: got %d sockets, want %d", st, got[st], want[st])
		}
	}

	t.Run("rows", func(t *testing.T) {
		for _, r := range snap.Rows {
			if r.Source != diag.SourceHost {
				t.Errorf("row source %q", r.Source)
			}
			switch r.State {
			case tcp.CloseWait:
				if r.PID != pid || r.Process != name {
					t.Errorf("CLOSE-WAIT %s owned by %q pid %d, want %q pid %d", r.Local, r.Process, r.PID, name, pid)
				}
				if r.Local.Port() != 7001 {
					t.Errorf("CLOSE-WAIT on local port %d, want 7001", r.Local.Port())
				}
			case tcp.TimeWait:
				if r.Timer != "time-wait" || r.TimerLeft <= 0 || r.TimerLeft > time.Minute {
					t.Errorf("TIME-WAIT timer %q %v", r.Timer, r.TimerLeft)
				}
				if r.Age < 0 || r.Age > time.Minute {
					t.Errorf("TIME-WAIT age %v", r.Age)
				}
				if r.Inode != 0 || r.PID != 0 {
					t.Errorf("TIME-WAIT with inode %d pid %d: no process owns TIME-WAIT", r.Inode, r.PID)
				}
				if !snap.Ephemeral(r.Local.Port()) {
					t.Errorf("TIME-WAIT local port %d outside the range we set", r.Local.Port())
				}
			case tcp.Listen:
				if r.PID != pid {
					t.Errorf("LISTEN %s pid %d, want %d", r.Local, r.PID, pid)
				}
				if r.Local.Port() == 7004 && (r.RecvQ != nQueued || r.SendQ != nQueued) {
					t.Errorf("LISTEN :7004 queue %d of %d, want %d of %d", r.RecvQ, r.SendQ, nQueued, nQueued)
				}
			case tcp.SynReceived:
				if r.Local.Port() != 7003 {
					t.Errorf("SYN-RECEIVED on port %d, want 7003", r.Local.Port())
				}
			case tcp.Established:
				if r.Local.Port() == 7002 && r.RTT <= 0 {
					t.Errorf("ESTABLISHED %s without RTT", r.Local)
				}
			}
			if r.UID != 0 {
				t.Errorf("%s uid %d, want 0", r.Local, r.UID)
			}
		}
		if v6 && len(diag.Filter(snap.Rows, func(r diag.Row) bool { return r.Local.Addr().Is6() })) != 3 {
			t.Errorf("want 3 IPv6 rows (listener and a pair)")
		}
		if l := snap.Listeners[7003]; l.SynQueue != nDeferred || l.Backlog != 4 {
			t.Errorf("listener 7003: %+v, want SynQueue %d Backlog 4", l, nDeferred)
		}
	})

	t.Run("findings", func(t *testing.T) {
		fs := diag.Diagnose(snap, nil, diag.Thresholds{SynRecvMin: 2})
		byRule := map[string]diag.Finding{}
		for _, f := range fs {
			byRule[f.Rule] = f
			t.Logf("%s %s: %s", f.Severity, f.Rule, f.Seen)
		}
		label := diag.Row{PID: pid, Process: name}.ProcessLabel()

		cw, ok := byRule["close-wait"]
		switch {
		case !ok:
			t.Errorf("no close-wait finding for %d CLOSE-WAIT sockets", nCloseWait)
		case cw.Severity != diag.Warning || cw.Count != nCloseWait || cw.PID != pid || cw.Port != 7001:
			t.Errorf("close-wait: %s count %d pid %d port %d; want warning %d pid %d port 7001",
				cw.Severity, cw.Count, cw.PID, cw.Port, nCloseWait, pid)
		case !strings.Contains(cw.Seen, label):
			t.Errorf("close-wait does not name %q: %s", label, cw.Seen)
		}

		tw, ok := byRule["time-wait-ports"]
		switch {
		case !ok:
			t.Errorf("no time-wait-ports finding: %d TIME-WAIT toward 127.0.0.1:7002 of 50 ports", nTimeWait)
		case tw.Severity != diag.Warning || tw.Count != nTimeWait || tw.Remote != "127.0.0.1:7002":
			t.Errorf("time-wait-ports: %s count %d remote %s", tw.Severity, tw.Count, tw.Remote)
		case tw.PID != pid || !strings.Contains(tw.Seen, label):
			t.Errorf("time-wait-ports likely owner pid %d, want %d: %s", tw.PID, pid, tw.Seen)
		case !strings.Contains(tw.Seen, "16 of the 50 ephemeral ports"):
			t.Errorf("time-wait-ports should count 16 of 50 ports: %s", tw.Seen)
		}

		if f, ok := byRule["accept-queue"]; !ok || f.Severity != diag.Problem || f.Port != 7004 || f.PID != pid {
			t.Errorf("accept-queue: %+v (present %v), want a problem on port 7004 owned by pid %d", f, ok, pid)
		}
		if f, ok := byRule["syn-received"]; !ok || f.Port != 7003 || f.Count != nDeferred {
			t.Errorf("syn-received: %+v (present %v), want %d on port 7003", f, ok, nDeferred)
		}
		if _, ok := byRule["fin-wait-2"]; ok {
			t.Errorf("fin-wait-2 fired on %d sockets, below the default bar of 20", nCloseWait)
		}
		if diag.ExitStatus(fs) != 2 {
			t.Errorf("exit status %d, want 2 (the accept queue is a problem)", diag.ExitStatus(fs))
		}
	})

	t.Run("fin-wait-2", func(t *testing.T) {
		fs := diag.Diagnose(snap, nil, diag.Thresholds{FinWait2Warn: nCloseWait})
		for _, f := range fs {
			if f.Rule == "fin-wait-2" {
				if f.Count != nCloseWait || f.Remote != "127.0.0.1:7001" {
					t.Errorf("fin-wait-2: count %d remote %s", f.Count, f.Remote)
				}
				// Closed FIN-WAIT-2 sockets are kernel time-wait
				// entries: aged, owned by nobody, the listener's
				// process is not theirs but the peer's.
				return
			}
		}
		t.Errorf("no fin-wait-2 finding with the bar at %d", nCloseWait)
	})

	// Counters moving between two looks. Not a subtest: t.Run starts a
	// goroutine, which is not on this thread nor in this namespace.
	{
		before := snap
		// The queue holds one more than its backlog; SYNs past that are
		// dropped. Connect without waiting: a dropped SYN is only
		// retransmitted a second later.
		for range 3 {
			connectNoWait(t, netip.AddrPortFrom(lo, 7004))
		}
		after := settle(t, func(s diag.Snapshot) bool { return s.Counters["ListenOverflows"] > before.Counters["ListenOverflows"] })
		if after.Counters["ListenOverflows"] <= before.Counters["ListenOverflows"] {
			t.Fatalf("ListenOverflows did not move (%d) after connecting to a full accept queue", after.Counters["ListenOverflows"])
		}
		fs := diag.Diagnose(after, &before, diag.Thresholds{})
		for _, f := range fs {
			if f.Rule == "listen-drops" && f.Severity == diag.Problem {
				return
			}
		}
		t.Errorf("no listen-drops problem after ListenOverflows moved: %+v", fs)
	}
}

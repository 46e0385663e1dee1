//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/synack/synack/diag"
	"github.com/synack/synack/diag/host"
	"github.com/synack/synack/link"
	"github.com/synack/synack/link/tun/nstest"
	"github.com/synack/synack/stack"
	"github.com/synack/synack/tcp"
	"github.com/synack/synack/tunstack"
	"github.com/synack/synack/wire"
)

// These tests make the kernel of a throwaway network namespace hold
// sockets in the states the diagnose rules are about, with synack on a TUN
// device in the same namespace as the misbehaving peer, and run the real
// `synack diagnose --host --json` (this test binary run again inside the
// namespace, see TestHelperProcess) to check it names the pattern, the
// count and the owning process: this test process, whose Go sockets are
// the kernel's side.

// dhFamily is one address family's addresses inside a scenario's namespace.
type dhFamily struct {
	name   string
	host   netip.Prefix // the kernel's side of the TUN
	synack netip.Addr   // synack's address
}

var dhFamilies = []dhFamily{
	{"IPv4", netip.MustParsePrefix("198.18.0.1/24"), netip.MustParseAddr("198.18.0.2")},
	{"IPv6", netip.MustParsePrefix("fd00:d1a9::1/64"), netip.MustParseAddr("fd00:d1a9::2")},
}

func (f dhFamily) kernel() netip.Addr { return f.host.Addr() }

func (f dhFamily) network() string {
	if f.synack.Is4() {
		return "tcp4"
	}
	return "tcp6"
}

// What synack's outgoing packets lose.
const (
	dhDropNone     = iota
	dhDropAll      // synack stops acknowledging (and sending anything)
	dhDropPureACKs // ACKs without SYN, FIN, RST or data: synack never completes a handshake
)

// dhWorld is one scenario: a namespace, a TUN device in it with the
// kernel's address, a synack stack on the device whose outgoing packets can
// be told to disappear, and the kernel-side sockets the test holds.
type dhWorld struct {
	t   *testing.T
	fam dhFamily
	ns  *nstest.NS
	net *tunstack.Net
	s   *stack.Stack // net.Stack

	drop    atomic.Int32
	dropped atomic.Uint64

	mu      sync.Mutex
	closers []io.Closer // kernel sockets the test holds, closed at the end
	keep    []*stack.TCPConn
}

// dhDropOut wraps the TUN device: what synack sends goes through drops
// first, so synack can be made to stop acknowledging or to never finish a
// handshake while it still receives everything.
type dhDropOut struct {
	link.Endpoint
	w *dhWorld
}

func (d dhDropOut) WritePackets(pkts [][]byte) (int, error) {
	mode := d.w.drop.Load()
	if mode == dhDropNone {
		return d.Endpoint.WritePackets(pkts)
	}
	for i, p := range pkts {
		if dhDrops(mode, p) {
			d.w.dropped.Add(1)
			continue
		}
		if _, err := d.Endpoint.WritePackets([][]byte{p}); err != nil {
			return i, err
		}
	}
	return len(pkts), nil
}

func dhDrops(mode int32, pkt []byte) bool {
	if mode == dhDropAll {
		return true
	}
	ip, err := wire.ParseIP(pkt)
	if err != nil || ip.Protocol != wire.ProtocolTCP {
		return false
	}
	h, payload, err := wire.ParseTCP(ip.Payload, ip.Src, ip.Dst, false)
	if err != nil {
		return false
	}
	return h.Flags&(wire.SYN|wire.FIN|wire.RST) == 0 && len(payload) == 0
}

func newDHWorld(t *testing.T, fam dhFamily) *dhWorld {
	t.Helper()
	w := &dhWorld{t: t, fam: fam, ns: nstest.New(t)} // nstest.New skips without root, fails under CI=true
	var err error
	w.ns.Do(func() {
		w.net, err = tunstack.New(tunstack.Config{
			Name:  "synack0",
			MTU:   1500,
			Addrs: []tunstack.Pair{{Host: fam.host, Stack: fam.synack}},
			Link:  func(ep link.Endpoint) link.Endpoint { return dhDropOut{ep, w} },
		})
	})
	if err != nil {
		t.Fatalf("tunstack.New: %v", err)
	}
	w.s = w.net.Stack
	t.Cleanup(w.close)
	return w
}

// close runs when the scenario ends, pass or fail: synack sends again and
// aborts its connections (RST), so the kernel's sockets, orphans included,
// go at once; then the device and the test's kernel sockets close. The
// namespace itself is removed by nstest's cleanup, which runs after this.
func (w *dhWorld) close() {
	w.drop.Store(dhDropNone)
	w.s.Close()
	// The resets reach the kernel before the device goes: wait for them to
	// take its sockets (orphans would outlive the test otherwise).
	// TIME-WAIT goes with the namespace.
	var left diag.Counts
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		c, err := w.kernelCounts()
		if err != nil {
			break
		}
		delete(c, tcp.Listen)
		delete(c, tcp.TimeWait)
		if left = c; c.Total() == 0 {
			break
		}
	}
	if left.Total() != 0 {
		w.t.Errorf("kernel sockets left after synack reset its connections: %s", dhCountsString(left))
	}
	done := make(chan struct{})
	go func() { w.net.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		w.t.Errorf("TUN reader still running 10s after Close")
	}
	w.mu.Lock()
	cs := w.closers
	w.closers = nil
	w.mu.Unlock()
	for _, c := range cs {
		c.Close()
	}
}

func (w *dhWorld) hold(c io.Closer) {
	w.mu.Lock()
	w.closers = append(w.closers, c)
	w.mu.Unlock()
}

func (w *dhWorld) keepSynack(c *stack.TCPConn) {
	w.mu.Lock()
	w.keep = append(w.keep, c)
	w.mu.Unlock()
}

func (w *dhWorld) held() (kernel, synack int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.closers), len(w.keep)
}

// kernelListen listens with the kernel's TCP on the kernel's address with
// a given backlog (net.Listen always asks for somaxconn), and hands each
// accepted connection to w.hold: the test process owns it and never
// closes it before the end.
func (w *dhWorld) kernelListen(port uint16, backlog int) {
	w.t.Helper()
	a := w.fam.kernel()
	var ln net.Listener
	var err error
	w.ns.Do(func() {
		family := unix.AF_INET6
		var sa unix.Sockaddr = &unix.SockaddrInet6{Port: int(port), Addr: a.As16()}
		if a.Is4() {
			family = unix.AF_INET
			sa = &unix.SockaddrInet4{Port: int(port), Addr: a.As4()}
		}
		var fd int
		fd, err = unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return
		}
		f := os.NewFile(uintptr(fd), "listener")
		defer f.Close()
		if err = unix.Bind(fd, sa); err != nil {
			return
		}
		if err = unix.Listen(fd, backlog); err != nil {
			return
		}
		ln, err = net.FileListener(f)
	})
	if err != nil {
		w.t.Fatalf("kernel listen on %v port %d: %v", a, port, err)
	}
	w.hold(ln)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			w.hold(c)
		}
	}()
}

// kernelDial connects from the kernel's TCP to synack.
func (w *dhWorld) kernelDial(port uint16) *net.TCPConn {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := w.ns.DialContext(ctx, w.fam.network(), netip.AddrPortFrom(w.fam.synack, port).String())
	if err != nil {
		w.t.Fatalf("kernel dial synack port %d: %v", port, err)
	}
	return c.(*net.TCPConn)
}

// synackListen listens with synack; every accepted connection is kept and
// never closed by synack's application.
func (w *dhWorld) synackListen(port uint16) {
	w.t.Helper()
	l, err := w.s.ListenTCP(netip.AddrPortFrom(w.fam.synack, port), 128)
	if err != nil {
		w.t.Fatalf("synack listen on port %d: %v", port, err)
	}
	go func() {
		for {
			c, err := l.AcceptTCP()
			if err != nil {
				return
			}
			w.keepSynack(c)
		}
	}()
}

// synackDial connects from synack to the kernel's listener.
func (w *dhWorld) synackDial(port uint16) *stack.TCPConn {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := w.s.DialTCP(ctx, netip.AddrPortFrom(w.fam.kernel(), port))
	if err != nil {
		w.t.Fatalf("synack dial kernel port %d: %v", port, err)
	}
	return c
}

// settle polls the namespace's kernel sockets (/proc/net/tcp{,6}, read
// from inside it) until their per-state counts are want exactly and ok, if
// given, holds. It waits on a condition, never a fixed time.
func (w *dhWorld) settle(want diag.Counts, ok func() bool) {
	w.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := w.kernelCounts()
		if err != nil {
			w.t.Fatalf("reading the namespace's sockets: %v", err)
		}
		if dhSameCounts(got, want) && (ok == nil || ok()) {
			return
		}
		if time.Now().After(deadline) {
			k, s := w.held()
			w.t.Fatalf("the kernel's sockets did not settle: have %s, want %s (the test holds %d kernel sockets, synack's app %d connections)",
				dhCountsString(got), dhCountsString(want), k, s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (w *dhWorld) kernelCounts() (diag.Counts, error) {
	socks, err := w.ns.TCPSockets()
	if err != nil {
		return nil, err
	}
	c := diag.Counts{}
	for _, s := range socks {
		st, ok := host.State(uint8(s.State))
		if !ok {
			return nil, fmt.Errorf("unknown kernel state %d", s.State)
		}
		c[st]++
	}
	return c, nil
}

// dhCountsString writes the non-zero counts: "FIN-WAIT-1 20, LISTEN 1".
func dhCountsString(c diag.Counts) string {
	var parts []string
	for _, s := range tcp.States() {
		if c[s] != 0 {
			parts = append(parts, fmt.Sprintf("%s %d", s, c[s]))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func dhSameCounts(a, b diag.Counts) bool {
	for _, s := range tcp.States() {
		if a[s] != b[s] {
			return false
		}
	}
	return true
}

// diagnose runs `synack diagnose --host ARGS...` inside the namespace as a
// process of its own and returns its output and exit status.
func (w *dhWorld) diagnose(args ...string) (stdout string, status int) {
	w.t.Helper()
	cmd := synackCmd(os.Args[0], append([]string{"diagnose", "--host"}, args...)...)
	if os.Getenv("GORACE") == "" {
		// Under -race a child may sleep a second at exit (atexit_sleep_ms).
		cmd.Env = append(cmd.Env, "GORACE=atexit_sleep_ms=0")
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := w.ns.Start(cmd); err != nil {
		w.t.Fatalf("starting synack diagnose: %v", err)
	}
	timer := time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() })
	defer timer.Stop()
	err := cmd.Wait()
	switch ee, ok := err.(*exec.ExitError); {
	case ok:
		status = ee.ExitCode()
	case err != nil:
		w.t.Fatalf("synack diagnose: %v; stderr: %s", err, errb.String())
	}
	if errb.Len() > 0 || status > 2 {
		w.t.Fatalf("synack diagnose %q: exit %d, stderr: %s", args, status, errb.String())
	}
	return out.String(), status
}

// report runs `synack diagnose --host --json ARGS...` and decodes it.
func (w *dhWorld) report(args ...string) (diag.Report, int, string) {
	w.t.Helper()
	out, status := w.diagnose(append([]string{"--json"}, args...)...)
	var rep diag.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		w.t.Fatalf("diagnose --json output: %v\n%s", err, out)
	}
	if rep.Status != status {
		w.t.Errorf("exit status %d, but the report says %d", status, rep.Status)
	}
	return rep, status, out
}

// sysctl writes a sysctl of the namespace (the net.* ones are per
// namespace), to show the findings read the settings where the sockets are.
func (w *dhWorld) sysctl(name, value string) {
	w.t.Helper()
	var err error
	w.ns.Do(func() {
		err = os.WriteFile("/proc/sys/"+strings.ReplaceAll(name, ".", "/"), []byte(value), 0o644)
	})
	if err != nil {
		w.t.Fatalf("sysctl %s=%s in the namespace: %v", name, value, err)
	}
}

// dhSelf is the label the findings should give this test process.
func dhSelf(t *testing.T) (label string, pid int) {
	b, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	pid = os.Getpid()
	return diag.Row{PID: pid, Process: strings.TrimSpace(string(b))}.ProcessLabel(), pid
}

// dhCheck is what one run of diagnose must show.
type dhCheck struct {
	counts  diag.Counts // every state, exactly
	rule    string      // the finding that must be there ("" for none at all)
	sev     diag.Severity
	count   int
	process bool     // the finding names this test process
	port    uint16   // the finding's port, when not 0
	remote  string   // the finding's remote, when not ""
	seen    []string // in the finding's "seen"
	do      []string // in its advice: the namespace's settings, with their values
	extra   []string // other rules that may also fire (timing-dependent), besides rule
	status  int
}

func (w *dhWorld) check(rep diag.Report, status int, out string, c dhCheck) {
	w.t.Helper()
	t := w.t
	failed := false
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf(format, args...)
		failed = true
	}
	defer func() {
		if failed {
			t.Logf("diagnose --host --json:\n%s", out)
		}
	}()
	if rep.Source != diag.SourceHost {
		fail("source %q, want %q", rep.Source, diag.SourceHost)
	}
	for _, s := range tcp.States() {
		if got, want := rep.Counts[s.String()], c.counts[s]; got != want {
			fail("%s: %d sockets, want %d", s, got, want)
		}
	}
	if rep.Total != c.counts.Total() {
		fail("total %d sockets, want %d", rep.Total, c.counts.Total())
	}
	if status != c.status {
		fail("exit status %d, want %d", status, c.status)
	}
	label, pid := dhSelf(t)
	var f *diag.Finding
	for i := range rep.Findings {
		g := &rep.Findings[i]
		switch {
		case g.Rule == c.rule && c.rule != "":
			if f != nil {
				fail("two %s findings", c.rule)
			}
			f = g
		case !contains(c.extra, g.Rule):
			fail("unexpected finding %s %s: %s", g.Severity, g.Rule, g.Seen)
		default:
			t.Logf("also (allowed): %s %s: %s", g.Severity, g.Rule, g.Seen)
		}
	}
	if c.rule == "" {
		return
	}
	if f == nil {
		fail("no %s finding", c.rule)
		return
	}
	if f.Severity != c.sev || f.Count != c.count {
		fail("%s: %s with count %d, want %s with count %d", c.rule, f.Severity, f.Count, c.sev, c.count)
	}
	if c.process && (f.PID != pid || f.Process != label) {
		fail("%s: process %q pid %d, want %q pid %d", c.rule, f.Process, f.PID, label, pid)
	}
	if c.port != 0 && f.Port != c.port {
		fail("%s: port %d, want %d", c.rule, f.Port, c.port)
	}
	if c.remote != "" && f.Remote != c.remote {
		fail("%s: remote %q, want %q", c.rule, f.Remote, c.remote)
	}
	for _, s := range c.seen {
		if !strings.Contains(f.Seen, s) {
			fail("%s: seen %q lacks %q", c.rule, f.Seen, s)
		}
	}
	if len(f.Means) == 0 || len(f.Confirm) == 0 || len(f.Do) == 0 {
		fail("%s: advice missing: means %q, confirm %q, do %q", c.rule, f.Means, f.Confirm, f.Do)
	}
	advice := strings.Join(f.Do, "\n")
	for _, d := range c.do {
		if !strings.Contains(advice, d) {
			fail("%s: advice lacks %q: %q", c.rule, d, f.Do)
		}
	}
	t.Logf("%s %s: %s", f.Severity, f.Rule, f.Seen)
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// absent checks a run with the rule's bar one above the count: the rule
// must not fire (the count is exact, not just large enough).
func (w *dhWorld) absent(rule string, args ...string) {
	w.t.Helper()
	rep, _, out := w.report(args...)
	for _, f := range rep.Findings {
		if f.Rule == rule {
			w.t.Errorf("with %q, %s still fires: %s\n%s", args, rule, f.Seen, out)
		}
	}
}

const dhN = 20 // connections per pattern

func TestDiagnoseHostMisbehavingPeer(t *testing.T) {
	nstest.Require(t)
	for _, fam := range dhFamilies {
		t.Run(fam.name, func(t *testing.T) {
			t.Parallel()
			dhScenarios(t, fam)
		})
	}
}

func dhScenarios(t *testing.T, fam dhFamily) {
	synackAt := func(port uint16) string { return netip.AddrPortFrom(fam.synack, port).String() }
	half := dhN * 2 / 5 // of dhN, how many the kernel's app half-closes (shutdown) rather than closes

	// synack dials the kernel's listener and closes (sends its FIN); the
	// test's app accepts and never closes: CLOSE-WAIT, owned by this
	// process, on the listener's port.
	t.Run("close-wait", func(t *testing.T) {
		w := newDHWorld(t, fam)
		w.kernelListen(7001, 128)
		for range dhN {
			w.synackDial(7001).Close()
		}
		w.settle(diag.Counts{tcp.CloseWait: dhN, tcp.Listen: 1}, func() bool { k, _ := w.held(); return k == dhN+1 })

		rep, status, out := w.report("--threshold", fmt.Sprintf("CloseWaitProblem=%d", dhN))
		w.check(rep, status, out, dhCheck{
			counts: diag.Counts{tcp.CloseWait: dhN, tcp.Listen: 1},
			rule:   "close-wait", sev: diag.Problem, count: dhN, process: true, port: 7001,
			seen:   []string{fmt.Sprintf("%d connections in CLOSE-WAIT", dhN), "on local port 7001"},
			status: 2,
		})
		rep, status, out = w.report() // default bars: warning from 10
		w.check(rep, status, out, dhCheck{
			counts: diag.Counts{tcp.CloseWait: dhN, tcp.Listen: 1},
			rule:   "close-wait", sev: diag.Warning, count: dhN, process: true, port: 7001, status: 1,
		})
		w.absent("close-wait", "--threshold", fmt.Sprintf("CloseWaitWarn=%d", dhN+1))

		text, status := w.diagnose()
		label, _ := dhSelf(t)
		if status != 1 || !strings.Contains(text, "CLOSE-WAIT") || !strings.Contains(text, "WARNING  close-wait") || !strings.Contains(text, label) {
			t.Errorf("diagnose --host: exit %d, want 1 and the counts and a close-wait warning naming %s:\n%s", status, label, text)
		}
		t.Logf("synack diagnose --host (exit %d):\n%s", status, text)
	})

	// The kernel's app closes connections synack accepted; synack
	// acknowledges the FIN but its app never closes, so synack never sends
	// its own: FIN-WAIT-2. Some the app only shut down for writing (still
	// owned by this process), the rest it closed (orphans the kernel frees
	// after tcp_fin_timeout).
	t.Run("fin-wait-2", func(t *testing.T) {
		w := newDHWorld(t, fam)
		w.sysctl("net.ipv4.tcp_fin_timeout", "37")
		w.synackListen(7002)
		for i := range dhN {
			c := w.kernelDial(7002)
			if i < half {
				c.CloseWrite()
				w.hold(c)
			} else {
				c.Close()
			}
		}
		want := diag.Counts{tcp.FinWait2: dhN}
		w.settle(want, func() bool { _, s := w.held(); return s == dhN })

		rep, status, out := w.report("--threshold", fmt.Sprintf("FinWait2Warn=%d", dhN))
		w.check(rep, status, out, dhCheck{
			counts: want,
			rule:   "fin-wait-2", sev: diag.Warning, count: dhN, process: true, remote: synackAt(7002),
			seen: []string{
				fmt.Sprintf("%d connections in FIN-WAIT-2", dhN),
				fmt.Sprintf("%d still owned by a process", half),
				fmt.Sprintf("%d closed (freed after net.ipv4.tcp_fin_timeout (now 37))", dhN-half),
			},
			do:     []string{"lower net.ipv4.tcp_fin_timeout (now 37)"},
			status: 1,
		})
		w.absent("fin-wait-2", "--threshold", fmt.Sprintf("FinWait2Warn=%d", dhN+1))
	})

	// synack stops acknowledging; the kernel's app writes and closes (or
	// half-closes): the data and the FIN stay unacknowledged, FIN-WAIT-1
	// with a send queue and a retransmit timer.
	t.Run("fin-wait-1", func(t *testing.T) {
		const size = 1000
		w := newDHWorld(t, fam)
		w.sysctl("net.ipv4.tcp_orphan_retries", "6")
		w.synackListen(7003)
		conns := make([]*net.TCPConn, dhN)
		for i := range conns {
			conns[i] = w.kernelDial(7003)
		}
		w.settle(diag.Counts{tcp.Established: dhN}, func() bool { _, s := w.held(); return s == dhN })
		w.drop.Store(dhDropAll)
		msg := bytes.Repeat([]byte("x"), size)
		for i, c := range conns {
			if _, err := c.Write(msg); err != nil {
				t.Fatalf("kernel write: %v", err)
			}
			if i < half {
				c.CloseWrite()
				w.hold(c)
			} else {
				c.Close()
			}
		}
		// synack answers every connection's data and FIN, and loses the
		// answer.
		want := diag.Counts{tcp.FinWait1: dhN}
		w.settle(want, func() bool { return w.dropped.Load() >= dhN })

		rep, status, out := w.report("--threshold", fmt.Sprintf("FinWait1Problem=%d", dhN))
		w.check(rep, status, out, dhCheck{
			counts: want,
			rule:   "fin-wait-1", sev: diag.Problem, count: dhN, process: true, remote: fam.synack.String(),
			seen: []string{fmt.Sprintf("%d connections in FIN-WAIT-1", dhN), "By peer: " + fam.synack.String() + ": " + fmt.Sprint(dhN)},
			do:   []string{"net.ipv4.tcp_orphan_retries (now 6)"},
			// The kernel retransmits what synack does not acknowledge;
			// after two timeouts in a row the retransmitting rule sees it
			// too.
			extra:  []string{"retransmitting"},
			status: 2,
		})
		// The unacknowledged bytes: each connection's data and its FIN.
		var f diag.Finding
		for _, g := range rep.Findings {
			if g.Rule == "fin-wait-1" {
				f = g
			}
		}
		// (Linux counts the FIN in the send queue: write_seq - snd_una.)
		if want := fmt.Sprintf("(%d retransmitting, 0 probing a zero window, %d bytes still unacknowledged)", dhN, dhN*(size+1)); !strings.Contains(f.Seen, want) {
			t.Errorf("fin-wait-1: seen %q, want %q", f.Seen, want)
		}
		w.absent("fin-wait-1", "--threshold", fmt.Sprintf("FinWait1Warn=%d", dhN+1))
	})

	// synack dials a kernel listener whose backlog is 32 and never
	// completes the handshakes (its ACKs are lost; synack thinks it is
	// connected): half-open handshakes, SYN-RECEIVED, 62% of the SYN
	// backlog (SYN cookies are on, so the listen backlog is the bound).
	t.Run("syn-received", func(t *testing.T) {
		const backlog = 32
		w := newDHWorld(t, fam)
		w.sysctl("net.ipv4.tcp_synack_retries", "3")
		w.kernelListen(7004, backlog)
		w.drop.Store(dhDropPureACKs)
		for range dhN {
			w.keepSynack(w.synackDial(7004))
		}
		want := diag.Counts{tcp.SynReceived: dhN, tcp.Listen: 1}
		w.settle(want, nil)

		chk := dhCheck{
			counts: want,
			rule:   "syn-received", sev: diag.Warning, count: dhN, process: true, port: 7004,
			seen: []string{
				fmt.Sprintf("%d half-open handshakes (SYN-RECEIVED) on port 7004", dhN),
				fmt.Sprintf("of its SYN backlog of %d", backlog),
				"from 1 distinct address (top: " + fam.synack.String() + ": " + fmt.Sprint(dhN) + ")",
			},
			do:     []string{"net.ipv4.tcp_syncookies (now 1)", "net.ipv4.tcp_synack_retries (now 3)", "net.core.somaxconn"},
			status: 1,
		}
		rep, status, out := w.report()
		w.check(rep, status, out, chk)
		_, pid := dhSelf(t)
		if l := rep.Listeners[7004]; l.SynQueue != dhN || l.SynBacklog != backlog || l.Backlog != backlog || l.PID != pid {
			t.Errorf("listener 7004 in the report: %+v, want SynQueue %d, SynBacklog and Backlog %d, pid %d", l, dhN, backlog, pid)
		}
		chk.sev, chk.status = diag.Problem, 2
		rep, status, out = w.report("--threshold", "SynRecvProblem=0.6")
		w.check(rep, status, out, chk)
		w.absent("syn-received", "--threshold", fmt.Sprintf("SynRecvMin=%d", dhN+1))
		if w.dropped.Load() < dhN {
			t.Errorf("synack's ACKs dropped: %d, want at least %d", w.dropped.Load(), dhN)
		}
	})

	// A namespace where nothing is wrong: first empty but for the TUN
	// device; then a kernel listener with one healthy connection from
	// synack that sent data and stays open, and one connection to synack
	// both sides closed (the kernel first: one TIME-WAIT). No findings,
	// exit status 0.
	t.Run("quiet", func(t *testing.T) {
		w := newDHWorld(t, fam)
		rep, status, out := w.report()
		w.check(rep, status, out, dhCheck{counts: diag.Counts{}, status: 0})

		w.kernelListen(7005, 128)
		sc := w.synackDial(7005)
		w.keepSynack(sc)
		if _, err := sc.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}

		w.synackListen(7006)
		kc := w.kernelDial(7006)
		w.settle(diag.Counts{tcp.Listen: 1, tcp.Established: 2}, func() bool { k, s := w.held(); return k == 2 && s == 2 })
		kc.Close()
		w.mu.Lock()
		peer := w.keep[1]
		w.mu.Unlock()
		peer.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.Copy(io.Discard, peer); err != nil {
			t.Fatalf("synack reading to the kernel's FIN: %v", err)
		}
		peer.Close()
		want := diag.Counts{tcp.Listen: 1, tcp.Established: 1, tcp.TimeWait: 1}
		w.settle(want, nil)

		rep, status, out = w.report()
		w.check(rep, status, out, dhCheck{counts: want, status: 0})
		if len(rep.Findings) != 0 {
			t.Errorf("findings on a quiet namespace: %+v", rep.Findings)
		}
		text, status := w.diagnose()
		if status != 0 || !strings.Contains(text, "No findings") {
			t.Errorf("diagnose --host on a quiet namespace: exit %d:\n%s", status, text)
		}
	})
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/synack/synack/admin"
	"github.com/synack/synack/diag"
	"github.com/synack/synack/link/memlink"
	"github.com/synack/synack/stack"
	"github.com/synack/synack/tcp"
	"github.com/synack/synack/wire"
)

var (
	admPeerAddr  = netip.MustParseAddr("198.18.1.1") // the peer stack, a
	admWatchAddr = netip.MustParseAddr("198.18.1.2") // the stack served by the admin server, b
)

// What the link from the peer to the watched stack loses.
const (
	admDropNone = iota
	admDropAll
	admDropPureACKs // ACKs without SYN, FIN, RST or data: handshakes never complete
)

// admWorld is a peer stack a and a watched stack b with an admin server,
// on a memlink pipe whose a->b direction can be told to lose packets.
type admWorld struct {
	a, b *stack.Stack
	url  string
	drop atomic.Int32
	mu   sync.Mutex
	keep []*stack.TCPConn // conns the applications hold and never close
}

func newAdmWorld(t *testing.T, bOpts stack.Options) *admWorld {
	t.Helper()
	w := &admWorld{}
	ea, eb := memlink.Pipe(memlink.Config{AB: memlink.Impairments{Drop: w.dropAB}})
	w.a = stack.New(stack.Options{})
	tr := admin.NewTracer()
	bOpts.Trace = tr.Hook
	w.b = stack.New(bOpts)
	if _, err := w.a.AddLink(ea, netip.PrefixFrom(admPeerAddr, 24)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.b.AddLink(eb, netip.PrefixFrom(admWatchAddr, 24)); err != nil {
		t.Fatal(err)
	}
	h := admin.Handler(w.b, admin.Options{Tracer: tr, Process: "synack-test"})
	ts := httptest.NewServer(h)
	w.url = ts.URL
	t.Cleanup(func() {
		h.Close()
		ts.Close()
		w.a.Close()
		w.b.Close()
	})
	return w
}

func (w *admWorld) dropAB(pkt []byte) bool {
	mode := w.drop.Load()
	if mode == admDropNone {
		return false
	}
	if mode == admDropAll {
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

func (w *admWorld) hold(c *stack.TCPConn) {
	w.mu.Lock()
	w.keep = append(w.keep, c)
	w.mu.Unlock()
}

// listen listens on s at addr:port; each accepted connection goes to
// serve in its own goroutine.
func admListen(t *testing.T, s *stack.Stack, addr netip.Addr, port uint16, serve func(*stack.TCPConn)) {
	t.Helper()
	l, err := s.ListenTCP(netip.AddrPortFrom(addr, port), 0)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.AcceptTCP()
			if err != nil {
				return
			}
			go serve(c)
		}
	}()
}

func admDial(t *testing.T, s *stack.Stack, to netip.Addr, port uint16) *stack.TCPConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := s.DialTCP(ctx, netip.AddrPortFrom(to, port))
	if err != nil {
		t.Fatalf("dial %v:%d: %v", to, port, err)
	}
	return c
}

func admWaitState(t *testing.T, s *stack.Stack, st tcp.State, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.StateCounts()[st] != n {
		if time.Now().After(deadline) {
			t.Fatalf("state counts %v, want %d in %s", s.StateCounts(), n, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// captureStdout runs f with os.Stdout going to a pipe and returns what it
// wrote and its result.
func captureStdout(t *testing.T, f func() int) (string, int) {
	t.Helper()
	r, wr, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = wr
	var buf bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&buf, r); close(done) }()
	status := f()
	os.Stdout = old
	wr.Close()
	<-done
	r.Close()
	return buf.String(), status
}

// The five patterns of the issue, made by the watched stack's own
// connections, seen through --admin.
func TestDiagnoseAdminScenarios(t *testing.T) {
	cases := []struct {
		name   string
		opts   stack.Options
		make   func(t *testing.T, w *admWorld)
		state  tcp.State
		n      int
		rule   string
		status int
	}{
		{
			name: "close-wait: the application never calls close",
			make: func(t *testing.T, w *admWorld) {
				admListen(t, w.b, admWatchAddr, 8080, w.hold) // holds, never closes
				for range 12 {
					admDial(t, w.a, admWatchAddr, 8080).Close()
				}
			},
			state: tcp.CloseWait, n: 12, rule: "close-wait", status: 1,
		},
		{
			name: "fin-wait-2: the peer never sends its FIN",
			make: func(t *testing.T, w *admWorld) {
				admListen(t, w.b, admWatchAddr, 8080, func(c *stack.TCPConn) { c.Close() })
				for range 24 {
					w.hold(admDial(t, w.a, admWatchAddr, 8080)) // never closes
				}
			},
			state: tcp.FinWait2, n: 24, rule: "fin-wait-2", status: 1,
		},
		{
			name: "fin-wait-1: the peer stops acknowledging",
			make: func(t *testing.T, w *admWorld) {
				var ready sync.WaitGroup
				var mu sync.Mutex
				var conns []*stack.TCPConn
				ready.Add(24)
				admListen(t, w.b, admWatchAddr, 8080, func(c *stack.TCPConn) {
					mu.Lock()
					conns = append(conns, c)
					mu.Unlock()
					ready.Done()
				})
				for range 24 {
					w.hold(admDial(t, w.a, admWatchAddr, 8080))
				}
				ready.Wait()
				w.drop.Store(admDropAll)
				for _, c := range conns {
					c.Close()
				}
			},
			state: tcp.FinWait1, n: 24, rule: "fin-wait-1", status: 1,
		},
		{
			name: "syn-received: handshakes never complete",
			opts: stack.Options{SynBacklog: 16},
			make: func(t *testing.T, w *admWorld) {
				admListen(t, w.b, admWatchAddr, 8080, w.hold)
				w.drop.Store(admDropPureACKs)
				for range 12 {
					w.hold(admDial(t, w.a, admWatchAddr, 8080)) // the peer thinks it is connected
				}
			},
			state: tcp.SynReceived, n: 12, rule: "syn-received", status: 1,
		},
		{
			name: "time-wait-ports: closing first toward one destination uses up the ports",
			opts: stack.Options{FirstEphemeral: 40000, LastEphemeral: 40019},
			make: func(t *testing.T, w *admWorld) {
				admListen(t, w.a, admPeerAddr, 7, func(c *stack.TCPConn) {
					io.Copy(io.Discard, c)
					c.Close()
				})
				for range 10 {
					c := admDial(t, w.b, admPeerAddr, 7)
					c.Close() // the watched stack closes first: TIME-WAIT
				}
			},
			state: tcp.TimeWait, n: 10, rule: "time-wait-ports", status: 1,
		},
	}
	for _, tc := range cases {
		t.Run(strings.SplitN(tc.name, ":", 2)[0], func(t *testing.T) {
			w := newAdmWorld(t, tc.opts)
			tc.make(t, w)
			admWaitState(t, w.b, tc.state, tc.n)

			out, status := captureStdout(t, func() int { return runDiagnose([]string{"--admin", w.url}) })
			if status != tc.status {
				t.Errorf("diagnose --admin exit status %d, want %d\n%s", status, tc.status, out)
			}
			if !strings.Contains(out, "TCP sockets (synack)") || !strings.Contains(out, tc.rule) {
				t.Errorf("diagnose --admin output lacks the counts or the %s finding:\n%s", tc.rule, out)
			}

			out, _ = captureStdout(t, func() int { return runDiagnose([]string{"--admin", w.url, "--json"}) })
			var rep diag.Report
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("diagnose --json: %v\n%s", err, out)
			}
			if len(rep.Findings) == 0 || rep.Findings[0].Rule != tc.rule {
				t.Fatalf("findings %+v, want %s first", rep.Findings, tc.rule)
			}
			f := rep.Findings[0]
			if f.Count != tc.n || !strings.Contains(f.Seen, itoa(tc.n)) {
				t.Errorf("finding count %d (seen %q), want %d", f.Count, f.Seen, tc.n)
			}
			// The advice names synack's knobs, not Linux's sysctls.
			advice := strings.Join(f.Do, " ")
			if strings.Contains(advice, "net.ipv4.") || strings.Contains(advice, "net.core.") {
				t.Errorf("advice names sysctls for synack's own connections: %q", advice)
			}
			if rep.Counts[tc.state.String()] != tc.n {
				t.Errorf("counts %v, want %d in %s", rep.Counts, tc.n, tc.state)
			}

			out, status = captureStdout(t, func() int {
				return runSS([]string{"--admin", w.url, "--state", tc.state.String()})
			})
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if status != 0 || len(lines) != tc.n+1 {
				t.Errorf("ss --admin --state %s: status %d, %d lines, want %d rows and a header:\n%s", tc.state, status, len(lines), tc.n, out)
			}
			for _, l := range lines[1:] {
				if !strings.HasPrefix(l, tc.state.String()) {
					t.Errorf("ss row not in %s: %q", tc.state, l)
				}
			}
		})
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestDiagnoseAdminQuiet(t *testing.T) {
	w := newAdmWorld(t, stack.Options{})
	admListen(t, w.b, admWatchAddr, 8080, func(c *stack.TCPConn) { io.Copy(c, c); c.Close() })
	c := admDial(t, w.a, admWatchAddr, 8080)
	defer c.Close()
	out, status := captureStdout(t, func() int { return runDiagnose([]string{"--admin", w.url}) })
	if status != 0 || !strings.Contains(out, "No findings") {
		t.Errorf("a quiet stack: status %d\n%s", status, out)
	}
	// Issue 15: none is an empty list, not null.
	out, status = captureStdout(t, func() int { return runDiagnose([]string{"--admin", w.url, "--json"}) })
	if status != 0 || !strings.Contains(out, `"findings": []`) {
		t.Errorf("diagnose --json on a quiet stack: status %d, want \"findings\": []\n%s", status, out)
	}
	out, status = captureStdout(t, func() int { return runSS([]string{"--admin", w.url, "--json"}) })
	var rows []diag.Row
	if err := json.Unmarshal([]byte(out), &rows); err != nil || status != 0 {
		t.Fatalf("ss --json: %v, status %d\n%s", err, status, out)
	}
	if len(rows) != 2 || rows[0].State != tcp.Listen || rows[1].State != tcp.Established || rows[1].Process != "synack-test" {
		t.Errorf("rows %+v, want the listener and one ESTABLISHED owned by synack-test", rows)
	}
}

func TestAdminErrors(t *testing.T) {
	if _, err := fetchSnapshot("http://127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "synack serve --admin") {
		t.Errorf("nobody listening: %v", err)
	}
	for in, want := range map[string]string{
		"":                     defaultAdminURL,
		":9091":                "http://127.0.0.1:9091",
		"10.0.0.1:9090/":       "http://10.0.0.1:9090",
		"https://example:1/x/": "https://example:1/x",
	} {
		t.Setenv("SYNACK_ADMIN", "")
		if got := adminBase(in); got != want {
			t.Errorf("adminBase(%q) = %q, want %q", in, got, want)
		}
	}
	if a, err := adminListenAddr(":9090"); err != nil || a != "127.0.0.1:9090" {
		t.Errorf("adminListenAddr(:9090) = %q, %v; want loopback", a, err)
	}
	if a, err := adminListenAddr("0.0.0.0:9090"); err != nil || a != "0.0.0.0:9090" {
		t.Errorf("adminListenAddr(0.0.0.0:9090) = %q, %v", a, err)
	}
	if _, err := adminListenAddr("9090"); err == nil {
		t.Error("adminListenAddr(9090): no error")
	}
}

// TestStartAdmin runs the admin server as serve does: tracer hook at
// stack creation, startAdmin on a loopback port, stop at the end.
func TestStartAdmin(t *testing.T) {
	opts := stack.Options{Trace: adminTrace("127.0.0.1:0")}
	if opts.Trace == nil {
		t.Fatal("adminTrace gave no hook")
	}
	s := stack.New(opts)
	defer s.Close()
	if stop, err := startAdmin("", s); err != nil || stop == nil {
		t.Fatalf("startAdmin off: %v", err)
	} else {
		stop()
	}
	stop, err := startAdmin("127.0.0.1:0", s)
	if err != nil {
		t.Fatal(err)
	}
	stop()
}

func TestTraceCommand(t *testing.T) {
	w := newAdmWorld(t, stack.Options{})
	admListen(t, w.b, admWatchAddr, 8080, func(c *stack.TCPConn) {
		io.Copy(io.Discard, c)
		c.Close()
	})
	admListen(t, w.b, admWatchAddr, 9999, w.hold)
	out := &syncBuffer{}
	f, err := admin.ParseTraceFilter([]string{"port", "8080"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- followTrace(ctx, w.url, traceOpts{filter: f}, out) }()
	time.Sleep(100 * time.Millisecond)          // let the client subscribe
	admDial(t, w.a, admWatchAddr, 9999).Close() // filtered out
	c := admDial(t, w.a, admWatchAddr, 8080)
	c.Write([]byte("hello"))
	c.Close()
	// The lifecycle ends with the path of the connection, printed when it
	// reaches CLOSED.
	for !strings.Contains(out.String(), "path: ") && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{
		"synack", "peer", // the header
		"198.18.1.2:8080 ⇄ 198.18.1.1:", // the connection's line
		"◀", "[S] seq 0",                // the SYN received, relative numbers
		"[S.] seq 0 ack 1", "─▶", // the SYN,ACK sent
		"LISTEN → SYN-RECEIVED", "SYN-RECEIVED → ESTABLISHED",
		"len 5",
		"ESTABLISHED → CLOSE-WAIT",
		"path: LISTEN → SYN-RECEIVED → ESTABLISHED → CLOSE-WAIT → LAST-ACK → CLOSED",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("trace output lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, ":9999") {
		t.Errorf("trace shows the filtered-out port:\n%s", text)
	}
	if strings.Contains(text, "CLOSED → LISTEN") {
		t.Errorf("trace shows the child's copy of the listener as a transition:\n%s", text)
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

//go:build linux

package hosttrace

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/synack/synack/link/tun/nstest"
	"github.com/synack/synack/tcp"
	"golang.org/x/sys/unix"
)

// Addresses of loopback inside the test's namespace: tracepoints are
// global, so the test keeps only what involves these (and its port).
var (
	srvAddr = netip.MustParseAddr("127.77.0.1")
	cliAddr = netip.MustParseAddr("127.77.0.2")
)

// freePort picks a port in ns by binding to port 0.
func freePort(t *testing.T, ns *nstest.NS) uint16 {
	t.Helper()
	l, err := ns.Listen("tcp4", srvAddr.String()+":0")
	if err != nil {
		t.Fatal(err)
	}
	p := uint16(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	return p
}

func mine(ev *Event, port uint16) bool {
	ours := func(ap netip.AddrPort) bool { return ap.Addr() == srvAddr || ap.Addr() == cliAddr }
	// A listener's remote end is 0.0.0.0:0.
	return (ev.Local.Port() == port || ev.Remote.Port() == port) && ours(ev.Local) && (ours(ev.Remote) || ev.Remote.Port() == 0)
}

// collect reads the events of port until stop says enough, then another
// 200 ms to catch anything extra, or fails after 5 s.
func collect(t *testing.T, tr *Tracer, port uint16, stop func([]Event) bool) []Event {
	t.Helper()
	return collectAll(t, tr, func(e *Event) bool { return mine(e, port) }, stop)
}

func ladderText(evs []Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "%s %x %v -> %v %s %s->%s\n", e.Kind, e.Sock, e.Local, e.Remote, transition(e), LinuxStateName(e.LinuxFrom), LinuxStateName(e.LinuxTo))
	}
	return b.String()
}

func transition(e Event) string {
	if e.Kind != KindState {
		return e.Kind.String() + "@" + e.To.String()
	}
	return e.From.String() + "->" + e.To.String()
}

// perSock groups the transitions by socket, in order, keyed by the
// socket's role.
func perSock(evs []Event, role func(Event) string) map[string][]string {
	roles := map[uint64]string{}
	out := map[string][]string{}
	for _, e := range evs {
		r, ok := roles[e.Sock]
		if !ok {
			r = role(e)
			roles[e.Sock] = r
		}
		out[r] = append(out[r], transition(e))
	}
	return out
}

func equal(a, b []string) bool {
	return strings.Join(a, ",") == strings.Join(b, ",")
}

func openTracer(t *testing.T, port uint16) *Tracer {
	t.Helper()
	tr, err := Open(Options{Resets: true, Ports: []uint16{port}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		dir := tr.Instance()
		if err := tr.Close(); err != nil {
			t.Error(err)
		}
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("instance %s left behind", dir)
		}
	})
	return tr
}

func dialFrom(ns *nstest.NS, to netip.AddrPort) (c net.Conn, err error) {
	ns.Do(func() {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: cliAddr.AsSlice()}}
		c, err = d.Dial("tcp4", to.String())
	})
	return c, err
}

// TestLifecycle: a handshake, a transfer and a close by the kernel's own
// sockets, the client closing first. What Linux emits (verified on 6.18):
// the client's CLOSE->SYN_SENT (with local port 0 unless the socket was
// bound first: connect picks the port after the tracepoint), SYN_SENT->ESTABLISHED, ESTABLISHED->FIN_WAIT1,
// FIN_WAIT1->FIN_WAIT2 and FIN_WAIT2->CLOSE at once, since a closed
// (orphaned) socket hands TIME-WAIT to a timewait sock, which has no
// tracepoint; the server's child, cloned from the listener, goes
// LISTEN->SYN_RECV (the request sock's TCP_NEW_SYN_RECV is not traced),
// SYN_RECV->ESTABLISHED, ->CLOSE_WAIT, ->LAST_ACK, ->CLOSE.
func TestLifecycle(t *testing.T) {
	ns := nstest.New(t)
	port := freePort(t, ns)
	tr := openTracer(t, port)
	srv := netip.AddrPortFrom(srvAddr, port)
	l, err := ns.Listen("tcp4", srv.String())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- err
			return
		}
		b, err := io.ReadAll(c) // until the client's FIN
		if err == nil && string(b) != "hello" {
			err = fmt.Errorf("server read %q", b)
		}
		c.Close()
		done <- err
	}()
	c, err := dialFrom(ns, srv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	l.Close()
	got := collect(t, tr, port, func(evs []Event) bool { return len(evs) >= 12 })
	role := func(e Event) string {
		switch {
		case e.LinuxTo == linuxListen:
			return "listener"
		case e.LinuxTo == linuxSynSent:
			return "client"
		case e.LinuxFrom == linuxListen && e.LinuxTo == linuxSynRecv:
			return "server"
		}
		return fmt.Sprintf("unexpected %x", e.Sock)
	}
	want := map[string][]string{
		"listener": {"CLOSED->LISTEN", "LISTEN->CLOSED"},
		"client":   {"CLOSED->SYN-SENT", "SYN-SENT->ESTABLISHED", "ESTABLISHED->FIN-WAIT-1", "FIN-WAIT-1->FIN-WAIT-2", "FIN-WAIT-2->CLOSED"},
		"server":   {"LISTEN->SYN-RECEIVED", "SYN-RECEIVED->ESTABLISHED", "ESTABLISHED->CLOSE-WAIT", "CLOSE-WAIT->LAST-ACK", "LAST-ACK->CLOSED"},
	}
	g := perSock(got, role)
	if len(g) != len(want) || !equal(g["listener"], want["listener"]) || !equal(g["client"], want["client"]) || !equal(g["server"], want["server"]) {
		t.Fatalf("transitions:\n%s\nby socket %q\nwant %q", ladderText(got), g, want)
	}
	// Addresses: the client's ESTABLISHED has both ends.
	for _, e := range got {
		if e.Kind == KindState && e.LinuxFrom == linuxSynSent {
			if e.Local.Addr() != cliAddr || e.Remote != srv || e.Local.Port() == 0 {
				t.Errorf("client ESTABLISHED at %v -> %v, want %v -> %v", e.Local, e.Remote, cliAddr, srv)
			}
		}
		if e.Time.IsZero() || time.Since(e.Time) > time.Minute || time.Until(e.Time) > time.Second {
			t.Errorf("event time %v is not now", e.Time)
		}
	}
	if n, err := tr.Lost(); err != nil || n != 0 {
		t.Errorf("Lost() = %d, %v", n, err)
	}
}

// TestReset: the client aborts (SO_LINGER 0): exactly one RST sent, by
// the client in ESTABLISHED, and one received, by the server, which goes
// ESTABLISHED->CLOSE.
func TestReset(t *testing.T) {
	ns := nstest.New(t)
	port := freePort(t, ns)
	tr := openTracer(t, port)
	srv := netip.AddrPortFrom(srvAddr, port)
	l, err := ns.Listen("tcp4", srv.String())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- err
			return
		}
		_, err = c.Read(make([]byte, 1))
		if err == nil || !strings.Contains(err.Error(), "reset") {
			err = fmt.Errorf("server read: %v, want a reset", err)
		} else {
			err = nil
		}
		c.Close()
		done <- err
	}()
	c, err := dialFrom(ns, srv)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the server is in Read
	c.(*net.TCPConn).SetLinger(0)
	c.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := collect(t, tr, port, func(evs []Event) bool {
		n := 0
		for _, e := range evs {
			if e.Kind != KindState {
				n++
			}
		}
		return n >= 2
	})
	var snd, rcv []Event
	for _, e := range got {
		switch e.Kind {
		case KindSendReset:
			snd = append(snd, e)
		case KindReceiveReset:
			rcv = append(rcv, e)
		}
	}
	if len(snd) != 1 || len(rcv) != 1 {
		t.Fatalf("%d RSTs sent, %d received, want 1 and 1:\n%s", len(snd), len(rcv), ladderText(got))
	}
	if s := snd[0]; s.Local.Addr() != cliAddr || s.Remote != srv {
		t.Errorf("RST sent %v -> %v, want from %v to %v", s.Local, s.Remote, cliAddr, srv)
	}
	if r := rcv[0]; r.Local != srv || r.Remote.Addr() != cliAddr {
		t.Errorf("RST received at %v from %v, want at %v", r.Local, r.Remote, srv)
	}
	// The server's socket, which received it, goes ESTABLISHED->CLOSED.
	closedByRST := false
	for _, e := range got {
		if e.Kind == KindState && e.Sock == rcv[0].Sock && e.LinuxFrom == linuxEstablished && e.LinuxTo == linuxClose {
			closedByRST = true
		}
	}
	if !closedByRST {
		t.Errorf("no ESTABLISHED->CLOSED for the socket that received the RST:\n%s", ladderText(got))
	}
}

// TestThroughput generates connection lifecycles on loopback in a
// namespace (HOSTTRACE_N of them, default 5000) and reports transitions
// read per second and events lost, twice: "live", the reader draining
// while the lifecycles run (the rate is then the generator's, on this
// 2-core machine), and "backlog", the reader started only after all of
// them ran (the rate is the reader's own). An aborted lifecycle is 6
// transitions (client CLOSED->SYN-SENT->ESTABLISHED->CLOSED, server
// LISTEN->SYN-RECEIVED->ESTABLISHED->CLOSED) and the listener adds 2: every
// one must be read or counted as lost.
func TestThroughput(t *testing.T) {
	n := 5000
	if s := os.Getenv("HOSTTRACE_N"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	t.Run("live", func(t *testing.T) { throughput(t, n, false, 16384) })
	t.Run("backlog", func(t *testing.T) { throughput(t, n, true, 16384) })
	// A buffer far too small for the backlog: most events are lost, and
	// must be counted.
	t.Run("overflow", func(t *testing.T) {
		if lost := throughput(t, n, true, 64); lost == 0 {
			t.Error("nothing lost with a 64 KB buffer")
		}
	})
}

func throughput(t *testing.T, n int, backlog bool, bufKB int) (lost uint64) {
	ns := nstest.New(t)
	port := freePort(t, ns)
	tr, err := Open(Options{Ports: []uint16{port}, BufferKB: bufKB})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	srv := netip.AddrPortFrom(srvAddr, port)
	l, err := ns.Listen("tcp4", srv.String())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var read, lostMarks int
	var rd sync.WaitGroup
	var readStart, lastRead time.Time
	reader := func() {
		defer rd.Done()
		readStart = time.Now()
		var buf []Event
		for {
			var err error
			buf, err = tr.Next(ctx, buf[:0])
			for i := range buf {
				if buf[i].Kind == KindState && mine(&buf[i], port) {
					read++
					lastRead = time.Now()
				} else if buf[i].Kind == KindLost {
					lostMarks += int(buf[i].Lost)
				}
			}
			if err != nil {
				return
			}
		}
	}
	rd.Add(1)
	if !backlog {
		go reader()
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	start := time.Now()
	limit := start.Add(60 * time.Second)
	const workers = 8
	var wg sync.WaitGroup
	var made sync.Mutex
	done := 0
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(limit) {
				made.Lock()
				if done == n {
					made.Unlock()
					return
				}
				done++
				made.Unlock()
				c, err := dialFrom(ns, srv)
				if err != nil {
					t.Error(err)
					return
				}
				c.(*net.TCPConn).SetLinger(0) // an abort: no TIME-WAIT pile-up on the client's ports
				c.Write([]byte("x"))
				c.Close()
			}
		}()
	}
	wg.Wait()
	gen := time.Since(start)
	time.Sleep(300 * time.Millisecond) // the servers' closes
	l.Close()
	time.Sleep(200 * time.Millisecond)
	if backlog {
		go reader()
		time.Sleep(2 * time.Second)
	} else {
		time.Sleep(300 * time.Millisecond)
	}
	cancel()
	rd.Wait()
	lost, err = tr.Lost()
	if err != nil {
		t.Fatal(err)
	}
	span := gen
	if backlog {
		span = lastRead.Sub(readStart)
	}
	t.Logf("%d lifecycles generated in %v; %d transitions read in %v (%.0f/s), %d lost (stats), %d lost (page markers)",
		done, gen.Round(time.Millisecond), read, span.Round(time.Millisecond), float64(read)/span.Seconds(), lost, lostMarks)
	want := 6*done + 2
	if read > want || uint64(read)+lost < uint64(want) {
		t.Errorf("%d transitions read and %d lost, want %d in all", read, lost, want)
	}
	return lost
}

// TestRetransmit: a listener whose accept queue is full (backlog 0, one
// connection never accepted) drops the next SYN, so its client
// retransmits it once after the initial RTO of 1 s (RFC 6298 2.1, Linux's
// TCP_TIMEOUT_INIT) before its user timeout ends it at 1.6 s: exactly one
// tcp_retransmit_skb, from that client's socket in SYN-SENT.
func TestRetransmit(t *testing.T) {
	ns := nstest.New(t)
	port := freePort(t, ns)
	tr, err := Open(Options{Retransmits: true, Ports: []uint16{port}})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	srv := netip.AddrPortFrom(srvAddr, port)
	var lfd int
	ns.Do(func() {
		if lfd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return
		}
		if err = unix.Bind(lfd, &unix.SockaddrInet4{Port: int(port), Addr: srvAddr.As4()}); err != nil {
			return
		}
		err = unix.Listen(lfd, 0)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(lfd)
	first, err := dialFrom(ns, srv)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	var second net.Conn
	ns.Do(func() {
		// TCP_USER_TIMEOUT 1.6 s: the kernel itself gives up at 1.6 s
		// (RFC 5482), so a late wake-up of the dial's own timer on a
		// loaded machine cannot let a second retransmission through
		// (Linux 6.7+ retransmits SYNs at 1 s intervals,
		// tcp_syn_linear_timeouts; TCP_SYNCNT 1 still allows two).
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: cliAddr.AsSlice()}, Timeout: 10 * time.Second,
			Control: func(_, _ string, c syscall.RawConn) error {
				var serr error
				if err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, 1600) }); err != nil {
					return err
				}
				return serr
			}}
		second, err = d.Dial("tcp4", srv.String())
	})
	if err == nil {
		second.Close()
		t.Fatal("the second dial succeeded: the accept queue was not full")
	}
	got := collect(t, tr, port, func(evs []Event) bool {
		for _, e := range evs {
			if e.Kind == KindRetransmit {
				return true
			}
		}
		return false
	})
	var rtx []Event
	for _, e := range got {
		if e.Kind == KindRetransmit {
			rtx = append(rtx, e)
		}
	}
	if len(rtx) != 1 || rtx[0].To != tcp.SynSent || rtx[0].Remote != srv || rtx[0].Local.Addr() != cliAddr || rtx[0].Sock == 0 {
		t.Fatalf("retransmissions: %+v, want one SYN from %v to %v\n%s", rtx, cliAddr, srv, ladderText(got))
	}
}

// Linux's TCP states (include/net/tcp_states.h), as the events carry them.
const (
	linuxEstablished = 1 + iota
	linuxSynSent
	linuxSynRecv
	linuxFinWait1
	linuxFinWait2
	linuxTimeWait
	linuxClose
	linuxCloseWait
	linuxLastAck
	linuxListen
	linuxClosing
	linuxNewSynRecv
)

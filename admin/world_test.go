package admin_test

import (
	"context"
	"io"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/synack/synack/admin"
	"github.com/synack/synack/clock"
	"github.com/synack/synack/stack"
	"github.com/synack/synack/stacktest"
	"github.com/synack/synack/tcp"
)

// addrB is the address of b, the stack under watch.
var addrB = stacktest.AddrB

// world is two stacks on a memlink pipe, on the real clock: a, the peer,
// and b, the stack under watch, served by an admin server.
type world struct {
	a, b     *stack.Stack
	tr       *admin.Tracer
	srv      *admin.Server
	ts       *httptest.Server
	accepted chan *stack.TCPConn
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{tr: admin.NewTracer(), accepted: make(chan *stack.TCPConn, 64)}
	n := stacktest.Pair(t, stacktest.WithClock(clock.Real()), stacktest.IPv4Only(),
		stacktest.WithStacks(stack.Options{}, stack.Options{Trace: w.tr.Hook}))
	w.a, w.b = n.A, n.B
	w.srv = admin.Handler(w.b, admin.Options{Tracer: w.tr, NoProcessMetrics: true, Process: "testapp"})
	w.ts = httptest.NewServer(w.srv)
	t.Cleanup(func() {
		w.srv.Close() // ends the streaming responses
		w.ts.Close()
		// The stacks close after this: stacktest's cleanup came first.
	})
	return w
}

// listen listens on b:port and accepts into w.accepted.
func (w *world) listen(t *testing.T, port uint16) *stack.Listener {
	t.Helper()
	l, err := w.b.ListenTCP(netip.AddrPortFrom(addrB, port), 0)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.AcceptTCP()
			if err != nil {
				return
			}
			w.accepted <- c
		}
	}()
	return l
}

// connect dials b:port from a and returns both ends.
func (w *world) connect(t *testing.T, port uint16) (client, server *stack.TCPConn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := w.a.DialTCP(ctx, netip.AddrPortFrom(addrB, port))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	select {
	case s := <-w.accepted:
		return c, s
	case <-ctx.Done():
		t.Fatal("accept: timed out")
	}
	return nil, nil
}

// scenario leaves b with a listener on 80, one ESTABLISHED connection,
// closeWait connections in CLOSE-WAIT (the peer closed, b's application
// never does) and one in TIME-WAIT (b closed first). It returns the
// state counts to expect.
func (w *world) scenario(t *testing.T, closeWait int) map[tcp.State]int {
	t.Helper()
	w.listen(t, 80)
	w.connect(t, 80) // stays ESTABLISHED
	for range closeWait {
		c, _ := w.connect(t, 80)
		c.Close()
	}
	c, s := w.connect(t, 80)
	s.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("client read until the server's FIN: %v", err)
	}
	c.Close()
	want := map[tcp.State]int{tcp.Listen: 1, tcp.Established: 1, tcp.CloseWait: closeWait, tcp.TimeWait: 1}
	waitStates(t, w.b, want)
	return want
}

// waitStates waits until s's state counts are want.
func waitStates(t *testing.T, s *stack.Stack, want map[tcp.State]int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := s.StateCounts()
		if equalCounts(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("state counts %v, want %v", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func equalCounts(a, b map[tcp.State]int) bool {
	for _, s := range tcp.States() {
		if a[s] != b[s] {
			return false
		}
	}
	return true
}

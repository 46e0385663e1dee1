package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/synack/synack/link"
	"github.com/synack/synack/link/memlink"
	"github.com/synack/synack/stack"
	"github.com/synack/synack/tcp"
)

// The serve tests run serve's handlers on a stack joined to a client stack
// by an in-memory link, inside a synctest bubble: deadlines, keep-alive
// and the idle timeout run in virtual time. TestServe (tun_cmd_test.go)
// runs the command itself over TUN.

var (
	serveClientAddr = netip.MustParseAddr("198.18.5.1")
	serveStackAddr  = netip.MustParseAddr("198.18.5.2")
)

// cutLink is a link end that can be unplugged: after cut, nothing it is
// given is sent and nothing arriving is delivered, as when a peer's host
// vanishes without a FIN or RST.
type cutLink struct {
	link.Endpoint
	cut  atomic.Bool
	deaf atomic.Bool // deliver nothing, but send: handshakes stay half-open
}

func (c *cutLink) WritePackets(pkts [][]byte) (int, error) {
	if c.cut.Load() {
		return len(pkts), nil
	}
	return c.Endpoint.WritePackets(pkts)
}

func (c *cutLink) Attach(d link.Dispatcher) {
	c.Endpoint.Attach(link.DispatcherFunc(func(pkt []byte) {
		if !c.cut.Load() && !c.deaf.Load() {
			d.DeliverPacket(pkt)
		}
	}))
}

// serveNet is a client stack and a server stack (the one serve runs) on
// one link; the client's end can be cut.
type serveNet struct {
	client, server *stack.Stack
	clientLink     *cutLink
}

func newServeNet(t *testing.T, client, server stack.Options) *serveNet {
	t.Helper()
	// A queue deep enough for the largest burst a test makes (5,000
	// SYNs at one instant): memlink's default of 1,000 packets in flight
	// would drop the tail of it.
	deep := memlink.Impairments{QueueLimit: 16 << 10}
	ea, eb := memlink.Pipe(memlink.Config{AB: deep, BA: deep})
	n := &serveNet{client: stack.New(client), server: stack.New(server), clientLink: &cutLink{Endpoint: ea}}
	if _, err := n.client.AddLink(n.clientLink, netip.PrefixFrom(serveClientAddr, 24)); err != nil {
		t.Fatal(err)
	}
	if _, err := n.server.AddLink(eb, netip.PrefixFrom(serveStackAddr, 24)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.client.Close()
		n.server.Close()
	})
	return n
}

// serve starts srv's handler on port; it returns the server, shut down at
// the end of the test.
func (n *serveNet) serve(t *testing.T, idle time.Duration, port uint16, handler func(*server) func(*stack.TCPConn)) *server {
	t.Helper()
	srv := newServer(n.server, idle)
	l, err := n.server.ListenTCP(netip.AddrPortFrom(serveStackAddr, port), 1024)
	if err != nil {
		t.Fatal(err)
	}
	srv.serveStream(l, handler(srv))
	t.Cleanup(srv.shutdown)
	return srv
}

func (n *serveNet) dial(t *testing.T, port uint16) *stack.TCPConn {
	t.Helper()
	c, err := n.client.DialTCP(context.Background(), netip.AddrPortFrom(serveStackAddr, port))
	if err != nil {
		t.Fatalf("dial port %d: %v", port, err)
	}
	return c
}

// serverConns returns the server stack's connections on port, listener
// left out.
func (n *serveNet) serverConns(port uint16) []stack.ConnInfo {
	var out []stack.ConnInfo
	for _, c := range n.server.Connections() {
		if c.Tuple.Local.Port() == port && c.State != tcp.Listen {
			out = append(out, c)
		}
	}
	return out
}

func echoHandler(s *server) func(*stack.TCPConn)    { return s.echo }
func discardHandler(s *server) func(*stack.TCPConn) { return s.discard }

// An echo or discard connection on which the peer sends nothing for
// --idle-timeout is closed by the server (FIN: the client reads EOF);
// activity in between pushes the timeout back.
func TestServeIdleTimeout(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler func(*server) func(*stack.TCPConn)
		echoes  bool
	}{{"echo", echoHandler, true}, {"discard", discardHandler, false}} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const idle = 2 * time.Minute
				n := newServeNet(t, stack.Options{}, stack.Options{})
				n.serve(t, idle, 7, tc.handler)
				c := n.dial(t, 7)
				defer c.Close()
				buf := make([]byte, 64)
				// Some traffic every minute for five minutes: more
				// than the timeout in all, less between two sends.
				for range 5 {
					if _, err := c.Write([]byte("ping")); err != nil {
						t.Fatal(err)
					}
					if tc.echoes {
						c.SetReadDeadline(time.Now().Add(time.Second))
						if k, err := io.ReadFull(c, buf[:4]); err != nil || string(buf[:k]) != "ping" {
							t.Fatalf("echo: %q, %v", buf[:k], err)
						}
					}
					time.Sleep(time.Minute)
				}
				if got := len(n.serverConns(7)); got != 1 {
					t.Fatalf("after 5 minutes of a send a minute: %d server connections, want 1", got)
				}
				// Now quiet: the server closes at idle after the last send.
				start := time.Now()
				c.SetReadDeadline(start.Add(10 * time.Minute))
				k, err := c.Read(buf)
				waited := time.Since(start) + time.Minute // the last send was a minute before start
				if err != io.EOF {
					t.Fatalf("quiet connection: read %d bytes, %v; want EOF from the server's close", k, err)
				}
				if waited < idle || waited > idle+time.Second {
					t.Errorf("server closed %v after the last send, want %v", waited, idle)
				}
				c.Close()
				time.Sleep(3 * time.Minute) // the server's side through its close
				if got := n.serverConns(7); len(got) != 0 {
					t.Errorf("server connections left: %+v", got)
				}
			})
		})
	}
}

// With --idle-timeout 0 an idle connection stays, and keep-alive is what
// finds a peer that vanished: the server resets the connection after
// serveKeepAlive's idle time and unanswered probes.
func TestServeKeepAlive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newServeNet(t, stack.Options{}, stack.Options{})
		n.serve(t, 0, 9, discardHandler)
		c := n.dial(t, 9)
		defer c.Close()
		time.Sleep(30 * time.Minute)
		if got := len(n.serverConns(9)); got != 1 {
			t.Fatalf("idle 30 minutes with the timeout off and the peer alive: %d server connections, want 1", got)
		}
		n.clientLink.cut.Store(true)
		start := time.Now()
		giveUp := serveKeepAlive.Idle + time.Duration(serveKeepAlive.Count)*serveKeepAlive.Interval
		for len(n.serverConns(9)) > 0 && time.Since(start) < 10*time.Minute {
			time.Sleep(time.Second)
		}
		if left := n.serverConns(9); len(left) != 0 {
			t.Fatalf("peer gone 10 minutes and the server still has %+v", left)
		}
		if took := time.Since(start); took > giveUp+time.Second {
			t.Errorf("server dropped the vanished peer after %v, want at most %v", took, giveUp)
		}
		if got := n.server.Counters().TCP.EstabResets; got != 1 {
			t.Errorf("EstabResets %d, want 1 (keep-alive gave up)", got)
		}
	})
}

// 200 clients send to echo and never read. What the server holds is
// bounded by its buffers per connection (--buffer for the send buffer full
// of echo, as much for the receive buffer, one copy chunk), and all of it
// goes when the write has made no progress for --idle-timeout: the server
// resets those connections.
func TestServeEchoNeverReading(t *testing.T) {
	const clients = 200
	idle := time.Minute
	bufSize := defaultServeBuffer
	if s := os.Getenv("SYNACK_SERVE_TEST_BUFFER"); s != "" {
		// For measuring other sizes by hand; larger buffers take longer
		// (in virtual time) to fill than a minute.
		if _, err := fmt.Sscan(s, &bufSize); err != nil {
			t.Fatal(err)
		}
		idle = 10 * time.Minute
	}
	synctest.Test(t, func(t *testing.T) {
		// The clients' buffers are small, so the heap measured is
		// mostly the server's.
		small := tcp.Config{SendBufferSize: 16 << 10, ReceiveBufferSize: 16 << 10}
		// The server's receive window is the whole --buffer from the
		// start (NoAutoTune): the worst case for what it holds. With
		// auto-tuning, a peer the echo cannot answer never grows it.
		n := newServeNet(t, stack.Options{TCP: small}, stack.Options{TCP: tcp.Config{SendBufferSize: bufSize, ReceiveBufferSize: bufSize, NoAutoTune: true}})
		n.serve(t, idle, 7, echoHandler)
		heapBefore := heapInUse()
		// Each client sends a little less than twice --buffer: enough
		// to fill most of both of the server's buffers and leave its
		// echo blocked in Write, not so much that the client's own Write
		// waits for window.
		var wg sync.WaitGroup
		var sent atomic.Int64
		var cs []*stack.TCPConn
		for range clients {
			c := n.dial(t, 7)
			cs = append(cs, c)
			wg.Go(func() {
				k, err := c.Write(make([]byte, 2*bufSize-64<<10))
				sent.Add(int64(k))
				if err != nil {
					t.Errorf("client write: %v", err)
				}
			})
		}
		wg.Wait()
		synctest.Wait() // every writer blocked: windows closed all the way
		conns := n.serverConns(7)
		if len(conns) != clients {
			t.Fatalf("%d server connections, want %d", len(conns), clients)
		}
		held := 0
		for _, c := range conns {
			q := c.Info.SendQueue + c.Info.RecvQueue
			if q > 2*bufSize {
				t.Errorf("%v holds %d bytes queued, more than twice --buffer (%d)", c.Tuple, q, bufSize)
			}
			held += q
		}
		heap := heapInUse() - heapBefore
		t.Logf("%d never-reading echo clients, --buffer %d: sent %d MiB, server queues %d MiB, heap in use +%d MiB (both stacks)",
			clients, bufSize, sent.Load()>>20, held>>20, heap>>20)
		if held < clients*bufSize {
			t.Errorf("server queues hold %d bytes, want at least %d: did the clients fill them?", held, clients*bufSize)
		}

		time.Sleep(idle + time.Second)
		if left := n.serverConns(7); len(left) != 0 {
			t.Errorf("%d server connections left after the write timeout", len(left))
		}
		// The server's RST reaches the client although the client's
		// window is closed and the server probed it: it carries an
		// acceptable sequence number (tcp_acceptable_seq's rule).
		synctest.Wait()
		for _, c := range cs {
			if st := c.State(); st != tcp.Closed {
				t.Errorf("never-reading client after the server's write timeout: %v, want CLOSED (reset)", st)
				break
			}
		}
		t.Logf("after the write timeout: heap in use +%d MiB", (heapInUse()-heapBefore)>>20)
	})
}

func heapInUse() int {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int(ms.HeapInuse)
}

// With thousands of connections, half of them half-open as in a SYN
// flood, the status page lists the first statusRows, counts all of them by
// state and links to the admin API: one GET stays a few kilobytes.
func TestServeStatusPageBounded(t *testing.T) {
	const conns = 5000
	synctest.Test(t, func(t *testing.T) {
		n := newServeNet(t, stack.Options{}, stack.Options{})
		l, err := n.server.ListenTCP(netip.AddrPortFrom(serveStackAddr, 80), conns)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		for range conns / 2 {
			n.dial(t, 80) // established, left in the accept queue
		}
		// The other half never hear the SYN,ACK: SYN-RECEIVED on the
		// server until the client stack closes at the end.
		n.clientLink.deaf.Store(true)
		for range conns / 2 {
			go n.client.DialTCP(context.Background(), netip.AddrPortFrom(serveStackAddr, 80))
		}
		synctest.Wait()
		if got := n.server.StateCounts()[tcp.SynReceived]; got != conns/2 {
			t.Fatalf("%d connections in SYN-RECEIVED, want %d; server states %v, client states %v", got, conns/2,
				n.server.StateCounts(), n.client.StateCounts())
		}
		const api = "http://127.0.0.1:9090/api/connections"
		get := func(p *statusPage, accept string) string {
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.Header.Set("Accept", accept)
			w := httptest.NewRecorder()
			p.ServeHTTP(w, req)
			return w.Body.String()
		}
		for _, accept := range []string{"text/html", "*/*"} {
			page := get(&statusPage{s: n.server, rows: statusRows, api: api}, accept)
			all := get(&statusPage{s: n.server, rows: conns + 1, api: api}, accept)
			t.Logf("Accept %s: page of %d connections is %d bytes with %d rows, %d bytes with all rows", accept, conns+1, len(page), statusRows, len(all))
			if len(page) > 32<<10 {
				t.Errorf("Accept %s: page is %d bytes, want at most 32 KiB", accept, len(page))
			}
			for _, want := range []string{"All connections (5001)", "ESTABLISHED", "SYN-RECEIVED", "2500", "LISTEN", api, "4901 more"} {
				if !strings.Contains(page, want) {
					t.Errorf("Accept %s: page does not say %q:\n%s", accept, want, page[:min(len(page), 2000)])
				}
			}
			if rows := strings.Count(page, "198.18.5.2:80"); rows != statusRows {
				t.Errorf("Accept %s: %d rows, want %d", accept, rows, statusRows)
			}
		}
		// Without --admin the page says how to get the rest.
		if page := get(&statusPage{s: n.server, rows: statusRows}, "*/*"); !strings.Contains(page, "--admin") {
			t.Errorf("page without the admin API does not mention --admin:\n%s", page[:min(len(page), 2000)])
		}
	})
}

func TestAdminAPIURL(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:9090": "http://127.0.0.1:9090/api/connections",
		"0.0.0.0:9090":   "http://127.0.0.1:9090/api/connections",
		"[::]:9090":      "http://127.0.0.1:9090/api/connections",
		"[fd00::1]:80":   "http://[fd00::1]:80/api/connections",
	} {
		if got := adminAPIURL(in); got != want {
			t.Errorf("adminAPIURL(%q) = %q, want %q", in, got, want)
		}
	}
}

//go:build linux

package interop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/synack/synack/link/tun/nstest"
	"github.com/synack/synack/stack"
	"github.com/synack/synack/tcp"
)

const bulkSize = 64 << 20

// connect returns an established pair: the kernel's end and synack's end.
// kernelDials says who opens.
func (e *env) connect(ctx context.Context, kernelDials bool) (*net.TCPConn, *stack.TCPConn) {
	e.t.Helper()
	if kernelDials {
		l := e.stackListen(0)
		type acc struct {
			c   *stack.TCPConn
			err error
		}
		ch := make(chan acc, 1)
		go func() {
			c, err := l.AcceptTCP()
			ch <- acc{c, err}
		}()
		kc, err := e.kernelDial(ctx, e.fam.stackAddr(l.AddrPort().Port()))
		if err != nil {
			e.t.Fatalf("kernel dial synack: %v", err)
		}
		a := <-ch
		if a.err != nil {
			e.t.Fatalf("synack Accept: %v", a.err)
		}
		l.Close()
		return kc, a.c
	}
	l := e.kernelListen()
	type acc struct {
		c   net.Conn
		err error
	}
	ch := make(chan acc, 1)
	go func() {
		c, err := l.Accept()
		ch <- acc{c, err}
	}()
	sc, err := e.s.DialTCP(ctx, netip.MustParseAddrPort(l.Addr().String()))
	if err != nil {
		e.t.Fatalf("synack dial kernel: %v", err)
	}
	a := <-ch
	if a.err != nil {
		e.t.Fatalf("kernel Accept: %v", a.err)
	}
	l.Close()
	return a.c.(*net.TCPConn), sc
}

func dialerName(kernelDials bool) string {
	if kernelDials {
		return "kernel-dials-synack"
	}
	return "synack-dials-kernel"
}

// TestBulk moves 64 MiB each way at once over one connection, for both
// families and both openers, and compares SHA-256 sums.
func TestBulk(t *testing.T) {
	for _, fam := range families {
		for _, kernelDials := range []bool{true, false} {
			t.Run(fam.name+"/"+dialerName(kernelDials), func(t *testing.T) {
				e := newEnv(t, fam)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				kc, sc := e.connect(ctx, kernelDials)
				defer kc.Close()
				defer sc.Close()
				deadline := time.Now().Add(90 * time.Second)
				kc.SetDeadline(deadline)
				sc.SetDeadline(deadline)

				start := time.Now()
				var ks, kr, ss, sr result
				var wg sync.WaitGroup
				wg.Add(2)
				go func() { defer wg.Done(); ks, kr = duplex(kc, 1, bulkSize) }()
				go func() { defer wg.Done(); ss, sr = duplex(sc, 2, bulkSize) }()
				wg.Wait()
				elapsed := time.Since(start)

				for _, r := range []struct {
					what string
					r    result
				}{{"kernel send", ks}, {"kernel receive", kr}, {"synack send", ss}, {"synack receive", sr}} {
					if r.r.err != nil {
						t.Errorf("%s: %v", r.what, r.r.err)
					}
				}
				if kr.n != bulkSize || sr.n != bulkSize {
					t.Errorf("received kernel %d, synack %d bytes; want %d each", kr.n, sr.n, bulkSize)
				}
				if ks.sum != sr.sum {
					t.Errorf("kernel -> synack: sha256 sent %x, received %x", ks.sum[:8], sr.sum[:8])
				}
				if ss.sum != kr.sum {
					t.Errorf("synack -> kernel: sha256 sent %x, received %x", ss.sum[:8], kr.sum[:8])
				}
				mbps := float64(2*bulkSize) / elapsed.Seconds() / 1e6
				info := sc.Info()
				t.Logf("64 MiB each way in %v: %.0f MB/s both directions together (synack retransmitted %d segments; MSS %d, cwnd %d)",
					elapsed.Round(time.Millisecond), mbps, e.s.Counters().TCP.RetransSegs, info.MSS, info.CWnd)
			})
		}
	}
}

// TestHalfClose: one side sends and half-closes, the other reads to EOF,
// then answers after the FIN and closes; both ways, both openers.
func TestHalfClose(t *testing.T) {
	for _, fam := range families {
		for _, kernelDials := range []bool{true, false} {
			for _, synackFirst := range []bool{true, false} {
				first := "kernel-FIN-first"
				if synackFirst {
					first = "synack-FIN-first"
				}
				t.Run(fam.name+"/"+dialerName(kernelDials)+"/"+first, func(t *testing.T) {
					e := newEnv(t, fam, withEvents())
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					kc, sc := e.connect(ctx, kernelDials)
					defer kc.Close()
					defer sc.Close()
					deadline := time.Now().Add(10 * time.Second)
					kc.SetDeadline(deadline)
					sc.SetDeadline(deadline)

					var a, b halfCloser = kc, sc // a closes first
					aName, bName := "kernel", "synack"
					if synackFirst {
						a, b, aName, bName = sc, kc, "synack", "kernel"
					}
					req := []byte("request from " + aName + ", then FIN")
					resp := []byte(strings.Repeat("answer from "+bName+" after the FIN; ", 4000)) // > one window's worth of segments
					if _, err := a.Write(req); err != nil {
						t.Fatalf("%s Write: %v", aName, err)
					}
					if err := a.CloseWrite(); err != nil {
						t.Fatalf("%s CloseWrite: %v", aName, err)
					}
					got, err := io.ReadAll(b)
					if err != nil || !bytes.Equal(got, req) {
						t.Fatalf("%s read %q, %v; want %q then EOF", bName, got, err, req)
					}
					if synackFirst {
						// The kernel's ACK of our FIN may arrive after its
						// read saw EOF.
						if err := e.waitEvent(sc.Tuple(), tcp.FinWait2, 5*time.Second); err != nil {
							t.Errorf("synack after its FIN: %v", err)
						}
					} else if st := sc.State(); st != tcp.CloseWait {
						t.Errorf("synack state after the kernel's FIN: %v, want CLOSE-WAIT", st)
					}
					if _, err := b.Write(resp); err != nil {
						t.Fatalf("%s Write after peer's FIN: %v", bName, err)
					}
					if err := b.Close(); err != nil {
						t.Fatalf("%s Close: %v", bName, err)
					}
					got, err = io.ReadAll(a)
					if err != nil || !bytes.Equal(got, resp) {
						t.Fatalf("%s read %d bytes, %v; want %d bytes then EOF", aName, len(got), err, len(resp))
					}
				})
			}
		}
	}
}

// TestRefused: connecting to a port nobody listens on is refused, both
// ways.
func TestRefused(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.name+"/kernel-dials-synack", func(t *testing.T) {
			e := newEnv(t, fam)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := e.kernelDial(ctx, fam.stackAddr(9))
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatalf("kernel dial to a closed synack port: %v, want ECONNREFUSED", err)
			}
			if c := e.s.Counters().TCP; c.OutRsts < 1 {
				t.Errorf("synack OutRsts = %d, want >= 1", c.OutRsts)
			}
		})
		t.Run(fam.name+"/synack-dials-kernel", func(t *testing.T) {
			e := newEnv(t, fam)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := e.s.DialTCP(ctx, fam.kernelAddr(9))
			if err == nil {
				c.Close()
			}
			var oe *net.OpError
			if !errors.Is(err, syscall.ECONNREFUSED) || !errors.As(err, &oe) {
				t.Fatalf("synack dial to a closed kernel port: %v, want a *net.OpError wrapping ECONNREFUSED", err)
			}
		})
	}
}

// TestAbort: a close with linger 0 sends RST; the other side's read says
// connection reset. Both ways.
func TestAbort(t *testing.T) {
	for _, fam := range families {
		for _, synackAborts := range []bool{true, false} {
			name := "kernel-aborts"
			if synackAborts {
				name = "synack-aborts"
			}
			t.Run(fam.name+"/"+name, func(t *testing.T) {
				e := newEnv(t, fam)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				kc, sc := e.connect(ctx, !synackAborts)
				defer kc.Close()
				defer sc.Close()
				deadline := time.Now().Add(10 * time.Second)
				kc.SetDeadline(deadline)
				sc.SetDeadline(deadline)

				// Some data first, so the reset hits a connection in use.
				if _, err := kc.Write([]byte("ping")); err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, 4)
				if _, err := io.ReadFull(sc, buf); err != nil {
					t.Fatal(err)
				}

				var victim net.Conn
				var err error
				if synackAborts {
					if err := sc.SetLinger(0); err != nil {
						t.Fatal(err)
					}
					if err := sc.Close(); err != nil {
						t.Fatalf("synack Close with linger 0: %v", err)
					}
					victim = kc
				} else {
					if err := kc.SetLinger(0); err != nil {
						t.Fatal(err)
					}
					if err := kc.Close(); err != nil {
						t.Fatalf("kernel Close with linger 0: %v", err)
					}
					victim = sc
				}
				_, err = victim.Read(buf)
				if !errors.Is(err, syscall.ECONNRESET) {
					t.Fatalf("read after the peer's RST: %v, want ECONNRESET", err)
				}
				if synackAborts {
					if c := e.s.Counters().TCP; c.OutRsts < 1 {
						t.Errorf("synack OutRsts = %d, want >= 1", c.OutRsts)
					}
				} else if st := sc.State(); st != tcp.Closed {
					t.Errorf("synack state after RST: %v, want CLOSED", st)
				}
			})
		}
	}
}

const shortConns = 2000

// TestShortConnections opens 2,000 connections in a row, each exchanging
// a request and an answer, with the active closer alternating between
// synack and the kernel; afterwards exactly the active closer of each is
// in TIME-WAIT: synack's from its connection table, the kernel's read back
// from /proc/net/tcp{,6} in the namespace. Both families, both openers.
func TestShortConnections(t *testing.T) {
	for _, fam := range families {
		for _, kernelDials := range []bool{true, false} {
			t.Run(fam.name+"/"+dialerName(kernelDials), func(t *testing.T) {
				e := newEnv(t, fam, withEvents())
				var sl *stack.Listener
				var kl net.Listener
				if kernelDials {
					sl = e.stackListen(0)
				} else {
					kl = e.kernelListen()
				}
				ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
				defer cancel()
				// want[tuple as synack sees it] = true if synack closes first.
				want := make(map[tcp.Tuple]bool, shortConns)
				start := time.Now()
				for n := range shortConns {
					synackCloses := n%2 == 0
					var kc net.Conn
					var sc *stack.TCPConn
					var err error
					if kernelDials {
						kc, err = e.kernelDial(ctx, fam.stackAddr(sl.AddrPort().Port()))
						if err != nil {
							t.Fatalf("connection %d: kernel dial: %v", n, err)
						}
						sc, err = sl.AcceptTCP()
					} else {
						sc, err = e.s.DialTCP(ctx, netip.MustParseAddrPort(kl.Addr().String()))
						if err != nil {
							t.Fatalf("connection %d: synack dial: %v", n, err)
						}
						kc, err = kl.Accept()
					}
					if err != nil {
						t.Fatalf("connection %d: accept: %v", n, err)
					}
					id := sc.Tuple()
					deadline := time.Now().Add(10 * time.Second)
					kc.SetDeadline(deadline)
					sc.SetDeadline(deadline)
					if err := exchange(kc, sc, synackCloses); err != nil {
						t.Fatalf("connection %d (%v, synack closes first: %v): %v", n, id, synackCloses, err)
					}
					// Wait until the closing handshake is over as synack sees
					// it: its TIME-WAIT, or LAST-ACK -> CLOSED, which also means
					// the kernel got our FIN and sits in TIME-WAIT.
					if synackCloses {
						err = e.waitEvent(id, tcp.TimeWait, 10*time.Second)
					} else {
						err = e.waitEvent(id, tcp.Closed, 10*time.Second)
					}
					if err != nil {
						t.Fatalf("connection %d: %v", n, err)
					}
					want[id] = synackCloses
				}
				elapsed := time.Since(start)

				synackTW := map[tcp.Tuple]bool{}
				for _, c := range e.s.Connections() {
					if c.State == tcp.TimeWait {
						synackTW[c.Tuple] = true
					}
				}
				socks, err := e.ns.TCPSockets()
				if err != nil {
					t.Fatalf("reading the kernel's sockets: %v", err)
				}
				kernelTW := map[tcp.Tuple]bool{}
				for _, s := range socks {
					if s.State == nstest.TCPTimeWait {
						// The kernel's local end is synack's remote.
						kernelTW[tcp.Tuple{Local: s.Remote, Remote: s.Local}] = true
					}
				}
				bad := 0
				for id, synackCloses := range want {
					inS, inK := synackTW[id], kernelTW[id]
					if inS != synackCloses || inK != !synackCloses {
						if bad++; bad <= 5 {
							t.Errorf("%v: synack closed first: %v; in TIME-WAIT: synack %v, kernel %v", id, synackCloses, inS, inK)
						}
					}
				}
				if bad > 5 {
					t.Errorf("... %d connections in all with TIME-WAIT on the wrong side", bad)
				}
				counts := e.s.StateCounts()
				t.Logf("%d connections in %v (%.0f/s); TIME-WAIT: synack %d, kernel %d; distinct tuples %d; synack state counts %v",
					shortConns, elapsed.Round(time.Millisecond), shortConns/elapsed.Seconds(), len(synackTW), len(kernelTW), len(want), counts)
				if len(want) == shortConns && (len(synackTW) != shortConns/2 || len(kernelTW) != shortConns/2) {
					t.Errorf("TIME-WAIT counts: synack %d, kernel %d; want %d each", len(synackTW), len(kernelTW), shortConns/2)
				}
			})
		}
	}
}

// exchange runs one short request/answer and the close, synack or the
// kernel sending FIN first.
func exchange(kc net.Conn, sc *stack.TCPConn, synackCloses bool) error {
	if _, err := kc.Write([]byte("ping")); err != nil {
		return fmt.Errorf("kernel write: %w", err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(sc, buf); err != nil {
		return fmt.Errorf("synack read: %w", err)
	}
	if _, err := sc.Write([]byte("pong")); err != nil {
		return fmt.Errorf("synack write: %w", err)
	}
	if _, err := io.ReadFull(kc, buf); err != nil {
		return fmt.Errorf("kernel read: %w", err)
	}
	var first, second net.Conn = kc, sc
	if synackCloses {
		first, second = sc, kc
	}
	if err := first.Close(); err != nil {
		return fmt.Errorf("first close: %w", err)
	}
	if n, err := second.Read(buf); err != io.EOF {
		return fmt.Errorf("read after the peer's FIN: %d bytes, %v; want EOF", n, err)
	}
	if err := second.Close(); err != nil {
		return fmt.Errorf("second close: %w", err)
	}
	return nil
}

// TestHTTP: net/http's server on synack answers the kernel's http.Client,
// and synack's http.Client gets answers from net/http on the kernel.
func TestHTTP(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/hello":
			fmt.Fprintf(w, "hello %s from %s", r.RemoteAddr, r.Host)
		case "/echo":
			io.Copy(w, r.Body)
		default:
			http.NotFound(w, r)
		}
	})
	check := func(t *testing.T, c *http.Client, base string) {
		t.Helper()
		for range 3 { // keep-alive reuses the connection
			resp, err := c.Get(base + "/hello")
			if err != nil {
				t.Fatalf("GET /hello: %v", err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 || !strings.HasPrefix(string(b), "hello ") {
				t.Fatalf("GET /hello: %d %q %v", resp.StatusCode, b, err)
			}
		}
		resp, err := c.Post(base+"/echo", "application/octet-stream", bytes.NewReader(body))
		if err != nil {
			t.Fatalf("POST /echo: %v", err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || !bytes.Equal(b, body) {
			t.Fatalf("POST /echo of %d bytes: got %d bytes, %v", len(body), len(b), err)
		}
		resp, err = c.Get(base + "/nothing")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Fatalf("GET /nothing: %d, want 404", resp.StatusCode)
		}
	}
	for _, fam := range families {
		t.Run(fam.name+"/server-on-synack", func(t *testing.T) {
			e := newEnv(t, fam)
			l := e.stackListen(80)
			srv := &http.Server{Handler: handler}
			go srv.Serve(l)
			defer srv.Close()
			c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DialContext: e.ns.DialContext}}
			defer c.CloseIdleConnections()
			check(t, c, "http://"+fam.stackAddr(80).String())
		})
		t.Run(fam.name+"/server-on-kernel", func(t *testing.T) {
			e := newEnv(t, fam)
			l := e.kernelListen()
			srv := &http.Server{Handler: handler}
			go srv.Serve(l)
			defer srv.Close()
			c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DialContext: e.s.DialContext}}
			defer c.CloseIdleConnections()
			check(t, c, "http://"+l.Addr().String())
		})
	}
}

// TestCloseWithQueuedData: synack queues more than the kernel's window and
// half-closes (its FIN waits behind the data, FIN-WAIT-1), then the kernel
// half-closes too before reading anything, so synack's FIN-WAIT-1 becomes
// CLOSING with data still unsent. Everything must still arrive, then EOF,
// as the kernel reads. Both families, both openers.
func TestCloseWithQueuedData(t *testing.T) {
	const size = 512 << 10
	for _, fam := range families {
		for _, kernelDials := range []bool{true, false} {
			t.Run(fam.name+"/"+dialerName(kernelDials), func(t *testing.T) {
				e := newEnv(t, fam, withEvents())
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				kc, sc := e.connect(ctx, kernelDials)
				defer kc.Close()
				defer sc.Close()
				deadline := time.Now().Add(5 * time.Second)
				kc.SetDeadline(deadline)
				sc.SetDeadline(deadline)

				data := make([]byte, size)
				for i := range data {
					data[i] = byte(i * 7)
				}
				// Fits synack's send buffer, not the kernel's window. The
				// buffer auto-tunes from 64 KiB with cwnd (tcp/sndtune.go),
				// which a peer that does not read keeps small; as on Linux,
				// SO_SNDBUF (here doubled to 2 MiB) fixes it for the case.
				if err := sc.SetWriteBuffer(2 * size); err != nil {
					t.Fatalf("synack SetWriteBuffer: %v", err)
				}
				if _, err := sc.Write(data); err != nil {
					t.Fatalf("synack Write: %v", err)
				}
				if err := sc.CloseWrite(); err != nil {
					t.Fatalf("synack CloseWrite: %v", err)
				}
				if err := kc.CloseWrite(); err != nil {
					t.Fatalf("kernel CloseWrite: %v", err)
				}
				if err := e.waitEvent(sc.Tuple(), tcp.Closing, 5*time.Second); err != nil {
					t.Logf("synack did not pass through CLOSING (%v); the kernel read too early to set up the case", err)
				}
				got, err := io.ReadAll(kc)
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("kernel read %d of %d bytes, %v; synack's end: %v, %d bytes queued, %d unacked, send window %d",
						len(got), size, err, sc.State(), sc.Info().SendQueue, sc.Info().Unacked, sc.Info().SndWnd)
				}
				if n, err := sc.Read(make([]byte, 1)); err != io.EOF {
					t.Fatalf("synack Read after the kernel's FIN: %d, %v; want EOF", n, err)
				}
			})
		}
	}
}

package stack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/synack/synack/link/memlink"
	"github.com/synack/synack/wire"
)

// newLoneStack is a stack with one memlink link (its far end unused) and
// the addresses of pair's a: what loopback tests dial themselves on.
func newLoneStack(t *testing.T) *Stack {
	t.Helper()
	ea, _ := memlink.Pipe(memlink.Config{})
	s := New(Options{Rand: newSeeded(7)})
	if _, err := s.AddLink(ea, netip.PrefixFrom(addrA, 24), netip.PrefixFrom(addrA6, 64)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestLoopbackDial dials the stack's own addresses, of its link and of the
// loopback link, both families, and moves data both ways with half-close.
func TestLoopbackDial(t *testing.T) {
	for _, dst := range []netip.Addr{addrA, addrA6, netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()} {
		t.Run(dst.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newLoneStack(t)
				l, err := s.ListenTCP(netip.AddrPortFrom(netip.Addr{}, 80), 0)
				if err != nil {
					t.Fatal(err)
				}
				go func() {
					c, err := l.AcceptTCP()
					if err != nil {
						return
					}
					defer c.Close()
					io.Copy(c, c)
					c.CloseWrite()
				}()
				c, err := s.DialTCP(context.Background(), netip.AddrPortFrom(dst, 80))
				if err != nil {
					t.Fatalf("dial %v: %v", dst, err)
				}
				defer c.Close()
				if got := c.Tuple().Local.Addr(); got != dst {
					t.Errorf("local address %v, want %v: a connection to ourselves comes from the address it goes to", got, dst)
				}
				msg := bytes.Repeat([]byte("loopback "), 100000)
				go func() {
					c.Write(msg)
					c.CloseWrite()
				}()
				got, err := io.ReadAll(c)
				if err != nil || !bytes.Equal(got, msg) {
					t.Errorf("echo: %d bytes, %v; want the %d sent, then EOF", len(got), err, len(msg))
				}
			})
		})
	}
}

// TestLoopbackRefused: a SYN to a port of ours nobody listens on is
// answered with RST over loopback, so Dial fails with ECONNREFUSED at
// once, as on the kernel's lo.
func TestLoopbackRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newLoneStack(t)
		for _, dst := range []netip.Addr{addrA, addrA6, netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()} {
			start := time.Now()
			_, err := s.DialTCP(context.Background(), netip.AddrPortFrom(dst, 81))
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("dial %v:81: %v, want ECONNREFUSED", dst, err)
			}
			if d := time.Since(start); d > 0 {
				t.Errorf("dial %v:81 took %v; the RST comes back at once", dst, d)
			}
		}
		if got := s.Counters().TCP.OutRsts; got != 4 {
			t.Errorf("OutRsts = %d, want 4", got)
		}
	})
}

// TestLoopbackHTTP serves net/http on the stack and fetches from it over
// loopback, a body of 4 MiB each way with its hash.
func TestLoopbackHTTP(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newLoneStack(t)
		l, err := s.Listen(context.Background(), "tcp", "127.0.0.1:8080")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := sha256.New()
			n, _ := io.Copy(h, r.Body)
			fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
		})}
		go srv.Serve(l)
		defer srv.Close()
		tr := &http.Transport{DialContext: s.DialContext}
		defer tr.CloseIdleConnections()
		body := make([]byte, 4<<20)
		rand.NewChaCha8([32]byte{9}).Read(body)
		resp, err := (&http.Client{Transport: tr}).Post("http://127.0.0.1:8080/", "application/octet-stream", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf("%d %x", len(body), sha256.Sum256(body)); string(got) != want {
			t.Errorf("got %q, want %q", got, want)
		}
	})
}

// TestLoopbackUDP sends datagrams to ourselves, to a bound socket (both
// families) and to a closed port (ICMP port unreachable comes back over
// loopback: ECONNREFUSED on the connected socket's next read).
func TestLoopbackUDP(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newLoneStack(t)
		for _, dst := range []netip.Addr{addrA, addrA6, netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()} {
			srv, err := s.ListenUDP("udp", netip.AddrPortFrom(dst, 53))
			if err != nil {
				t.Fatal(err)
			}
			c, err := s.DialUDP("udp", netip.AddrPort{}, netip.AddrPortFrom(dst, 53))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Write([]byte("ping " + dst.String())); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 100)
			n, from, err := srv.ReadFromUDPAddrPort(buf)
			if err != nil || string(buf[:n]) != "ping "+dst.String() || from != c.LocalAddrPort() {
				t.Errorf("%v: read %q from %v, %v; want the ping from %v", dst, buf[:n], from, err, c.LocalAddrPort())
			}
			srv.WriteToUDPAddrPort([]byte("pong"), from)
			if n, err := c.Read(buf); err != nil || string(buf[:n]) != "pong" {
				t.Errorf("%v: reply %q, %v", dst, buf[:n], err)
			}
			srv.Close()
			c.Write([]byte("anyone?"))
			c.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := c.Read(buf); !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("%v: read after sending to a closed port: %v, want ECONNREFUSED", dst, err)
			}
			c.Close()
		}
	})
}

// TestLoopbackNotFromOutside: a packet from 127.0.0.1 or from our own
// address that arrives on an ordinary link is still a martian; the
// loopback link does not make those sources acceptable elsewhere.
func TestLoopbackNotFromOutside(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{})
		if _, err := p.b.ListenTCP(netip.AddrPortFrom(addrB, 80), 0); err != nil {
			t.Fatal(err)
		}
		before := p.b.Counters().IP.InAddrErrors
		// a's stack has 127.0.0.1 as its own: it sends to it over its
		// loopback link, never to b. b sees nothing.
		_, err := p.a.DialTCP(context.Background(), netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), 80))
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("dial 127.0.0.1:80 on a: %v, want ECONNREFUSED from a's own loopback", err)
		}
		if got := p.b.Counters().IP.InReceives; got != 0 {
			t.Errorf("b received %d packets; a's loopback traffic left a", got)
		}
		if got := p.b.Counters().IP.InAddrErrors; got != before {
			t.Errorf("InAddrErrors moved on b: %d -> %d", before, got)
		}
	})
}

// TestLoopbackClose: closing the stack with loopback traffic in flight
// leaves no goroutine behind (synctest would report it) and later writes
// fail cleanly.
func TestLoopbackClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newLoneStack(t)
		l, err := s.ListenTCP(netip.AddrPortFrom(addrA, 9), 0)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			c, err := l.AcceptTCP()
			if err == nil {
				io.Copy(io.Discard, c)
			}
		}()
		c, err := s.DialTCP(context.Background(), netip.AddrPortFrom(addrA, 9))
		if err != nil {
			t.Fatal(err)
		}
		go c.Write(make([]byte, 1<<20))
		time.Sleep(time.Millisecond)
		s.Close()
		if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Errorf("write after Stack.Close: %v, want net.ErrClosed", err)
		}
	})
}

// TestLoopbackAddrFromOutside: a SYN to 127.0.0.1 or ::1 that arrives on
// an ordinary link is dropped (a martian destination), though a wildcard
// listener would take it over loopback.
func TestLoopbackAddrFromOutside(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRawPeer(t)
		if _, err := r.s.ListenTCP(netip.AddrPortFrom(netip.Addr{}, 80), 0); err != nil {
			t.Fatal(err)
		}
		syn := wire.TCPHeader{Seq: 1, Flags: wire.SYN, Window: 1000}
		r.send(tcpPacket(netip.AddrPortFrom(addrB, 4000), netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), 80), syn, nil))
		r.send(tcpPacket(netip.AddrPortFrom(addrB6, 4000), netip.AddrPortFrom(netip.IPv6Loopback(), 80), syn, nil))
		if p := r.recv(); p != nil {
			t.Errorf("SYN to a loopback address from outside answered: %v -> %v", p.Src, p.Dst)
		}
		if got := r.s.Counters().IP.InAddrErrors; got != 2 {
			t.Errorf("InAddrErrors = %d, want 2", got)
		}
	})
}

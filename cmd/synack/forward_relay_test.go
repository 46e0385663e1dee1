package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/synack/synack/link/memlink"
	"github.com/synack/synack/stack"
)

// relayRig is the relay of synack forward without a TUN device or root: a
// client stack routes everything over a memlink pipe to a stack with the
// forwarder, whose relay dials the kernel on loopback. Destinations are
// 203.0.113.1:PORT, which the relay's dial turns into 127.0.0.1:PORT (the
// client stack cannot name 127.0.0.1 itself: that is its own loopback).
type relayRig struct {
	client *stack.Stack
	r      *relay
}

func newRelayRig(t *testing.T) *relayRig {
	t.Helper()
	ea, eb := memlink.Pipe(memlink.Config{})
	cs, fs := stack.New(stack.Options{}), stack.New(stack.Options{})
	if _, err := cs.AddLink(ea, netip.MustParsePrefix("198.18.0.1/24")); err != nil {
		t.Fatal(err)
	}
	nic, err := fs.AddLink(eb, netip.MustParsePrefix("198.18.0.2/24"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.AddRoute(netip.MustParsePrefix("0.0.0.0/0"), netip.MustParseAddr("198.18.0.2"), 1); err != nil {
		t.Fatal(err)
	}
	l, err := fs.ListenAny(stack.ForwarderOptions{NIC: nic})
	if err != nil {
		t.Fatal(err)
	}
	var d net.Dialer
	r := &relay{
		dial: func(ctx context.Context, dst string) (*net.TCPConn, error) {
			ap := netip.MustParseAddrPort(dst)
			c, err := d.DialContext(ctx, "tcp4", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), ap.Port()).String())
			if err != nil {
				return nil, err
			}
			return c.(*net.TCPConn), nil
		},
		dialTimeout: 5 * time.Second,
		slots:       make(chan struct{}, 4),
		conns:       map[io.Closer]struct{}{},
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.serve(l)
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		r.shutdown()
		cs.Close()
		fs.Close()
	})
	return &relayRig{client: cs, r: r}
}

func (g *relayRig) dial(t *testing.T, port int) *stack.TCPConn {
	t.Helper()
	c, err := g.tryDial(t, port)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// tryDial is dial that returns the error: a reset that comes before the
// dialer has run again fails the dial itself, as connect(2) does on Linux
// when the socket is already closed by then.
func (g *relayRig) tryDial(t *testing.T, port int) (*stack.TCPConn, error) {
	c, err := g.client.DialTCP(context.Background(), netip.AddrPortFrom(netip.MustParseAddr("203.0.113.1"), uint16(port)))
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c, nil
}

// readReset reads to the end from a connection to port and returns what
// it read and the error that ended it, the dial's if the reset came
// first.
func (g *relayRig) readReset(t *testing.T, port int) ([]byte, error) {
	c, err := g.tryDial(t, port)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(c)
}

func kernelListener(t *testing.T) (net.Listener, int) {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, l.Addr().(*net.TCPAddr).Port
}

// TestRelayHalfClose: the client's FIN reaches the server, which answers
// only after it, and the server's FIN reaches the client.
func TestRelayHalfClose(t *testing.T) {
	g := newRelayRig(t)
	l, port := kernelListener(t)
	msg := bytes.Repeat([]byte("up "), 200000)
	got := make(chan []byte, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		b, _ := io.ReadAll(c) // until the client's FIN, relayed
		got <- b
		io.WriteString(c, "all read")
		c.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, c)
	}()
	c := g.dial(t, port)
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	c.CloseWrite()
	if b := <-got; !bytes.Equal(b, msg) {
		t.Fatalf("server read %d bytes, want %d, then EOF", len(b), len(msg))
	}
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "all read" {
		t.Errorf("client read %q, %v; want the answer, then EOF", b, err)
	}
}

// TestRelayResets: a refused destination, a server's reset and a client's
// reset each reach the other side as a reset.
func TestRelayResets(t *testing.T) {
	g := newRelayRig(t)
	t.Run("refused", func(t *testing.T) {
		l, port := kernelListener(t)
		l.Close()
		if _, err := g.readReset(t, port); !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("read from a connection whose destination refused: %v, want ECONNRESET", err)
		}
	})
	t.Run("server", func(t *testing.T) {
		l, port := kernelListener(t)
		go func() {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("bye"))
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}()
		b, err := g.readReset(t, port)
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("client read %q, %v; want ECONNRESET", b, err)
		}
	})
	t.Run("client", func(t *testing.T) {
		l, port := kernelListener(t)
		errc := make(chan error, 1)
		go func() {
			c, err := l.Accept()
			if err != nil {
				errc <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			c.Write([]byte("ready"))
			_, err = io.Copy(io.Discard, c)
			errc <- err
		}()
		c := g.dial(t, port)
		// "ready" says the relay holds both ends; then the client resets.
		if b, err := io.ReadAll(io.LimitReader(c, 5)); err != nil || string(b) != "ready" {
			t.Fatalf("client read %q, %v", b, err)
		}
		c.SetLinger(0)
		c.Close()
		if err := <-errc; !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("server read after the client's reset: %v, want ECONNRESET", err)
		}
	})
}

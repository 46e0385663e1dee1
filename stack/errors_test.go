package stack

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/synack/synack/link/memlink"
	"github.com/synack/synack/tcp"
)

// wantOpError checks err is a *net.OpError for op that errors.Is target.
func wantOpError(t *testing.T, err error, op string, target error) {
	t.Helper()
	var oe *net.OpError
	if !errors.As(err, &oe) {
		t.Fatalf("got %T %v, want *net.OpError", err, err)
	}
	if oe.Op != op || oe.Net != "tcp" {
		t.Errorf("got Op %q Net %q, want %q \"tcp\" (%v)", oe.Op, oe.Net, op, err)
	}
	if !errors.Is(err, target) {
		t.Errorf("got %v, want errors.Is(err, %v)", err, target)
	}
}

func TestErrRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{})
		_, err := p.a.DialContext(context.Background(), "tcp", "198.18.0.2:81")
		wantOpError(t, err, "dial", syscall.ECONNREFUSED)
		var se *os.SyscallError
		if !errors.As(err, &se) || se.Syscall != "connect" {
			t.Errorf("got %v, want a connect *os.SyscallError", err)
		}
		if got := p.b.Counters().TCP; got.InNoSocket != 1 || got.OutRsts != 1 {
			t.Errorf("server InNoSocket %d OutRsts %d, want 1 1", got.InNoSocket, got.OutRsts)
		}
		if got := p.a.Counters().TCP; got.ActiveOpens != 1 || got.AttemptFails != 1 {
			t.Errorf("client ActiveOpens %d AttemptFails %d, want 1 1", got.ActiveOpens, got.AttemptFails)
		}
	})
}

func TestErrRefusedIPv6(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{})
		_, err := p.a.DialContext(context.Background(), "tcp6", "[fd00::2]:81")
		wantOpError(t, err, "dial", syscall.ECONNREFUSED)
	})
}

func TestErrReset(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{})
		c, s := p.connect(t, 80)
		if err := s.SetLinger(0); err != nil {
			t.Fatal(err)
		}
		s.Close()
		_, err := c.Read(make([]byte, 10))
		wantOpError(t, err, "read", syscall.ECONNRESET)
		if got := p.a.Counters().TCP.EstabResets; got != 1 {
			t.Errorf("client EstabResets %d, want 1", got)
		}
		if c.State() != tcp.Closed {
			t.Errorf("client in %v, want CLOSED", c.State())
		}
	})
}

func TestErrTimedOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		drop := func([]byte) bool { return true }
		p := newPair(t, pairOpts{
			link: memlink.Config{AB: memlink.Impairments{Drop: drop}},
			a:    Options{TCP: tcp.Config{SynRetries: 2}},
		})
		start := time.Now()
		_, err := p.a.DialTCP(context.Background(), netip.AddrPortFrom(addrB, 80))
		wantOpError(t, err, "dial", syscall.ETIMEDOUT)
		// 1 s + 2 s + 4 s with the default initial RTO.
		if d := time.Since(start); d != 7*time.Second {
			t.Errorf("gave up after %v, want 7s", d)
		}
	})
}

func TestErrDialContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		drop := func([]byte) bool { return true }
		p := newPair(t, pairOpts{link: memlink.Config{AB: memlink.Impairments{Drop: drop}}})
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		_, err := p.a.DialTCP(ctx, netip.AddrPortFrom(addrB, 80))
		wantOpError(t, err, "dial", context.DeadlineExceeded)
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("%v: want a net.Error with Timeout()", err)
		}
		synctest.Wait()
		if n := len(p.a.Connections()); n != 0 {
			t.Errorf("%d connections left after the canceled dial", n)
		}
	})
}

func TestErrDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{})
		c, _ := p.connect(t, 80)
		c.SetReadDeadline(time.Now().Add(time.Second))
		start := time.Now()
		_, err := c.Read(make([]byte, 10))
		wantOpError(t, err, "read", os.ErrDeadlineExceeded)
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("%v: want a net.Error with Timeout()", err)
		}
		if d := time.Since(start); d != time.Second {
			t.Errorf("timed out after %v, want 1s", d)
		}
		// A deadline set while Read waits wakes it.
		c.SetReadDeadline(time.Time{})
		go func() {
			time.Sleep(time.Second)
			c.SetReadDeadline(time.Now())
		}()
		_, err = c.Read(make([]byte, 10))
		wantOpError(t, err, "read", os.ErrDeadlineExceeded)
		// Writes time out once the buffers are full.
		c.SetWriteDeadline(time.Now().Add(time.Second))
		n, err := c.Write(make([]byte, 10<<20))
		wantOpError(t, err, "write", os.ErrDeadlineExceeded)
		if n == 0 || n == 10<<20 {
			t.Errorf("wrote %d bytes before the deadline", n)
		}
	})
}

func TestErrClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{})
		c, _ := p.connect(t, 80)
		done := make(chan error)
		go func() {
			_, err := c.Read(make([]byte, 10))
			done <- err
		}()
		synctest.Wait()
		c.Close()
		wantOpError(t, <-done, "read", net.ErrClosed)
		_, err := c.Write([]byte("x"))
		wantOpError(t, err, "write", net.ErrClosed)
		wantOpError(t, c.Close(), "close", net.ErrClosed)

		l, err := p.b.Listen(context.Background(), "tcp", ":90")
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			_, err := l.Accept()
			done <- err
		}()
		synctest.Wait()
		l.Close()
		wantOpError(t, <-done, "accept", net.ErrClosed)
	})
}

func TestErrEOFAndEPIPE(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{})
		c, s := p.connect(t, 80)
		s.Write([]byte("bye"))
		s.CloseWrite()
		b, err := io.ReadAll(c)
		if string(b) != "bye" || err != nil {
			t.Fatalf("ReadAll = %q, %v", b, err)
		}
		if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Errorf("Read after FIN = %d, %v; want 0, io.EOF (plain)", n, err)
		}
		_, err = s.Write([]byte("more"))
		wantOpError(t, err, "write", syscall.EPIPE)
		// The other direction still works.
		c.Write([]byte("ok"))
		buf := make([]byte, 2)
		if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "ok" {
			t.Errorf("half-closed server read %q, %v", buf, err)
		}
	})
}

func TestErrAddrInUse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{})
		ctx := context.Background()
		l, err := p.b.Listen(ctx, "tcp", "198.18.0.2:80")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		for _, addr := range []string{"198.18.0.2:80", ":80", "0.0.0.0:80"} {
			_, err = p.b.Listen(ctx, "tcp", addr)
			wantOpError(t, err, "listen", syscall.EADDRINUSE)
		}
		// Another address, or the other family's wildcard, is fine.
		l6, err := p.b.Listen(ctx, "tcp6", "[::]:80")
		if err != nil {
			t.Fatalf("tcp6 [::]:80 next to 198.18.0.2:80: %v", err)
		}
		l6.Close()
		_, err = p.b.Listen(ctx, "tcp", "198.18.0.9:80")
		wantOpError(t, err, "listen", syscall.EADDRNOTAVAIL)

		// A dial from a port a listener holds.
		la, err := p.a.Listen(ctx, "tcp", ":5000")
		if err != nil {
			t.Fatal(err)
		}
		defer la.Close()
		_, err = p.a.DialTCPFrom(ctx, netip.AddrPortFrom(addrA, 5000), netip.AddrPortFrom(addrB, 80))
		wantOpError(t, err, "dial", syscall.EADDRINUSE)
		// A dial from an explicit port: the same 4-tuple twice fails.
		c, err := p.a.DialTCPFrom(ctx, netip.AddrPortFrom(addrA, 5001), netip.AddrPortFrom(addrB, 80))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, err = p.a.DialTCPFrom(ctx, netip.AddrPortFrom(addrA, 5001), netip.AddrPortFrom(addrB, 80))
		wantOpError(t, err, "dial", syscall.EADDRINUSE)
	})
}

func TestErrNoRoute(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{})
		_, err := p.a.DialContext(context.Background(), "tcp", "203.0.113.1:80")
		wantOpError(t, err, "dial", syscall.ENETUNREACH)
		// With a default route it goes out (and times out, nobody there).
		if err := p.a.AddRoute(netip.MustParsePrefix("0.0.0.0/0"), addrB, 1); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		_, err = p.a.DialContext(ctx, "tcp", "203.0.113.1:80")
		wantOpError(t, err, "dial", context.DeadlineExceeded)
		if got := p.b.Counters().IP.InAddrErrors; got != 1 {
			t.Errorf("peer InAddrErrors %d, want 1", got)
		}
	})
}

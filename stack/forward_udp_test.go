package stack

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

// TestForwardUDP: datagrams to foreign addresses reach the UDP forwarder
// with their original destination, and its replies reach the client
// from that destination (a connected socket takes them), IPv4 (a reply
// big enough to go in fragments) and IPv6.
func TestForwardUDP(t *testing.T) {
	for _, dst := range []netip.AddrPort{netip.AddrPortFrom(farAddr, 53), netip.AddrPortFrom(farAddr6, 123)} {
		t.Run(dst.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p, _ := newForwardPair(t, ForwarderOptions{})
				f, err := p.b.ListenUDPAny(ForwarderOptions{})
				if err != nil {
					t.Fatal(err)
				}
				c, err := p.a.DialUDP("udp", netip.AddrPort{}, dst)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if _, err := c.Write([]byte("query")); err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, 100)
				n, from, to, err := f.ReadFrom(buf)
				if err != nil || string(buf[:n]) != "query" || from != c.LocalAddrPort() || to != dst {
					t.Fatalf("forwarder read %q from %v to %v, %v; want the query from %v to %v", buf[:n], from, to, err, c.LocalAddrPort(), dst)
				}
				reply := bytes.Repeat([]byte("r"), 3000)
				if dst.Addr().Is6() {
					reply = reply[:1000] // no IPv6 fragments are built
				}
				if _, err := f.WriteFrom(reply, to, from); err != nil {
					t.Fatal(err)
				}
				got := make([]byte, 4000)
				c.SetReadDeadline(time.Now().Add(time.Second))
				if n, err := c.Read(got); err != nil || !bytes.Equal(got[:n], reply) {
					t.Errorf("client read %d bytes, %v; want the %d of the reply from %v", n, err, len(reply), dst)
				}
			})
		})
	}
}

// TestForwardUDPSocketsFirst: a socket on our address keeps its port; a
// wildcard socket takes only our addresses; a foreign destination without
// the UDP forwarder is dropped unanswered; and a port of ours with no
// socket goes to the forwarder, not to ICMP port unreachable.
func TestForwardUDPSocketsFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, _ := newForwardPair(t, ForwarderOptions{})
		send := func(dst netip.AddrPort, msg string) *UDPConn {
			t.Helper()
			c, err := p.a.DialUDP("udp", netip.AddrPort{}, dst)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			if _, err := c.Write([]byte(msg)); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
			return c
		}
		// No UDP forwarder (only the TCP one): dropped, no ICMP back.
		before := p.b.Counters().IP.InAddrErrors
		c := send(netip.AddrPortFrom(farAddr, 53), "lost")
		if got := p.b.Counters().IP.InAddrErrors; got != before+1 {
			t.Errorf("InAddrErrors %d -> %d, want one more", before, got)
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := c.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("read after sending to a foreign address with no forwarder: %v, want a timeout (nothing back)", err)
		}

		wild, err := p.b.ListenUDP("udp", netip.AddrPortFrom(netip.Addr{}, 53))
		if err != nil {
			t.Fatal(err)
		}
		defer wild.Close()
		f, err := p.b.ListenUDPAny(ForwarderOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.b.ListenUDPAny(ForwarderOptions{}); !errors.Is(err, syscall.EADDRINUSE) {
			t.Errorf("second ListenUDPAny: %v, want EADDRINUSE", err)
		}
		send(netip.AddrPortFrom(addrB, 53), "to the socket")
		send(netip.AddrPortFrom(farAddr, 53), "to the forwarder")
		send(netip.AddrPortFrom(addrB, 54), "ours, no socket")
		buf := make([]byte, 100)
		wild.SetReadDeadline(time.Now().Add(time.Second))
		if n, _, err := wild.ReadFromUDPAddrPort(buf); err != nil || string(buf[:n]) != "to the socket" {
			t.Errorf("wildcard socket read %q, %v", buf[:n], err)
		}
		if n, _, err := wild.ReadFromUDPAddrPort(buf); err == nil {
			t.Errorf("wildcard socket also read %q", buf[:n])
		}
		for _, want := range []struct {
			msg string
			to  netip.AddrPort
		}{{"to the forwarder", netip.AddrPortFrom(farAddr, 53)}, {"ours, no socket", netip.AddrPortFrom(addrB, 54)}} {
			f.SetReadDeadline(time.Now().Add(time.Second))
			n, _, to, err := f.ReadFrom(buf)
			if err != nil || string(buf[:n]) != want.msg || to != want.to {
				t.Errorf("forwarder read %q to %v, %v; want %q to %v", buf[:n], to, err, want.msg, want.to)
			}
		}
		if got := p.b.Counters().ICMP.OutDestUnreachs; got != 0 {
			t.Errorf("OutDestUnreachs = %d: the forwarder's datagram was answered with port unreachable", got)
		}
		if _, err := f.WriteFrom([]byte("x"), netip.AddrPortFrom(netip.MustParseAddr("224.0.0.1"), 53), c.LocalAddrPort()); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("WriteFrom a multicast source: %v, want EINVAL", err)
		}
		// Closed: a pending read returns, foreign destinations are
		// dropped again.
		done := make(chan error)
		go func() { _, _, _, err := f.ReadFrom(buf); done <- err }()
		synctest.Wait()
		f.Close()
		if err := <-done; !errors.Is(err, net.ErrClosed) {
			t.Errorf("ReadFrom across Close: %v, want net.ErrClosed", err)
		}
		before = p.b.Counters().IP.InAddrErrors
		send(netip.AddrPortFrom(farAddr, 53), "lost again")
		if got := p.b.Counters().IP.InAddrErrors; got != before+1 {
			t.Errorf("after Close: InAddrErrors %d -> %d, want one more", before, got)
		}
	})
}

// TestForwardUDPQueueBound: the forwarder's queue is bounded like a
// socket's; what overflows it is dropped and counted; Stack.Close ends a
// pending read.
func TestForwardUDPQueueBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, _ := newForwardPair(t, ForwarderOptions{})
		f, err := p.b.ListenUDPAny(ForwarderOptions{})
		if err != nil {
			t.Fatal(err)
		}
		f.SetReadBuffer(2 * udpCharge(100))
		c, err := p.a.DialUDP("udp", netip.AddrPort{}, netip.AddrPortFrom(farAddr, 9))
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			c.Write(make([]byte, 100))
		}
		synctest.Wait()
		if got := p.b.Counters().UDP.RcvbufErrors; got != 1 {
			t.Errorf("RcvbufErrors = %d, want 1", got)
		}
		buf := make([]byte, 200)
		for range 2 {
			if _, _, _, err := f.ReadFrom(buf); err != nil {
				t.Fatal(err)
			}
		}
		done := make(chan error)
		go func() { _, _, _, err := f.ReadFrom(buf); done <- err }()
		synctest.Wait()
		p.b.Close()
		if err := <-done; !errors.Is(err, net.ErrClosed) {
			t.Errorf("ReadFrom across Stack.Close: %v, want net.ErrClosed", err)
		}
	})
}

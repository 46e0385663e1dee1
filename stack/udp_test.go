package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/synack/synack/wire"
)

// udpEcho serves u: every datagram goes back to its sender, until u is
// closed.
func udpEcho(u *UDPConn) {
	buf := make([]byte, 65536)
	for {
		n, from, err := u.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if _, err := u.WriteToUDPAddrPort(buf[:n], from); err != nil {
			return
		}
	}
}

// TestUDPEcho: echo both ways between two stacks, IPv4 and IPv6, from
// connected sockets (DialUDP, DialContext) and unconnected ones
// (ListenPacket).
func TestUDPEcho(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{})
		for _, dir := range []struct {
			name     string
			srv, cli *Stack
			srvAddrs [2]netip.Addr
		}{
			{"a->b", p.b, p.a, [2]netip.Addr{addrB, addrB6}},
			{"b->a", p.a, p.b, [2]netip.Addr{addrA, addrA6}},
		} {
			srv, err := dir.srv.ListenUDP("udp", netip.AddrPortFrom(netip.Addr{}, 7))
			if err != nil {
				t.Fatal(err)
			}
			go udpEcho(srv)
			for _, sa := range dir.srvAddrs {
				to := netip.AddrPortFrom(sa, 7)
				// Connected, by DialUDP.
				c, err := dir.cli.DialUDP("udp", netip.AddrPort{}, to)
				if err != nil {
					t.Fatal(err)
				}
				if got := c.RemoteAddr().String(); got != net.UDPAddrFromAddrPort(to).String() {
					t.Errorf("%s: RemoteAddr %s", dir.name, got)
				}
				msg := "hello " + dir.name + " " + sa.String()
				if _, err := c.Write([]byte(msg)); err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, 100)
				n, err := c.Read(buf)
				if err != nil || string(buf[:n]) != msg {
					t.Fatalf("%s %v connected: %q %v", dir.name, sa, buf[:n], err)
				}
				c.Close()

				// Connected, by DialContext("udp4"/"udp6").
				network := "udp4"
				if !sa.Is4() {
					network = "udp6"
				}
				nc, err := dir.cli.DialContext(context.Background(), network, to.String())
				if err != nil {
					t.Fatal(err)
				}
				if _, err := nc.Write([]byte("dc")); err != nil {
					t.Fatal(err)
				}
				if n, err := nc.Read(buf); err != nil || string(buf[:n]) != "dc" {
					t.Fatalf("%s %v DialContext: %q %v", dir.name, sa, buf[:n], err)
				}
				nc.Close()

				// Unconnected, by ListenPacket.
				pc, err := dir.cli.ListenPacket(context.Background(), "udp", ":0")
				if err != nil {
					t.Fatal(err)
				}
				if _, err := pc.WriteTo([]byte("pc"), net.UDPAddrFromAddrPort(to)); err != nil {
					t.Fatal(err)
				}
				n, from, err := pc.ReadFrom(buf)
				if err != nil || string(buf[:n]) != "pc" || from.String() != net.UDPAddrFromAddrPort(to).String() {
					t.Fatalf("%s %v unconnected: %q from %v, %v", dir.name, sa, buf[:n], from, err)
				}
				pc.Close()
			}
			srv.Close()
		}
		for _, s := range []*Stack{p.a, p.b} {
			c := s.Counters().UDP
			if c.InDatagrams != 12 || c.OutDatagrams != 12 || c.InErrors != 0 || c.NoPorts != 0 {
				t.Errorf("counters %+v, want 12 in and out", c)
			}
		}
	})
}

// TestUDPConnRefused: a datagram to a closed port is answered with port
// unreachable, which ends the next Read (and, sent again, Write) of a
// connected socket with ECONNREFUSED, as Linux; an unconnected socket
// does not hear of it.
func TestUDPConnRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{})
		for _, to := range []netip.AddrPort{netip.AddrPortFrom(addrB, 9), netip.AddrPortFrom(addrB6, 9)} {
			c, err := p.a.DialUDP("udp", netip.AddrPort{}, to)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Write([]byte("anyone?")); err != nil {
				t.Fatal(err)
			}
			_, err = c.Read(make([]byte, 10))
			var oe *net.OpError
			var se *os.SyscallError
			if !errors.Is(err, syscall.ECONNREFUSED) || !errors.As(err, &oe) || !errors.As(err, &se) || oe.Net != "udp" {
				t.Fatalf("%v: Read: %v, want an OpError around ECONNREFUSED", to, err)
			}
			// Reported once: the next call is back to normal.
			c.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := c.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("%v: second Read: %v", to, err)
			}
			c.SetReadDeadline(time.Time{})
			// The error may come to Write too.
			if _, err := c.Write([]byte("again")); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
			if _, err := c.Write([]byte("and again")); !errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatalf("%v: Write after port unreachable: %v", to, err)
			}
			c.Close()

			pc, err := p.a.ListenUDP("udp", netip.AddrPort{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := pc.WriteToUDPAddrPort([]byte("x"), to); err != nil {
				t.Fatal(err)
			}
			pc.SetReadDeadline(time.Now().Add(time.Second))
			if _, _, err := pc.ReadFromUDPAddrPort(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("%v: unconnected Read: %v", to, err)
			}
			pc.Close()
		}
		if c := p.b.Counters(); c.UDP.NoPorts != 6 || c.ICMP.OutDestUnreachs != 6 {
			t.Errorf("b: NoPorts %d OutDestUnreachs %d, want 6 6", c.UDP.NoPorts, c.ICMP.OutDestUnreachs)
		}
		if c := p.a.Counters().ICMP; c.InDestUnreachs != 6 || c.InErrorsMatched != 4 {
			t.Errorf("a: InDestUnreachs %d InErrorsMatched %d, want 6 4", c.InDestUnreachs, c.InErrorsMatched)
		}
	})
}

// TestUDPQueueOverflow: datagrams beyond the receive queue's bound are
// dropped and counted.
func TestUDPQueueOverflow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{})
		srv, err := p.b.ListenUDP("udp4", netip.AddrPortFrom(addrB, 5000))
		if err != nil {
			t.Fatal(err)
		}
		srv.SetReadBuffer(3 * udpCharge(100))
		c, err := p.a.DialUDP("udp", netip.AddrPort{}, srv.LocalAddrPort())
		if err != nil {
			t.Fatal(err)
		}
		for i := range 10 {
			if _, err := c.Write(make([]byte, 100)); err != nil {
				t.Fatal(i, err)
			}
		}
		synctest.Wait()
		if u := p.b.Counters().UDP; u.InDatagrams != 3 || u.RcvbufErrors != 7 || u.InErrors != 7 {
			t.Fatalf("counters %+v, want 3 queued, 7 dropped", u)
		}
		srv.SetReadDeadline(time.Now().Add(time.Second))
		for i := range 4 {
			_, _, err := srv.ReadFromUDPAddrPort(make([]byte, 200))
			if (i < 3) != (err == nil) {
				t.Fatalf("read %d: %v", i, err)
			}
		}
	})
}

// TestUDPDeadlines: a read deadline ends a blocked Read, a moved one ends
// it early, a passed write deadline fails a Write.
func TestUDPDeadlines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{})
		u, err := p.a.ListenUDP("udp", netip.AddrPort{})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		u.SetReadDeadline(start.Add(50 * time.Millisecond))
		_, _, err = u.ReadFrom(make([]byte, 10))
		var ne net.Error
		if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("Read: %v", err)
		}
		if d := time.Since(start); d != 50*time.Millisecond {
			t.Errorf("Read returned after %v, want 50ms", d)
		}
		u.SetReadDeadline(time.Time{})
		done := make(chan error)
		go func() {
			_, _, err := u.ReadFrom(make([]byte, 10))
			done <- err
		}()
		synctest.Wait()
		u.SetReadDeadline(time.Now()) // moved while Read waits
		if err := <-done; !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read after the deadline moved: %v", err)
		}
		u.SetWriteDeadline(time.Now())
		if _, err := u.WriteToUDPAddrPort([]byte("x"), netip.AddrPortFrom(addrB, 9)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Write: %v", err)
		}
		if c := p.a.Counters().UDP; c.OutDatagrams != 0 {
			t.Errorf("OutDatagrams %d, want 0", c.OutDatagrams)
		}
	})
}

// TestUDPClose: Close and Stack.Close end blocked reads with
// net.ErrClosed, and Close frees the port.
func TestUDPClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{})
		u, err := p.a.ListenUDP("udp", netip.AddrPortFrom(netip.Addr{}, 4000))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.a.ListenUDP("udp4", netip.AddrPortFrom(addrA, 4000)); !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("second bind: %v, want EADDRINUSE", err)
		}
		done := make(chan error)
		go func() {
			_, err := u.Read(make([]byte, 10))
			done <- err
		}()
		synctest.Wait()
		if err := u.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read: %v, want net.ErrClosed", err)
		}
		if err := u.Close(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("second Close: %v", err)
		}
		if _, err := u.WriteToUDPAddrPort([]byte("x"), netip.AddrPortFrom(addrB, 9)); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Write after Close: %v", err)
		}
		v, err := p.a.ListenUDP("udp4", netip.AddrPortFrom(addrA, 4000))
		if err != nil {
			t.Fatalf("bind after Close: %v", err)
		}
		go func() {
			_, err := v.Read(make([]byte, 10))
			done <- err
		}()
		synctest.Wait()
		p.a.Close()
		if err := <-done; !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Read after Stack.Close: %v, want net.ErrClosed", err)
		}
	})
}

// TestUDPBadChecksum: corrupted datagrams and, over IPv6, ones without a
// checksum are dropped and counted; over IPv4 no checksum is accepted.
func TestUDPBadChecksum(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRawPeer(t)
		u, err := r.s.ListenUDP("udp", netip.AddrPortFrom(netip.Addr{}, 53))
		if err != nil {
			t.Fatal(err)
		}
		dgram := func(src, dst netip.Addr, payload string, mangle func([]byte)) []byte {
			b := wire.AppendUDP(nil, &wire.UDPHeader{SrcPort: 1000, DstPort: 53}, []byte(payload), src, dst)
			mangle(b)
			return ipPacket(src, dst, wire.ProtocolUDP, b)
		}
		corrupt := func(b []byte) { b[len(b)-1] ^= 0x40 }
		zero := func(b []byte) { b[6], b[7] = 0, 0 }
		r.send(dgram(addrB, addrA, "bad4", corrupt))
		r.send(dgram(addrB6, addrA6, "bad6", corrupt))
		r.send(dgram(addrB6, addrA6, "zero6", zero))
		r.send(dgram(addrB, addrA, "zero4", zero))
		synctest.Wait()
		c := r.s.Counters().UDP
		if c.InErrors != 3 || c.InCsumErrors != 3 || c.InDatagrams != 1 {
			t.Fatalf("counters %+v, want 3 checksum errors and 1 datagram", c)
		}
		buf := make([]byte, 10)
		n, from, err := u.ReadFromUDPAddrPort(buf)
		if err != nil || string(buf[:n]) != "zero4" || from != netip.AddrPortFrom(addrB, 1000) {
			t.Fatalf("read %q from %v, %v", buf[:n], from, err)
		}
		if p := r.recv(); p != nil {
			t.Fatalf("the stack answered a bad datagram: %+v", p)
		}
	})
}

// TestUDPPortUnreachableSent: the ICMP error for a closed port quotes the
// datagram, v4 and v6, and is rate-limited.
func TestUDPPortUnreachableSent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRawPeer(t)
		b4 := wire.AppendUDP(nil, &wire.UDPHeader{SrcPort: 1000, DstPort: 9}, []byte("x"), addrB, addrA)
		r.send(ipPacket(addrB, addrA, wire.ProtocolUDP, b4))
		p := r.recv()
		if p == nil || p.Protocol != wire.ProtocolICMP || p.Dst != addrB {
			t.Fatalf("no ICMPv4 error: %+v", p)
		}
		m, err := wire.ParseICMPv4(p.Payload, true)
		if err != nil || m.Type != wire.ICMPv4DestUnreachable || m.Code != wire.ICMPv4PortUnreachable {
			t.Fatalf("ICMPv4 %+v %v", m, err)
		}
		if q, err := m.Quote(); err != nil || q.Protocol != wire.ProtocolUDP || q.SrcPort != 1000 || q.DstPort != 9 || q.Src != addrB {
			t.Fatalf("quote %+v %v", q, err)
		}
		b6 := wire.AppendUDP(nil, &wire.UDPHeader{SrcPort: 1000, DstPort: 9}, []byte("x"), addrB6, addrA6)
		r.send(ipPacket(addrB6, addrA6, wire.ProtocolUDP, b6))
		p = r.recv()
		if p == nil || p.Protocol != wire.ProtocolICMPv6 {
			t.Fatalf("no ICMPv6 error: %+v", p)
		}
		m6, err := wire.ParseICMPv6(p.Payload, p.Src, p.Dst, true)
		if err != nil || m6.Type != wire.ICMPv6DestUnreachable || m6.Code != wire.ICMPv6PortUnreachable {
			t.Fatalf("ICMPv6 %+v %v", m6, err)
		}
		// A burst beyond icmpErrorLimit's is not all answered.
		for range 100 {
			r.send(ipPacket(addrB, addrA, wire.ProtocolUDP, b4))
		}
		synctest.Wait()
		c := r.s.Counters()
		if c.UDP.NoPorts != 102 || c.ICMP.OutDestUnreachs+c.ICMP.OutRateLimitGlobal != 102 || c.ICMP.OutRateLimitGlobal == 0 {
			t.Fatalf("NoPorts %d OutDestUnreachs %d OutRateLimitGlobal %d", c.UDP.NoPorts, c.ICMP.OutDestUnreachs, c.ICMP.OutRateLimitGlobal)
		}
	})
}

// TestUDPErrors: the kernel's errors for misuse and for datagrams too
// big for the link.
func TestUDPErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{})
		u, err := p.a.ListenUDP("udp", netip.AddrPort{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := u.Write([]byte("x")); !errors.Is(err, syscall.EDESTADDRREQ) {
			t.Errorf("Write unconnected: %v", err)
		}
		if _, err := u.WriteToUDPAddrPort(make([]byte, 65507+1), netip.AddrPortFrom(addrB, 9)); !errors.Is(err, syscall.EMSGSIZE) {
			t.Errorf("too big for IPv4: %v", err)
		}
		if _, err := u.WriteToUDPAddrPort(make([]byte, 1500-28), netip.AddrPortFrom(addrB, 9)); err != nil {
			t.Errorf("as big as the MTU: %v", err)
		}
		if _, err := u.WriteToUDPAddrPort(make([]byte, 1500-48+1), netip.AddrPortFrom(addrB6, 9)); !errors.Is(err, syscall.EMSGSIZE) {
			t.Errorf("too big for the MTU (v6): %v", err)
		}
		if _, err := u.WriteToUDPAddrPort([]byte("x"), netip.MustParseAddrPort("203.0.113.1:9")); !errors.Is(err, syscall.ENETUNREACH) {
			t.Errorf("no route: %v", err)
		}
		c, err := p.a.DialUDP("udp", netip.AddrPort{}, netip.AddrPortFrom(addrB, 9))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.WriteToUDPAddrPort([]byte("x"), netip.AddrPortFrom(addrB, 9)); !errors.Is(err, net.ErrWriteToConnected) {
			t.Errorf("WriteTo connected: %v", err)
		}
		if _, err := p.a.DialContext(context.Background(), "udp4", "[fd00::2]:9"); err == nil {
			t.Errorf("udp4 to an IPv6 address worked")
		}
		if _, err := p.a.ListenPacket(context.Background(), "udp5", ":0"); err == nil {
			t.Errorf("udp5 worked")
		}
		if _, err := p.a.ListenUDP("udp", netip.AddrPortFrom(netip.MustParseAddr("198.18.0.9"), 0)); !errors.Is(err, syscall.EADDRNOTAVAIL) {
			t.Errorf("bind to a foreign address: %v", err)
		}
	})
}

// TestUDPFragments: over IPv4 a datagram bigger than the MTU goes in
// fragments, which the other stack reassembles; IPv6 refuses it.
func TestUDPFragments(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{})
		srv, err := p.b.ListenUDP("udp", netip.AddrPortFrom(netip.Addr{}, 7))
		if err != nil {
			t.Fatal(err)
		}
		go udpEcho(srv)
		c, err := p.a.DialUDP("udp", netip.AddrPort{}, netip.AddrPortFrom(addrB, 7))
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 70000)
		for _, size := range []int{1500 - 28 + 1, 4000, 65507} {
			msg := make([]byte, size)
			for i := range msg {
				msg[i] = byte(i * 13)
			}
			if _, err := c.Write(msg); err != nil {
				t.Fatalf("%d bytes: %v", size, err)
			}
			n, err := c.Read(buf)
			if err != nil || !bytes.Equal(buf[:n], msg) {
				t.Fatalf("%d bytes: echo of %d, %v", size, n, err)
			}
		}
		// 1473 bytes: 2 fragments; 4000: 3; 65507: 45 (1480 a fragment).
		for _, s := range []*Stack{p.a, p.b} {
			if c := s.Counters().IP; c.FragOKs != 3 || c.FragCreates != 2+3+45 || c.ReasmOKs != 3 {
				t.Errorf("FragOKs %d FragCreates %d ReasmOKs %d, want 3 50 3", c.FragOKs, c.FragCreates, c.ReasmOKs)
			}
		}
		c6, err := p.a.DialUDP("udp", netip.AddrPort{}, netip.AddrPortFrom(addrB6, 7))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c6.Write(make([]byte, 1500-48+1)); !errors.Is(err, syscall.EMSGSIZE) {
			t.Errorf("IPv6 over the MTU: %v, want EMSGSIZE", err)
		}
	})
}

// TestUDPConcurrent: several writers and readers on the same sockets at
// once (run with -race); every datagram arrives once.
func TestUDPConcurrent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{})
		srv, err := p.b.ListenUDP("udp", netip.AddrPortFrom(netip.Addr{}, 7))
		if err != nil {
			t.Fatal(err)
		}
		cli, err := p.a.ListenUDP("udp", netip.AddrPort{})
		if err != nil {
			t.Fatal(err)
		}
		const writers, each = 4, 50
		got := make(chan string, writers*each)
		for range 2 {
			go func() {
				buf := make([]byte, 100)
				for {
					n, _, err := srv.ReadFromUDPAddrPort(buf)
					if err != nil {
						return
					}
					got <- string(buf[:n])
				}
			}()
		}
		for w := range writers {
			to := netip.AddrPortFrom(addrB, 7)
			if w%2 == 1 {
				to = netip.AddrPortFrom(addrB6, 7)
			}
			go func() {
				for i := range each {
					if _, err := cli.WriteToUDPAddrPort([]byte(fmt.Sprint(w, "/", i)), to); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		seen := make(map[string]bool)
		for range writers * each {
			m := <-got
			if seen[m] {
				t.Fatalf("%q twice", m)
			}
			seen[m] = true
		}
		srv.Close()
		synctest.Wait()
		if c := p.b.Counters().UDP; c.InDatagrams != writers*each || c.InErrors != 0 {
			t.Errorf("counters %+v", c)
		}
	})
}

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

	"github.com/synack/synack/wire"
)

// echoRequest builds an echo request message as a ping program writes it
// to a ping socket: identifier and checksum left for the socket.
func echoRequest(v6 bool, id, seq uint16, data []byte) []byte {
	if v6 {
		m := wire.NewICMPv6Echo(false, id, seq, data)
		return wire.AppendICMPv6(nil, &m, addrA6, addrB6) // checksum overwritten by the socket
	}
	m := wire.NewICMPv4Echo(false, id, seq, data)
	return wire.AppendICMPv4(nil, &m)
}

// checkReply parses the reply b read from pc, sent from from to to, and
// checks it answers the request with seq and data: the identifier is the
// socket's and the checksum holds.
func checkReply(t *testing.T, pc *PingConn, b []byte, from, to netip.Addr, seq uint16, data []byte) {
	t.Helper()
	var typ uint8
	var rest uint32
	var got []byte
	if to.Is6() {
		m, err := wire.ParseICMPv6(b, from, to, true)
		if err != nil {
			t.Fatalf("reply %x: %v", b, err)
		}
		typ, rest, got = m.Type, m.Rest, m.Data
		if typ != wire.ICMPv6EchoReply {
			t.Fatalf("reply type %d, want %d", typ, wire.ICMPv6EchoReply)
		}
	} else {
		m, err := wire.ParseICMPv4(b, true)
		if err != nil {
			t.Fatalf("reply %x: %v", b, err)
		}
		typ, rest, got = m.Type, m.Rest, m.Data
		if typ != wire.ICMPv4EchoReply {
			t.Fatalf("reply type %d, want %d", typ, wire.ICMPv4EchoReply)
		}
	}
	if id := uint16(rest >> 16); id != pc.ID() {
		t.Errorf("reply identifier %d, want the socket's %d", id, pc.ID())
	}
	if s := uint16(rest); s != seq {
		t.Errorf("reply seq %d, want %d", s, seq)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("reply data %q, want %q", got, data)
	}
}

// TestPingEcho: ping sockets on one stack, answered by the other stack,
// both ways, IPv4 and IPv6, connected (Write/Read) and not
// (WriteTo/ReadFrom); the identifier the user wrote is replaced by the
// socket's.
func TestPingEcho(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{})
		for _, dir := range []struct {
			name     string
			cli      *Stack
			la, ra   netip.Addr
			la6, ra6 netip.Addr
		}{
			{"a->b", p.a, addrA, addrB, addrA6, addrB6},
			{"b->a", p.b, addrB, addrA, addrB6, addrA6},
		} {
			for _, v6 := range []bool{false, true} {
				la, ra := dir.la, dir.ra
				if v6 {
					la, ra = dir.la6, dir.ra6
				}
				data := []byte("ping " + dir.name + " " + ra.String())

				// Connected.
				pc, err := dir.cli.ListenPing(netip.Addr{}, ra)
				if err != nil {
					t.Fatal(err)
				}
				if pc.ID() == 0 {
					t.Errorf("identifier 0")
				}
				if got := pc.RemoteAddr().String(); got != ra.String() {
					t.Errorf("RemoteAddr %s, want %s", got, ra)
				}
				if _, err := pc.Write(echoRequest(v6, 0xbeef, 1, data)); err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, 1500)
				n, err := pc.Read(buf)
				if err != nil {
					t.Fatal(err)
				}
				checkReply(t, pc, buf[:n], ra, la, 1, data)
				pc.Close()

				// Unconnected, bound to our address.
				pc, err = dir.cli.ListenPing(la, netip.Addr{})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := pc.WriteTo(echoRequest(v6, 0, 2, data), &net.IPAddr{IP: ra.AsSlice()}); err != nil {
					t.Fatal(err)
				}
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					t.Fatal(err)
				}
				if from.String() != ra.String() {
					t.Errorf("reply from %s, want %s", from, ra)
				}
				checkReply(t, pc, buf[:n], ra, la, 2, data)
				pc.Close()
			}
		}
	})
}

// TestPingDemux: replies go to the socket whose identifier they carry,
// each once, whatever identifier the user wrote.
func TestPingDemux(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{})
		var pcs []*PingConn
		for range 3 {
			pc, err := p.a.ListenPing(netip.Addr{}, addrB)
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			pcs = append(pcs, pc)
		}
		seen := map[uint16]bool{}
		for i, pc := range pcs {
			if seen[pc.ID()] {
				t.Fatalf("identifier %d given twice", pc.ID())
			}
			seen[pc.ID()] = true
			// All write the same identifier: the socket's replaces it.
			if _, err := pc.Write(echoRequest(false, 7, uint16(100+i), []byte{byte(i)})); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		for i, pc := range pcs {
			buf := make([]byte, 100)
			n, err := pc.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			checkReply(t, pc, buf[:n], addrB, addrA, uint16(100+i), []byte{byte(i)})
			pc.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := pc.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("socket %d: a second reply or %v, want only its own reply", i, err)
			}
		}
	})
}

// TestPingErrors: the errors a ping socket reports, shaped as the net
// package shapes a kernel socket's.
func TestPingErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{})
		isErrno := func(what string, err error, want syscall.Errno) {
			t.Helper()
			var oe *net.OpError
			if !errors.As(err, &oe) || !errors.Is(err, want) {
				t.Errorf("%s: %v, want a *net.OpError wrapping %v", what, err, want)
			}
		}
		_, err := p.a.ListenPing(netip.Addr{}, netip.Addr{})
		isErrno("no address", err, syscall.EINVAL)
		_, err = p.a.ListenPing(addrB, netip.Addr{})
		isErrno("bind to an address not ours", err, syscall.EADDRNOTAVAIL)
		_, err = p.a.ListenPing(addrA, addrB6)
		isErrno("families differ", err, syscall.EAFNOSUPPORT)
		_, err = p.a.ListenPing(netip.Addr{}, netip.MustParseAddr("203.0.113.1"))
		isErrno("no route", err, syscall.ENETUNREACH)

		pc, err := p.a.ListenPing(netip.Addr{}, addrB)
		if err != nil {
			t.Fatal(err)
		}
		_, err = pc.Write([]byte{8, 0, 0})
		isErrno("short message", err, syscall.EINVAL)
		_, err = pc.Write(echoRequest(true, 0, 1, nil))
		isErrno("ICMPv6 echo on an IPv4 socket", err, syscall.EINVAL)
		reply := echoRequest(false, 0, 1, nil)
		reply[0] = wire.ICMPv4EchoReply
		_, err = pc.Write(reply)
		isErrno("echo reply written", err, syscall.EINVAL)
		if _, err := pc.WriteTo(echoRequest(false, 0, 1, nil), &net.IPAddr{IP: addrB.AsSlice()}); !errors.Is(err, net.ErrWriteToConnected) {
			t.Errorf("WriteTo on a connected socket: %v, want net.ErrWriteToConnected", err)
		}

		// A blocked Read ends at the deadline, then with net.ErrClosed on
		// Close.
		start := time.Now()
		pc.SetReadDeadline(start.Add(3 * time.Second))
		if _, err := pc.Read(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("read past the deadline: %v", err)
		}
		if d := time.Since(start); d != 3*time.Second {
			t.Errorf("deadline passed after %v, want 3s", d)
		}
		pc.SetWriteDeadline(start)
		if _, err := pc.Write(echoRequest(false, 0, 1, nil)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("write past the deadline: %v", err)
		}
		pc.SetDeadline(time.Time{})
		done := make(chan error)
		go func() {
			_, err := pc.Read(make([]byte, 10))
			done <- err
		}()
		synctest.Wait()
		pc.Close()
		if err := <-done; !errors.Is(err, net.ErrClosed) {
			t.Errorf("read across Close: %v, want net.ErrClosed", err)
		}
		if err := pc.Close(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("second Close: %v", err)
		}

		// Unconnected: Write has no destination; the family is checked.
		u, err := p.a.ListenPing(addrA6, netip.Addr{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = u.Write(echoRequest(true, 0, 1, nil))
		isErrno("Write unconnected", err, syscall.EDESTADDRREQ)
		_, err = u.WriteToAddr(echoRequest(true, 0, 1, nil), addrB)
		isErrno("IPv4 destination on an IPv6 socket", err, syscall.EAFNOSUPPORT)
		// IPv6 builds no Fragment header: a message over the MTU fails.
		_, err = u.WriteToAddr(echoRequest(true, 0, 1, make([]byte, 70000-8-48)), addrB6)
		isErrno("over 64 KiB", err, syscall.EMSGSIZE)
		_, err = u.WriteToAddr(echoRequest(true, 0, 1, make([]byte, 2000)), addrB6)
		isErrno("IPv6 over the MTU", err, syscall.EMSGSIZE)

		// Stack.Close ends a blocked Read.
		go func() {
			_, err := u.Read(make([]byte, 10))
			done <- err
		}()
		synctest.Wait()
		p.a.Close()
		if err := <-done; !errors.Is(err, net.ErrClosed) {
			t.Errorf("read across Stack.Close: %v, want net.ErrClosed", err)
		}
	})
}

// TestPingIdentifierReuse: a closed socket's identifier is free again,
// and a reply for it after Close reaches no one.
func TestPingIdentifierReuse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{})
		pc, err := p.a.ListenPing(netip.Addr{}, addrB)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pc.Write(echoRequest(false, 0, 9, nil)); err != nil {
			t.Fatal(err)
		}
		pc.Close() // before the reply arrives
		synctest.Wait()
		if n := len(p.a.ping.socks[0]); n != 0 {
			t.Errorf("%d sockets in the table after Close", n)
		}
		// The identifier is taken by the next socket once the hash
		// counter wraps back to it; here just check it is reusable.
		p.a.mu.Lock()
		_, busy := p.a.ping.socks[0][pc.ID()]
		p.a.mu.Unlock()
		if busy {
			t.Errorf("identifier %d still held after Close", pc.ID())
		}
	})
}

// TestPingFragments: an IPv4 echo request larger than the link's MTU
// leaves in fragments (as Linux's ping socket sends it) and the peer
// reassembles it into one echo request.
func TestPingFragments(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{})
		pc, err := p.a.ListenPing(netip.Addr{}, addrB)
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		if _, err := pc.Write(echoRequest(false, 0, 1, make([]byte, 4000))); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		a, b := p.a.Counters(), p.b.Counters()
		if a.IP.FragCreates < 3 {
			t.Errorf("%d fragments sent, want at least 3 for 4008 bytes", a.IP.FragCreates)
		}
		if b.IP.ReasmOKs != 1 || b.ICMP.InEchos != 1 {
			t.Errorf("peer: %d reassembled, %d echo requests; want 1 and 1", b.IP.ReasmOKs, b.ICMP.InEchos)
		}
	})
}

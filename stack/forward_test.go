package stack

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/netip"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/synack/synack/link/memlink"
	"github.com/synack/synack/tcp"
	"github.com/synack/synack/wire"
)

var (
	farAddr  = netip.MustParseAddr("203.0.113.5") // nobody's on the pair's link
	farAddr6 = netip.MustParseAddr("2001:db8::5")
)

// newForwardPair is a pair whose a routes everything to b, as a host
// routes into a TUN device, and whose b runs a forwarder with opts.
func newForwardPair(t *testing.T, opts ForwarderOptions) (*pair, *Listener) {
	t.Helper()
	p := newPair(t, pairOpts{})
	for _, r := range []struct {
		dst string
		gw  netip.Addr
	}{{"0.0.0.0/0", addrB}, {"::/0", addrB6}} {
		if err := p.a.AddRoute(netip.MustParsePrefix(r.dst), r.gw, 1); err != nil {
			t.Fatal(err)
		}
	}
	f, err := p.b.ListenAny(opts)
	if err != nil {
		t.Fatal(err)
	}
	return p, f
}

// TestForwardAnyDestination: connections to addresses and ports the
// forwarding stack does not have are accepted, with the original
// destination as their local address, and carry data both ways with
// half-close.
func TestForwardAnyDestination(t *testing.T) {
	for _, dst := range []netip.AddrPort{
		netip.AddrPortFrom(farAddr, 443), netip.AddrPortFrom(farAddr6, 22),
		netip.AddrPortFrom(netip.MustParseAddr("8.8.8.8"), 53),
	} {
		t.Run(dst.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p, f := newForwardPair(t, ForwarderOptions{})
				c, err := p.a.DialTCP(context.Background(), dst)
				if err != nil {
					t.Fatalf("dial %v through the forwarder: %v", dst, err)
				}
				defer c.Close()
				s, err := f.AcceptTCP()
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				if got := s.Tuple(); got.Local != dst || got.Remote != c.Tuple().Local {
					t.Errorf("accepted %v, want local %v (the SYN's destination), remote %v", got, dst, c.Tuple().Local)
				}
				msg := bytes.Repeat([]byte("forwarded "), 50000)
				go func() {
					c.Write(msg)
					c.CloseWrite()
				}()
				got, err := io.ReadAll(s)
				if err != nil || !bytes.Equal(got, msg) {
					t.Fatalf("forwarded side read %d bytes, %v; want %d then EOF", len(got), err, len(msg))
				}
				s.Write([]byte("reply"))
				s.CloseWrite()
				if got, err := io.ReadAll(c); err != nil || string(got) != "reply" {
					t.Errorf("client read %q, %v", got, err)
				}
			})
		})
	}
}

// TestForwardListenersFirst: an ordinary listener keeps its port on its
// own address; a wildcard listener takes only our own addresses, so the
// same port on a foreign address goes to the forwarder; a port of ours
// with no listener goes to the forwarder too.
func TestForwardListenersFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, f := newForwardPair(t, ForwarderOptions{})
		l80, err := p.b.ListenTCP(netip.AddrPortFrom(addrB, 80), 0)
		if err != nil {
			t.Fatal(err)
		}
		lAny, err := p.b.ListenTCP(netip.AddrPortFrom(netip.Addr{}, 8080), 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			dst  netip.AddrPort
			want *Listener
			name string
		}{
			{netip.AddrPortFrom(addrB, 80), l80, "the listener on b:80"},
			{netip.AddrPortFrom(addrB, 8080), lAny, "the wildcard listener"},
			{netip.AddrPortFrom(farAddr, 8080), f, "the forwarder (not the wildcard listener)"},
			{netip.AddrPortFrom(farAddr, 80), f, "the forwarder"},
			{netip.AddrPortFrom(addrB, 81), f, "the forwarder (our address, no listener)"},
		} {
			c, err := p.a.DialTCP(context.Background(), tc.dst)
			if err != nil {
				t.Fatalf("dial %v: %v", tc.dst, err)
			}
			synctest.Wait()
			for _, l := range []*Listener{l80, lAny, f} {
				l.SetDeadline(time.Now().Add(time.Millisecond))
				s, err := l.AcceptTCP()
				l.SetDeadline(time.Time{})
				if (err == nil) != (l == tc.want) {
					t.Errorf("dial %v: accepted by %v (err %v); want %s", tc.dst, l.Addr(), err, tc.name)
				}
				if err == nil {
					if s.Tuple().Local != tc.dst {
						t.Errorf("dial %v: accepted as %v", tc.dst, s.Tuple())
					}
					s.Close()
				}
			}
			c.Close()
		}
	})
}

// TestForwardOnlyWhenInstalled: without a forwarder a SYN to a foreign
// address is dropped (InAddrErrors), as before; after the forwarder is
// closed, again; and a closed stack's forwarder Accept returns.
func TestForwardOnlyWhenInstalled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, f := newForwardPair(t, ForwarderOptions{})
		f.Close()
		for range 2 {
			before := p.b.Counters().IP.InAddrErrors
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err := p.a.DialTCP(ctx, netip.AddrPortFrom(farAddr, 443))
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("dial a foreign address with no forwarder: %v, want no answer", err)
			}
			if got := p.b.Counters().IP.InAddrErrors; got <= before {
				t.Errorf("InAddrErrors %d -> %d: the SYNs were not dropped as not ours", before, got)
			}
			if got := p.b.Counters().TCP.InSegs; got != 0 {
				t.Errorf("TCP InSegs = %d: a segment to a foreign address reached TCP", got)
			}
			// A forwarder closed by Stack.Close: Accept returns.
			g, err := p.b.ListenAny(ForwarderOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.b.ListenAny(ForwarderOptions{}); !errors.Is(err, syscall.EADDRINUSE) {
				t.Errorf("second ListenAny: %v, want EADDRINUSE", err)
			}
			g.Close()
		}
		g, _ := p.b.ListenAny(ForwarderOptions{})
		done := make(chan error)
		go func() { _, err := g.AcceptTCP(); done <- err }()
		synctest.Wait()
		p.b.Close()
		if err := <-done; err == nil {
			t.Error("Accept on the forwarder of a closed stack returned a connection")
		}
	})
}

// TestForwardMartianDestinations: with a forwarder installed, SYNs to
// addresses no host may have are still dropped, and so is what is not
// TCP to a foreign address.
func TestForwardMartianDestinations(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRawPeer(t)
		if _, err := r.s.ListenAny(ForwarderOptions{}); err != nil {
			t.Fatal(err)
		}
		syn := wire.TCPHeader{Seq: 100, Flags: wire.SYN, Window: 1000}
		for _, dst := range []string{"224.0.0.1", "255.255.255.255", "127.0.0.1", "0.1.2.3", "240.0.0.1", "ff02::1", "::1", "::ffff:1.2.3.4", "::"} {
			d := netip.MustParseAddr(dst)
			src := addrB
			if d.Is6() {
				src = addrB6
			}
			r.send(tcpPacket(netip.AddrPortFrom(src, 4000), netip.AddrPortFrom(d, 80), syn, nil))
			if p := r.recv(); p != nil {
				t.Errorf("SYN to %v answered: %v -> %v", dst, p.Src, p.Dst)
			}
		}
		// A martian source is dropped too.
		r.send(tcpPacket(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), 4000), netip.AddrPortFrom(farAddr, 80), syn, nil))
		if p := r.recv(); p != nil {
			t.Errorf("SYN from 127.0.0.1 answered")
		}
		// UDP and ping to a foreign address: not the forwarder's.
		r.send(ipPacket(addrB, farAddr, wire.ProtocolUDP, []byte{0, 1, 0, 2, 0, 8, 0, 0}))
		m := wire.NewICMPv4Echo(false, 1, 1, nil)
		r.send(ipPacket(addrB, farAddr, wire.ProtocolICMP, wire.AppendICMPv4(nil, &m)))
		if p := r.recv(); p != nil {
			t.Errorf("UDP or ICMP to a foreign address answered: %v", p.Protocol)
		}
		if got := r.s.Counters().TCP.InSegs; got != 0 {
			t.Errorf("TCP InSegs = %d, want 0", got)
		}
		// A good one is answered, from the address it was sent to.
		r.send(tcpPacket(netip.AddrPortFrom(addrB, 4000), netip.AddrPortFrom(farAddr, 80), syn, nil))
		p := r.recv()
		if p == nil || p.Src != farAddr || p.Dst != addrB {
			t.Fatalf("SYN to %v: got %+v, want a SYN,ACK from it", farAddr, p)
		}
	})
}

// TestForwardMaxInFlight: the SYN queue holds MaxInFlight handshakes;
// beyond, SYNs get cookies (the default) or are dropped (SynCookiesOff).
func TestForwardMaxInFlight(t *testing.T) {
	for _, mode := range []SynCookieMode{SynCookiesAuto, SynCookiesOff} {
		t.Run(mode.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newRawPeerOpts(t, Options{SynCookies: mode})
				if _, err := r.s.ListenAny(ForwarderOptions{MaxInFlight: 2}); err != nil {
					t.Fatal(err)
				}
				syn := wire.TCPHeader{Seq: 100, Flags: wire.SYN, Window: 1000}
				answered := 0
				for i := range 4 {
					r.send(tcpPacket(netip.AddrPortFrom(addrB, uint16(4000+i)), netip.AddrPortFrom(farAddr, 80), syn, nil))
					if p := r.recv(); p != nil {
						answered++
					}
				}
				c := r.s.Counters().TCP
				switch mode {
				case SynCookiesAuto:
					if answered != 4 || c.SyncookiesSent != 2 {
						t.Errorf("%d SYN,ACKs, %d cookies; want 4, 2 of them cookies", answered, c.SyncookiesSent)
					}
				case SynCookiesOff:
					if answered != 2 || c.ListenDrops != 2 {
						t.Errorf("%d SYN,ACKs, ListenDrops %d; want 2 and 2", answered, c.ListenDrops)
					}
				}
			})
		})
	}
}

// TestForwardNIC: a forwarder limited to one link leaves the others'
// foreign destinations dropped.
func TestForwardNIC(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRawPeer(t)
		if _, err := r.s.ListenAny(ForwarderOptions{NIC: 2}); !errors.Is(err, syscall.ENODEV) {
			t.Errorf("ListenAny on a link that does not exist: %v, want ENODEV", err)
		}
		ea, _ := newPipeEnds()
		id, err := r.s.AddLink(ea, netip.MustParsePrefix("198.19.0.1/24"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.s.ListenAny(ForwarderOptions{NIC: id}); err != nil {
			t.Fatal(err)
		}
		r.send(tcpPacket(netip.AddrPortFrom(addrB, 4000), netip.AddrPortFrom(farAddr, 80), wire.TCPHeader{Seq: 1, Flags: wire.SYN, Window: 1000}, nil))
		if p := r.recv(); p != nil {
			t.Errorf("SYN on link 1 answered by a forwarder on link %d", id)
		}
	})
}

// newPipeEnds is a memlink pipe whose ends the caller owns.
func newPipeEnds() (*memlink.Endpoint, *memlink.Endpoint) { return memlink.Pipe(memlink.Config{}) }

// TestForwardListed: the forwarder is listed as a listener (on *:0), its
// handshakes in flight as SYN-RECEIVED, its bound as the SYN backlog.
func TestForwardListed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRawPeer(t)
		if _, err := r.s.ListenAny(ForwarderOptions{MaxInFlight: 7}); err != nil {
			t.Fatal(err)
		}
		r.send(tcpPacket(netip.AddrPortFrom(addrB, 4000), netip.AddrPortFrom(farAddr, 80), wire.TCPHeader{Seq: 1, Flags: wire.SYN, Window: 1000}, nil))
		r.recv()
		ls := r.s.Listeners()
		if len(ls) != 1 || ls[0].SynQueue != 1 || ls[0].SynBacklog != 7 || ls[0].Addr.IsValid() && ls[0].Addr.Port() != 0 {
			t.Errorf("Listeners() = %+v, want the forwarder with 1 of 7 in its SYN queue", ls)
		}
		found := false
		for _, c := range r.s.Connections() {
			if c.State == tcp.SynReceived && c.Tuple.Local == netip.AddrPortFrom(farAddr, 80) {
				found = true
			}
		}
		if !found {
			t.Errorf("Connections() has no SYN-RECEIVED entry to %v: %+v", netip.AddrPortFrom(farAddr, 80), r.s.Connections())
		}
		if got := r.s.StateCounts()[tcp.SynReceived]; got != 1 {
			t.Errorf("StateCounts()[SYN-RECEIVED] = %d, want 1", got)
		}
	})
}

package stack

import (
	"net/netip"
	"testing"
	"testing/synctest"

	"github.com/synack/synack/tcp"
	"github.com/synack/synack/wire"
)

// newListeningPeer is a raw peer whose stack listens on port 80 of every
// address and has default routes, so that a SYN from anywhere would be
// answered if it were taken.
func newListeningPeer(t *testing.T) *rawPeer {
	t.Helper()
	r := newRawPeer(t)
	for _, p := range []string{"0.0.0.0/0", "::/0"} {
		if err := r.s.AddRoute(netip.MustParsePrefix(p), netip.Addr{}, 1); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.s.ListenTCP(netip.AddrPortFrom(netip.Addr{}, 80), 0); err != nil {
		t.Fatal(err)
	}
	return r
}

// synFrom sends a SYN from src:80 to dst:80 (a LAND attack when both are
// the same) and returns the TCP header of the answer, if any.
func (r *rawPeer) synFrom(src, dst netip.Addr) *wire.TCPHeader {
	r.t.Helper()
	r.send(tcpPacket(netip.AddrPortFrom(src, 80), netip.AddrPortFrom(dst, 80), wire.TCPHeader{Seq: 7, Flags: wire.SYN, Window: 65535}, nil))
	p := r.recv()
	if p == nil {
		return nil
	}
	h, _, err := wire.ParseTCP(p.Payload, p.Src, p.Dst, true)
	if err != nil {
		r.t.Fatalf("bad answer: %v", err)
	}
	return &h
}

// RFC 1122 3.2.1.3 and 4.2.3.10, RFC 4291: a SYN from a martian source
// gets no SYN,ACK and no SYN-queue entry, and is counted in InAddrErrors.
func TestMartianSourcesDiscarded(t *testing.T) {
	martians := []struct {
		name string
		src  string
		dst  netip.Addr
	}{
		{"limited broadcast", "255.255.255.255", addrA},
		{"subnet broadcast", "198.18.0.255", addrA},
		{"loopback", "127.0.0.1", addrA},
		{"loopback /8", "127.9.9.9", addrA},
		{"this network", "0.1.2.3", addrA},
		{"unspecified", "0.0.0.0", addrA},
		{"multicast", "224.0.0.1", addrA},
		{"class E", "240.0.0.1", addrA},
		{"our own address (LAND)", "198.18.0.1", addrA},
		{"IPv6 loopback", "::1", addrA6},
		{"IPv6 unspecified", "::", addrA6},
		{"IPv6 multicast", "ff02::1", addrA6},
		{"IPv4-mapped", "::ffff:198.18.0.2", addrA6},
		{"our own IPv6 address (LAND)", "fd00::1", addrA6},
	}
	for _, m := range martians {
		t.Run(m.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newListeningPeer(t)
				if h := r.synFrom(netip.MustParseAddr(m.src), m.dst); h != nil {
					t.Errorf("SYN from %s answered: %v", m.src, h)
				}
				if n := r.s.StateCounts()[tcp.SynReceived]; n != 0 {
					t.Errorf("SYN from %s made %d SYN-queue entries", m.src, n)
				}
				if c := r.s.Counters(); c.IP.InAddrErrors != 1 || c.TCP.InSegs != 0 {
					t.Errorf("InAddrErrors %d, TCP InSegs %d; want 1, 0", c.IP.InAddrErrors, c.TCP.InSegs)
				}
			})
		})
	}
	// The same peer from a proper address is answered: the listener and
	// the routes are there.
	synctest.Test(t, func(t *testing.T) {
		r := newListeningPeer(t)
		for _, src := range []netip.Addr{addrB, addrB6, netip.MustParseAddr("203.0.113.9"), netip.MustParseAddr("198.18.0.254")} {
			dst := addrA
			if src.Is6() {
				dst = addrA6
			}
			if h := r.synFrom(src, dst); h == nil || h.Flags != wire.SYN|wire.ACK {
				t.Errorf("SYN from %v: answer %v, want a SYN,ACK", src, h)
			}
		}
		if c := r.s.Counters().IP; c.InAddrErrors != 0 {
			t.Errorf("InAddrErrors %d for proper sources", c.InAddrErrors)
		}
	})
}

// RFC 1122 4.2.3.10: a SYN to a broadcast or multicast address is
// discarded; only our unicast addresses take segments.
func TestSYNToBroadcastDiscarded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newListeningPeer(t)
		for _, dst := range []string{"198.18.0.255", "255.255.255.255", "224.0.0.1", "ff02::1"} {
			src := addrB
			if d := netip.MustParseAddr(dst); d.Is6() {
				src = addrB6
			}
			if h := r.synFrom(src, netip.MustParseAddr(dst)); h != nil {
				t.Errorf("SYN to %s answered: %v", dst, h)
			}
		}
		if c := r.s.Counters(); c.IP.InAddrErrors != 4 || c.TCP.InSegs != 0 || r.s.StateCounts()[tcp.SynReceived] != 0 {
			t.Errorf("InAddrErrors %d, InSegs %d, want 4, 0", c.IP.InAddrErrors, c.TCP.InSegs)
		}
	})
}

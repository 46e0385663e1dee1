package stack

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/synack/synack/link/memlink"
	"github.com/synack/synack/tcp"
)

// connectWith dials from p.a with dc to a listener on p.b made with lc,
// and returns both ends. cookies sends every SYN,ACK as a SYN cookie, so
// that the listener's ConnConfig must reach a connection made from a
// cookie too.
func connectWith(t *testing.T, p *pair, port uint16, dc, lc ConnConfig) (client, server *TCPConn) {
	t.Helper()
	l, err := p.b.ListenTCPWith(netip.AddrPortFrom(addrB, port), 0, lc)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client, err = p.a.DialTCPWith(ctx, netip.AddrPort{}, netip.AddrPortFrom(addrB, port), dc)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	server, err = l.AcceptTCP()
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	return client, server
}

// A buffer set before the handshake sizes the window scale the SYN and
// the SYN,ACK offer (RFC 7323 section 2.2), which nothing can change
// afterwards; and the controller and keep-alive set there are the
// connection's from its first segment. For a SYN-queue entry and for a
// SYN cookie alike.
func TestConnConfigBeforeHandshake(t *testing.T) {
	for _, cookies := range []SynCookieMode{SynCookiesAuto, SynCookiesAlways} {
		synctest.Test(t, func(t *testing.T) {
			p := newPair(t, pairOpts{b: Options{SynCookies: cookies}})
			c0, s0 := p.connect(t, 80)
			big := ConnConfig{ReceiveBufferSize: 64 << 20, CongestionControl: "bbr"}
			c1, s1 := connectWith(t, p, 81, big, big)
			for _, x := range []struct {
				name       string
				def, given *TCPConn
			}{{"dialed", c0, c1}, {"accepted", s0, s1}} {
				d, g := x.def.Info(), x.given.Info()
				// The peer's side of each: what our SYN or SYN,ACK offered.
				if g.RcvWScale <= d.RcvWScale {
					t.Errorf("cookies %v, %s: window scale %d with a 64 MiB buffer, %d by default", cookies, x.name, g.RcvWScale, d.RcvWScale)
				}
				if g.CongestionControl != "bbr" || d.CongestionControl != "cubic" {
					t.Errorf("cookies %v, %s: controllers %q given, %q by default", cookies, x.name, g.CongestionControl, d.CongestionControl)
				}
			}
			if got, want := c1.Info().SndWScale, s1.Info().RcvWScale; got != want {
				t.Errorf("cookies %v: the client shifts by %d, the server offered %d", cookies, got, want)
			}
			for _, c := range []*TCPConn{c0, s0, c1, s1} {
				c.Close()
			}
			p.close()
		})
	}
}

// Keep-alive set on a listener is on for the connections it accepts, with
// Go's defaults for the fields left zero (as net.ListenConfig's
// KeepAliveConfig): the peer vanishes and the accepted connection ends.
func TestConnConfigKeepAliveOnListener(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var cut atomic.Bool
		drop := func([]byte) bool { return cut.Load() }
		p := newPair(t, pairOpts{link: memlink.Config{AB: memlink.Impairments{Drop: drop}, BA: memlink.Impairments{Drop: drop}}})
		ka := ConnConfig{KeepAlive: net.KeepAliveConfig{Enable: true, Idle: 20 * time.Second, Count: 2}}
		_, s := connectWith(t, p, 80, ConnConfig{}, ka)
		start := time.Now()
		cut.Store(true)
		if _, err := s.Read(make([]byte, 1)); !errors.Is(err, syscall.ETIMEDOUT) {
			t.Fatalf("Read = %v, want ETIMEDOUT", err)
		}
		// 20 s idle, then two probes 15 s apart (Go's default interval), and 15 s for the last.
		if got, want := time.Since(start), 20*time.Second+2*15*time.Second; got != want {
			t.Errorf("keep-alive gave up after %v, want %v", got, want)
		}
		p.close()
	})
}

// Settings no connection can run with fail the call, before a segment is
// sent: an unknown controller, a negative buffer.
func TestConnConfigRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{})
		for _, cc := range []ConnConfig{{CongestionControl: "vegas"}, {ReceiveBufferSize: -1}, {SendBufferSize: -5}} {
			want := error(syscall.EINVAL)
			if cc.CongestionControl != "" {
				want = tcp.ErrUnknownCongestionControl
			}
			if _, err := p.b.ListenTCPWith(netip.AddrPortFrom(addrB, 80), 0, cc); !errors.Is(err, want) {
				t.Errorf("ListenTCPWith(%+v) = %v, want %v", cc, err, want)
			}
			if _, err := p.a.DialTCPWith(context.Background(), netip.AddrPort{}, netip.AddrPortFrom(addrB, 80), cc); !errors.Is(err, want) {
				t.Errorf("DialTCPWith(%+v) = %v, want %v", cc, err, want)
			}
			if _, err := p.b.ListenAny(ForwarderOptions{Conn: cc}); !errors.Is(err, want) {
				t.Errorf("ListenAny(%+v) = %v, want %v", cc, err, want)
			}
		}
		if n := p.a.Counters().TCP.OutSegs; n != 0 {
			t.Errorf("%d segments sent by refused dials", n)
		}
		p.close()
	})
}

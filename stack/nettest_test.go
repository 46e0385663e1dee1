package stack

import (
	"context"
	"net"
	"net/netip"
	"testing"

	"golang.org/x/net/nettest"

	"github.com/synack/synack/tcp"
)

// TestNettest runs x/net/nettest's conformance suite for net.Conn. It runs
// on the real clock, outside a synctest bubble, because nettest calls
// t.Run, which a bubble forbids; the network is still memlink, and the
// only waits are nettest's own 100 ms timers.
func TestNettest(t *testing.T) {
	for _, fam := range []struct {
		name string
		addr netip.Addr
	}{{"IPv4", addrB}, {"IPv6", addrB6}} {
		t.Run(fam.name, func(t *testing.T) {
			nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
				small := Options{TCP: tcp.Config{SendBufferSize: 64 << 10, ReceiveBufferSize: 64 << 10}}
				p := newPair(t, pairOpts{a: small, b: small})
				l, err := p.b.ListenTCP(netip.AddrPortFrom(fam.addr, 80), 0)
				if err != nil {
					return nil, nil, nil, err
				}
				acc := make(chan net.Conn, 1)
				go func() {
					c, err := l.Accept()
					if err != nil {
						close(acc)
						return
					}
					acc <- c
				}()
				c1, err = p.a.DialTCP(context.Background(), netip.AddrPortFrom(fam.addr, 80))
				if err != nil {
					p.close()
					return nil, nil, nil, err
				}
				c2 = <-acc
				stop = func() {
					c1.Close()
					if c2 != nil {
						c2.Close()
					}
					l.Close()
					p.close()
				}
				return c1, c2, stop, nil
			})
		})
	}
}

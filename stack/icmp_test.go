package stack

import (
	"context"
	"errors"
	"net/netip"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/synack/synack/wire"
)

// An ICMPv6 Parameter Problem "unrecognized Next Header type" (RFC 4443
// section 3.4) quoting our SYN says the destination has no TCP: IPv6's
// protocol unreachable, a hard error that ends the connect (RFC 1122
// 4.2.3.9, codes 2-4). Other parameter problems are soft (RFC 1122:
// "handled the same way as Destination Unreachable codes 0, 1, 5").
func TestICMPv6ParamProblemUnknownNextHeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRawPeer(t)
		errc := make(chan error, 1)
		go func() {
			_, err := r.s.DialTCP(context.Background(), netip.AddrPortFrom(addrB6, 80))
			errc <- err
		}()
		p := r.recv()
		if p == nil {
			t.Fatal("no SYN")
		}
		orig := ipPacket(p.Src, p.Dst, wire.ProtocolTCP, p.Payload[:8])
		soft := wire.ICMPv6Message{Type: wire.ICMPv6ParamProblem, Code: 0, Data: orig}
		r.send(ipPacket(addrB6, addrA6, wire.ProtocolICMPv6, wire.AppendICMPv6(nil, &soft, addrB6, addrA6)))
		synctest.Wait()
		select {
		case err := <-errc:
			t.Fatalf("a soft parameter problem (erroneous header field) ended the dial: %v", err)
		default:
		}
		hard := wire.ICMPv6Message{Type: wire.ICMPv6ParamProblem, Code: icmpv6UnknownNextHeader, Data: orig}
		r.send(ipPacket(addrB6, addrA6, wire.ProtocolICMPv6, wire.AppendICMPv6(nil, &hard, addrB6, addrA6)))
		select {
		case err := <-errc:
			if !errors.Is(err, syscall.ENOPROTOOPT) {
				t.Errorf("dial: %v, want ENOPROTOOPT (protocol unreachable)", err)
			}
		case <-time.After(500 * time.Millisecond):
			t.Fatal("dial still waiting after ICMPv6 unknown next header")
		}
		if c := r.s.Counters().ICMP; c.InErrorsMatched != 2 {
			t.Errorf("InErrorsMatched %d, want 2", c.InErrorsMatched)
		}
	})
}

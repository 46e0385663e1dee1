package stack

import (
	"context"
	"net/netip"
	"testing"
	"testing/synctest"

	"github.com/synack/synack/link"
	"github.com/synack/synack/link/memlink"
	"github.com/synack/synack/wire"
)

// The MSS option of our SYN follows the link: MTU less the IP and TCP
// headers (RFC 9293 3.7.1, RFC 6691 section 2), with no 536 floor on a link
// that carries less. A link reporting less than its family's minimum MTU
// (68 for IPv4, RFC 791; 1280 for IPv6, RFC 8200 section 5) is taken at
// that minimum (an IPv6 link below 1280 must fragment beneath IP).
func TestSYNMSSFollowsLinkMTU(t *testing.T) {
	for _, tt := range []struct {
		mtu    int
		remote netip.Addr
		want   uint16
	}{
		{72, addrB, 32},
		{68, addrB, 28},
		{576, addrB, 536},
		{9000, addrB, 8960},
		{1280, addrB6, 1220},
		{1000, addrB6, 1220},
		{9000, addrB6, 8940},
	} {
		synctest.Test(t, func(t *testing.T) {
			ea, eb := memlink.Pipe(memlink.Config{MTU: tt.mtu})
			s := New(Options{Rand: newSeeded(3)})
			if _, err := s.AddLink(ea, netip.PrefixFrom(addrA, 24), netip.PrefixFrom(addrA6, 64)); err != nil {
				t.Fatal(err)
			}
			got := make(chan []byte, 10)
			eb.Attach(link.DispatcherFunc(func(pkt []byte) { got <- append([]byte(nil), pkt...) }))
			defer func() { s.Close(); eb.Close() }()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go s.DialTCP(ctx, netip.AddrPortFrom(tt.remote, 80))
			synctest.Wait()
			var b []byte
			select {
			case b = <-got:
			default:
				t.Fatalf("MTU %d, %v: no SYN sent", tt.mtu, tt.remote)
			}
			p, err := wire.ParseIP(b)
			if err != nil {
				t.Fatal(err)
			}
			h, _, err := wire.ParseTCP(p.Payload, p.Src, p.Dst, true)
			if err != nil || h.Flags != wire.SYN {
				t.Fatalf("MTU %d: want a SYN, got %v %v", tt.mtu, h, err)
			}
			if !h.Options.HasMSS || h.Options.MSS != tt.want {
				t.Errorf("MTU %d to %v: MSS option %d, want %d", tt.mtu, tt.remote, h.Options.MSS, tt.want)
			}
		})
	}
}

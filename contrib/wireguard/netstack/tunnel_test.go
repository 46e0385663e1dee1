package netstack

import (
	"net/netip"
	"testing"

	"golang.zx2c4.com/wireguard/tun"
	gvnetstack "golang.zx2c4.com/wireguard/tun/netstack"

	"github.com/synack/synack/contrib/wireguard/internal/wgpair"
)

// The addresses inside the tunnel (wgpair's): synack's side and gVisor's.
var (
	syAddr4 = wgpair.Local4
	syAddr6 = wgpair.Local6
	gvAddr4 = wgpair.Peer4
	gvAddr6 = wgpair.Peer6
)

// tunnel is two wireguard-go devices peered over loopback UDP: one on a
// synack stack (this package), one on wireguard-go's own gVisor netstack.
type tunnel struct {
	sy *Net            // synack's side
	gv *gvnetstack.Net // gVisor's side
}

// newTunnel builds the tunnel; mtu is both devices' (WireGuard's usual
// 1420 when 0). synack's DNS server is on gVisor's side, so names resolve
// through a server there.
func newTunnel(tb testing.TB, mtu int) *tunnel {
	if mtu == 0 {
		mtu = wgpair.MTU
	}
	syTun, syNet, err := CreateNetTUN([]netip.Addr{syAddr4, syAddr6}, []netip.Addr{gvAddr4}, mtu)
	if err != nil {
		tb.Fatal(err)
	}
	return &tunnel{sy: syNet, gv: peerWith(tb, syTun, mtu)}
}

// peerWith is wgpair.Pair for a test: the devices close when it ends.
func peerWith(tb testing.TB, local tun.Device, mtu int) *gvnetstack.Net {
	gv, closeBoth, err := wgpair.Pair(local, mtu)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(closeBoth)
	return gv
}

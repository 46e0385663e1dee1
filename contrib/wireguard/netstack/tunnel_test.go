package netstack

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"testing"

	"golang.org/x/crypto/curve25519"
	"golang.zx2c4.com/wireguard/conn"
	wgdevice "golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"
	gvnetstack "golang.zx2c4.com/wireguard/tun/netstack"
)

// The addresses inside the tunnel. They exist only in this process (the
// two stacks); what leaves it is WireGuard's UDP on 127.0.0.1.
var (
	syAddr4 = netip.MustParseAddr("198.18.100.1")
	syAddr6 = netip.MustParseAddr("fd00:100::1")
	gvAddr4 = netip.MustParseAddr("198.18.100.2")
	gvAddr6 = netip.MustParseAddr("fd00:100::2")
)

// tunnel is two wireguard-go devices peered over loopback UDP: one on a
// synack stack (this package), one on wireguard-go's own gVisor netstack.
type tunnel struct {
	sy *Net            // synack's side
	gv *gvnetstack.Net // gVisor's side
}

type wgKey [32]byte

func newKey(tb testing.TB) (priv, pub wgKey) {
	if _, err := rand.Read(priv[:]); err != nil {
		tb.Fatal(err)
	}
	// RFC 7748 5: clamp the scalar.
	priv[0] &= 248
	priv[31] = priv[31]&127 | 64
	p, err := curve25519.X25519(priv[:], curve25519.Basepoint)
	if err != nil {
		tb.Fatal(err)
	}
	copy(pub[:], p)
	return priv, pub
}

func (k wgKey) hex() string { return hex.EncodeToString(k[:]) }

var listenPortRE = regexp.MustCompile(`(?m)^listen_port=(\d+)$`)

// upDevice makes a wireguard-go device on t with private key priv on a
// random loopback UDP port, brings it up and returns it with the port.
func upDevice(tb testing.TB, t tun.Device, priv wgKey, name string) (*wgdevice.Device, int) {
	dev := wgdevice.NewDevice(t, conn.NewDefaultBind(), wgdevice.NewLogger(wgdevice.LogLevelError, name+": "))
	if err := dev.IpcSet("private_key=" + priv.hex() + "\nlisten_port=0\n"); err != nil {
		tb.Fatal(err)
	}
	if err := dev.Up(); err != nil {
		tb.Fatal(err)
	}
	cfg, err := dev.IpcGet()
	if err != nil {
		tb.Fatal(err)
	}
	m := listenPortRE.FindStringSubmatch(cfg)
	if m == nil {
		tb.Fatalf("%s: no listen_port in %q", name, cfg)
	}
	port, _ := strconv.Atoi(m[1])
	return dev, port
}

func peer(pub wgKey, port int, allowed ...netip.Addr) string {
	s := fmt.Sprintf("public_key=%s\nendpoint=127.0.0.1:%d\n", pub.hex(), port)
	for _, a := range allowed {
		s += "allowed_ip=" + netip.PrefixFrom(a, a.BitLen()).String() + "\n"
	}
	return s
}

func mtuOr(mtu int) int {
	if mtu == 0 {
		return 1420
	}
	return mtu
}

// newTunnel builds the tunnel; mtu is both devices' (WireGuard's usual
// 1420 when 0). synack's DNS server is on gVisor's side, so names resolve
// through a server there.
func newTunnel(tb testing.TB, mtu int) *tunnel {
	syTun, syNet, err := CreateNetTUN([]netip.Addr{syAddr4, syAddr6}, []netip.Addr{gvAddr4}, mtuOr(mtu))
	if err != nil {
		tb.Fatal(err)
	}
	return &tunnel{sy: syNet, gv: peerWith(tb, syTun, mtu)}
}

// peerWith runs local (a device holding syAddr4 and syAddr6) under a
// wireguard-go device peered over loopback with another whose device is
// wireguard-go's gVisor netstack (gvAddr4, gvAddr6), and returns that
// peer's Net. Both devices close at the end of the test.
func peerWith(tb testing.TB, local tun.Device, mtu int) *gvnetstack.Net {
	gvTun, gvNet, err := gvnetstack.CreateNetTUN([]netip.Addr{gvAddr4, gvAddr6}, []netip.Addr{syAddr4}, mtuOr(mtu))
	if err != nil {
		tb.Fatal(err)
	}
	syPriv, syPub := newKey(tb)
	gvPriv, gvPub := newKey(tb)
	syDev, syPort := upDevice(tb, local, syPriv, "local")
	tb.Cleanup(syDev.Close)
	gvDev, gvPort := upDevice(tb, gvTun, gvPriv, "peer")
	tb.Cleanup(gvDev.Close)
	if err := syDev.IpcSet(peer(gvPub, gvPort, gvAddr4, gvAddr6)); err != nil {
		tb.Fatal(err)
	}
	if err := gvDev.IpcSet(peer(syPub, syPort, syAddr4, syAddr6)); err != nil {
		tb.Fatal(err)
	}
	return gvNet
}

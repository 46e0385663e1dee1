// Package wgpair builds the fixture the module's tests and benchmark
// share: a local tun.Device under a wireguard-go device, peered over
// loopback UDP with a second wireguard-go device whose tun.Device is
// wireguard-go's own gVisor netstack. Only WireGuard's UDP on 127.0.0.1
// leaves the process; the addresses inside the tunnel exist only in the
// two stacks.
package wgpair

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"

	"golang.org/x/crypto/curve25519"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"
	gvnetstack "golang.zx2c4.com/wireguard/tun/netstack"
)

// The addresses inside the tunnel: the local side holds Local4 and
// Local6, the gVisor peer Peer4 and Peer6 (RFC 2544's benchmarking range
// and a ULA).
var (
	Local4 = netip.MustParseAddr("198.18.100.1")
	Local6 = netip.MustParseAddr("fd00:100::1")
	Peer4  = netip.MustParseAddr("198.18.100.2")
	Peer6  = netip.MustParseAddr("fd00:100::2")
)

// MTU is WireGuard's usual inner MTU.
const MTU = 1420

type key [32]byte

func newKey() (priv, pub key, err error) {
	if _, err := rand.Read(priv[:]); err != nil {
		return priv, pub, err
	}
	// RFC 7748 section 5: clamp the scalar.
	priv[0] &= 248
	priv[31] = priv[31]&127 | 64
	p, err := curve25519.X25519(priv[:], curve25519.Basepoint)
	copy(pub[:], p)
	return priv, pub, err
}

func (k key) hex() string { return hex.EncodeToString(k[:]) }

var listenPortRE = regexp.MustCompile(`(?m)^listen_port=(\d+)$`)

// up makes a wireguard-go device on t with private key priv on a random
// UDP port, brings it up and returns it with the port.
func up(t tun.Device, priv key, name string) (*device.Device, int, error) {
	dev := device.NewDevice(t, conn.NewDefaultBind(), device.NewLogger(device.LogLevelError, name+": "))
	if err := dev.IpcSet("private_key=" + priv.hex() + "\nlisten_port=0\n"); err != nil {
		dev.Close()
		return nil, 0, err
	}
	if err := dev.Up(); err != nil {
		dev.Close()
		return nil, 0, err
	}
	cfg, err := dev.IpcGet()
	m := listenPortRE.FindStringSubmatch(cfg)
	if err != nil || m == nil {
		dev.Close()
		return nil, 0, fmt.Errorf("%s: no listen_port in %q (%v)", name, cfg, err)
	}
	port, _ := strconv.Atoi(m[1])
	return dev, port, nil
}

func peerConf(pub key, port int, allowed ...netip.Addr) string {
	s := fmt.Sprintf("public_key=%s\nendpoint=127.0.0.1:%d\n", pub.hex(), port)
	for _, a := range allowed {
		s += "allowed_ip=" + netip.PrefixFrom(a, a.BitLen()).String() + "\n"
	}
	return s
}

// Pair runs local (a device holding Local4 and Local6) under a
// wireguard-go device peered over loopback with another on a gVisor
// netstack holding Peer4 and Peer6, whose DNS server is Local4, and
// returns that peer's Net and a function that closes both devices.
func Pair(local tun.Device, mtu int) (*gvnetstack.Net, func(), error) {
	if mtu == 0 {
		mtu = MTU
	}
	gvTun, gvNet, err := gvnetstack.CreateNetTUN([]netip.Addr{Peer4, Peer6}, []netip.Addr{Local4}, mtu)
	if err != nil {
		return nil, nil, err
	}
	lPriv, lPub, err := newKey()
	if err != nil {
		return nil, nil, err
	}
	pPriv, pPub, err := newKey()
	if err != nil {
		return nil, nil, err
	}
	lDev, lPort, err := up(local, lPriv, "local")
	if err != nil {
		gvTun.Close()
		return nil, nil, err
	}
	pDev, pPort, err := up(gvTun, pPriv, "peer")
	if err != nil {
		lDev.Close()
		return nil, nil, err
	}
	closeBoth := func() {
		lDev.Close()
		pDev.Close()
	}
	if err := lDev.IpcSet(peerConf(pPub, pPort, Peer4, Peer6)); err != nil {
		closeBoth()
		return nil, nil, err
	}
	if err := pDev.IpcSet(peerConf(lPub, lPort, Local4, Local6)); err != nil {
		closeBoth()
		return nil, nil, err
	}
	return gvNet, closeBoth, nil
}

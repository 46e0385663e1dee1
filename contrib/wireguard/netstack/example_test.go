package netstack_test

import (
	"log"
	"net/http"
	"net/netip"

	"github.com/synack/synack/contrib/wireguard/netstack"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
)

// The README's example: a program written for wireguard-go's
// tun/netstack, with only the import changed. (Compiled, not run: it
// would need a WireGuard peer.)
func ExampleCreateNetTUN() {
	tun, tnet, err := netstack.CreateNetTUN(
		[]netip.Addr{netip.MustParseAddr("192.168.4.28")},
		[]netip.Addr{netip.MustParseAddr("8.8.8.8")},
		1420)
	if err != nil {
		log.Fatal(err)
	}
	dev := device.NewDevice(tun, conn.NewDefaultBind(), device.NewLogger(device.LogLevelError, ""))
	if err := dev.IpcSet("private_key=...\npublic_key=...\nendpoint=...\nallowed_ip=0.0.0.0/0\n"); err != nil {
		log.Fatal(err)
	}
	if err := dev.Up(); err != nil {
		log.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{DialContext: tnet.DialContext}}
	resp, err := client.Get("http://example.com/")
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
}

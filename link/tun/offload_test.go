//go:build linux

package tun_test

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/synack/synack/link"
	"github.com/synack/synack/link/tun"
	"github.com/synack/synack/link/tun/nstest"
	"github.com/synack/synack/wire"
)

// attachVerifiedUDP is attachUDP passing on only datagrams whose UDP
// checksum is correct: what the device delivers must carry a complete
// checksum when the dispatcher cannot be vouched to.
func attachVerifiedUDP(t *testing.T, dev *tun.Device) chan []byte {
	pkts := make(chan []byte, 16)
	dev.Attach(link.DispatcherFunc(func(p []byte) {
		ip, err := wire.ParseIP(p)
		if err != nil || ip.Protocol != wire.ProtocolUDP {
			return
		}
		if _, _, err := wire.ParseUDP(ip.Payload, ip.Src, ip.Dst, true); err != nil {
			t.Errorf("device delivered a UDP datagram with a bad checksum: %v", err)
			return
		}
		select {
		case pkts <- append([]byte(nil), p...):
		default:
		}
	}))
	return pkts
}

// Offloads on a kernel that refuses TUNSETOFFLOAD: the device keeps its
// virtio-net header, says which offloads are off and why, and still moves
// packets both ways on every queue.
func TestOffloadFallback(t *testing.T) {
	tun.RefuseOffloads(t)
	for _, tc := range udpCases {
		t.Run(tc.name, func(t *testing.T) {
			ns := nstest.New(t)
			var dev *tun.Device
			var err error
			ns.Do(func() { dev, err = tun.OpenOptions("tf%d", tun.Options{Offload: true, Queues: 3}) })
			if err != nil {
				t.Fatalf("OpenOptions: %v", err)
			}
			t.Cleanup(func() { dev.Close() })
			f := dev.Features()
			if !f.VnetHdr || f.Csum || f.TSO4 || f.TSO6 || f.USO4 || !f.GSOOut || f.Queues != 3 || f.Fallback == "" {
				t.Errorf("features %+v: want the vnet header without offloads, 3 queues, and a reason", f)
			}
			if s := f.String(); !strings.Contains(s, "refused") || !strings.Contains(s, "3 queues") {
				t.Errorf("Features.String() = %q: want the reason and the queues", s)
			}
			t.Logf("%s: %v", dev.Name(), f)
			if err := dev.Configure(tc.host); err != nil {
				t.Fatalf("Configure(%v): %v", tc.host, err)
			}
			udpBothWays(t, ns, dev, attachVerifiedUDP(t, dev), tc)
		})
	}
}

// A descriptor opened with IFF_VNET_HDR, its offloads set by its creator,
// is adopted: the device reads the header, completes the kernel's partial
// checksums, and writes packets behind a header of its own.
func TestFromFDVnetHdr(t *testing.T) {
	for _, tc := range udpCases {
		t.Run(tc.name, func(t *testing.T) {
			ns := nstest.New(t)
			f := openRaw(t, ns, "tfvnet%d", unix.IFF_TUN|unix.IFF_NO_PI|unix.IFF_VNET_HDR)
			if err := unix.IoctlSetInt(int(f.Fd()), unix.TUNSETOFFLOAD, unix.TUN_F_CSUM|unix.TUN_F_TSO4|unix.TUN_F_TSO6); err != nil {
				t.Fatalf("TUNSETOFFLOAD by the creator: %v", err)
			}
			fd, err := unix.Dup(int(f.Fd()))
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			dev, err := tun.FromFD(fd, 0)
			if err != nil {
				unix.Close(fd)
				t.Fatalf("FromFD: %v", err)
			}
			t.Cleanup(func() { dev.Close() })
			if ft := dev.Features(); !ft.VnetHdr || !ft.GSOOut {
				t.Errorf("features %+v: want the vnet header seen", ft)
			}
			if err := dev.Configure(tc.host); err != nil {
				t.Fatalf("Configure(%v): %v", tc.host, err)
			}
			udpBothWays(t, ns, dev, attachVerifiedUDP(t, dev), tc)
			if st := dev.Stats(); st.RxCsum == 0 {
				t.Errorf("Stats %+v: want the kernel's partial checksums completed", st)
			}
		})
	}
}

//go:build linux

package tun_test

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/synack/synack/link"
	"github.com/synack/synack/link/tun"
	"github.com/synack/synack/link/tun/nstest"
	"github.com/synack/synack/wire"
)

// open creates a configured device in a fresh namespace and attaches a
// dispatcher that forwards copies of UDP packets to the returned channel
// (the kernel also sends IPv6 router solicitations and MLD reports, which
// the test ignores).
func open(t *testing.T, host netip.Prefix) (*nstest.NS, *tun.Device, chan []byte) {
	t.Helper()
	ns := nstest.New(t)
	var dev *tun.Device
	var err error
	ns.Do(func() { dev, err = tun.Open("syn%d", 1400) })
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { dev.Close() })
	if !strings.HasPrefix(dev.Name(), "syn") {
		t.Errorf("Name() = %q, want syn0-like", dev.Name())
	}
	if got := dev.MTU(); got != 1400 {
		t.Errorf("MTU() = %d, want 1400", got)
	}
	if err := dev.Configure(host); err != nil {
		t.Fatalf("Configure(%v): %v", host, err)
	}
	return ns, dev, attachUDP(dev)
}

// attachUDP attaches a dispatcher to dev that forwards copies of UDP
// packets to the returned channel.
func attachUDP(dev *tun.Device) chan []byte {
	pkts := make(chan []byte, 16)
	dev.Attach(link.DispatcherFunc(func(p []byte) {
		ip, err := wire.ParseIP(p)
		if err != nil || ip.Protocol != 17 {
			return
		}
		select {
		case pkts <- append([]byte(nil), p...):
		default:
		}
	}))
	return pkts
}

// udpPacket builds an IP/UDP packet with correct checksums.
func udpPacket(src, dst netip.AddrPort, payload []byte) []byte {
	udp := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(udp[0:], src.Port())
	binary.BigEndian.PutUint16(udp[2:], dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(payload)))
	udp = append(udp, payload...)
	cs := wire.Checksum(udp, wire.PseudoHeaderChecksum(17, src.Addr(), dst.Addr(), len(udp)))
	if cs == 0 {
		cs = 0xffff
	}
	binary.BigEndian.PutUint16(udp[6:], cs)
	var b []byte
	if src.Addr().Is4() {
		b = wire.AppendIPv4(nil, &wire.IPv4Header{TTL: 64, Protocol: 17, Src: src.Addr(), Dst: dst.Addr()}, len(udp))
	} else {
		b = wire.AppendIPv6(nil, &wire.IPv6Header{HopLimit: 64, NextHeader: 17, Src: src.Addr(), Dst: dst.Addr()}, len(udp))
	}
	return append(b, udp...)
}

// udpCase is a family for the UDP exchanges: the kernel's address on the
// device, the stack's, and the kernel socket to use.
type udpCase struct {
	name        string
	host        netip.Prefix
	stack       netip.Addr
	udp, listen string
}

var udpCases = []udpCase{
	{"IPv4", netip.MustParsePrefix("198.18.7.1/24"), netip.MustParseAddr("198.18.7.2"), "udp4", "198.18.7.1:0"},
	{"IPv6", netip.MustParsePrefix("fd00:7::1/64"), netip.MustParseAddr("fd00:7::2"), "udp6", "[fd00:7::1]:0"},
}

func TestUDPBothWays(t *testing.T) {
	for _, tc := range udpCases {
		t.Run(tc.name, func(t *testing.T) {
			ns, dev, pkts := open(t, tc.host)
			udpBothWays(t, ns, dev, pkts, tc)
		})
	}
}

// udpBothWays sends a datagram from a kernel socket in ns through dev
// (read from pkts) and one written to dev back to the socket, then closes
// dev and checks the interface is gone.
func udpBothWays(t *testing.T, ns *nstest.NS, dev *tun.Device, pkts chan []byte, tc udpCase) {
	c, err := ns.ListenPacket(tc.udp, tc.listen)
	if err != nil {
		t.Fatalf("ListenPacket in namespace: %v", err)
	}
	defer c.Close()
	kernel := c.LocalAddr().(*net.UDPAddr).AddrPort()
	stackEnd := netip.AddrPortFrom(tc.stack, 9999)

	// Kernel -> device.
	if _, err := c.WriteTo([]byte("hello, device"), net.UDPAddrFromAddrPort(stackEnd)); err != nil {
		t.Fatalf("kernel WriteTo %v: %v", stackEnd, err)
	}
	select {
	case p := <-pkts:
		ip, err := wire.ParseIP(p)
		if err != nil {
			t.Fatalf("ParseIP: %v", err)
		}
		if ip.Src != kernel.Addr() || ip.Dst != tc.stack {
			t.Errorf("packet %v -> %v, want %v -> %v", ip.Src, ip.Dst, kernel.Addr(), tc.stack)
		}
		if got := string(ip.Payload[8:]); got != "hello, device" {
			t.Errorf("payload %q, want %q", got, "hello, device")
		}
		if dp := binary.BigEndian.Uint16(ip.Payload[2:]); dp != 9999 {
			t.Errorf("destination port %d, want 9999", dp)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no UDP packet read from the device within 5s")
	}

	// Device -> kernel.
	p := udpPacket(stackEnd, kernel, []byte("hello, kernel"))
	if n, err := dev.WritePackets([][]byte{p}); n != 1 || err != nil {
		t.Fatalf("WritePackets = %d, %v; want 1, nil", n, err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 100)
	n, from, err := c.ReadFrom(buf)
	if err != nil {
		t.Fatalf("kernel ReadFrom: %v", err)
	}
	if got := string(buf[:n]); got != "hello, kernel" {
		t.Errorf("kernel got %q, want %q", got, "hello, kernel")
	}
	if got := from.(*net.UDPAddr).AddrPort(); got != stackEnd {
		t.Errorf("kernel got it from %v, want %v", got, stackEnd)
	}

	st := dev.Stats()
	if st.RxPackets < 1 || st.TxPackets != 1 {
		t.Errorf("Stats() = %+v, want RxPackets >= 1 and TxPackets == 1", st)
	}

	// Oversized packets are refused, not truncated.
	big := make([]byte, dev.MTU()+1)
	if n, err := dev.WritePackets([][]byte{p, big, p}); n != 1 || err == nil {
		t.Errorf("WritePackets(ok, oversize, ok) = %d, %v; want 1 and an error", n, err)
	}

	closeStops(t, ns, dev, p)
}

// closeStops closes dev and checks that the reader stops, the interface
// is gone, writing p then fails with net.ErrClosed and a second Close is
// harmless.
func closeStops(t *testing.T, ns *nstest.NS, dev *tun.Device, p []byte) {
	t.Helper()
	if err := dev.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case <-dev.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("reader goroutine still running 5s after Close")
	}
	if err := dev.Err(); err != nil {
		t.Errorf("Err() after Close = %v, want nil", err)
	}
	var ifErr error
	ns.Do(func() { _, ifErr = net.InterfaceByName(dev.Name()) })
	if ifErr == nil {
		t.Errorf("interface %s still exists after Close", dev.Name())
	}
	if _, err := dev.WritePackets([][]byte{p}); !errors.Is(err, net.ErrClosed) {
		t.Errorf("WritePackets after Close: %v, want net.ErrClosed", err)
	}
	if err := dev.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestCloseInsideDeliver checks Close may be called from the dispatcher.
func TestCloseInsideDeliver(t *testing.T) {
	ns := nstest.New(t)
	var dev *tun.Device
	var err error
	ns.Do(func() { dev, err = tun.Open("", 0) })
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer dev.Close()
	if dev.MTU() != tun.DefaultMTU {
		t.Errorf("MTU() = %d, want %d", dev.MTU(), tun.DefaultMTU)
	}
	if err := dev.Configure(netip.MustParsePrefix("198.18.8.1/24")); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	dev.Attach(link.DispatcherFunc(func(p []byte) {
		// Only our datagram: the kernel also sends IPv6 router and
		// multicast-listener packets when a link comes up, and under
		// load one of them can come first.
		if len(p) == 0 || p[0]>>4 != 4 {
			return
		}
		select {
		case closed <- dev.Close():
		default:
		}
	}))
	c, err := ns.ListenPacket("udp4", "198.18.8.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.WriteTo([]byte("x"), &net.UDPAddr{IP: net.IPv4(198, 18, 8, 2), Port: 9}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close from DeliverPacket: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no packet delivered")
	}
	select {
	case <-dev.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("reader did not exit after Close inside DeliverPacket")
	}
}

func TestOpenBadArguments(t *testing.T) {
	if _, err := tun.Open(strings.Repeat("x", 16), 1500); err == nil {
		t.Error("Open with a 16-byte name succeeded")
	}
	if _, err := tun.Open("x", 20); err == nil {
		t.Error("Open with MTU 20 succeeded")
	}
}

// TestOpenWithoutRoot runs Open as user nobody in a child process and
// checks the one-line reason.
func TestOpenWithoutRoot(t *testing.T) {
	if os.Getenv("SYNACK_TUN_CHILD") == "1" {
		_, err := tun.Open("synack-noroot", 0)
		switch {
		case err == nil:
			os.Exit(3)
		case errors.Is(err, tun.ErrPermission) && errors.Is(err, os.ErrPermission):
			os.Stdout.WriteString(err.Error())
			os.Exit(0)
		default:
			os.Stdout.WriteString("unexpected: " + err.Error())
			os.Exit(4)
		}
	}
	if os.Geteuid() != 0 {
		_, err := tun.Open("synack-noroot", 0)
		if !errors.Is(err, tun.ErrPermission) && !errors.Is(err, tun.ErrNoDevice) {
			t.Fatalf("Open without root: %v, want ErrPermission or ErrNoDevice", err)
		}
		t.Logf("Open without root: %v", err)
		return
	}
	if _, err := os.Stat(tun.DevicePath); err != nil {
		t.Skipf("no %s", tun.DevicePath)
	}
	// The test binary sits in a directory only root may enter: run a copy.
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	exe, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "tun.test")
	if err := os.WriteFile(bin, exe, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestOpenWithoutRoot$")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SYNACK_TUN_CHILD=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child as nobody: %v: %s", err, out)
	}
	msg := string(out)
	if strings.Contains(msg, "\n") || !strings.Contains(msg, "root") {
		t.Errorf("message %q: want one line that mentions root", msg)
	}
	t.Logf("as nobody: %s", msg)
}

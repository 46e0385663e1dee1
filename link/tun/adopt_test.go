//go:build linux

package tun_test

import (
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/synack/synack/link/tun"
	"github.com/synack/synack/link/tun/nstest"
)

// openRaw opens /dev/net/tun and makes an interface the way a VPN app's
// platform or a parent process would, without this package: a blocking
// descriptor, TUNSETIFF with flags. It runs in ns.
func openRaw(t *testing.T, ns *nstest.NS, name string, flags uint16) *os.File {
	t.Helper()
	var f *os.File
	var err error
	ns.Do(func() {
		var fd int
		fd, err = unix.Open(tun.DevicePath, unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return
		}
		var ifr *unix.Ifreq
		if ifr, err = unix.NewIfreq(name); err == nil {
			ifr.SetUint16(flags)
			err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
		}
		if err != nil {
			unix.Close(fd)
			return
		}
		f = os.NewFile(uintptr(fd), tun.DevicePath)
	})
	if err != nil {
		t.Fatalf("opening a TUN device by hand: %v", err)
	}
	return f
}

// A device opened elsewhere, in another namespace than the caller's, is
// adopted with its name and the kernel's MTU, configured from outside its
// namespace, and moves packets both ways; closing it (the creator having
// closed its own descriptor) removes the interface.
func TestFromFile(t *testing.T) {
	for _, tc := range udpCases {
		t.Run(tc.name, func(t *testing.T) {
			ns := nstest.New(t)
			f := openRaw(t, ns, "adopt%d", unix.IFF_TUN|unix.IFF_NO_PI)
			dev, err := tun.FromFile(f, 0)
			f.Close() // the Device has its own descriptor
			if err != nil {
				t.Fatalf("FromFile: %v", err)
			}
			t.Cleanup(func() { dev.Close() })
			if !strings.HasPrefix(dev.Name(), "adopt") {
				t.Errorf("Name() = %q, want adopt0-like", dev.Name())
			}
			if dev.MTU() != 1500 || dev.Index() == 0 {
				t.Errorf("MTU() = %d, Index() = %d; want the kernel's 1500 and an index", dev.MTU(), dev.Index())
			}
			// Configure runs on this goroutine's thread, outside ns: the
			// rtnetlink handle must be the device's namespace's.
			if err := dev.Configure(tc.host); err != nil {
				t.Fatalf("Configure(%v): %v", tc.host, err)
			}
			udpBothWays(t, ns, dev, attachUDP(dev), tc)
		})
	}
}

// FromFD takes the descriptor itself, and an MTU.
func TestFromFD(t *testing.T) {
	ns := nstest.New(t)
	f := openRaw(t, ns, "adoptfd%d", unix.IFF_TUN|unix.IFF_NO_PI)
	fd, err := unix.Dup(int(f.Fd()))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	dev, err := tun.FromFD(fd, 1400)
	if err != nil {
		unix.Close(fd)
		t.Fatalf("FromFD: %v", err)
	}
	t.Cleanup(func() { dev.Close() })
	if dev.MTU() != 1400 || !strings.HasPrefix(dev.Name(), "adoptfd") {
		t.Errorf("MTU() = %d, Name() = %q; want 1400, adoptfd0-like", dev.MTU(), dev.Name())
	}
	tc := udpCases[0]
	if err := dev.Configure(tc.host); err != nil {
		t.Fatalf("Configure(%v): %v", tc.host, err)
	}
	udpBothWays(t, ns, dev, attachUDP(dev), tc)
}

// Devices whose packets this package cannot read are refused, each with
// its reason; the descriptor stays the caller's. (A device without
// IFF_NO_PI cannot be told apart, see FromFile.)
func TestFromFileRefused(t *testing.T) {
	ns := nstest.New(t)
	for _, tc := range []struct {
		name  string
		flags uint16
		want  string
	}{
		{"tap", unix.IFF_TAP | unix.IFF_NO_PI, "TAP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := openRaw(t, ns, "refused%d", tc.flags)
			defer f.Close()
			dev, err := tun.FromFile(f, 0)
			if err == nil {
				dev.Close()
				t.Fatalf("FromFile of a device with flags %#x succeeded", tc.flags)
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q: want one line naming %s", err, tc.want)
			}
			t.Logf("%v", err)
		})
	}
}

// A file that is not a TUN device is refused; this needs no root.
func TestFromFileNotTUN(t *testing.T) {
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if dev, err := tun.FromFile(f, 0); err == nil {
		dev.Close()
		t.Fatal("FromFile(/dev/null) succeeded")
	} else if !strings.Contains(err.Error(), "not an attached TUN device") {
		t.Errorf("FromFile(/dev/null): %v", err)
	}
	if _, err := tun.FromFD(int(f.Fd()), 20); err == nil {
		t.Error("FromFD with MTU 20 succeeded")
	}
	// The descriptor is still the caller's.
	if _, err := f.Stat(); err != nil {
		t.Errorf("file after the refusals: %v", err)
	}
}

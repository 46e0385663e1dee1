//go:build linux

package interop

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/synack/synack/link/tun"
	"github.com/synack/synack/tunstack"
)

// withOffload opens the device with the kernel's TUN offloads and two
// queues, named with this file's prefix "tf".
func withOffload() envOption {
	return withTun(func(c *tunstack.Config) {
		c.Name = "tf%d"
		c.Offload = true
		c.Queues = 2
	})
}

// requireTSO fails the test unless the kernel accepted checksum offload
// and TSO for the family: without them nothing here is tested.
func requireTSO(t *testing.T, e *env) tun.Features {
	t.Helper()
	f := e.dev.Features()
	tso := f.TSO4
	if !e.fam.stack.Is4() {
		tso = f.TSO6
	}
	if !f.VnetHdr || !f.Csum || !tso || !f.GSOOut || f.Queues != 2 {
		t.Fatalf("features %v: want the vnet header, checksum offload, TSO and GSO out on 2 queues", f)
	}
	t.Logf("device %s: %v", e.dev.Name(), f)
	return f
}

// exchange moves n bytes each way at once over one connection the kernel
// dialled, hash-checked, and returns the device's counters' growth.
func (e *env) exchange(n int64, timeout time.Duration) tun.Stats {
	t := e.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	kc, sc := e.connect(ctx, true)
	defer kc.Close()
	defer sc.Close()
	deadline := time.Now().Add(timeout)
	kc.SetDeadline(deadline)
	sc.SetDeadline(deadline)
	before := e.dev.Stats()
	type both struct{ sent, recvd result }
	done := make(chan both, 1)
	go func() {
		s, r := duplex(kc, 21, n)
		done <- both{s, r}
	}()
	ss, sr := duplex(sc, 22, n)
	k := <-done
	for _, r := range []result{ss, sr, k.sent, k.recvd} {
		if r.err != nil || r.n != n {
			t.Fatalf("exchange of %d bytes each way: synack sent %d (%v), got %d (%v); kernel sent %d (%v), got %d (%v); synack's end: %+v",
				n, ss.n, ss.err, sr.n, sr.err, k.sent.n, k.sent.err, k.recvd.n, k.recvd.err, sc.Info())
		}
	}
	if sr.sum != k.sent.sum {
		t.Errorf("kernel -> synack: the bytes synack read differ from what the kernel sent")
	}
	if k.recvd.sum != ss.sum {
		t.Errorf("synack -> kernel: the bytes the kernel read differ from what synack sent")
	}
	after := e.dev.Stats()
	return tun.Stats{
		RxGSO: after.RxGSO - before.RxGSO, RxGSOSegs: after.RxGSOSegs - before.RxGSOSegs,
		RxCsum: after.RxCsum - before.RxCsum, RxVouched: after.RxVouched - before.RxVouched,
		RxDropped: after.RxDropped - before.RxDropped,
		TxGSO:     after.TxGSO - before.TxGSO, TxGSOSegs: after.TxGSOSegs - before.TxGSOSegs,
		RxReads: after.RxReads - before.RxReads, RxBatches: after.RxBatches - before.RxBatches,
		RxPackets: after.RxPackets - before.RxPackets, TxWrites: after.TxWrites - before.TxWrites,
		TxPackets: after.TxPackets - before.TxPackets,
	}
}

// TestOffloadBulk moves 64 MiB each way between the kernel's TCP and
// synack over a TUN device with offloads on: the kernel hands over TSO
// super-segments, and synack's segments leave as GSO super-packets the
// kernel cuts up; the stack takes the kernel's packets with the device
// vouching for their checksums (no capture sits between them). The
// super-segments reach the stack whole (segments larger than the MTU),
// or, with SplitGSO, split into MTU-sized ones. Both byte streams are
// hash-checked.
func TestOffloadBulk(t *testing.T) {
	for _, fam := range families {
		for _, split := range []bool{false, true} {
			name := fam.name + "/whole"
			if split {
				name = fam.name + "/split"
			}
			t.Run(name, func(t *testing.T) {
				e := newEnv(t, fam, withOffload(), withTun(func(c *tunstack.Config) { c.SplitGSO = split }))
				requireTSO(t, e)
				d := e.exchange(64<<20, 60*time.Second)
				t.Logf("counters: %+v", d)
				switch {
				case d.RxGSO == 0:
					t.Errorf("no TSO super-segments from the kernel")
				case split && d.RxGSOSegs <= d.RxGSO:
					t.Errorf("%d TSO super-segments split into %d segments; want each into several", d.RxGSO, d.RxGSOSegs)
				case !split && d.RxGSOSegs != d.RxGSO:
					t.Errorf("%d TSO super-segments delivered as %d; want each whole", d.RxGSO, d.RxGSOSegs)
				}
				if d.TxGSO == 0 || d.TxGSOSegs <= d.TxGSO {
					t.Errorf("%d GSO super-packets written carrying %d segments; want some, each of several", d.TxGSO, d.TxGSOSegs)
				}
				if d.RxVouched == 0 || d.RxCsum != 0 || d.RxDropped != 0 {
					t.Errorf("%d packets vouched for, %d checksums completed, %d dropped; want the stack to take them vouched", d.RxVouched, d.RxCsum, d.RxDropped)
				}
				if c := e.s.Counters(); c.TCP.InCsumErrors != 0 || c.TCP.InErrs != 0 {
					t.Errorf("stack counted %d checksum errors, %d bad segments", c.TCP.InCsumErrors, c.TCP.InErrs)
				}
			})
		}
	}
}

// TestOffloadPcap records an exchange with offloads on. The capture sits
// between the device and the stack, so the device completes the kernel's
// partial checksums instead of vouching for them (the capture must show
// real ones), and splits TSO super-segments with full checksums: every
// packet in the capture must pass the wire package's checks and tshark's.
func TestOffloadPcap(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			e := newEnv(t, fam, withOffload(), withPcap())
			requireTSO(t, e)
			d := e.exchange(4<<20, 30*time.Second)
			t.Logf("counters: %+v", d)
			if d.RxGSO == 0 || d.RxCsum == 0 || d.RxVouched != 0 {
				t.Errorf("%d TSO super-segments, %d checksums completed, %d vouched; want TSO and completed checksums, none vouched past the capture", d.RxGSO, d.RxCsum, d.RxVouched)
			}
			e.close()
			stats, err := checkPcap(e.pcapPath)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("capture %s: %s", e.pcapPath, stats)
			checkTshark(t, fam, e.pcapPath, stats.packets)
		})
	}
}

// TestOffloadOff is the same exchange on a device opened without offloads:
// one packet per read and write, nothing split or joined.
func TestOffloadOff(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			e := newEnv(t, fam, withTun(func(c *tunstack.Config) { c.Name = "tf%d" }))
			if f := e.dev.Features(); f.VnetHdr || f.Csum || f.GSOOut {
				t.Fatalf("features %v without Offload", f)
			}
			d := e.exchange(16<<20, 60*time.Second)
			t.Logf("counters: %+v", d)
			if d.RxGSO != 0 || d.TxGSO != 0 || d.RxVouched != 0 || d.RxCsum != 0 || d.TxWrites != d.TxPackets {
				t.Errorf("counters %+v: want no offload work and one write per packet", d)
			}
		})
	}
}

// TestOffloadUSO: a kernel UDP socket with UDP_SEGMENT (UDP GSO) sends
// one 3000-byte write as datagrams of 1000 bytes; with USO on, the kernel
// hands the device one super-datagram, which it splits, and synack's
// socket reads the three datagrams.
func TestOffloadUSO(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			e := newEnv(t, fam, withOffload())
			if f := e.dev.Features(); !f.USO4 || !f.USO6 {
				t.Skipf("kernel without USO: %v", f)
			}
			u, err := e.s.ListenUDP(fam.udpNetwork(), fam.stackAddr(7))
			if err != nil {
				t.Fatal(err)
			}
			defer u.Close()
			kc, err := e.ns.Dial(fam.udpNetwork(), fam.stackAddr(7).String())
			if err != nil {
				t.Fatalf("kernel DialUDP: %v", err)
			}
			defer kc.Close()
			rc, err := kc.(*net.UDPConn).SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			var serr error
			rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_SEGMENT, 1000) })
			if serr != nil {
				t.Fatalf("UDP_SEGMENT: %v", serr)
			}
			before := e.dev.Stats()
			payload := bytes.Repeat([]byte("0123456789"), 300)
			if _, err := kc.Write(payload); err != nil {
				t.Fatalf("kernel write: %v", err)
			}
			u.SetReadDeadline(time.Now().Add(5 * time.Second))
			var got []byte
			buf := make([]byte, 2000)
			for range 3 {
				n, err := u.Read(buf)
				if err != nil {
					t.Fatalf("synack read after %d bytes: %v", len(got), err)
				}
				if n != 1000 {
					t.Errorf("datagram of %d bytes, want 1000", n)
				}
				got = append(got, buf[:n]...)
			}
			if !bytes.Equal(got, payload) {
				t.Errorf("datagrams differ from what the kernel wrote")
			}
			if d := e.dev.Stats(); d.RxGSO-before.RxGSO != 1 || d.RxGSOSegs-before.RxGSOSegs != 3 {
				t.Errorf("super-packets %d split into %d; want 1 into 3", d.RxGSO-before.RxGSO, d.RxGSOSegs-before.RxGSOSegs)
			}
		})
	}
}

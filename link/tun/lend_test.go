//go:build linux

package tun_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/synack/synack/link"
	"github.com/synack/synack/link/tun"
	"github.com/synack/synack/link/tun/nstest"
	"github.com/synack/synack/stack"
	"github.com/synack/synack/tunstack"
	"github.com/synack/synack/wire"
)

// keeper is a link.LoanDispatcher that keeps the loans of the UDP
// datagrams whose number (the first 4 bytes of the payload) is even, as the
// stack keeps large segments, and checks that nothing else is offered.
type keeper struct {
	t       *testing.T
	mu      sync.Mutex
	kept    map[int][]byte // datagram number -> its packet, in the lent buffer
	loans   []link.Loan
	got     chan int
	offered int
}

func (k *keeper) DeliverPacket(p []byte) { k.DeliverPackets([][]byte{p}) }

func (k *keeper) DeliverPackets(pkts [][]byte) {
	k.DeliverLoanedPackets(pkts, make([]link.Loan, len(pkts)), false)
}

func (k *keeper) DeliverLoanedPackets(pkts [][]byte, loans []link.Loan, _ bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for i, p := range pkts {
		ip, err := wire.ParseIP(p)
		if err != nil || ip.Protocol != wire.ProtocolUDP || len(ip.Payload) < 12 {
			continue
		}
		n := int(binary.BigEndian.Uint32(ip.Payload[8:]))
		if loans[i] != nil {
			k.offered++
			if len(p) < 8192 {
				k.t.Errorf("datagram %d of %d bytes offered as a loan: only large packets are lent", n, len(p))
			}
		}
		if loans[i] != nil && n%2 == 0 {
			k.kept[n] = p
			k.loans = append(k.loans, loans[i])
			loans[i] = nil
		}
		k.got <- n
	}
}

// bigPayload is datagram i's payload: its number, then size-4 bytes of a
// pattern of i.
func bigPayload(i, size int) []byte {
	p := binary.BigEndian.AppendUint32(make([]byte, 0, size), uint32(i))
	for len(p) < size {
		p = append(p, byte(i*7+len(p)*13))
	}
	return p
}

// A dispatcher that keeps a packet's buffer (a link.Loan) keeps its
// bytes: the reader reads the packets after it into other buffers, by
// read(2) and through io_uring, with and without the virtio-net header.
// Small packets are never offered. Buffers released come back: a second
// and third round lend as many again without making new ones.
func TestLentBuffersStay(t *testing.T) {
	for _, offload := range []bool{false, true} {
		for _, uring := range []bool{true, false} {
			name := fmt.Sprintf("offload=%v/uring=%v", offload, uring)
			t.Run(name, func(t *testing.T) {
				lentBuffersStay(t, offload, !uring)
			})
		}
	}
}

func lentBuffersStay(t *testing.T, offload, noUring bool) {
	const (
		rounds = 3
		big    = 40000 // over half a 64 KiB buffer: offered
		small  = 1000
	)
	ns := nstest.NewPrefixed(t, "tl-")
	var dev *tun.Device
	var err error
	ns.Do(func() {
		dev, err = tun.OpenOptions("tl%d", tun.Options{MTU: 65535, Offload: offload, NoUring: noUring})
	})
	if err != nil {
		t.Fatalf("OpenOptions: %v", err)
	}
	t.Cleanup(func() { dev.Close() })
	if dev.Features().Uring == noUring {
		t.Fatalf("features %v: want io_uring %v", dev.Features(), !noUring)
	}
	host := netip.MustParsePrefix("198.18.78.1/24")
	if err := dev.Configure(host); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	k := &keeper{t: t, kept: map[int][]byte{}, got: make(chan int, 64)}
	dev.Attach(k)
	c, err := ns.ListenPacket("udp4", "198.18.78.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dst := net.UDPAddrFromAddrPort(netip.MustParseAddrPort("198.18.78.2:9999"))
	size := func(i int) int {
		if i%4 == 3 {
			return small
		}
		return big
	}
	var madeFirst uint64
	for r := range rounds {
		const per = 40
		for i := r * per; i < (r+1)*per; i++ {
			if _, err := c.WriteTo(bigPayload(i, size(i)), dst); err != nil {
				t.Fatalf("kernel WriteTo: %v", err)
			}
			select {
			case <-k.got:
			case <-time.After(5 * time.Second):
				t.Fatalf("datagram %d not delivered within 5s", i)
			}
		}
		k.mu.Lock()
		for n, p := range k.kept {
			ip, err := wire.ParseIP(p)
			if err != nil || !bytes.Equal(ip.Payload[8:], bigPayload(n, size(n))) {
				t.Fatalf("round %d: datagram %d, kept on loan, was overwritten (%v)", r, n, err)
			}
		}
		want := 0
		for i := r * per; i < (r+1)*per; i++ {
			if i%2 == 0 && size(i) == big {
				want++
			}
		}
		if len(k.kept) != want {
			t.Errorf("round %d: kept %d datagrams, want %d", r, len(k.kept), want)
		}
		for _, l := range k.loans {
			if l.Size() < 65535 {
				t.Errorf("loan of %d bytes, want the buffer's 64 KiB", l.Size())
			}
			l.Release()
		}
		kept := len(k.loans)
		clear(k.kept)
		k.loans = k.loans[:0]
		k.mu.Unlock()

		st := dev.Stats()
		t.Logf("round %d: kept %d; lent %d, buffers made %d", r, kept, st.RxLent, st.RxBufsMade)
		if st.RxLent != uint64((r+1)*want) {
			t.Errorf("round %d: Stats.RxLent %d, want %d", r, st.RxLent, (r+1)*want)
		}
		if r == 0 {
			madeFirst = st.RxBufsMade
		} else if st.RxBufsMade != madeFirst {
			t.Errorf("round %d: %d buffers made in all, %d after the first round: the released ones did not come back", r, st.RxBufsMade, madeFirst)
		}
	}
	k.mu.Lock()
	if k.offered == 0 {
		t.Errorf("no datagram offered as a loan")
	}
	k.mu.Unlock()
}

// lendPattern is the byte at offset i of the bulk transfers below.
func lendPattern(i int64) byte { return byte(i*2654435761>>13) ^ byte(i>>11) }

// The kernel's large segments stay in the device's read buffers: at MTU
// 65535, and at MTU 1500 with offloads where the kernel's TSO
// super-segments reach the stack whole, the stack keeps a large segment's
// bytes where the device read them (a link.Loan) and copies them to the
// reader from there, instead of copying them into its receive ring first;
// the device reads into other buffers from its pool meanwhile. 32 MiB from
// the kernel's TCP to synack, every byte checked: the device counts the
// segments lent (Stats.RxLent), and buffers come back to its pool rather
// than being made anew for each. Not every large segment is lent: one
// that arrives while the reader waits in Read goes straight into the
// reader's buffer, also one copy. Both ways of reading the device:
// io_uring batches and read(2).
func TestKernelBulkLentToStack(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mtu     int
		offload bool
	}{
		{"mtu65535", 65535, false},
		{"mtu1500-tso-whole", 1500, true},
	} {
		for _, uring := range []bool{true, false} {
			name := tc.name + "/read2"
			if uring {
				name = tc.name + "/uring"
			}
			t.Run(name, func(t *testing.T) {
				kernelBulkLent(t, tc.mtu, tc.offload, !uring)
			})
		}
	}
}

func kernelBulkLent(t *testing.T, mtu int, offload, noUring bool) {
	const total = 32 << 20
	ns := nstest.NewPrefixed(t, "tl-")
	pair := tunstack.Pair{Host: netip.MustParsePrefix("198.18.77.1/24"), Stack: netip.MustParseAddr("198.18.77.2")}
	var n *tunstack.Net
	var err error
	ns.Do(func() {
		n, err = tunstack.New(tunstack.Config{
			Name: "tl%d", MTU: mtu, Offload: offload, NoUring: noUring,
			Addrs: []tunstack.Pair{pair},
		})
	})
	if err != nil {
		t.Fatalf("tunstack.New: %v", err)
	}
	defer n.Close()
	f := n.Dev.Features()
	if offload && (!f.WholeIn || !f.TSO4) {
		t.Fatalf("features %v: want TSO super-segments taken whole", f)
	}
	if f.Uring == noUring {
		t.Fatalf("features %v: want io_uring %v", f, !noUring)
	}
	t.Logf("%s: MTU %d, %v", n.Dev.Name(), mtu, f)

	ln, err := n.Stack.ListenTCP(netip.AddrPortFrom(pair.Stack, 9), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan *stack.TCPConn, 1)
	go func() {
		c, err := ln.AcceptTCP()
		if err != nil {
			t.Errorf("Accept: %v", err)
		}
		accepted <- c
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	kc, err := ns.DialContext(ctx, "tcp4", netip.AddrPortFrom(pair.Stack, 9).String())
	if err != nil {
		t.Fatalf("kernel dial: %v", err)
	}
	defer kc.Close()
	sc := <-accepted
	if sc == nil {
		return
	}
	defer sc.Close()
	deadline := time.Now().Add(60 * time.Second)
	kc.SetDeadline(deadline)
	sc.SetDeadline(deadline)
	before := n.Dev.Stats()

	sent := make(chan error, 1)
	go func() {
		buf := make([]byte, 256<<10)
		for off := int64(0); off < total; off += int64(len(buf)) {
			for i := range buf {
				buf[i] = lendPattern(off + int64(i))
			}
			if _, err := kc.Write(buf); err != nil {
				sent <- err
				return
			}
		}
		sent <- kc.(*net.TCPConn).CloseWrite()
	}()
	got, err := readPattern(sc)
	if err != nil {
		t.Fatalf("synack read %d of %d bytes: %v", got, total, err)
	}
	if err := <-sent; err != nil {
		t.Fatalf("kernel write: %v", err)
	}
	if got != total {
		t.Fatalf("synack read %d bytes, want %d", got, total)
	}
	after := n.Dev.Stats()
	lent := after.RxLent - before.RxLent
	made := after.RxBufsMade - before.RxBufsMade
	large := after.RxGSO - before.RxGSO // TSO super-segments, all taken whole
	if !offload {
		large = after.RxPackets - before.RxPackets
	}
	t.Logf("packets %d, large %d, lent %d; buffers made %d (before the transfer %d); receiver's buffers at the end %d bytes",
		after.RxPackets-before.RxPackets, large, lent, made, before.RxBufsMade, sc.Info().Memory)
	if lent == 0 || lent < large/4 {
		t.Errorf("%d of %d large segments lent to the stack; want at least a quarter", lent, large)
	}
	if made > lent/2 {
		t.Errorf("%d buffers made for %d lent: the buffers lent do not come back to the pool", made, lent)
	}
}

// readPattern reads c to its end, checking every byte against
// lendPattern, and returns how many it read.
func readPattern(c *stack.TCPConn) (int64, error) {
	buf := make([]byte, 64<<10)
	var off int64
	for {
		k, err := c.Read(buf)
		for i, b := range buf[:k] {
			if b != lendPattern(off+int64(i)) {
				return off, fmt.Errorf("byte %d is %#x, want %#x", off+int64(i), b, lendPattern(off+int64(i)))
			}
		}
		off += int64(k)
		if err == io.EOF {
			return off, nil
		}
		if err != nil {
			return off, err
		}
	}
}

//go:build linux

package tun_test

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/synack/synack/link"
	"github.com/synack/synack/link/tun"
	"github.com/synack/synack/link/tun/nstest"
	"github.com/synack/synack/wire"
)

// Batches of reads and writes, through io_uring and without it, with and
// without the virtio-net header: every datagram arrives once and in
// order, in both directions, batches larger than a ring included.
func TestBatchedReadsAndWrites(t *testing.T) {
	const n = 300 // more than a ring's worth (64) each way
	for _, uring := range []bool{true, false} {
		for _, offload := range []bool{true, false} {
			for _, tc := range udpCases {
				t.Run(fmt.Sprintf("uring=%v/offload=%v/%s", uring, offload, tc.name), func(t *testing.T) {
					ns := nstest.NewPrefixed(t, "fl-")
					var dev *tun.Device
					var err error
					ns.Do(func() {
						dev, err = tun.OpenOptions("fl%d", tun.Options{Offload: offload, Queues: 1, NoUring: !uring})
					})
					if err != nil {
						t.Fatalf("OpenOptions: %v", err)
					}
					t.Cleanup(func() { dev.Close() })
					if f := dev.Features(); f.Uring != uring || strings.Contains(f.String(), "io_uring") != uring {
						// A kernel without io_uring runs the read(2)
						// path: nothing to compare it with.
						if uring && !f.Uring {
							t.Skipf("no io_uring here: %v", f)
						}
						t.Fatalf("Features %v: Uring %v, want %v", f, f.Uring, uring)
					}
					if err := dev.Configure(tc.host); err != nil {
						t.Fatalf("Configure: %v", err)
					}
					batchedBothWays(t, ns, dev, tc, n)
				})
			}
		}
	}
}

// seqPayload is datagram i's payload: its number, then filler.
func seqPayload(i int) []byte {
	p := make([]byte, 4, 100)
	binary.BigEndian.PutUint32(p, uint32(i))
	return append(p, strings.Repeat("x", 96)...)
}

// attachSeqNumbers makes dev deliver the number of each UDP datagram
// seqPayload built, in the order the device hands them over.
func attachSeqNumbers(dev *tun.Device, size int) chan int {
	got := make(chan int, size)
	dev.Attach(link.DispatcherFunc(func(p []byte) {
		ip, err := wire.ParseIP(p)
		if err != nil || ip.Protocol != wire.ProtocolUDP || len(ip.Payload) < 12 {
			return
		}
		got <- int(binary.BigEndian.Uint32(ip.Payload[8:]))
	}))
	return got
}

func batchedBothWays(t *testing.T, ns *nstest.NS, dev *tun.Device, tc udpCase, n int) {
	got := attachSeqNumbers(dev, n+16)
	c, err := ns.ListenPacket(tc.udp, tc.listen)
	if err != nil {
		t.Fatalf("ListenPacket: %v", err)
	}
	defer c.Close()
	c.(*net.UDPConn).SetReadBuffer(1 << 20)
	kernel := c.LocalAddr().(*net.UDPAddr).AddrPort()
	stackEnd := netip.AddrPortFrom(tc.stack, 9999)

	// Kernel -> device, as fast as the socket sends: the reader finds
	// many queued at once.
	for i := range n {
		if _, err := c.WriteTo(seqPayload(i), net.UDPAddrFromAddrPort(stackEnd)); err != nil {
			t.Fatalf("kernel WriteTo: %v", err)
		}
	}
	var order []int
	for len(order) < n {
		select {
		case k := <-got:
			order = append(order, k)
		case <-time.After(5 * time.Second):
			t.Fatalf("device delivered %d of %d datagrams within 5s: %v", len(order), n, order)
		}
	}
	for i, k := range order {
		if k != i {
			t.Fatalf("device delivered datagram %d where %d was due (out of order): %v", k, i, order[max(i-4, 0):min(i+5, n)])
		}
	}
	if st := dev.Stats(); st.RxReads < uint64(n) {
		t.Errorf("Stats %+v: RxReads %d, want at least %d", st, st.RxReads, n)
	}

	// Device -> kernel in one call.
	pkts := make([][]byte, n)
	for i := range pkts {
		pkts[i] = udpPacket(stackEnd, kernel, seqPayload(i))
	}
	if k, err := dev.WritePackets(pkts); k != n || err != nil {
		t.Fatalf("WritePackets(%d) = %d, %v", n, k, err)
	}
	buf := make([]byte, 200)
	for i := range n {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		m, _, err := c.ReadFrom(buf)
		if err != nil {
			t.Fatalf("kernel read %d of %d: %v", i, n, err)
		}
		if k := int(binary.BigEndian.Uint32(buf[:m])); k != i {
			t.Fatalf("kernel got datagram %d, want %d", k, i)
		}
	}
	if st := dev.Stats(); st.TxPackets != uint64(n) || st.TxWrites != uint64(n) {
		t.Errorf("Stats %+v: TxPackets %d, TxWrites %d; want %d each", st, st.TxPackets, st.TxWrites, n)
	}

	// A refused packet in a batch: the ones before it are taken and
	// the error names the refusal.
	big := make([]byte, dev.MTU()+1)
	if k, err := dev.WritePackets([][]byte{pkts[0], pkts[1], big, pkts[2]}); k != 2 || err == nil {
		t.Errorf("WritePackets(ok, ok, oversize, ok) = %d, %v; want 2 and an error", k, err)
	}

	// A packet the kernel refuses (IP version 0) in the middle of a
	// batch: the packets before it go, the error says why, and the ones
	// after it do not go (after the two of each batch, the next datagram
	// the kernel reads is the one written after the second).
	before := dev.Stats()
	bad := make([]byte, 40)
	if k, err := dev.WritePackets([][]byte{pkts[0], pkts[1], bad, pkts[2]}); k != 2 || err == nil {
		t.Errorf("WritePackets(ok, ok, refused, ok) = %d, %v; want 2 and an error", k, err)
	}
	if _, err := dev.WritePackets([][]byte{pkts[3]}); err != nil {
		t.Fatalf("WritePackets after the refusal: %v", err)
	}
	for _, want := range []int{0, 1, 0, 1, 3} {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		m, _, err := c.ReadFrom(buf)
		if err != nil {
			t.Fatalf("kernel read after the refusal: %v", err)
		}
		if k := int(binary.BigEndian.Uint32(buf[:m])); k != want {
			t.Fatalf("after the refusal the kernel got datagram %d, want %d", k, want)
		}
	}
	if st := dev.Stats(); st.TxPackets-before.TxPackets != 3 || st.TxErrors-before.TxErrors != 1 {
		t.Errorf("Stats %+v after %+v: want 3 more packets and 1 more error", st, before)
	}

	// Close with the reader idle (it has had every packet for a
	// while): one waiting for packets (in the poller, never in the ring)
	// lets go at once.
	closeStops(t, ns, dev, pkts[0])
}

// BenchmarkRoundTrip is one datagram from a kernel socket through the
// device and an answer written back, one at a time: the quiet case, where
// a batch holds one packet, with the reads and writes batched through
// io_uring and without.
func BenchmarkRoundTrip(b *testing.B) {
	for _, uring := range []bool{true, false} {
		b.Run(fmt.Sprintf("uring=%v", uring), func(b *testing.B) {
			tc := udpCases[0]
			dev, c := benchDevice(b, tc, uring)
			kernel := c.LocalAddr().(*net.UDPAddr).AddrPort()
			stackEnd := netip.AddrPortFrom(tc.stack, 9999)
			answer := [][]byte{udpPacket(stackEnd, kernel, []byte("pong"))}
			dev.Attach(link.DispatcherFunc(func(p []byte) {
				if ip, err := wire.ParseIP(p); err == nil && ip.Protocol == wire.ProtocolUDP {
					dev.WritePackets(answer)
				}
			}))
			to := net.UDPAddrFromAddrPort(stackEnd)
			buf := make([]byte, 100)
			for b.Loop() {
				if _, err := c.WriteTo([]byte("ping"), to); err != nil {
					b.Fatal(err)
				}
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, _, err := c.ReadFrom(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWriteBatch writes batches of 64 datagrams to a kernel socket
// that never reads them (the kernel drops what its buffer cannot hold),
// with the writes batched through io_uring and without.
func BenchmarkWriteBatch(b *testing.B) {
	for _, uring := range []bool{true, false} {
		b.Run(fmt.Sprintf("uring=%v", uring), func(b *testing.B) {
			tc := udpCases[0]
			dev, c := benchDevice(b, tc, uring)
			kernel := c.LocalAddr().(*net.UDPAddr).AddrPort()
			pkts := make([][]byte, 64)
			for i := range pkts {
				pkts[i] = udpPacket(netip.AddrPortFrom(tc.stack, 9999), kernel, seqPayload(i))
			}
			for b.Loop() {
				if k, err := dev.WritePackets(pkts); k != len(pkts) || err != nil {
					b.Fatalf("WritePackets = %d, %v", k, err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(pkts)), "ns/packet")
		})
	}
}

// benchDevice is a configured device (offloads on, io_uring as asked) in
// a namespace of its own, with a kernel UDP socket there, both closed
// when b ends.
func benchDevice(b *testing.B, tc udpCase, uring bool) (*tun.Device, net.PacketConn) {
	ns := nstest.NewPrefixed(b, "fl-")
	var dev *tun.Device
	var err error
	ns.Do(func() { dev, err = tun.OpenOptions("fl%d", tun.Options{Offload: true, NoUring: !uring}) })
	if err != nil {
		b.Fatalf("OpenOptions: %v", err)
	}
	b.Cleanup(func() { dev.Close() })
	if uring && !dev.Features().Uring {
		b.Skip("no io_uring here")
	}
	if err := dev.Configure(tc.host); err != nil {
		b.Fatalf("Configure: %v", err)
	}
	c, err := ns.ListenPacket(tc.udp, tc.listen)
	if err != nil {
		b.Fatalf("ListenPacket: %v", err)
	}
	b.Cleanup(func() { c.Close() })
	return dev, c
}

// The ring's reads with the device quiet between packets: a burst (which
// turns the reader to the ring, with many reads per batch) and then a
// lone datagram sent while the reader sets up its next batch, sooner or
// later into it; the next burst goes only once the lone one has arrived.
// Every datagram must arrive exactly once and in order, and none may stay
// behind until the next one comes: a datagram still missing 5 s after it
// was sent, with the device otherwise idle, is stuck. In interop's
// TestShortConnections such a stuck packet was the kernel's last ACK,
// read by the ring but held with it until the answer to synack's
// retransmitted FIN came 200 ms later: by then synack was CLOSED and
// answered that second ACK with a RST, which ended the kernel's
// TIME-WAIT.
func TestRingReadsQuietDevice(t *testing.T) {
	for _, tc := range udpCases {
		t.Run(tc.name, func(t *testing.T) { ringReadsQuiet(t, tc, 1500) })
	}
}

// A kernel that refuses the ring's reads (no RWF_NOWAIT for the file):
// the reader goes on with read(2), and nothing is lost on the way.
func TestRingReadsRefused(t *testing.T) {
	tun.RefuseRingReads(t)
	ringReadsQuiet(t, udpCases[0], 50)
}

func ringReadsQuiet(t *testing.T, tc udpCase, rounds int) {
	ns := nstest.NewPrefixed(t, "ur-")
	var dev *tun.Device
	var err error
	ns.Do(func() { dev, err = tun.OpenOptions("ur%d", tun.Options{Queues: 1}) })
	if err != nil {
		t.Fatalf("OpenOptions: %v", err)
	}
	t.Cleanup(func() { dev.Close() })
	if !dev.Features().Uring {
		t.Skipf("no io_uring here: %v", dev.Features())
	}
	if err := dev.Configure(tc.host); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	got := attachSeqNumbers(dev, 4096)
	c, err := ns.ListenPacket(tc.udp, tc.listen)
	if err != nil {
		t.Fatalf("ListenPacket: %v", err)
	}
	defer c.Close()
	to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(tc.stack, 9999))
	next, want := 0, 0
	send := func(k int) {
		for range k {
			if _, err := c.WriteTo(seqPayload(next), to); err != nil {
				t.Fatalf("kernel WriteTo: %v", err)
			}
			next++
		}
	}
	// wait takes every datagram sent so far, in order.
	wait := func(what string) {
		for want < next {
			select {
			case k := <-got:
				if k != want {
					t.Fatalf("%s: datagram %d arrived where %d was due (repeated, lost or reordered)", what, k, want)
				}
				want++
			case <-time.After(5 * time.Second):
				t.Fatalf("%s: datagram %d of %d still not delivered after 5 s with the device idle (stuck); %+v", what, want, next, dev.Stats())
			}
		}
	}
	for r := range rounds {
		send(64)
		wait("a burst")
		for spin := time.Now().Add(time.Duration(r%64) * time.Microsecond); time.Now().Before(spin); {
		}
		send(1)
		wait("a lone datagram after a burst")
	}
	select {
	case k := <-got:
		t.Fatalf("datagram %d delivered again after all %d", k, next)
	case <-time.After(50 * time.Millisecond):
	}
}

// BenchmarkReadBurst is bursts of 64 datagrams sent by the kernel in one
// sendmmsg(2) and read from the device, with the reads batched through
// io_uring and without: the busy case the ring is for. Besides the time
// per datagram it reports the process's CPU time per datagram (user and
// system, the sender's system call included, the same both ways), which
// the other processes on a shared machine disturb less.
func BenchmarkReadBurst(b *testing.B) {
	const burst = 64
	for _, uring := range []bool{true, false} {
		b.Run(fmt.Sprintf("uring=%v", uring), func(b *testing.B) {
			tc := udpCases[0]
			dev, c := benchDevice(b, tc, uring)
			got := make(chan struct{}, 4*burst)
			dev.Attach(link.DispatcherFunc(func(p []byte) { got <- struct{}{} }))
			to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(tc.stack, 9999))
			msgs := make([]ipv4.Message, burst)
			for i := range msgs {
				msgs[i] = ipv4.Message{Buffers: [][]byte{seqPayload(i)}, Addr: to}
			}
			pc := ipv4.NewPacketConn(c)
			var before, after unix.Rusage
			unix.Getrusage(unix.RUSAGE_SELF, &before)
			for b.Loop() {
				for sent := 0; sent < burst; {
					k, err := pc.WriteBatch(msgs[sent:], 0)
					if err != nil {
						b.Fatalf("WriteBatch: %v", err)
					}
					sent += k
				}
				for range burst {
					select {
					case <-got:
					case <-time.After(5 * time.Second):
						b.Fatalf("a burst's datagram not delivered within 5 s; %+v", dev.Stats())
					}
				}
			}
			unix.Getrusage(unix.RUSAGE_SELF, &after)
			cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
			n := float64(b.N * burst)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/packet")
			b.ReportMetric(float64(cpu.Nanoseconds())/n, "cpu-ns/packet")
			st := dev.Stats()
			b.ReportMetric(float64(st.RxPackets)/float64(max(st.RxBatches, 1)), "packets/batch")
		})
	}
}

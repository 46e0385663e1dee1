//go:build linux

package hosttrace

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/synack/synack/link/tun/nstest"
	"github.com/synack/synack/tcp"
	"github.com/synack/synack/wire"
)

// collectAll reads events that keep says are the test's until stop
// says enough, then another 200 ms, or fails after 5 s.
func collectAll(t *testing.T, tr *Tracer, keep func(*Event) bool, stop func([]Event) bool) []Event {
	t.Helper()
	var got, buf []Event
	deadline := time.Now().Add(5 * time.Second)
	var extra time.Time
	for {
		end := deadline
		if !extra.IsZero() {
			end = extra
		}
		ctx, cancel := context.WithDeadline(context.Background(), end)
		var err error
		buf, err = tr.Next(ctx, buf[:0])
		cancel()
		for i := range buf {
			if buf[i].Kind == KindLost {
				t.Errorf("lost events: %+v", buf[i])
			}
			if keep(&buf[i]) {
				got = append(got, buf[i])
			}
		}
		if err != nil {
			if extra.IsZero() {
				t.Fatalf("timed out; got so far:\n%s", ladderText(got))
			}
			return got
		}
		if extra.IsZero() && stop(got) {
			extra = time.Now().Add(200 * time.Millisecond)
		}
	}
}

func countKind(evs []Event, k Kind) int {
	n := 0
	for _, e := range evs {
		if e.Kind == k {
			n++
		}
	}
	return n
}

// TestDestroy: with Destroys, each of the lifecycle's three sockets
// (listener, client, server child) is freed exactly once, after its last
// state change, under the key (skaddr) its state changes carried. The
// client's TIME-WAIT lives on in a timewait sock, which is not a full
// socket and has no tcp_destroy_sock.
func TestDestroy(t *testing.T) {
	ns := nstest.New(t)
	port := freePort(t, ns)
	tr, err := Open(Options{Destroys: true, Ports: []uint16{port}})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if m := tr.Missing(); len(m) > 0 {
		t.Fatalf("this kernel lacks %v (6.18 has them)", m)
	}
	srv := netip.AddrPortFrom(srvAddr, port)
	l, err := ns.Listen("tcp4", srv.String())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- err
			return
		}
		io.Copy(io.Discard, c)
		done <- c.Close()
	}()
	c, err := dialFrom(ns, srv)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("x"))
	c.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	l.Close()
	got := collectAll(t, tr, func(e *Event) bool { return mine(e, port) },
		func(evs []Event) bool { return countKind(evs, KindDestroy) >= 3 })
	if n := countKind(got, KindDestroy); n != 3 {
		t.Fatalf("%d sockets freed, want 3:\n%s", n, ladderText(got))
	}
	last := map[uint64]int{} // socket -> index of its last event
	for i, e := range got {
		last[e.Sock] = i
	}
	for i, e := range got {
		if e.Kind != KindDestroy {
			continue
		}
		if last[e.Sock] != i {
			t.Errorf("socket %x freed before its last event:\n%s", e.Sock, ladderText(got))
		}
		if e.Cookie == 0 {
			t.Errorf("socket %x freed without a cookie", e.Sock)
		}
		states := 0
		for _, s := range got[:i] {
			if s.Sock == e.Sock && s.Kind == KindState {
				states++
				if s.To == tcp.Closed && s.Time.After(e.Time) {
					t.Errorf("socket %x freed before it closed", e.Sock)
				}
			}
		}
		if states == 0 {
			t.Errorf("socket %x freed with no state change seen under that key:\n%s", e.Sock, ladderText(got))
		}
	}
}

// Addresses for TestSynAckRetransmit: the listener on lo, and a peer
// that is no address of the namespace's.
var (
	hwListen = netip.MustParseAddr("198.18.150.1")
	hwPeer   = netip.MustParseAddr("198.18.151.2")
)

// TestSynAckRetransmit: a SYN from a peer that never answers (a raw
// socket in the namespace sends it; the SYN-ACK reaches no socket)
// leaves a half-open handshake whose SYN-ACK the kernel sends again after
// the initial RTO of 1 s (RFC 6298 2.1; RFC 9293 3.8.1's retransmission
// in SYN-RECEIVED): exactly one tcp_retransmit_synack by 2 s, for that
// 4-tuple, keyed by the request sock.
func TestSynAckRetransmit(t *testing.T) {
	ns := nstest.New(t)
	var err error
	ns.Do(func() {
		lo, e := netlink.LinkByName("lo")
		if e != nil {
			err = e
			return
		}
		if err = netlink.AddrAdd(lo, &netlink.Addr{IPNet: netlink.NewIPNet(hwListen.AsSlice())}); err != nil {
			return
		}
		// Segments to the peer loop back on lo and are not for any
		// local address: dropped, so no RST answers the SYN-ACK.
		err = netlink.RouteAdd(&netlink.Route{LinkIndex: lo.Attrs().Index, Dst: netlink.NewIPNet(hwPeer.AsSlice())})
	})
	if err != nil {
		t.Fatal(err)
	}
	l, err := ns.Listen("tcp4", netip.AddrPortFrom(hwListen, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	tr, err := Open(Options{Retransmits: true, Ports: []uint16{port}})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if slices.Contains(tr.Missing(), "tcp/tcp_retransmit_synack") {
		t.Fatal("this kernel lacks tcp_retransmit_synack (6.18 has it)")
	}
	const peerPort = 40001
	syn := wire.TCPHeader{SrcPort: peerPort, DstPort: port, Seq: 1000, Flags: wire.SYN, Window: 65535}
	tcpSeg := wire.AppendTCP(nil, &syn, nil, hwPeer, hwListen)
	ip := wire.IPv4Header{TTL: 64, Protocol: unix.IPPROTO_TCP, Src: hwPeer, Dst: hwListen}
	pkt := append(wire.AppendIPv4(nil, &ip, len(tcpSeg)), tcpSeg...)
	ns.Do(func() {
		fd, e := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
		if e != nil {
			err = e
			return
		}
		defer unix.Close(fd)
		err = unix.Sendto(fd, pkt, 0, &unix.SockaddrInet4{Addr: hwListen.As4()})
	})
	if err != nil {
		t.Fatal(err)
	}
	peer := netip.AddrPortFrom(hwPeer, peerPort)
	keep := func(e *Event) bool { return e.Remote == peer || e.Local == peer }
	got := collectAll(t, tr, keep, func(evs []Event) bool { return countKind(evs, KindSynAckRetransmit) >= 1 })
	var rtx []Event
	for _, e := range got {
		if e.Kind == KindSynAckRetransmit {
			rtx = append(rtx, e)
		}
	}
	want := fmt.Sprintf("one SYN-ACK retransmission %v -> %v in SYN-RECEIVED", netip.AddrPortFrom(hwListen, port), peer)
	if len(rtx) != 1 {
		t.Fatalf("%d SYN-ACK retransmissions, want %s:\n%s", len(rtx), want, ladderText(got))
	}
	if e := rtx[0]; e.Local != netip.AddrPortFrom(hwListen, port) || e.Remote != peer || e.To != tcp.SynReceived || e.Sock == 0 {
		t.Fatalf("got %+v, want %s", e, want)
	}
}

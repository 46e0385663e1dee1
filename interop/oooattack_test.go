//go:build linux

package interop

import (
	"errors"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/stack"
	"github.com/synack/synack/tcp"
	"github.com/synack/synack/wire"
)

// rawKernel is a scripted TCP peer on the kernel's side of the TUN: it
// sends hand-made segments through a raw IP socket (IP_HDRINCL) in the
// namespace, which the kernel routes into the TUN, and reads what synack
// sends from a packet socket on the device. It uses a source address the
// kernel does not own (attacker), so that the kernel's own TCP neither
// answers synack's SYN,ACKs with resets nor sees them: packets to it are
// not for this host, and the namespace does not forward.
type rawKernel struct {
	t        *testing.T
	send, rx int
	attacker netip.Addr
	target   netip.Addr
}

func newRawKernel(t *testing.T, e *env, attacker netip.Addr) *rawKernel {
	r := &rawKernel{t: t, attacker: attacker, target: e.fam.stack, send: -1, rx: -1}
	var err error
	e.ns.Do(func() {
		if r.send, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW); err != nil {
			return
		}
		if r.rx, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, int(htons(unix.ETH_P_ALL))); err != nil {
			return
		}
		var ifi *net.Interface
		if ifi, err = net.InterfaceByName(e.dev.Name()); err != nil {
			return
		}
		if err = unix.Bind(r.rx, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			return
		}
		// Room for a batch of answers (SO_RCVBUFFORCE: root only).
		err = unix.SetsockoptInt(r.rx, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20)
	})
	t.Cleanup(func() {
		if r.send >= 0 {
			unix.Close(r.send)
		}
		if r.rx >= 0 {
			unix.Close(r.rx)
		}
	})
	if err != nil {
		t.Fatalf("raw sockets in the namespace: %v", err)
	}
	return r
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// sendTCP sends one segment from attacker:port to the stack's port 80.
func (r *rawKernel) sendTCP(port uint16, h wire.TCPHeader, payload []byte) {
	r.t.Helper()
	h.SrcPort, h.DstPort = port, 80
	seg := wire.AppendTCP(nil, &h, payload, r.attacker, r.target)
	pkt := wire.AppendIPv4(nil, &wire.IPv4Header{TTL: 64, Protocol: wire.ProtocolTCP, Src: r.attacker, Dst: r.target}, len(seg))
	pkt = append(pkt, seg...)
	to := &unix.SockaddrInet4{Addr: r.target.As4()}
	if err := unix.Sendto(r.send, pkt, 0, to); err != nil {
		r.t.Fatalf("raw send: %v", err)
	}
}

// collect reads the segments synack sends to the attacker until want of
// them have come, or until the deadline; it returns them by the
// attacker's port (the last one for each port).
func (r *rawKernel) collect(want int, deadline time.Time) map[uint16]wire.TCPHeader {
	r.t.Helper()
	got := map[uint16]wire.TCPHeader{}
	buf := make([]byte, 1<<16)
	n := 0
	for n < want {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		tv := unix.NsecToTimeval(min(left, 200*time.Millisecond).Nanoseconds())
		unix.SetsockoptTimeval(r.rx, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		k, _, err := unix.Recvfrom(r.rx, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			r.t.Fatalf("packet socket: %v", err)
		}
		p, err := wire.ParseIP(buf[:k])
		if err != nil || p.Protocol != wire.ProtocolTCP || p.Src != r.target || p.Dst != r.attacker {
			continue // ours on the way in, or something else
		}
		h, _, err := wire.ParseTCP(p.Payload, p.Src, p.Dst, true)
		if err != nil {
			r.t.Fatalf("synack sent a bad segment: %v", err)
		}
		got[h.DstPort] = h
		n++
	}
	return got
}

func heapNow() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// The out-of-order amplification attack of issue 12 over TUN: 1,000
// connections, each completed by a hand-made handshake from the kernel's
// side, then sent one byte 1,000,000 past RCV.NXT. Before issue 12 each
// such byte made a receive ring grow to a megabyte. Auto-tuned, the
// window starts at 64 KiB, so the byte lies beyond it: answered with an
// ACK and dropped (RFC 9293 3.10.7.4). With a fixed 1 MiB window
// (NoAutoTune) the byte is inside it: held out of order, SACKed, costing
// what arrived. Either way the heap of this process (the stack runs in
// it) must grow by less than 64 KiB per connection, and the stack's
// memory accounting must agree with its connections.
func TestOutOfOrderAttackOverTUN(t *testing.T) {
	t.Run("autotune", func(t *testing.T) { testOutOfOrderAttackOverTUN(t, false) })
	t.Run("fixed", func(t *testing.T) { testOutOfOrderAttackOverTUN(t, true) })
}

func testOutOfOrderAttackOverTUN(t *testing.T, fixed bool) {
	const (
		conns = 1000
		batch = 100
		far   = 1_000_000
	)
	e := newEnv(t, families[0], func(c *envConfig) { c.opts = stack.Options{TCP: tcp.Config{NoAutoTune: fixed}} })
	attacker := netip.MustParseAddr("198.18.0.66") // in the TUN's subnet, owned by no one
	r := newRawKernel(t, e, attacker)
	l, err := e.s.ListenTCP(e.fam.stackAddr(80), conns+10)
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan *stack.TCPConn, conns)
	go func() {
		for {
			c, err := l.AcceptTCP()
			if err != nil {
				return
			}
			accepted <- c // held, as a server holds its connections
		}
	}()
	defer func() {
		l.Close()
		for {
			select {
			case c := <-accepted:
				c.SetLinger(0)
				c.Close()
			default:
				return
			}
		}
	}()
	deadline := time.Now().Add(2 * time.Minute)
	base := heapNow()

	const peerISS = 1000
	iss := map[uint16]seqnum.Value{}
	for b := 0; b < conns; b += batch {
		for i := b; i < b+batch; i++ {
			r.sendTCP(uint16(20000+i), wire.TCPHeader{Seq: peerISS, Flags: wire.SYN, Window: 65535,
				Options: wire.TCPOptions{HasMSS: true, MSS: 1460, HasWindowScale: true, WindowScale: 7, SACKPermitted: true}}, nil)
		}
		got := r.collect(batch, deadline)
		for i := b; i < b+batch; i++ {
			h, ok := got[uint16(20000+i)]
			if !ok || h.Flags != wire.SYN|wire.ACK || h.Ack != peerISS+1 {
				t.Fatalf("port %d: no SYN,ACK (got %+v)", 20000+i, h)
			}
			iss[uint16(20000+i)] = h.Seq
			r.sendTCP(uint16(20000+i), wire.TCPHeader{Seq: peerISS + 1, Ack: h.Seq + 1, Flags: wire.ACK, Window: 512}, nil)
		}
	}
	for len(accepted) < conns {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections accepted, want %d", len(accepted), conns)
		}
		time.Sleep(10 * time.Millisecond)
	}
	idle := heapNow()
	memIdle := e.s.Memory()
	dropsBefore := e.s.Counters().Drops[tcp.DropOutOfWindow]

	for b := 0; b < conns; b += batch {
		for i := b; i < b+batch; i++ {
			port := uint16(20000 + i)
			r.sendTCP(port, wire.TCPHeader{Seq: peerISS + 1 + far, Ack: iss[port] + 1, Flags: wire.ACK, Window: 512}, []byte{'x'})
		}
		got := r.collect(batch, deadline)
		for i := b; i < b+batch; i++ {
			h, ok := got[uint16(20000+i)]
			if !ok || h.Flags != wire.ACK || h.Ack != peerISS+1 {
				t.Fatalf("port %d: want an ACK of %d for the far byte, got %+v (%v)", 20000+i, peerISS+1, h, ok)
			}
			sack := h.Options.SACK()
			if fixed && (len(sack) != 1 || sack[0].Start != peerISS+1+far) {
				t.Fatalf("port %d: SACK %v, want the byte at %d held", 20000+i, sack, peerISS+1+far)
			}
			if !fixed && len(sack) != 0 {
				t.Fatalf("port %d: SACK %v, want none: the byte is beyond the window", 20000+i, sack)
			}
		}
	}
	attacked := heapNow()
	mi := e.s.Memory()
	all := e.s.Counters()
	ctr := all.TCP
	per := func(a, b uint64) int64 { return (int64(b) - int64(a)) / conns }
	t.Logf("heap per connection: idle %d B, out-of-order-attacked %d B more; stack memory in use %d -> %d B; out-of-window drops %d",
		per(base, idle), per(idle, attacked), memIdle.InUse, mi.InUse, all.Drops[tcp.DropOutOfWindow]-dropsBefore)
	if grew := per(idle, attacked); grew >= 64<<10 {
		t.Errorf("one out-of-order byte per connection grew the heap by %d bytes per connection, want < 64 KiB", grew)
	}
	if d := all.Drops[tcp.DropOutOfWindow] - dropsBefore; !fixed && d < conns {
		t.Errorf("%d out-of-window drops counted, want at least %d", d, conns)
	}
	// Held, each byte costs a reassembly chunk's bookkeeping and itself
	// (tcp/ooo.go); dropped, nothing.
	if grew := mi.InUse - memIdle.InUse; fixed && (grew < conns || grew >= conns*1024) || !fixed && grew != 0 {
		t.Errorf("stack memory in use grew from %d to %d, want %s", memIdle.InUse, mi.InUse, map[bool]string{true: "what arrived (under 1 KiB a connection)", false: "nothing"}[fixed])
	}
	if ctr.TCPMemoryBytes != uint64(mi.InUse) {
		t.Errorf("TCPMemoryBytes %d, Memory().InUse %d", ctr.TCPMemoryBytes, mi.InUse)
	}
	var sum int64
	n := 0
	for _, ci := range e.s.Connections() {
		if ci.State != tcp.Listen {
			sum += int64(ci.Info.Memory)
			n++
		}
	}
	if sum != mi.InUse-mi.Reassembly {
		t.Errorf("memory counted %d, the connections hold %d", mi.InUse-mi.Reassembly, sum)
	}
	if n < conns {
		t.Errorf("%d connections listed, want %d", n, conns)
	}
}

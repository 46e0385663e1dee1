package stack

import (
	"bytes"
	"io"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/tcp"
	"github.com/synack/synack/wire"
)

// The stack-wide memory budget (memory.go) under the attack of issue 12:
// many connections each holding out-of-order data and unread in-order
// data.

// memSlack is how far the memory in use may pass the limit: what the one
// call that crosses it can add (see memory.go): here a receive ring's
// first array (4 KiB) and one segment's out-of-order chunk, with room.
const memSlack = 16 << 10

// synAckWindow opens a connection from port and returns the window its
// SYN,ACK offers; the handshake is completed.
func (r *rawPeer) synAckWindow(port uint16) (seqnum.Value, uint16) {
	r.t.Helper()
	from, to := netip.AddrPortFrom(addrB, port), netip.AddrPortFrom(addrA, 80)
	r.send(tcpPacket(from, to, wire.TCPHeader{Seq: 1000, Flags: wire.SYN, Window: 65535,
		Options: wire.TCPOptions{HasMSS: true, MSS: 1460, HasWindowScale: true, WindowScale: 7, SACKPermitted: true}}, nil))
	p := r.recv()
	if p == nil {
		r.t.Fatal("no SYN,ACK")
	}
	h, _, err := wire.ParseTCP(p.Payload, p.Src, p.Dst, true)
	if err != nil || h.Flags != wire.SYN|wire.ACK {
		r.t.Fatalf("want SYN,ACK, got %v %v", h, err)
	}
	r.send(tcpPacket(from, to, wire.TCPHeader{Seq: 1001, Ack: h.Seq + 1, Flags: wire.ACK, Window: 512}, nil))
	return h.Seq, h.Window
}

func TestMemoryLimitUnderAttack(t *testing.T) {
	const (
		conns = 2000
		limit = 4 << 20
	)
	synctest.Test(t, func(t *testing.T) {
		r := newRawPeerOpts(t, Options{MemoryLimit: limit})
		l, err := r.s.ListenTCP(netip.AddrPortFrom(addrA, 80), conns+10)
		if err != nil {
			t.Fatal(err)
		}
		accepted := make(chan *TCPConn, conns+10)
		go func() {
			for {
				c, err := l.AcceptTCP()
				if err != nil {
					return
				}
				accepted <- c // held and never read, as a stuck server's
			}
		}()
		_, normalWnd := r.synAckWindow(9000)
		if normalWnd < 8*1460 {
			t.Fatalf("SYN,ACK window %d before the attack, want a full one", normalWnd)
		}

		// Each attacker sends 2000 bytes in order (never read) and 1000
		// bytes 50,000 ahead: inside the 64 KiB window a connection
		// starts with (tcp/autotune.go).
		iss := make([]seqnum.Value, conns)
		var maxUsed int64
		check := func(when string) {
			m := r.s.Memory()
			maxUsed = max(maxUsed, m.InUse)
			if m.InUse > limit+memSlack {
				t.Fatalf("%s: memory in use %d, over the limit %d by more than %d", when, m.InUse, limit, memSlack)
			}
		}
		var clampedWnd uint16
		sawPressure := false
		for i := range conns {
			port := uint16(10000 + i)
			from, to := netip.AddrPortFrom(addrB, port), netip.AddrPortFrom(addrA, 80)
			if r.s.Memory().State != tcp.MemoryNormal && !sawPressure {
				// A connection made under pressure is offered a few
				// segments, not the whole buffer.
				sawPressure = true
				iss[i], clampedWnd = r.synAckWindow(port)
			} else {
				iss[i] = r.openRaw(port, 1000)
			}
			ack := iss[i] + 1
			r.send(tcpPacket(from, to, wire.TCPHeader{Seq: 1001 + 50_000, Ack: ack, Flags: wire.ACK, Window: 512}, bytes.Repeat([]byte{'o'}, 1000)))
			r.send(tcpPacket(from, to, wire.TCPHeader{Seq: 1001, Ack: ack, Flags: wire.ACK, Window: 512}, bytes.Repeat([]byte{'i'}, 1000)))
			r.send(tcpPacket(from, to, wire.TCPHeader{Seq: 2001, Ack: ack, Flags: wire.ACK, Window: 512}, bytes.Repeat([]byte{'i'}, 1000)))
			r.drain()
			check("attack")
			if i%500 == 0 {
				time.Sleep(time.Second) // time passes: delayed ACKs, reclaim timers
				r.drain()
			}
		}
		time.Sleep(time.Second)
		r.drain()
		check("after the attack")
		ctr := r.s.Counters().TCP
		mi := r.s.Memory()
		t.Logf("limit %d: peak %d in use, now %d (%v); pressures %d, prune passes %d, %d out-of-order bytes pruned, %d segments' text dropped",
			limit, maxUsed, mi.InUse, mi.State, ctr.TCPMemoryPressures, ctr.PruneCalled, ctr.OFOPruned, ctr.TCPRcvQDrop)
		if ctr.TCPMemoryPressures == 0 || !sawPressure {
			t.Fatal("the stack never entered memory pressure")
		}
		if clampedWnd == 0 || int(clampedWnd) > 4*1460 {
			t.Errorf("SYN,ACK window under pressure %d, want at most 4 segments (%d)", clampedWnd, 4*1460)
		}
		if ctr.PruneCalled == 0 || ctr.OFOPruned == 0 {
			t.Errorf("PruneCalled %d, OFOPruned %d: want out-of-order data pruned", ctr.PruneCalled, ctr.OFOPruned)
		}
		if ctr.TCPRcvQDrop == 0 {
			t.Errorf("TCPRcvQDrop 0: want data over the limit dropped and counted")
		}
		if ctr.TCPMemoryBytes != uint64(mi.InUse) || ctr.TCPMemoryState != uint64(mi.State) {
			t.Errorf("gauges TCPMemoryBytes %d, TCPMemoryState %d; Memory says %d, %v", ctr.TCPMemoryBytes, ctr.TCPMemoryState, mi.InUse, mi.State)
		}
		// The incremental count agrees with the connections' own.
		var sum int64
		for _, ci := range r.s.Connections() {
			if ci.State != tcp.Listen {
				sum += int64(ci.Info.Memory)
			}
		}
		if sum != mi.InUse-mi.Reassembly {
			t.Errorf("memory counted %d, the connections hold %d", mi.InUse-mi.Reassembly, sum)
		}

		// The attack ends: the attackers go away (reset by the server).
		l.Close()
		for range conns + 1 {
			c := <-accepted
			c.SetLinger(0)
			c.Close()
			r.drain()
		}
		time.Sleep(time.Second)
		r.drain()
		mi = r.s.Memory()
		if mi.State != tcp.MemoryNormal || mi.InUse > limit/2 {
			t.Fatalf("after the attack: %v with %d in use, want normal", mi.State, mi.InUse)
		}
		if c := r.s.Counters().TCP; c.TCPMemoryPressuresChrono == 0 {
			t.Errorf("TCPMemoryPressuresChrono 0 after a spell of pressure")
		}

		// A well-behaved connection completes a transfer.
		l2, err := r.s.ListenTCP(netip.AddrPortFrom(addrA, 81), 1)
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan []byte, 1)
		go func() {
			c, err := l2.AcceptTCP()
			if err != nil {
				got <- nil
				return
			}
			b, _ := io.ReadAll(c)
			got <- b
			c.Close()
		}()
		from, to := netip.AddrPortFrom(addrB, 5000), netip.AddrPortFrom(addrA, 81)
		r.send(tcpPacket(from, to, wire.TCPHeader{Seq: 1000, Flags: wire.SYN, Window: 65535,
			Options: wire.TCPOptions{HasMSS: true, MSS: 1460}}, nil))
		p := r.recv()
		h, _, err := wire.ParseTCP(p.Payload, p.Src, p.Dst, true)
		if err != nil || h.Flags != wire.SYN|wire.ACK {
			t.Fatalf("want SYN,ACK, got %v %v", h, err)
		}
		ack := h.Seq + 1
		data := make([]byte, 50_000)
		for i := range data {
			data[i] = byte(i)
		}
		r.send(tcpPacket(from, to, wire.TCPHeader{Seq: 1001, Ack: ack, Flags: wire.ACK, Window: 65535}, nil))
		for off := 0; off < len(data); off += 1000 {
			r.send(tcpPacket(from, to, wire.TCPHeader{Seq: seqnum.Value(1001 + off), Ack: ack, Flags: wire.ACK | wire.PSH, Window: 65535}, data[off:off+1000]))
			r.drain()
		}
		r.send(tcpPacket(from, to, wire.TCPHeader{Seq: seqnum.Value(1001 + len(data)), Ack: ack, Flags: wire.ACK | wire.FIN, Window: 65535}, nil))
		r.drain()
		if b := <-got; !bytes.Equal(b, data) {
			t.Fatalf("the well-behaved connection received %d bytes, want the %d sent", len(b), len(data))
		}
		l2.Close()
		r.drain()
	})
}

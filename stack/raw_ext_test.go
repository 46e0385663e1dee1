package stack_test

import (
	"net/netip"
	"testing"

	"github.com/synack/synack/stacktest"
	"github.com/synack/synack/wire"
)

// Raw-packet tests through stacktest.Peer: the stack at AddrA answers
// packets built by hand. (The tests that need the stack's internals stay
// in raw_test.go with its own raw peer.)

func TestICMPEcho(t *testing.T) {
	r := stacktest.NewPeer(t)
	r.Timeout = 0 // Next: what the stack has sent once all is idle
	r.Run(t, func() {
		m4 := wire.NewICMPv4Echo(false, 7, 1, []byte("ping4"))
		r.Send(t, stacktest.IPPacket(stacktest.AddrB, stacktest.AddrA, wire.ProtocolICMP, wire.AppendICMPv4(nil, &m4)))
		p := r.Next()
		if p == nil || p.Protocol != wire.ProtocolICMP || p.Src != stacktest.AddrA || p.Dst != stacktest.AddrB {
			t.Fatalf("no echo reply: %+v", p)
		}
		rep, err := wire.ParseICMPv4(p.Payload, true)
		if id, seq := rep.Echo(); err != nil || rep.Type != wire.ICMPv4EchoReply || id != 7 || seq != 1 || string(rep.Data) != "ping4" {
			t.Errorf("reply %+v, %v", rep, err)
		}

		m6 := wire.NewICMPv6Echo(false, 8, 2, []byte("ping6"))
		r.Send(t, stacktest.IPPacket(stacktest.AddrB6, stacktest.AddrA6, wire.ProtocolICMPv6, wire.AppendICMPv6(nil, &m6, stacktest.AddrB6, stacktest.AddrA6)))
		p = r.Next()
		if p == nil || p.Protocol != wire.ProtocolICMPv6 {
			t.Fatalf("no echo reply: %+v", p)
		}
		rep6, err := wire.ParseICMPv6(p.Payload, p.Src, p.Dst, true)
		if id, seq := rep6.Echo(); err != nil || rep6.Type != wire.ICMPv6EchoReply || id != 8 || seq != 2 || string(rep6.Data) != "ping6" {
			t.Errorf("reply %+v, %v", rep6, err)
		}
		if c := r.Stack.Counters().ICMP; c.InEchos != 2 || c.OutEchoReps != 2 {
			t.Errorf("InEchos %d OutEchoReps %d, want 2 2", c.InEchos, c.OutEchoReps)
		}
	})
}

func TestRSTToClosedPort(t *testing.T) {
	r := stacktest.NewPeer(t)
	r.Timeout = 0 // Next: what the stack has sent once all is idle
	r.Run(t, func() {
		from, to := netip.AddrPortFrom(stacktest.AddrB, 4000), netip.AddrPortFrom(stacktest.AddrA, 80)
		// An ACK gets <SEQ=SEG.ACK><CTL=RST>.
		r.Send(t, stacktest.TCPPacket(from, to, wire.TCPHeader{Seq: 100, Ack: 5000, Flags: wire.ACK, Window: 1000}, []byte("data")))
		p := r.Next()
		if p == nil {
			t.Fatal("no RST")
		}
		h, _, err := wire.ParseTCP(p.Payload, p.Src, p.Dst, true)
		if err != nil || h.Flags != wire.RST || h.Seq != 5000 || h.DstPort != 4000 || h.SrcPort != 80 {
			t.Errorf("got %v, %v; want [R] seq 5000", h, err)
		}
		// A SYN gets <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>.
		r.Send(t, stacktest.TCPPacket(from, to, wire.TCPHeader{Seq: 100, Flags: wire.SYN, Window: 1000}, nil))
		p = r.Next()
		h, _, err = wire.ParseTCP(p.Payload, p.Src, p.Dst, true)
		if err != nil || h.Flags != wire.RST|wire.ACK || h.Seq != 0 || h.Ack != 101 {
			t.Errorf("got %v, %v; want [R.] seq 0 ack 101", h, err)
		}
		// A RST gets nothing.
		r.Send(t, stacktest.TCPPacket(from, to, wire.TCPHeader{Seq: 100, Flags: wire.RST}, nil))
		if p := r.Next(); p != nil {
			t.Errorf("RST answered")
		}
		if c := r.Stack.Counters().TCP; c.InNoSocket != 3 || c.OutRsts != 2 || c.InSegs != 3 {
			t.Errorf("InNoSocket %d OutRsts %d InSegs %d, want 3 2 3", c.InNoSocket, c.OutRsts, c.InSegs)
		}
	})
}

func TestBadPacketsCounted(t *testing.T) {
	r := stacktest.NewPeer(t)
	r.Timeout = 0 // Next: what the stack has sent once all is idle
	r.Run(t, func() {
		from, to := netip.AddrPortFrom(stacktest.AddrB, 4000), netip.AddrPortFrom(stacktest.AddrA, 80)
		pkt := stacktest.TCPPacket(from, to, wire.TCPHeader{Seq: 1, Flags: wire.SYN}, nil)
		pkt[len(pkt)-1] ^= 0xff // the TCP checksum's low byte
		r.Send(t, pkt)
		// A fragment, held for reassembly (reasm.go).
		frag := wire.AppendIPv4(nil, &wire.IPv4Header{TTL: 64, Protocol: wire.ProtocolTCP, Src: stacktest.AddrB, Dst: stacktest.AddrA, Flags: wire.IPv4MoreFragments}, 8)
		r.Send(t, append(frag, make([]byte, 8)...))
		// Garbage, and a packet for somebody else.
		r.Send(t, []byte{0x45, 0, 0})
		r.Send(t, stacktest.TCPPacket(from, netip.AddrPortFrom(netip.MustParseAddr("198.18.0.77"), 80), wire.TCPHeader{Flags: wire.SYN}, nil))
		if p := r.Next(); p != nil {
			t.Errorf("bad packet answered")
		}
		c := r.Stack.Counters()
		if c.TCP.InErrs != 1 || c.TCP.InCsumErrors != 1 {
			t.Errorf("InErrs %d InCsumErrors %d, want 1 1", c.TCP.InErrs, c.TCP.InCsumErrors)
		}
		if c.IP.ReasmReqds != 1 || c.IP.ReasmFails != 0 || c.IP.InHdrErrors != 1 || c.IP.InAddrErrors != 1 || c.IP.InReceives != 4 {
			t.Errorf("IP counters %+v", c.IP)
		}
	})
}

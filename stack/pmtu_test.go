package stack

import (
	"testing"
	"testing/synctest"

	"github.com/synack/synack/wire"
)

// A forged "fragmentation needed" with a next-hop MTU of 128 cannot shrink
// segments below Linux's min_pmtu, 552 (tcp.Config.MinPMTU).
func TestICMPPacketTooBigFloor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRawPeer(t)
		c := <-r.handshake(1460)
		c.Write(make([]byte, 2*1460))
		p := r.recv()
		if p == nil || len(p.Payload) != 20+1460 {
			t.Fatalf("want a full-sized segment first, got %v", p)
		}
		if p := r.recv(); p == nil || len(p.Payload) != 20+1460 {
			t.Fatalf("want a second full-sized segment, got %v", p)
		}
		orig := ipPacket(p.Src, p.Dst, wire.ProtocolTCP, p.Payload[:8])
		m := wire.NewICMPv4FragNeeded(128, orig)
		r.send(ipPacket(addrB, addrA, wire.ProtocolICMP, wire.AppendICMPv4(nil, &m)))
		p = r.recv()
		if p == nil {
			t.Fatal("nothing resent after packet too big")
		}
		if n := 20 + len(p.Payload); n != 552 {
			t.Errorf("resent a %d-byte packet after an MTU of 128, want 552", n)
		}
	})
}

package stack

import (
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/synack/synack/ipreasm"
	"github.com/synack/synack/wire"
)

// synSegment is a SYN from src:4000 to dst:80 with the usual options: 40
// octets of TCP header.
func synSegment(src, dst netip.Addr) []byte {
	h := wire.TCPHeader{SrcPort: 4000, DstPort: 80, Seq: 7, Flags: wire.SYN, Window: 65535, Options: tsOpts}
	return wire.AppendTCP(nil, &h, nil, src, dst)
}

// fragments4 cuts seg into IPv4 fragments at the given octet offsets
// (multiples of 8), all with identification id.
func fragments4(src, dst netip.Addr, id uint16, seg []byte, cuts ...int) [][]byte {
	var out [][]byte
	bounds := append(append([]int{0}, cuts...), len(seg))
	for i := 0; i+1 < len(bounds); i++ {
		h := wire.IPv4Header{ID: id, TTL: 64, Protocol: wire.ProtocolTCP, Src: src, Dst: dst, FragOff: uint16(bounds[i] / 8)}
		if i+2 < len(bounds) {
			h.Flags = wire.IPv4MoreFragments
		}
		part := seg[bounds[i]:bounds[i+1]]
		out = append(out, append(wire.AppendIPv4(nil, &h, len(part)), part...))
	}
	return out
}

// fragment6 is one IPv6 packet with a Fragment header carrying part at
// offset off (octets).
func fragment6(src, dst netip.Addr, id uint32, off int, more bool, part []byte) []byte {
	f := wire.IPv6Fragment{NextHeader: wire.ProtocolTCP, Offset: uint16(off / 8), More: more, ID: id}
	body := append(wire.AppendIPv6Fragment(nil, &f), part...)
	return append(wire.AppendIPv6(nil, &wire.IPv6Header{NextHeader: wire.ProtocolFragment, HopLimit: 64, Src: src, Dst: dst}, len(body)), body...)
}

func (r *rawPeer) wantSynAck(why string) {
	r.t.Helper()
	p := r.recv()
	if p == nil {
		r.t.Fatalf("%s: no answer", why)
	}
	h, _, err := wire.ParseTCP(p.Payload, p.Src, p.Dst, true)
	if err != nil || h.Flags != wire.SYN|wire.ACK || h.Ack != 8 || h.DstPort != 4000 {
		r.t.Fatalf("%s: got %v %v, want a SYN,ACK of seq 7", why, h, err)
	}
}

// A SYN in three IPv4 fragments, arriving last first, is reassembled
// (RFC 791 section 3.2) and answered.
func TestSYNInIPv4Fragments(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newListeningPeer(t)
		frags := fragments4(addrB, addrA, 4242, synSegment(addrB, addrA), 16, 32)
		for _, i := range []int{2, 0} {
			r.send(frags[i])
			if p := r.recv(); p != nil {
				t.Fatalf("answered fragment %d alone", i)
			}
		}
		r.send(frags[1])
		r.wantSynAck("SYN in three fragments")
		c := r.s.Counters().IP
		if c.ReasmReqds != 3 || c.ReasmOKs != 1 || c.ReasmFails != 0 || c.InReceives != 3 || c.InDelivers != 1 {
			t.Errorf("IP counters %+v", c)
		}
	})
}

// RFC 6946: a SYN in an IPv6 atomic fragment (offset 0, M=0) is the whole
// packet; and a SYN in two IPv6 fragments is reassembled (RFC 8200
// section 4.5).
func TestSYNInIPv6Fragments(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newListeningPeer(t)
		seg := synSegment(addrB6, addrA6)
		r.send(fragment6(addrB6, addrA6, 99, 0, false, seg))
		r.wantSynAck("SYN in an atomic fragment")

		r.s.Close()
		r = newListeningPeer(t)
		r.send(fragment6(addrB6, addrA6, 100, 24, false, seg[24:]))
		r.send(fragment6(addrB6, addrA6, 100, 0, true, seg[:24]))
		r.wantSynAck("SYN in two fragments")
		if c := r.s.Counters().IP; c.ReasmReqds != 2 || c.ReasmOKs != 1 || c.ReasmFails != 0 {
			t.Errorf("IP counters %+v", c)
		}
	})
}

// Overlapping fragments discard the datagram (RFC 5722; Linux for IPv4):
// the SYN gets nothing.
func TestOverlappingFragmentsDiscarded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newListeningPeer(t)
		seg := synSegment(addrB, addrA)
		a := fragments4(addrB, addrA, 1, seg, 24)
		b := fragments4(addrB, addrA, 1, seg, 16)
		r.send(a[0]) // [0, 24)
		r.send(b[1]) // [16, 40): overlaps
		r.send(a[1]) // [24, 40): would have completed [0, 24)
		if p := r.recv(); p != nil {
			t.Fatalf("answered overlapping fragments")
		}
		if c := r.s.Counters().IP; c.ReasmFails != 1 || c.ReasmOKs != 0 {
			t.Errorf("IP counters %+v", c)
		}
	})
}

// A flood of first fragments with distinct identifications stays within
// the reassembly budget; incomplete datagrams time out after 30 s.
func TestFragmentFloodBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newListeningPeer(t)
		n := r.s.nics[0]
		part := make([]byte, 1000)
		h := wire.IPv4Header{TTL: 64, Protocol: wire.ProtocolTCP, Src: addrB, Dst: addrA, Flags: wire.IPv4MoreFragments}
		const flood = 10000
		for i := range flood {
			h.ID = uint16(i)
			h.Src = netip.AddrFrom4([4]byte{198, 18, 0, byte(2 + i%200)})
			n.DeliverPacket(append(wire.AppendIPv4(nil, &h, len(part)), part...))
			r.s.mu.Lock()
			mem, budget := r.s.frag.r.Mem(), r.s.frag.r.Budget()
			r.s.mu.Unlock()
			if mem > budget || budget != ipreasm.DefaultBudget {
				t.Fatalf("after %d fragments: %d bytes held, budget %d", i+1, mem, budget)
			}
		}
		r.s.mu.Lock()
		held, mem := r.s.frag.r.Len(), r.s.frag.r.Mem()
		r.s.mu.Unlock()
		per := ipreasm.DatagramOverhead + ipreasm.FragmentOverhead + len(part)
		if held != ipreasm.DefaultBudget/per || mem != held*per {
			t.Errorf("%d datagrams in %d bytes, want %d of %d", held, mem, ipreasm.DefaultBudget/per, per)
		}
		c := r.s.Counters().IP
		if c.ReasmReqds != flood || c.ReasmFails != uint64(flood-held) || c.ReasmOKs != 0 {
			t.Errorf("IP counters %+v", c)
		}
		// Linux's ipfrag_time: 30 s. The next packet finds them expired.
		left := held
		time.Sleep(30 * time.Second)
		r.synFrom(addrB, addrA)
		r.s.mu.Lock()
		held, mem = r.s.frag.r.Len(), r.s.frag.r.Mem()
		r.s.mu.Unlock()
		c = r.s.Counters().IP
		if held != 0 || mem != 0 || c.ReasmTimeout != uint64(left) || c.ReasmFails != flood {
			t.Errorf("after 30 s: %d datagrams in %d bytes; counters %+v", held, mem, c)
		}
	})
}

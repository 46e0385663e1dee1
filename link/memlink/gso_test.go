package memlink

import (
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/synack/synack/link"
	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/wire"
)

// superSegment builds a TCP super-segment from src to dst of n bytes of
// payload at seq, with flags, its checksum left partial, as the stack
// hands it to a link that segments: the header as Head, the payload as
// Payload.
func superSegment(src, dst netip.Addr, seq uint32, flags wire.TCPFlags, n int, gso uint16) (link.Packet, []byte) {
	payload := make([]byte, n)
	for i := range payload {
		payload[i] = byte(i*7 + i/251)
	}
	h := &wire.TCPHeader{SrcPort: 80, DstPort: 4000, Seq: seqnum.Value(seq), Ack: 77, Flags: flags, Window: 100}
	h.Options.HasTimestamps, h.Options.TSVal, h.Options.TSEcr = true, 5, 6
	l4 := h.HeaderLen() + n
	var b []byte
	if src.Is4() {
		b = wire.AppendIPv4(nil, &wire.IPv4Header{ID: 0xfffe, Flags: wire.IPv4DontFragment, TTL: 64, Protocol: wire.ProtocolTCP, Src: src, Dst: dst}, l4)
	} else {
		b = wire.AppendIPv6(nil, &wire.IPv6Header{NextHeader: wire.ProtocolTCP, HopLimit: 64, Src: src, Dst: dst}, l4)
	}
	b = wire.AppendTCPHeaderPartial(b, h, n, src, dst)
	return link.Packet{Head: b, Payload: payload, GSOSize: gso, PartialChecksum: true}, payload
}

// gsoSink keeps copies of what arrives.
type gsoSink struct {
	mu  sync.Mutex
	got [][]byte
}

func (s *gsoSink) DeliverPacket(pkt []byte) {
	s.mu.Lock()
	s.got = append(s.got, append([]byte(nil), pkt...))
	s.mu.Unlock()
}

// A link with GSO cuts a super-segment into MSS-sized segments as a NIC's
// TSO does: each a valid packet with a full checksum, consecutive sequence
// numbers, PSH and FIN on the last only, CWR on the first only, IPv4
// identifications counting up from the super-segment's; the bytes arrive
// intact. Loss applies to each segment: the one dropped takes one MSS.
func TestGSOSplitsSuperSegments(t *testing.T) {
	for _, fam := range []struct{ name, a, b string }{{"v4", "198.18.0.1", "198.18.0.2"}, {"v6", "fd00::1", "fd00::2"}} {
		t.Run(fam.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				src, dst := netip.MustParseAddr(fam.a), netip.MustParseAddr(fam.b)
				drop := 3 // the fourth segment is lost
				n := 0
				a, b := Pipe(Config{GSO: 65535, AB: Impairments{Drop: func([]byte) bool { n++; return n-1 == drop }}})
				defer a.Close()
				if so := a.SegmentOffload(); so.MaxSize != 65535 || !so.Checksum {
					t.Fatalf("SegmentOffload %+v", so)
				}
				sink := &gsoSink{}
				b.Attach(sink)
				const mss = 1400
				p, payload := superSegment(src, dst, 1<<32-3000, wire.ACK|wire.PSH|wire.FIN|wire.CWR, 10*mss+321, mss)
				if k, err := a.WritePacketParts([]link.Packet{p}); k != 1 || err != nil {
					t.Fatalf("WritePacketParts: %d, %v", k, err)
				}
				synctest.Wait()
				if st := a.Stats(); st.Sent != 11 || st.GSOSplit != 1 || st.DroppedHook != 1 {
					t.Fatalf("stats %+v: want 11 segments sent from 1 super-segment, 1 dropped", st)
				}
				sink.mu.Lock()
				defer sink.mu.Unlock()
				if len(sink.got) != 10 {
					t.Fatalf("%d segments arrived, want 10", len(sink.got))
				}
				for j, pkt := range sink.got {
					i := j
					if j >= drop {
						i++
					}
					ip, err := wire.ParseIP(pkt)
					if err != nil {
						t.Fatalf("segment %d: %v", i, err)
					}
					h, data, err := wire.ParseTCP(ip.Payload, ip.Src, ip.Dst, true)
					if err != nil {
						t.Fatalf("segment %d: %v (checksum not completed?)", i, err)
					}
					wantLen := mss
					if i == 10 {
						wantLen = 321
					}
					if uint32(h.Seq) != 1<<32-3000+uint32(i*mss) || len(data) != wantLen || string(data) != string(payload[i*mss:i*mss+wantLen]) {
						t.Fatalf("segment %d: seq %d len %d, or its bytes differ", i, h.Seq, len(data))
					}
					wantFlags := wire.ACK
					if i == 0 {
						wantFlags |= wire.CWR
					}
					if i == 10 {
						wantFlags |= wire.PSH | wire.FIN
					}
					if h.Flags != wantFlags || h.Ack != 77 || !h.Options.HasTimestamps || h.Options.TSVal != 5 {
						t.Fatalf("segment %d: flags %v ack %d ts %v, want %v", i, h.Flags, h.Ack, h.Options.HasTimestamps, wantFlags)
					}
					if ip.Version == 4 && ip.IPv4.ID != uint16(0xfffe+i) {
						t.Fatalf("segment %d: IPv4 ID %#x, want %#x", i, ip.IPv4.ID, uint16(0xfffe+i))
					}
				}
			})
		})
	}
}

// A link without GSO (the default) offers nothing and refuses a packet
// over its MTU as before; with GSO, a super-segment over the GSO limit or
// with segments over the MTU is refused.
func TestGSOLimits(t *testing.T) {
	src, dst := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2")
	a, _ := Pipe(Config{})
	defer a.Close()
	if so := a.SegmentOffload(); so != (link.SegmentOffload{}) {
		t.Fatalf("no GSO: SegmentOffload %+v", so)
	}
	p, _ := superSegment(src, dst, 1, wire.ACK, 3000, 1000)
	if k, err := a.WritePacketParts([]link.Packet{p}); k != 0 || err == nil {
		t.Fatalf("no GSO: %d, %v; want the super-segment refused (over the MTU)", k, err)
	}
	g, _ := Pipe(Config{GSO: 4000})
	defer g.Close()
	big, _ := superSegment(src, dst, 1, wire.ACK, 5000, 1000)
	if k, err := g.WritePacketParts([]link.Packet{big}); k != 0 || err == nil {
		t.Fatalf("GSO 4000: %d, %v; want a 5000-byte super-segment refused", k, err)
	}
	fat, _ := superSegment(src, dst, 1, wire.ACK, 3000, 1500)
	if k, err := g.WritePacketParts([]link.Packet{fat}); k != 0 || err == nil {
		t.Fatalf("GSO size 1500: %d, %v; want segments over the MTU refused", k, err)
	}
}

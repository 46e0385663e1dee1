package stack

import (
	"context"
	"net/netip"
	"testing"
	"testing/synctest"

	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/wire"
)

// One ACK per receive batch (tcp/batch.go): the in-order data of a batch
// from the link is acknowledged once (at most every batchACKSegments
// full-sized segments), while out-of-order data still gets an immediate
// duplicate ACK with SACK per segment (RFC 5681 section 4.2).

const (
	batchMSS  = 1000
	batchPeer = 5000 // the peer's ISS
)

// batchHandshake opens a connection from the stack to a raw peer offering SACK
// and window scaling, and returns the stack's address and port and the
// acknowledgment number the peer's segments carry (the stack's ISS+1).
func batchHandshake(t *testing.T, r *rawPeer) (local netip.AddrPort, ack uint32) {
	t.Helper()
	conn := make(chan *TCPConn, 1)
	go func() {
		c, err := r.s.DialTCP(context.Background(), netip.AddrPortFrom(addrB, 80))
		if err != nil {
			t.Errorf("dial: %v", err)
		}
		conn <- c
	}()
	p := r.recv()
	h, _, err := wire.ParseTCP(p.Payload, p.Src, p.Dst, true)
	if err != nil || h.Flags != wire.SYN {
		t.Fatalf("want a SYN, got %v %v", h, err)
	}
	local = netip.AddrPortFrom(p.Src, h.SrcPort)
	r.send(tcpPacket(netip.AddrPortFrom(addrB, 80), local, wire.TCPHeader{
		Seq: batchPeer, Ack: h.Seq + 1, Flags: wire.SYN | wire.ACK, Window: 65535,
		Options: wire.TCPOptions{HasMSS: true, MSS: batchMSS, SACKPermitted: true, HasWindowScale: true, WindowScale: 7},
	}, nil))
	if p := r.recv(); p == nil {
		t.Fatal("no ACK of the SYN,ACK")
	}
	<-conn
	return local, uint32(h.Seq + 1)
}

// dataBatch builds the data segments at the given offsets (in units of
// batchMSS from the peer's ISS+1).
func dataBatch(local netip.AddrPort, ack uint32, offs ...int) [][]byte {
	var pkts [][]byte
	for _, off := range offs {
		pkts = append(pkts, tcpPacket(netip.AddrPortFrom(addrB, 80), local, wire.TCPHeader{
			Seq: seqnum.Value(batchPeer + 1 + off*batchMSS), Ack: seqnum.Value(ack), Flags: wire.ACK, Window: 65535,
		}, make([]byte, batchMSS)))
	}
	return pkts
}

// acks takes the segments the stack sent in answer, parsed.
func (r *rawPeer) acks(t *testing.T) []wire.TCPHeader {
	t.Helper()
	var hs []wire.TCPHeader
	for p := r.recv(); p != nil; p = r.recv() {
		h, payload, err := wire.ParseTCP(p.Payload, p.Src, p.Dst, true)
		if err != nil || len(payload) != 0 || h.Flags != wire.ACK {
			t.Fatalf("want a pure ACK, got %v (%d bytes) %v", h, len(payload), err)
		}
		hs = append(hs, h)
	}
	return hs
}

func rel(a seqnum.Value) int { return int(uint32(a)-(batchPeer+1)) / batchMSS }

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

func TestOneACKPerBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRawPeer(t)
		local, ack := batchHandshake(t, r)
		deliver := r.s.nics[0].DeliverPackets

		// The first data starts quick-ACK mode (Config.QuickACKs, 16 by
		// default): each of those segments is acknowledged at once, batch
		// or not; the rest of the batch gets one ACK at its end.
		deliver(dataBatch(local, ack, seq(32)...))
		hs := r.acks(t)
		if len(hs) != 17 {
			t.Errorf("first batch of 32: %d ACKs, want 16 quick ACKs and one for the rest", len(hs))
		}
		if n := len(hs); n == 0 || rel(hs[n-1].Ack) != 32 {
			t.Fatalf("first batch: the last ACK does not cover all 32 segments: %v", hs)
		}

		// Quick-ACK mode is over: a batch of 32 in-order full-sized
		// segments gets an ACK every 16 (batchACKSegments), not every
		// second one (16 ACKs before batching).
		offs := make([]int, 32)
		for i := range offs {
			offs[i] = 32 + i
		}
		deliver(dataBatch(local, ack, offs...))
		hs = r.acks(t)
		if len(hs) != 2 || rel(hs[0].Ack) != 48 || rel(hs[1].Ack) != 64 {
			t.Errorf("second batch of 32: ACKs %v, want two, of segments 48 and 64", rels(hs))
		}
	})
}

func rels(hs []wire.TCPHeader) []int {
	var out []int
	for _, h := range hs {
		out = append(out, rel(h.Ack))
	}
	return out
}

func TestBatchOutOfOrderACKsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRawPeer(t)
		local, ack := batchHandshake(t, r)
		deliver := r.s.nics[0].DeliverPackets
		// Past quick-ACK mode first.
		deliver(dataBatch(local, ack, seq(32)...))
		r.acks(t)

		// Segments 32..41 in order, 42 lost, 43..47 above the hole: the
		// first segment above the hole is answered at once with the ACK
		// of the in-order ten, and every one after it with a duplicate
		// ACK whose SACK block grows (RFC 5681 section 4.2, RFC 2018).
		offs := []int{32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 43, 44, 45, 46, 47}
		deliver(dataBatch(local, ack, offs...))
		hs := r.acks(t)
		if len(hs) != 5 {
			t.Fatalf("batch with a hole: %d ACKs %v, want 5 (one per segment above the hole)", len(hs), rels(hs))
		}
		for i, h := range hs {
			if rel(h.Ack) != 42 {
				t.Errorf("ACK %d acknowledges segment %d, want 42 (the hole)", i, rel(h.Ack))
			}
			sack := h.Options.SACK()
			if len(sack) == 0 {
				t.Errorf("ACK %d has no SACK block", i)
				continue
			}
			if rel(sack[0].Start) != 43 || rel(sack[0].End) != 44+i {
				t.Errorf("ACK %d: SACK block %d..%d, want 43..%d", i, rel(sack[0].Start), rel(sack[0].End), 44+i)
			}
		}

		// The segment that fills the hole is acknowledged at once (RFC
		// 5681 section 4.2), and so is the new data after it: the
		// out-of-order data put the connection in quick-ACK mode, whose
		// ACKs are never batched (the sender recovering needs each).
		deliver(dataBatch(local, ack, 42, 48, 49, 50))
		hs = r.acks(t)
		if got := rels(hs); len(got) != 4 || got[0] != 48 || got[1] != 49 || got[2] != 50 || got[3] != 51 {
			t.Errorf("hole filled: ACKs %v, want 48, 49, 50, 51, each at once", got)
		}
	})
}

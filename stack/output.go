package stack

import (
	"net/netip"

	"github.com/synack/synack/link"
	"github.com/synack/synack/tcp"
	"github.com/synack/synack/wire"
)

// tcpScratch holds the headers of the packet being built, so building one
// does not allocate.
type tcpScratch struct {
	tcp wire.TCPHeader
	v4  wire.IPv4Header
	v6  wire.IPv6Header
	id  uint16 // IPv4 identification (RFC 6864: only unique enough)
}

// connSink is a TCPConn seen as the tcp.Sink of its tcp.Conn; a named
// type rather than methods on TCPConn keeps SendSegment and StateChanged
// out of TCPConn's exported API.
type connSink TCPConn

func (k *connSink) SendSegment(c *tcp.Conn, seg *tcp.Segment) {
	tc := (*TCPConn)(k)
	tc.sh.sendSegment(tc.nic, tc.id, seg, tc, c.PayloadInSendBuffer())
}

func (k *connSink) StateChanged(_ *tcp.Conn, t tcp.Transition) {
	tc := (*TCPConn)(k)
	tc.sh.stateChanged(tc.cid, tc.id, t)
}

// SegmentDropped makes connSink a tcp.DropSink.
func (k *connSink) SegmentDropped(_ *tcp.Conn, _ *tcp.Segment, r tcp.DropReason) {
	(*TCPConn)(k).sh.segmentDropped(r)
}

// segmentDropped counts a segment the core discarded, and puts the reason
// on the received segment's trace event.
func (sh *shard) segmentDropped(r tcp.DropReason) {
	if r == tcp.DropNone || r >= tcp.NumDropReasons {
		return
	}
	s := sh.s
	s.ctr.Drops[r].add(1)
	if s.trace != nil {
		sh.tr.dropped(r)
	}
}

// sendSegment builds the IP packet for seg on id and queues it on n.
// tc is nil for segments that belong to no connection (RST to a closed
// port). borrow says seg's payload stays valid until the flush
// (tcp.Conn.PayloadInSendBuffer: every unlock flushes before the next
// Write), so a link that takes packets in pieces gets it where it is.
func (sh *shard) sendSegment(n *nic, id tcp.Tuple, seg *tcp.Segment, tc *TCPConn, borrow bool) {
	s := sh.s
	s.ctr.TCP.OutSegs.add(uint64(seg.Pieces())) // a super-segment counts as what the link cuts it into
	if seg.Flags&wire.RST != 0 {
		s.ctr.TCP.OutRsts.add(1)
	}
	if s.trace != nil {
		var st tcp.State
		var cid uint64
		if tc != nil {
			st = tc.state()
			cid = tc.cid
		} else if a := sh.as; a.cid != 0 { // sent for a listener (syndefence.go)
			st, cid = a.to, a.cid
		}
		sh.tr.segment(TraceSent, s.clock.Now(), cid, id, seg, st, st)
	}
	if n == nil {
		s.ctr.IP.OutNoRoutes.add(1)
		return
	}
	src, dst := id.Local.Addr(), id.Remote.Addr()
	h := &sh.hdr.tcp
	*h = wire.TCPHeader{
		SrcPort: id.Local.Port(),
		DstPort: id.Remote.Port(),
		Seq:     seg.Seq,
		Ack:     seg.Ack,
		Flags:   seg.Flags,
		Window:  seg.Window,
		Options: seg.Options,
	}
	l4 := h.HeaderLen() + len(seg.Payload)
	o := sh.out(n)
	b := o.next()
	b = sh.appendIPECN(b, src, dst, wire.ProtocolTCP, l4, seg.ECN)
	if seg.GSOSize > 0 && n.tso.MaxSize > 0 {
		o.commitSuper(superHead(b, h, seg, src, dst, borrow, n.tso.Checksum), seg, borrow, n.tso.Checksum)
		return
	}
	if borrow && n.pw != nil && len(seg.Payload) > 0 {
		b = wire.AppendTCPHeader(b, h, seg.Payload, src, dst)
		o.commitParts(b, seg.Payload)
		return
	}
	b = wire.AppendTCP(b, h, seg.Payload, src, dst)
	o.commit(b)
}

// superHead appends, after the IP header in b, the TCP header of the
// super-segment seg (tcp/gso.go) for a link that segments, with the
// checksum left to the link when it completes checksums (the payload is
// then never summed here), and the payload too unless borrow lets it stay
// in the send buffer.
func superHead(b []byte, h *wire.TCPHeader, seg *tcp.Segment, src, dst netip.Addr, borrow, partial bool) []byte {
	switch {
	case partial:
		b = wire.AppendTCPHeaderPartial(b, h, len(seg.Payload), src, dst)
	case borrow:
		b = wire.AppendTCPHeader(b, h, seg.Payload, src, dst)
	default:
		return wire.AppendTCP(b, h, seg.Payload, src, dst)
	}
	if !borrow {
		b = append(b, seg.Payload...)
	}
	return b
}

// commitSuper queues the super-segment built in b (superHead) with its
// GSO size, for a link that segments (nic.tso; such a link takes
// parts).
func (o *nicOut) commitSuper(b []byte, seg *tcp.Segment, borrow, partial bool) {
	p := link.Packet{GSOSize: seg.GSOSize, PartialChecksum: partial}
	if borrow {
		p.Payload = seg.Payload
	}
	o.commitPacket(b, p)
}

// appendIP appends an IPv4 or IPv6 header for an upper-layer payload of l4
// bytes, with shard 0's scratch: for what is sent under s.mu held for
// writing (ICMP, UDP), which excludes every shard.
func (s *Stack) appendIP(b []byte, src, dst netip.Addr, proto uint8, l4 int) []byte {
	return s.shards[0].appendIPECN(b, src, dst, proto, l4, wire.NotECT)
}

// appendIPECN is appendIP with the ECN field the core chose for a TCP
// segment (RFC 3168 section 5: ECT(0) on new data of an ECN connection,
// tcp/ecn.go) in the TOS byte or Traffic Class; the DSCP stays 0.
func (sh *shard) appendIPECN(b []byte, src, dst netip.Addr, proto uint8, l4 int, ecn wire.ECN) []byte {
	s := sh.s
	s.ctr.IP.OutRequests.add(1)
	tos := wire.WithECN(0, ecn)
	if src.Is4() {
		h := &sh.hdr.v4
		sh.hdr.id++
		*h = wire.IPv4Header{
			TOS:      tos,
			ID:       sh.hdr.id,
			Flags:    wire.IPv4DontFragment, // RFC 1191 path MTU discovery
			TTL:      s.opts.TTL,
			Protocol: proto,
			Src:      src,
			Dst:      dst,
		}
		return wire.AppendIPv4(b, h, l4)
	}
	h := &sh.hdr.v6
	*h = wire.IPv6Header{TrafficClass: tos, NextHeader: proto, HopLimit: s.opts.TTL, Src: src, Dst: dst}
	return wire.AppendIPv6(b, h, l4)
}

// next returns an empty buffer to build the next packet in, in shard 0's
// batch: for what is sent under s.mu held for writing (ICMP, UDP), which
// excludes every shard.
func (n *nic) next() []byte { return n.out[0].next() }

// commit queues the packet built in b (from next) for the next flush.
func (n *nic) commit(b []byte) { n.out[0].commit(b) }

// next returns an empty buffer to build the next packet in.
func (o *nicOut) next() []byte {
	if o.pending == len(o.bufs) {
		o.bufs = append(o.bufs, make([]byte, 0, min(o.n.mtu, 65535)+wire.IPv6HeaderLen))
	}
	return o.bufs[o.pending][:0]
}

// commit queues the packet built in b (from next) for the next flush.
func (o *nicOut) commit(b []byte) { o.commitParts(b, nil) }

// commitParts queues the packet of head b (from next) and payload, which
// must stay valid until the flush, for the next flush. Only a nic whose
// link takes parts (pw) may be given a payload.
func (o *nicOut) commitParts(b, payload []byte) { o.commitPacket(b, link.Packet{Payload: payload}) }

// commitPacket is commitParts for a packet with more to say than its
// payload (a super-segment's GSO size): p's Head is b.
func (o *nicOut) commitPacket(b []byte, p link.Packet) {
	o.bufs[o.pending] = b
	if o.n.pw != nil {
		if o.pending == len(o.parts) {
			o.parts = append(o.parts, link.Packet{})
		}
		p.Head = b
		o.parts[o.pending] = p
	}
	o.pending++
	if !o.queued {
		o.queued = true
		o.sh.dirty = append(o.sh.dirty, o)
	}
	if o.pending >= maxBatch {
		o.write()
	}
}

// write hands the pending packets to the link. A packet the link refuses
// (too big, link down) is counted and skipped; the rest still go. Links
// take writes from several goroutines at once, so shards write without
// a common lock.
func (o *nicOut) write() {
	if o.n.pw != nil {
		o.writeParts()
		return
	}
	pkts := o.bufs[:o.pending]
	for len(pkts) > 0 {
		k, err := o.n.ep.WritePackets(pkts)
		if k >= len(pkts) {
			break
		}
		if k < 0 {
			k = 0
		}
		_ = err
		o.n.s.ctr.IP.OutDiscards.add(1)
		pkts = pkts[k+1:]
	}
	o.pending = 0
}

// writeParts is write for a link that takes packets in pieces. The parts
// are cleared afterwards: they must not keep send buffers alive.
func (o *nicOut) writeParts() {
	all := o.parts[:o.pending]
	pkts := all
	for len(pkts) > 0 {
		k, _ := o.n.pw.WritePacketParts(pkts)
		if k >= len(pkts) {
			break
		}
		k = max(k, 0)
		o.n.s.ctr.IP.OutDiscards.add(1)
		pkts = pkts[k+1:]
	}
	clear(all)
	o.pending = 0
}

// flush writes the shard's pending packets on every link.
func (sh *shard) flush() {
	for _, o := range sh.dirty {
		if o.pending > 0 {
			o.write()
		}
		o.queued = false
	}
	clear(sh.dirty)
	sh.dirty = sh.dirty[:0]
}

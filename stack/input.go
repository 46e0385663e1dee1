package stack

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"syscall"
	"time"

	"github.com/synack/synack/link"
	"github.com/synack/synack/tcp"
	"github.com/synack/synack/wire"
)

// DeliverPacket is the link.Dispatcher of a link: one IPv4 or IPv6 packet
// in, processed to the end (replies included) before it returns.
func (n *nic) DeliverPacket(pkt []byte) {
	s := n.s
	if id, ok := tcpTupleOf(pkt); ok && len(s.shards) > 1 {
		sh := s.shardOf(id)
		sh.lock()
		if !s.closed {
			s.deliver(sh, n, pkt, nil, sh.s.clock.Now(), false)
		}
		sh.unlock()
		return
	}
	s.run(func(now time.Time) { s.deliver(nil, n, pkt, nil, now, false) })
}

// DeliverPackets makes the nic a link.BatchDispatcher: a batch that
// arrived together is processed under one lock, with one reading of the
// clock, and the replies go out in one write. Reading the clock for every
// segment was 7 % of a bulk transfer's CPU. Each connection the batch
// reaches sends one ACK for the batch's in-order data rather than one for
// every second segment (beginBatch).
func (n *nic) DeliverPackets(pkts [][]byte) { n.deliverBatch(pkts, nil, false) }

// DeliverVouchedPackets makes the nic a link.ChecksumVouching: the link
// vouches for these packets (the local kernel made them and left the
// checksum to the device, or checked it already; an in-memory link cannot
// corrupt them), so their TCP and UDP checksums are not verified again (RFC
// 9293 3.1 and RFC 768 make the checksum the receiver's check of integrity; a link that guarantees it, like a NIC
// with receive checksum offload, has done that check). Verifying was a
// fifth of a bulk transfer's CPU at MTU 1500 (issue 13).
func (n *nic) DeliverVouchedPackets(pkts [][]byte) { n.deliverBatch(pkts, nil, true) }

// DeliverLoanedPackets makes the nic a link.LoanDispatcher: a connection
// may keep a large in-order segment's payload where the link put it
// instead of copying it into its receive buffer (tcp/lend.go), one copy of
// each of those bytes fewer; the stack releases the loan once the bytes
// have been read (settle). vouched is DeliverVouchedPackets's.
func (n *nic) DeliverLoanedPackets(pkts [][]byte, loans []link.Loan, vouched bool) {
	n.deliverBatch(pkts, loans, vouched)
}

// otherShard marks, in deliverBatch, a packet for s.mu held for writing.
const otherShard = 0xff

// deliverBatch delivers pkts; loans, when not nil, are their link.Loans,
// and a packet whose bytes a connection keeps has its loan set to nil.
func (n *nic) deliverBatch(pkts [][]byte, loans []link.Loan, valid bool) {
	s := n.s
	if len(s.shards) == 1 {
		// One shard: the batch in order, under s.mu held for writing,
		// as before there were shards.
		s.run(func(now time.Time) { s.deliverPart(nil, n, pkts, loans, nil, 0, now, valid) })
		return
	}
	// Split the batch by shard (shard.go): plain TCP segments go to the
	// shard of their tuple, everything else is handled under s.mu held
	// for writing. Each part keeps the batch's order.
	var small [maxBatch]uint8
	which := small[:0]
	if len(pkts) > len(small) {
		which = make([]uint8, 0, len(pkts))
	}
	var busy uint64 // bit i: shard i has packets; bit 63: others
	for _, pkt := range pkts {
		k := uint8(otherShard)
		if id, ok := tcpTupleOf(pkt); ok {
			k = uint8(s.shardOf(id).idx)
			busy |= 1 << k
		} else {
			busy |= 1 << 63
		}
		which = append(which, k)
	}
	for _, sh := range s.shards {
		if busy&(1<<sh.idx) == 0 {
			continue
		}
		sh.lock()
		if !s.closed {
			s.deliverPart(sh, n, pkts, loans, which, uint8(sh.idx), s.clock.Now(), valid)
		}
		sh.unlock()
	}
	if busy&(1<<63) != 0 {
		s.run(func(now time.Time) { s.deliverPart(nil, n, pkts, nil, which, otherShard, now, valid) })
	}
}

// deliverPart processes the packets of pkts whose which is k (all of them
// when which is nil) as one receive batch: in shard sh, or under s.mu
// held for writing when sh is nil. loans, when not nil, are the packets'
// (deliverBatch).
func (s *Stack) deliverPart(sh *shard, n *nic, pkts [][]byte, loans []link.Loan, which []uint8, k uint8, now time.Time, valid bool) {
	count := len(pkts)
	if which != nil {
		count = 0
		for _, w := range which {
			if w == k {
				count++
			}
		}
	}
	// The receive batch lives in the shard; with s.mu held for writing
	// (one shard, or the packets that are not plain TCP) it is shard 0's.
	bsh := sh
	if bsh == nil {
		bsh = s.shards[0]
	}
	bsh.beginBatch(count)
	for i, pkt := range pkts {
		if s.closed {
			break
		}
		if which == nil || which[i] == k {
			var loan *link.Loan
			if loans != nil {
				loan = &loans[i]
			}
			s.deliver(sh, n, pkt, loan, now, valid)
		}
	}
	bsh.endBatch(now)
}

// tcpTupleOf returns the tuple of pkt, seen from our side, if it is a
// whole TCP segment in IPv4 or in IPv6 without extension headers: what
// deliverBatch may hand to a shard. The rest (fragments, other protocols,
// malformed packets) is handled under s.mu held for writing, where deliver
// validates it properly; the tuple here only chooses the shard.
func tcpTupleOf(pkt []byte) (tcp.Tuple, bool) {
	if len(pkt) < 20 {
		return tcp.Tuple{}, false
	}
	switch pkt[0] >> 4 {
	case 4:
		ihl := int(pkt[0]&0x0f) * 4
		if ihl < 20 || len(pkt) < ihl+20 || pkt[9] != wire.ProtocolTCP ||
			binary.BigEndian.Uint16(pkt[6:])&0x3fff != 0 { // MF or an offset: a fragment
			return tcp.Tuple{}, false
		}
		src, dst := netip.AddrFrom4([4]byte(pkt[12:16])), netip.AddrFrom4([4]byte(pkt[16:20]))
		t := pkt[ihl:]
		return tcp.Tuple{
			Local:  netip.AddrPortFrom(dst, binary.BigEndian.Uint16(t[2:])),
			Remote: netip.AddrPortFrom(src, binary.BigEndian.Uint16(t[0:])),
		}, true
	case 6:
		if len(pkt) < 60 || pkt[6] != wire.ProtocolTCP {
			return tcp.Tuple{}, false
		}
		src, dst := netip.AddrFrom16([16]byte(pkt[8:24])), netip.AddrFrom16([16]byte(pkt[24:40]))
		t := pkt[40:]
		return tcp.Tuple{
			Local:  netip.AddrPortFrom(dst, binary.BigEndian.Uint16(t[2:])),
			Remote: netip.AddrPortFrom(src, binary.BigEndian.Uint16(t[0:])),
		}, true
	}
	return tcp.Tuple{}, false
}

// beginBatch starts the processing of a batch of n packets. Each
// connection a segment of it reaches is told (tcp.Conn.BeginBatch, in
// deliverTCP) and remembered in sh.batched, so that endBatch can send the
// one ACK the batch's in-order data is owed (tcp/batch.go: duplicate ACKs,
// the ACKs of FINs and of data filling a hole still go out per segment,
// as RFC 5681 section 4.2 asks). A batch of one needs none of it.
func (sh *shard) beginBatch(n int) {
	sh.batching = n > 1
}

// endBatch ends the batch beginBatch began, through the door for each
// connection it reached that is still in the demux table (one the batch
// closed, or turned into a TIME-WAIT record, owes no ACK for data).
func (sh *shard) endBatch(now time.Time) {
	s := sh.s
	sh.batching = false
	for i, tc := range sh.batched {
		sh.batched[i] = nil
		tc.inBatch = false
		if s.closed || tc.removed || tc.tcb == nil {
			continue
		}
		s.callLocked(tc, now, endBatch)
	}
	sh.batched = sh.batched[:0]
}

// endBatch is tcp.Conn.EndBatch as a callback of the doors.
func endBatch(now time.Time, c *tcp.Conn) error {
	c.EndBatch(now)
	return nil
}

// deliver processes one packet that arrived at now; valid says the link
// vouched for it (DeliverVouchedPackets). sh is the shard whose door is
// held (the packet is a plain TCP segment of it: tcpTupleOf), or nil under
// s.mu held for writing. loan, when not nil, points at the link.Loan of
// pkt's memory, set to nil when a connection keeps it.
func (s *Stack) deliver(sh *shard, n *nic, pkt []byte, loan *link.Loan, now time.Time, valid bool) {
	ip := &s.ctr.IP
	ip.InReceives.add(1)
	if sh == nil {
		s.expireFragments(now) // and shard 0's timer, in any case
	}
	p, err := wire.ParseIP(pkt)
	frag := errors.Is(err, wire.ErrFragment)
	if err != nil && !frag {
		ip.InHdrErrors.add(1)
		return
	}
	// Not ours: taken only for the forwarder (forward.go).
	if _, ours := s.local[p.Dst]; (!ours && !s.forwards(n, &p)) || s.martian(n, &p) { // martian.go
		ip.InAddrErrors.add(1)
		return
	}
	if frag {
		if pkt = s.reassemble(&p, pkt, now); pkt == nil { // reasm.go
			return
		}
		loan = nil // the reassembled packet is not in the link's memory
	}
	switch {
	case p.Protocol == wire.ProtocolTCP:
		ip.InDelivers.add(1)
		s.deliverTCP(sh, n, &p, loan, now, !valid)
	case p.Protocol == wire.ProtocolUDP:
		ip.InDelivers.add(1)
		s.deliverUDP(n, &p, pkt, now, !valid) // udp.go
	case p.Protocol == wire.ProtocolICMP && p.Version == 4:
		ip.InDelivers.add(1)
		s.deliverICMPv4(n, &p, now)
	case p.Protocol == wire.ProtocolICMPv6 && p.Version == 6:
		ip.InDelivers.add(1)
		s.deliverICMPv6(n, &p, now)
	default:
		ip.InUnknownProtos.add(1)
	}
}

// deliverTCP handles a TCP segment in shard sh, or (nil) in the shard of
// its tuple under s.mu held for writing. loan is deliver's.
func (s *Stack) deliverTCP(sh *shard, n *nic, p *wire.IPPacket, loan *link.Loan, now time.Time, verify bool) {
	c := &s.ctr.TCP
	c.InSegs.add(1)
	h, payload, err := wire.ParseTCP(p.Payload, p.Src, p.Dst, verify)
	if err != nil {
		c.InErrs.add(1)
		if errors.Is(err, wire.ErrChecksum) {
			c.InCsumErrors.add(1)
		}
		return
	}
	if p.Src.IsMulticast() || p.Src.IsUnspecified() || h.SrcPort == 0 || h.DstPort == 0 {
		c.InErrs.add(1)
		return
	}
	id := tcp.Tuple{
		Local:  netip.AddrPortFrom(p.Dst, h.DstPort),
		Remote: netip.AddrPortFrom(p.Src, h.SrcPort),
	}
	// The receive batch is shard 0's when s.mu is held for writing
	// (deliverPart); it only groups ACKs, so a connection of another
	// shard in it is as well served.
	bsh := sh
	if sh == nil {
		sh, bsh = s.shardOf(id), s.shards[0]
	}
	seg := &sh.inSeg
	*seg = tcp.Segment{Seq: h.Seq, Ack: h.Ack, Flags: h.Flags, Window: h.Window, Options: h.Options, Payload: payload, ECN: p.ECN()}
	if s.trace != nil {
		sh.tr.begin(now, id, seg)
	}
	tc, deliver, from := sh.demux(n, id, seg, now)
	if deliver {
		batch := bsh.batching && !tc.inBatch
		if batch {
			tc.inBatch = true
			bsh.batched = append(bsh.batched, tc)
		}
		s.callLocked(tc, now, func(now time.Time, c *tcp.Conn) error {
			if batch {
				c.BeginBatch()
			}
			if loan != nil && *loan != nil {
				if c.HandleLentSegment(now, seg, *loan) {
					*loan = nil // kept (tcp/lend.go): released once read
				}
				return nil
			}
			c.HandleSegment(now, seg)
			return nil
		})
	}
	if s.trace != nil {
		var cid uint64
		to := from
		if tc != nil {
			cid, to = tc.cid, tc.state()
		} else if c, f, t, ok := sh.tracedAs(); ok { // handled at a listener (syndefence.go)
			cid, from, to = c, f, t
		}
		sh.tr.end(cid, from, to)
	}
	seg.Payload = nil
}

// demux finds the connection for a segment on id, making one when a SYN
// reaches a listener. It reports whether to hand the segment to that
// connection (not when it has been dropped or answered with RST), and the
// state the segment finds.
func (sh *shard) demux(n *nic, id tcp.Tuple, seg *tcp.Segment, now time.Time) (tc *TCPConn, deliver bool, from tcp.State) {
	tc, from = sh.demux1(n, id, seg, now)
	if tc == nil {
		return sh.conns[id], false, from
	}
	return tc, true, from
}

func (sh *shard) demux1(n *nic, id tcp.Tuple, seg *tcp.Segment, now time.Time) (*TCPConn, tcp.State) {
	s := sh.s
	tc := sh.conns[id]
	if tc != nil {
		st := tc.state()
		if st == tcp.TimeWait {
			if l := s.listenerFor(n, id.Local); l != nil && s.reopen(tc, seg, now) {
				s.ctr.TCP.TCPTimeWaitReopen.add(1)
				s.lmu.Lock()
				child := sh.onSYN(l, n, id, seg, now)
				s.lmu.Unlock()
				if child == nil {
					s.dropISNNext(id)
				}
				return child, tcp.Closed
			}
		}
		if tc.acceptFull(seg) {
			s.ctr.TCP.ListenOverflows.add(1)
			s.ctr.TCP.ListenDrops.add(1)
			return nil, st
		}
		return tc, st
	}
	if p := sh.tw.lookup(id); p >= 0 {
		return sh.timeWaitSegment(n, id, p, seg, now)
	}
	if l := s.listenerFor(n, id.Local); l != nil {
		s.lmu.Lock()
		defer s.lmu.Unlock()
		return sh.listenerSegment(l, n, id, seg, now)
	}
	s.ctr.TCP.InNoSocket.add(1)
	sh.resetFor(n, id, seg)
	return nil, tcp.Closed
}

// reopen ends tc, in TIME-WAIT, if seg is a SYN that may open a new
// incarnation of its 4-tuple (RFC 9293 3.10.7.4, RFC 6191), and reports
// whether it did. The new ISS is to start beyond the old incarnation's
// sequence space (RFC 1122 4.2.2.13).
func (s *Stack) reopen(tc *TCPConn, seg *tcp.Segment, now time.Time) bool {
	var ok bool
	s.callLocked(tc, now, func(now time.Time, c *tcp.Conn) error {
		if ok = c.TimeWaitReopen(seg); ok {
			s.setISNNext(tc.id, uint32(c.NextISS()))
			c.Abort(now)
		}
		return nil
	})
	return ok
}

// resetFor answers a segment that reached no connection (RFC 9293
// 3.10.7.1).
func (sh *shard) resetFor(n *nic, id tcp.Tuple, seg *tcp.Segment) {
	rst, ok := tcp.ResetFor(seg)
	if !ok {
		return
	}
	if m, _, found := sh.s.routeTo(id.Remote.Addr()); found {
		n = m
	}
	sh.sendSegment(n, id, &rst, nil, false)
}

// deliverICMPv4 answers echo requests and hands errors to the connection
// they concern.
func (s *Stack) deliverICMPv4(n *nic, p *wire.IPPacket, now time.Time) {
	c := &s.ctr.ICMP
	c.InMsgs.add(1)
	m, err := wire.ParseICMPv4(p.Payload, true)
	if err != nil {
		c.InErrors.add(1)
		return
	}
	switch m.Type {
	case wire.ICMPv4EchoRequest:
		c.InEchos.add(1)
		if p.Dst.IsMulticast() {
			return
		}
		id, seq := m.Echo()
		rep := wire.NewICMPv4Echo(true, id, seq, m.Data)
		b := n.next()
		b = s.appendIP(b, p.Dst, p.Src, wire.ProtocolICMP, wire.ICMPHeaderLen+len(rep.Data))
		b = wire.AppendICMPv4(b, &rep)
		n.commit(b)
		c.OutMsgs.add(1)
		c.OutEchoReps.add(1)
	case wire.ICMPv4EchoReply:
		s.deliverPing(p, p.Payload) // ping.go
	case wire.ICMPv4DestUnreachable, wire.ICMPv4TimeExceeded, wire.ICMPv4ParamProblem:
		switch {
		case m.IsFragNeeded():
			c.InPktTooBigs.add(1)
		case m.Type == wire.ICMPv4TimeExceeded:
			c.InTimeExcds.add(1)
		case m.Type == wire.ICMPv4ParamProblem:
		default:
			c.InDestUnreachs.add(1)
		}
		q, err := m.Quote()
		if err != nil {
			c.InErrors.add(1)
			return
		}
		errno, hard := icmpv4Errno(&m)
		s.icmpError(&q, errno, hard, m.IsFragNeeded(), uint32(m.NextHopMTU()), now)
	}
}

func (s *Stack) deliverICMPv6(n *nic, p *wire.IPPacket, now time.Time) {
	c := &s.ctr.ICMP
	c.InMsgs.add(1)
	m, err := wire.ParseICMPv6(p.Payload, p.Src, p.Dst, true)
	if err != nil {
		c.InErrors.add(1)
		return
	}
	switch m.Type {
	case wire.ICMPv6EchoRequest:
		c.InEchos.add(1)
		if p.Dst.IsMulticast() {
			return
		}
		id, seq := m.Echo()
		rep := wire.NewICMPv6Echo(true, id, seq, m.Data)
		b := n.next()
		b = s.appendIP(b, p.Dst, p.Src, wire.ProtocolICMPv6, wire.ICMPHeaderLen+len(rep.Data))
		b = wire.AppendICMPv6(b, &rep, p.Dst, p.Src)
		n.commit(b)
		c.OutMsgs.add(1)
		c.OutEchoReps.add(1)
	case wire.ICMPv6EchoReply:
		s.deliverPing(p, p.Payload) // ping.go
	case wire.ICMPv6DestUnreachable, wire.ICMPv6PacketTooBig, wire.ICMPv6TimeExceeded, wire.ICMPv6ParamProblem:
		switch m.Type {
		case wire.ICMPv6PacketTooBig:
			c.InPktTooBigs.add(1)
		case wire.ICMPv6TimeExceeded:
			c.InTimeExcds.add(1)
		case wire.ICMPv6ParamProblem:
		default:
			c.InDestUnreachs.add(1)
		}
		q, err := m.Quote()
		if err != nil {
			c.InErrors.add(1)
			return
		}
		errno, hard := icmpv6Errno(&m)
		s.icmpError(&q, errno, hard, m.Type == wire.ICMPv6PacketTooBig, m.MTU(), now)
	}
}

// icmpError hands an ICMP error to the connection whose segment it
// quotes, after checking the quoted sequence number was in flight (RFC
// 5927 section 4.1: otherwise it may be forged). Hard errors (port or
// protocol unreachable) abort a connection still opening (RFC 1122
// 4.2.3.9); soft ones, which "TCP MUST NOT abort the connection" for, are
// remembered and reported instead of ETIMEDOUT if the connect times out
// (as 4.4BSD's t_softerror; Linux aborts a connect on any ICMP error, the
// behaviour RFC 5461 section 4 discusses); "packet too big" lowers the
// segment size (RFC 1191, RFC 8201).
func (s *Stack) icmpError(q *wire.ICMPQuote, errno syscall.Errno, hard, pktTooBig bool, mtu uint32, now time.Time) {
	if q.Protocol == wire.ProtocolUDP {
		s.udpICMPError(q, errno, hard && !pktTooBig) // udp.go
		return
	}
	if q.Protocol != wire.ProtocolTCP {
		return
	}
	id := tcp.Tuple{
		Local:  netip.AddrPortFrom(q.Src.Unmap(), q.SrcPort),
		Remote: netip.AddrPortFrom(q.Dst.Unmap(), q.DstPort),
	}
	tc := s.shardOf(id).conns[id] // s.mu is held for writing
	if tc == nil {
		return
	}
	// RFC 5927 section 4.1: SND.UNA <= SEG.SEQ < SND.NXT. SND.NXT itself
	// has not been sent, so a quote of it cannot be ours.
	info := tc.info()
	if q.Seq.LessThan(info.SndUna) || !q.Seq.LessThan(info.SndNxt) {
		return
	}
	s.ctr.ICMP.InErrorsMatched.add(1)
	s.callLocked(tc, now, func(now time.Time, c *tcp.Conn) error {
		switch {
		case pktTooBig:
			if tc.nic != nil {
				mtu = min(mtu, uint32(tc.nic.mtu))
			}
			if mtu == 0 {
				return nil // an RFC 1191 router would have said; guessing is not worth it
			}
			c.HandlePacketTooBig(now, int(mtu))
		case hard:
			tc.dialErr = errno
			c.HandleUnreachable(now, errno, true)
		default:
			tc.softErr = errno
			c.HandleUnreachable(now, errno, false)
		}
		return nil
	})
}

// icmpv4Errno maps an ICMPv4 error to the errno a socket reports and says
// whether it is hard (RFC 1122 4.2.3.9: protocol and port unreachable).
// Time exceeded and parameter problem are soft: "handled the same way as
// Destination Unreachable codes 0, 1, 5".
func icmpv4Errno(m *wire.ICMPv4Message) (syscall.Errno, bool) {
	if m.Type == wire.ICMPv4ParamProblem {
		return syscall.EPROTO, false
	}
	if m.Type != wire.ICMPv4DestUnreachable {
		return syscall.EHOSTUNREACH, false // time exceeded
	}
	switch m.Code {
	case wire.ICMPv4PortUnreachable:
		return syscall.ECONNREFUSED, true
	case wire.ICMPv4ProtoUnreachable:
		return syscall.ENOPROTOOPT, true
	case wire.ICMPv4NetUnreachable:
		return syscall.ENETUNREACH, false
	}
	return syscall.EHOSTUNREACH, false
}

// icmpv6UnknownNextHeader is the Parameter Problem code for "unrecognized
// Next Header type encountered" (RFC 4443 section 3.4).
const icmpv6UnknownNextHeader = 1

// icmpv6Errno is icmpv4Errno for ICMPv6 (RFC 4443 sections 3.1 and 3.4).
// A Parameter Problem saying our Next Header (TCP) is unrecognized is
// IPv6's protocol unreachable, a hard error like ICMPv4 code 2 (RFC 1122
// 4.2.3.9); other parameter problems are soft, as in ICMPv4.
func icmpv6Errno(m *wire.ICMPv6Message) (syscall.Errno, bool) {
	if m.Type == wire.ICMPv6ParamProblem {
		if m.Code == icmpv6UnknownNextHeader {
			return syscall.ENOPROTOOPT, true
		}
		return syscall.EPROTO, false
	}
	if m.Type != wire.ICMPv6DestUnreachable {
		return syscall.EHOSTUNREACH, false
	}
	switch m.Code {
	case wire.ICMPv6PortUnreachable:
		return syscall.ECONNREFUSED, true
	case wire.ICMPv6NoRoute:
		return syscall.ENETUNREACH, false
	case wire.ICMPv6AdminProhibited, wire.ICMPv6PolicyFailed, wire.ICMPv6RejectRoute:
		return syscall.EACCES, false
	}
	return syscall.EHOSTUNREACH, false
}

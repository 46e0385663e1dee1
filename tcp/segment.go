package tcp

import (
	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/wire"
)

// Sizes the core reckons segments with.
const (
	// tsOptionSpace is what the timestamps option takes in every segment
	// once both sides use it: NOP, NOP, kind, length, TSval, TSecr (RFC
	// 7323 Appendix A). It comes off the MSS (RFC 6691 section 2).
	tsOptionSpace = 12
	// headerLen4 and headerLen6 are the IP and TCP headers without
	// options: what an MTU leaves of itself for the MSS (RFC 9293 3.7.1,
	// RFC 1191, RFC 8201).
	headerLen4 = wire.IPv4MinHeaderLen + wire.TCPMinHeaderLen // 40
	headerLen6 = wire.IPv6HeaderLen + wire.TCPMinHeaderLen    // 60
	// minPeerMSS is what a peer's smaller MSS option is raised to (setMSS).
	minPeerMSS = 64
	// defaultMSS4 and defaultMSS6 are the MSS assumed of a peer that sends
	// no option: RFC 9293 3.7.1 for IPv4 (576 - 40), RFC 8200 section 8.3
	// for IPv6 (1280 - 60).
	defaultMSS4 = 536
	defaultMSS6 = 1220
	// maxWindowShift is the largest window scale shift; "a shift above 14
	// is taken as 14" (RFC 7323 section 2.3).
	maxWindowShift = 14
	// maxSACKBlocksTS is how many SACK blocks fit in the 40 bytes of
	// option space beside the timestamps (RFC 2018 section 3).
	maxSACKBlocksTS = 3
	// maxWindowField is the largest value of the 16-bit window field.
	maxWindowField = 0xFFFF
)

// Segment is a TCP segment as the core sees it: the header fields that
// matter to the state machine and the payload. Ports and addresses belong
// to the connection's Tuple and are filled in by whoever builds the packet.
//
// A Segment handed to HandleSegment is borrowed for the call only; one
// handed to a Sink is valid only during the Sink call (its payload points
// into the send buffer).
type Segment struct {
	Seq     seqnum.Value
	Ack     seqnum.Value
	Flags   wire.TCPFlags
	Window  uint16 // as carried on the wire, before window scaling
	Options wire.TCPOptions
	Payload []byte
	// ECN is the ECN field of the IP header the segment came in or goes
	// out in (RFC 3168 section 5; ecn.go): the runtime copies it from
	// what arrives and into what leaves.
	ECN wire.ECN
	// GSOSize, when not zero, marks a super-segment (gso.go): a payload
	// of several MSS-sized pieces that the link cuts into segments of
	// GSOSize bytes (the last may be shorter), each with a copy of this
	// header and its own sequence number, PSH on the last only. Only a
	// connection told the link segments (SetSegmentOffload) emits one.
	GSOSize uint16
}

// Pieces is how many segments s stands for on the wire: one, or as many
// as a super-segment is cut into.
func (s *Segment) Pieces() int {
	if s.GSOSize == 0 || len(s.Payload) <= int(s.GSOSize) {
		return 1
	}
	return (len(s.Payload) + int(s.GSOSize) - 1) / int(s.GSOSize)
}

// Len is SEG.LEN of RFC 9293 section 3.4: the payload plus one for SYN and
// one for FIN, since each of those occupies a sequence number.
func (s *Segment) Len() seqnum.Size {
	n := seqnum.Size(len(s.Payload))
	if s.Flags&wire.SYN != 0 {
		n++
	}
	if s.Flags&wire.FIN != 0 {
		n++
	}
	return n
}

func (s *Segment) has(f wire.TCPFlags) bool { return s.Flags&f != 0 }

// String prints the segment as a tcpdump one-liner (wire.TextFull):
// "[S.] seq 1000 ack 2001 win 64 len 0 <mss 1460>".
func (s *Segment) String() string { return s.Text(wire.TextFull) }

// Text prints the segment in the given form with wire's one segment
// formatter (wire.TCPHeader.AppendText).
func (s *Segment) Text(form wire.TextForm) string {
	h := wire.TCPHeader{Seq: s.Seq, Ack: s.Ack, Flags: s.Flags, Window: s.Window, Options: s.Options}
	return string(h.AppendText(nil, len(s.Payload), form))
}

package tcp

import (
	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/wire"
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

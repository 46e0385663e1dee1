package tcp

import (
	"fmt"
	"strings"

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

// String prints the segment as a tcpdump one-liner:
// "[S.] seq 1000 ack 2001 win 64 len 0 <mss 1460>".
func (s *Segment) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] seq %d", s.Flags, s.Seq)
	if s.has(wire.ACK) {
		fmt.Fprintf(&b, " ack %d", s.Ack)
	}
	fmt.Fprintf(&b, " win %d len %d", s.Window, len(s.Payload))
	var opts []string
	o := &s.Options
	if o.HasMSS {
		opts = append(opts, fmt.Sprintf("mss %d", o.MSS))
	}
	if o.SACKPermitted {
		opts = append(opts, "sackOK")
	}
	if o.HasTimestamps {
		opts = append(opts, fmt.Sprintf("TS val %d ecr %d", o.TSVal, o.TSEcr))
	}
	if o.HasWindowScale {
		opts = append(opts, fmt.Sprintf("wscale %d", o.WindowScale))
	}
	for _, blk := range o.SACK() {
		opts = append(opts, fmt.Sprintf("sack %d:%d", blk.Start, blk.End))
	}
	if len(opts) > 0 {
		fmt.Fprintf(&b, " <%s>", strings.Join(opts, ","))
	}
	return b.String()
}

package wire

import (
	"encoding/binary"
	"strconv"
	"strings"
)

// String prints h the way tcpdump does, e.g.
//
//	[S.] seq 1000 ack 2001 win 65535 <mss 1460,sackOK,TS val 1 ecr 2,nop,wscale 7>
//
// ack is shown only with the ACK flag and urg only with URG, as tcpdump
// does. The options are printed from the bytes AppendTCP would send, NOPs
// included, so the line matches a capture of what this package emits.
func (h TCPHeader) String() string {
	var b strings.Builder
	b.WriteByte('[')
	b.WriteString(h.Flags.String())
	b.WriteString("] seq ")
	b.WriteString(strconv.FormatUint(uint64(h.Seq), 10))
	if h.Flags&ACK != 0 {
		b.WriteString(" ack ")
		b.WriteString(strconv.FormatUint(uint64(h.Ack), 10))
	}
	b.WriteString(" win ")
	b.WriteString(strconv.FormatUint(uint64(h.Window), 10))
	if h.Flags&URG != 0 {
		b.WriteString(" urg ")
		b.WriteString(strconv.FormatUint(uint64(h.Urgent), 10))
	}
	if s := h.Options.String(); s != "" {
		b.WriteByte(' ')
		b.WriteString(s)
	}
	return b.String()
}

// String prints the options as tcpdump does, in the order and with the NOPs
// EncodeTCPOptions writes: "<mss 1460,sackOK,TS val 1 ecr 2,nop,wscale 7>".
// It is empty when there are no options.
func (o TCPOptions) String() string {
	var buf [TCPMaxOptionsLen]byte
	opts := buf[:EncodeTCPOptions(buf[:], &o)]
	if len(opts) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteByte('<')
	for i := 0; i < len(opts); {
		if i > 0 {
			b.WriteByte(',')
		}
		switch opts[i] {
		case optEOL:
			b.WriteString("eol")
			i = len(opts) // the rest is padding
			continue
		case optNOP:
			b.WriteString("nop")
			i++
			continue
		}
		// Our own encoding: lengths are known to be right.
		l := int(opts[i+1])
		body := opts[i+2 : i+l]
		switch opts[i] {
		case optMSS:
			b.WriteString("mss ")
			b.WriteString(strconv.Itoa(int(binary.BigEndian.Uint16(body))))
		case optSACKPermitted:
			b.WriteString("sackOK")
		case optTimestamps:
			b.WriteString("TS val ")
			b.WriteString(strconv.FormatUint(uint64(binary.BigEndian.Uint32(body)), 10))
			b.WriteString(" ecr ")
			b.WriteString(strconv.FormatUint(uint64(binary.BigEndian.Uint32(body[4:])), 10))
		case optWindowScale:
			b.WriteString("wscale ")
			b.WriteString(strconv.Itoa(int(body[0])))
		case optSACK:
			n := len(body) / optSACKBlockLen
			b.WriteString("sack ")
			b.WriteString(strconv.Itoa(n))
			for j := range n {
				blk := body[j*optSACKBlockLen:]
				b.WriteString(" {")
				b.WriteString(strconv.FormatUint(uint64(binary.BigEndian.Uint32(blk)), 10))
				b.WriteByte(':')
				b.WriteString(strconv.FormatUint(uint64(binary.BigEndian.Uint32(blk[4:])), 10))
				b.WriteByte('}')
			}
		}
		i += l
	}
	b.WriteByte('>')
	return b.String()
}

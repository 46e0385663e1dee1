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
func (h TCPHeader) String() string { return string(h.AppendText(nil, -1, TextFull)) }

// TextForm says how much of a segment AppendText prints.
type TextForm uint8

const (
	// TextFull is tcpdump's line: every option as sent, NOPs included.
	TextFull TextForm = iota
	// TextBrief is the line a ladder diagram puts on an arrow: the
	// options only on a SYN, where they are negotiated (timestamps as
	// "TS", without the values every later segment repeats), SACK blocks
	// wherever they appear as "sack START:END", no NOPs, and the payload
	// length only when there is a payload.
	TextBrief
)

// AppendText appends the one-line text of a segment with header h and
// payloadLen bytes of payload ("len N" after the window; a negative
// payloadLen prints none), in the given form. It is the one segment
// formatter: the tcp package's Segment.String and the ladder diagrams use
// it.
func (h *TCPHeader) AppendText(b []byte, payloadLen int, form TextForm) []byte {
	b = append(b, '[')
	b = append(b, h.Flags.String()...)
	b = append(b, "] seq "...)
	b = strconv.AppendUint(b, uint64(h.Seq), 10)
	if h.Flags&ACK != 0 {
		b = append(b, " ack "...)
		b = strconv.AppendUint(b, uint64(h.Ack), 10)
	}
	b = append(b, " win "...)
	b = strconv.AppendUint(b, uint64(h.Window), 10)
	if h.Flags&URG != 0 {
		b = append(b, " urg "...)
		b = strconv.AppendUint(b, uint64(h.Urgent), 10)
	}
	if payloadLen > 0 || payloadLen == 0 && form == TextFull {
		b = append(b, " len "...)
		b = strconv.AppendInt(b, int64(payloadLen), 10)
	}
	if form == TextBrief {
		return h.Options.appendBrief(b, h.Flags&SYN != 0)
	}
	if s := h.Options.String(); s != "" {
		b = append(b, ' ')
		b = append(b, s...)
	}
	return b
}

// appendBrief appends the options in TextBrief form, after a space, if
// there are any to show.
func (o *TCPOptions) appendBrief(b []byte, syn bool) []byte {
	n := 0
	next := func() {
		if n == 0 {
			b = append(b, " <"...)
		} else {
			b = append(b, ',')
		}
		n++
	}
	if syn {
		// In the order EncodeTCPOptions writes them.
		if o.HasMSS {
			next()
			b = append(b, "mss "...)
			b = strconv.AppendUint(b, uint64(o.MSS), 10)
		}
		if o.SACKPermitted {
			next()
			b = append(b, "sackOK"...)
		}
		if o.HasTimestamps {
			next()
			b = append(b, "TS"...)
		}
		if o.HasWindowScale {
			next()
			b = append(b, "wscale "...)
			b = strconv.AppendUint(b, uint64(o.WindowScale), 10)
		}
	}
	for _, blk := range o.SACK() {
		next()
		b = append(b, "sack "...)
		b = strconv.AppendUint(b, uint64(blk.Start), 10)
		b = append(b, ':')
		b = strconv.AppendUint(b, uint64(blk.End), 10)
	}
	if n > 0 {
		b = append(b, '>')
	}
	return b
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

package pktdrill

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/synack/synack/wire"
)

// PacketSpec is a packet line: "< S. 0:0(0) ack 1 win 32767 <mss 1460>" or
// "< icmp unreachable port_unreachable [0:0(0)]".
type PacketSpec struct {
	Dir byte // '<' injected, '>' expected

	ICMP *ICMPSpec // an ICMP error instead of a TCP segment

	Flags  wire.TCPFlags
	AnySeq bool // "...(0)": the sequence number is not checked
	AbsSeq bool // "0:0(0)!": Start and End are absolute, not relative to an ISN
	Start  uint32
	End    uint32
	Len    int

	HasAck bool
	Ack    uint32
	HasWin bool
	Win    uint16
	HasUrg bool
	Urg    uint16

	AnyOpts bool // <...>
	Opts    []Opt

	IPAttrs string // "(ttl 4)", "(tos 0x20)": recorded, not checked
	ECN     string // "noecn", "ect0", "ect1", "ect01", "ce": the IP ECN field, injected or checked; "" checks nothing

	UDPEncap bool // "/udp(...)": TCP over UDP
}

// Opt is one TCP option as a script writes it.
type Opt struct {
	Kind   string // mss, nop, eol, wscale, sackOK, TS, sack
	V1, V2 uint32
	Blocks [][2]uint32
}

func (o Opt) String() string {
	switch o.Kind {
	case "mss", "wscale":
		return fmt.Sprintf("%s %d", o.Kind, o.V1)
	case "TS":
		return fmt.Sprintf("TS val %d ecr %d", o.V1, o.V2)
	case "sack":
		var b strings.Builder
		b.WriteString("sack")
		for _, blk := range o.Blocks {
			fmt.Fprintf(&b, " %d:%d", blk[0], blk[1])
		}
		return b.String()
	}
	return o.Kind
}

// ICMPSpec is an injected ICMP error quoting one of our segments.
type ICMPSpec struct {
	Type, Code string
	MTU        int
	Start      uint32 // relative sequence number of the quoted segment
}

// tokens splits a packet line into words, keeping <...> and [...] groups
// and (...) attributes whole.
func parsePacket(t string) (*PacketSpec, error) {
	p := &PacketSpec{Dir: t[0]}
	t = strings.TrimSpace(t[1:])
	if strings.HasPrefix(t, "[") {
		// An ECN codepoint for the IP header: [noecn], [ect0], [ect1],
		// [ect01], [ce] (RFC 3168 section 5).
		end := strings.IndexByte(t, ']')
		if end < 0 {
			return nil, fmt.Errorf("unbalanced ECN attribute")
		}
		p.ECN = t[1:end]
		t = strings.TrimSpace(t[end+1:])
	}
	if strings.HasPrefix(t, "(") {
		end := strings.IndexByte(t, ')')
		if end < 0 {
			return nil, fmt.Errorf("unbalanced IP attributes")
		}
		p.IPAttrs = t[:end+1]
		t = strings.TrimSpace(t[end+1:])
	}
	if strings.HasPrefix(t, "icmp") {
		return p, parseICMP(p, strings.TrimSpace(t[4:]))
	}
	// "/udp(1 > 9811)": the segment is encapsulated in UDP.
	if i := strings.Index(t, "/udp("); i >= 0 {
		p.UDPEncap = true
		t = t[:i]
	}
	// Options first: they may contain spaces.
	if i := strings.IndexByte(t, '<'); i >= 0 {
		j := strings.LastIndexByte(t, '>')
		if j < i {
			return nil, fmt.Errorf("unbalanced options")
		}
		if err := parseOptions(p, t[i+1:j]); err != nil {
			return nil, err
		}
		t = t[:i] + " " + t[j+1:]
	}
	f := strings.Fields(t)
	if len(f) < 2 {
		return nil, fmt.Errorf("short packet line")
	}
	for _, c := range f[0] {
		switch c {
		case 'S':
			p.Flags |= wire.SYN
		case 'F':
			p.Flags |= wire.FIN
		case 'R':
			p.Flags |= wire.RST
		case 'P':
			p.Flags |= wire.PSH
		case '.':
			p.Flags |= wire.ACK
		case 'U':
			p.Flags |= wire.URG
		case 'E':
			p.Flags |= wire.ECE
		case 'W':
			p.Flags |= wire.CWR
		case '-':
		default:
			return nil, fmt.Errorf("bad flags %q", f[0])
		}
	}
	if err := parseSeqRange(p, f[1]); err != nil {
		return nil, err
	}
	for i := 2; i < len(f); i++ {
		if i+1 >= len(f) {
			return nil, fmt.Errorf("%q needs a value", f[i])
		}
		v, err := strconv.ParseUint(f[i+1], 0, 32)
		if err != nil {
			return nil, fmt.Errorf("bad %s %q", f[i], f[i+1])
		}
		switch f[i] {
		case "ack":
			p.HasAck, p.Ack = true, uint32(v)
		case "win":
			p.HasWin, p.Win = true, uint16(v)
		case "urg":
			p.HasUrg, p.Urg = true, uint16(v)
		default:
			return nil, fmt.Errorf("unknown packet field %q", f[i])
		}
		i++
	}
	return p, nil
}

// parseSeqRange reads "start:end(len)" or "...(len)".
func parseSeqRange(p *PacketSpec, s string) error {
	if strings.HasSuffix(s, ")!") {
		p.AbsSeq = true
		s = strings.TrimSuffix(s, "!")
	}
	open := strings.IndexByte(s, '(')
	if open < 0 || !strings.HasSuffix(s, ")") {
		return fmt.Errorf("bad sequence range %q", s)
	}
	n, err := strconv.Atoi(s[open+1 : len(s)-1])
	if err != nil {
		return fmt.Errorf("bad length in %q", s)
	}
	p.Len = n
	r := s[:open]
	if r == "..." {
		p.AnySeq = true
		return nil
	}
	a, b, ok := strings.Cut(r, ":")
	if !ok {
		return fmt.Errorf("bad sequence range %q", s)
	}
	x, err1 := strconv.ParseUint(a, 10, 32)
	y, err2 := strconv.ParseUint(b, 10, 32)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("bad sequence range %q", s)
	}
	p.Start, p.End = uint32(x), uint32(y)
	if uint32(y)-uint32(x) != uint32(n) {
		return fmt.Errorf("sequence range %q does not match its length", s)
	}
	return nil
}

func parseOptions(p *PacketSpec, s string) error {
	s = strings.TrimSpace(s)
	if s == "..." {
		p.AnyOpts = true
		return nil
	}
	p.Opts = []Opt{} // present, possibly empty: "<>" means none
	for _, item := range strings.Split(s, ",") {
		f := strings.Fields(item)
		if len(f) == 0 {
			continue
		}
		num := func(i int) (uint32, error) {
			if i >= len(f) {
				return 0, fmt.Errorf("option %q needs a value", item)
			}
			v, err := strconv.ParseUint(f[i], 0, 32)
			return uint32(v), err
		}
		o := Opt{Kind: f[0]}
		var err error
		switch f[0] {
		case "md5", "FO", "FOEXP":
			// TCP-MD5 (RFC 2385) and TCP Fast Open (RFC 7413):
			// recognised so the script can be skipped; never encoded.
		case "nop", "eol", "sackOK":
		case "mss", "wscale":
			o.V1, err = num(1)
		case "TS":
			// TS val N ecr M
			if len(f) != 5 || f[1] != "val" || f[3] != "ecr" {
				return fmt.Errorf("bad TS option %q", item)
			}
			if o.V1, err = num(2); err == nil {
				o.V2, err = num(4)
			}
		case "sack":
			for _, b := range f[1:] {
				x, y, ok := strings.Cut(b, ":")
				if !ok {
					return fmt.Errorf("bad sack block %q", b)
				}
				u, e1 := strconv.ParseUint(x, 10, 32)
				v, e2 := strconv.ParseUint(y, 10, 32)
				if e1 != nil || e2 != nil {
					return fmt.Errorf("bad sack block %q", b)
				}
				o.Blocks = append(o.Blocks, [2]uint32{uint32(u), uint32(v)})
			}
		default:
			return fmt.Errorf("unknown option %q", item)
		}
		if err != nil {
			return fmt.Errorf("bad option %q", item)
		}
		p.Opts = append(p.Opts, o)
	}
	return nil
}

func parseICMP(p *PacketSpec, t string) error {
	i := strings.IndexByte(t, '[')
	j := strings.LastIndexByte(t, ']')
	if i < 0 || j < i {
		// Linux scripts may leave the quoted segment to packetdrill,
		// which quotes the last one sent; the runner does not.
		return fmt.Errorf("an ICMP packet without a quoted segment [seq] is not supported")
	}
	q := strings.TrimSpace(t[i+1 : j])
	f := strings.Fields(t[:i])
	if len(f) < 1 {
		return fmt.Errorf("ICMP type missing")
	}
	ic := &ICMPSpec{Type: f[0]}
	if len(f) > 1 {
		ic.Code = f[1]
	}
	for k := 1; k+1 < len(f); k++ {
		if f[k] == "mtu" {
			n, err := strconv.Atoi(f[k+1])
			if err != nil {
				return fmt.Errorf("bad mtu %q", f[k+1])
			}
			ic.MTU = n
			if k == 1 {
				ic.Code = ""
			}
		}
	}
	var tmp PacketSpec
	if err := parseSeqRange(&tmp, q); err != nil {
		return err
	}
	ic.Start = tmp.Start
	p.ICMP = ic
	return nil
}

// encodeOptions writes the options exactly as listed (an injected packet
// carries the script's layout byte for byte), padded with EOL to a
// multiple of four.
func encodeOptions(opts []Opt, mapTSEcr func(uint32) uint32, mapSeq func(uint32) uint32) ([]byte, error) {
	var b []byte
	for _, o := range opts {
		switch o.Kind {
		case "nop":
			b = append(b, 1)
		case "eol":
			b = append(b, 0)
		case "mss":
			b = append(b, 2, 4, byte(o.V1>>8), byte(o.V1))
		case "wscale":
			b = append(b, 3, 3, byte(o.V1))
		case "sackOK":
			b = append(b, 4, 2)
		case "TS":
			ecr := mapTSEcr(o.V2)
			b = append(b, 8, 10)
			b = append(b, be32(o.V1)...)
			b = append(b, be32(ecr)...)
		case "sack":
			b = append(b, 5, byte(2+8*len(o.Blocks)))
			for _, blk := range o.Blocks {
				b = append(b, be32(mapSeq(blk[0]))...)
				b = append(b, be32(mapSeq(blk[1]))...)
			}
		}
	}
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	if len(b) > wire.TCPMaxOptionsLen {
		return nil, fmt.Errorf("options too long (%d bytes)", len(b))
	}
	return b, nil
}

func be32(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }

// decodeOptions lists the options of a received header as a script would
// write them, in wire order, NOPs and EOLs included.
func decodeOptions(b []byte) []Opt {
	var out []Opt
	for i := 0; i < len(b); {
		k := b[i]
		switch k {
		case 0:
			out = append(out, Opt{Kind: "eol"})
			i++
			continue
		case 1:
			out = append(out, Opt{Kind: "nop"})
			i++
			continue
		}
		if i+1 >= len(b) || int(b[i+1]) < 2 || i+int(b[i+1]) > len(b) {
			return append(out, Opt{Kind: fmt.Sprintf("bad-option-%d", k)})
		}
		l := int(b[i+1])
		v := b[i+2 : i+l]
		u32 := func(x []byte) uint32 {
			return uint32(x[0])<<24 | uint32(x[1])<<16 | uint32(x[2])<<8 | uint32(x[3])
		}
		switch {
		case k == 2 && l == 4:
			out = append(out, Opt{Kind: "mss", V1: uint32(v[0])<<8 | uint32(v[1])})
		case k == 3 && l == 3:
			out = append(out, Opt{Kind: "wscale", V1: uint32(v[0])})
		case k == 4 && l == 2:
			out = append(out, Opt{Kind: "sackOK"})
		case k == 8 && l == 10:
			out = append(out, Opt{Kind: "TS", V1: u32(v[0:4]), V2: u32(v[4:8])})
		case k == 5 && (l-2)%8 == 0:
			o := Opt{Kind: "sack"}
			for j := 0; j+8 <= len(v); j += 8 {
				o.Blocks = append(o.Blocks, [2]uint32{u32(v[j : j+4]), u32(v[j+4 : j+8])})
			}
			out = append(out, o)
		default:
			out = append(out, Opt{Kind: fmt.Sprintf("option-%d", k)})
		}
		i += l
	}
	return out
}

func optsString(opts []Opt) string {
	s := make([]string, len(opts))
	for i, o := range opts {
		s[i] = o.String()
	}
	return "<" + strings.Join(s, ",") + ">"
}

// String prints the spec back in script form.
func (p *PacketSpec) String() string {
	if p.ICMP != nil {
		return fmt.Sprintf("%c icmp %s %s [%d]", p.Dir, p.ICMP.Type, p.ICMP.Code, p.ICMP.Start)
	}
	var b strings.Builder
	fl := p.Flags.String()
	if p.Flags == 0 {
		fl = "-"
	}
	b.WriteByte(p.Dir)
	if p.ECN != "" {
		b.WriteString("[" + p.ECN + "]")
	}
	fmt.Fprintf(&b, " %s ", fl)
	if p.AnySeq {
		fmt.Fprintf(&b, "...(%d)", p.Len)
	} else {
		fmt.Fprintf(&b, "%d:%d(%d)", p.Start, p.End, p.Len)
		if p.AbsSeq {
			b.WriteByte('!')
		}
	}
	if p.HasAck {
		fmt.Fprintf(&b, " ack %d", p.Ack)
	}
	if p.HasWin {
		fmt.Fprintf(&b, " win %d", p.Win)
	}
	switch {
	case p.AnyOpts:
		b.WriteString(" <...>")
	case p.Opts != nil:
		b.WriteString(" " + optsString(p.Opts))
	}
	return b.String()
}

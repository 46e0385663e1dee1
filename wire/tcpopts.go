package wire

import (
	"strings"

	"github.com/synack/synack/seqnum"
)

// TCPFlags are the control bits of a TCP header (RFC 9293 section 3.1,
// RFC 3168 for ECE and CWR).
type TCPFlags uint8

const (
	FIN TCPFlags = 1 << iota
	SYN
	RST
	PSH
	ACK
	URG
	ECE
	CWR
)

// String prints the flags the way tcpdump does: "S", "S.", "F.", "R.", "P."
// ('.' stands for ACK); "none" when no flag is set.
func (f TCPFlags) String() string {
	var b strings.Builder
	for _, x := range []struct {
		f TCPFlags
		c byte
	}{{SYN, 'S'}, {FIN, 'F'}, {RST, 'R'}, {PSH, 'P'}, {URG, 'U'}, {ECE, 'E'}, {CWR, 'W'}} {
		if f&x.f != 0 {
			b.WriteByte(x.c)
		}
	}
	if f&ACK != 0 {
		b.WriteByte('.')
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}

// MaxSACKBlocks is how many SACK blocks fit in the 40 bytes of option space
// (RFC 2018 section 3).
const MaxSACKBlocks = 4

// SACKBlock is one block of a SACK option: the bytes [Start, End) were
// received (RFC 2018 section 3).
type SACKBlock struct {
	Start, End seqnum.Value
}

// TCPOptions is the decoded option list of a TCP header. It is a fixed
// struct so that decoding allocates nothing; a Has* flag or a zero count says
// an option was absent. Unknown options are skipped by their length.
type TCPOptions struct {
	MSS    uint16 // maximum segment size (RFC 9293 section 3.7.1)
	HasMSS bool

	WindowScale    uint8 // shift count (RFC 7323 section 2)
	HasWindowScale bool

	SACKPermitted bool // RFC 2018 section 2

	SACKBlocks [MaxSACKBlocks]SACKBlock // RFC 2018 section 3
	NumSACK    int

	TSVal, TSEcr  uint32 // timestamps (RFC 7323 section 3)
	HasTimestamps bool
}

// SACK returns the SACK blocks present.
func (o *TCPOptions) SACK() []SACKBlock { return o.SACKBlocks[:o.NumSACK] }

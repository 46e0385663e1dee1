package wire

import (
	"encoding/binary"

	"github.com/synack/synack/seqnum"
)

// TCP option kinds (RFC 9293 section 3.2, RFC 7323, RFC 2018).
const (
	optEOL           = 0
	optNOP           = 1
	optMSS           = 2
	optWindowScale   = 3
	optSACKPermitted = 4
	optSACK          = 5
	optTimestamps    = 8

	optMSSLen           = 4
	optWindowScaleLen   = 3
	optSACKPermittedLen = 2
	optTimestampsLen    = 10
	optSACKBlockLen     = 8
)

// parseTCPOptions decodes the option list b into o (RFC 9293 section 3.2).
// EOL ends the list; NOP is one byte; every other option has a length byte
// that counts the kind and length bytes. Options we know must have their
// fixed length; unknown ones are skipped by theirs (RFC 9293 section 3.1:
// "a TCP implementation MUST be prepared to handle an illegal option length
// (e.g., zero)" - we reject the segment rather than loop or overrun).
func parseTCPOptions(b []byte, o *TCPOptions) error {
	for i := 0; i < len(b); {
		kind := b[i]
		switch kind {
		case optEOL:
			return nil
		case optNOP:
			i++
			continue
		}
		if i+1 >= len(b) {
			return errTCPOptTrunc
		}
		l := int(b[i+1])
		if l < 2 {
			return errTCPOptLen
		}
		if i+l > len(b) {
			return errTCPOptOverrun
		}
		body := b[i+2 : i+l]
		switch kind {
		case optMSS:
			if l != optMSSLen {
				return errTCPOptMSS
			}
			o.MSS = binary.BigEndian.Uint16(body)
			o.HasMSS = true
		case optWindowScale:
			if l != optWindowScaleLen {
				return errTCPOptWS
			}
			o.WindowScale = body[0]
			o.HasWindowScale = true
		case optSACKPermitted:
			if l != optSACKPermittedLen {
				return errTCPOptSACKPerm
			}
			o.SACKPermitted = true
		case optSACK:
			n := len(body) / optSACKBlockLen
			if len(body)%optSACKBlockLen != 0 || n < 1 || n > MaxSACKBlocks {
				return errTCPOptSACK
			}
			for j := range n {
				blk := body[j*optSACKBlockLen:]
				o.SACKBlocks[j] = SACKBlock{
					Start: seqnum.Value(binary.BigEndian.Uint32(blk)),
					End:   seqnum.Value(binary.BigEndian.Uint32(blk[4:])),
				}
			}
			// A later SACK option replaces an earlier one; clear the
			// blocks it does not fill so that equal inputs decode equal.
			clear(o.SACKBlocks[n:])
			o.NumSACK = n
		case optTimestamps:
			if l != optTimestampsLen {
				return errTCPOptTS
			}
			o.TSVal = binary.BigEndian.Uint32(body)
			o.TSEcr = binary.BigEndian.Uint32(body[4:])
			o.HasTimestamps = true
		}
		i += l
	}
	return nil
}

// layout decides how the options are written: aligned (with NOP padding, the
// way Linux lays them out) when that fits in 40 bytes, otherwise packed with
// no NOPs. It returns the padded length and how many SACK blocks fit.
//
// Aligned layout, each piece a multiple of 4 bytes:
//
//	MSS                         4
//	SACK-permitted, TS         12  (NOP NOP TS, or NOP NOP SACK-permitted, when alone)
//	NOP, window scale           4
//	NOP, NOP, SACK blocks       4+8n
//
// so a SYN reads "mss, sackOK, TS, nop, wscale" and an ACK "nop, nop, TS,
// nop, nop, sack". Options decoded from a real header always fit at least
// packed (each is at its minimum length there), which keeps
// parse-encode-parse stable. A caller that asks for more than fits gets the
// first SACK blocks that fit, aligned if possible (RFC 2018 section 4: the
// first block must be the most recent, so the oldest are dropped).
func (o *TCPOptions) layout() (aligned bool, nsack, length int) {
	var fixed, packed int
	if o.HasMSS {
		fixed += optMSSLen
		packed += optMSSLen
	}
	switch {
	case o.SACKPermitted && o.HasTimestamps:
		fixed += optSACKPermittedLen + optTimestampsLen
		packed += optSACKPermittedLen + optTimestampsLen
	case o.HasTimestamps:
		fixed += 2 + optTimestampsLen
		packed += optTimestampsLen
	case o.SACKPermitted:
		fixed += 2 + optSACKPermittedLen
		packed += optSACKPermittedLen
	}
	if o.HasWindowScale {
		fixed += 1 + optWindowScaleLen
		packed += optWindowScaleLen
	}
	nsack = min(max(o.NumSACK, 0), MaxSACKBlocks)
	if nsack == 0 {
		return true, 0, fixed
	}
	for ; nsack > 0; nsack-- {
		if n := fixed + 4 + nsack*optSACKBlockLen; n <= TCPMaxOptionsLen {
			return true, nsack, n
		}
		if n := packed + 2 + nsack*optSACKBlockLen; n <= TCPMaxOptionsLen {
			return false, nsack, (n + 3) &^ 3
		}
	}
	// No block fits even packed; send the other options aligned.
	return true, 0, fixed
}

// Len is the number of bytes EncodeTCPOptions writes for o: a multiple of 4,
// at most TCPMaxOptionsLen.
func (o *TCPOptions) Len() int {
	_, _, n := o.layout()
	return n
}

// EncodeTCPOptions writes o into dst, which must hold at least o.Len()
// bytes, and returns the number of bytes written (o.Len()). The layout is
// described at TCPOptions.layout; padding up to a multiple of 4 is EOL
// followed by zeros (RFC 9293 section 3.1).
func EncodeTCPOptions(dst []byte, o *TCPOptions) int {
	aligned, nsack, n := o.layout()
	dst = dst[:n]
	i := 0
	put := func(bs ...byte) {
		i += copy(dst[i:], bs)
	}
	pad := func(k int) {
		if aligned {
			for range k {
				put(optNOP)
			}
		}
	}
	if o.HasMSS {
		put(optMSS, optMSSLen, byte(o.MSS>>8), byte(o.MSS))
	}
	if o.SACKPermitted {
		if !o.HasTimestamps {
			pad(2)
		}
		put(optSACKPermitted, optSACKPermittedLen)
	}
	if o.HasTimestamps {
		if !o.SACKPermitted {
			pad(2)
		}
		put(optTimestamps, optTimestampsLen)
		binary.BigEndian.PutUint32(dst[i:], o.TSVal)
		binary.BigEndian.PutUint32(dst[i+4:], o.TSEcr)
		i += 8
	}
	if o.HasWindowScale {
		pad(1)
		put(optWindowScale, optWindowScaleLen, o.WindowScale)
	}
	if nsack > 0 {
		pad(2)
		put(optSACK, byte(2+nsack*optSACKBlockLen))
		for _, blk := range o.SACKBlocks[:nsack] {
			binary.BigEndian.PutUint32(dst[i:], uint32(blk.Start))
			binary.BigEndian.PutUint32(dst[i+4:], uint32(blk.End))
			i += 8
		}
	}
	clear(dst[i:]) // EOL and zero padding
	return n
}

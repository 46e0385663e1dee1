package wire

import "errors"

// Sentinel errors. Every error a parser in this package returns wraps exactly
// one of them, so callers can classify a drop with errors.Is and bump the
// matching counter (DESIGN.md: "a malformed packet is dropped and counted").
var (
	ErrTooShort      = errors.New("packet too short")
	ErrBadDataOffset = errors.New("bad TCP data offset")
	ErrBadOption     = errors.New("bad TCP option")
	ErrBadIPOption   = errors.New("bad IPv4 option")
	ErrChecksum      = errors.New("bad checksum")
	ErrBadVersion    = errors.New("bad IP version")
	ErrBadHeaderLen  = errors.New("bad header length")
	ErrBadLength     = errors.New("bad length field")
	ErrTruncated     = errors.New("packet truncated")
	ErrFragment      = errors.New("IP fragment")
	ErrBadExtension  = errors.New("bad or unsupported IPv6 extension header")
	ErrNoNextHeader  = errors.New("IPv6 no next header")
	ErrBadAddress    = errors.New("bad address")
	ErrNoQuote       = errors.New("ICMP message quotes no packet")
)

// ParseError says which layer rejected a packet and why. It unwraps to one
// of the sentinel errors above.
//
// The parsers only ever return the package-level *ParseError values declared
// below, never a fresh one, so rejecting a packet allocates nothing: a flood
// of garbage must not turn into garbage-collector work.
type ParseError struct {
	Layer  string // "tcp", "ipv4", "ipv6", "icmpv4", "icmpv6"
	Reason string // a short human explanation
	Err    error  // the sentinel
}

func (e *ParseError) Error() string { return "wire: " + e.Layer + ": " + e.Reason }

// Unwrap returns the sentinel, so errors.Is(err, ErrChecksum) works.
func (e *ParseError) Unwrap() error { return e.Err }

func perr(layer, reason string, sentinel error) *ParseError {
	return &ParseError{Layer: layer, Reason: reason, Err: sentinel}
}

var (
	errTCPShort       = perr("tcp", "shorter than 20 bytes", ErrTooShort)
	errTCPDataOffset  = perr("tcp", "data offset below 5 or beyond the segment", ErrBadDataOffset)
	errTCPOptTrunc    = perr("tcp", "option kind without a length byte", ErrBadOption)
	errTCPOptLen      = perr("tcp", "option length below 2", ErrBadOption)
	errTCPOptOverrun  = perr("tcp", "option runs past the header", ErrBadOption)
	errTCPOptMSS      = perr("tcp", "MSS option length is not 4", ErrBadOption)
	errTCPOptWS       = perr("tcp", "window scale option length is not 3", ErrBadOption)
	errTCPOptSACKPerm = perr("tcp", "SACK-permitted option length is not 2", ErrBadOption)
	errTCPOptSACK     = perr("tcp", "SACK option length is not 2+8n with n in 1..4", ErrBadOption)
	errTCPOptTS       = perr("tcp", "timestamps option length is not 10", ErrBadOption)
	errTCPChecksum    = perr("tcp", "checksum mismatch", ErrChecksum)
	errTCPAddr        = perr("tcp", "pseudo-header addresses invalid or of mixed families", ErrBadAddress)

	errIPv4Short      = perr("ipv4", "shorter than 20 bytes", ErrTooShort)
	errIPv4Version    = perr("ipv4", "version is not 4", ErrBadVersion)
	errIPv4IHL        = perr("ipv4", "IHL below 5 or beyond the packet", ErrBadHeaderLen)
	errIPv4TotalLen   = perr("ipv4", "total length below header length", ErrBadLength)
	errIPv4Truncated  = perr("ipv4", "total length beyond the packet", ErrTruncated)
	errIPv4Checksum   = perr("ipv4", "header checksum mismatch", ErrChecksum)
	errIPv4Fragment   = perr("ipv4", "fragment (MF set or offset non-zero)", ErrFragment)
	errIPv4OptTrunc   = perr("ipv4", "option type without a length octet", ErrBadIPOption)
	errIPv4OptLen     = perr("ipv4", "option length below 2", ErrBadIPOption)
	errIPv4OptOverrun = perr("ipv4", "option runs past the header", ErrBadIPOption)
	errIPv4OptPointer = perr("ipv4", "route or timestamp option pointer inside the option header", ErrBadIPOption)

	errIPv6Short     = perr("ipv6", "shorter than 40 bytes", ErrTooShort)
	errIPv6Version   = perr("ipv6", "version is not 6", ErrBadVersion)
	errIPv6Truncated = perr("ipv6", "payload length beyond the packet", ErrTruncated)
	errIPv6ExtShort  = perr("ipv6", "extension header runs past the payload", ErrTruncated)
	errIPv6HopByHop  = perr("ipv6", "hop-by-hop options header not first", ErrBadExtension)
	errIPv6ExtUnsup  = perr("ipv6", "unsupported extension header", ErrBadExtension)
	errIPv6Routing   = perr("ipv6", "routing header with segments left", ErrBadExtension)
	errIPv6NoNext    = perr("ipv6", "no next header", ErrNoNextHeader)
	errIPv6Fragment  = perr("ipv6", "fragment header", ErrFragment)
	errIPv6FragShort = perr("ipv6", "fragment header runs past the payload", ErrTruncated)

	errIPShort   = perr("ip", "empty packet", ErrTooShort)
	errIPVersion = perr("ip", "version is neither 4 nor 6", ErrBadVersion)

	errICMPv4Short    = perr("icmpv4", "shorter than 8 bytes", ErrTooShort)
	errICMPv4Checksum = perr("icmpv4", "checksum mismatch", ErrChecksum)
	errICMPv6Short    = perr("icmpv6", "shorter than 8 bytes", ErrTooShort)
	errICMPv6Checksum = perr("icmpv6", "checksum mismatch", ErrChecksum)
	errICMPv6Addr     = perr("icmpv6", "pseudo-header addresses are not IPv6", ErrBadAddress)
	errICMPNotError   = perr("icmp", "message is not an error and quotes no packet", ErrNoQuote)
	errQuoteShort     = perr("icmp", "quoted packet shorter than IP header + 8 bytes", ErrTruncated)
	errQuoteVersion   = perr("icmp", "quoted packet has the wrong IP version", ErrBadVersion)
	errQuoteIHL       = perr("icmp", "quoted IPv4 header has a bad IHL", ErrBadHeaderLen)
	errQuoteFragment  = perr("icmp", "quoted packet is a non-first fragment", ErrFragment)
)

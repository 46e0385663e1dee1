// Package wire parses, validates and builds the packets synack speaks:
// IPv4 (RFC 791), IPv6 with its extension headers (RFC 8200), TCP with the
// options MSS, window scale, SACK-permitted, SACK, timestamps, NOP and EOL
// (RFC 9293, RFC 7323, RFC 2018), and ICMPv4/ICMPv6 echo and error messages
// (RFC 792, RFC 1191, RFC 4443), plus the Internet checksum (RFC 1071).
//
// Each protocol has a decoded value type (TCPHeader, IPv4Header,
// IPv6Header, ICMPv4Message, ICMPv6Message), a Parse function that checks
// every length and field the stack relies on before it reads them, and an
// Append function in the Go append idiom. Parsers never panic on any input
// (fuzzed), never copy the payload (it aliases the input) and allocate
// nothing, not even for errors: every error is one of a fixed set of
// *ParseError values that wrap the sentinels ErrTooShort, ErrChecksum,
// ErrFragment and so on, for errors.Is.
//
// Append functions panic only on impossible arguments from the caller (an
// IPv6 address in an IPv4 header, a datagram over 64 KiB), never on data.
package wire

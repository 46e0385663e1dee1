package tcp

import (
	"encoding/binary"
	"time"

	"github.com/synack/synack/internal/siphash"
	"github.com/synack/synack/seqnum"
)

// ISNGenerator chooses initial sequence numbers as RFC 6528 section 3
// says: ISN = M + F(localip, localport, remoteip, remoteport, secretkey),
// where M is a timer ticking every 4 microseconds and F a keyed hash. The
// hash keeps ISNs of different connections unpredictable from outside; the
// timer keeps successive incarnations of one 4-tuple moving forward, which
// TIME-WAIT reopening relies on.
type ISNGenerator struct {
	key [32]byte
}

// NewISNGenerator returns a generator keyed with key, which must be secret
// and random (the stack reads it from crypto/rand).
func NewISNGenerator(key [32]byte) *ISNGenerator { return &ISNGenerator{key: key} }

// ISN implements ISNSource.
func (g *ISNGenerator) ISN(t Tuple, now time.Time) seqnum.Value {
	m := uint32(now.UnixNano() / 4000)
	return seqnum.Value(m + g.hash(t, 0))
}

// TimestampOffset implements ISNSource: a keyed hash of the 4-tuple, as
// RFC 7323 section 5.4 recommends, so timestamps reveal no uptime and every
// incarnation of a 4-tuple gets the same offset.
func (g *ISNGenerator) TimestampOffset(t Tuple) uint32 { return g.hash(t, 1) }

// hash is F: SipHash-2-4 (a keyed pseudorandom function built for short
// inputs, as Linux's secure_tcp_seq uses) over the domain and the
// 4-tuple, keyed with the first 16 bytes of the key. It runs for every
// SYN a listener answers, a flood's included (the SYN,ACK's timestamp
// offset): SHA-256 here was a fifth of the CPU of a SYN answered with a
// cookie (bench/flood, part 1 at 1M SYN/s).
func (g *ISNGenerator) hash(t Tuple, domain byte) uint32 {
	var buf [1 + 2*(16+2)]byte
	buf[0] = domain
	n := 1
	l16 := t.Local.Addr().As16()
	n += copy(buf[n:], l16[:])
	binary.BigEndian.PutUint16(buf[n:], t.Local.Port())
	n += 2
	r16 := t.Remote.Addr().As16()
	n += copy(buf[n:], r16[:])
	binary.BigEndian.PutUint16(buf[n:], t.Remote.Port())
	n += 2
	sum := siphash.Sum64(binary.LittleEndian.Uint64(g.key[:8]), binary.LittleEndian.Uint64(g.key[8:16]), buf[:n])
	return uint32(sum)
}

// tsClockEpoch is the origin of every connection's timestamp clock: TSval
// is the milliseconds since it plus a keyed per-4-tuple offset
// (ISNGenerator.TimestampOffset, RFC 7323 section 5.4), as Linux's is. One
// clock for all connections, rather than one starting with each, keeps the
// TSvals of successive incarnations of a 4-tuple increasing, which
// reopening TIME-WAIT (RFC 6191) and reusing it for an active open rely
// on.
var tsClockEpoch = time.Unix(0, 0)

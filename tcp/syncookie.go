package tcp

import (
	"encoding/binary"
	"io"
	"time"

	"github.com/synack/synack/internal/siphash"
	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/wire"
)

// SYN cookies (RFC 4987 section 3.6): when a listener cannot, or will not,
// keep state for a SYN, the ISS of its SYN,ACK is a cookie from which the
// ACK that completes the handshake rebuilds the Handshake.
//
// The cookie (32 bits, the ISS):
//
//	bits 31..29  index into CookieMSS of the peer's MSS, XORed with 3 bits
//	             of MASK so that nothing in the ISS is predictable
//	bits 28..0   the low 29 bits of MAC
//
// MASK and MAC are SipHash-2-4, under the key of the current time period
// (CookiePeriod, 64 s), of: local address and port, remote address and
// port, the peer's ISS (SEG.SEQ of its SYN), the period's counter, the
// option bits below, and for MAC the MSS index (for MASK a marker instead),
// so that changing any bit of the cookie makes it invalid.
// Each period has a fresh random key, drawn when the period's first cookie
// is made; the key of the previous period is kept, so a cookie is good for
// 64 to 128 s and then never again, and the key of a period is forgotten
// after two. A forged ACK has one chance in 2^28 (two keys, 29 bits).
//
// A SYN cookie cannot remember options by itself. When the peer sends
// timestamps, the low 6 bits of the TSval of our SYN,ACK carry them, in
// Linux's layout, and the peer echoes them in the TSecr of its ACK:
//
//	bit 5      ECN agreed (RFC 3168 6.1.1)
//	bit 4      SACK permitted
//	bits 3..0  the peer's window shift, 15 for no window scaling
//
// The bits are under the MAC too, with a seventh that says whether they
// are there at all (the ACK carries timestamps), so an ACK cannot add
// timestamps its SYN,ACK did not have. The TSval is moved back by up to
// 63 ms for them, never forward, so our timestamps never go backwards.
// Without timestamps a cookie connection has no window scaling, no SACK
// and no ECN: nothing in the ACK could bring them back (Linux's cookies
// lose them the same way).

// CookiePeriod is how often the cookie key rotates; a cookie is accepted
// in the period it was made and the next.
const CookiePeriod = 64 * time.Second

// CookieMSS lists the MSS values a cookie can carry. The peer's MSS is
// taken down to the largest of them not above it (536 if below them all).
var CookieMSS = [8]uint16{536, 1220, 1300, 1380, 1420, 1440, 1460, 8960}

const (
	cookieMACBits = 29
	cookieMACMask = 1<<cookieMACBits - 1
	tsOptBits     = 6
	tsOptMask     = 1<<tsOptBits - 1
	tsOptECN      = 1 << 5
	tsOptSACK     = 1 << 4
	tsOptNoWScale = 0xF
	// tsOptPresent is the MAC's seventh option bit: the options are
	// encoded in the timestamps (never sent itself).
	tsOptPresent = 1 << 6
)

// cookieEpoch is the origin of the timestamp clock of cookie SYN,ACKs:
// the one every connection uses (tsClockEpoch), since no state says when a
// cookie's SYN arrived. TSval is still offset per 4-tuple (RFC 7323
// section 5.4).
var cookieEpoch = tsClockEpoch

// SynCookies makes and checks SYN cookies. It is not safe for concurrent
// use (the stack calls it under its lock).
type SynCookies struct {
	rand io.Reader
	keys [2]cookieKey // by counter parity: the current period's and the previous one's
}

type cookieKey struct {
	counter int64
	k0, k1  uint64
	ok      bool
}

// NewSynCookies returns a cookie maker whose keys are read from r (secret
// and random: the stack passes its Rand, crypto/rand by default).
func NewSynCookies(r io.Reader) *SynCookies { return &SynCookies{rand: r} }

func cookieCounter(now time.Time) int64 { return now.Unix() >> 6 } // CookiePeriod = 64 s

// key returns the key of counter, drawing it if create is set.
func (sc *SynCookies) key(counter int64, create bool) (*cookieKey, bool) {
	k := &sc.keys[counter&1]
	if k.ok && k.counter == counter {
		return k, true
	}
	if !create {
		return nil, false
	}
	var b [16]byte
	if _, err := io.ReadFull(sc.rand, b[:]); err != nil {
		panic("tcp: reading a SYN cookie key: " + err.Error())
	}
	*k = cookieKey{counter: counter, k0: binary.LittleEndian.Uint64(b[:8]), k1: binary.LittleEndian.Uint64(b[8:]), ok: true}
	return k, true
}

// Recent reports whether a cookie made now or in the previous period could
// still come back: a listener that has sent none need not check ACKs for
// them (Linux does the same in its "auto" mode).
func (sc *SynCookies) Recent(now time.Time) bool {
	c := cookieCounter(now)
	_, cur := sc.key(c, false)
	_, prev := sc.key(c-1, false)
	return cur || prev
}

// mac is MASK (sel 0xFF) or MAC (sel the MSS index).
func (k *cookieKey) mac(id Tuple, irs seqnum.Value, opts, sel uint8) uint64 {
	var b [16 + 2 + 16 + 2 + 4 + 8 + 2]byte
	l, r := id.Local.Addr().As16(), id.Remote.Addr().As16()
	n := copy(b[:], l[:])
	binary.BigEndian.PutUint16(b[n:], id.Local.Port())
	n += 2
	n += copy(b[n:], r[:])
	binary.BigEndian.PutUint16(b[n:], id.Remote.Port())
	n += 2
	binary.BigEndian.PutUint32(b[n:], uint32(irs))
	n += 4
	binary.BigEndian.PutUint64(b[n:], uint64(k.counter))
	n += 8
	b[n] = opts
	b[n+1] = sel
	return siphash.Sum64(k.k0, k.k1, b[:])
}

// Make answers the SYN seg on id with a cookie: it returns the SYN,ACK to
// send, whose ISS is the cookie, and keeps nothing.
func (sc *SynCookies) Make(cfg *Config, id Tuple, seg *Segment, now time.Time) Segment {
	h := handshakeFromSYN(cfg, id, seg, now)
	h.TSEpoch = cookieEpoch
	if !h.Timestamps {
		// Nowhere to keep them: not offered (RFC 7323 2.2, RFC 2018 2,
		// RFC 3168 6.1.1).
		h.WindowScale, h.SACKPermitted, h.ECN = false, false, false
	}
	mss := h.PeerMSS
	if mss == 0 {
		mss = uint16((&Conn{cfg: cfg, id: id}).defaultPeerMSS())
	}
	idx := uint32(0)
	for i, m := range CookieMSS {
		if m <= mss {
			idx = uint32(i)
		}
	}
	var opts uint8
	if h.Timestamps {
		opts = tsOptPresent | tsOptNoWScale
		if h.WindowScale {
			opts = opts&^tsOptNoWScale | h.PeerWScale
		}
		if h.SACKPermitted {
			opts |= tsOptSACK
		}
		if h.ECN {
			opts |= tsOptECN
		}
	}
	k, _ := sc.key(cookieCounter(now), true)
	mask := uint32(k.mac(id, h.IRS, opts, 0xFF) >> 61)
	mac := uint32(k.mac(id, h.IRS, opts, uint8(idx)))
	h.ISS = seqnum.Value(mac&cookieMACMask | (idx^mask)<<cookieMACBits)
	s := h.SynAck(cfg, id, now)
	if h.Timestamps {
		v := s.Options.TSVal
		e := v&^tsOptMask | uint32(opts&tsOptMask)
		if int32(e-v) > 0 {
			e -= 1 << tsOptBits
		}
		s.Options.TSVal = e
	}
	return s
}

// Check checks the ACK seg, which found a listener with no SYN-queue entry
// for id, for a cookie made by Make in this period or the last. If it is
// one, it returns the Handshake rebuilt from it, to be resumed
// (ResumeSynReceived) and handed seg. Anything with SYN or RST, or without
// ACK, is no cookie ACK.
func (sc *SynCookies) Check(cfg *Config, id Tuple, seg *Segment, now time.Time) (Handshake, bool) {
	if seg.Flags&(wire.SYN|wire.RST|wire.ACK) != wire.ACK {
		return Handshake{}, false
	}
	iss, irs := uint32(seg.Ack-1), seg.Seq-1
	var opts uint8
	o := &seg.Options
	if o.HasTimestamps {
		opts = tsOptPresent | uint8(o.TSEcr&tsOptMask)
	}
	c := cookieCounter(now)
	for _, counter := range [2]int64{c, c - 1} {
		k, ok := sc.key(counter, false)
		if !ok {
			continue
		}
		idx := iss>>cookieMACBits ^ uint32(k.mac(id, irs, opts, 0xFF)>>61)
		if iss&cookieMACMask != uint32(k.mac(id, irs, opts, uint8(idx)))&cookieMACMask {
			continue
		}
		h := Handshake{ISS: seqnum.Value(iss), IRS: irs, TSEpoch: cookieEpoch, PeerMSS: CookieMSS[idx]}
		h.TSOffset = cfg.isn().TimestampOffset(id)
		if opts != 0 {
			h.Timestamps, h.TSRecent = true, o.TSVal
			if ws := opts & tsOptNoWScale; ws != tsOptNoWScale {
				h.WindowScale, h.PeerWScale = true, min(ws, maxWindowShift)
			}
			h.SACKPermitted = opts&tsOptSACK != 0
			h.ECN = opts&tsOptECN != 0
		}
		return h, true
	}
	return Handshake{}, false
}

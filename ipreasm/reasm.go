// Package ipreasm reassembles fragmented IPv4 datagrams (RFC 791 section
// 3.2, RFC 815) and IPv6 packets (RFC 8200 section 4.5) within bounded
// memory.
//
// Like package tcp it is pure: no goroutines, locks or clocks. The time is
// an argument of every call, and a Reassembler is owned by one caller at a
// time (the stack calls it under its lock).
//
// What it refuses, and why:
//
//   - An overlap between two fragments of one datagram discards the whole
//     datagram and every fragment held for it: RFC 5722 section 4 (with
//     erratum 3089) says so for IPv6, and Linux does the same for IPv4
//     since 2018. Overlaps are how the attacks of RFC 1858 and RFC 3128
//     rewrite a TCP header after a filter looked at it. An exact duplicate
//     of a fragment held (same offset, same length) is only dropped itself,
//     as erratum 3089 allows: a network may duplicate packets.
//   - An IPv4 TCP fragment at offset 8 (fragment offset 1) is dropped: RFC
//     3128 section 4 (RFC 1858 section 3.2's rule).
//   - A fragment that is not the last and whose length is not a multiple of
//     8 octets (RFC 8200 section 4.5, RFC 791 section 3.2), or that would
//     make the datagram longer than 65535 octets, is dropped; so is one that
//     ends beyond the end a last fragment announced, or a second last
//     fragment with another end.
//   - An IPv6 first fragment that does not hold the whole header chain up
//     to and including the upper-layer header discards the datagram
//     (RFC 7112 section 5).
//
// An IPv6 "atomic fragment", offset 0 and no more fragments, is processed
// as the whole packet it is, apart from any datagram being reassembled
// with the same identification (RFC 6946 section 4).
//
// Memory: every fragment held costs its data plus FragmentOverhead, every
// datagram DatagramOverhead; the total stays under Config.Budget (default
// 4 MiB, Linux's ipfrag_high_thresh) by evicting the oldest datagrams
// first. A datagram not complete within its timeout (IPv4 30 s, Linux's
// ipfrag_time; IPv6 60 s, RFC 8200 section 4.5) is discarded by the next
// call that passes a later time (Add*, Expire).
package ipreasm

import (
	"net/netip"
	"slices"
	"time"

	"github.com/synack/synack/wire"
)

// Defaults of the Config fields.
const (
	DefaultBudget    = 4 << 20          // Linux's ipfrag_high_thresh
	DefaultTimeoutV4 = 30 * time.Second // Linux's ipfrag_time
	DefaultTimeoutV6 = 60 * time.Second // RFC 8200 section 4.5
	// MaxDatagram is the largest IPv4 datagram (total length) or IPv6
	// payload (payload length) a reassembly may produce (RFC 791, RFC 8200
	// section 4.5).
	MaxDatagram = 65535

	// FragmentOverhead is what a fragment held costs beyond its data, so
	// that a flood of tiny fragments fills the budget as a flood of big
	// ones does (Linux charges an skb's truesize likewise).
	FragmentOverhead = 64
	// DatagramOverhead is what a datagram being reassembled costs beyond
	// its fragments.
	DatagramOverhead = 256
)

// Config tunes a Reassembler. The zero value gives the defaults.
type Config struct {
	// Budget bounds the memory held by incomplete datagrams, in bytes as
	// charged above. Default 4 MiB. A smaller value is raised to what the
	// data of one 65535-octet datagram costs (65855), so that a datagram
	// of the largest size in a few fragments can still complete.
	Budget int
	// TimeoutV4 and TimeoutV6 bound how long an incomplete datagram is
	// kept after its first fragment arrived. Defaults 30 s and 60 s.
	TimeoutV4, TimeoutV6 time.Duration
}

func (c *Config) budget() int {
	if c.Budget <= 0 {
		return DefaultBudget
	}
	return max(c.Budget, DatagramOverhead+FragmentOverhead+MaxDatagram)
}

func (c *Config) timeout(v6 bool) time.Duration {
	if v6 {
		if c.TimeoutV6 <= 0 {
			return DefaultTimeoutV6
		}
		return c.TimeoutV6
	}
	if c.TimeoutV4 <= 0 {
		return DefaultTimeoutV4
	}
	return c.TimeoutV4
}

// Counters are named as RFC 4293's ipSystemStats and netstat -s name them.
type Counters struct {
	ReasmReqds   uint64 // fragments received (IPv6 atomic fragments included)
	ReasmOKs     uint64 // datagrams reassembled (IPv6 atomic fragments included)
	ReasmFails   uint64 // datagrams discarded (overlap, timeout, eviction, bad chain) and fragments refused alone
	ReasmTimeout uint64 // datagrams discarded by their timeout (also in ReasmFails)
	ReasmEvicted uint64 // datagrams discarded to stay within the budget (also in ReasmFails)
	ReasmOverlap uint64 // datagrams discarded for overlapping fragments (also in ReasmFails)
}

// key names a datagram: RFC 791 section 3.2 (source, destination, protocol,
// identification) and RFC 8200 section 4.5 (source, destination,
// identification; proto is 0).
type key struct {
	src, dst netip.Addr
	id       uint32
	proto    uint8
}

type frag struct {
	off, end int // in the datagram's data (IPv4) or fragmentable part (IPv6)
	data     []byte
}

type datagram struct {
	k        key
	v6       bool
	deadline time.Time
	frags    []frag // sorted by off, not overlapping
	have     int    // data bytes held
	total    int    // data length, known once the last fragment came; -1 before
	cost     int
	first    bool // the offset-0 fragment came, and with it the header below
	h4       wire.IPv4Header
	h6       wire.IPv6Header
	next     uint8 // IPv6: the Next Header of the fragmentable part
	unfrag   int   // IPv6: octets of extension headers before the Fragment header
	ecn      uint8 // a bit per ECN codepoint the accepted fragments carried (RFC 3168 section 5.3)
	opts     [wire.IPv4MaxHeaderLen - wire.IPv4MinHeaderLen]byte

	prev, nextd *datagram // in the list of its family, oldest first
}

// list is a doubly linked list of datagrams, oldest first. Datagrams of
// one family all have the same timeout, so the oldest expires first.
type list struct{ head, tail *datagram }

func (l *list) push(d *datagram) {
	d.prev, d.nextd = l.tail, nil
	if l.tail != nil {
		l.tail.nextd = d
	} else {
		l.head = d
	}
	l.tail = d
}

func (l *list) remove(d *datagram) {
	if d.prev != nil {
		d.prev.nextd = d.nextd
	} else {
		l.head = d.nextd
	}
	if d.nextd != nil {
		d.nextd.prev = d.prev
	} else {
		l.tail = d.prev
	}
	d.prev, d.nextd = nil, nil
}

// Reassembler holds the fragments of incomplete datagrams.
type Reassembler struct {
	cfg   Config
	m     map[key]*datagram
	v4    list
	v6    list
	mem   int
	stats Counters
}

// New returns an empty Reassembler.
func New(cfg Config) *Reassembler {
	return &Reassembler{cfg: cfg, m: make(map[key]*datagram)}
}

// Counters returns the counters since New.
func (r *Reassembler) Counters() Counters { return r.stats }

// Mem returns the memory charged to incomplete datagrams, which stays
// within the budget.
func (r *Reassembler) Mem() int { return r.mem }

// Budget returns the memory bound in effect.
func (r *Reassembler) Budget() int { return r.cfg.budget() }

// Len returns how many datagrams are incomplete.
func (r *Reassembler) Len() int { return len(r.m) }

// Deadline returns when the oldest incomplete datagram expires; zero when
// there is none.
func (r *Reassembler) Deadline() time.Time {
	var t time.Time
	for _, l := range []*list{&r.v4, &r.v6} {
		if l.head != nil && (t.IsZero() || l.head.deadline.Before(t)) {
			t = l.head.deadline
		}
	}
	return t
}

// Expire discards the datagrams whose timeout has passed at now. RFC 792
// and RFC 4443 section 3.3 have a host send a "fragment reassembly time
// exceeded" when the first fragment came; this package sends nothing,
// and the caller may.
func (r *Reassembler) Expire(now time.Time) {
	for _, l := range []*list{&r.v4, &r.v6} {
		for l.head != nil && !now.Before(l.head.deadline) {
			r.stats.ReasmTimeout++
			r.drop(l.head)
		}
	}
}

// drop discards d, counted as a failure.
func (r *Reassembler) drop(d *datagram) {
	r.stats.ReasmFails++
	r.forget(d)
}

// forget removes d and returns its memory.
func (r *Reassembler) forget(d *datagram) {
	if d.v6 {
		r.v6.remove(d)
	} else {
		r.v4.remove(d)
	}
	delete(r.m, d.k)
	r.mem -= d.cost
}

// AddIPv4 takes one IPv4 fragment: h and payload as wire.ParseIPv4
// returned them with an error wrapping wire.ErrFragment. When the fragment
// completes its datagram, AddIPv4 returns the whole datagram (header
// without fragmentation, options of the first fragment, payload), newly
// allocated, for the caller to process as if it had arrived so; otherwise
// nil.
func (r *Reassembler) AddIPv4(now time.Time, h *wire.IPv4Header, payload []byte) []byte {
	r.Expire(now)
	r.stats.ReasmReqds++
	off := int(h.FragOff) * 8
	more := h.Flags&wire.IPv4MoreFragments != 0
	hl := h.HeaderLen()
	// RFC 3128 section 4 (RFC 1858 section 3.2): a TCP fragment with
	// fragment offset 1 can only be meant to overwrite the TCP header.
	if h.Protocol == wire.ProtocolTCP && h.FragOff == 1 {
		r.stats.ReasmFails++
		return nil
	}
	if !r.fragmentFits(off, len(payload), more, MaxDatagram-hl) {
		return nil
	}
	k := key{src: h.Src, dst: h.Dst, id: uint32(h.ID), proto: h.Protocol}
	d := r.lookup(now, k, false)
	if d == nil {
		return nil
	}
	if off == 0 && !d.first {
		d.first = true
		d.h4 = *h
		n := copy(d.opts[:], h.Options)
		d.h4.Options = d.opts[:n]
	}
	if !r.insert(d, off, payload, more) {
		return nil
	}
	d.ecn |= 1 << wire.ECNOf(h.TOS)
	if !d.complete() {
		return nil
	}
	// The first fragment's options make the header, and so decide the
	// length the data may have (RFC 791 section 3.2: the first fragment
	// carries every option).
	if d.h4.HeaderLen()+d.total > MaxDatagram {
		r.drop(d)
		return nil
	}
	hdr := d.h4
	ecn, ok := reassembledECN(d.ecn, wire.ECNOf(hdr.TOS))
	if !ok {
		r.drop(d)
		return nil
	}
	hdr.TOS = wire.WithECN(hdr.TOS, ecn)
	hdr.Flags &^= wire.IPv4MoreFragments
	hdr.FragOff = 0
	out := wire.AppendIPv4(make([]byte, 0, hdr.HeaderLen()+d.total), &hdr, d.total)
	out = d.appendData(out)
	r.stats.ReasmOKs++
	r.forget(d)
	return out
}

// AddIPv6 takes one IPv6 packet with a Fragment header: h as wire.ParseIPv6
// returned it with an error wrapping wire.ErrFragment, fragment the payload
// it returned (starting at the Fragment header), and unfrag the octets of
// extension headers between the IPv6 header and the Fragment header.
// When the packet completes its datagram (or is an atomic fragment),
// AddIPv6 returns the whole packet, newly allocated: the IPv6 header of
// the first fragment followed by the fragmentable part, so that its Next
// Header is the Fragment header's. The unfragmentable extension headers
// (hop-by-hop, destination options, routing) are left out: ParseIPv6 skips
// them, and this stack, being no router, has no use for them. Otherwise
// it returns nil.
func (r *Reassembler) AddIPv6(now time.Time, h *wire.IPv6Header, fragment []byte, unfrag int) []byte {
	r.Expire(now)
	r.stats.ReasmReqds++
	f, data, err := wire.ParseIPv6Fragment(fragment)
	if err != nil {
		r.stats.ReasmFails++
		return nil
	}
	// RFC 6946 section 4: an atomic fragment is a whole packet, and
	// touches no reassembly in progress.
	if f.IsAtomic() {
		if unfrag+len(data) > MaxDatagram {
			r.stats.ReasmFails++
			return nil
		}
		r.stats.ReasmOKs++
		hdr := *h
		hdr.NextHeader = f.NextHeader
		out := wire.AppendIPv6(make([]byte, 0, wire.IPv6HeaderLen+len(data)), &hdr, len(data))
		return append(out, data...)
	}
	off := int(f.Offset) * 8
	// RFC 7112 section 5: the first fragment must hold the whole header
	// chain, so that the upper-layer header is in it.
	if off == 0 && !chainComplete(f.NextHeader, data) {
		if d := r.m[key{src: h.Src, dst: h.Dst, id: f.ID}]; d != nil {
			r.drop(d)
		} else {
			r.stats.ReasmFails++
		}
		return nil
	}
	// RFC 8200 section 4.5: the reassembled payload length, unfragmentable
	// headers included, may not exceed 65535.
	if !r.fragmentFits(off, len(data), f.More, MaxDatagram-unfrag-wire.IPv6FragmentHeaderLen) {
		return nil
	}
	k := key{src: h.Src, dst: h.Dst, id: f.ID}
	d := r.lookup(now, k, true)
	if d == nil {
		return nil
	}
	if off == 0 && !d.first {
		d.first = true
		d.h6 = *h
		d.next = f.NextHeader
		d.unfrag = unfrag
	}
	if !r.insert(d, off, data, f.More) {
		return nil
	}
	d.ecn |= 1 << wire.ECNOf(h.TrafficClass)
	if !d.complete() {
		return nil
	}
	hdr := d.h6
	ecn, ok := reassembledECN(d.ecn, wire.ECNOf(hdr.TrafficClass))
	if !ok {
		r.drop(d)
		return nil
	}
	hdr.TrafficClass = wire.WithECN(hdr.TrafficClass, ecn)
	hdr.NextHeader = d.next
	out := wire.AppendIPv6(make([]byte, 0, wire.IPv6HeaderLen+d.total), &hdr, d.total)
	out = d.appendData(out)
	r.stats.ReasmOKs++
	r.forget(d)
	return out
}

// chainComplete reports whether the fragmentable part's first fragment
// data, starting with header type next, holds every extension header and
// the upper-layer header (RFC 7112 section 5). The upper-layer header's
// size is known for TCP (20 octets), UDP (8) and ICMPv6 (4); a chain ended
// by a header this stack does not walk (ESP, No Next Header...) counts as
// complete. A hop-by-hop header there is refused too: it may only follow
// the IPv6 header (RFC 8200 section 4.3).
func chainComplete(next uint8, data []byte) bool {
	if next == wire.ProtocolHopByHop {
		return false
	}
	proto, off, err := wire.SkipIPv6Extensions(next, data)
	if err != nil {
		return proto != wire.ProtocolHopByHop && proto != wire.ProtocolRouting && proto != wire.ProtocolDestOpts
	}
	need := 0
	switch proto {
	case wire.ProtocolTCP:
		need = 20
	case wire.ProtocolUDP:
		need = 8
	case wire.ProtocolICMPv6:
		need = 4
	}
	return len(data)-off >= need
}

// fragmentFits checks a fragment's own shape: a fragment that is not the
// last carries a multiple of 8 octets and at least 8 (RFC 791 section 3.2,
// RFC 8200 section 4.5), and none reaches beyond limit. It counts a
// refusal.
func (r *Reassembler) fragmentFits(off, n int, more bool, limit int) bool {
	if (more && (n == 0 || n%8 != 0)) || off+n > limit {
		r.stats.ReasmFails++
		return false
	}
	return true
}

// lookup returns the datagram k, making it when it is new, within the
// budget: the oldest datagrams are evicted to make room. It returns nil
// when a new datagram cannot fit even in an empty reassembler (never with
// a sane budget).
func (r *Reassembler) lookup(now time.Time, k key, v6 bool) *datagram {
	if d := r.m[k]; d != nil {
		return d
	}
	d := &datagram{k: k, v6: v6, total: -1, deadline: now.Add(r.cfg.timeout(v6)), cost: DatagramOverhead}
	if !r.makeRoom(d.cost, nil) {
		r.stats.ReasmFails++
		return nil
	}
	r.mem += d.cost
	r.m[k] = d
	if v6 {
		r.v6.push(d)
	} else {
		r.v4.push(d)
	}
	return d
}

// makeRoom evicts the oldest datagrams other than keep until n more bytes
// fit in the budget. It reports whether they do.
func (r *Reassembler) makeRoom(n int, keep *datagram) bool {
	budget := r.cfg.budget()
	for r.mem+n > budget {
		victim := r.oldest(keep)
		if victim == nil {
			return false
		}
		r.stats.ReasmEvicted++
		r.drop(victim)
	}
	return true
}

// oldest returns the datagram that arrived first, skipping keep.
func (r *Reassembler) oldest(keep *datagram) *datagram {
	pick := func(l *list) *datagram {
		d := l.head
		if d == keep && d != nil {
			d = d.nextd
		}
		return d
	}
	a, b := pick(&r.v4), pick(&r.v6)
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	// Both lists are in arrival order; deadlines are arrival plus the
	// family's timeout.
	if a.deadline.Add(-r.cfg.timeout(false)).After(b.deadline.Add(-r.cfg.timeout(true))) {
		return b
	}
	return a
}

// insert adds the fragment [off, off+len(data)) to d, copying data. It
// reports false when the fragment was refused (and d maybe discarded).
func (r *Reassembler) insert(d *datagram, off int, data []byte, more bool) bool {
	end := off + len(data)
	switch {
	case !more && d.total >= 0 && end != d.total:
		// A second last fragment with another end.
		r.drop(d)
		return false
	case more && d.total >= 0 && end > d.total:
		r.drop(d)
		return false
	}
	if !more && len(d.frags) > 0 && d.frags[len(d.frags)-1].end > end {
		// Data held beyond the end this last fragment announces.
		r.drop(d)
		return false
	}
	i, found := slices.BinarySearchFunc(d.frags, off, func(f frag, off int) int { return f.off - off })
	if found && d.frags[i].end == end {
		// An exact duplicate: dropped alone (RFC 5722 erratum 3089).
		if !more {
			d.total = end
		}
		return false
	}
	// RFC 5722 section 4: any other overlap discards the datagram.
	if found || (i > 0 && d.frags[i-1].end > off) || (i < len(d.frags) && d.frags[i].off < end) {
		r.stats.ReasmOverlap++
		r.drop(d)
		return false
	}
	cost := len(data) + FragmentOverhead
	if !r.makeRoom(cost, d) {
		r.drop(d)
		return false
	}
	d.frags = slices.Insert(d.frags, i, frag{off: off, end: end, data: append([]byte(nil), data...)})
	d.have += len(data)
	d.cost += cost
	r.mem += cost
	if !more {
		d.total = end
	}
	return true
}

// reassembledECN is the ECN field of a datagram whose accepted fragments
// carried the codepoints in seen (bit 1<<codepoint), given first, the
// first fragment's, whose header the datagram takes. RFC 3168 section 5.3:
// reassembly must not lose a congestion mark, so a CE on any fragment
// marks the whole datagram, except where another fragment was Not-ECT:
// then the datagram is dropped (ok false), which the RFC allows as the
// other way not to lose the mark. Fragments that agree keep their
// codepoint; a mix of ECT(0), ECT(1) and Not-ECT without CE keeps the
// first fragment's, as nothing was marked.
func reassembledECN(seen uint8, first wire.ECN) (ecn wire.ECN, ok bool) {
	const notECT, ce = 1 << wire.NotECT, 1 << wire.CE
	switch {
	case seen&ce != 0 && seen&notECT != 0:
		return wire.NotECT, false
	case seen&ce != 0:
		return wire.CE, true
	}
	return first, true
}

// complete reports whether every octet of d is held: the last fragment
// came, and without overlaps the lengths add up only when nothing is
// missing.
func (d *datagram) complete() bool {
	return d.first && d.total >= 0 && d.have == d.total
}

func (d *datagram) appendData(b []byte) []byte {
	for _, f := range d.frags {
		b = append(b, f.data...)
	}
	return b
}

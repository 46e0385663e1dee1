package tcp

import (
	"sort"

	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/wire"
)

// This file is the sender's SACK scoreboard (RFC 6675 section 4, RFC 2018
// section 5): which bytes above SND.UNA the peer has reported holding, so
// that loss recovery resends only the holes.

// The scoreboard holds as many ranges as the peer reports, up to the
// flight's bound (rangeLimit): a peer cannot hold more disjoint SACKed
// ranges than there are segments in flight, and after a slow-start
// overshoot into a drop-tail queue (every other segment lost) it holds
// about half of them. Forgetting a range would be safe (its bytes count as
// not SACKed) but costly: IsLost then marks the forgotten bytes lost and
// NextSeg resends them (RFC 6675 section 4).

// keptRanges is the capacity the scoreboard keeps when it empties: a small
// loss episode on a long connection does not allocate again each time,
// while the memory of a large one (up to a flight's worth) is released.
const keptRanges = 16

// rangeLimit bounds the ranges held for a flight of SND.UNA = una to
// SND.MAX = sndMax: one per segment in flight, plus a few for segments
// shorter than the MSS (a short last segment, a smaller MSS after PMTU
// discovery). Past it the highest ranges are forgotten (see above).
func rangeLimit(una, sndMax seqnum.Value, mss int) int {
	return int(una.Size(sndMax))/max(mss, 1) + 4
}

// dupThresh is DupThresh of RFC 6675 section 2 and RFC 5681: three
// duplicate ACKs, or that many SACKed segments above a hole.
const dupThresh = 3

// sackRange is one run of SACKed bytes, [start, end).
type sackRange struct{ start, end seqnum.Value }

// scoreboard holds the SACKed ranges above SND.UNA: sorted, disjoint and
// never touching (touching ranges are merged). r grows with the ranges the
// peer reports (bounded by rangeLimit) and is released when it empties.
type scoreboard struct {
	r      []sackRange
	sacked int // bytes in r
}

// sackUpdate is what one ACK's SACK option told the scoreboard.
type sackUpdate struct {
	newlySACKed  int  // bytes SACKed for the first time
	dsack        bool // the first block was a D-SACK (RFC 2883)
	dsackStart   seqnum.Value
	dsackEnd     seqnum.Value
	bogus        int // blocks ignored as invalid
	sackedBefore int // scoreboard bytes before the ACK (RFC 6937 DeliveredData)
}

// update takes the SACK blocks of an acceptable ACK, after SND.UNA has
// moved to una; max is SND.MAX (the highest sequence number sent, HighData
// + 1). A block is used only when una < start < end <= max (RFC 2018
// section 5 leaves other blocks meaningless). The first block is a D-SACK
// (RFC 2883 section 4) when it lies at or below SND.UNA (the cumulative
// ACK) or inside the second block: it reports a duplicate, not a hole
// filled, so it is recognised and reported but never marked SACKed.
//
// mss bounds the ranges held (rangeLimit). newly, when not nil, is told
// of every interval SACKed for the first time.
func (sb *scoreboard) update(o *wire.TCPOptions, ackField, una, max seqnum.Value, mss int, newly func(a, b seqnum.Value)) sackUpdate {
	var u sackUpdate
	sb.advance(una)
	limit := rangeLimit(una, max, mss)
	for i := 0; i < int(o.NumSACK) && i < len(o.SACKBlocks); i++ {
		b := o.SACKBlocks[i]
		start, end := seqnum.Value(b.Start), seqnum.Value(b.End)
		if !start.LessThan(end) || start.Size(end) > 1<<30 {
			u.bogus++
			continue
		}
		if i == 0 {
			dsack := end.LessThanEq(ackField)
			if !dsack && o.NumSACK > 1 {
				b2 := o.SACKBlocks[1]
				s2, e2 := seqnum.Value(b2.Start), seqnum.Value(b2.End)
				dsack = s2.LessThanEq(start) && end.LessThanEq(e2)
			}
			if dsack {
				// A D-SACK must still name data we sent (RFC 2883
				// section 5 and 6: we must not trust one naming
				// sequence numbers never sent).
				if end.LessThanEq(max) {
					u.dsack, u.dsackStart, u.dsackEnd = true, start, end
				} else {
					u.bogus++
				}
				continue
			}
		}
		if start.LessThan(una) || end.GreaterThan(max) {
			if end.LessThanEq(una) {
				continue // old news: already acknowledged cumulatively
			}
			if end.GreaterThan(max) {
				u.bogus++ // bytes never sent (RFC 2018 section 5)
				continue
			}
			start = una // the part above SND.UNA still counts
		}
		u.newlySACKed += sb.add(start, end, limit, newly)
	}
	return u
}

// add marks [start, end) SACKed and returns how many of its bytes were
// not SACKed before; newly, when not nil, is told of them. At most limit
// ranges are kept: past it the highest are forgotten. Finding the place is
// a binary search; making room is one copy of the ranges above it.
func (sb *scoreboard) add(start, end seqnum.Value, limit int, newly func(a, b seqnum.Value)) int {
	before := sb.sacked
	// The first range that ends at or after start: ranges before it are
	// untouched.
	i := sb.firstEndingFrom(start)
	n := len(sb.r)
	if i == n && n >= limit {
		return 0 // full, and the new range would be the highest: forget it
	}
	if newly != nil {
		// The gaps between the ranges [start, end) overlaps are new.
		cur := start
		for k := i; k < n && sb.r[k].start.LessThan(end); k++ {
			if cur.LessThan(sb.r[k].start) {
				newly(cur, sb.r[k].start)
			}
			cur = seqnum.Max(cur, sb.r[k].end)
		}
		if cur.LessThan(end) {
			newly(cur, end)
		}
	}
	// Merge every range that touches [start, end).
	j := i
	for j < n && sb.r[j].start.LessThanEq(end) {
		start = seqnum.Min(start, sb.r[j].start)
		end = seqnum.Max(end, sb.r[j].end)
		sb.sacked -= int(sb.r[j].start.Size(sb.r[j].end))
		j++
	}
	switch merged := j - i; { // ranges replaced by the one new range
	case merged == 0:
		sb.r = append(sb.r, sackRange{})
		copy(sb.r[i+1:], sb.r[i:n])
	case merged > 1:
		copy(sb.r[i+1:], sb.r[j:n])
		sb.r = sb.r[:n-(merged-1)]
	}
	sb.r[i] = sackRange{start, end}
	sb.sacked += int(start.Size(end))
	// Over the limit (a new range, or a flight that shrank under ranges
	// of short segments): forget the highest.
	for len(sb.r) > max(limit, 1) {
		last := sb.r[len(sb.r)-1]
		sb.sacked -= int(last.start.Size(last.end))
		sb.r = sb.r[:len(sb.r)-1]
	}
	return max(sb.sacked-before, 0)
}

// firstEndingFrom returns the index of the first range whose end is at or
// after seq (len(sb.r) when none is).
func (sb *scoreboard) firstEndingFrom(seq seqnum.Value) int {
	return sort.Search(len(sb.r), func(k int) bool { return sb.r[k].end.GreaterThanEq(seq) })
}

// firstEndingAfter returns the index of the first range whose end is
// above seq (len(sb.r) when none is): the range holding seq, if any.
func (sb *scoreboard) firstEndingAfter(seq seqnum.Value) int {
	return sort.Search(len(sb.r), func(k int) bool { return sb.r[k].end.GreaterThan(seq) })
}

// advance forgets what SND.UNA = una has acknowledged cumulatively.
func (sb *scoreboard) advance(una seqnum.Value) {
	k := sb.firstEndingAfter(una)
	for _, r := range sb.r[:k] {
		sb.sacked -= int(r.start.Size(r.end))
	}
	if k > 0 {
		n := copy(sb.r, sb.r[k:])
		sb.r = sb.r[:n]
		if n == 0 {
			sb.release()
		}
	}
	if len(sb.r) > 0 && sb.r[0].start.LessThan(una) {
		sb.sacked -= int(sb.r[0].start.Size(una))
		sb.r[0].start = una
	}
}

// release drops a large empty array (see keptRanges).
func (sb *scoreboard) release() {
	if cap(sb.r) > keptRanges {
		sb.r = nil
	}
}

// reset forgets everything (RFC 6675 section 5.1 after a timeout, when the
// peer may have reneged).
func (sb *scoreboard) reset() {
	sb.r = sb.r[:0]
	sb.sacked = 0
	sb.release()
}

func (sb *scoreboard) empty() bool { return len(sb.r) == 0 }

// highest is the end of the highest SACKed range (HighACK's counterpart
// above the holes), or una when nothing is SACKed.
func (sb *scoreboard) highest(una seqnum.Value) seqnum.Value {
	if len(sb.r) == 0 {
		return una
	}
	return sb.r[len(sb.r)-1].end
}

// isSACKed reports whether the byte at seq is SACKed.
func (sb *scoreboard) isSACKed(seq seqnum.Value) bool {
	i := sb.firstEndingAfter(seq)
	return i < len(sb.r) && sb.r[i].start.LessThanEq(seq)
}

// lostBelow is RFC 6675's IsLost turned into a boundary: every byte below
// the returned sequence number that is not SACKed is lost, every byte at or
// above it is not. IsLost(SeqNum) holds when DupThresh discontiguous SACKed
// ranges lie above SeqNum, or more than (DupThresh - 1) * SMSS bytes are
// SACKed above it (section 4); both only grow as SeqNum goes down, so the
// boundary is the start of the range at which walking down from the top
// first meets either. It returns una when nothing is lost. The walk stops
// within DupThresh ranges.
func (sb *scoreboard) lostBelow(una seqnum.Value, mss int) seqnum.Value {
	bytes := 0
	n := len(sb.r)
	for i := n - 1; i >= 0; i-- {
		bytes += int(sb.r[i].start.Size(sb.r[i].end))
		if n-i >= dupThresh || bytes > (dupThresh-1)*mss {
			return sb.r[i].start
		}
	}
	return una
}

// isLost is RFC 6675's IsLost (section 4) for the byte at seq.
func (sb *scoreboard) isLost(seq, una seqnum.Value, mss int) bool {
	return seq.LessThan(sb.lostBelow(una, mss)) && !sb.isSACKed(seq)
}

// sackedIn counts the SACKed bytes in [a, b). It adds up the ranges
// inside or, when fewer lie outside (SetPipe asks about most of the
// flight: SND.UNA to the lost boundary, a few ranges below the top),
// subtracts those outside from the total.
func (sb *scoreboard) sackedIn(a, b seqnum.Value) int {
	if !a.LessThan(b) {
		return 0
	}
	n := len(sb.r)
	i := sb.firstEndingAfter(a)                                                             // first range with bytes at or above a
	j := i + sort.Search(n-i, func(k int) bool { return sb.r[i+k].start.GreaterThanEq(b) }) // first range wholly at or above b
	if i == j {
		return 0
	}
	clip := func(r sackRange) int {
		s, e := seqnum.Max(r.start, a), seqnum.Min(r.end, b)
		if s.LessThan(e) {
			return int(s.Size(e))
		}
		return 0
	}
	if j-i <= n-(j-i) {
		c := 0
		for _, r := range sb.r[i:j] {
			c += clip(r)
		}
		return c
	}
	// Everything, less the ranges wholly outside [a, b), less the parts of
	// the two end ranges that stick out.
	c := sb.sacked
	for _, r := range sb.r[:i] {
		c -= int(r.start.Size(r.end))
	}
	for _, r := range sb.r[j:] {
		c -= int(r.start.Size(r.end))
	}
	c -= int(sb.r[i].start.Size(sb.r[i].end)) - clip(sb.r[i])
	if j-1 > i {
		c -= int(sb.r[j-1].start.Size(sb.r[j-1].end)) - clip(sb.r[j-1])
	}
	return c
}

// unsackedIn counts the bytes in [a, b) that are not SACKed.
func (sb *scoreboard) unsackedIn(a, b seqnum.Value) int {
	if !a.LessThan(b) {
		return 0
	}
	return int(a.Size(b)) - sb.sackedIn(a, b)
}

// nextHole returns the first byte at or after from that is not SACKed,
// and where the hole it starts ends (the next SACKed range, or max).
// Ranges never touch, so a hole follows every range.
func (sb *scoreboard) nextHole(from, max seqnum.Value) (start, end seqnum.Value) {
	start = from
	i := sb.firstEndingAfter(from)
	if i < len(sb.r) && sb.r[i].start.LessThanEq(start) {
		start = sb.r[i].end // inside a SACKed range: the hole starts after it
		i++
	}
	if i < len(sb.r) {
		return start, sb.r[i].start
	}
	return start, max
}

// pipe is RFC 6675 section 4's SetPipe: the bytes thought to be in the
// network between SND.UNA and SND.MAX. Every byte not SACKed counts once
// unless it is lost (below lost), and once more if it has been
// retransmitted (below highRxt, HighRxt + 1).
func (sb *scoreboard) pipe(una, max, lost, highRxt seqnum.Value) int {
	return sb.unsackedIn(una, max) - sb.unsackedIn(una, lost) + sb.unsackedIn(una, highRxt)
}

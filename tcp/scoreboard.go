package tcp

import (
	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/wire"
)

// This file is the sender's SACK scoreboard (RFC 6675 section 4, RFC 2018
// section 5): which bytes above SND.UNA the peer has reported holding, so
// that loss recovery resends only the holes.

// maxSACKRanges bounds the scoreboard. A peer reports at most four blocks
// per ACK (three beside timestamps) and the blocks it reports merge into
// ranges here, so a flight has this many holes at most before the highest
// ranges are forgotten. Forgetting a range is safe: its bytes count as
// not SACKed, so at worst they are retransmitted needlessly.
const maxSACKRanges = 16

// dupThresh is DupThresh of RFC 6675 section 2 and RFC 5681: three
// duplicate ACKs, or that many SACKed segments above a hole.
const dupThresh = 3

// sackRange is one run of SACKed bytes, [start, end).
type sackRange struct{ start, end seqnum.Value }

// scoreboard holds the SACKed ranges above SND.UNA: sorted, disjoint and
// never touching (touching ranges are merged). Its memory is fixed.
type scoreboard struct {
	r      [maxSACKRanges]sackRange
	n      int
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
// newly, when not nil, is told of every interval SACKed for the first time.
func (sb *scoreboard) update(o *wire.TCPOptions, ackField, una, max seqnum.Value, newly func(a, b seqnum.Value)) sackUpdate {
	var u sackUpdate
	sb.advance(una)
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
		u.newlySACKed += sb.add(start, end, newly)
	}
	return u
}

// add marks [start, end) SACKed and returns how many of its bytes were
// not SACKed before; newly, when not nil, is told of them.
func (sb *scoreboard) add(start, end seqnum.Value, newly func(a, b seqnum.Value)) int {
	before := sb.sacked
	// Find the first range that ends at or after start: ranges before it
	// are untouched.
	i := 0
	for i < sb.n && sb.r[i].end.LessThan(start) {
		i++
	}
	if newly != nil {
		// The gaps between the ranges [start, end) overlaps are new.
		cur := start
		for k := i; k < sb.n && sb.r[k].start.LessThan(end); k++ {
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
	for j < sb.n && sb.r[j].start.LessThanEq(end) {
		start = seqnum.Min(start, sb.r[j].start)
		end = seqnum.Max(end, sb.r[j].end)
		sb.sacked -= int(sb.r[j].start.Size(sb.r[j].end))
		j++
	}
	merged := j - i // ranges replaced by the one new range
	switch {
	case merged == 0:
		if sb.n == maxSACKRanges {
			// Full: forget the highest range (see maxSACKRanges), or the
			// new one if it would be the highest.
			if i == sb.n {
				return 0
			}
			sb.n--
			sb.sacked -= int(sb.r[sb.n].start.Size(sb.r[sb.n].end))
		}
		copy(sb.r[i+1:sb.n+1], sb.r[i:sb.n])
		sb.n++
	case merged > 1:
		copy(sb.r[i+1:], sb.r[j:sb.n])
		sb.n -= merged - 1
	}
	sb.r[i] = sackRange{start, end}
	sb.sacked += int(start.Size(end))
	return max(sb.sacked-before, 0)
}

// advance forgets what SND.UNA = una has acknowledged cumulatively.
func (sb *scoreboard) advance(una seqnum.Value) {
	k := 0
	for k < sb.n && sb.r[k].end.LessThanEq(una) {
		sb.sacked -= int(sb.r[k].start.Size(sb.r[k].end))
		k++
	}
	if k > 0 {
		copy(sb.r[:], sb.r[k:sb.n])
		sb.n -= k
	}
	if sb.n > 0 && sb.r[0].start.LessThan(una) {
		sb.sacked -= int(sb.r[0].start.Size(una))
		sb.r[0].start = una
	}
}

// reset forgets everything (RFC 6675 section 5.1 after a timeout, when the
// peer may have reneged).
func (sb *scoreboard) reset() { *sb = scoreboard{} }

func (sb *scoreboard) empty() bool { return sb.n == 0 }

// highest is the end of the highest SACKed range (HighACK's counterpart
// above the holes), or una when nothing is SACKed.
func (sb *scoreboard) highest(una seqnum.Value) seqnum.Value {
	if sb.n == 0 {
		return una
	}
	return sb.r[sb.n-1].end
}

// isSACKed reports whether the byte at seq is SACKed.
func (sb *scoreboard) isSACKed(seq seqnum.Value) bool {
	for i := 0; i < sb.n; i++ {
		if seq.LessThan(sb.r[i].start) {
			return false
		}
		if seq.LessThan(sb.r[i].end) {
			return true
		}
	}
	return false
}

// lostBelow is RFC 6675's IsLost turned into a boundary: every byte below
// the returned sequence number that is not SACKed is lost, every byte at or
// above it is not. IsLost(SeqNum) holds when DupThresh discontiguous SACKed
// ranges lie above SeqNum, or more than (DupThresh - 1) * SMSS bytes are
// SACKed above it (section 4); both only grow as SeqNum goes down, so the
// boundary is the start of the range at which walking down from the top
// first meets either. It returns una when nothing is lost.
func (sb *scoreboard) lostBelow(una seqnum.Value, mss int) seqnum.Value {
	bytes := 0
	for i := sb.n - 1; i >= 0; i-- {
		bytes += int(sb.r[i].start.Size(sb.r[i].end))
		if sb.n-i >= dupThresh || bytes > (dupThresh-1)*mss {
			return sb.r[i].start
		}
	}
	return una
}

// isLost is RFC 6675's IsLost (section 4) for the byte at seq.
func (sb *scoreboard) isLost(seq, una seqnum.Value, mss int) bool {
	return seq.LessThan(sb.lostBelow(una, mss)) && !sb.isSACKed(seq)
}

// sackedIn counts the SACKed bytes in [a, b).
func (sb *scoreboard) sackedIn(a, b seqnum.Value) int {
	n := 0
	for i := 0; i < sb.n; i++ {
		s, e := seqnum.Max(sb.r[i].start, a), seqnum.Min(sb.r[i].end, b)
		if s.LessThan(e) {
			n += int(s.Size(e))
		}
	}
	return n
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
func (sb *scoreboard) nextHole(from, max seqnum.Value) (start, end seqnum.Value) {
	start = from
	for i := 0; i < sb.n; i++ {
		r := sb.r[i]
		if r.end.LessThanEq(start) {
			continue
		}
		if r.start.LessThanEq(start) {
			start = r.end // inside a SACKed range: the hole starts after it
			continue
		}
		return start, r.start
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

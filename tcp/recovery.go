package tcp

import (
	"time"

	"github.com/synack/synack/seqnum"
)

// This file is the sender's SACK-based loss recovery: the scoreboard fed
// by each ACK (RFC 6675 section 4, RFC 2018, RFC 2883), recovery entered on
// RFC 6675's rule or RACK's (rack.go), NextSeg choosing what to resend,
// and Proportional Rate Reduction (RFC 6937) choosing how much. Limited
// Transmit (RFC 3042) is in output.go's sendWindow.

// sackUpdate feeds the SACK blocks of an acceptable ACK to the scoreboard
// (RFC 6675 section 4, "Update()"), once SND.UNA has been computed.
func (c *Conn) sackUpdate(now time.Time, seg *Segment) {
	if c.snd.loss == nil && (!c.sackOK || seg.Options.NumSACK == 0) {
		// No state yet and nothing to put in it: an empty scoreboard
		// and transmit queue stay as they are (lr starts the queue at
		// SND.UNA, as an ACK of an empty one would).
		return
	}
	c.lr().su = sackUpdate{}
	if !c.sackOK {
		return
	}
	una := c.snd.una
	if seg.Ack.GreaterThan(una) {
		una = seg.Ack
	}
	if una.GreaterThan(c.snd.una) {
		c.checkReneging(una)
	}
	c.rackAckStart()
	before := c.lr().sb.sacked
	u := c.lr().sb.update(&seg.Options, seg.Ack, una, c.snd.max, c.mss, func(a, b seqnum.Value) {
		c.txSACKed(now, seg, a, b)
	})
	c.txAcked(now, seg, una)
	c.rateGenerate()
	u.sackedBefore = before
	c.lr().su = u
	if n := int(seg.Options.NumSACK) - u.bogus; n > 0 {
		c.cold().SACKBlocksIn += uint64(n)
	}
	if u.bogus > 0 {
		c.cold().SACKBlocksBogus += uint64(u.bogus)
	}
	if u.dsack {
		c.cold().DSACKsIn++
		c.cold().SACKBlocksIn--
	}
}

// checkReneging runs when an ACK moves SND.UNA to una, before its SACK
// blocks are taken. If the scoreboard holds the byte at una as SACKed, the
// peer has dropped what it SACKed (RFC 2018 section 8 lets it): a
// receiver holding that byte would have acknowledged it cumulatively.
// SACKed bits are advisory (RFC 2018 section 5.1), so the sender forgets
// them all and resends from SND.UNA now (Linux reacts to the same sign,
// tcp_check_sack_reneging). Without this, the resending after a timeout
// skips the dropped bytes as SACKed (skipSACKed) and only a second
// timeout, which forgets the scoreboard, repairs them: timeouts in pairs.
// Whatever the peer still holds it reports again in the blocks of this
// ACK and the next ones.
func (c *Conn) checkReneging(una seqnum.Value) {
	l := c.snd.loss
	if l == nil {
		return // nothing was ever SACKed
	}
	sb := &l.sb
	if len(sb.r) == 0 || !sb.r[0].start.LessThanEq(una) || !una.LessThan(sb.r[0].end) {
		return
	}
	c.cold().SACKReneging++
	sb.reset()
	q := &l.txq
	for i := 0; i < q.n; i++ {
		s := q.at(i)
		if s.has(txSACKed) {
			s.flags &^= txSACKed
		}
	}
	if !c.snd.inRecovery {
		if una.LessThan(c.snd.recover) {
			// Resending after a timeout (below the recovery point the
			// timeout set, RFC 6582 section 4) went past the dropped
			// bytes as SACKed (skipSACKed): go back to SND.UNA for
			// them (RFC 2018 section 5.1: the segment at the left edge
			// is resent whatever its SACKed bit said). cwnd is the
			// timeout's, so this is no burst.
			c.snd.nxt = una
		}
		// Otherwise the flight goes on at its pace: the bytes no longer
		// SACKed are found lost as any others (RACK, DupThresh) or by
		// the timer, rather than resent at once in a burst of cwnd.
		return
	}
	// In recovery NextSeg starts again from SND.UNA, and RACK resends
	// the segment there, missing for sure; the rest it marks as it finds
	// it lost.
	l.rec.highRxt, l.rec.rescued = una, false
	if c.rackOn() && q.n > 0 {
		if s := q.at(q.find(una)); !s.has(txLost) && s.start.LessThanEq(una) {
			s.flags |= txLost
			q.lostBytes += int(s.start.Size(s.end))
		}
	}
}

// sackRecovery is the state of RFC 6675 loss recovery and of the
// Proportional Rate Reduction (RFC 6937) that paces it. The recovery
// point is sender.recover and "in recovery" sender.inRecovery, shared with
// NewReno.
type sackRecovery struct {
	highRxt   seqnum.Value // HighRxt + 1: the end of the highest byte resent by NextSeg rules 1 and 3
	rescueRxt seqnum.Value // RescueRxt
	rescued   bool         // RescueRxt is defined

	// PRR (RFC 6937 section 3).
	recoverFS    int // RecoverFS: the flight when recovery started
	prrDelivered int // prr_delivered: bytes delivered to the peer since
	prrOut       int // prr_out: bytes sent since
	sndcnt       int // what PRR lets go now, spent by output
}

// sackRecovering reports whether loss recovery is RFC 6675's: the peer
// agreed to SACK. Without it NewReno (RFC 6582) recovers as before.
func (c *Conn) sackRecovering() bool { return c.sackOK }

// delivered is RFC 6937's DeliveredData for the latest ACK: the change in
// SND.UNA plus the change in SACKed bytes.
func (c *Conn) delivered(acked int) int {
	if c.snd.loss == nil {
		return max(acked, 0) // nothing SACKed, ever
	}
	return max(acked+c.snd.loss.sb.sacked-c.snd.loss.su.sackedBefore, 0)
}

// lostBelow is where the bytes counted lost end (see scoreboard.lostBelow).
func (c *Conn) lostBelow() seqnum.Value { return c.lr().sb.lostBelow(c.snd.una, c.mss) }

// pipe is RFC 6675's SetPipe. With RACK the bytes counted lost are the
// ones RACK marked and that wait for their retransmission (a resent
// segment counts once, as its retransmission).
func (c *Conn) pipe() int {
	if c.rackOn() {
		return max(c.lr().sb.unsackedIn(c.snd.una, c.snd.max)-c.lr().txq.lostBytes, 0)
	}
	hr := c.snd.una
	if c.snd.inRecovery && c.lr().rec.highRxt.GreaterThan(hr) {
		hr = c.lr().rec.highRxt
	}
	return c.lr().sb.pipe(c.snd.una, c.snd.max, c.lostBelow(), hr)
}

// sackOnAck is RFC 6675 section 5 for one acceptable ACK: acked bytes
// newly acknowledged cumulatively (0 for a duplicate). It counts duplicate
// ACKs, enters loss recovery, paces it with PRR, and leaves it at the
// recovery point. output then sends what NextSeg and PRR allow.
func (c *Conn) sackOnAck(now time.Time, seg *Segment, acked int, dup bool) {
	delivered := c.delivered(acked)
	if acked > 0 {
		c.snd.dupAcks = 0 // RFC 6675 section 5: a cumulative ACK resets DupAcks
	} else if dup {
		c.snd.dupAcks++
		c.cold().DupAcksIn++
	}
	if acked > 0 {
		c.snd.tlpRearm = true
	}
	rack := c.rackOn()
	if rack {
		c.rackOnAck(now, seg)
	}
	if c.snd.inRecovery {
		if seg.Ack.GreaterThanEq(c.snd.recover) {
			// RFC 6675 section 5 step (B)... once HighACK reaches
			// RecoveryPoint, recovery is over; RFC 6937: cwnd goes to
			// ssthresh (bounded by the pipe, RFC 6582 option 1).
			c.snd.inRecovery = false
			c.cc.OnRecoveryEnd(now, c.pipe())
			if !rack {
				return
			}
			c.rackRecoveryEnded()
			// RACK may have marked a segment above the recovery point
			// lost on this same ACK: a new recovery below, rather than
			// waiting for another ACK that may not come (mayRecover).
		} else {
			c.lr().rec.prrDelivered += delivered
			c.prr(delivered)
			return
		}
	} else if grow := c.growthOnAck(acked, delivered); grow > 0 {
		c.congestionOnAck(now, grow)
	}
	// RFC 6675 section 5 steps (2) and (3): DupThresh duplicates, or
	// IsLost(HighACK + 1); with RACK (RFC 8985 section 6.2), a segment
	// marked lost. And RFC 6582 section 4's guard (mayRecover).
	if c.snd.una == c.snd.max || !c.mayRecover() {
		return
	}
	if rack {
		if c.lr().txq.lostBytes == 0 {
			return
		}
	} else if c.snd.dupAcks < dupThresh && !c.lr().sb.isLost(c.snd.una, c.snd.una, c.mss) {
		return
	}
	c.enterSACKRecovery(now, delivered)
}

// growthOnAck is how many bytes of an ACK outside recovery grow cwnd.
// RFC 5681 section 3.1 grows it on ACKs that acknowledge new data
// cumulatively, by the bytes acknowledged (RFC 3465 section 2; the
// controller's slow start takes them all, slowStartGrowth in cc.go, with
// no per-ACK limit L). Once RACK has seen the path reorder (RFC
// 8985 section 6.2 step 3), it grows by the bytes each ACK delivered,
// SACKed ones included (RFC 6937's DeliveredData), as the pipe counts
// them out of the network (RFC 6675 section 4): a SACK acknowledges them
// (RFC 2018), one or two segments per ACK as in order. Counted only
// cumulatively, a segment held back by reordering kept the bytes SACKed
// above it from growing the window until the ACK that filled the hole,
// and that one, covering them all, grew it by L*SMSS at most while slow
// start had that limit per ACK: slow start with 5 %
// reordering grew about 1.3x per round trip instead of 2x, and 1 MiB took
// 0.92 s at 100 ms against 0.66 s on the clean path (virtual clock). Until
// reordering is seen, SACKs above a hole are the first sign of a loss,
// and the window waits (as RFC 5681 has it) rather than grow on them.
func (c *Conn) growthOnAck(acked, delivered int) int {
	if l := c.snd.loss; l != nil && l.rack.reordering && c.rackOn() {
		return delivered
	}
	return max(acked, 0)
}

// mayRecover is RFC 6582 section 4's guard on a new recovery: the
// cumulative ACK must cover more than the last recovery point, so that
// duplicate ACKs left over from the window the last recovery (or
// timeout) repaired start nothing. With RACK the evidence is not a count
// of duplicates but a segment marked lost, which RACK marks only when one
// sent after it was delivered a reordering window ago (RFC 8985 section
// 6.2 step 5), never for an old window's leftovers: once SND.UNA reaches
// the recovery point, every segment below it is acknowledged, and a
// marked one is a new loss. The segment at the recovery point itself,
// the first sent after the last recovery began, may then start one;
// without that it waited for the RTO, SACKed all around.
func (c *Conn) mayRecover() bool {
	if c.rackOn() {
		return c.snd.una.GreaterThanEq(c.snd.recover)
	}
	return c.snd.una.Sub(1).GreaterThanEq(c.snd.recover)
}

// enterSACKRecovery is RFC 6675 section 5 step (4) with RFC 6937's
// initialisation.
func (c *Conn) enterSACKRecovery(now time.Time, delivered int) {
	flight := int(c.snd.una.Size(c.snd.max))
	c.snd.inRecovery = true
	c.snd.recover = c.snd.max // RecoveryPoint = HighData
	c.startEpisode(false)
	c.cc.OnFastRetransmit(now, flight)
	if w, ok := c.cc.(sackEntrant); ok {
		w.sackRecoveryEntry()
	}
	c.lr().rec = sackRecovery{
		highRxt:      c.snd.una,
		recoverFS:    max(c.pipeAtEntry(), 1),
		prrDelivered: delivered,
	}
	c.cold().SACKRecoveries++
	c.cold().FastRetransmits++
	c.lr().rack.tlpActive = false
	c.tm.tlp = time.Time{}
	c.prr(delivered)
	// RFC 6675 step (4.3) retransmits the first lost segment at once: PRR
	// lets at least that one go (RFC 6937 section 3, "fast retransmit").
	c.lr().rec.sndcnt = max(c.lr().rec.sndcnt, c.mss)
}

// sackEntrant is a controller whose OnFastRetransmit inflates cwnd for
// recovery without SACK (cc.go window): with SACK it sets cwnd =
// ssthresh instead (RFC 6675 section 5 step (4.2)).
type sackEntrant interface{ sackRecoveryEntry() }

// pipeAtEntry is RecoverFS: RFC 6937 uses the flight; the bytes SACKed
// before are not in the network and are left out.
func (c *Conn) pipeAtEntry() int {
	return int(c.snd.una.Size(c.snd.max)) - c.lr().sb.sacked
}

// prr sets what Proportional Rate Reduction (RFC 6937 section 3.1, with
// the Slow Start Reduction Bound) lets go on this ACK.
func (c *Conn) prr(delivered int) {
	r := &c.lr().rec
	pipe := c.pipe()
	ss := c.cc.SlowStartThreshold()
	var sndcnt int
	if pipe > ss {
		// Proportional part: CEIL(prr_delivered * ssthresh / RecoverFS) - prr_out.
		sndcnt = int((int64(r.prrDelivered)*int64(ss)+int64(r.recoverFS)-1)/int64(r.recoverFS)) - r.prrOut
	} else {
		// Slow start part, PRR-SSRB.
		limit := max(r.prrDelivered-r.prrOut, delivered) + c.mss
		sndcnt = min(ss-pipe, limit)
	}
	r.sndcnt = max(sndcnt, 0)
}

// recoverySend sends one segment in SACK recovery if PRR allows and NextSeg
// (RFC 6675 section 4) finds one, and reports whether it did.
func (c *Conn) recoverySend(now time.Time) bool {
	r := &c.lr().rec
	if _, ok := c.cc.(AckObserver); ok {
		// The controller sets cwnd through recovery itself (BBR): send
		// what it leaves above the pipe, instead of PRR's share.
		r.sndcnt = max(c.cc.Window()-c.pipe(), 0)
	}
	if r.sndcnt <= 0 {
		return false
	}
	seq, n, rule := c.nextSeg()
	switch rule {
	case 0:
		return false
	case 2:
		// New data: the ordinary path, within the receive window.
		if r.sndcnt < min(c.mss, c.unsent()) {
			return false
		}
		before := c.snd.max
		if !c.sendOneSegment(now) {
			return false
		}
		sent := int(before.Size(c.snd.max))
		r.prrOut += sent
		r.sndcnt -= sent
		return true
	}
	if r.sndcnt < n && r.prrOut > 0 {
		return false
	}
	sent := c.sendRange(now, seq, n)
	if sent == 0 {
		return false
	}
	if seq == c.snd.una {
		// The oldest data goes out again: the retransmission timer, which
		// guards it (RFC 6298 section 5), runs from now, as Linux re-arms
		// it when it resends the head. When RACK finds a retransmission
		// lost (RFC 8985 section 6.2) and resends it, finding and resending
		// took two round trips and more, past an RTO of about one RTT
		// plus its variation: without this a lost retransmission ended in
		// a timeout however quickly RACK saw it.
		c.armRTX(now)
	}
	switch rule {
	case 1, 3:
		r.highRxt = seq.Add(seqnum.Size(sent))
	case 4:
		r.rescueRxt, r.rescued = c.snd.recover, true
		c.cold().RescueRetrans++
	}
	r.prrOut += sent
	r.sndcnt -= sent
	return true
}

// unsent is how many bytes of data are queued and never sent.
func (c *Conn) unsent() int {
	return max(c.snd.buf.len()-int(c.snd.bufStart.Size(c.snd.max)), 0)
}

// nextSeg is RFC 6675 section 4's NextSeg: the first lost hole above
// HighRxt (rule 1), else new data (rule 2), else a hole below the highest
// SACKed byte (rule 3), else the rescue retransmission (rule 4). It
// returns the rule, 0 for none.
func (c *Conn) nextSeg() (seq seqnum.Value, n int, rule int) {
	if c.rackOn() {
		return c.rackNextSeg()
	}
	r := &c.lr().rec
	una, hi := c.snd.una, c.snd.max
	from := seqnum.Max(r.highRxt, una)
	lost := c.lostBelow()
	highSACK := c.lr().sb.highest(una)
	// Rule 1: S2 > HighRxt, below the highest SACKed byte, IsLost(S2).
	if s, e := c.lr().sb.nextHole(from, hi); s.LessThan(lost) && s.LessThan(highSACK) {
		return s, int(s.Size(seqnum.Min(e, s.Add(seqnum.Size(c.mss))))), 1
	}
	// Rule 2: new data, if the receive window has room.
	if c.unsent() > 0 || c.snd.finQueued && !c.finSent() {
		if int64(una.Size(hi)) < int64(c.snd.wnd) {
			return hi, 0, 2
		}
	}
	// Rule 3: a hole above HighRxt below the highest SACKed byte, lost or not.
	if s, e := c.lr().sb.nextHole(from, hi); s.LessThan(highSACK) {
		return s, int(s.Size(seqnum.Min(e, s.Add(seqnum.Size(c.mss))))), 3
	}
	// Rule 4: the rescue retransmission, once per recovery window: the
	// segment holding the highest byte not SACKed.
	if !r.rescued || una.GreaterThan(r.rescueRxt) {
		top := hi
		if r := c.lr().sb.r; !highSACK.LessThan(hi) && len(r) > 0 {
			top = r[len(r)-1].start
		}
		start := seqnum.Max(una, top.Sub(seqnum.Size(c.mss)))
		// Not when that byte was already resent by rule 1 or 3.
		if s, e := c.lr().sb.nextHole(start, top); s.LessThan(e) && e.GreaterThan(r.highRxt) {
			return s, int(s.Size(e)), 4
		}
	}
	return 0, 0, 0
}

// rackNextSeg is NextSeg with RACK deciding what is lost (RFC 8985
// section 6: RACK replaces IsLost): the first segment marked lost, else
// new data. Holes not yet known lost wait for RACK or the TLP rather than
// being resent on a guess (rules 3 and 4), which is what makes reordering
// cheap.
func (c *Conn) rackNextSeg() (seq seqnum.Value, n int, rule int) {
	q := &c.lr().txq
	if q.lostBytes > 0 {
		for i := 0; i < q.n; i++ {
			s := q.at(i)
			if s.has(txLost) && !s.has(txSACKed) {
				return s.start, int(s.start.Size(s.end)), 1
			}
		}
	}
	if c.unsent() > 0 || c.snd.finQueued && !c.finSent() {
		if int64(c.snd.una.Size(c.snd.max)) < int64(c.snd.wnd) {
			return c.snd.max, 0, 2
		}
	}
	return 0, 0, 0
}

// sendRange retransmits [seq, seq+n): data, and the FIN when the range
// covers its sequence number. It returns the sequence space sent.
func (c *Conn) sendRange(now time.Time, seq seqnum.Value, n int) int {
	if seq.LessThan(c.snd.bufStart) {
		return 0
	}
	off := int(c.snd.bufStart.Size(seq))
	data := min(n, c.snd.buf.len()-off, c.mss)
	if data < 0 {
		data = 0
	}
	fin := c.snd.finQueued && seq.Add(seqnum.Size(data)) == c.finSeq() && n > data
	if data == 0 && !fin {
		return 0
	}
	s := c.dataSegment(now, seq, off, data, fin, data == c.snd.buf.len()-off)
	c.noteRetransmission(s, data)
	c.txSent(seq, seq.Add(s.Len()), now, c.snd.max)
	c.stats.BytesSent += uint64(data)
	c.tm.persist = time.Time{}
	c.emit(s)
	return int(s.Len())
}

// noteRetransmission is the bookkeeping of every segment sent again.
func (c *Conn) noteRetransmission(s *Segment, n int) {
	// Karn's rule (RFC 6298 section 3) for fast retransmit and
	// go-back-N as well as timeouts: the ACK that follows cannot say
	// which transmission it answers, so the timed segment gives no
	// sample.
	c.snd.rttTiming = false
	c.cold().Retransmits++
	if n > 0 {
		c.cold().BytesRetrans += uint64(n)
	}
	c.stampRetransmission(s)
	c.episodeRetransmit(s)
}

package tcp

import (
	"time"

	"github.com/synack/synack/seqnum"
)

// This file detects spurious retransmissions and undoes the window
// reduction they caused: with timestamps by the Eifel algorithm (RFC 3522
// for fast retransmits, RFC 4015 for timeouts), with D-SACK by RFC 3708.

// undoEpisode is one loss episode: a fast recovery or a run of timeouts,
// and the window before it.
type undoEpisode struct {
	active         bool
	timeout        bool // started by a retransmission timeout
	cwnd, ssthresh int  // before the reduction
	end            seqnum.Value
	// The first retransmission: its sequence number and TSval, which the
	// ACK that covers it echoes back (RFC 3522 section 3.2, RetransmitTS).
	firstSeq  seqnum.Value
	tsval     uint32
	tsSet     bool
	eifelDone bool
	retrans   int // retransmissions of data below end
	dsacked   int // of them, D-SACKed (RFC 3708)
	// What the episode resent, merged where it touches: a D-SACK counts
	// only when it names bytes resent in the episode, not a retransmission
	// from before it (a Tail Loss Probe, an earlier episode) whose D-SACK
	// arrives late. Fixed in size; an episode that resends more scattered
	// ranges than it holds is not undone by D-SACKs (untracked), only by
	// timestamps.
	rtx       [4]sackRange
	nrtx      int
	untracked bool
}

// noteResent records [start, end) as resent in the episode.
func (u *undoEpisode) noteResent(start, end seqnum.Value) {
	for i := range u.nrtx {
		r := &u.rtx[i]
		if start.LessThanEq(r.end) && r.start.LessThanEq(end) {
			r.start, r.end = seqnum.Min(r.start, start), seqnum.Max(r.end, end)
			return
		}
	}
	if u.nrtx == len(u.rtx) {
		u.untracked = true
		return
	}
	u.rtx[u.nrtx] = sackRange{start, end}
	u.nrtx++
}

// resent reports whether the episode resent all of [start, end).
func (u *undoEpisode) resent(start, end seqnum.Value) bool {
	for _, r := range u.rtx[:u.nrtx] {
		if r.start.LessThanEq(start) && end.LessThanEq(r.end) {
			return true
		}
	}
	return false
}

// startEpisode notes the window before a reduction; the caller reduces it
// next.
func (c *Conn) startEpisode(timeout bool) {
	c.ecnWindowReduced() // a reduction for loss is answered with CWR too (RFC 3168 6.1.2)
	if u := &c.lr().undo; u.active && timeout && u.timeout && c.snd.una.LessThan(u.end) {
		return // a further timeout of the same episode
	}
	c.lr().undo = undoEpisode{
		active: true, timeout: timeout,
		cwnd: c.cc.Window(), ssthresh: c.cc.SlowStartThreshold(),
		end: c.snd.max,
	}
}

// episodeRetransmit counts a retransmission of s for the episode.
func (c *Conn) episodeRetransmit(s *Segment) {
	u := &c.lr().undo
	if !u.active || !s.Seq.LessThan(u.end) {
		return
	}
	u.retrans++
	u.noteResent(s.Seq, s.Seq.Add(s.Len()))
	if !u.tsSet && s.Options.HasTimestamps {
		u.tsSet, u.tsval, u.firstSeq = true, s.Options.TSVal, s.Seq
	}
}

// checkSpurious looks at an acceptable ACK for proof that the episode's
// retransmissions were not needed.
func (c *Conn) checkSpurious(now time.Time, seg *Segment) {
	u := &c.lr().undo
	if !u.active || c.cc == nil {
		return
	}
	spurious := false
	// Eifel: the first ACK that covers the first retransmission echoes a
	// TSval older than it, so it answers the original transmission.
	if u.tsSet && !u.eifelDone && seg.Ack.GreaterThan(u.firstSeq) {
		u.eifelDone = true
		o := &seg.Options
		if c.tsOK && o.HasTimestamps && o.TSEcr != 0 && int32(o.TSEcr-u.tsval) < 0 {
			spurious = true
		}
	}
	// RFC 3708: every retransmission of the episode D-SACKed. Counted once
	// the recovery is over, as later retransmissions could still follow.
	if su := &c.lr().su; su.dsack && u.retrans > 0 && su.dsackEnd.LessThanEq(u.end) && u.resent(su.dsackStart, su.dsackEnd) {
		u.dsacked++
	}
	if u.retrans > 0 && u.dsacked >= u.retrans && !u.untracked && !c.snd.inRecovery {
		spurious = true
	}
	if spurious {
		c.undo(seg)
	}
}

// undo restores the window of before the episode (RFC 3522 section 3.2,
// RFC 4015 section 3.2, RFC 3708 section 4).
func (c *Conn) undo(seg *Segment) {
	u := &c.lr().undo
	u.active = false
	c.cold().SpuriousRetrans++
	if un, ok := c.cc.(Undoer); ok {
		un.Undo(u.cwnd, u.ssthresh)
		c.cold().Undos++
	}
	if c.snd.inRecovery {
		// Leave the recovery; a real loss found later may start another.
		c.snd.inRecovery = false
		c.snd.recover = seg.Ack.Sub(1)
		c.lr().rec = sackRecovery{}
	}
	if u.timeout {
		if c.snd.nxt.LessThan(c.snd.max) {
			// RFC 4015 section 3.2: after a spurious timeout, resume with
			// new data instead of going back over what the peer already
			// has.
			c.snd.nxt = c.snd.max
		}
		// The timeout set the recovery point to SND.MAX (RFC 6582
		// section 4) against the duplicate ACKs of the window it was to
		// resend; nothing is resent now, so a loss found from here on
		// may start a recovery, as after an undone fast recovery above.
		// Without this a segment RACK marked lost waited for a second
		// RTO, SACKed all around.
		c.snd.recover = seg.Ack.Sub(1)
	}
	if c.rackOn() {
		// A spurious retransmission is reordering, as a D-SACK would show
		// (RFC 8985 section 6.2 step 4 counts D-SACKs; timestamps tell
		// the same sooner). It is also what step 3 looks for, an
		// original segment delivered out of order, which step 3 cannot
		// see once the segment has been resent ("a self-reinforcing
		// drawback", step 4): without reordering_seen the window stays
		// 0 in recovery however far D-SACKs widened it, and each
		// reordered segment is resent again.
		c.rackDSACK()
		c.lr().rack.reordering = true
		// The window that marked the resent segment lost may have marked
		// others in the same ACK that PRR had not let go yet. They were
		// the episode's too: undone with it (RFC 3522 section 3.2 goes
		// back to the state before the episode), they are judged again
		// by RACK on this ACK with the widened window (RFC 8985 section
		// 6.2 step 5). Kept, each started a new recovery at once, a
		// reduction and a retransmission undone again an instant later.
		c.lr().txq.clearLost()
	}
}

// StackCounts are the events of one connection that the stack adds to
// its own counters (RFC 4022's RetransSegs, and Linux's TcpExt names where
// it has one). The stack takes them after every call into the connection
// (TakeCounts); the connection keeps what it handed out last.
type StackCounts struct {
	RetransSegs          uint64 // Stats.Retransmits
	TCPRcvQDrop          uint64 // Stats.MemoryDropped: text refused over the memory limit
	TCPSackRecovery      uint64 // Stats.SACKRecoveries
	TCPLossProbes        uint64 // Stats.TLPProbes
	TCPLossProbeRecovery uint64 // Stats.TLPRecoveries
	TCPDSACKRecv         uint64 // Stats.DSACKsIn
	TCPRACKLost          uint64 // Stats.RACKLosses
	TCPSpuriousRetrans   uint64 // Stats.SpuriousRetrans
	TCPLossUndo          uint64 // Stats.Undos
	TCPSACKReneging      uint64 // Stats.SACKReneging
	// ECN (RFC 3168, ecn.go).
	ECNNegotiated uint64 // 1 once the connection is synchronized with ECN in use
	CEReceived    uint64 // Stats.CEReceived
	ECEReceived   uint64 // Stats.ECEReceived
	CWRSent       uint64 // Stats.CWRSent

	BytesAcked    uint64 // Stats.BytesAcked: payload the peer acknowledged
	BytesReceived uint64 // Stats.BytesReceived: payload received in order
}

func (c *Conn) stackCounts() StackCounts {
	s := c.coldOrZero()
	return StackCounts{
		RetransSegs: s.Retransmits, TCPRcvQDrop: s.MemoryDropped,
		TCPSackRecovery: s.SACKRecoveries, TCPLossProbes: s.TLPProbes, TCPLossProbeRecovery: s.TLPRecoveries,
		TCPDSACKRecv: s.DSACKsIn, TCPRACKLost: s.RACKLosses, TCPSpuriousRetrans: s.SpuriousRetrans, TCPLossUndo: s.Undos,
		TCPSACKReneging: s.SACKReneging,
		ECNNegotiated:   c.ecnNegotiatedCount(),
		CEReceived:      s.CEReceived, ECEReceived: s.ECEReceived, CWRSent: s.CWRSent,

		BytesAcked: c.stats.BytesAcked, BytesReceived: c.stats.BytesReceived,
	}
}

// TakeCounts returns the events since its last call, and whether there
// were any.
func (c *Conn) TakeCounts() (StackCounts, bool) {
	now := c.stackCounts()
	var was StackCounts
	if c.reported != nil {
		was = *c.reported
	}
	if now == was {
		return StackCounts{}, false
	}
	if c.reported == nil {
		c.reported = c.spare.takeCounts()
	}
	*c.reported = now
	return StackCounts{
		RetransSegs:          now.RetransSegs - was.RetransSegs,
		TCPRcvQDrop:          now.TCPRcvQDrop - was.TCPRcvQDrop,
		TCPSackRecovery:      now.TCPSackRecovery - was.TCPSackRecovery,
		TCPLossProbes:        now.TCPLossProbes - was.TCPLossProbes,
		TCPLossProbeRecovery: now.TCPLossProbeRecovery - was.TCPLossProbeRecovery,
		TCPDSACKRecv:         now.TCPDSACKRecv - was.TCPDSACKRecv,
		TCPRACKLost:          now.TCPRACKLost - was.TCPRACKLost,
		TCPSpuriousRetrans:   now.TCPSpuriousRetrans - was.TCPSpuriousRetrans,
		TCPLossUndo:          now.TCPLossUndo - was.TCPLossUndo,
		TCPSACKReneging:      now.TCPSACKReneging - was.TCPSACKReneging,
		ECNNegotiated:        now.ECNNegotiated - was.ECNNegotiated,
		CEReceived:           now.CEReceived - was.CEReceived,
		ECEReceived:          now.ECEReceived - was.ECEReceived,
		CWRSent:              now.CWRSent - was.CWRSent,

		BytesAcked:    now.BytesAcked - was.BytesAcked,
		BytesReceived: now.BytesReceived - was.BytesReceived,
	}, true
}

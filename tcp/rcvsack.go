package tcp

import (
	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/wire"
)

// This file fills in the SACK blocks a receiver sends (RFC 2018 section
// 4): which islands of out-of-order data are reported, and in which
// order.

// fillSACK puts the SACK blocks into s, an ACK about to go out: a
// duplicate just received (D-SACK, RFC 2883), then the island holding the segment that triggered the ACK first, then the
// islands most recently reported, then the others, as many as fit beside
// the timestamps (RFC 2018 section 4: 4 blocks, or 3 with timestamps).
func (c *Conn) fillSACK(s *Segment) {
	limit := wire.MaxSACKBlocks
	if c.tsOK {
		limit = maxSACKBlocksTS
	}
	o := &s.Options
	if c.rcv.dsackSet {
		// RFC 2883 section 4: the duplicate first; the island holding
		// it, if any, comes next (touch made it the most recent).
		o.SACKBlocks[o.NumSACK] = c.rcv.dsack
		o.NumSACK++
		c.cold().DSACKsSent++
	}
	var blocks [wire.MaxSACKBlocks]span
	n := c.rcv.ooo.sackBlocks(blocks[:], limit-o.NumSACK)
	for _, sp := range blocks[:n] {
		sp = c.rcv.ooo.rel(sp)
		o.SACKBlocks[o.NumSACK] = wire.SACKBlock{
			Start: c.rcv.nxt.Add(seqnum.Size(sp.start)),
			End:   c.rcv.nxt.Add(seqnum.Size(sp.end)),
		}
		o.NumSACK++
	}
	if o.NumSACK > 0 {
		c.cold().SACKBlocksSent += uint64(o.NumSACK)
	}
}

// noteDuplicate records that [start, end) arrived again, for a D-SACK
// block in the next ACK, which goes out at once (RFC 2883 section 4: the
// first SACK block reports "the duplicate segment that triggers the
// acknowledgement"). Only with SACK in use: a D-SACK block is a SACK
// block, sent only to a peer that sent SACK-permitted (RFC 2883 section
// 4, RFC 2018 section 2). A later duplicate replaces an earlier one not
// yet reported: a D-SACK block reports only what came "in the most
// recent packet" (section 4 (1)). Not in TIME-WAIT: a connection there
// answers as the compact record that replaces it does (timewait.go),
// which keeps no SACK state.
func (c *Conn) noteDuplicate(start, end seqnum.Value) {
	if !c.sackOK || !start.LessThan(end) || c.state == TimeWait {
		return
	}
	c.rcv.dsack = wire.SACKBlock{Start: start, End: end}
	c.rcv.dsackSet = true
	c.rcv.ackPending, c.rcv.ackNow = true, true
}

// noteOldDuplicate is noteDuplicate for a segment the acceptability test
// dropped (RFC 9293 3.10.7.4, "first"): the part of its data before
// RCV.NXT was received already (RFC 2883 section 4.1.1).
func (c *Conn) noteOldDuplicate(seg *Segment) {
	if len(seg.Payload) == 0 || !seg.Seq.LessThan(c.rcv.nxt) {
		return
	}
	c.noteDuplicate(seg.Seq, seqnum.Min(seg.Seq.Add(seqnum.Size(len(seg.Payload))), c.rcv.nxt))
}

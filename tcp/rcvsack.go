package tcp

import (
	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/wire"
)

// This file fills in the SACK blocks a receiver sends (RFC 2018 section
// 4): which islands of out-of-order data are reported, and in which
// order.

// fillSACK puts the SACK blocks into s, an ACK about to go out: the
// island holding the segment that triggered the ACK first, then the
// islands most recently reported, then the others, as many as fit beside
// the timestamps (RFC 2018 section 4: 4 blocks, or 3 with timestamps).
func (c *Conn) fillSACK(s *Segment) {
	limit := wire.MaxSACKBlocks
	if c.tsOK {
		limit = maxSACKBlocksTS
	}
	o := &s.Options
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
	c.stats.SACKBlocksSent += uint64(o.NumSACK)
}

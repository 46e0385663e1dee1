package tcp

// This file is the sender's SACK-based loss recovery: the scoreboard fed
// by each ACK (RFC 6675 section 4, RFC 2018, RFC 2883).

// sackUpdate feeds the SACK blocks of an acceptable ACK to the scoreboard
// (RFC 6675 section 4, "Update()"), once SND.UNA has been computed.
func (c *Conn) sackUpdate(seg *Segment) {
	c.snd.su = sackUpdate{}
	if !c.sackOK {
		return
	}
	una := c.snd.una
	if seg.Ack.GreaterThan(una) {
		una = seg.Ack
	}
	u := c.snd.sb.update(&seg.Options, seg.Ack, una, c.snd.max)
	c.snd.su = u
	c.stats.SACKBlocksIn += uint64(int(seg.Options.NumSACK) - u.bogus)
	c.stats.SACKBlocksBogus += uint64(u.bogus)
	if u.dsack {
		c.stats.DSACKsIn++
		c.stats.SACKBlocksIn--
	}
}

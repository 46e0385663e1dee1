package tcp

import (
	"time"

	"github.com/synack/synack/seqnum"
)

// This file is segmentation offload on the sending side (TSO, GSO): a
// connection whose link cuts large segments into MSS-sized ones itself
// (a TUN device with a virtio-net header, a NIC) hands the runtime one
// super-segment of several MSS instead of building, checksumming and
// writing each segment. The link's pieces are what the peer sees, so the
// sender keeps reckoning in them: the transmit queue (rack.go) holds one
// record per piece, with one transmit time for all, exactly as if the
// pieces had been sent one after another in the same instant; every
// retransmission is an ordinary segment of at most one MSS; SegsOut
// counts the pieces.
//
// A super-segment carries only new data that the ordinary rules would
// have sent at once as full segments: within the send window, cwnd and
// the pacing bucket's credit, never in loss recovery or Limited Transmit
// (RFC 6675 and PRR, RFC 3042 and RACK's TLP meter those segment by
// segment), never with a FIN, and never with CWR (RFC 3168 section 6.1.2
// sets it on one segment; keeping it alone spares the link the rule).

// SetSegmentOffload tells the connection that its link segments: it may
// emit super-segments (Segment.GSOSize) of up to maxPayload bytes of
// data. 0 or anything under two MSS turns it off: every segment is at
// most one MSS, as without it. The runtime calls it when the link is
// known (stack: when the connection is synchronized).
func (c *Conn) SetSegmentOffload(maxPayload int) {
	c.gsoMax = int32(min(max(maxPayload, 0), 1<<20))
}

// superSize is how many bytes of new data from send-buffer offset off the
// next segment may carry as a super-segment, when sendOneSegment has found
// a full segment's worth to send at SND.NXT: 0 for none (send one MSS).
// avail is the data queued from off, usable what the windows leave, and
// finPending whether our FIN waits after the data.
func (c *Conn) superSize(off, avail int, usable int64, finPending bool) int {
	mss := c.mss
	if int(c.gsoMax) < 2*mss || c.snd.nxt != c.snd.max || c.snd.inRecovery || c.snd.dupAcks > 0 ||
		c.snd.tlpSending || c.snd.override || c.ecn.cwr {
		return 0
	}
	room := c.paceRoom(int(min(int64(c.gsoMax), usable)))
	if finPending {
		// The FIN goes with the last data, in an ordinary segment.
		avail--
	}
	var size int
	switch {
	case avail <= room && c.nodelay && !finPending:
		// Everything queued, its short tail included: with Nagle off the
		// tail would follow the full segments at once (RFC 9293 3.7.4).
		size = avail
	default:
		size = min(avail, room) / mss * mss
	}
	if run := c.snd.buf.runAt(off); size > run {
		// The data wraps around the send buffer's end: a super-segment
		// stays a slice of the buffer (PayloadInSendBuffer), not a copy.
		size = run / mss * mss
	}
	if size <= mss {
		return 0
	}
	return size
}

// txSentPieces records a super-segment s of new data, sent at now, in the
// transmit queue as the MSS-sized segments the link cuts it into, each as
// if sent on its own, so that RACK, the delivery-rate samples, the TLP and
// the scoreboard see what the peer sees.
func (c *Conn) txSentPieces(s *Segment, now time.Time) {
	end := s.Seq.Add(s.Len())
	step := seqnum.Size(s.GSOSize)
	for p := s.Seq; p.LessThan(end); p = p.Add(step) {
		e := p.Add(step)
		if end.LessThan(e) {
			e = end
		}
		c.txSent(p, e, now, p)
	}
}

package tcp

import "time"

// Receive batches: one ACK for the in-order data of segments that arrived
// together.
//
// A link hands packets over in batches (a TUN read loop until EAGAIN, an
// in-memory link's queue, a WireGuard device's decrypted batch), and the
// runtime processes a batch in one pass. Acknowledging every second
// full-sized segment inside such a pass sends ACKs that are stale before
// they leave: the next one, built a few microseconds later in the same
// pass, acknowledges everything they do and more. Linux acknowledges once
// per GRO super-packet (its ACK check runs once per merged skb), and
// gVisor once per batch of queued segments; on a tunnel every ACK costs
// an encryption and a decryption.
//
// Between BeginBatch and EndBatch the ACK that RFC 9293 3.8.6.3 (SHLD-19)
// and RFC 5681 section 4.2 ask for "at least every second full-sized
// segment" waits for EndBatch, which sends it when it is still owed. This
// is a stretch ACK, which RFC 5681 section 4.2 asks to use only "after
// careful consideration of the implications" (RFC 2525 section 2.13): the
// implications it names are a slower ACK clock and slower window growth
// at a sender that counts ACKs. They are bounded here:
//
//   - the ACK is not delayed in time: it leaves when the pass over the
//     batch ends, which is when the per-segment ACKs would have been
//     written to the link anyway (the runtime flushes once per batch);
//   - batchACKLimit caps how much one ACK covers, so a large batch still
//     gets an ACK every few full-sized segments;
//   - every ACK RFC 5681 4.2 wants immediate stays immediate, per
//     segment: duplicate ACKs for out-of-order data (with their SACK
//     blocks), the ACK of data that fills a hole, the ACK of a duplicate
//     (D-SACK), of a FIN, of data beyond the window, the ECN echo changes
//     of ecn.go, and quick-ACK mode (Config.QuickACKs), which exists so
//     that a sender in slow start gets every ACK.
//
// A connection that sends data during the batch carries the ACK on it
// (noteAckSent), and EndBatch then has nothing left to send.

// batchACKSegments bounds the in-order data one ACK covers within a
// batch: 16 full-sized segments, Linux's quick-ACK count (23 KB at an
// Ethernet MSS, 1 MiB at the 65,483 of a 64 KiB-MTU link).
//
// It is counted in segments, not bytes. A byte bound such as one GRO
// super-packet's 64 KiB holds a single segment at MSS 65,483, so the
// floor of two segments was the whole cap there and a batch acknowledged
// every second segment as if there were no batch (2.2 segments per ACK
// in the bulk65535 bench; gVisor 11-15). What the cap is for, a sender
// that counts ACKs still getting a few per batch, is a matter of
// segments at any MSS; RFC 5681 section 4.2 states the bound in
// full-sized segments too.
const batchACKSegments = 16

// batchACKLimit is how many unacknowledged in-order bytes make an ACK go
// out at once even within a batch: batchACKSegments full-sized segments
// (never less than the two segments of RFC 9293 3.8.6.3, the bound
// outside a batch).
func (c *Conn) batchACKLimit() int {
	return batchACKSegments * c.mss
}

// BeginBatch tells the connection that the segments handed to
// HandleSegment until EndBatch arrived together, in one batch from the
// link: the ACK for every second full-sized segment of in-order data may
// wait for EndBatch (see above). It sends nothing and changes no state a
// caller sees; the caller must call EndBatch before it next lets time
// pass.
func (c *Conn) BeginBatch() { c.rcv.batching = true }

// EndBatch ends the batch BeginBatch began, at now (the time the batch was
// processed at), and sends the ACK its in-order data is owed: the one
// HandleSegment would have sent for the last two full-sized segments, if
// no later segment of ours carried it. Less than two full-sized segments
// left unacknowledged wait for the delayed-ACK timer, as without a batch.
func (c *Conn) EndBatch(now time.Time) {
	if !c.rcv.batching {
		return
	}
	c.rcv.batching = false
	if !c.rcv.ackPending || c.rcv.unackedBytes == 0 || c.rcv.unackedBytes < 2*c.mss || c.state == Closed || c.state == TimeWait {
		return
	}
	c.stats.BatchACKsSent++
	c.rcv.ackNow = true
	c.output(now)
}

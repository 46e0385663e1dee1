package tcp

import (
	"net/netip"
	"time"

	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/wire"
)

// This file lets a stack keep a connection in TIME-WAIT without its TCB.
// RFC 9293 keeps the TCB for 2*MSL only so that a retransmitted FIN can be
// acknowledged again and old duplicates are kept out of a new incarnation
// (section 3.6.1); that needs a few sequence numbers, not the 1.2 KB of a
// Conn. A TimeWaitRecord is those few (104 bytes on 64-bit platforms). It
// answers segments exactly as a Conn in TIME-WAIT does (segmentSynchronized
// restricted to that state: RFC 1337, PAWS, the acceptability test, SYN,
// ACK, a retransmitted FIN) and carries what reopening the 4-tuple
// (RFC 6191) and reusing it for an active open need. In the style of
// Handshake (handshake.go), the record for SYN-RECEIVED.

// TimeWaitRecord is a connection in TIME-WAIT without its TCB: its 4-tuple, the
// last sequence numbers of both directions, the timestamp state (RFC
// 7323), the window it advertises and the 2MSL deadline. It is a value:
// keep it in a table, copy it, hand its pointer to HandleSegment.
type TimeWaitRecord struct {
	cfg *Config // MSL, RFC793SYN, ChallengeACKLimit, NoTimestamps, ReceiveBufferSize

	expiry  int64 // Unix nanoseconds of the 2MSL deadline
	tsBase  int64 // our TSval is (now - tsBase) in milliseconds (Unix ns): the Conn's epoch less its offset
	chStart int64 // Unix nanoseconds of the current challenge ACK budget; 0: none yet

	// The 4-tuple's addresses as 16 bytes each (twLocal4, twRemote4 say
	// which are IPv4); zones are not kept, the stack's tuples have none.
	local, remote [16]byte

	sndNxt   seqnum.Value // SND.NXT (= SND.UNA: our FIN is acknowledged)
	rcvNxt   seqnum.Value // RCV.NXT, past the peer's FIN
	tsRecent uint32       // TS.Recent
	maxWnd   uint32       // the largest window the peer offered (RFC 5961 5.2)
	wl1      seqnum.Value // SND.WL1: which segments may still update maxWnd
	advEdge  seqnum.Value // right edge of the window last advertised

	lport, rport uint16
	chCount      uint16 // challenge ACKs sent in the budget starting at chStart
	step         uint16 // receiver-side SWS step: min(buffer/2, MSS) (windowField)
	sndWScale    uint8  // the peer's window shift
	rcvWScale    uint8  // ours
	flags        uint8  // twTimestamps, twLocal4, twRemote4
}

const (
	twTimestamps = 1 << iota // timestamps in use (RFC 7323 section 3)
	twLocal4                 // the local address is IPv4
	twRemote4                // the remote address is IPv4
)

// TimeWaitRecord returns the record of a connection in TIME-WAIT, to be
// kept instead of the connection. The connection's owner must be done with
// it: its receive buffer empty (Readable() == 0), since a record holds no
// data.
func (c *Conn) TimeWaitRecord() TimeWaitRecord {
	tw := TimeWaitRecord{
		cfg:       c.cfg,
		local:     c.id.Local.Addr().As16(),
		remote:    c.id.Remote.Addr().As16(),
		lport:     c.id.Local.Port(),
		rport:     c.id.Remote.Port(),
		expiry:    c.tm.timewait.UnixNano(),
		tsBase:    c.tsEpoch.UnixNano() - int64(c.tsOffset)*int64(time.Millisecond),
		sndNxt:    c.snd.max,
		rcvNxt:    c.rcv.nxt,
		tsRecent:  c.tsRecent,
		maxWnd:    c.snd.maxWnd,
		wl1:       c.snd.wl1,
		advEdge:   c.rcv.advEdge,
		step:      uint16(min(c.cfg.receiveBufferSize()/2, c.mss, 0xFFFF)),
		sndWScale: c.snd.wscale,
		rcvWScale: c.rcv.wscale,
	}
	if c.tsOK {
		tw.flags |= twTimestamps
	}
	if c.id.Local.Addr().Is4() {
		tw.flags |= twLocal4
	}
	if c.id.Remote.Addr().Is4() {
		tw.flags |= twRemote4
	}
	if !c.challengeWindow.IsZero() {
		tw.chStart = c.challengeWindow.UnixNano()
		tw.chCount = uint16(min(c.challengeCount, 0xFFFF))
	}
	return tw
}

func twAddr(b [16]byte, is4 bool) netip.Addr {
	a := netip.AddrFrom16(b)
	if is4 {
		return a.Unmap()
	}
	return a
}

// ID returns the connection's 4-tuple.
func (tw *TimeWaitRecord) ID() Tuple {
	return Tuple{
		Local:  netip.AddrPortFrom(twAddr(tw.local, tw.flags&twLocal4 != 0), tw.lport),
		Remote: netip.AddrPortFrom(twAddr(tw.remote, tw.flags&twRemote4 != 0), tw.rport),
	}
}

// Expiry is the 2MSL deadline: at that time the connection is CLOSED
// ("2MSL timeout", RFC 9293 3.10.8). HandleSegment moves it when a
// retransmitted FIN restarts the timer.
func (tw *TimeWaitRecord) Expiry() time.Time { return time.Unix(0, tw.expiry) }

// Entered is when TIME-WAIT began, or was last restarted.
func (tw *TimeWaitRecord) Entered() time.Time { return time.Unix(0, tw.expiry-int64(2*tw.cfg.msl())) }

func (tw *TimeWaitRecord) ts() bool { return tw.flags&twTimestamps != 0 }

// Timestamps reports whether the connection used timestamps.
func (tw *TimeWaitRecord) Timestamps() bool { return tw.ts() }

// TSVal is our timestamp clock at now, as the connection's was.
func (tw *TimeWaitRecord) TSVal(now time.Time) uint32 {
	return uint32((now.UnixNano() - tw.tsBase) / int64(time.Millisecond))
}

// NextISS proposes the ISS for a new incarnation of the 4-tuple, as
// Conn.NextISS does: beyond everything this one sent (RFC 1122 4.2.2.13).
func (tw *TimeWaitRecord) NextISS() seqnum.Value { return tw.sndNxt.Add(nextISSGap) }

// nextISSGap is how far beyond the old incarnation's SND.NXT the ISS of a
// new one on the same 4-tuple starts (RFC 1122 4.2.2.13): 128000, the ISS
// increment of 4.3BSD, clear of anything the old one had in flight.
const nextISSGap = 128000

// Reopen reports whether seg, a SYN for this 4-tuple, may start a new
// incarnation: the rule of Conn.TimeWaitReopen (RFC 9293 3.6.1 MAY-2,
// RFC 6191 section 2).
func (tw *TimeWaitRecord) Reopen(seg *Segment) bool {
	if seg.Flags&(wire.SYN|wire.ACK|wire.RST) != wire.SYN {
		return false
	}
	return timeWaitReopen(tw.ts(), tw.tsRecent, tw.rcvNxt, tw.cfg.NoTimestamps, seg)
}

// Reusable reports whether an active open may take over this 4-tuple now
// (like Linux's net.ipv4.tcp_tw_reuse): only when the connection used
// timestamps and has been in TIME-WAIT for at least after (Linux: a
// second), so that both sides' TSvals in the new incarnation are newer
// than anything of the old one and PAWS (RFC 7323 section 5) keeps the old
// one's duplicates out. Our clock ticks every millisecond; a second covers
// the slowest clock RFC 7323 (section 5.4) allows the peer. The new
// incarnation's ISS is NextISS.
func (tw *TimeWaitRecord) Reusable(now time.Time, after time.Duration) bool {
	return tw.ts() && now.UnixNano()-(tw.expiry-int64(2*tw.cfg.msl())) >= int64(max(after, time.Millisecond))
}

// Info is STATUS for the record: what a Conn in TIME-WAIT reports that
// the record still knows.
func (tw *TimeWaitRecord) Info() Info {
	return Info{
		State: TimeWait, Timestamps: tw.ts(), SndWScale: tw.sndWScale,
		SndUna: tw.sndNxt, SndNxt: tw.sndNxt, RcvNxt: tw.rcvNxt,
		RcvWnd: tw.cfg.receiveBufferSize(),
	}
}

// HandleSegment is SEGMENT ARRIVES (RFC 9293 3.10.7.4) for the record,
// exactly as a Conn in TIME-WAIT handles seg: segments to send go to send
// (valid for the call only). It reports true when the connection is CLOSED
// by it: a SYN with Config.RFC793SYN is answered with a reset ("rcv SYN").
// A retransmitted FIN restarts 2MSL (see Expiry).
//
// Whether a SYN reopens the 4-tuple is the caller's question, asked first
// (Reopen) when a listener could take it; a SYN handed here is one that
// does not, and gets what any synchronized state gives it.
func (tw *TimeWaitRecord) HandleSegment(now time.Time, seg *Segment, send func(*Segment)) (closed bool) {
	closed, _ = tw.HandleSegmentDrop(now, seg, send)
	return closed
}

// HandleSegmentDrop is HandleSegment that also says whether seg was
// dropped, and why (DropNone: it was taken). A record keeps no counters:
// the caller counts.
func (tw *TimeWaitRecord) HandleSegmentDrop(now time.Time, seg *Segment, send func(*Segment)) (closed bool, drop DropReason) {
	// First, check the sequence number, with what RFC 1337 (RSTs are
	// ignored in TIME-WAIT), PAWS, and the RST and SYN steps decide: the
	// check a Conn makes (checkSequence).
	k := seqCheck{
		rcvNxt: tw.rcvNxt, rcvWnd: seqnum.Size(max(tw.cfg.receiveBufferSize(), 1)),
		tsOK: tw.ts(), tsRecent: tw.tsRecent, timeWait: true,
		rfc793Reset: tw.cfg.RFC793Reset, rfc793SYN: tw.cfg.RFC793SYN,
	}
	v := checkSequence(&k, seg)
	if v.drop == DropOutOfWindow && seg.Flags&wire.FIN != 0 {
		tw.restart(now) // a retransmitted FIN restarts 2MSL
	}
	switch v.reply {
	case replyACK:
		tw.sendACK(now, send)
	case replyChallengeACK:
		tw.challengeACK(now, send) // RFC 5961 sections 4.2 and 7
	case replyReset:
		send(&Segment{Seq: tw.sndNxt, Flags: wire.RST})
		return true, v.drop
	}
	if v.drop != DropNone {
		return false, v.drop
	}
	// The window of the record is never zero (v.trim cannot be), and
	// every RST was dropped above.

	// Fifth, check the ACK field.
	if seg.Flags&wire.ACK == 0 {
		return false, DropNoACK
	}
	// Everything we sent is acknowledged (SND.UNA = SND.NXT): an ACK of
	// more, or one older than the largest window the peer offered
	// (RFC 5961 5.2), is answered with an ACK.
	if r := checkACK(seg.Ack, tw.sndNxt, tw.sndNxt, tw.maxWnd); r != DropNone {
		tw.sendACK(now, send)
		return false, r
	}
	// TS.Recent, only now that the segment and its ACK are acceptable
	// (RFC 7323 4.3, R3), as segmentACK does. Every ACK the record sends
	// acknowledges RCV.NXT, which is therefore also the last one sent.
	takeTSRecent(tw.ts(), &tw.tsRecent, seg, tw.rcvNxt)
	// The window update rule: it only matters for maxWnd now.
	if seg.Ack == tw.sndNxt && tw.wl1.LessThanEq(seg.Seq) {
		tw.maxWnd = max(tw.maxWnd, uint32(seg.Window)<<tw.sndWScale)
		tw.wl1 = seg.Seq
	}
	// Seventh and eighth: text is ignored after the peer's FIN; a FIN is
	// taken only at RCV.NXT (a second FIN, which is what a Conn does with
	// it) and restarts 2MSL; one beyond is only acknowledged.
	if seg.Flags&wire.FIN != 0 {
		finSeq := seg.Seq.Add(seqnum.Size(len(seg.Payload)))
		switch {
		case finSeq == tw.rcvNxt:
			tw.rcvNxt++
			tw.restart(now)
			tw.sendACK(now, send)
		case finSeq.GreaterThan(tw.rcvNxt):
			// A Conn also remembers it as an early FIN, to be taken
			// when RCV.NXT reaches it, which in TIME-WAIT only a third
			// FIN could do; the record does not.
			tw.sendACK(now, send)
		}
	}
	return false, DropNone
}

func (tw *TimeWaitRecord) restart(now time.Time) { tw.expiry = now.UnixNano() + int64(2*tw.cfg.msl()) }

// sendACK is Conn.sendACK: <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>.
func (tw *TimeWaitRecord) sendACK(now time.Time, send func(*Segment)) {
	s := Segment{Seq: tw.sndNxt, Ack: tw.rcvNxt, Flags: wire.ACK, Window: tw.windowField()}
	if edge := s.Ack.Add(seqnum.Size(uint32(s.Window) << tw.rcvWScale)); !edge.GreaterThan(tw.advEdge) || tw.advEdge.Size(edge) >= 1<<tw.rcvWScale {
		tw.advEdge = edge // a held edge rounded up stays itself (Conn.noteAckSent)
	}
	if tw.ts() {
		s.Options.HasTimestamps = true
		s.Options.TSVal = tw.TSVal(now)
		s.Options.TSEcr = tw.tsRecent
	}
	send(&s)
}

// windowField is Conn.windowField with the buffer empty: RCV.WND is the
// whole buffer, and the right edge only moves on by at least step
// (receiver-side silly window avoidance, RFC 9293 3.8.6.2.2).
func (tw *TimeWaitRecord) windowField() uint16 {
	size := seqnum.Size(tw.cfg.receiveBufferSize())
	edge := tw.rcvNxt.Add(size)
	adv := tw.advEdge
	if adv.GreaterThanEq(tw.rcvNxt) && tw.rcvNxt.Size(adv) <= size {
		if edge.LessThan(adv.Add(seqnum.Size(tw.step))) {
			edge = seqnum.Max(adv, tw.rcvNxt)
		}
	}
	wnd := uint32(tw.rcvNxt.Size(edge))
	f := wnd >> tw.rcvWScale
	if edge == tw.advEdge && f<<tw.rcvWScale < wnd {
		f++ // a held edge is rounded up, not back (Conn.windowField)
	}
	return uint16(min(f, 0xFFFF))
}

// challengeACK is Conn.challengeACK, with its limit (RFC 5961 section 7).
func (tw *TimeWaitRecord) challengeACK(now time.Time, send func(*Segment)) {
	t := now.UnixNano()
	if tw.chStart == 0 || t-tw.chStart >= int64(time.Second) {
		tw.chStart, tw.chCount = t, 0
	}
	if int(tw.chCount) >= min(tw.cfg.challengeACKLimit(), 0xFFFF) {
		return
	}
	tw.chCount++
	tw.sendACK(now, send)
}

// timeWaitReopen is the rule of Conn.TimeWaitReopen, shared with the
// record: tsOK and tsRecent are the old incarnation's, rcvNxt its RCV.NXT.
func timeWaitReopen(tsOK bool, tsRecent uint32, rcvNxt seqnum.Value, noTS bool, seg *Segment) bool {
	newTS := seg.Options.HasTimestamps && !noTS // the new incarnation would use them
	seqNewer := seg.Seq.GreaterThan(rcvNxt)
	if !tsOK {
		return newTS || seqNewer
	}
	if !newTS {
		return seqNewer
	}
	switch d := int32(seg.Options.TSVal - tsRecent); {
	case d > 0:
		return true
	case d == 0:
		return seqNewer
	}
	return false
}

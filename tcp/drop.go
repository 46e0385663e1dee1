package tcp

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/wire"
)

// This file names every segment the core discards (DESIGN: "every
// discarded segment has a named reason, counted and traceable"), and holds
// the first step of SEGMENT ARRIVES in the synchronized states, the
// sequence check of RFC 9293 3.10.7.4 with PAWS (RFC 7323 5.3) and the
// challenge ACKs of RFC 5961, once for a Conn and the TIME-WAIT record.
//
// A dropped segment may still be answered (an ACK, a challenge ACK, a
// reset) where the RFC says so; what makes it a drop is that nothing else
// of it is processed. A segment that is processed but whose text is partly
// or wholly ignored (a duplicate, data beyond the window, text after the
// peer's FIN) is not a drop.

// DropReason says why a segment was discarded. String gives a stable
// snake_case name for counters and traces.
type DropReason uint8

const (
	// DropNone: the segment was not dropped.
	DropNone DropReason = iota

	// DropClosed: the connection is CLOSED; everything is discarded and
	// anything but an RST answered with one (RFC 9293 3.10.7.1).
	DropClosed

	// DropListenRST: an RST in LISTEN is ignored (RFC 9293 3.10.7.2,
	// first).
	DropListenRST
	// DropListenACK: any ACK in LISTEN is bad, answered with
	// <SEQ=SEG.ACK><CTL=RST> (RFC 9293 3.10.7.2, second).
	DropListenACK
	// DropListenNoSYN: neither RST, ACK nor SYN in LISTEN (RFC 9293
	// 3.10.7.2, fourth: "drop the segment and return").
	DropListenNoSYN

	// DropSynSentBadACK: in SYN-SENT, an ACK outside ISS < SEG.ACK <=
	// SND.NXT, answered with a reset unless it is one (RFC 9293 3.10.7.3,
	// first).
	DropSynSentBadACK
	// DropSynSentRSTNoACK: an RST without an ACK in SYN-SENT (RFC 9293
	// 3.10.7.3, second; RFC 5961 3.2 keeps the test).
	DropSynSentRSTNoACK
	// DropSynSentNoSYN: neither SYN nor RST in SYN-SENT (RFC 9293
	// 3.10.7.3, fifth).
	DropSynSentNoSYN

	// DropSYNRetransmit: in SYN-RECEIVED, the peer's SYN again: our
	// SYN,ACK was lost and is sent again (RFC 9293 3.8.1's
	// retransmission; the sequence test would only send an ACK).
	DropSYNRetransmit
	// DropSynRecvBadACK: in SYN-RECEIVED, an ACK that is not of our SYN,
	// answered with <SEQ=SEG.ACK><CTL=RST> (RFC 9293 3.10.7.4, fifth).
	DropSynRecvBadACK
	// DropSynRecvSYN: an acceptable SYN in a passively opened SYN-RECEIVED:
	// the connection returns to LISTEN (RFC 9293 3.10.7.4, fourth).
	DropSynRecvSYN

	// DropTimeWaitRST: an RST in TIME-WAIT is ignored, so that an old
	// duplicate cannot cut 2MSL short (RFC 1337, "TIME-WAIT
	// assassination").
	DropTimeWaitRST
	// DropPAWS: a TSval older than TS.Recent, a duplicate from an earlier
	// wrap of the sequence space; answered with an ACK (RFC 7323 5.3,
	// R1). Linux: PAWSEstabRejected.
	DropPAWS
	// DropOutOfWindow: the segment fails the acceptability test and is
	// answered with an ACK (RFC 9293 3.10.7.4, first). Linux:
	// TCP_INVALID_SEQUENCE, OLD_DATA.
	DropOutOfWindow
	// DropRSTOutOfWindow: an unacceptable RST, dropped silently (RFC
	// 9293 3.10.7.4, first; RFC 5961 3.2).
	DropRSTOutOfWindow
	// DropRSTInWindowChallenge: an RST in the window but not at RCV.NXT,
	// answered with a challenge ACK (RFC 5961 3.2).
	DropRSTInWindowChallenge
	// DropSYNInWindowChallenge: a SYN in a synchronized state, answered
	// with a challenge ACK whatever its sequence number (RFC 5961 4.2).
	DropSYNInWindowChallenge
	// DropSYNInWindowReset: with Config.RFC793SYN, a SYN in the window
	// is an error: the connection is reset (RFC 793 3.9, RFC 9293
	// 3.10.7.4 fourth before RFC 5961).
	DropSYNInWindowReset
	// DropSYNBeforeWindow: with Config.RFC793SYN, a SYN before RCV.NXT,
	// an old duplicate whose later part reaches the window: only
	// acknowledged (RFC 9293 3.10.7.4, first, the trimming rule).
	DropSYNBeforeWindow

	// DropNoACK: a synchronized state and the ACK bit off (RFC 9293
	// 3.10.7.4, fifth: "drop the segment and return").
	DropNoACK
	// DropACKUnsent: SEG.ACK > SND.NXT acknowledges something not yet
	// sent: send an ACK, drop the segment (RFC 9293 3.10.7.4, fifth).
	// Linux: TCP_ACK_UNSENT_DATA.
	DropACKUnsent
	// DropACKTooOld: SEG.ACK older than SND.UNA less the largest window
	// the peer offered: answered with an ACK, dropped (RFC 5961 5.2).
	// Linux: TCP_TOO_OLD_ACK.
	DropACKTooOld

	// NumDropReasons is the number of DropReason values, DropNone
	// included: the length of a DropCounts.
	NumDropReasons
)

var dropNames = [NumDropReasons]string{
	DropNone:                 "none",
	DropClosed:               "closed",
	DropListenRST:            "listen_rst",
	DropListenACK:            "listen_ack",
	DropListenNoSYN:          "listen_no_syn",
	DropSynSentBadACK:        "syn_sent_bad_ack",
	DropSynSentRSTNoACK:      "syn_sent_rst_no_ack",
	DropSynSentNoSYN:         "syn_sent_no_syn",
	DropSYNRetransmit:        "syn_retransmit",
	DropSynRecvBadACK:        "syn_recv_bad_ack",
	DropSynRecvSYN:           "syn_recv_syn",
	DropTimeWaitRST:          "time_wait_rst",
	DropPAWS:                 "paws",
	DropOutOfWindow:          "out_of_window",
	DropRSTOutOfWindow:       "rst_out_of_window",
	DropRSTInWindowChallenge: "rst_in_window_challenge",
	DropSYNInWindowChallenge: "syn_in_window_challenge",
	DropSYNInWindowReset:     "syn_in_window_reset",
	DropSYNBeforeWindow:      "syn_before_window",
	DropNoACK:                "no_ack",
	DropACKUnsent:            "ack_unsent",
	DropACKTooOld:            "ack_too_old",
}

// String returns the reason's stable snake_case name ("paws",
// "out_of_window", ...).
func (r DropReason) String() string {
	if r < NumDropReasons {
		return dropNames[r]
	}
	return "unknown"
}

// ParseDropReason is the reason whose String is name.
func ParseDropReason(name string) (DropReason, bool) {
	for r, n := range dropNames {
		if n == name {
			return DropReason(r), true
		}
	}
	return DropNone, false
}

// DropReasons returns every reason but DropNone, in order.
func DropReasons() []DropReason {
	out := make([]DropReason, 0, NumDropReasons-1)
	for r := DropNone + 1; r < NumDropReasons; r++ {
		out = append(out, r)
	}
	return out
}

// DropCounts counts dropped segments by reason, indexed by DropReason.
type DropCounts [NumDropReasons]uint64

// Total is the number of drops of every reason.
func (d *DropCounts) Total() uint64 {
	var n uint64
	for _, v := range d {
		n += v
	}
	return n
}

// MarshalJSON writes the counts as an object by reason name, every reason
// but DropNone: {"closed":0,"listen_rst":0,...}.
func (d DropCounts) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	for r := DropNone + 1; r < NumDropReasons; r++ {
		if r > DropNone+1 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, dropNames[r]...)
		b = append(b, '"', ':')
		b = strconv.AppendUint(b, d[r], 10)
	}
	return append(b, '}'), nil
}

// UnmarshalJSON reads what MarshalJSON writes; names it does not know are
// ignored (a newer stack's reasons).
func (d *DropCounts) UnmarshalJSON(b []byte) error {
	var m map[string]uint64
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*d = DropCounts{}
	for name, v := range m {
		if r, ok := ParseDropReason(name); ok {
			d[r] = v
		}
	}
	return nil
}

// DropSink is a Sink that also hears of every segment the connection
// discards, with the reason, as it happens (the stack counts them and
// shows them in its trace). The core only reports: it never logs.
type DropSink interface {
	Sink
	SegmentDropped(c *Conn, seg *Segment, reason DropReason)
}

// drop is every discarding branch of SEGMENT ARRIVES: it counts seg under
// reason and reports it to the sink. What the RFC answers the segment
// with, if anything, is the caller's to send.
func (c *Conn) drop(seg *Segment, reason DropReason) {
	c.cold().Drops[reason]++
	if ds, ok := c.sink.(DropSink); ok {
		ds.SegmentDropped(c, seg, reason)
	}
}

// seqReply is what a segment the sequence check drops is answered with.
type seqReply uint8

const (
	replyNone         seqReply = iota
	replyACK                   // <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>
	replyChallengeACK          // the same, within the limit of RFC 5961 section 7
	replyReset                 // <SEQ=SND.NXT><CTL=RST>, and the connection is CLOSED
)

// seqCheck is what the sequence check needs of the receiving side: a
// Conn's or a TIME-WAIT record's.
type seqCheck struct {
	rcvNxt   seqnum.Value
	rcvWnd   seqnum.Size // RCV.WND as the acceptability test uses it
	tsOK     bool        // timestamps in use (RFC 7323 section 3)
	tsRecent uint32
	timeWait bool // RFC 1337: RSTs are ignored
	// The Config's pre-RFC 5961 switches.
	rfc793Reset, rfc793SYN bool
	// The sending side, for PAWS's exception of a reordered pure ACK
	// (disorderedACK); ackOK false (the TIME-WAIT record) makes none.
	ackOK     bool
	sndUna    seqnum.Value
	sndWnd    uint32 // SND.WND, scaled
	sndWScale uint8
	rto       time.Duration
}

// seqVerdict is the outcome of the sequence check.
type seqVerdict struct {
	drop  DropReason // DropNone: go on (an RST that remains resets)
	reply seqReply   // for a dropped segment
	// trim: the segment failed only for lack of window, at RCV.NXT; it
	// goes on for its ACK (and RST), its text, SYN and FIN dropped.
	trim bool
}

// checkSequence is the first step of SEGMENT ARRIVES in SYN-RECEIVED and
// the synchronized states (RFC 9293 3.10.7.4), with the decisions the
// RFCs make before the ACK is looked at:
//
//   - TIME-WAIT ignores RSTs (RFC 1337);
//   - PAWS (RFC 7323 5.3, R1): an older TSval than TS.Recent is a
//     duplicate, answered with an ACK; RSTs are exempt;
//   - the acceptability test of the four cases of 3.10.7.4 "first",
//     answered with an ACK unless the segment is an RST; with a zero
//     window a segment at RCV.NXT still has its ACK (and RST) processed;
//   - second, the RST bit: only one exactly at RCV.NXT resets; one
//     elsewhere in the window gets a challenge ACK (RFC 5961 3.2);
//   - fourth, the SYN bit: a challenge ACK whatever the sequence number
//     (RFC 5961 4.2), or with RFC793SYN a reset if in the window and an
//     ACK if before it.
//
// It changes nothing: the caller counts, answers and goes on.
func checkSequence(k *seqCheck, seg *Segment) seqVerdict {
	rst := seg.has(wire.RST)
	if k.timeWait && rst {
		return seqVerdict{drop: DropTimeWaitRST}
	}
	if k.tsOK && seg.Options.HasTimestamps && !rst && int32(seg.Options.TSVal-k.tsRecent) < 0 && !disorderedACK(k, seg) {
		return seqVerdict{drop: DropPAWS, reply: replyACK}
	}
	var v seqVerdict
	if !segAcceptable(seg.Seq, seg.Len(), k.rcvNxt, k.rcvWnd) {
		// Zero window: "special allowance should be made to accept
		// valid ACKs, URGs, and RSTs".
		if k.rcvWnd != 0 || seg.Seq != k.rcvNxt {
			if rst {
				return seqVerdict{drop: DropRSTOutOfWindow}
			}
			return seqVerdict{drop: DropOutOfWindow, reply: replyACK}
		}
		v.trim = true
	}
	if rst {
		if !k.rfc793Reset && seg.Seq != k.rcvNxt {
			return seqVerdict{drop: DropRSTInWindowChallenge, reply: replyChallengeACK}
		}
		return v
	}
	if seg.has(wire.SYN) && !v.trim {
		switch {
		case !k.rfc793SYN:
			return seqVerdict{drop: DropSYNInWindowChallenge, reply: replyChallengeACK}
		case seg.Seq.LessThan(k.rcvNxt):
			// RFC 793: a SYN in the window is an error. One before
			// RCV.NXT (an old duplicate whose later part reaches the
			// window) is not in it: trimmed, it is only acknowledged.
			return seqVerdict{drop: DropSYNBeforeWindow, reply: replyACK}
		default:
			return seqVerdict{drop: DropSYNInWindowReset, reply: replyReset}
		}
	}
	return v
}

// disorderedACK is the exception to PAWS for a pure ACK that only came
// late: ACKs overtake each other in the network, and the receiver's TSval
// grows from one to the next, so the older of two reordered duplicate
// ACKs fails RFC 7323 5.3's test although it is no old duplicate from an
// earlier wrap. Dropping it loses what it says (a duplicate ACK for fast
// retransmit, its SACK blocks, RFC 2018) and answers it with an ACK.
// Linux accepts such a "disordered ACK" (tcp_disordered_ack), and so do
// we, when nothing in it could do harm if it were a real old duplicate:
//   - it occupies no sequence space and sits exactly at RCV.NXT;
//   - it acknowledges exactly SND.UNA (a duplicate ACK: it moves nothing);
//   - its window is the one in force (no window update, which an old
//     segment must not make, RFC 9293 3.10.7.4 fifth);
//   - its TSval is behind TS.Recent by no more than the retransmission
//     timeout, taking the peer's clock as ticking in milliseconds (RFC
//     7323 section 5.4 recommends 1 ms to 1 s): a segment that old is
//     from this round of the sequence space, not a wrapped one.
//
// Its TSval is older than TS.Recent, so it leaves TS.Recent alone
// (takeTSRecent only moves forward).
func disorderedACK(k *seqCheck, seg *Segment) bool {
	if !k.ackOK || seg.Flags&(wire.SYN|wire.FIN|wire.RST|wire.ACK) != wire.ACK || len(seg.Payload) > 0 {
		return false
	}
	if seg.Seq != k.rcvNxt || seg.Ack != k.sndUna || uint32(seg.Window)<<k.sndWScale != k.sndWnd {
		return false
	}
	behind := k.tsRecent - seg.Options.TSVal // in the peer's ticks, assumed 1 ms
	return int64(behind) <= k.rto.Milliseconds()
}

// segAcceptable is the acceptability test of RFC 9293 3.10.7.4 ("first"):
// a segment of n sequence numbers at seq against the receive window of wnd
// at rcvNxt, in the RFC's four cases.
func segAcceptable(seq seqnum.Value, n seqnum.Size, rcvNxt seqnum.Value, wnd seqnum.Size) bool {
	switch {
	case n == 0 && wnd == 0:
		return seq == rcvNxt
	case n == 0:
		return seq.InWindow(rcvNxt, wnd)
	case wnd == 0:
		return false
	default:
		return seq.InWindow(rcvNxt, wnd) || seq.Add(n-1).InWindow(rcvNxt, wnd)
	}
}

// checkACK is the test of the fifth step of 3.10.7.4 on an ACK in a
// synchronized state: SEG.ACK beyond SND.NXT acknowledges something not
// yet sent; one older than SND.UNA less the largest window the peer
// offered cannot be from this connection's recent past (RFC 5961 5.2).
// Both are answered with an ACK and dropped. sndMax is the highest SND.NXT
// sent.
func checkACK(ack, sndUna, sndMax seqnum.Value, maxWnd uint32) DropReason {
	switch {
	case ack.GreaterThan(sndMax):
		return DropACKUnsent
	case ack.LessThan(sndUna.Sub(seqnum.Size(maxWnd))):
		return DropACKTooOld
	}
	return DropNone
}

// takeTSRecent moves TS.Recent to the segment's TSval when it is newer and
// the segment reaches the left edge of the window: SEG.SEQ <=
// Last.ACK.sent (RFC 7323 4.3, R3). Call it only for an acceptable
// segment whose ACK is acceptable, or a dropped segment's TSval would make
// the next valid one fail PAWS (issue 10).
func takeTSRecent(tsOK bool, tsRecent *uint32, seg *Segment, lastAckSent seqnum.Value) {
	if tsOK && seg.Options.HasTimestamps &&
		int32(seg.Options.TSVal-*tsRecent) >= 0 && seg.Seq.LessThanEq(lastAckSent) {
		*tsRecent = seg.Options.TSVal
	}
}

package tcp

import (
	"time"

	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/wire"
)

// This file lets a listener answer SYNs without a TCB per SYN. RFC 9293
// 3.10.7.2 makes a new TCB in SYN-RECEIVED for every SYN that reaches
// LISTEN; a TCB is over a kilobyte, and a SYN flood makes millions of them.
// A Handshake is the little a passive open needs between its SYN and the
// ACK that completes it (about 80 bytes). The listener keeps one per
// half-open connection (its SYN queue), or none at all when the ISS is a
// SYN cookie (syncookie.go) and the Handshake is rebuilt from the ACK. When
// a segment arrives for it, ResumeSynReceived makes the TCB that segmentListen
// and sendSYN would have made, and the segment is handed to it as usual, so
// everything after the SYN follows section 3.10.7.4 in one place.

// Handshake is a passive open in SYN-RECEIVED without its TCB: what the
// peer's SYN said (sequence number and options, negotiated against the
// Config) and what our SYN,ACK said.
type Handshake struct {
	ISS, IRS seqnum.Value

	// Sent is when the first SYN,ACK went out: the start of RTT timing and
	// of USER TIMEOUT. Zero for a SYN cookie (nobody remembers).
	Sent time.Time
	// TSEpoch and TSOffset are our timestamp clock: TSval is the
	// milliseconds since TSEpoch plus TSOffset (RFC 7323 section 5.4).
	// TSEpoch is tsClockEpoch for every handshake the package makes.
	TSEpoch  time.Time
	TSOffset uint32

	Window uint16 // the window of the peer's SYN (never scaled)

	PeerMSS uint16 // the peer's MSS option; 0 if it sent none
	// Options in use: each was offered by the peer and is allowed by the
	// Config (RFC 7323 sections 2 and 3, RFC 2018).
	WindowScale   bool
	PeerWScale    uint8 // the peer's shift when WindowScale (at most 14)
	SACKPermitted bool
	Timestamps    bool
	TSRecent      uint32 // the TSval of the peer's SYN
	// ECN: the peer's SYN asked for ECN and the Config agrees (RFC 3168
	// 6.1.1); the SYN,ACK says so with ECE.
	ECN bool

	Retransmits uint8 // SYN,ACKs sent again by timeout
}

// NewHandshake is LISTEN's "third, check for a SYN" (RFC 9293 3.10.7.2)
// for a listener that keeps no TCB per SYN: it chooses the ISS (cfg.ISN)
// and negotiates the options of seg. The caller sends SynAck.
func NewHandshake(cfg *Config, id Tuple, seg *Segment, now time.Time) Handshake {
	h := handshakeFromSYN(cfg, id, seg, now)
	h.ISS = cfg.isn().ISN(id, now)
	return h
}

func handshakeFromSYN(cfg *Config, id Tuple, seg *Segment, now time.Time) Handshake {
	h := Handshake{IRS: seg.Seq, Sent: now, TSEpoch: tsClockEpoch, Window: seg.Window}
	h.TSOffset = cfg.isn().TimestampOffset(id)
	o := &seg.Options
	if o.HasMSS && o.MSS > 0 {
		h.PeerMSS = o.MSS
	}
	if o.HasWindowScale && !cfg.NoWindowScale {
		// RFC 7323 section 2.3: a shift above 14 is taken as 14.
		h.WindowScale, h.PeerWScale = true, min(o.WindowScale, maxWindowShift)
	}
	h.SACKPermitted = o.SACKPermitted && !cfg.NoSACK
	if o.HasTimestamps && !cfg.NoTimestamps {
		h.Timestamps, h.TSRecent = true, o.TSVal
	}
	h.ECN = cfg.acceptsECN(seg)
	return h
}

// TSVal is our timestamp clock at now.
func (h *Handshake) TSVal(now time.Time) uint32 {
	return uint32(now.Sub(h.TSEpoch)/time.Millisecond) + h.TSOffset
}

// SynAck returns the SYN,ACK answering the SYN of h on id, the one a TCB
// in SYN-RECEIVED sends (sendSYN): <SEQ=ISS><ACK=IRS+1><CTL=SYN,ACK> with
// our MSS and the options the peer offered echoed (RFC 7323 2.2, 3.2;
// RFC 2018 2).
func (h *Handshake) SynAck(cfg *Config, id Tuple, now time.Time) Segment {
	probe := Conn{cfg: cfg, id: id} // only for its option helpers
	s := Segment{
		Seq: h.ISS, Ack: h.IRS + 1, Flags: wire.SYN | wire.ACK,
		// RFC 7323 section 2.2: the window in a SYN is never scaled.
		Window: uint16(min(cfg.receiveBufferSize(), 0xFFFF)),
	}
	o := &s.Options
	o.HasMSS, o.MSS = true, probe.ourMSS()
	if h.WindowScale {
		o.HasWindowScale, o.WindowScale = true, probe.ourWindowShift()
	}
	o.SACKPermitted = h.SACKPermitted
	if h.Timestamps {
		o.HasTimestamps, o.TSVal, o.TSEcr = true, h.TSVal(now), h.TSRecent
	}
	if h.ECN {
		s.Flags |= wire.ECE // an ECN-setup SYN,ACK (RFC 3168 6.1.1)
	}
	return s
}

// RetransmitAt is when the SYN,ACK of h is due again, after h.Retransmits
// retransmissions: the initial RTO doubled for each (RFC 6298 5.5, 5.7),
// within MaxRTO. It reports false when SynAckRetries are used up and the
// handshake is to be given up at that time instead.
func (h *Handshake) RetransmitAt(cfg *Config, last time.Time) (time.Time, bool) {
	var e rttEstimator
	e.init(cfg)
	return last.Add(e.withBackoff(int(h.Retransmits))), int(h.Retransmits) < cfg.synAckRetries()
}

// ResumeSynReceived makes the TCB of the passive open h, in SYN-RECEIVED,
// as segmentListen and sendSYN would have left it at now: sequence
// variables, negotiated options, timestamp clock, the SYN,ACK's RTT timing
// and retransmission count, and the retransmission timer. Feed it the
// segment that found h (HandleSegment); an ACK of the SYN,ACK takes it to
// ESTABLISHED with the usual checks of RFC 9293 3.10.7.4.
//
// It reports no transition: the caller reported CLOSED -> LISTEN ->
// SYN-RECEIVED for h when the SYN arrived (a SYN-queue entry) or reports it
// now (a SYN cookie, whose connection begins with the ACK). For a cookie,
// h.Sent is zero and the RTT is not timed.
func ResumeSynReceived(cfg *Config, id Tuple, sink Sink, h *Handshake, now time.Time) *Conn {
	c := NewConn(cfg, id, sink)
	c.resumeSynReceived(h, now)
	return c
}

// resumeSynReceived is ResumeSynReceived on c as NewConn returned it.
func (c *Conn) resumeSynReceived(h *Handshake, now time.Time) {
	cfg := c.cfg
	c.state = SynReceived
	c.passive = true
	c.haveSYN = true

	c.snd.iss = h.ISS
	c.snd.una = h.ISS
	c.snd.nxt = h.ISS + 1
	c.snd.max = h.ISS + 1
	c.snd.recover = h.ISS
	c.snd.bufStart = h.ISS + 1
	c.tsEpoch, c.tsOffset = h.TSEpoch, h.TSOffset
	c.rcv.irs = h.IRS
	c.rcv.nxt = h.IRS + 1
	c.rcv.wscale = c.ourWindowShift()

	var syn Segment
	syn.Seq = h.IRS
	syn.Window = h.Window
	o := &syn.Options
	o.HasMSS, o.MSS = h.PeerMSS != 0, h.PeerMSS
	o.HasWindowScale, o.WindowScale = h.WindowScale, h.PeerWScale
	o.SACKPermitted = h.SACKPermitted
	o.HasTimestamps, o.TSVal = h.Timestamps, h.TSRecent
	if h.ECN {
		syn.Flags |= wire.ECE | wire.CWR // the ECN-setup SYN it answered
	}
	c.negotiate(&syn)
	c.updateWindow(&syn, uint32(h.Window))

	// What sending the SYN,ACK (and its retransmissions) left behind.
	c.rcv.lastAckSent = c.rcv.nxt
	c.rcv.advEdge = c.rcv.nxt.Add(seqnum.Size(min(cfg.receiveBufferSize(), 0xFFFF)))
	c.snd.retransmits = int(h.Retransmits)
	c.rtt.backoff = int(h.Retransmits)
	c.stats.SegsIn = 1
	c.stats.SegsOut = 1 + uint64(h.Retransmits)
	if h.Retransmits > 0 {
		c.cold().Retransmits = uint64(h.Retransmits)
		c.cold().Timeouts = uint64(h.Retransmits)
		// Counted by the listener as they went out.
		c.reported = c.spare.takeCounts()
		c.reported.RetransSegs = uint64(h.Retransmits)
	}
	c.lastRecv = now
	if h.Sent.IsZero() {
		c.snd.stalled = now
	} else {
		c.snd.stalled = h.Sent
		if h.Retransmits == 0 {
			c.snd.rttTiming, c.snd.rttSeq, c.snd.rttTime = true, h.ISS, h.Sent
		} else if h.Timestamps {
			// The retransmission stamp (tsSample): the SYN,ACK was last
			// sent again when RetransmitAt said, or later.
			last := h.Sent
			for k := range int(h.Retransmits) {
				last = last.Add(c.rtt.withBackoff(k))
			}
			c.snd.rtxTSVal, c.snd.rtxStamped = h.TSVal(last), true
		}
	}
	c.armRTX(now)
}

// Info is STATUS for a handshake without a TCB: what a TCB in
// SYN-RECEIVED would report.
func (h *Handshake) Info(cfg *Config) Info {
	var e rttEstimator
	e.init(cfg)
	mss := int(h.PeerMSS)
	if mss == 0 {
		mss = defaultMSS4
	}
	return Info{
		State: SynReceived, RTO: e.withBackoff(int(h.Retransmits)), PeerMSS: mss, MSS: mss,
		SndWnd: int(h.Window), RcvWnd: cfg.receiveBufferSize(), SndWScale: h.PeerWScale,
		Timestamps: h.Timestamps, SACK: h.SACKPermitted, ECN: h.ECN, Unacked: 1,
		ISS: h.ISS, IRS: h.IRS, SndUna: h.ISS, SndNxt: h.ISS + 1, RcvNxt: h.IRS + 1,
		Backoff: int(h.Retransmits),
	}
}

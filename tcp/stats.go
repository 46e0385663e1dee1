package tcp

// The counters of a connection. Stats has some fifty of them (568 bytes),
// most of which move only when something goes wrong: a loss, a reset, a
// segment dropped, SACK, ECN. A connection keeps the few that every
// connection moves in the Conn (hotStats) and the whole Stats, for the
// rest, only once one of those first moves (cold): an idle or a clean
// short connection does without it, and tcp.Conn fits the allocator's
// 1536-byte size class rather than the 2048-byte one (issue 13 item 6,
// TestConnSizeClass).

// Stats are per-connection counters.
type Stats struct {
	SegsIn, SegsOut       uint64
	BytesSent             uint64 // payload bytes put on the wire, retransmissions included
	BytesRetrans          uint64
	BytesAcked            uint64
	BytesReceived         uint64 // in-order payload bytes taken into the receive buffer
	Retransmits           uint64 // segments retransmitted, by timeout or fast retransmit
	Timeouts              uint64
	FastRetransmits       uint64
	DupAcksIn             uint64
	OutOfOrderSegs        uint64
	OutOfOrderDropped     uint64 // out-of-order segments dropped: over OutOfOrderLimit, or too many islands
	OutOfOrderPruned      uint64 // out-of-order bytes given back: by Prune, or to make room nearer RCV.NXT
	MemoryDropped         uint64 // segments whose text was not taken: the stack was over its memory limit (memory.go)
	OrphanResets          uint64 // resets after Config.OrphanRetries (Linux: TCPAbortOnTimeout of an orphan)
	ChallengeACKs         uint64
	ChallengeACKsLimited  uint64
	InvalidACKsLimited    uint64 // ACKs not sent to unacceptable segments, Config.InvalidACKInterval (Linux: TCPACKSkippedSeq, ...PAWS)
	ZeroWindowProbes      uint64
	KeepAliveProbes       uint64
	PAWSRejected          uint64
	UnacceptableSegs      uint64
	RstsOut               uint64
	DataAfterCloseResets  uint64
	WindowUpdates         uint64
	ResetsReceived        uint64
	DelayedACKsSent       uint64
	BatchACKsSent         uint64 // ACKs sent by EndBatch for the in-order data of a receive batch (batch.go)
	SACKBlocksSent        uint64
	DSACKsSent            uint64 // ACKs whose first SACK block reported a duplicate (RFC 2883)
	SegmentsDroppedNoACK  uint64
	TimestampRTTSamples   uint64
	RetransmissionStalled uint64
	// Drops counts the segments this connection discarded, by reason
	// (drop.go). PAWSRejected and UnacceptableSegs above are
	// Drops[DropPAWS] and Drops[DropOutOfWindow] under their older names.
	Drops DropCounts

	// Sender-side loss recovery (scoreboard.go, recovery.go, rack.go,
	// undo.go).
	SACKBlocksIn    uint64 // SACK blocks received, D-SACKs and bogus ones aside (RFC 2018)
	SACKBlocksBogus uint64 // SACK blocks ignored: outside SND.UNA..SND.MAX
	DSACKsIn        uint64 // D-SACK blocks received (RFC 2883)
	SACKRecoveries  uint64 // RFC 6675 loss recovery episodes entered
	LimitedTransmit uint64 // new segments sent by Limited Transmit (RFC 3042)
	RescueRetrans   uint64 // RFC 6675 rescue retransmissions (NextSeg rule 4)
	SACKReneging    uint64 // ACKs showing the peer dropped data it had SACKed (RFC 2018 section 8; Linux: TCPSACKReneging)
	RACKLosses      uint64 // segments RACK marked lost (RFC 8985 section 6.2)
	TLPProbes       uint64 // Tail Loss Probes sent (RFC 8985 section 7.3)
	TLPRecoveries   uint64 // probes that repaired a lost tail (section 7.4)
	SpuriousRetrans uint64 // recoveries and timeouts found spurious (RFC 3522, 4015, 3708)
	Undos           uint64 // of those, the ones whose window reduction was undone

	// ECN (RFC 3168, ecn.go).
	CEReceived    uint64 // segments that arrived marked CE (Congestion Experienced)
	ECEReceived   uint64 // ACKs that arrived with ECE
	ECNReductions uint64 // window reductions in answer to them (at most one per window)
	CWRSent       uint64 // segments sent with CWR
}

// hotStats are the counters every connection moves, kept in the Conn;
// Stats has the same fields, which cold Stats leaves zero.
type hotStats struct {
	SegsIn, SegsOut     uint64
	BytesSent           uint64
	BytesAcked          uint64
	BytesReceived       uint64
	WindowUpdates       uint64
	DelayedACKsSent     uint64
	BatchACKsSent       uint64
	TimestampRTTSamples uint64
}

// cold returns the rest of the counters, making them on first use.
func (c *Conn) cold() *Stats {
	if c.more == nil {
		c.more = c.spare.takeStats()
	}
	return c.more
}

// noStats stands for the cold counters of a connection that has not made
// them: all zero. It is only read.
var noStats Stats

// coldOrZero returns the cold counters for reading, without making them.
func (c *Conn) coldOrZero() *Stats {
	if c.more != nil {
		return c.more
	}
	return &noStats
}

// Stats returns the connection's counters.
func (c *Conn) Stats() Stats {
	s := *c.coldOrZero()
	h := &c.stats
	s.SegsIn, s.SegsOut = h.SegsIn, h.SegsOut
	s.BytesSent, s.BytesAcked, s.BytesReceived = h.BytesSent, h.BytesAcked, h.BytesReceived
	s.WindowUpdates = h.WindowUpdates
	s.DelayedACKsSent, s.BatchACKsSent = h.DelayedACKsSent, h.BatchACKsSent
	s.TimestampRTTSamples = h.TimestampRTTSamples
	return s
}

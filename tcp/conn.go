// Package tcp is the TCP connection state machine of RFC 9293: a pure,
// deterministic transmission control block. It starts no goroutine, takes no
// lock, reads no clock and touches no socket: time comes in as an argument,
// segments and state changes go out through a Sink, and Deadline says when
// the connection next needs attention.
//
// The code follows RFC 9293 section 3.10, "Event Processing": the user
// calls are in user.go (OPEN, SEND, RECEIVE, CLOSE, ABORT, STATUS), SEGMENT
// ARRIVES is in input.go, in the RFC's order, and the timeouts are in
// timers.go.
package tcp

import (
	"time"

	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/wire"
)

// Sink receives what a connection emits. Calls happen synchronously inside
// the Conn method that caused them; a Sink must not call back into the
// same Conn.
type Sink interface {
	// SendSegment transmits seg. seg and its payload are valid only for the
	// call: the payload points into the send buffer.
	SendSegment(c *Conn, seg *Segment)
	// StateChanged reports a transition.
	StateChanged(c *Conn, t Transition)
}

// Transition is one state change of one connection: the one event type for
// it from the core through the stack and the admin server to the command
// line (DESIGN: "every state change is an event (connection, from, to,
// cause, time)").
type Transition struct {
	Time time.Time
	// ID is the connection's number in its stack, which tells incarnations
	// of a tuple apart. The core does not number connections: it leaves
	// ID zero and the stack fills it in.
	ID       uint64
	Tuple    Tuple // Local is this end; a listener's has a zero Remote
	From, To State
	Cause    Cause
}

// sender holds the send sequence variables of RFC 9293 section 3.3.1.
type sender struct {
	iss seqnum.Value // ISS
	una seqnum.Value // SND.UNA: oldest unacknowledged
	nxt seqnum.Value // SND.NXT: next to send (moves back on a timeout)
	max seqnum.Value // highest SND.NXT ever reached: the RFC's SND.NXT for acceptability tests
	wnd uint32       // SND.WND, scaled
	wl1 seqnum.Value // SND.WL1: segment sequence number of the last window update
	wl2 seqnum.Value // SND.WL2: segment acknowledgment number of the last window update

	maxWnd uint32 // the largest window the peer ever offered (RFC 9293 3.8.6.2.1, RFC 5961 5.2)

	buf      ring         // bytes from bufStart on: unacknowledged and unsent data
	bufStart seqnum.Value // sequence number of buf's first byte

	finQueued bool // the user called CLOSE: a FIN follows the data

	wscale uint8 // Snd.Wind.Shift of RFC 7323: the peer's window is shifted by this

	// Loss recovery (RFC 5681 section 3.2, RFC 6582).
	dupAcks    int
	inRecovery bool
	recover    seqnum.Value

	// loss is the loss-recovery state, made on first use (Conn.lr): a
	// connection that never sends data (most idle ones) does without its
	// 440 bytes (issue 13 item 4).
	loss       *lossState
	tlpSending bool // the TLP sends one new segment whatever cwnd says
	tlpRearm   bool // new data went out or SND.UNA advanced: restart the PTO

	// RTT timing without timestamps: one segment at a time (RFC 6298 3).
	rttSeq    seqnum.Value
	rttTime   time.Time
	rttTiming bool

	retransmits int // consecutive timeouts of the oldest segment

	// The retransmission stamp: the TSval of the latest retransmission,
	// while anything sent before it may still be acknowledged
	// (rtxStamped). An echo older than it cannot time that transmission
	// (rttEstimator.tsSample).
	rtxTSVal   uint32
	rtxStamped bool
	// orphanRetries counts retransmission timeouts and zero-window
	// probes since the owner closed the connection (Release) or since
	// the peer last acknowledged new data, whichever is later: the
	// budget of Config.OrphanRetries.
	orphanRetries int

	// Persist timer (RFC 9293 3.8.6.1): probes sent into the present zero
	// window, and those the peer left unanswered.
	probes, unansweredProbes int
	override                 bool // sendOneSegment: the SWS override timeout expired
	// stalled is since when the oldest unacknowledged data has waited
	// for an acknowledgment: set when data goes out into an empty flight
	// and whenever SND.UNA advances. USER TIMEOUT counts from it.
	stalled time.Time
}

// lossState is the sender's loss-recovery state (sender.loss).
type lossState struct {
	// sb is the SACK scoreboard (RFC 6675 section 4); su what the latest
	// ACK's SACK option told it.
	sb scoreboard
	su sackUpdate
	// rec is RFC 6675 loss recovery with PRR (recovery.go), used instead
	// of NewReno's when the peer sends SACK.
	rec sackRecovery
	// txq times every segment in flight and rack is RACK-TLP (rack.go).
	txq  txQueue
	rack rack
	// undo is the loss episode spurious retransmissions are checked in
	// (undo.go).
	undo undoEpisode
}

// lr returns the loss-recovery state, making it on first use.
func (c *Conn) lr() *lossState {
	if c.snd.loss == nil {
		c.snd.loss = c.spare.takeLoss()
		// As the ACK of an empty transmit queue leaves it (txAcked).
		c.snd.loss.txq.highRtxEnd = c.snd.una
	}
	return c.snd.loss
}

// rateState is what a connection measures of its delivery and spends on
// pacing. Like the loss state it is made on first use, so an idle
// connection does not carry its 450 bytes (tcp.Conn stays within the
// allocator's 2 KB size class, TestConnSizeClass).
type rateState struct {
	rs   rateSampler   // delivery-rate estimation (rate.go)
	dr   deliveryRound // the coarse rate without SACK (ccreg.go)
	pace pacer         // pacing (pacing.go)
}

// rates returns the rate state, making it on first use. A new sampler
// starts app-limited (the draft's C.app_limited set by the check that runs
// once nothing is in flight): nothing has been sent to measure yet.
func (c *Conn) rates() *rateState {
	if c.rt == nil {
		c.rt = c.spare.takeRates()
		c.rt.rs.appLimited = 1
	}
	return c.rt
}

// sackedBytes and lostBytes read the loss state without making it: while
// none is made, nothing is SACKed or marked lost.
func (c *Conn) sackedBytes() int {
	if l := c.snd.loss; l != nil {
		return l.sb.sacked
	}
	return 0
}

func (c *Conn) lostBytes() int {
	if l := c.snd.loss; l != nil {
		return l.txq.lostBytes
	}
	return 0
}

// receiver holds the receive sequence variables of RFC 9293 section 3.3.1.
type receiver struct {
	irs seqnum.Value // IRS
	nxt seqnum.Value // RCV.NXT

	buf  ring       // in-order bytes not yet read (and a SYN's text, see synText)
	ooo  reassembly // the bytes that arrived out of order (ooo.go)
	fin  bool       // a FIN arrived out of order and waits at finSeq
	fseq seqnum.Value

	// synText is how many bytes of text a SYN brought in SYN-SENT: they
	// wait at offset 0 of buf, uncommitted, until ESTABLISHED.
	synText int

	// post is the buffer of a reader waiting in RECEIVE (PostRead), and
	// placed how much in-order data went straight into it.
	post   []byte
	placed int

	// lent is the in-order text kept in memory a link lent (lend.go),
	// queued behind buf's bytes; made with the first loan offered.
	lent *lentQueue

	advEdge seqnum.Value // right edge of the window last advertised: RCV.NXT + RCV.WND then
	space   rcvSpace     // receive-window auto-tuning (autotune.go)
	wscale  uint8        // Rcv.Wind.Shift of RFC 7323

	// dsack is a duplicate to report in the first SACK block of the
	// next ACK, when dsackSet (RFC 2883 section 4, rcvsack.go).
	dsack    wire.SACKBlock
	dsackSet bool

	ackPending   bool // an ACK is owed
	ackNow       bool // and must not wait for the delayed-ACK timer
	unackedBytes int  // in-order bytes received since the last ACK we sent
	batching     bool // between BeginBatch and EndBatch (batch.go)
	lastAckSent  seqnum.Value

	// Quick-ACK mode (Config.QuickACKs): quickACKs more data segments
	// are acknowledged at once. lastData is when data last arrived, and
	// sndMaxAtData our SND.MAX then: if it has moved since, we answered
	// (the exchange is interactive and our data carries the ACKs).
	quickACKs    int
	lastData     time.Time
	sndMaxAtData seqnum.Value
}

// timers are the connection's deadlines; the zero time means disarmed.
type timers struct {
	rtx       time.Time // retransmission (RFC 6298)
	persist   time.Time // zero-window probe (RFC 9293 3.8.6.1)
	delack    time.Time // delayed ACK (RFC 9293 3.8.6.3)
	keepalive time.Time // keep-alive (RFC 9293 3.8.4)
	timewait  time.Time // 2MSL in TIME-WAIT, or the FIN-WAIT-2 timeout
	reclaim   time.Time // give drained buffers back (reclaimIdle after one emptied)
	reo       time.Time // RACK reordering timer (RFC 8985 section 6.3)
	tlp       time.Time // Tail Loss Probe timeout (RFC 8985 section 7.2)
	pace      time.Time // the next paced segment may leave (pacing.go)
}

// Conn is a transmission control block: one connection.
type Conn struct {
	cfg  *Config
	id   Tuple
	sink Sink

	state  State
	snd    sender
	rcv    receiver
	tm     timers
	rtt    rttEstimator
	cc     Congestion
	ccName string     // chosen by SetCongestionControl; "": the Config's
	ecn    ecnState   // Explicit Congestion Notification (RFC 3168, ecn.go)
	rt     *rateState // delivery rate and pacing, made when data first flows (rates)

	bufs sockBufs // SetSendBuffer, SetReceiveBuffer (sndtune.go)

	err      error // why the connection ended, for the user's next call
	passive  bool  // opened by a passive OPEN: RST in SYN-RECEIVED returns to LISTEN
	released bool  // the owner closed the socket and will never read again
	haveSYN  bool  // the peer's SYN has been received: IRS and RCV.NXT are set
	haveFIN  bool  // the peer's FIN has been received in order: RECEIVE gives EOF, even once CLOSED
	readShut bool  // the owner will not read any more (shutdown SHUT_RD)
	// memState is the stack's memory state (memory.go), beside the
	// flags: a word of its own would take the Conn out of its size class.
	memState MemoryState

	nodelay bool // Nagle's algorithm off: !Config.Nagle, then SetNoDelay

	// Options negotiated on the handshake.
	mss      int  // largest payload we put in a segment (peer's MSS less our options)
	peerMSS  int  // what the peer's MSS option said (or the default)
	wsOK     bool // window scaling in use both ways (RFC 7323 section 2)
	tsOK     bool // timestamps in use (RFC 7323 section 3)
	sackOK   bool // the peer accepts SACK blocks (RFC 2018)
	tsRecent uint32
	tsEpoch  time.Time
	tsOffset uint32
	// What the SYN we answered offered (passive open), for the SYN,ACK
	// to echo (sendSYN): all of its options a SYN,ACK depends on.
	synWS, synSACK, synTS bool
	keepAlive             bool

	// Per-connection keep-alive timing; zero means the Config's.
	kaIdle, kaInterval time.Duration
	kaCount            int

	keepAliveProbes int
	lastRecv        time.Time

	challengeWindow time.Time // start of the current one-second challenge ACK budget
	challengeCount  int
	lastInvalidACK  time.Time // when an unacceptable segment was last answered (invalidACK)

	reported *StackCounts // what TakeCounts has handed out; nil while that is nothing (an idle connection does not carry the 120 bytes)

	out     Segment // reused for every segment handed to the sink
	scratch []byte  // a segment's payload when it wraps around the ring
	// outGathered: the latest data segment's payload was gathered into
	// scratch, not left in the send buffer (PayloadInSendBuffer).
	outGathered bool
	// gsoMax is the most payload one super-segment may carry
	// (SetSegmentOffload, gso.go); 0: every segment is at most one MSS.
	gsoMax int32

	// The counters (stats.go): those every connection moves, and the
	// rest, made when one of them first moves.
	stats hotStats
	more  *Stats

	// spare is memory a previous connection on this Conn made and Reset
	// kept, cleared, for the parts made on first use (reuse.go); nil until
	// the first Reset.
	spare *connSpare
}

// NewConn makes a connection in state CLOSED for the 4-tuple id. cfg may be
// shared with other connections and is only read; its zero fields mean
// their defaults. It emits through sink.
func NewConn(cfg *Config, id Tuple, sink Sink) *Conn {
	c := new(Conn)
	c.init(cfg, id, sink)
	return c
}

// init makes the zero (or Reset) c what NewConn returns.
func (c *Conn) init(cfg *Config, id Tuple, sink Sink) {
	c.cfg, c.id, c.sink = cfg, id, sink
	c.nodelay, c.keepAlive = !cfg.Nagle, cfg.KeepAlive
	c.rtt.init(cfg)
	c.initSndLimit() // sndtune.go
	c.rcv.buf.limit = cfg.receiveBufferSize()
}

// PayloadInSendBuffer reports, during Sink.SendSegment, whether the
// payload of the segment being sent lies in the send buffer itself rather
// than in a scratch buffer (where a segment whose data wraps around the
// buffer's end is gathered, and which the next such segment reuses). A
// payload in the send buffer stays there unchanged until the next Write:
// the buffer only takes new bytes in Write, and when it grows or gives
// its memory back the old array is left as it was. So the caller may
// refer to it instead of copying it until it next calls Write, as the
// stack does to build a packet from the header and a slice of the send
// buffer (link.PartsWriter).
func (c *Conn) PayloadInSendBuffer() bool { return !c.outGathered }

// ID returns the connection's 4-tuple.
func (c *Conn) ID() Tuple { return c.id }

// State returns the connection's current state.
func (c *Conn) State() State { return c.state }

// Err returns why the connection ended (ECONNREFUSED, ECONNRESET,
// ETIMEDOUT), or nil.
func (c *Conn) Err() error { return c.err }

// setState is the only place the state changes. It checks the transition
// against RFC 9293 Figure 5 and reports it.
func (c *Conn) setState(now time.Time, to State, cause Cause) {
	from := c.state
	if from == to {
		return
	}
	if !Legal(from, to) {
		panic("tcp: illegal transition " + from.String() + " -> " + to.String() + " (" + cause.String() + ")")
	}
	c.state = to
	switch to {
	case TimeWait, Closed:
		// A connection in TIME-WAIT keeps only what it needs to answer a
		// retransmitted FIN; its buffers go (DESIGN: TIME-WAIT is small).
		// Received data the owner has not read yet stays readable,
		// unless the connection was aborted ("all segment queues should
		// be flushed", RFC 9293 3.10.7.4 on RST); Read releases the
		// buffer once it is empty.
		c.releaseRing(&c.snd.buf)
		if l := c.snd.loss; l != nil {
			// The smallest transmit ring stays, for a Reset to keep
			// (reuse.go); a larger one goes.
			keep := l.txq.s
			if len(keep) > txQueueMin {
				keep = nil
			}
			l.txq = txQueue{s: keep}
		}
		if c.err != nil {
			c.discardBuffered() // lend.go
		}
		if c.rcvBuffered() == 0 {
			c.releaseRing(&c.rcv.buf)
		}
		c.rcv.ooo = reassembly{}
		c.scratch = nil
		c.out.Payload = nil // it may point into the send buffer
		c.tm = timers{timewait: c.tm.timewait}
		if to == Closed {
			c.tm = timers{}
		}
	}
	if c.sink != nil {
		c.sink.StateChanged(c, Transition{Time: now, Tuple: c.id, From: from, To: to, Cause: cause})
	}
}

// returnToListen takes a passive open in SYN-RECEIVED back to LISTEN
// (RFC 9293 3.10.7.4: on RST, on a SYN, and after the SYN,ACK retries):
// nothing of the failed handshake (sequence variables, options, timers,
// backoff) may carry over into the next one.
func (c *Conn) returnToListen(now time.Time, cause Cause) {
	fresh := Conn{
		cfg: c.cfg, id: c.id, sink: c.sink, state: c.state,
		passive: true, released: c.released,
		nodelay: c.nodelay, keepAlive: c.keepAlive,
		kaIdle: c.kaIdle, kaInterval: c.kaInterval, kaCount: c.kaCount,
		stats: c.stats, more: c.more, reported: c.reported, gsoMax: c.gsoMax,
		spare: c.spare,
	}
	fresh.rtt.init(c.cfg)
	fresh.bufs = c.bufs // the owner's setsockopt outlives a failed handshake
	fresh.initSndLimit()
	fresh.rcv.buf.limit = fresh.rcvBufSize()
	*c = fresh
	c.setState(now, Listen, cause)
}

// abort ends the connection with err, as the RFC's "enter CLOSED, delete
// the TCB" steps do.
func (c *Conn) abort(now time.Time, err error, cause Cause) {
	if c.err == nil {
		c.err = err
	}
	c.setState(now, Closed, cause)
}

package tcp

import (
	"net/netip"
	"time"

	"github.com/synack/synack/seqnum"
)

// Tuple names a connection: local and remote address and port.
type Tuple struct {
	Local, Remote netip.AddrPort
}

// Reverse returns the tuple as the peer sees it.
func (t Tuple) Reverse() Tuple { return Tuple{Local: t.Remote, Remote: t.Local} }

func (t Tuple) String() string { return t.Local.String() + " > " + t.Remote.String() }

// ISNSource chooses the two numbers a connection starts from that an
// observer must not be able to predict: the initial sequence number (RFC
// 6528) and the offset of the timestamp clock (RFC 7323 section 5.4). The
// stack passes a keyed generator (see NewISNGenerator); tests pass a fixed
// one (FixedISN).
type ISNSource interface {
	// ISN is the ISS of a connection on t opened at now. Successive
	// incarnations of t should get increasing ISNs (RFC 6528 section 3).
	ISN(t Tuple, now time.Time) seqnum.Value
	// TimestampOffset is added to every TSval the connection on t sends,
	// so that timestamps reveal no uptime (RFC 7323 section 5.4). It must
	// not change between incarnations of t: reopening TIME-WAIT (RFC 6191)
	// relies on TSvals increasing across them.
	TimestampOffset(t Tuple) uint32
}

// FixedISN is an ISNSource that always answers the same ISN, with a zero
// timestamp offset (so TSval is the timestamp clock itself): for tests and
// conformance scripts only.
type FixedISN seqnum.Value

// ISN implements ISNSource.
func (f FixedISN) ISN(Tuple, time.Time) seqnum.Value { return seqnum.Value(f) }

// TimestampOffset implements ISNSource: always 0.
func (f FixedISN) TimestampOffset(Tuple) uint32 { return 0 }

// Defaults of the Config fields, for code that needs the number (tests,
// the stack's reporting). Each is documented where a user meets it: the
// Config field.
const (
	DefaultMSL               = 30 * time.Second // TIME-WAIT lasts 2*MSL = 60 s, as on Linux
	DefaultInitialRTO        = time.Second      // RFC 6298 section 2.1
	DefaultMinRTO            = 200 * time.Millisecond
	DefaultMaxRTO            = 120 * time.Second
	DefaultDelayedACK        = 40 * time.Millisecond
	DefaultQuickACKs         = 16 // Linux's TCP_MAX_QUICKACKS
	DefaultFinWait2Timeout   = 60 * time.Second
	DefaultKeepAliveIdle     = 2 * time.Hour
	DefaultKeepAliveInterval = 75 * time.Second
	DefaultKeepAliveCount    = 9
	DefaultBufferSize        = 1 << 20
	DefaultMaxRetransmits    = 15
	DefaultSynRetries        = 6
	DefaultSynAckRetries     = 5
	DefaultChallengeACKLimit = 100
	DefaultMinPMTU           = 552 // Linux's net.ipv4.route.min_pmtu
	// MinPMTUv6 is the IPv6 minimum link MTU, below which no Packet Too
	// Big may lower a path's MTU (RFC 8200 section 5, RFC 8201 section 4).
	MinPMTUv6 = 1280
	// minPMTUv4 is the smallest MTU every IPv4 link has (RFC 791 section
	// 3.2): MinPMTU is never taken below it.
	minPMTUv4            = 68
	DefaultOrphanRetries = 8
	// DefaultOutOfOrderLimitMin is the least out-of-order memory a
	// connection may hold by default, whatever its receive buffer.
	DefaultOutOfOrderLimitMin = 64 << 10
)

// DefaultInvalidACKInterval is Config.InvalidACKInterval's default, as
// Linux's tcp_invalid_ratelimit.
const DefaultInvalidACKInterval = 500 * time.Millisecond

// Config holds what a connection needs to know about its stack. The zero
// value is ready to use: a zero (or negative) field means the default named
// in its comment, which the connection applies when it reads the field
// (the accessors at the end of this file), so nothing has to fill a Config
// in first. A Config may be shared by many connections; it must not change
// while they use it.
type Config struct {
	// MSS is the largest segment we can receive, sent in our MSS option:
	// the path MTU minus the IP and TCP headers (RFC 9293 section 3.7.1,
	// RFC 6691). Default 1460 (IPv4 on an MTU of 1500) or 1440 (IPv6).
	MSS uint16

	// SendBufferSize and ReceiveBufferSize bound the bytes buffered in each
	// direction; the receive buffer is the most window we ever advertise.
	// Default 1 MiB each. Memory is taken as it is used, not up front,
	// and a buffer that has stayed empty for a second is given back (one
	// of 4 KiB or less is kept for reuse). The receive window starts at
	// 64 KiB and grows with what the application reads per round trip
	// (autotune.go), up to ReceiveBufferSize: the maximum, as the third
	// value of Linux's tcp_rmem is. The send buffer starts at 64 KiB too
	// and grows to twice the congestion window (sndtune.go), up to
	// SendBufferSize, as the third value of tcp_wmem. Conn.SetSendBuffer
	// and SetReceiveBuffer fix one connection's (SO_SNDBUF, SO_RCVBUF).
	SendBufferSize    int
	ReceiveBufferSize int

	// NoAutoTune advertises the whole ReceiveBufferSize from the start
	// instead of growing the window with delivery (autotune.go), and
	// gives Write the whole SendBufferSize from the start instead of
	// growing the send buffer with cwnd (sndtune.go).
	NoAutoTune bool

	// OutOfOrderLimit bounds the memory one connection spends on data
	// that arrived out of order, counted as the bytes held plus 64 bytes
	// of bookkeeping per stored piece (so a flood of tiny segments costs
	// what it costs; it bounds the number of islands too, which has no
	// other cap). Over it, new out-of-order data is dropped
	// unacknowledged, after data further from RCV.NXT has been dropped to
	// make room (as Linux prunes its out-of-order queue from the far end).
	// Default: what the window we advertise lets the peer send beyond
	// RCV.NXT, with the bookkeeping of its segments (at least 64 KiB), so
	// that nothing inside the window is dropped: RFC 9293 3.8.6 makes
	// data inside the window acceptable, and a sender that fills it (BBR's
	// flight, any sender in recovery) with its first segment lost would
	// otherwise lose the far end of the flight and have SACKed data
	// reneged. Linux likewise counts out-of-order data against the same
	// rcvbuf as in-order data. The memory stays bounded by the receive
	// buffer (plus bookkeeping) and by the stack's budget (memory.go).
	// A value set here is a fixed bound instead, even below the window.
	OutOfOrderLimit int

	// OrphanRetries is how many retransmission timeouts and zero-window
	// probes in a row a connection may spend, without the peer
	// acknowledging anything new, after its owner has closed it
	// (Conn.Release): nobody is left to wait for it, so it is reset then,
	// as Linux does with tcp_orphan_retries (whose 0 means 8). RFC 1122
	// 4.2.3.5 (R2) lets a TCP abort on excessive retransmission; RFC 1122
	// 4.2.2.17 asks to keep probing a zero window only "as long as the
	// receiving TCP continues to send acknowledgments", which an orphan
	// bounds so that a peer that never reads cannot hold its memory
	// forever. Default 8.
	OrphanRetries int

	// MSL is the maximum segment lifetime; TIME-WAIT lasts 2*MSL
	// (RFC 9293 section 3.4.2). Default 30 s, so TIME-WAIT is 60 s, as Linux.
	MSL time.Duration

	// InitialRTO, MinRTO and MaxRTO bound the retransmission timeout
	// (RFC 6298). Defaults 1 s, 200 ms (Linux's floor; RFC 6298 suggests
	// 1 s, which is also allowed here) and 120 s.
	InitialRTO, MinRTO, MaxRTO time.Duration

	// MaxRetransmits is how many times a segment is retransmitted by timeout
	// before the connection is aborted with ETIMEDOUT (like Linux's
	// tcp_retries2). SynRetries and SynAckRetries do the same for SYN and
	// SYN,ACK (tcp_syn_retries, tcp_synack_retries). Defaults 15, 6, 5.
	MaxRetransmits, SynRetries, SynAckRetries int

	// UserTimeout aborts the connection when sent data stays unacknowledged
	// this long (RFC 9293 section 3.10.8, "USER TIMEOUT"). 0: off, the
	// retransmission limits above apply.
	UserTimeout time.Duration

	// DelayedACK is the longest an ACK is held back (RFC 9293 section
	// 3.8.6.3 says at most 0.5 s; RFC 1122 4.2.3.2). Default 40 ms.
	DelayedACK time.Duration

	// QuickACKs is how many data segments are acknowledged at once, not
	// delayed, when a connection starts receiving, after it has received
	// nothing for longer than the retransmission timeout, and after data
	// arrived out of order or twice: the sender's slow start grows with
	// every ACK (RFC 5681 section 3.1), and a sender recovering from a
	// loss needs each ACK without delay (RFC 5681 section 4.2 asks an
	// immediate ACK for out-of-order data and for data that fills a
	// hole). Linux's quick-ACK mode does the same. It is bounded by half
	// the receive window in full-sized segments (at least 2). Default 16,
	// as Linux. NoQuickACK turns it off: an ACK then waits for a second
	// full-sized segment or for DelayedACK (RFC 9293 3.8.6.3), as FreeBSD
	// does. Quick ACKs go out per segment even within a receive batch,
	// where other ACKs of in-order data wait for its end (batch.go).
	QuickACKs  int
	NoQuickACK bool

	// Nagle turns Nagle's algorithm on for new connections (RFC 9293
	// section 3.7.4, SHLD-7): while data is unacknowledged, a segment
	// smaller than the MSS waits for more. Off by default, as Go's net
	// package sets TCP_NODELAY on every TCP connection, so code moved from
	// kernel sockets behaves the same. Conn.SetNoDelay changes it for one
	// connection (the application's switch of MUST-17).
	Nagle bool

	// NoWindowScale, NoTimestamps and NoSACK stop us from offering those
	// options (RFC 7323, RFC 2018). All three are offered by default.
	NoWindowScale, NoTimestamps, NoSACK bool

	// RFC793Reset accepts any RST inside the window, as RFC 793 did, instead
	// of RFC 5961 section 3's exact-match rule with challenge ACKs.
	// RFC793SYN resets the connection on a SYN inside the window, as RFC 793
	// did, instead of RFC 5961 section 4's challenge ACK.
	RFC793Reset, RFC793SYN bool

	// ChallengeACKLimit is how many challenge ACKs (RFC 5961 section 7) one
	// connection sends per second at most. Default 100.
	ChallengeACKLimit int

	// InvalidACKInterval is the least time between two ACKs one
	// connection sends in answer to unacceptable segments that carry no
	// data: out of the window (RFC 9293 3.10.7.4, first), failing PAWS
	// (RFC 7323 5.3), or acknowledging what was never sent (3.10.7.4,
	// fifth); the ones in between are dropped unanswered. RFC 9293 says
	// to answer each, but two TCPs that each find the other's ACKs
	// unacceptable would then exchange ACKs without end; RFC 5961 section
	// 7 lets a TCP limit such ACKs, and Linux does so per connection
	// (tcp_invalid_ratelimit). A segment with data, a SYN or a FIN is
	// always answered: its sender needs the ACK to recover (a SYN gets
	// RFC 5961's challenge ACK, limited by ChallengeACKLimit), and it
	// cannot start a loop. Default 500 ms, as Linux. NoInvalidACKLimit
	// answers every one, as RFC 9293 alone would.
	InvalidACKInterval time.Duration
	NoInvalidACKLimit  bool

	// KeepAlive enables keep-alive probes (RFC 9293 section 3.8.4); off by
	// default. The idle time before the first probe, the interval between
	// probes and the number of unanswered probes that abort the connection
	// default to 2 h, 75 s and 9, as on Linux.
	KeepAlive         bool
	KeepAliveIdle     time.Duration
	KeepAliveInterval time.Duration
	KeepAliveCount    int

	// MinPMTU is the smallest path MTU an ICMP "fragmentation needed"
	// (RFC 1191) can make an IPv4 connection assume: a smaller reported MTU
	// is taken as MinPMTU, so a forged ICMP message cannot shrink segments
	// to a few bytes each. Default 552, as Linux's min_pmtu; at least 68,
	// the minimum of RFC 791. IPv6 connections ignore it: RFC 8201 section 4
	// fixes their floor at 1280 (MinPMTUv6).
	MinPMTU int

	// FinWait2Timeout closes a connection that sits in FIN-WAIT-2 after its
	// owner has closed it (so nobody could read more data anyway): the peer
	// never sent its FIN. Default 60 s, as Linux's tcp_fin_timeout.
	FinWait2Timeout time.Duration

	// LossDetection chooses how a connection whose peer SACKs finds lost
	// segments: LossRACK (RACK-TLP, RFC 8985; the default) or
	// LossDupThresh (RFC 6675 alone). Without SACK, NewReno's duplicate
	// ACK counting applies.
	LossDetection LossDetection

	// CongestionControl names the congestion controller of new
	// connections, as Linux's tcp_congestion_control: "cubic" (RFC 9438
	// with HyStart++, RFC 9406; the default) or "newreno" (RFC 5681, RFC
	// 6582) or "bbr" (draft-ietf-ccwg-bbr, BBRv3; paced). CongestionControls
	// lists them. An unknown name is an error (Validate) when a stack is made and at
	// Connect and Listen, never a silent fallback.
	CongestionControl string

	// NewCongestion, when set, makes the congestion controller of a
	// connection instead, for a controller of one's own; its Name is what
	// Info reports. Conn.SetCongestionControl still picks a registered one
	// for one connection.
	NewCongestion func(mss int) Congestion

	// ECN is Explicit Congestion Notification (RFC 3168), as Linux's
	// net.ipv4.tcp_ecn: ECNPassive (the zero value, Linux's 2) uses it
	// when the peer's SYN asks for it but does not ask on active opens;
	// ECNActive (1) asks too; ECNOff (0) never uses it (ecn.go).
	ECN ECNMode
	// ECNSynRetries is how many retransmissions of an ECN-setup SYN
	// still ask for ECN before the SYN goes without, in case a middlebox
	// drops ECN-setup SYNs (RFC 3168 6.1.1.1). Default 0: only the first
	// SYN asks, as Linux's tcp_ecn_fallback; FreeBSD's
	// net.inet.tcp.ecn.maxretries is 1.
	ECNSynRetries int

	// Pacing paces the segments of window-based controllers (cubic,
	// newreno) at Linux's rate, 2*cwnd/SRTT in slow start and
	// 1.2*cwnd/SRTT after, as Linux does under the fq qdisc (pacing.go).
	// BBR paces whatever this says; the others do not by default.
	Pacing bool

	// ISN chooses initial sequence numbers and timestamp offsets. Default:
	// a generator keyed with a fixed all-zero key, which is only fit for
	// tests; stacks must set a keyed generator (NewISNGenerator) with a
	// random key.
	ISN ISNSource
}

// WithDefaults returns c with every zero number that has a default set to
// it, as a connection reads it: for showing the knobs a stack runs with.
// Connections do not need it. MSS stays as it is (its default depends on
// the address family of each connection), and so do OutOfOrderLimit (its
// default follows each connection's window), NewCongestion and ISN.
func (c Config) WithDefaults() Config {
	c.SendBufferSize = c.sendBufferSize()
	c.ReceiveBufferSize = c.receiveBufferSize()
	c.MSL = c.msl()
	c.InitialRTO, c.MinRTO, c.MaxRTO = c.initialRTO(), c.minRTO(), c.maxRTO()
	c.MaxRetransmits, c.SynRetries, c.SynAckRetries = c.maxRetransmits(), c.synRetries(), c.synAckRetries()
	c.DelayedACK = c.delayedACK()
	c.QuickACKs = c.quickACKs()
	c.ChallengeACKLimit = c.challengeACKLimit()
	c.InvalidACKInterval = c.invalidACKInterval()
	c.KeepAliveIdle, c.KeepAliveInterval, c.KeepAliveCount = c.keepAliveIdle(), c.keepAliveInterval(), c.keepAliveCount()
	c.FinWait2Timeout = c.finWait2Timeout()
	c.MinPMTU = c.minPMTU()
	c.OrphanRetries = c.orphanRetries()
	c.LossDetection = c.lossDetection()
	if c.CongestionControl == "" && c.NewCongestion == nil {
		c.CongestionControl = DefaultCongestionControl
	}
	return c
}

// The accessors below are the only readers of Config fields that have a
// default: zero means default in one place (x/net/quic's configDefault),
// rather than a fill-in step plus guesses wherever a Config might not have
// been through it.

// configDefault returns v, or def when v is zero or negative.
func configDefault[T ~int | ~int64](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

func (c *Config) sendBufferSize() int {
	return configDefault(c.SendBufferSize, DefaultBufferSize)
}

func (c *Config) receiveBufferSize() int {
	return configDefault(c.ReceiveBufferSize, DefaultBufferSize)
}

// outOfOrderLimit is the out-of-order memory a connection may hold while
// its window lets the peer send wnd bytes beyond RCV.NXT in segments of
// about seg bytes: OutOfOrderLimit if set, else those bytes with the
// bookkeeping of each segment's chunk (ooo.go chunkCost), plus
// oooExtraChunks more for the pieces a retransmission cut differently
// leaves.
func (c *Config) outOfOrderLimit(wnd, seg int) int {
	seg = max(seg, 1)
	chunks := (wnd+seg-1)/seg + oooExtraChunks
	return configDefault(c.OutOfOrderLimit, max(wnd+chunks*oooChunkOverhead, DefaultOutOfOrderLimitMin))
}

func (c *Config) orphanRetries() int {
	return configDefault(c.OrphanRetries, DefaultOrphanRetries)
}

func (c *Config) msl() time.Duration {
	return configDefault(c.MSL, DefaultMSL)
}

func (c *Config) initialRTO() time.Duration {
	return configDefault(c.InitialRTO, DefaultInitialRTO)
}

func (c *Config) minRTO() time.Duration {
	return configDefault(c.MinRTO, DefaultMinRTO)
}

func (c *Config) maxRTO() time.Duration {
	return configDefault(c.MaxRTO, DefaultMaxRTO)
}

func (c *Config) maxRetransmits() int {
	return configDefault(c.MaxRetransmits, DefaultMaxRetransmits)
}

func (c *Config) synRetries() int {
	return configDefault(c.SynRetries, DefaultSynRetries)
}

func (c *Config) synAckRetries() int {
	return configDefault(c.SynAckRetries, DefaultSynAckRetries)
}

func (c *Config) delayedACK() time.Duration {
	return configDefault(c.DelayedACK, DefaultDelayedACK)
}

// quickACKs is QuickACKs, 0 with NoQuickACK.
func (c *Config) quickACKs() int {
	if c.NoQuickACK {
		return 0
	}
	return configDefault(c.QuickACKs, DefaultQuickACKs)
}

func (c *Config) challengeACKLimit() int {
	return configDefault(c.ChallengeACKLimit, DefaultChallengeACKLimit)
}

// invalidACKInterval is InvalidACKInterval, 0 with NoInvalidACKLimit.
func (c *Config) invalidACKInterval() time.Duration {
	if c.NoInvalidACKLimit {
		return 0
	}
	return configDefault(c.InvalidACKInterval, DefaultInvalidACKInterval)
}

func (c *Config) keepAliveIdle() time.Duration {
	return configDefault(c.KeepAliveIdle, DefaultKeepAliveIdle)
}

func (c *Config) keepAliveInterval() time.Duration {
	return configDefault(c.KeepAliveInterval, DefaultKeepAliveInterval)
}

func (c *Config) keepAliveCount() int {
	return configDefault(c.KeepAliveCount, DefaultKeepAliveCount)
}

func (c *Config) finWait2Timeout() time.Duration {
	return configDefault(c.FinWait2Timeout, DefaultFinWait2Timeout)
}

func (c *Config) minPMTU() int {
	return max(configDefault(c.MinPMTU, DefaultMinPMTU), minPMTUv4)
}

// mss is the MSS option we send on a connection to remote: the Config's,
// or what an Ethernet MTU of 1500 leaves for the family (RFC 9293 section
// 3.7.1: the MTU less 40 octets of IPv4 and TCP headers, or 60 with IPv6's).
func (c *Config) mss(remote netip.Addr) uint16 {
	if c.MSS != 0 {
		return c.MSS
	}
	if remote.Is4() || remote.Is4In6() {
		return 1500 - 40
	}
	return 1500 - 60
}

// lossDetection is LossDetection or its default, RACK-TLP.
func (c *Config) lossDetection() LossDetection {
	if c.LossDetection == LossDupThresh {
		return LossDupThresh
	}
	return LossRACK
}

// zeroKeyISN is the ISN default: the keyed generator with an all-zero key.
var zeroKeyISN = NewISNGenerator([32]byte{})

func (c *Config) isn() ISNSource {
	if c.ISN == nil {
		return zeroKeyISN
	}
	return c.ISN
}

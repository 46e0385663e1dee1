// Package stack is synack's runtime: it joins the pure TCP core (package
// tcp) to links (package link) and gives Go programs a net.Conn /
// net.Listener API over it.
//
// # Concurrency
//
// There is no goroutine per connection, and the stack starts no goroutine
// of its own but its loopback link's, which runs only while packets to
// ourselves are queued (loopback.go). Work runs in the caller's goroutine
// under the stack's lock:
//
//   - inbound packets in the link's delivering goroutine (link.Dispatcher),
//   - user calls (Read, Write, Close, Dial, Accept) in the user's goroutine,
//   - timers in the goroutine of the stack's one clock timer.
//
// Each of them goes through one of the doors of door.go, which takes the
// lock, calls into the tcp.Conn with the clock's current time, lets the
// stack settle what the call changed (demux table, listen queues, the
// timer queue, wake-ups) and writes the segments the call produced to the
// links in one batch before unlocking. The links copy what they are given
// and never call back synchronously, so writing under the lock is safe.
// Blocking calls wait on a clock.Gate, which works with the real clock,
// inside testing/synctest bubbles and under the virtual clock.
//
// All per-connection state is reached through the demux table keyed by the
// 4-tuple, so the single lock can later become one lock per shard chosen by
// a hash of the tuple; the code keeps to that discipline (no operation
// touches two connections except a listener and its children, which share a
// local address and port and so can be put in the same shard by hashing
// the local end only).
package stack

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"time"

	"github.com/synack/synack/clock"
	"github.com/synack/synack/ipreasm"
	"github.com/synack/synack/link"
	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/tcp"
)

// Defaults for zero Options fields.
const (
	DefaultFirstEphemeral = 32768 // Linux's ip_local_port_range
	DefaultLastEphemeral  = 60999
	DefaultSynBacklog     = 4096 // Linux's tcp_max_syn_backlog
	DefaultListenBacklog  = 128  // Linux's historical somaxconn
	DefaultTTL            = 64
	// DefaultTimeWaitReuseAfter is Options.TimeWaitReuseAfter's default.
	DefaultTimeWaitReuseAfter = time.Second
	maxBatch                  = 64 // packets per WritePackets call
)

// Options configures a Stack. The zero value is usable.
type Options struct {
	// Clock is the source of time and the way to block; nil means the
	// real clock (which also works inside testing/synctest bubbles).
	Clock clock.Clock

	// TCP holds the connection knobs: buffer sizes, MSL (TIME-WAIT lasts
	// 2*MSL), RTO bounds, retry counts, Nagle's algorithm (off unless
	// TCP.Nagle, as Go's net package has it), the RFC 793 reset/SYN modes,
	// keep-alive... Zero fields take the defaults documented on
	// tcp.Config. MSS is derived from each link's MTU when zero. ISN is set
	// by the stack (a keyed RFC 6528 generator whose key comes from Rand)
	// unless set here.
	TCP tcp.Config

	// Rand is the source of the ISN key and of the secret that scatters
	// ephemeral ports (RFC 6056). nil means crypto/rand. A seeded reader
	// makes a stack deterministic for simulations.
	Rand io.Reader

	// FirstEphemeral and LastEphemeral bound the ports chosen for
	// connections dialed without a local port and for listeners on port 0.
	// Defaults 32768 and 60999, as Linux.
	FirstEphemeral, LastEphemeral uint16

	// SynBacklog bounds, per listener, the connections in SYN-RECEIVED
	// (the SYN queue). Default 4096, as Linux's tcp_max_syn_backlog. An
	// entry keeps no TCB until the handshake goes on (about 300 bytes).
	// Its SYN,ACK is sent again TCP.SynAckRetries times (default 5, as
	// Linux's tcp_synack_retries: given up after 63 s).
	SynBacklog int

	// SynCookies says when SYNs are answered with SYN cookies instead of
	// SYN-queue entries: SynCookiesAuto (default) while the SYN queue is
	// full, SynCookiesOff, or SynCookiesAlways (see SynCookieMode).
	SynCookies SynCookieMode

	// SynRateLimit bounds the SYNs taken per listener and per source
	// prefix; off by default (see SynRateLimits).
	SynRateLimit SynRateLimits

	// ListenBacklog is the accept-queue bound of listeners made with
	// Listen (ListenTCP takes its own). Default 128.
	ListenBacklog int

	// MaxOrphans bounds the connections closed by their owners that the
	// stack still finishes (FIN-WAIT-1, FIN-WAIT-2, CLOSING, LAST-ACK),
	// each holding its unsent data; over it the oldest are reset and
	// counted in TCPAbortOnMemory (Linux's tcp_max_orphans, "too many
	// orphaned sockets"). Default 65536. Each orphan also ends on its own
	// after TCP.OrphanRetries.
	MaxOrphans int

	// TTL is the IPv4 TTL and IPv6 hop limit of what we send. Default 64.
	TTL uint8

	// TimeWaitReuse lets an active open (Dial) take a 4-tuple whose
	// previous connection is still in TIME-WAIT, like Linux's
	// net.ipv4.tcp_tw_reuse = 1: only when that connection used
	// timestamps and entered TIME-WAIT at least TimeWaitReuseAfter (1 s)
	// ago, so the new connection's TSvals are newer than any of the old
	// one's and PAWS
	// (RFC 7323 section 5) keeps the old one's duplicates out; its ISS
	// starts beyond the old sequence space (RFC 1122 4.2.2.13). Ephemeral
	// ports are chosen among free ones first (see pickEphemeral). Off by
	// default (Linux's
	// default, 2, allows it for loopback only; here it applies to every
	// link, the loopback link included). Counted in TCPTimeWaitReuse.
	TimeWaitReuse bool
	// TimeWaitReuseAfter is how long a connection must have been in
	// TIME-WAIT before TimeWaitReuse lets a new one take its 4-tuple.
	// Default 1 s, as Linux: the peer's timestamp clock may tick as
	// slowly as once a second (RFC 7323 section 5.4). Ours ticks every
	// millisecond, so toward a peer whose clock does too (Linux, synack) a
	// few milliseconds are as safe; at least 1 ms.
	TimeWaitReuseAfter time.Duration

	// Reassembly bounds IP reassembly: memory (default 4 MiB, as Linux's
	// ipfrag_high_thresh) and timeouts (IPv4 30 s, IPv6 60 s); see
	// package ipreasm.
	Reassembly ipreasm.Config

	// MemoryLimit bounds the memory of the whole stack: every
	// connection's buffers and the IP reassembly queue, in bytes (like
	// Linux's tcp_mem, see memory.go). Above 75 % of it the stack is under
	// pressure (receive windows stop opening, out-of-order data is pruned,
	// drained buffers go back at once) until it is back under 50 %; at
	// the limit, arriving data that would take memory is dropped. Default
	// DefaultMemoryLimit (256 MiB); negative means unlimited.
	MemoryLimit int64

	// Trace, if set, is called synchronously, under the stack's lock, for
	// every TCP segment received and sent and for every state change, in
	// the order they happen (see TraceEvent). It must not call into the
	// stack and must return quickly.
	Trace func(TraceEvent)
}

// NICID names a link added with AddLink.
type NICID int

// nic is one link of the stack.
type nic struct {
	s     *Stack
	id    NICID
	ep    link.Endpoint
	mtu   int
	addrs []netip.Prefix

	// Packets built under the lock and written in one batch before it is
	// released. bufs keeps its buffers from batch to batch: the link copies
	// what it takes, so they are reused at once.
	bufs    [][]byte
	pending int
	queued  bool // on s.dirty

	// A link that takes packets in pieces (link.PartsWriter) gets them
	// as parts: bufs[i] as the head, and a data segment's payload left
	// in its connection's send buffer, so that the link's copy is the
	// only one (issue 13 item 1).
	pw    link.PartsWriter
	parts []link.Packet
}

// route sends what matches prefix out of nic.
type route struct {
	prefix  netip.Prefix
	gateway netip.Addr // informational: links are point-to-point (L3)
	nic     *nic
}

// Stack is a TCP/IP stack: links, addresses, routes, connections.
type Stack struct {
	clock clock.Clock
	opts  Options
	trace func(TraceEvent)

	mu     sync.Mutex
	closed bool

	nics   []*nic
	lo     *nic // the loopback link (loopback.go), not in nics
	routes []route
	local  map[netip.Addr]*nic // our addresses

	cfg     tcp.Config                // defaults written out; the template of cfgs
	cfgErr  error                     // why opts.TCP is unusable (tcp.Config.Validate); nil if it is not
	cfgs    map[cfgKey]*tcp.Config    // shared by connections of the same class
	isn     *tcp.ISNGenerator         // RFC 6528
	isnNext map[tcp.Tuple]isnOverride // ISS for a new incarnation after TIME-WAIT
	portKey [32]byte                  // RFC 6056 secret
	portTab [256]uint16               // RFC 6056 Algorithm 4's table
	conns   map[tcp.Tuple]*TCPConn    // the demux table
	pool    connPool                  // tcp.Conns of ended connections, for new ones (connpool.go)
	lports  map[uint16][]*Listener    // listeners by port
	fwd     forwarder                 // the listener for any address (forward.go)
	udpFwd  *UDPForwarder             // UDP to any address (forward_udp.go)
	nextID  uint64

	tw     twTable // connections in TIME-WAIT, as records (timewait.go)
	twOut  twOut
	twSend func(*tcp.Segment)

	timers  timerHeap
	timer   clock.Timer
	timerAt time.Time // when timer fires; zero when not armed
	dueBuf  []*TCPConn
	dirty   []*nic // nics with pending packets
	inSeg   tcp.Segment
	hdr     tcpScratch
	tr      tracer
	subs    []*subscriber
	syn     synDefence
	frag    fragState // IP reassembly (reasm.go)
	orph    orphans   // connections closed by their owners, still finishing (orphans.go)
	mem     memState  // the memory budget (memory.go)
	udp     udpState  // UDP sockets (udp.go)
	ping    pingState // ICMP echo sockets (ping.go)

	ctr counters

	// The receive batch being processed (input.go, beginBatch): whether
	// there is one, and the connections it reached so far.
	batching bool
	batched  []*TCPConn
}

type isnOverride struct{ v uint32 }

// New returns a stack with no links. Add links with AddLink.
func New(opts Options) *Stack {
	s := &Stack{
		opts:    opts,
		clock:   opts.Clock,
		trace:   opts.Trace,
		local:   make(map[netip.Addr]*nic),
		cfgs:    make(map[cfgKey]*tcp.Config),
		isnNext: make(map[tcp.Tuple]isnOverride),
		conns:   make(map[tcp.Tuple]*TCPConn),
		lports:  make(map[uint16][]*Listener),
	}
	if s.clock == nil {
		s.clock = clock.Real()
	}
	r := opts.Rand
	if r == nil {
		r = rand.Reader
	}
	var key [32]byte
	if _, err := io.ReadFull(r, key[:]); err != nil {
		panic("stack: reading the ISN key: " + err.Error())
	}
	if _, err := io.ReadFull(r, s.portKey[:]); err != nil {
		panic("stack: reading the port secret: " + err.Error())
	}
	s.isn = tcp.NewISNGenerator(key)
	if s.opts.FirstEphemeral == 0 && s.opts.LastEphemeral == 0 {
		s.opts.FirstEphemeral, s.opts.LastEphemeral = DefaultFirstEphemeral, DefaultLastEphemeral
	}
	if s.opts.LastEphemeral < s.opts.FirstEphemeral {
		s.opts.FirstEphemeral, s.opts.LastEphemeral = s.opts.LastEphemeral, s.opts.FirstEphemeral
	}
	if s.opts.FirstEphemeral == 0 {
		s.opts.FirstEphemeral = 1
	}
	if s.opts.SynBacklog <= 0 {
		s.opts.SynBacklog = DefaultSynBacklog
	}
	if s.opts.ListenBacklog <= 0 {
		s.opts.ListenBacklog = DefaultListenBacklog
	}
	if s.opts.TTL == 0 {
		s.opts.TTL = DefaultTTL
	}
	s.initMemory()
	s.newLoopback()
	// The defaults are written out only so that Options reports the knobs
	// the connections run with; the connections would apply them anyway.
	s.cfg = opts.TCP.WithDefaults()
	// New has no error to return: a Config no connection can run with (an
	// unknown congestion control name) fails AddLink, Listen and Dial.
	s.cfgErr = s.cfg.Validate()
	if s.cfg.ISN == nil {
		s.cfg.ISN = isnSource{s}
	}
	s.tr.s = s
	s.twSend = s.sendTimeWait
	return s
}

// Clock returns the stack's clock.
func (s *Stack) Clock() clock.Clock { return s.clock }

// errStackClosed is what calls on a closed stack get.
var errStackClosed = errors.New("stack closed")

// AddLink attaches ep to the stack with the given addresses (each with its
// on-link prefix, which also becomes a route) and starts receiving from it.
// The stack owns ep from then on and closes it in Close.
func (s *Stack) AddLink(ep link.Endpoint, addrs ...netip.Prefix) (NICID, error) {
	n, err := s.addLink(ep, addrs)
	if err != nil {
		return 0, err
	}
	ep.Attach(n) // unlocked: the link may deliver at once
	return n.id, nil
}

func (s *Stack) addLink(ep link.Endpoint, addrs []netip.Prefix) (*nic, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errStackClosed
	}
	if s.cfgErr != nil {
		return nil, fmt.Errorf("stack: AddLink: %w", s.cfgErr)
	}
	for _, p := range addrs {
		a := p.Addr().Unmap()
		if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() {
			return nil, fmt.Errorf("stack: AddLink: %v is not a unicast address", p)
		}
		if _, dup := s.local[a]; dup {
			return nil, fmt.Errorf("stack: AddLink: address %v is already in use", a)
		}
	}
	n := &nic{s: s, id: NICID(len(s.nics) + 1), ep: ep, mtu: ep.MTU()}
	n.pw, _ = ep.(link.PartsWriter)
	for _, p := range addrs {
		a := p.Addr().Unmap()
		p = netip.PrefixFrom(a, p.Bits())
		n.addrs = append(n.addrs, p)
		s.local[a] = n
		s.addRouteLocked(p.Masked(), netip.Addr{}, n)
	}
	s.nics = append(s.nics, n)
	return n, nil
}

// AddRoute sends packets for prefix out of the link nic. Routes are
// matched longest prefix first; a default route is 0.0.0.0/0 or ::/0. The
// links are point-to-point, so gateway is only recorded.
func (s *Stack) AddRoute(prefix netip.Prefix, gateway netip.Addr, id NICID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id < 1 || int(id) > len(s.nics) {
		return fmt.Errorf("stack: AddRoute: no link %d", id)
	}
	if !prefix.IsValid() {
		return fmt.Errorf("stack: AddRoute: invalid prefix %v", prefix)
	}
	s.addRouteLocked(prefix.Masked(), gateway, s.nics[id-1])
	return nil
}

func (s *Stack) addRouteLocked(p netip.Prefix, gw netip.Addr, n *nic) {
	s.routes = append(s.routes, route{prefix: p, gateway: gw, nic: n})
}

// routeTo returns the link for dst and the source address to use on it.
func (s *Stack) routeTo(dst netip.Addr) (*nic, netip.Addr, bool) {
	if n, src, ok := s.loopRoute(dst); ok { // loopback.go
		return n, src, true
	}
	best := -1
	for i, r := range s.routes {
		if r.prefix.Contains(dst) && (best < 0 || r.prefix.Bits() > s.routes[best].prefix.Bits()) {
			best = i
		}
	}
	if best < 0 {
		return nil, netip.Addr{}, false
	}
	n := s.routes[best].nic
	// Prefer an address of the link whose prefix holds dst, then any of
	// the link's addresses of the family, then any of ours.
	var src netip.Addr
	for _, p := range n.addrs {
		if p.Contains(dst) {
			return n, p.Addr(), true
		}
		if !src.IsValid() && p.Addr().Is4() == dst.Is4() {
			src = p.Addr()
		}
	}
	if !src.IsValid() {
		for _, m := range s.nics {
			for _, p := range m.addrs {
				if p.Addr().Is4() == dst.Is4() {
					src = p.Addr()
					break
				}
			}
			if src.IsValid() {
				break
			}
		}
	}
	return n, src, src.IsValid()
}

// Close aborts every connection (with RST where the peer is synchronized),
// closes every listener, stops the stack's timer, detaches and closes the
// links, and wakes every blocked call, which returns net.ErrClosed. It
// leaves no goroutine behind.
func (s *Stack) Close() error {
	var gates []*clock.Gate
	var nics []*nic
	s.run(func(now time.Time) { gates, nics = s.closeLocked(now) })
	for _, g := range gates {
		if g != nil { // a connection nobody ever waited on has none
			g.Broadcast()
		}
	}
	var err error
	for _, n := range nics {
		if e := n.ep.Close(); e != nil && err == nil {
			err = e
		}
	}
	return err
}

// closeLocked is Close under the lock. It returns the gates to broadcast
// and the links to close once the lock is released.
func (s *Stack) closeLocked(now time.Time) (gates []*clock.Gate, nics []*nic) {
	var ls []*Listener
	for _, x := range s.lports {
		ls = append(ls, x...)
	}
	if s.fwd.l != nil {
		ls = append(ls, s.fwd.l)
	}
	for _, l := range ls {
		gates = append(gates, l.closeLocked(now))
	}
	gates = append(gates, s.closeUDPLocked()...) // udp.go
	gates = append(gates, s.closeUDPForwarderLocked())
	gates = append(gates, s.closePingLocked()...) // ping.go
	for _, tc := range s.conns {
		s.callLocked(tc, now, abort)
		tc.stackClosed = true
		gates = append(gates, tc.gate)
	}
	// Records in TIME-WAIT end as ABORT ends a connection there.
	s.tw.all(func(r *twSlot) {
		s.stateChanged(r.cid, r.tw.ID(), tcp.Transition{Time: now, From: tcp.TimeWait, To: tcp.Closed, Cause: tcp.UserAbort})
	})
	s.tw = twTable{}
	s.closed = true // the RSTs above are still flushed, by run
	if s.timer != nil {
		s.timer.Stop()
		s.timerAt = time.Time{}
	}
	for _, sub := range s.subs {
		close(sub.ch)
	}
	s.subs = nil
	return gates, append(s.nics[:len(s.nics):len(s.nics)], s.lo)
}

// unlock writes what the locked operation produced and releases the lock.
func (s *Stack) unlock() {
	s.pruneMemory()
	s.flush()
	s.armTimer()
	s.mu.Unlock()
}

// nextConnID numbers connections for events.
func (s *Stack) nextConnID() uint64 {
	s.nextID++
	return s.nextID
}

// cfgKey names a class of connections sharing one tcp.Config.
type cfgKey struct {
	mss uint16
	ka  keepAliveParams
}

type keepAliveParams struct {
	idle, interval time.Duration
	count          int
}

// configFor returns the shared Config for connections of one MSS (derived
// from the link MTU and the family) and keep-alive setting.
func (s *Stack) configFor(n *nic, remote netip.Addr, ka keepAliveParams) *tcp.Config {
	mss := s.opts.TCP.MSS
	if mss == 0 && n != nil {
		// The MSS option is what the link can bring us: its MTU less the
		// fixed IP and TCP headers (RFC 9293 3.7.1, RFC 6691 section 2),
		// however small. The only floor is the smallest MTU the family
		// guarantees, for a link that reports less: 68 octets for IPv4
		// (RFC 791), 1280 for IPv6 (RFC 8200 section 5).
		hdr, minMTU := 40, 68
		if !remote.Is4() {
			hdr, minMTU = 60, 1280
		}
		mss = uint16(max(minMTU, min(n.mtu, 65535)) - hdr)
	}
	k := cfgKey{mss: mss, ka: ka}
	if c := s.cfgs[k]; c != nil {
		return c
	}
	c := new(tcp.Config)
	*c = s.cfg
	c.MSS = mss
	if ka.idle > 0 {
		c.KeepAliveIdle = ka.idle
	}
	if ka.interval > 0 {
		c.KeepAliveInterval = ka.interval
	}
	if ka.count > 0 {
		c.KeepAliveCount = ka.count
	}
	s.cfgs[k] = c
	return c
}

// isnSource is the stack's tcp.ISNSource: the keyed generator, except for
// a 4-tuple reopened from TIME-WAIT, whose new ISS must lie beyond the old
// incarnation's sequence space (RFC 1122 4.2.2.13).
type isnSource struct{ s *Stack }

func (i isnSource) ISN(t tcp.Tuple, now time.Time) seqnum.Value {
	if o, ok := i.s.isnNext[t]; ok {
		delete(i.s.isnNext, t)
		return seqnum.Value(o.v)
	}
	return i.s.isn.ISN(t, now)
}

// TimestampOffset is the keyed generator's: the same for every
// incarnation of t, reopened from TIME-WAIT or not.
func (i isnSource) TimestampOffset(t tcp.Tuple) uint32 { return i.s.isn.TimestampOffset(t) }

package stack

import (
	"crypto/rand"
	"encoding/binary"
	"io"
	"net/netip"
	"time"

	"github.com/synack/synack/internal/siphash"
	"github.com/synack/synack/tcp"
	"github.com/synack/synack/wire"
)

// SYN-flood defence: the SYN queue of compact half-open entries, SYN
// cookies and SYN rate limits. What happens to a SYN that reaches a
// listener, in order (onSYN):
//
//  1. over a rate limit (per source prefix, then per listener): dropped
//     (SynRateLimited, ListenDrops);
//  2. accept queue full: dropped (ListenOverflows, ListenDrops), as Linux
//     does even with cookies, since there would be nowhere to put the
//     connection;
//  3. cookies "always", or SYN queue full and cookies "auto": answered
//     with a SYN cookie and forgotten (SyncookiesSent); SYN queue full and
//     cookies "off": dropped (ListenDrops);
//  4. otherwise an entry in the SYN queue (a halfOpen, about 300 bytes with
//     its map slot, against some 1.8 KB for a TCB) answers with a SYN,ACK,
//     retransmitted by the listener's timer up to tcp.Config.SynAckRetries
//     times. A segment for the entry turns it into a connection
//     (tcp.ResumeSynReceived) that takes the segment as usual.

// SynCookieMode says when a listener answers a SYN with a SYN cookie
// (RFC 4987 section 3.6) instead of an entry in its SYN queue; like
// Linux's net.ipv4.tcp_syncookies (0 off, 1 auto, 2 always).
type SynCookieMode uint8

const (
	// SynCookiesAuto (the default) sends cookies only while the SYN queue
	// is full, and checks ACKs for them only while cookies sent in the
	// last two periods (64 s each) could come back.
	SynCookiesAuto SynCookieMode = iota
	// SynCookiesOff drops SYNs that find the SYN queue full.
	SynCookiesOff
	// SynCookiesAlways answers every SYN with a cookie: no SYN queue.
	SynCookiesAlways
)

func (m SynCookieMode) String() string {
	switch m {
	case SynCookiesAuto:
		return "auto"
	case SynCookiesOff:
		return "off"
	case SynCookiesAlways:
		return "always"
	}
	return "unknown"
}

// RateLimit is a token bucket: Rate per second on average, in bursts of
// up to Burst (0: one second's worth, at least 1). A zero Rate is no limit.
type RateLimit struct {
	Rate  float64
	Burst int
}

func (r RateLimit) burst() float64 {
	if r.Burst > 0 {
		return float64(r.Burst)
	}
	return max(1, r.Rate)
}

// SynRateLimits bound the SYNs listeners take, before any queue or cookie;
// a SYN over a limit is dropped and counted (SynRateLimited, ListenDrops).
// All off by default.
type SynRateLimits struct {
	// PerListener bounds the SYNs each listener takes.
	PerListener RateLimit
	// PerPrefix bounds the SYNs from each source prefix, /24 for IPv4 and
	// /64 for IPv6, whatever listener they go to. A SYN flood from spoofed
	// random addresses goes round it; one from a network, or a few hosts,
	// does not.
	PerPrefix RateLimit
	// PrefixSlots is the size of the per-prefix table: a fixed array of
	// buckets chosen by a keyed hash of the prefix, where a prefix takes
	// over the slot of another that hashes alike (starting with a full
	// bucket), so memory is bounded whatever the sources. Default 4096
	// (96 KiB).
	PrefixSlots int
}

// DefaultPrefixSlots is SynRateLimits.PrefixSlots's default.
const DefaultPrefixSlots = 4096

// synDefence is the stack-wide part: the cookie keys, the per-prefix
// table, and which connection a segment handled at a listener is traced as.
type synDefence struct {
	cookies  *tcp.SynCookies
	prefixes []prefixSlot
	pkey     [2]uint64
}

// tracedAs, while set, names the connection (a SYN-queue entry, or the
// listener itself for a cookie) that the received segment being processed
// in a shard and the segments it causes are traced as.
type tracedAs struct {
	cid      uint64
	from, to tcp.State
}

type prefixSlot struct {
	tag    uint64 // the prefix's hash; 0: free
	last   int64  // Unix nanoseconds of the last refill
	tokens float64
}

func (s *Stack) rand() io.Reader {
	if s.opts.Rand != nil {
		return s.opts.Rand
	}
	return rand.Reader
}

func (s *Stack) synCookies() *tcp.SynCookies {
	if s.syn.cookies == nil {
		s.syn.cookies = tcp.NewSynCookies(s.rand())
	}
	return s.syn.cookies
}

// tokenBucket is one RateLimit's state.
type tokenBucket struct {
	last   int64 // Unix nanoseconds of the last refill; 0: never used
	tokens float64
}

func takeToken(r RateLimit, last *int64, tokens *float64, now time.Time) bool {
	t := now.UnixNano()
	if *last == 0 {
		*tokens = r.burst()
	} else if d := t - *last; d > 0 {
		*tokens = min(r.burst(), *tokens+r.Rate*float64(d)/1e9)
	}
	*last = t
	if *tokens < 1 {
		return false
	}
	*tokens--
	return true
}

// synAllowed applies the rate limits to a SYN from src for l.
func (s *Stack) synAllowed(l *Listener, src netip.Addr, now time.Time) bool {
	lim := &s.opts.SynRateLimit
	if lim.PerPrefix.Rate > 0 {
		if s.syn.prefixes == nil {
			slots := lim.PrefixSlots
			if slots <= 0 {
				slots = DefaultPrefixSlots
			}
			s.syn.prefixes = make([]prefixSlot, slots)
			var b [16]byte
			if _, err := io.ReadFull(s.rand(), b[:]); err != nil {
				panic("stack: reading the prefix-table key: " + err.Error())
			}
			s.syn.pkey = [2]uint64{binary.LittleEndian.Uint64(b[:8]), binary.LittleEndian.Uint64(b[8:])}
		}
		bits := 64
		if src.Is4() {
			bits = 24
		}
		p, _ := src.Prefix(bits)
		a := p.Addr().As16()
		tag := siphash.Sum64(s.syn.pkey[0], s.syn.pkey[1], a[:]) | 1
		sl := &s.syn.prefixes[tag%uint64(len(s.syn.prefixes))]
		if sl.tag != tag {
			*sl = prefixSlot{tag: tag}
		}
		if !takeToken(lim.PerPrefix, &sl.last, &sl.tokens, now) {
			return false
		}
	}
	if lim.PerListener.Rate > 0 && !takeToken(lim.PerListener, &l.bucket.last, &l.bucket.tokens, now) {
		return false
	}
	return true
}

// listenerSegment handles a segment that found no connection but the
// listener l: the SYN-queue entry of its 4-tuple if there is one, else
// LISTEN's rules (RFC 9293 3.10.7.2) with the defences in front. It
// returns the connection to hand seg to, if any, and the state seg found.
func (sh *shard) listenerSegment(l *Listener, n *nic, id tcp.Tuple, seg *tcp.Segment, now time.Time) (*TCPConn, tcp.State) {
	if h := l.half[id]; h != nil {
		return sh.halfOpenSegment(l, h, seg, now), tcp.SynReceived
	}
	// The listener's drops are named as the core names them in LISTEN
	// (tcp/input.go), since here the core never sees the segment.
	switch {
	case seg.Flags&wire.RST != 0:
		// RFC 9293 3.10.7.2: an RST to LISTEN is ignored.
		sh.segmentDropped(tcp.DropListenRST)
		return nil, tcp.Listen
	case seg.Flags&wire.ACK != 0:
		if tc, took := sh.synCookieACK(l, n, id, seg, now); took {
			return tc, tcp.Listen
		}
		// RFC 9293 3.10.7.2: any ACK to LISTEN gets <SEQ=SEG.ACK><CTL=RST>.
		sh.segmentDropped(tcp.DropListenACK)
		sh.resetFor(n, id, seg)
		return nil, tcp.Listen
	case seg.Flags&wire.SYN != 0:
		return sh.onSYN(l, n, id, seg, now), tcp.Closed
	}
	// No SYN, ACK or RST: drop (RFC 9293 3.10.7.2 "fourth other").
	sh.segmentDropped(tcp.DropListenNoSYN)
	return nil, tcp.Listen
}

// traceAs makes the segment being received, and what it causes, be
// traced as connection cid going from -> to (it has no TCPConn).
func (sh *shard) traceAs(cid uint64, from, to tcp.State) {
	if sh.s.trace != nil {
		sh.as.cid, sh.as.from, sh.as.to = cid, from, to
	}
}

// tracedAs returns, and forgets, what traceAs set.
func (sh *shard) tracedAs() (cid uint64, from, to tcp.State, ok bool) {
	a := sh.as
	sh.as.cid = 0
	return a.cid, a.from, a.to, a.cid != 0
}

// halfOpen is one entry of a listener's SYN queue: a passive open in
// SYN-RECEIVED with no TCB.
type halfOpen struct {
	id  tcp.Tuple
	hs  tcp.Handshake
	cid uint64
	nic *nic
	cfg *tcp.Config
	due time.Time // the next SYN,ACK retransmission, or the give-up
	end bool      // at due the handshake is given up
	idx int       // in the listener's halfQ
}

// halfHeap orders a listener's SYN-queue entries by due.
type halfHeap []*halfOpen

func (q halfHeap) less(i, j int) bool { return q[i].due.Before(q[j].due) }

func (q halfHeap) swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].idx, q[j].idx = i, j
}

func (q halfHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !q.less(i, p) {
			return
		}
		q.swap(i, p)
		i = p
	}
}

func (q halfHeap) down(i int) {
	for {
		c := 2*i + 1
		if c >= len(q) {
			return
		}
		if r := c + 1; r < len(q) && q.less(r, c) {
			c = r
		}
		if !q.less(c, i) {
			return
		}
		q.swap(i, c)
		i = c
	}
}

func (q *halfHeap) push(h *halfOpen) {
	h.idx = len(*q)
	*q = append(*q, h)
	q.up(h.idx)
}

func (q *halfHeap) remove(h *halfOpen) {
	old := *q
	i, last := h.idx, len(old)-1
	if i != last {
		old.swap(i, last)
	}
	old[last] = nil
	*q = old[:last]
	if i != last {
		q.down(i)
		q.up(i)
	}
	h.idx = -1
}

// enqueueSYN makes a SYN-queue entry for seg and answers it.
func (sh *shard) enqueueSYN(l *Listener, n *nic, id tcp.Tuple, seg *tcp.Segment, now time.Time) {
	s := sh.s
	cfg := s.configFor(n, id.Remote.Addr(), l.cc)
	h := l.newHalf()
	*h = halfOpen{id: id, cid: s.nextConnID(), nic: n, cfg: cfg, hs: tcp.NewHandshake(cfg, id, seg, now)}
	if l.half == nil {
		l.half = make(map[tcp.Tuple]*halfOpen)
	}
	l.half[id] = h
	l.synQ++
	l.synQMax = max(l.synQMax, l.synQ)
	// The transitions a TCB made for this SYN would report (RFC 9293
	// 3.10.7.2: a new TCB copies the listener, then takes the SYN).
	sh.traceAs(h.cid, tcp.Closed, tcp.SynReceived)
	sh.stateChanged(h.cid, id, tcp.Transition{Time: now, From: tcp.Closed, To: tcp.Listen, Cause: tcp.UserListen})
	sh.stateChanged(h.cid, id, tcp.Transition{Time: now, From: tcp.Listen, To: tcp.SynReceived, Cause: tcp.RcvSYN})
	sh.sendSynAck(h, now)
	due, more := h.hs.RetransmitAt(cfg, now)
	h.due, h.end = due, !more
	l.halfQ.push(h)
	s.armSynTimer(l)
}

// sendSynAck sends (again) the SYN,ACK of h.
func (sh *shard) sendSynAck(h *halfOpen, now time.Time) {
	seg := &sh.synOut // not a local: it would escape (shard.go)
	*seg = h.hs.SynAck(h.cfg, h.id, now)
	sh.s.memState().ClampSYN(seg) // under memory pressure (memory.go)
	sh.sendAs(h.nic, h.id, seg, h.cid, tcp.SynReceived)
}

// sendAs sends seg, which belongs to no TCPConn, traced as connection cid
// in state st.
func (sh *shard) sendAs(n *nic, id tcp.Tuple, seg *tcp.Segment, cid uint64, st tcp.State) {
	saved := sh.as
	sh.as.cid, sh.as.from, sh.as.to = cid, st, st
	sh.sendSegment(n, id, seg, nil, false)
	sh.as = saved
}

// halfOpenSegment handles a segment for the SYN-queue entry h. A
// retransmitted SYN is answered from h; anything else makes h a
// connection (still in the SYN queue, in SYN-RECEIVED) that takes it.
func (sh *shard) halfOpenSegment(l *Listener, h *halfOpen, seg *tcp.Segment, now time.Time) *TCPConn {
	s := sh.s
	sh.traceAs(h.cid, tcp.SynReceived, tcp.SynReceived)
	if seg.Flags&(wire.SYN|wire.ACK|wire.RST) == wire.SYN && seg.Seq == h.hs.IRS {
		// Our SYN,ACK was lost: send it again, as a TCB does (and
		// names the drop so).
		sh.segmentDropped(tcp.DropSYNRetransmit)
		sh.sendSynAck(h, now)
		return nil
	}
	if len(l.acceptQ) >= l.backlog && seg.Flags&(wire.ACK|wire.RST|wire.SYN) == wire.ACK {
		// As acceptFull: ignore the ACK; the SYN,ACK is retransmitted
		// and the peer's next ACK may find room.
		s.overflow(l)
		return nil
	}
	sh.as.cid = 0 // the TCPConn is traced as itself
	delete(l.half, h.id)
	l.halfQ.remove(h)
	tc := sh.resume(l, h.nic, h.id, h.cfg, &h.hs, h.cid, h.hs.Sent, now)
	l.freeHalf(h) // resume copied what it needs of h.hs
	s.armSynTimer(l)
	return tc
}

// halfFreeMax bounds a listener's free list of SYN-queue entries: enough
// for the handshakes that complete between two SYNs of a busy listener
// (16 clients at once need 16), some 13 KB at most.
const halfFreeMax = 64

// newHalf returns a SYN-queue entry to fill in, one of an ended handshake
// if l keeps one. An entry is some 200 bytes; a short connection used to
// allocate one (issue 13 item 6).
func (l *Listener) newHalf() *halfOpen {
	n := len(l.halfFree)
	if n == 0 {
		return new(halfOpen)
	}
	h := l.halfFree[n-1]
	l.halfFree[n-1] = nil
	l.halfFree = l.halfFree[:n-1]
	return h
}

// freeHalf keeps h, out of the SYN queue and referenced from nowhere, for
// a later SYN.
func (l *Listener) freeHalf(h *halfOpen) {
	if len(l.halfFree) < halfFreeMax {
		*h = halfOpen{}
		l.halfFree = append(l.halfFree, h)
	}
}

// resume makes the connection of a handshake in SYN-RECEIVED, in l's SYN
// queue (the caller counted it in l.synQ).
func (sh *shard) resume(l *Listener, n *nic, id tcp.Tuple, cfg *tcp.Config, hs *tcp.Handshake, cid uint64, created, now time.Time) *TCPConn {
	s := sh.s
	tc := &TCPConn{
		s: s, sh: sh, id: id, cid: cid, nic: n, cfg: cfg, created: created, timerIdx: -1, linger: -1,
		listener: l, inSynQ: true, lastState: tcp.SynReceived,
	}
	tc.tcb = sh.resumeTCB(cfg, id, tc, hs, now)
	sh.conns[id] = tc
	l.children[tc] = struct{}{}
	return tc
}

func (s *Stack) overflow(l *Listener) {
	s.ctr.TCP.ListenOverflows.add(1)
	s.ctr.TCP.ListenDrops.add(1)
	l.stats.overflows++
	l.stats.drops++
}

// armSynTimer points l's timer at its earliest SYN-queue deadline.
func (s *Stack) armSynTimer(l *Listener) {
	if len(l.halfQ) == 0 || l.closed {
		return
	}
	at := l.halfQ[0].due
	if !l.synTimerAt.IsZero() && !l.synTimerAt.After(at) {
		return
	}
	l.synTimerAt = at
	d := max(at.Sub(s.clock.Now()), 0)
	if l.synTimer == nil {
		l.synTimer = s.clock.AfterFunc(d, l.onSynTimer)
		return
	}
	l.synTimer.Reset(d)
}

// onSynTimer is l's SYN-queue timer firing.
// onSynTimer is the listener's SYN,ACK timer firing: under s.mu held for
// writing, since the entries' tuples lie in every shard.
func (l *Listener) onSynTimer() { l.s.run(l.synTimers) }

// synTimers retransmits the SYN,ACKs that are due at now and gives up the
// handshakes whose retries are spent, as a TCB in SYN-RECEIVED does
// (tcp retransmissionTimeout): RST, then back to LISTEN, which for a
// child means gone.
func (l *Listener) synTimers(now time.Time) {
	if l.closed {
		return
	}
	s := l.s
	l.synTimerAt = time.Time{}
	for len(l.halfQ) > 0 && !l.halfQ[0].due.After(now) {
		h := l.halfQ[0]
		if h.end {
			l.halfQ.remove(h)
			delete(l.half, h.id)
			l.synQ--
			rst := tcp.Segment{Seq: h.hs.ISS + 1, Flags: wire.RST}
			sh := s.shardOf(h.id)
			sh.sendAs(h.nic, h.id, &rst, h.cid, tcp.SynReceived)
			sh.stateChanged(h.cid, h.id, tcp.Transition{Time: now, From: tcp.SynReceived, To: tcp.Listen, Cause: tcp.RetransmitTimeout})
			sh.stateChanged(h.cid, h.id, tcp.Transition{Time: now, From: tcp.Listen, To: tcp.Closed, Cause: tcp.UserClose})
			l.freeHalf(h)
			continue
		}
		h.hs.Retransmits++
		s.ctr.TCP.RetransSegs.add(1)
		s.shardOf(h.id).sendSynAck(h, now)
		var more bool
		h.due, more = h.hs.RetransmitAt(h.cfg, now)
		h.end = !more
		l.halfQ.down(0)
	}
	s.armSynTimer(l)
}

// closeHalfOpen aborts l's SYN-queue entries as ABORT does a TCB in
// SYN-RECEIVED: <SEQ=SND.NXT><CTL=RST>, then CLOSED.
func (s *Stack) closeHalfOpen(l *Listener, now time.Time) {
	if l.synTimer != nil {
		l.synTimer.Stop()
		l.synTimerAt = time.Time{}
	}
	for _, h := range l.halfQ {
		rst := tcp.Segment{Seq: h.hs.ISS + 1, Flags: wire.RST}
		sh := s.shardOf(h.id)
		sh.sendAs(h.nic, h.id, &rst, h.cid, tcp.SynReceived)
		sh.stateChanged(h.cid, h.id, tcp.Transition{Time: now, From: tcp.SynReceived, To: tcp.Closed, Cause: tcp.UserAbort})
	}
	l.synQ -= len(l.halfQ)
	clear(l.halfQ)
	l.halfQ = nil
	l.half = nil
}

// halfOpenInfo lists l's SYN-queue entries for Connections.
func (l *Listener) halfOpenInfo(now time.Time, out []ConnInfo) []ConnInfo {
	for _, h := range l.halfQ {
		out = append(out, ConnInfo{ID: h.cid, Tuple: h.id, State: tcp.SynReceived, Info: h.hs.Info(h.cfg), Age: now.Sub(h.hs.Sent)})
	}
	return out
}

// listenerStats are one listener's share of the stack's counters.
type listenerStats struct {
	cookiesSent, cookiesRecv, cookiesFailed uint64
	overflows, drops, rateLimited           uint64
}

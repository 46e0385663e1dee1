package stack

import (
	"context"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/synack/synack/clock"
	"github.com/synack/synack/tcp"
	"github.com/synack/synack/wire"
)

// Listener is a TCP listener, a net.Listener. It keeps a SYN queue
// (children in SYN-RECEIVED, bounded by Options.SynBacklog) and an accept
// queue (handshakes completed, bounded by the backlog).
type Listener struct {
	s       *Stack
	addr    netip.AddrPort // Addr() zero: every address of both families
	v6only  bool           // addr is :: and takes IPv6 only
	tcb     *tcp.Conn      // in LISTEN: reports the listener's own transitions
	cid     uint64
	gate    *clock.Gate
	created time.Time
	cc      ConnConfig // what its connections are made with (connconfig.go)

	backlog  int
	synQ     int                     // the SYN queue's length: half plus children
	half     map[tcp.Tuple]*halfOpen // the SYN queue: entries without a TCB
	halfQ    halfHeap                // the same, by SYN,ACK retransmission time
	halfFree []*halfOpen             // entries of ended handshakes, for the next SYNs (syndefence.go)
	children map[*TCPConn]struct{}   // the SYN queue: TCBs in SYN-RECEIVED
	acceptQ  []*TCPConn
	waiters  int32
	closed   bool
	deadline time.Time

	synTimer   clock.Timer // retransmits the SYN,ACKs of half
	synTimerAt time.Time

	synQMax, acceptQMax int // high-water marks
	bucket              tokenBucket
	stats               listenerStats
}

var _ net.Listener = (*Listener)(nil)

// listenerSink reports the listener's transitions; a LISTEN tcp.Conn never
// sends.
type listenerSink Listener

func (k *listenerSink) SendSegment(*tcp.Conn, *tcp.Segment) {}

func (k *listenerSink) StateChanged(c *tcp.Conn, t tcp.Transition) {
	l := (*Listener)(k)
	l.s.shards[0].stateChanged(l.cid, c.ID(), t) // under s.mu held for writing
}

// Listen listens on address ("host:port", host an IP address or empty for
// every address) for network "tcp", "tcp4" or "tcp6", like net.Listen.
// Port 0 chooses an ephemeral port. The backlog is Options.ListenBacklog.
// ctx only bounds the call (which never blocks).
func (s *Stack) Listen(ctx context.Context, network, address string) (net.Listener, error) {
	if err := ctx.Err(); err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	ap, v6only, err := parseListenAddr(network, address)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	l, err := s.listen(ap, v6only, s.opts.ListenBacklog, ConnConfig{})
	if err != nil {
		return nil, err
	}
	return l, nil
}

// ListenTCP listens on addr with an accept queue of backlog connections
// (<= 0: Options.ListenBacklog). An unspecified address (0.0.0.0, or :: for
// both families, or the zero Addr for both) listens on every address.
func (s *Stack) ListenTCP(addr netip.AddrPort, backlog int) (*Listener, error) {
	return s.ListenTCPWith(addr, backlog, ConnConfig{})
}

// ListenTCPWith is ListenTCP whose connections are made with cc instead
// of Options.TCP where cc sets a field: buffer sizes (and so the window
// scale their SYN,ACK offers), congestion control, keep-alive. An unknown
// congestion control name fails here.
func (s *Stack) ListenTCPWith(addr netip.AddrPort, backlog int, cc ConnConfig) (*Listener, error) {
	a := addr.Addr().Unmap()
	if a == netip.IPv6Unspecified() {
		a = netip.Addr{}
	}
	if backlog <= 0 {
		backlog = s.opts.ListenBacklog
	}
	return s.listen(netip.AddrPortFrom(a, addr.Port()), false, backlog, cc)
}

func parseListenAddr(network, address string) (netip.AddrPort, bool, error) {
	host, port, err := splitHostPort(address)
	if err != nil {
		return netip.AddrPort{}, false, err
	}
	var a netip.Addr
	if host != "" {
		if a, err = netip.ParseAddr(host); err != nil {
			return netip.AddrPort{}, false, &net.AddrError{Err: "no such host (synack resolves no names)", Addr: host}
		}
		a = a.Unmap()
	}
	v6only := false
	switch network {
	case "tcp":
		if a == netip.IPv6Unspecified() {
			a = netip.Addr{}
		}
	case "tcp4":
		if !a.IsValid() {
			a = netip.IPv4Unspecified()
		} else if !a.Is4() {
			return netip.AddrPort{}, false, &net.AddrError{Err: "non-IPv4 address", Addr: address}
		}
	case "tcp6":
		if !a.IsValid() {
			a = netip.IPv6Unspecified()
		} else if a.Is4() {
			return netip.AddrPort{}, false, &net.AddrError{Err: "non-IPv6 address", Addr: address}
		}
		v6only = a.IsUnspecified()
	default:
		return netip.AddrPort{}, false, net.UnknownNetworkError(network)
	}
	return netip.AddrPortFrom(a, port), v6only, nil
}

func (s *Stack) listen(ap netip.AddrPort, v6only bool, backlog int, cc ConnConfig) (*Listener, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fail := func(errno syscall.Errno) error {
		return opError("listen", "bind", netip.AddrPort{}, ap, errno)
	}
	if s.closed {
		return nil, opError("listen", "bind", netip.AddrPort{}, ap, net.ErrClosed)
	}
	if s.cfgErr != nil {
		return nil, opError("listen", "bind", netip.AddrPort{}, ap, s.cfgErr)
	}
	if err := s.checkConnConfig(cc); err != nil {
		return nil, opError("listen", "bind", netip.AddrPort{}, ap, err)
	}
	a := ap.Addr()
	if a.IsValid() && !a.IsUnspecified() {
		if _, ok := s.local[a]; !ok {
			return nil, fail(syscall.EADDRNOTAVAIL)
		}
	}
	port := ap.Port()
	if port == 0 {
		var ok bool
		if port, ok = s.pickListenPort(a); !ok {
			return nil, fail(syscall.EADDRINUSE)
		}
		ap = netip.AddrPortFrom(a, port)
	}
	for _, o := range s.lports[port] {
		if listenOverlap(o.addr.Addr(), a) {
			return nil, fail(syscall.EADDRINUSE)
		}
	}
	l := s.newListener(ap, v6only, backlog)
	l.cc = cc
	s.lports[port] = append(s.lports[port], l)
	return l, nil
}

// newListener makes a listener on ap, in LISTEN; the caller installs it
// (in lports, or as the forwarder).
func (s *Stack) newListener(ap netip.AddrPort, v6only bool, backlog int) *Listener {
	now := s.clock.Now()
	l := &Listener{
		s: s, addr: ap, v6only: v6only, cid: s.nextConnID(), gate: s.clock.NewGate(),
		created: now, backlog: backlog, children: make(map[*TCPConn]struct{}),
	}
	l.tcb = tcp.NewConn(&s.cfg, tcp.Tuple{Local: ap}, (*listenerSink)(l))
	l.tcb.Listen(now)
	return l
}

// listenOverlap reports whether listeners on a and b (same port) would
// take the same segments.
func listenOverlap(a, b netip.Addr) bool {
	if !a.IsValid() || !b.IsValid() || a == b {
		return true
	}
	// An unspecified address covers its family; "::" only IPv6 (the
	// dual-stack wildcard is the zero Addr, handled above).
	covers := func(w, x netip.Addr) bool { return w.IsUnspecified() && w.Is4() == x.Is4() }
	return covers(a, b) || covers(b, a)
}

// lookupListener finds the listener for a segment to local: an exact
// address first, then the family's wildcard, then the dual wildcard.
func (s *Stack) lookupListener(local netip.AddrPort) *Listener {
	var fam, dual *Listener
	for _, l := range s.lports[local.Port()] {
		a := l.addr.Addr()
		switch {
		case a == local.Addr():
			return l
		case !a.IsValid():
			dual = l
		case a.IsUnspecified() && a.Is4() == local.Addr().Is4():
			fam = l
		}
	}
	if fam != nil {
		return fam
	}
	return dual
}

// onSYN handles a SYN for listener l (the order is explained in
// syndefence.go): rate limits, accept queue, SYN cookies, SYN queue. It
// answers the SYN itself and returns nil: a half-open connection has no
// TCPConn until a segment for it arrives (listenerSegment).
func (sh *shard) onSYN(l *Listener, n *nic, id tcp.Tuple, seg *tcp.Segment, now time.Time) *TCPConn {
	s := sh.s
	if !s.synAllowed(l, id.Remote.Addr(), now) {
		s.ctr.TCP.SynRateLimited.add(1)
		s.ctr.TCP.ListenDrops.add(1)
		l.stats.rateLimited++
		l.stats.drops++
		return nil
	}
	if len(l.acceptQ) >= l.backlog {
		// Linux drops a SYN when the accept queue is full, even with
		// SYN cookies: there would be nowhere to put the connection.
		s.overflow(l)
		return nil
	}
	if s.opts.SynCookies == SynCookiesAlways || l.synQ >= s.synBacklog(l) { // forward.go
		if sh.synCookieSYN(l, n, id, seg, now) {
			return nil
		}
		s.ctr.TCP.ListenDrops.add(1)
		l.stats.drops++
		return nil
	}
	sh.enqueueSYN(l, n, id, seg, now)
	return nil
}

// synCookieSYN answers a SYN with a SYN cookie (RFC 4987 section 3.6):
// a SYN,ACK whose ISS encodes what the ACK needs to rebuild the
// handshake, and no state (SyncookiesSent). It reports whether it
// answered: not when cookies are off.
func (sh *shard) synCookieSYN(l *Listener, n *nic, id tcp.Tuple, seg *tcp.Segment, now time.Time) bool {
	s := sh.s
	if s.opts.SynCookies == SynCookiesOff {
		return false
	}
	cfg := s.configFor(n, id.Remote.Addr(), l.cc)
	synack := &sh.synOut // not a local: it would escape (shard.go)
	*synack = s.synCookies().Make(cfg, id, seg, now)
	s.memState().ClampSYN(synack) // under memory pressure (memory.go)
	sh.traceAs(l.cid, tcp.Listen, tcp.Listen)
	sh.sendAs(n, id, synack, l.cid, tcp.Listen)
	s.ctr.TCP.SyncookiesSent.add(1)
	l.stats.cookiesSent++
	return true
}

// synCookieACK checks an ACK that reaches listener l with no SYN-queue
// entry for the cookie it should carry. A valid one (SyncookiesRecv)
// makes the connection, in SYN-RECEIVED, which the ACK then takes to
// ESTABLISHED; it is returned, with took set. An invalid one is counted
// (SyncookiesFailed) when cookies could have been sent, and not taken: the
// caller answers it with RST as RFC 9293 3.10.7.2 says for any ACK to
// LISTEN. A valid one that finds the accept queue full is taken and
// dropped (ListenOverflows); the peer will send again.
func (sh *shard) synCookieACK(l *Listener, n *nic, id tcp.Tuple, seg *tcp.Segment, now time.Time) (tc *TCPConn, took bool) {
	s := sh.s
	mode := s.opts.SynCookies
	if mode == SynCookiesOff || s.syn.cookies == nil || (mode == SynCookiesAuto && !s.syn.cookies.Recent(now)) {
		return nil, false
	}
	cfg := s.configFor(n, id.Remote.Addr(), l.cc)
	hs, ok := s.syn.cookies.Check(cfg, id, seg, now)
	if !ok {
		s.ctr.TCP.SyncookiesFailed.add(1)
		l.stats.cookiesFailed++
		return nil, false
	}
	if len(l.acceptQ) >= l.backlog {
		s.overflow(l)
		return nil, true
	}
	s.ctr.TCP.SyncookiesRecv.add(1)
	l.stats.cookiesRecv++
	// In the SYN queue for the moment its ACK takes to move it to the
	// accept queue (settle), never seen outside the lock: not counted in
	// the high-water mark.
	l.synQ++
	tc = sh.resume(l, n, id, cfg, &hs, s.nextConnID(), now, now)
	// The connection begins here; it reports the passive open a TCB
	// would have (CLOSED -> LISTEN -> SYN-RECEIVED) and the ACK takes it on.
	sh.stateChanged(tc.cid, id, tcp.Transition{Time: now, From: tcp.Closed, To: tcp.Listen, Cause: tcp.UserListen})
	sh.stateChanged(tc.cid, id, tcp.Transition{Time: now, From: tcp.Listen, To: tcp.SynReceived, Cause: tcp.RcvSYNCookie})
	return tc, true
}

// acceptFull reports whether a segment completing tc's handshake must be
// dropped because its listener's accept queue is full. Like Linux (with
// tcp_abort_on_overflow off) we ignore the ACK: the child stays in
// SYN-RECEIVED, retransmits its SYN,ACK, and the peer's next ACK may find
// room.
func (tc *TCPConn) acceptFull(seg *tcp.Segment) bool {
	if !tc.inSynQ || seg.Flags&(wire.ACK|wire.RST|wire.SYN) != wire.ACK {
		return false
	}
	s := tc.s
	s.lmu.Lock() // the accept queue (shard.go)
	defer s.lmu.Unlock()
	l := tc.listener
	full := len(l.acceptQ) >= l.backlog
	if full {
		l.stats.overflows++ // the caller counts the stack's ListenOverflows
		l.stats.drops++
	}
	return full
}

// Accept waits for and returns the next connection.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.AcceptTCP()
	if err != nil {
		return nil, err
	}
	return c, nil
}

// AcceptTCP waits for and returns the next connection, in ESTABLISHED or
// a later state (CLOSE-WAIT if the peer's FIN came with its ACK; CLOSED if
// it was reset while queued, so its Read reports ECONNRESET).
func (l *Listener) AcceptTCP() (*TCPConn, error) {
	s := l.s
	var tc *TCPConn
	err := s.block(acceptLocker{s}, &l.gate, &l.waiters, &l.deadline, nil, func() error {
		switch {
		case l.closed || s.closed:
			return net.ErrClosed
		case !l.deadline.IsZero() && expired(s.clock.Now(), &l.deadline):
			return os.ErrDeadlineExceeded
		case len(l.acceptQ) == 0:
			return tcp.ErrWouldBlock
		}
		tc = l.acceptQ[0]
		l.acceptQ[0] = nil
		if len(l.acceptQ) == 1 {
			// Emptied in place, keeping the array for the next
			// connection: taking one at a time (the usual accept loop)
			// allocates nothing. Only a queue that held several moves
			// its start, and reallocates when it reaches the end.
			l.acceptQ = l.acceptQ[:0]
		} else {
			l.acceptQ = l.acceptQ[1:]
		}
		tc.listener = nil
		tc.inAcceptQ = false
		return nil
	})
	if err != nil {
		return nil, l.opErr("accept", err)
	}
	return tc, nil
}

// SetDeadline sets the deadline of Accept calls, pending ones included.
func (l *Listener) SetDeadline(t time.Time) error {
	l.s.mu.Lock()
	l.deadline = t
	l.s.mu.Unlock()
	l.gate.Broadcast()
	return nil
}

// Close stops listening. Connections not yet accepted are reset; blocked
// Accepts return net.ErrClosed.
func (l *Listener) Close() error {
	var g *clock.Gate
	l.s.run(func(now time.Time) {
		if !l.closed {
			g = l.closeLocked(now)
		}
	})
	if g == nil {
		return l.opErr("close", net.ErrClosed)
	}
	g.Broadcast()
	return nil
}

// closeLocked closes l and resets its children; the caller broadcasts the
// returned gate after unlocking.
func (l *Listener) closeLocked(now time.Time) *clock.Gate {
	s := l.s
	l.closed = true
	s.forwarderClosed(l) // forward.go
	ls := s.lports[l.addr.Port()]
	for i, x := range ls {
		if x == l {
			ls = append(ls[:i], ls[i+1:]...)
			break
		}
	}
	if len(ls) == 0 {
		delete(s.lports, l.addr.Port())
	} else {
		s.lports[l.addr.Port()] = ls
	}
	l.tcb.Release(now, true)
	s.closeHalfOpen(l, now)
	for tc := range l.children {
		tc.userClosed = true
		s.callLocked(tc, now, abort)
	}
	for _, tc := range l.acceptQ {
		tc.userClosed = true
		tc.listener = nil
		s.callLocked(tc, now, func(now time.Time, c *tcp.Conn) error {
			c.Release(now, true) // never accepted: closed as an abort, with RST
			return nil
		})
	}
	l.acceptQ = nil
	return l.gate
}

// Addr returns the listening address, a *net.TCPAddr.
func (l *Listener) Addr() net.Addr {
	if !l.addr.Addr().IsValid() {
		return &net.TCPAddr{IP: net.IPv6unspecified, Port: int(l.addr.Port())}
	}
	return net.TCPAddrFromAddrPort(l.addr)
}

// AddrPort returns the listening address; the zero Addr means every
// address of both families.
func (l *Listener) AddrPort() netip.AddrPort { return l.addr }

func (l *Listener) opErr(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Addr: l.Addr(), Err: err}
}

package stack

import (
	"net/netip"
	"time"
)

// ListenerInfo describes one listener and its two queues, as `ss -ltn`
// shows them (Recv-Q the accept queue, Send-Q its bound).
type ListenerInfo struct {
	ID          uint64         // the listener's number in events
	Addr        netip.AddrPort // the zero Addr listens on every address of both families
	AcceptQueue int            // handshakes completed, waiting for Accept
	Backlog     int            // the accept queue's bound
	SynQueue    int            // children in SYN-RECEIVED
	SynBacklog  int            // the SYN queue's bound (Options.SynBacklog)
	Age         time.Duration  // since Listen

	// High-water marks of the two queues since Listen, and this
	// listener's share of the stack's counters of the same names.
	AcceptQueueMax, SynQueueMax                      int
	SyncookiesSent, SyncookiesRecv, SyncookiesFailed uint64
	ListenOverflows, ListenDrops, SynRateLimited     uint64
}

// Listeners returns a snapshot of every listener's queues.
func (s *Stack) Listeners() []ListenerInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	var out []ListenerInfo
	for _, ls := range s.listenerSets() { // forward.go
		for _, l := range ls {
			out = append(out, ListenerInfo{
				ID: l.cid, Addr: l.addr, AcceptQueue: len(l.acceptQ), Backlog: l.backlog,
				SynQueue: l.synQ, SynBacklog: s.synBacklog(l), Age: now.Sub(l.created),
				AcceptQueueMax: l.acceptQMax, SynQueueMax: l.synQMax,
				SyncookiesSent: l.stats.cookiesSent, SyncookiesRecv: l.stats.cookiesRecv,
				SyncookiesFailed: l.stats.cookiesFailed, ListenOverflows: l.stats.overflows,
				ListenDrops: l.stats.drops, SynRateLimited: l.stats.rateLimited,
			})
		}
	}
	return out
}

// Options returns the options the stack runs with, defaults filled in:
// the ephemeral range, the backlogs, and the TCP knobs (MSL,
// FinWait2Timeout, retry counts, ...) as the connections use them.
func (s *Stack) Options() Options {
	o := s.opts
	o.TCP = s.cfg
	return o
}

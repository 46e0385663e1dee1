package stack

import (
	"reflect"
	"sync/atomic"
	"time"

	"github.com/synack/synack/tcp"
)

// Counters is a snapshot of the stack's counters, grouped and named as
// `netstat -s` prints them: RFC 4293 (IP), RFC 4022 (TCP) and Linux's
// TcpExt. Every field counts since New, except the gauges noted.
type Counters struct {
	IP   IPCounters
	ICMP ICMPCounters
	TCP  TCPCounters
	UDP  UDPCounters
	// EventsDropped counts events not delivered to a subscriber whose
	// channel was full.
	EventsDropped uint64
	// Drops counts the segments the TCP core discarded, indexed by
	// tcp.DropReason (like Linux's drop reasons): connections and
	// TIME-WAIT records together.
	Drops tcp.DropCounts
}

// IPCounters are IPv4 and IPv6 together (RFC 4293 ipSystemStats).
type IPCounters struct {
	InReceives      uint64 // packets received from links
	InHdrErrors     uint64 // malformed headers, bad header checksums
	InAddrErrors    uint64 // not addressed to us, or from a martian source (martian.go)
	InUnknownProtos uint64 // protocol we do not speak
	InDelivers      uint64 // handed to TCP or ICMP
	ReasmReqds      uint64 // fragments received (IPv6 atomic fragments included)
	ReasmOKs        uint64 // datagrams reassembled
	ReasmFails      uint64 // datagrams discarded (overlap, timeout, memory) and fragments refused (package ipreasm)
	ReasmTimeout    uint64 // datagrams discarded at their timeout (also in ReasmFails)
	OutRequests     uint64 // packets built
	OutNoRoutes     uint64 // dropped for want of a route
	OutDiscards     uint64 // refused by the link (too big, link down)
	FragOKs         uint64 // IPv4 datagrams sent in fragments (UDP, udp.go)
	FragCreates     uint64 // fragments those made
}

// ICMPCounters are ICMPv4 and ICMPv6 together (RFC 4293 icmpStats).
type ICMPCounters struct {
	InMsgs          uint64
	InErrors        uint64 // malformed or bad checksum
	InEchos         uint64
	InDestUnreachs  uint64
	InPktTooBigs    uint64 // IPv4 fragmentation needed, IPv6 packet too big
	InTimeExcds     uint64
	InErrorsMatched uint64 // errors quoting a segment of one of our connections
	OutMsgs         uint64
	OutEchoReps     uint64
	OutDestUnreachs uint64 // port unreachable for UDP datagrams to closed ports (udp.go)
	// OutRateLimitGlobal counts errors not sent for the stack-wide rate
	// limit (as Linux's Icmp OutRateLimitGlobal).
	OutRateLimitGlobal uint64
}

// UDPCounters are netstat's Udp group (RFC 4113 udp, and Linux's
// RcvbufErrors, SndbufErrors and InCsumErrors).
type UDPCounters struct {
	InDatagrams  uint64 // datagrams queued on a socket
	NoPorts      uint64 // datagrams to a port with no socket (answered with port unreachable)
	InErrors     uint64 // datagrams dropped otherwise: malformed, bad checksum, queue full
	OutDatagrams uint64 // datagrams sent
	RcvbufErrors uint64 // of InErrors, dropped because the socket's receive queue was full
	// SndbufErrors counts sends refused for want of send buffer: never
	// so far, as a datagram goes to the link at once, there is no send
	// buffer to fill. Kept so that the group is netstat's.
	SndbufErrors uint64
	InCsumErrors uint64 // of InErrors, bad checksums (a zero one over IPv6 included)
}

// TCPCounters are RFC 4022's tcp group and the Linux TcpExt fields the
// stack can know.
type TCPCounters struct {
	ActiveOpens  uint64 // CLOSED -> SYN-SENT
	PassiveOpens uint64 // LISTEN -> SYN-RECEIVED
	AttemptFails uint64 // SYN-SENT or SYN-RECEIVED -> CLOSED, SYN-RECEIVED -> LISTEN
	EstabResets  uint64 // ESTABLISHED or CLOSE-WAIT -> CLOSED
	CurrEstab    uint64 // gauge: connections in ESTABLISHED or CLOSE-WAIT
	InSegs       uint64 // segments received, errors included
	OutSegs      uint64 // segments sent, retransmissions included (as Linux)
	RetransSegs  uint64 // segments retransmitted
	InErrs       uint64 // segments received in error (checksum, header)
	InCsumErrors uint64 // of which bad checksums
	OutRsts      uint64 // segments sent with RST
	InNoSocket   uint64 // segments that reached no connection and no listener

	ListenOverflows   uint64 // handshakes or SYNs dropped: accept queue full
	ListenDrops       uint64 // all SYNs and handshakes dropped at a listener
	SyncookiesSent    uint64 // SYNs answered with a SYN cookie
	SyncookiesRecv    uint64 // ACKs with a valid cookie: connections made from one
	SyncookiesFailed  uint64 // ACKs to a listener with no valid cookie while cookies were out
	SynRateLimited    uint64 // SYNs dropped by Options.SynRateLimit
	TCPTimeWaitReopen uint64 // SYNs that reopened a 4-tuple in TIME-WAIT (RFC 6191)
	TCPTimeWaitReuse  uint64 // active opens that took over a 4-tuple in TIME-WAIT (Options.TimeWaitReuse)
	TCPAbortOnMemory  uint64 // orphans reset because there were more than Options.MaxOrphans

	// The memory budget (Options.MemoryLimit, memory.go), named as
	// Linux's TcpExt where it has the count.
	TCPMemoryPressures       uint64 // times the stack entered memory pressure
	TCPMemoryPressuresChrono uint64 // milliseconds spent in memory pressure (spells that ended; Stack.Memory has the current one)
	PruneCalled              uint64 // prune passes over the connections (pressure entered or the limit reached)
	OFOPruned                uint64 // out-of-order bytes those passes gave back (Linux counts packets)
	TCPRcvQDrop              uint64 // segments whose text was dropped, not queued: over the memory limit (in order or not; Linux splits off TCPOFODrop)
	TCPMemoryBytes           uint64 // gauge: memory in use: connections' buffers and IP reassembly, bytes
	TCPMemoryState           uint64 // gauge: 0 normal, 1 pressure, 2 over the limit (tcp.MemoryState)

	// Loss recovery (tcp.RecoveryCounts).
	TCPSackRecovery      uint64 // SACK loss recoveries entered (RFC 6675)
	TCPLossProbes        uint64 // Tail Loss Probes sent (RFC 8985)
	TCPLossProbeRecovery uint64 // tail losses repaired by a probe
	TCPDSACKRecv         uint64 // D-SACK blocks received (RFC 2883)
	TCPRACKLost          uint64 // segments RACK marked lost (RFC 8985)
	TCPSpuriousRetrans   uint64 // recoveries and timeouts found spurious (RFC 3522, 4015, 3708)
	TCPLossUndo          uint64 // window reductions undone after them
	TCPSACKReneging      uint64 // peers found to have dropped data they had SACKed (RFC 2018 section 8)

	// ECN (RFC 3168; tcp.Config.ECN).
	ECNNegotiated uint64 // connections established with ECN in use
	CEReceived    uint64 // segments received marked CE (Congestion Experienced) on those
	ECEReceived   uint64 // ACKs received with ECE (the peer echoing a CE mark)
	CWRSent       uint64 // segments sent with CWR (our window reduced)

	// Payload bytes of all the connections, as each one's tcp.Stats
	// counts them (RFC 4898's HCThruOctetsAcked and HCThruOctetsReceived,
	// Linux's tcp_info bytes_acked and bytes_received; netstat has no
	// such counter): acknowledged by the peers, and received in order.
	BytesAcked, BytesReceived uint64
}

// ctr64 is one counter, updated atomically so Counters needs no lock.
type ctr64 struct{ v atomic.Uint64 }

// add adds n. Adding zero writes nothing: count adds sixteen deltas per
// settle, mostly zeros, and an atomic add of zero still takes the cache
// line from the other core (3 % of a bulk transfer's CPU at MTU 65535).
func (c *ctr64) add(n uint64) {
	if n != 0 {
		c.v.Add(n)
	}
}

func (c *ctr64) dec() { c.v.Add(^uint64(0)) }

// counters mirrors Counters field by field with atomic counters.
type counters struct {
	IP struct {
		InReceives, InHdrErrors, InAddrErrors, InUnknownProtos, InDelivers ctr64
		ReasmReqds, ReasmOKs, ReasmFails, ReasmTimeout                     ctr64
		OutRequests, OutNoRoutes, OutDiscards                              ctr64
		FragOKs, FragCreates                                               ctr64
	}
	ICMP struct {
		InMsgs, InErrors, InEchos, InDestUnreachs, InPktTooBigs, InTimeExcds, InErrorsMatched ctr64
		OutMsgs, OutEchoReps, OutDestUnreachs, OutRateLimitGlobal                             ctr64
	}
	UDP struct {
		InDatagrams, NoPorts, InErrors, OutDatagrams, RcvbufErrors, SndbufErrors, InCsumErrors ctr64
	}
	TCP struct {
		ActiveOpens, PassiveOpens, AttemptFails, EstabResets, CurrEstab  ctr64
		InSegs, OutSegs, RetransSegs, InErrs, InCsumErrors, OutRsts      ctr64
		InNoSocket                                                       ctr64
		ListenOverflows, ListenDrops                                     ctr64
		SyncookiesSent, SyncookiesRecv, SyncookiesFailed, SynRateLimited ctr64
		TCPTimeWaitReopen, TCPTimeWaitReuse                              ctr64
		TCPAbortOnMemory                                                 ctr64
		TCPMemoryPressures, TCPMemoryPressuresChrono, PruneCalled        ctr64
		OFOPruned, TCPRcvQDrop, TCPMemoryBytes, TCPMemoryState           ctr64

		TCPSackRecovery, TCPLossProbes, TCPLossProbeRecovery, TCPDSACKRecv ctr64
		TCPRACKLost, TCPSpuriousRetrans, TCPLossUndo                       ctr64
		TCPSACKReneging                                                    ctr64
		ECNNegotiated, CEReceived, ECEReceived, CWRSent                    ctr64

		BytesAcked, BytesReceived ctr64
	}
	EventsDropped ctr64
	Drops         [tcp.NumDropReasons]ctr64
}

// Counters returns a snapshot of the counters. It takes no lock; counters
// read at slightly different instants may disagree by a packet.
func (s *Stack) Counters() Counters {
	var out Counters
	copyCounters(reflect.ValueOf(&out).Elem(), reflect.ValueOf(&s.ctr).Elem())
	return out
}

// copyCounters copies src (counters) into dst (Counters) by field name.
func copyCounters(dst, src reflect.Value) {
	for i := 0; i < dst.NumField(); i++ {
		name := dst.Type().Field(i).Name
		df, sf := dst.Field(i), src.FieldByName(name)
		if !sf.IsValid() {
			panic("stack: counter " + name + " has no twin")
		}
		switch df.Kind() {
		case reflect.Struct:
			copyCounters(df, sf)
			continue
		case reflect.Array:
			for j := range df.Len() {
				df.Index(j).SetUint(sf.Index(j).Addr().Interface().(*ctr64).v.Load())
			}
			continue
		}
		df.SetUint(sf.Addr().Interface().(*ctr64).v.Load())
	}
}

// count adds what a call into tcb counted to the stack's counters.
func (s *Stack) count(tcb *tcp.Conn) {
	d, ok := tcb.TakeCounts()
	if !ok {
		return
	}
	t := &s.ctr.TCP
	t.RetransSegs.add(d.RetransSegs)
	t.TCPRcvQDrop.add(d.TCPRcvQDrop)
	t.TCPSackRecovery.add(d.TCPSackRecovery)
	t.TCPLossProbes.add(d.TCPLossProbes)
	t.TCPLossProbeRecovery.add(d.TCPLossProbeRecovery)
	t.TCPDSACKRecv.add(d.TCPDSACKRecv)
	t.TCPRACKLost.add(d.TCPRACKLost)
	t.TCPSpuriousRetrans.add(d.TCPSpuriousRetrans)
	t.TCPLossUndo.add(d.TCPLossUndo)
	t.TCPSACKReneging.add(d.TCPSACKReneging)
	t.ECNNegotiated.add(d.ECNNegotiated)
	t.CEReceived.add(d.CEReceived)
	t.ECEReceived.add(d.ECEReceived)
	t.CWRSent.add(d.CWRSent)

	t.BytesAcked.add(d.BytesAcked)
	t.BytesReceived.add(d.BytesReceived)
}

// StateCounts returns how many connections are in each state, listeners
// (LISTEN) included.
func (s *Stack) StateCounts() map[tcp.State]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[tcp.State]int)
	s.allConns(func(tc *TCPConn) { m[tc.state()]++ })
	if k := s.numTimeWait(); k > 0 {
		m[tcp.TimeWait] += k
	}
	for _, ls := range s.listenerSets() { // forward.go
		m[tcp.Listen] += len(ls)
		for _, l := range ls {
			m[tcp.SynReceived] += len(l.half)
		}
	}
	return m
}

// ConnInfo is one row of Connections.
type ConnInfo struct {
	ID       uint64 // the connection's number in events
	Tuple    tcp.Tuple
	State    tcp.State
	Info     tcp.Info
	Age      time.Duration // since the connection was created; in TIME-WAIT once its owner closed it, since it entered TIME-WAIT
	Released bool          // its owner closed it; the stack finishes it alone
}

// Connections returns a snapshot of every connection in the demux table
// and every listener (with a zero remote address).
func (s *Stack) Connections() []ConnInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	out := make([]ConnInfo, 0, s.numConns()+s.numTimeWait()+len(s.lports))
	for _, ls := range s.listenerSets() { // forward.go
		for _, l := range ls {
			out = append(out, ConnInfo{ID: l.cid, Tuple: l.tcb.ID(), State: l.tcb.State(), Info: l.tcb.Info(), Age: now.Sub(l.created)})
			out = l.halfOpenInfo(now, out)
		}
	}
	s.allConns(func(tc *TCPConn) {
		out = append(out, ConnInfo{
			ID: tc.cid, Tuple: tc.id, State: tc.state(), Info: tc.info(),
			Age: now.Sub(tc.created), Released: tc.userClosed,
		})
	})
	for _, sh := range s.shards {
		sh.tw.all(func(r *twSlot) {
			out = append(out, ConnInfo{
				ID: r.cid, Tuple: r.tw.ID(), State: tcp.TimeWait, Info: r.tw.Info(),
				Age: now.Sub(r.tw.Entered()), Released: true,
			})
		})
	}
	return out
}

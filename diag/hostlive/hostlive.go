//go:build linux

// Package hostlive keeps a live model of the host kernel's TCP connections
// for `synack exporter --host` and `synack watch --host`. Two sources feed
// it, each for what it is right about:
//
//   - sock_diag snapshots (diag/host), taken periodically, are the truth
//     for how many sockets are in each state now, the listen queues, the
//     byte counts of tcp_info and the findings of diag's rules;
//   - the kernel's tracepoints (diag/hosttrace) give what a snapshot cannot
//     see: every transition (from → to), every RST sent or received, every
//     retransmitted segment and SYN-ACK, as they happen.
//
// Memory is bounded: the per-connection table (connections that were
// reset or retransmitted) holds at most Options.MaxConns entries, evicting
// the oldest closed ones first and counting the connections it could not
// keep; the recent transitions are a ring; the rates keep one sample per
// refresh over Options.RateWindow.
//
// Tracepoints are global, sock_diag answers for one network namespace: the
// transitions are the whole host's (narrow them with Options.Ports or
// Options.Keep), the counts are those of the namespace Options.Snapshot
// reads.
package hostlive

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/synack/synack/diag"
	"github.com/synack/synack/diag/host"
	"github.com/synack/synack/diag/hosttrace"
	"github.com/synack/synack/tcp"
)

// OtherPort is the port label of the sockets whose local port is not one
// of the labelled listening ports.
const OtherPort = "other"

// Options configure a Model. The zero value is usable.
type Options struct {
	// Snapshot reads the sockets; default host.Read without processes
	// (finding each socket's process scans every process's descriptors,
	// too slow to do every few seconds).
	Snapshot func() (diag.Snapshot, error)
	// Ports, when set, keeps only the sockets and events with one of
	// these ports at either end.
	Ports []uint16
	// Keep, when set, keeps only the events it accepts (after Ports).
	Keep func(*hosttrace.Event) bool
	// MaxConns bounds the per-connection table. Default 10000.
	MaxConns int
	// MaxPorts bounds the listening ports that get a label of their own
	// in Counts; the others count as OtherPort. Default 32.
	MaxPorts int
	// RateWindow is the span the transition rates are measured over.
	// Default 60 s.
	RateWindow time.Duration
	// History is how many recent transitions Recent keeps. Default 1000.
	History int
	// Thresholds for the findings.
	Thresholds diag.Thresholds
	// Now is the clock; default time.Now.
	Now func() time.Time
}

func (o *Options) defaults() {
	if o.Snapshot == nil {
		o.Snapshot = func() (diag.Snapshot, error) { return host.Read(host.Options{NoProcesses: true}) }
	}
	if o.MaxConns <= 0 {
		o.MaxConns = 10000
	}
	if o.MaxPorts <= 0 {
		o.MaxPorts = 32
	}
	if o.RateWindow <= 0 {
		o.RateWindow = time.Minute
	}
	if o.History <= 0 {
		o.History = 1000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Transition is one arrow of the state diagram: how many times kernel
// sockets went From → To since the model started, and how many a second
// over the rate window.
type Transition struct {
	From, To tcp.State
	Count    uint64
	Rate     float64 // per second over Options.RateWindow; 0 before two refreshes
}

// Conn is what the model knows about one connection that was reset or
// retransmitted: the kernel socket (Sock, hosttrace's key), its ends, its
// last known state, and its counts.
type Conn struct {
	Sock                   uint64
	Local, Remote          netip.AddrPort
	State                  tcp.State
	Retransmits            uint64 // segments retransmitted (tcp_retransmit_skb)
	SynAckRetransmits      uint64 // SYN-ACKs retransmitted (tcp_retransmit_synack)
	ResetsSent, ResetsRecv uint64
	First, Last            time.Time
	Closed                 bool // reached CLOSED or was freed
	gen                    uint64
}

// Record is one recent transition.
type Record struct {
	Seq           uint64
	Time          time.Time
	ID            uint64 // a small number per socket, as the ladder numbers connections
	Local, Remote netip.AddrPort
	From, To      tcp.State
}

// Totals are the model's counters since it started.
type Totals struct {
	ResetsSent, ResetsReceived uint64
	// ResetsSentNoSocket are RSTs answering a segment no socket
	// wanted (RFC 9293 3.10.7.1), also in ResetsSent.
	ResetsSentNoSocket uint64
	Retransmits        uint64 // segments
	SynAckRetransmits  uint64
	// BytesAcked and BytesReceived add up the tcp_info byte counts of the
	// sockets seen by the snapshots: each socket's growth between two
	// looks, and what it had at its first look. Bytes a socket moved after
	// the last look before it closed are not seen.
	BytesAcked, BytesReceived uint64
	Events                    uint64 // tracepoint events kept
	Lost                      uint64 // tracepoint events the kernel could not record
	ConnsDropped              uint64 // connections the per-connection table had no room for
	SnapshotErrors            uint64
}

// View is one consistent copy of the model.
type View struct {
	Start, Time time.Time
	// Snapshot is the latest sock_diag look (narrowed to Options.Ports),
	// Report its diagnosis against the previous look a second or more
	// older.
	Snapshot diag.Snapshot
	Report   diag.Report
	// Counts are sockets by state and port label: the local port when it
	// is one of the listening ports labelled, else OtherPort.
	Counts map[tcp.State]map[string]int
	// ListeningPorts are the listening ports with a label of their own
	// (at most Options.MaxPorts, those with the most sockets), in order.
	ListeningPorts []uint16
	Transitions    []Transition // in state order
	Totals         Totals
	Conns          []Conn // the per-connection table, most recently active first
	// LastSeq is the Seq of the newest transition; Recent are the kept
	// transitions newer than what View's caller asked for.
	LastSeq uint64
	Recent  []Record
}

// sample is the counters at one refresh, for the rates.
type sample struct {
	t     time.Time
	trans map[[2]tcp.State]uint64
}

type tuple struct{ local, remote netip.AddrPort }

// Model is the live model. Its methods may be called from any goroutine.
type Model struct {
	o     Options
	ports map[uint16]bool

	mu      sync.Mutex
	start   time.Time
	trans   map[[2]tcp.State]uint64
	totals  Totals
	markers uint64 // lost events the page markers reported
	conns   map[uint64]*Conn
	closed  []closedRef // FIFO of closed conns, oldest first
	gen     uint64
	ids     map[uint64]uint64
	nextID  uint64
	ring    []Record
	head, n int
	seq     uint64
	samples []sample
	bytes   map[tuple][2]uint64 // last bytes acked and received by socket
	snap    diag.Snapshot
	prev    *diag.Snapshot
	report  diag.Report
}

type closedRef struct {
	sock, gen uint64
}

// New returns an empty model; feed it with Event and Refresh, or Run.
func New(o Options) *Model {
	o.defaults()
	m := &Model{
		o: o, start: o.Now(),
		trans: map[[2]tcp.State]uint64{}, conns: map[uint64]*Conn{}, ids: map[uint64]uint64{},
		ring: make([]Record, o.History), bytes: map[tuple][2]uint64{},
	}
	if len(o.Ports) > 0 {
		m.ports = map[uint16]bool{}
		for _, p := range o.Ports {
			m.ports[p] = true
		}
	}
	return m
}

func (m *Model) portKept(a, b netip.AddrPort) bool {
	return m.ports == nil || m.ports[a.Port()] || m.ports[b.Port()]
}

// Event takes one tracepoint event into the model.
func (m *Model) Event(ev *hosttrace.Event) {
	if ev.Kind == hosttrace.KindLost {
		m.mu.Lock()
		m.markers += ev.Lost
		m.totals.Lost = max(m.totals.Lost, m.markers)
		m.mu.Unlock()
		return
	}
	if !m.portKept(ev.Local, ev.Remote) || (m.o.Keep != nil && !m.o.Keep(ev)) {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.totals.Events++
	switch ev.Kind {
	case hosttrace.KindState:
		m.trans[[2]tcp.State{ev.From, ev.To}]++
		m.record(ev)
		if c := m.conns[ev.Sock]; c != nil && ev.Sock != 0 {
			if c.Closed {
				// A closed socket changes state no more: this is a new
				// socket at a freed one's address. (Other events may
				// follow CLOSED: tcp_close sends its RST after it.)
				m.drop(ev.Sock)
			} else {
				m.touch(c, ev)
				c.State = ev.To
				if ev.To == tcp.Closed {
					m.close(c)
				}
			}
		}
	case hosttrace.KindDestroy:
		if c := m.conns[ev.Sock]; c != nil && !c.Closed {
			m.close(c)
		}
		delete(m.ids, ev.Sock)
	case hosttrace.KindSendReset:
		m.totals.ResetsSent++
		if ev.Sock == 0 {
			m.totals.ResetsSentNoSocket++
			return
		}
		if c := m.conn(ev); c != nil {
			c.ResetsSent++
		}
	case hosttrace.KindReceiveReset:
		m.totals.ResetsReceived++
		if c := m.conn(ev); c != nil {
			c.ResetsRecv++
		}
	case hosttrace.KindRetransmit:
		m.totals.Retransmits++
		if c := m.conn(ev); c != nil {
			c.Retransmits++
		}
	case hosttrace.KindSynAckRetransmit:
		m.totals.SynAckRetransmits++
		if c := m.conn(ev); c != nil {
			c.SynAckRetransmits++
		}
	}
}

// record adds a state change to the ring. m.mu held.
func (m *Model) record(ev *hosttrace.Event) {
	id, ok := m.ids[ev.Sock]
	if !ok {
		if len(m.ids) >= 4*m.o.MaxConns {
			// CLOSED events were lost: start the numbering afresh
			// rather than grow without bound.
			clear(m.ids)
		}
		m.nextID++
		id = m.nextID
		m.ids[ev.Sock] = id
	}
	if ev.To == tcp.Closed {
		delete(m.ids, ev.Sock)
	}
	m.seq++
	m.ring[(m.head+m.n)%len(m.ring)] = Record{Seq: m.seq, Time: ev.Time, ID: id, Local: ev.Local, Remote: ev.Remote, From: ev.From, To: ev.To}
	if m.n < len(m.ring) {
		m.n++
	} else {
		m.head = (m.head + 1) % len(m.ring)
	}
}

// conn returns the entry of ev's socket, making one if there is room (or
// a closed entry to evict). nil when the table is full of open
// connections: counted in ConnsDropped. m.mu held.
func (m *Model) conn(ev *hosttrace.Event) *Conn {
	if c := m.conns[ev.Sock]; c != nil {
		m.touch(c, ev)
		if ev.LinuxTo != 0 {
			c.State = ev.To
		}
		return c
	}
	for len(m.conns) >= m.o.MaxConns && len(m.closed) > 0 {
		ref := m.closed[0]
		m.closed = m.closed[1:]
		if c := m.conns[ref.sock]; c != nil && c.gen == ref.gen && c.Closed {
			delete(m.conns, ref.sock)
		}
	}
	if len(m.conns) >= m.o.MaxConns {
		m.totals.ConnsDropped++
		return nil
	}
	m.gen++
	c := &Conn{Sock: ev.Sock, Local: ev.Local, Remote: ev.Remote, State: ev.To, First: ev.Time, gen: m.gen}
	m.touch(c, ev)
	m.conns[ev.Sock] = c
	return c
}

// touch notes ev's time and fills in ends the entry lacked (a RST's
// event may carry them when a state change did not). m.mu held.
func (m *Model) touch(c *Conn, ev *hosttrace.Event) {
	c.Last = ev.Time
	if !c.Local.IsValid() || c.Local.Port() == 0 {
		c.Local = ev.Local
	}
	if !c.Remote.IsValid() || c.Remote.Port() == 0 {
		c.Remote = ev.Remote
	}
}

// close marks c closed and queues it for eviction. m.mu held.
func (m *Model) close(c *Conn) {
	c.Closed, c.State = true, tcp.Closed
	m.closed = append(m.closed, closedRef{c.Sock, c.gen})
	if len(m.closed) > 2*m.o.MaxConns {
		// References to entries since replaced: compact.
		m.closed = slices.DeleteFunc(m.closed, func(r closedRef) bool {
			x := m.conns[r.sock]
			return x == nil || x.gen != r.gen
		})
	}
}

func (m *Model) drop(sock uint64) { delete(m.conns, sock) }

// Refresh takes a sock_diag snapshot: the counts, the listen queues, the
// byte totals and the findings, and a sample for the rates. lost, when
// not nil, reads the tracer's own count of lost events.
func (m *Model) Refresh(lost func() (uint64, error)) error {
	snap, err := m.o.Snapshot()
	if lost != nil {
		if n, lerr := lost(); lerr == nil {
			m.mu.Lock()
			m.totals.Lost = max(m.totals.Lost, n)
			m.mu.Unlock()
		}
	}
	if err != nil {
		m.mu.Lock()
		m.totals.SnapshotErrors++
		m.mu.Unlock()
		return err
	}
	if m.ports != nil {
		snap.Rows = diag.Filter(snap.Rows, func(r diag.Row) bool { return m.portKept(r.Local, r.Remote) })
		for p := range snap.Listeners {
			if !m.ports[p] {
				delete(snap.Listeners, p)
			}
		}
	}
	if snap.Listeners == nil {
		snap.FillListeners(nil)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.addBytes(snap.Rows)
	prev := m.prev
	if prev != nil && !snap.Time.After(prev.Time) {
		prev = nil
	}
	m.report = diag.NewReport(snap, prev, m.o.Thresholds)
	// The rules on counters want deltas over a second or more.
	if m.prev == nil || snap.Time.Sub(m.prev.Time) >= time.Second {
		m.prev = &snap
	}
	m.snap = snap
	now := m.o.Now()
	m.samples = append(m.samples, sample{t: now, trans: maps.Clone(m.trans)})
	// Keep one sample at or beyond the window, so the rate spans it.
	for len(m.samples) > 2 && now.Sub(m.samples[1].t) >= m.o.RateWindow {
		m.samples = m.samples[1:]
	}
	return nil
}

// addBytes adds the growth of each socket's byte counts since the last
// look. A socket whose counts went down is a new one on the same 4-tuple:
// all of its counts are new. m.mu held.
func (m *Model) addBytes(rows []diag.Row) {
	seen := make(map[tuple][2]uint64, len(rows))
	for _, r := range rows {
		if r.State == tcp.Listen {
			continue
		}
		k := tuple{r.Local, r.Remote}
		cur := [2]uint64{r.BytesAcked, r.BytesReceived}
		old, ok := m.bytes[k]
		if !ok || cur[0] < old[0] || cur[1] < old[1] {
			old = [2]uint64{}
		}
		m.totals.BytesAcked += cur[0] - old[0]
		m.totals.BytesReceived += cur[1] - old[1]
		seen[k] = cur
	}
	m.bytes = seen
}

// PortLabel is the label of local port p among the labelled listening
// ports.
func PortLabel(p uint16, labelled map[uint16]bool) string {
	if labelled[p] {
		return strconv.Itoa(int(p))
	}
	return OtherPort
}

// labelledPorts picks the listening ports with a label of their own: the
// ones with the most sockets, at most max.
func labelledPorts(rows []diag.Row, max int) map[uint16]bool {
	listening := map[uint16]bool{}
	for _, r := range rows {
		if r.State == tcp.Listen {
			listening[r.Local.Port()] = true
		}
	}
	n := map[uint16]int{}
	for _, r := range rows {
		if listening[r.Local.Port()] {
			n[r.Local.Port()]++
		}
	}
	ps := make([]uint16, 0, len(n))
	for p := range n {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b uint16) int {
		if c := cmp.Compare(n[b], n[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	out := map[uint16]bool{}
	for _, p := range ps[:min(len(ps), max)] {
		out[p] = true
	}
	return out
}

// View returns a copy of the model, with the recent transitions after
// seq (0: all kept).
func (m *Model) View(after uint64) View {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := View{
		Start: m.start, Time: m.snap.Time, Snapshot: m.snap, Report: m.report,
		Totals: m.totals, LastSeq: m.seq, Counts: map[tcp.State]map[string]int{},
	}
	labelled := labelledPorts(m.snap.Rows, m.o.MaxPorts)
	for p := range labelled {
		v.ListeningPorts = append(v.ListeningPorts, p)
	}
	slices.Sort(v.ListeningPorts)
	for _, r := range m.snap.Rows {
		byPort := v.Counts[r.State]
		if byPort == nil {
			byPort = map[string]int{}
			v.Counts[r.State] = byPort
		}
		byPort[PortLabel(r.Local.Port(), labelled)]++
	}
	var old *sample
	if len(m.samples) >= 2 {
		old = &m.samples[0]
	}
	last := m.o.Now()
	if len(m.samples) > 0 {
		last = m.samples[len(m.samples)-1].t
	}
	for k, n := range m.trans {
		t := Transition{From: k[0], To: k[1], Count: n}
		if old != nil && last.After(old.t) {
			cur := m.samples[len(m.samples)-1].trans[k]
			t.Rate = float64(cur-old.trans[k]) / last.Sub(old.t).Seconds()
		}
		v.Transitions = append(v.Transitions, t)
	}
	slices.SortFunc(v.Transitions, func(a, b Transition) int {
		if c := cmp.Compare(a.From, b.From); c != 0 {
			return c
		}
		return cmp.Compare(a.To, b.To)
	})
	for _, c := range m.conns {
		v.Conns = append(v.Conns, *c)
	}
	slices.SortFunc(v.Conns, func(a, b Conn) int { return b.Last.Compare(a.Last) })
	for i := range m.n {
		r := m.ring[(m.head+i)%len(m.ring)]
		if r.Seq > after {
			v.Recent = append(v.Recent, r)
		}
	}
	return v
}

// Source is what Run reads events from: a *hosttrace.Tracer.
type Source interface {
	Next(ctx context.Context, dst []hosttrace.Event) ([]hosttrace.Event, error)
	Lost() (uint64, error)
}

// Run feeds the model from src and refreshes it every interval (and once
// at the start, unless the caller has already taken a look) until ctx
// ends; then it returns nil. A failed snapshot is counted
// (Totals.SnapshotErrors) and retried at the next interval.
func (m *Model) Run(ctx context.Context, src Source, interval time.Duration) error {
	// A caller that looked before starting Run (so that what follows is
	// measured from that look) must not get a second first look at some
	// moment of Run's goroutine's choosing: the byte totals would count
	// the sockets that look happened to catch.
	m.mu.Lock()
	looked := m.prev != nil
	m.mu.Unlock()
	if !looked {
		m.Refresh(src.Lost)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	defer func() { cancel(); <-done }()
	go func() {
		defer close(done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				m.Refresh(src.Lost)
			}
		}
	}()
	var buf []hosttrace.Event
	for {
		var err error
		buf, err = src.Next(ctx, buf[:0])
		for i := range buf {
			m.Event(&buf[i])
		}
		if err != nil {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return nil
			}
			return err
		}
	}
}

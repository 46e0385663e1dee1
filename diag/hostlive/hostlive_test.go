//go:build linux

package hostlive

import (
	"context"
	"net/netip"
	"os"
	"testing"
	"testing/synctest"
	"time"

	"github.com/synack/synack/diag"
	"github.com/synack/synack/diag/hosttrace"
	"github.com/synack/synack/tcp"
)

var t0 = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

// fake is a clock and a snapshot source the test sets.
type fake struct {
	now  time.Time
	rows []diag.Row
	err  error
}

func (f *fake) model(o Options) *Model {
	o.Now = func() time.Time { return f.now }
	o.Snapshot = func() (diag.Snapshot, error) {
		if f.err != nil {
			return diag.Snapshot{}, f.err
		}
		return diag.Snapshot{Source: diag.SourceHost, Time: f.now, Rows: append([]diag.Row(nil), f.rows...)}, nil
	}
	return New(o)
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func state(sock uint64, local, remote string, from, to tcp.State) *hosttrace.Event {
	return &hosttrace.Event{Kind: hosttrace.KindState, Sock: sock, Local: ap(local), Remote: ap(remote), From: from, To: to, LinuxTo: 1, Time: t0}
}

func other(kind hosttrace.Kind, sock uint64, local, remote string, st tcp.State) *hosttrace.Event {
	return &hosttrace.Event{Kind: kind, Sock: sock, Local: ap(local), Remote: ap(remote), To: st, LinuxTo: 1, Time: t0}
}

func transition(v View, from, to tcp.State) Transition {
	for _, t := range v.Transitions {
		if t.From == from && t.To == to {
			return t
		}
	}
	return Transition{From: from, To: to}
}

// TestTransitionsAndRates: each state change counts once on its arrow;
// the rate is the growth between the oldest sample in the window and the
// newest, per second.
func TestTransitionsAndRates(t *testing.T) {
	f := &fake{now: t0}
	m := f.model(Options{RateWindow: 10 * time.Second})
	m.Refresh(nil)
	for i := range 3 {
		m.Event(state(uint64(100+i), "10.0.0.1:80", "10.0.0.2:5000", tcp.Listen, tcp.SynReceived))
	}
	m.Event(state(100, "10.0.0.1:80", "10.0.0.2:5000", tcp.SynReceived, tcp.Established))
	v := m.View(0)
	if got := transition(v, tcp.Listen, tcp.SynReceived); got.Count != 3 || got.Rate != 0 {
		t.Errorf("LISTEN->SYN-RECEIVED before a second refresh: %+v, want count 3, rate 0", got)
	}
	f.now = t0.Add(2 * time.Second)
	m.Refresh(nil)
	v = m.View(0)
	if got := transition(v, tcp.Listen, tcp.SynReceived); got.Count != 3 || got.Rate != 1.5 {
		t.Errorf("LISTEN->SYN-RECEIVED: %+v, want count 3, rate 1.5/s", got)
	}
	if got := transition(v, tcp.SynReceived, tcp.Established); got.Count != 1 || got.Rate != 0.5 {
		t.Errorf("SYN-RECEIVED->ESTABLISHED: %+v, want count 1, rate 0.5/s", got)
	}
	// Past the window the old transitions leave the rate, not the count.
	for i := range 8 {
		f.now = t0.Add(time.Duration(4+2*i) * time.Second)
		m.Refresh(nil)
	}
	v = m.View(0)
	if got := transition(v, tcp.Listen, tcp.SynReceived); got.Count != 3 || got.Rate != 0 {
		t.Errorf("20 s later: %+v, want count 3, rate 0", got)
	}
	if len(v.Recent) != 4 || v.LastSeq != 4 || v.Recent[1].ID == v.Recent[0].ID || v.Recent[3].ID != v.Recent[0].ID {
		t.Errorf("recent: %+v (last %d), want 4 records, socket 100 with one ID", v.Recent, v.LastSeq)
	}
	if got := m.View(3).Recent; len(got) != 1 || got[0].Seq != 4 {
		t.Errorf("View(3).Recent = %+v, want only seq 4", got)
	}
}

// TestConns: RSTs and retransmissions count per connection and in the
// totals; the table keeps at most MaxConns entries, evicts closed ones
// first and counts the connections it had no room for.
func TestConns(t *testing.T) {
	f := &fake{now: t0}
	m := f.model(Options{MaxConns: 2})
	m.Event(other(hosttrace.KindRetransmit, 1, "10.0.0.1:80", "10.0.0.2:5000", tcp.Established))
	m.Event(other(hosttrace.KindRetransmit, 1, "10.0.0.1:80", "10.0.0.2:5000", tcp.Established))
	m.Event(other(hosttrace.KindReceiveReset, 1, "10.0.0.1:80", "10.0.0.2:5000", tcp.Established))
	m.Event(state(1, "10.0.0.1:80", "10.0.0.2:5000", tcp.Established, tcp.Closed))
	m.Event(other(hosttrace.KindSynAckRetransmit, 2, "10.0.0.1:80", "10.0.0.3:6000", tcp.SynReceived))
	// A RST for no socket counts in the totals only.
	m.Event(&hosttrace.Event{Kind: hosttrace.KindSendReset, Local: ap("10.0.0.1:81"), Remote: ap("10.0.0.9:7")})
	v := m.View(0)
	if len(v.Conns) != 2 {
		t.Fatalf("conns %+v, want 2", v.Conns)
	}
	byS := map[uint64]Conn{}
	for _, c := range v.Conns {
		byS[c.Sock] = c
	}
	if c := byS[1]; c.Retransmits != 2 || c.ResetsRecv != 1 || !c.Closed || c.State != tcp.Closed {
		t.Errorf("conn 1: %+v, want 2 retransmits, 1 RST received, closed", c)
	}
	if c := byS[2]; c.SynAckRetransmits != 1 || c.State != tcp.SynReceived || c.Closed {
		t.Errorf("conn 2: %+v, want 1 SYN-ACK retransmit in SYN-RECEIVED", c)
	}
	want := Totals{ResetsSent: 1, ResetsSentNoSocket: 1, ResetsReceived: 1, Retransmits: 2, SynAckRetransmits: 1, Events: 6}
	if v.Totals != want {
		t.Errorf("totals %+v, want %+v", v.Totals, want)
	}
	// Full: a third connection evicts the closed one.
	m.Event(other(hosttrace.KindSendReset, 3, "10.0.0.1:80", "10.0.0.4:7000", tcp.Established))
	// Full of open connections: the fourth is dropped and counted.
	m.Event(other(hosttrace.KindSendReset, 4, "10.0.0.1:80", "10.0.0.5:7000", tcp.Established))
	v = m.View(0)
	socks := map[uint64]bool{}
	for _, c := range v.Conns {
		socks[c.Sock] = true
	}
	if len(v.Conns) != 2 || !socks[2] || !socks[3] || v.Totals.ConnsDropped != 1 || v.Totals.ResetsSent != 3 {
		t.Errorf("conns %v, dropped %d, RSTs sent %d; want sockets 2 and 3, 1 dropped, 3 sent", socks, v.Totals.ConnsDropped, v.Totals.ResetsSent)
	}
	// A state change at a closed entry's address is a new socket.
	m.Event(state(3, "10.0.0.1:80", "10.0.0.4:7000", tcp.Established, tcp.Closed))
	m.Event(state(3, "10.0.0.1:80", "10.0.0.6:7000", tcp.Listen, tcp.SynReceived))
	for _, c := range m.View(0).Conns {
		if c.Sock == 3 {
			t.Errorf("socket 3's entry outlived it: %+v", c)
		}
	}
}

// TestCountsByPort: counts by state and local port, the listening ports
// labelled (at most MaxPorts, the busiest), the rest "other".
func TestCountsByPort(t *testing.T) {
	f := &fake{now: t0}
	row := func(st tcp.State, local, remote string) diag.Row {
		r := diag.Row{State: st, Local: ap(local)}
		if remote != "" {
			r.Remote = ap(remote)
		}
		return r
	}
	f.rows = []diag.Row{
		row(tcp.Listen, "0.0.0.0:80", ""), row(tcp.Listen, "0.0.0.0:22", ""),
		row(tcp.Established, "10.0.0.1:80", "10.0.0.2:1"), row(tcp.Established, "10.0.0.1:80", "10.0.0.2:2"),
		row(tcp.CloseWait, "10.0.0.1:80", "10.0.0.2:3"),
		row(tcp.Established, "10.0.0.1:22", "10.0.0.2:4"),
		row(tcp.Established, "10.0.0.1:40000", "10.0.0.9:443"),
		row(tcp.TimeWait, "10.0.0.1:40001", "10.0.0.9:443"),
	}
	m := f.model(Options{MaxPorts: 1})
	if err := m.Refresh(nil); err != nil {
		t.Fatal(err)
	}
	v := m.View(0)
	want := map[tcp.State]map[string]int{
		tcp.Listen:      {"80": 1, "other": 1},
		tcp.Established: {"80": 2, "other": 2},
		tcp.CloseWait:   {"80": 1},
		tcp.TimeWait:    {"other": 1},
	}
	if !equalCounts(v.Counts, want) {
		t.Errorf("counts %v, want %v", v.Counts, want)
	}
	if l := v.Snapshot.Listeners[80]; l.Sockets != 1 {
		t.Errorf("listener 80: %+v", l)
	}
	// Ports narrows the rows, and the events.
	m = f.model(Options{Ports: []uint16{22}})
	m.Refresh(nil)
	m.Event(state(9, "10.0.0.1:80", "10.0.0.2:9", tcp.Listen, tcp.SynReceived))
	m.Event(state(9, "10.0.0.1:22", "10.0.0.2:9", tcp.Listen, tcp.SynReceived))
	v = m.View(0)
	want = map[tcp.State]map[string]int{tcp.Listen: {"22": 1}, tcp.Established: {"22": 1}}
	if !equalCounts(v.Counts, want) || v.Totals.Events != 1 {
		t.Errorf("with Ports 22: counts %v, %d events; want %v, 1", v.Counts, v.Totals.Events, want)
	}
}

func equalCounts(a, b map[tcp.State]map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for st, m := range a {
		if len(m) != len(b[st]) {
			return false
		}
		for k, n := range m {
			if b[st][k] != n {
				return false
			}
		}
	}
	return true
}

// TestBytes: the byte totals grow by each socket's growth between looks;
// a socket's first look counts whole; a tuple whose counts went down is
// a new socket; a socket gone keeps what it added.
func TestBytes(t *testing.T) {
	f := &fake{now: t0}
	conn := func(remote string, acked, recv uint64) diag.Row {
		return diag.Row{State: tcp.Established, Local: ap("10.0.0.1:80"), Remote: ap(remote), BytesAcked: acked, BytesReceived: recv}
	}
	m := f.model(Options{})
	steps := []struct {
		rows          []diag.Row
		acked, recved uint64
	}{
		{[]diag.Row{conn("10.0.0.2:1", 100, 10)}, 100, 10},
		{[]diag.Row{conn("10.0.0.2:1", 150, 10), conn("10.0.0.2:2", 5, 5)}, 155, 15},
		{[]diag.Row{conn("10.0.0.2:2", 5, 7)}, 155, 17},                            // :1 gone
		{[]diag.Row{conn("10.0.0.2:2", 1, 1), conn("10.0.0.2:1", 20, 0)}, 176, 18}, // :2 anew, :1 anew
	}
	for i, s := range steps {
		f.rows = s.rows
		f.now = f.now.Add(time.Second)
		m.Refresh(nil)
		if tot := m.View(0).Totals; tot.BytesAcked != s.acked || tot.BytesReceived != s.recved {
			t.Errorf("step %d: %d acked, %d received; want %d, %d", i, tot.BytesAcked, tot.BytesReceived, s.acked, s.recved)
		}
	}
}

// TestFindings: the report is diag's, on the snapshot; a failed snapshot
// is counted and leaves the last good one.
func TestFindings(t *testing.T) {
	f := &fake{now: t0}
	for i := range 5 {
		f.rows = append(f.rows, diag.Row{State: tcp.CloseWait, Local: ap("10.0.0.1:80"), Remote: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.2"), uint16(1000+i))})
	}
	m := f.model(Options{Thresholds: diag.Thresholds{CloseWaitWarn: 3}})
	m.Refresh(nil)
	f.err = os.ErrPermission
	if err := m.Refresh(nil); err == nil {
		t.Fatal("Refresh with a failing snapshot: no error")
	}
	v := m.View(0)
	found := false
	for _, x := range v.Report.Findings {
		found = found || x.Rule == "close-wait"
	}
	if !found || v.Report.Total != 5 || v.Totals.SnapshotErrors != 1 {
		t.Errorf("findings %+v, total %d, %d snapshot errors; want close-wait, 5, 1", v.Report.Findings, v.Report.Total, v.Totals.SnapshotErrors)
	}
}

// events is a Source of fixed batches.
type events struct {
	batches [][]hosttrace.Event
	lost    uint64
}

func (e *events) Next(ctx context.Context, dst []hosttrace.Event) ([]hosttrace.Event, error) {
	if len(e.batches) == 0 {
		<-ctx.Done()
		return dst, ctx.Err()
	}
	dst = append(dst, e.batches[0]...)
	e.batches = e.batches[1:]
	return dst, nil
}

func (e *events) Lost() (uint64, error) { return e.lost, nil }

// TestRun: Run takes every event of its source, refreshes at the start,
// counts the lost events the tracer reports, and ends with its context.
func TestRun(t *testing.T) {
	f := &fake{now: t0, rows: []diag.Row{{State: tcp.Listen, Local: ap("0.0.0.0:80")}}}
	m := f.model(Options{})
	src := &events{lost: 7, batches: [][]hosttrace.Event{
		{*state(1, "10.0.0.1:80", "10.0.0.2:1", tcp.Listen, tcp.SynReceived)},
		{*state(1, "10.0.0.1:80", "10.0.0.2:1", tcp.SynReceived, tcp.Established), {Kind: hosttrace.KindLost, Lost: 3}},
	}}
	// In a bubble: Wait returns once Run has taken both batches and
	// blocks in Next (or the ticker), with no wall-clock wait.
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx, src, time.Hour) }()
		synctest.Wait()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
	v := m.View(0)
	if v.Totals.Events != 2 || v.Totals.Lost != 7 || v.Counts[tcp.Listen]["80"] != 1 {
		t.Errorf("after Run: %+v, counts %v; want 2 events, 7 lost, one listener on 80", v.Totals, v.Counts)
	}
}

// BenchmarkEvent is the model's cost per tracepoint event, for a mix
// like a busy server's: a connection's six transitions and, one time in
// ten, a retransmission. (trace --host must keep up with 50,000
// transitions a second; the model adds this to the reader's cost.)
func BenchmarkEvent(b *testing.B) {
	f := &fake{now: t0}
	m := f.model(Options{})
	evs := []*hosttrace.Event{
		state(0, "10.0.0.2:0", "10.0.0.1:80", tcp.Closed, tcp.SynSent),
		state(0, "10.0.0.2:5000", "10.0.0.1:80", tcp.SynSent, tcp.Established),
		state(0, "10.0.0.1:80", "10.0.0.2:5000", tcp.Listen, tcp.SynReceived),
		state(0, "10.0.0.1:80", "10.0.0.2:5000", tcp.SynReceived, tcp.Established),
		other(hosttrace.KindRetransmit, 0, "10.0.0.1:80", "10.0.0.2:5000", tcp.Established),
		state(0, "10.0.0.2:5000", "10.0.0.1:80", tcp.Established, tcp.Closed),
		state(0, "10.0.0.1:80", "10.0.0.2:5000", tcp.Established, tcp.Closed),
	}
	b.ReportAllocs()
	i := uint64(0)
	for b.Loop() {
		i++
		for j, e := range evs {
			if e.Kind == hosttrace.KindRetransmit && i%10 != 0 {
				continue
			}
			e.Sock = i<<1 | uint64(j/3)
			m.Event(e)
		}
	}
}

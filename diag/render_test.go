package diag

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/synack/synack/tcp"
)

func TestParseState(t *testing.T) {
	for in, want := range map[string]tcp.State{
		"TIME-WAIT": tcp.TimeWait, "time_wait": tcp.TimeWait, "timewait": tcp.TimeWait,
		"SYN_RECV": tcp.SynReceived, "NEW_SYN_RECV": tcp.SynReceived, "syn-received": tcp.SynReceived,
		"FIN_WAIT1": tcp.FinWait1, "fin-wait-2": tcp.FinWait2, "estab": tcp.Established,
		"CLOSE": tcp.Closed, "close-wait": tcp.CloseWait, "LAST_ACK": tcp.LastAck, "listen": tcp.Listen,
		" closing ": tcp.Closing, "SYN-SENT": tcp.SynSent,
	} {
		if got, ok := ParseState(in); !ok || got != want {
			t.Errorf("ParseState(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	if _, ok := ParseState("half-open"); ok {
		t.Error("ParseState accepted half-open")
	}
}

func TestRowJSON(t *testing.T) {
	r := Row{
		Source: SourceHost, Local: netip.MustParseAddrPort("[2001:db8::1]:443"), Remote: netip.MustParseAddrPort("192.0.2.1:50000"),
		State: tcp.FinWait1, RecvQ: 1, SendQ: 2, Timer: "retransmit", TimerLeft: 200 * time.Millisecond,
		RTT: 1500 * time.Microsecond, RTO: 204 * time.Millisecond, Retransmits: 3, Age: time.Minute, Idle: time.Second,
		PID: 9, Process: "app", Inode: 123, UID: 1000, BytesAcked: 4096, BytesReceived: 77,
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"state":"FIN-WAIT-1"`) || !strings.Contains(string(b), `"rtt_ms":1.5`) {
		t.Errorf("JSON %s", b)
	}
	var back Row
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back != r {
		t.Errorf("round trip:\n got %+v\nwant %+v", back, r)
	}
	// Listeners have no remote end.
	l := Row{Local: netip.MustParseAddrPort("0.0.0.0:80"), State: tcp.Listen}
	b, _ = json.Marshal(l)
	if err := json.Unmarshal(b, &back); err != nil || back != l {
		t.Errorf("listener round trip: %v %+v (%s)", err, back, b)
	}
}

func TestSnapshotJSON(t *testing.T) {
	s := newSnap()
	s.Rows = conns(2, tcp.CloseWait, 80, netip.AddrPort{}, nil)
	s.Counters["ListenDrops"] = 4
	s.FillListeners(nil)
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back Snapshot
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Rows) != 2 || back.Rows[0] != s.Rows[0] || back.Counters["ListenDrops"] != 4 || back.EphemeralSize() != 100 {
		t.Errorf("round trip: %s", b)
	}
}

func TestGroupBy(t *testing.T) {
	rows := append(conns(3, tcp.CloseWait, 80, netip.AddrPort{}, owned(1, "a")),
		conns(5, tcp.Established, 443, netip.AddrPort{}, owned(2, "b"))...)
	rows = append(rows, conns(1, tcp.TimeWait, 443, netip.AddrPort{}, nil)...)
	gs := GroupBy(rows, ByProcess)
	if len(gs) != 3 || gs[0].Key != "b (pid 2)" || gs[0].Count != 5 || gs[1].Key != "a (pid 1)" || gs[2].Key != Unknown {
		t.Errorf("by process: %+v", gs)
	}
	gs = GroupBy(rows, ByLocalPort)
	if gs[0].Key != "443" || gs[0].Count != 6 || gs[0].Counts[tcp.TimeWait] != 1 {
		t.Errorf("by local port: %+v", gs[0])
	}
	if gs := GroupBy(rows, ByRemoteAddr); len(gs) != 1 || gs[0].Key != "192.0.2.7" {
		t.Errorf("by remote address: %+v", gs)
	}
	if gs := GroupBy(rows, ByRemotePort); len(gs) != 5 {
		t.Errorf("by remote port: %d groups, want 5 (ports 50000-50004)", len(gs))
	}
	c := CountStates(rows)
	if c[tcp.Established] != 5 || c.Total() != 9 || c.ByName()["CLOSE-WAIT"] != 3 || len(c.ByName()) != len(tcp.States()) {
		t.Errorf("counts %v", c)
	}
}

func TestAges(t *testing.T) {
	rows := conns(3, tcp.TimeWait, 80, netip.AddrPort{}, func(i int, r *Row) { r.Age = time.Duration(i) * 10 * time.Second })
	a := Ages(rows) // the zero age is unknown
	if a.Known != 2 || a.Min != 10*time.Second || a.Max != 20*time.Second {
		t.Errorf("ages %+v", a)
	}
	if a.String() != "ages 10s..20s, median 20s" {
		t.Errorf("%q", a.String())
	}
	if Ages(nil).String() != "" {
		t.Error("no ages should print nothing")
	}
}

func TestWriteTable(t *testing.T) {
	rows := []Row{
		listener(80, 128, 3),
		{State: tcp.Established, Local: netip.MustParseAddrPort("10.0.0.1:80"), Remote: netip.MustParseAddrPort("192.0.2.7:50000"),
			RecvQ: 0, SendQ: 1448, Timer: "retransmit", TimerLeft: 204 * time.Millisecond, Retransmits: 2,
			RTT: 1234 * time.Microsecond, PID: 7, Process: "server"},
		{State: tcp.TimeWait, Local: netip.MustParseAddrPort("10.0.0.1:80"), Remote: netip.MustParseAddrPort("192.0.2.7:50001"),
			Timer: "time-wait", TimerLeft: 42 * time.Second, Age: 18 * time.Second},
	}
	SortRows(rows)
	var b bytes.Buffer
	if err := WriteTable(&b, rows); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines:\n%s", len(lines), b.String())
	}
	for i, want := range [][]string{
		{"State", "Recv-Q", "Send-Q", "Local Address:Port", "Peer Address:Port", "Timer", "RTT(ms)", "Process"},
		{"LISTEN", "3", "128", "10.0.0.1:80", "*:*", "server/7"},
		{"ESTABLISHED", "1448", "192.0.2.7:50000", "retransmit 204ms #2", " 1.234 ", "server/7"},
		{"TIME-WAIT", "time-wait 42s", "18s"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %d lacks %q: %s", i, w, lines[i])
			}
		}
	}
}

// Issue 15: `diagnose --json` gave "findings": null on a healthy host.
func TestReportJSONFindingsEmpty(t *testing.T) {
	for _, rep := range []Report{NewReport(newSnap(), nil, Thresholds{}), {}} {
		var b bytes.Buffer
		if err := WriteJSON(&b, rep); err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		if fs, ok := m["findings"].([]any); !ok || len(fs) != 0 {
			t.Errorf("findings: %#v, want []\n%s", m["findings"], b.String())
		}
	}
	if fs := Diagnose(newSnap(), nil, Thresholds{}); fs == nil {
		t.Error("Diagnose returned nil for none")
	}
}

// Issue 15: RTTs were printed in three units across ss, ss --host and the
// page; now always milliseconds with three decimals.
func TestRTTText(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "", 23 * time.Microsecond: "0.023", 1234 * time.Microsecond: "1.234",
		12345678 * time.Nanosecond: "12.346", 1500 * time.Millisecond: "1500.000",
	} {
		if got := RTTText(d); got != want {
			t.Errorf("RTTText(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestWriteCountsAndFindings(t *testing.T) {
	prev := with(conns(10, tcp.Established, 80, netip.AddrPort{}, nil))()
	prev.Counters["ListenOverflows"] = 1
	cur := with([]Row{listener(80, 128, 0)}, conns(20, tcp.Established, 80, netip.AddrPort{}, nil),
		conns(12, tcp.CloseWait, 80, netip.AddrPort{}, owned(5, "leaky")))()
	cur.Time = prev.Time.Add(2 * time.Second)
	cur.Counters["ListenOverflows"] = 4
	rep := NewReport(cur, &prev, Thresholds{})
	if rep.Total != 33 || rep.Changes["ESTABLISHED"] != 10 || rep.Changes["CLOSE-WAIT"] != 12 || rep.CounterChanges["ListenOverflows"] != 3 {
		t.Errorf("report %+v", rep)
	}
	if rep.Status != 2 { // listen-drops moved: a problem
		t.Errorf("status %d", rep.Status)
	}
	var b bytes.Buffer
	if err := WriteCounts(&b, rep); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"TCP sockets (host) at 03:04:07: 33", "ESTABLISHED", "+10", strings.Repeat("█", barWidth),
		"CLOSE-WAIT", "+12", "ListenOverflows 4 (+3)", "changes over the last 2s)"} {
		if !strings.Contains(out, want) {
			t.Errorf("counts lack %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "SYN-SENT") {
		t.Errorf("counts show an empty state:\n%s", out)
	}
	b.Reset()
	if err := WriteFindings(&b, rep.Findings); err != nil {
		t.Fatal(err)
	}
	out = b.String()
	for _, want := range []string{"PROBLEM  listen-drops", "WARNING  close-wait", "  seen:    12 connections in CLOSE-WAIT", "  means:   ", "  confirm: - ", "  do:      - "} {
		if !strings.Contains(out, want) {
			t.Errorf("findings lack %q:\n%s", want, out)
		}
	}
	if strings.Index(out, "listen-drops") > strings.Index(out, "close-wait") {
		t.Error("the problem is not first")
	}
	for _, line := range strings.Split(out, "\n") {
		if len([]rune(line)) > 100 && strings.Contains(strings.TrimSpace(line), " ") {
			t.Errorf("line longer than 100: %q", line)
		}
	}
	b.Reset()
	WriteFindings(&b, nil)
	if !strings.HasPrefix(b.String(), "No findings") {
		t.Errorf("no findings: %q", b.String())
	}
	b.Reset()
	if err := WriteJSON(&b, rep); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b.Bytes(), &back); err != nil || len(back.Findings) != len(rep.Findings) || back.Findings[0].Severity != Problem {
		t.Errorf("report JSON: %v\n%s", err, b.String())
	}
}

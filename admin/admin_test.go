package admin_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/synack/synack/admin"
	"github.com/synack/synack/diag"
	"github.com/synack/synack/stack"
	"github.com/synack/synack/tcp"
	"github.com/synack/synack/wire"
)

func get(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	return b
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	if err := json.Unmarshal(get(t, url), v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// scrape fetches /metrics and parses it with Prometheus's own text parser.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/metrics", nil)
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("/metrics Content-Type %q, want the text format", ct)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return mfs
}

// scrapeStill scrapes w's /metrics with the counters of stack b as they
// were during the scrape: the stack is quiet, but a late timer may move
// them, so it takes them on both sides of the scrape and retries.
func (w *world) scrapeStill(t *testing.T) (map[string]*dto.MetricFamily, stack.Counters) {
	t.Helper()
	for try := 0; ; try++ {
		before := w.b.Counters()
		mfs := scrape(t, w.ts.URL)
		if ctr := w.b.Counters(); before == ctr {
			return mfs, ctr
		}
		if try == 10 {
			t.Fatal("the counters never held still over a scrape")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// value finds the sample of family name whose labels include want.
func value(t *testing.T, mfs map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	t.Helper()
	mf, ok := mfs[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range mf.Metric {
		have := map[string]string{}
		for _, lp := range m.Label {
			have[lp.GetName()] = lp.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			return m.Counter.GetValue(), true
		case dto.MetricType_GAUGE:
			return m.Gauge.GetValue(), true
		default:
			return m.Untyped.GetValue(), true
		}
	}
	return 0, false
}

func TestMetrics(t *testing.T) {
	w := newWorld(t)
	want := w.scenario(t, 12)

	mfs, ctr := w.scrapeStill(t)

	for _, st := range tcp.States() {
		v, ok := value(t, mfs, admin.MetricConnections, map[string]string{"state": st.String()})
		if !ok {
			t.Errorf("no %s{state=%q}", admin.MetricConnections, st)
			continue
		}
		if int(v) != want[st] {
			t.Errorf("%s{state=%q} = %v, want %d", admin.MetricConnections, st, v, want[st])
		}
	}
	if mfs[admin.MetricConnections].GetType() != dto.MetricType_GAUGE {
		t.Errorf("%s is a %v, want a gauge", admin.MetricConnections, mfs[admin.MetricConnections].GetType())
	}

	// Every counter, under netstat's names.
	checks := []struct {
		name string
		want uint64
		typ  dto.MetricType
	}{
		{"synack_netstat_tcp_active_opens_total", ctr.TCP.ActiveOpens, dto.MetricType_COUNTER},
		{"synack_netstat_tcp_passive_opens_total", ctr.TCP.PassiveOpens, dto.MetricType_COUNTER},
		{"synack_netstat_tcp_in_segs_total", ctr.TCP.InSegs, dto.MetricType_COUNTER},
		{"synack_netstat_tcp_out_segs_total", ctr.TCP.OutSegs, dto.MetricType_COUNTER},
		{"synack_netstat_tcp_curr_estab", ctr.TCP.CurrEstab, dto.MetricType_GAUGE},
		{"synack_netstat_tcpext_tcp_memory_bytes", ctr.TCP.TCPMemoryBytes, dto.MetricType_GAUGE},
		{"synack_netstat_tcpext_tcp_memory_state", ctr.TCP.TCPMemoryState, dto.MetricType_GAUGE},
		{"synack_netstat_tcpext_tcp_memory_pressures_total", ctr.TCP.TCPMemoryPressures, dto.MetricType_COUNTER},
		{"synack_netstat_tcpext_listen_overflows_total", ctr.TCP.ListenOverflows, dto.MetricType_COUNTER},
		{"synack_netstat_tcpext_ecn_negotiated_total", ctr.TCP.ECNNegotiated, dto.MetricType_COUNTER},
		{"synack_netstat_tcpext_ce_received_total", ctr.TCP.CEReceived, dto.MetricType_COUNTER},
		{"synack_netstat_tcpext_ece_received_total", ctr.TCP.ECEReceived, dto.MetricType_COUNTER},
		{"synack_netstat_tcpext_cwr_sent_total", ctr.TCP.CWRSent, dto.MetricType_COUNTER},
		{"synack_netstat_ip_in_receives_total", ctr.IP.InReceives, dto.MetricType_COUNTER},
		{"synack_netstat_icmp_in_msgs_total", ctr.ICMP.InMsgs, dto.MetricType_COUNTER},
		{"synack_netstat_udp_in_datagrams_total", ctr.UDP.InDatagrams, dto.MetricType_COUNTER},
		{"synack_netstat_udp_rcvbuf_errors_total", ctr.UDP.RcvbufErrors, dto.MetricType_COUNTER},
		{"synack_events_dropped_total", ctr.EventsDropped, dto.MetricType_COUNTER},
	}
	for _, c := range checks {
		v, ok := value(t, mfs, c.name, nil)
		if !ok {
			t.Errorf("no %s", c.name)
			continue
		}
		if uint64(v) != c.want {
			t.Errorf("%s = %v, want %d", c.name, v, c.want)
		}
		if typ := mfs[c.name].GetType(); typ != c.typ {
			t.Errorf("%s is a %v, want %v", c.name, typ, c.typ)
		}
	}
	if ctr.TCP.PassiveOpens != 14 || ctr.TCP.CurrEstab != 13 {
		t.Errorf("PassiveOpens %d, CurrEstab %d; want 14 and 13", ctr.TCP.PassiveOpens, ctr.TCP.CurrEstab)
	}
	// All of them: one family per counter field.
	n := 0
	for name := range mfs {
		if strings.HasPrefix(name, "synack_netstat_") {
			n++
		}
	}
	if fields := len(admin.FlatCounters(ctr)) - 1; n != fields { // EventsDropped is not netstat's
		t.Errorf("%d synack_netstat_ families, want one per counter (%d)", n, fields)
	}

	// The listener's queues.
	lbl := map[string]string{"addr": addrB.String(), "port": "80"}
	if v, ok := value(t, mfs, admin.MetricBacklog, lbl); !ok || v != stack.DefaultListenBacklog {
		t.Errorf("%s%v = %v, %v; want %d", admin.MetricBacklog, lbl, v, ok, stack.DefaultListenBacklog)
	}
	if v, ok := value(t, mfs, admin.MetricAcceptQueue, lbl); !ok || v != 0 {
		t.Errorf("%s%v = %v, %v; want 0", admin.MetricAcceptQueue, lbl, v, ok)
	}
	if v, ok := value(t, mfs, admin.MetricSynBacklog, lbl); !ok || v != stack.DefaultSynBacklog {
		t.Errorf("%s%v = %v, %v; want %d", admin.MetricSynBacklog, lbl, v, ok, stack.DefaultSynBacklog)
	}

	// Findings by rule: the CLOSE-WAIT pile-up is a warning.
	if v, _ := value(t, mfs, admin.MetricFindings, map[string]string{"rule": "close-wait", "severity": "warning"}); v != 1 {
		t.Errorf(`%s{rule="close-wait",severity="warning"} = %v, want 1`, admin.MetricFindings, v)
	}
	if v, _ := value(t, mfs, admin.MetricFindingValue, map[string]string{"rule": "close-wait", "severity": "warning"}); v != 12 {
		t.Errorf(`%s{rule="close-wait",severity="warning"} = %v, want 12`, admin.MetricFindingValue, v)
	}
	if v, ok := value(t, mfs, admin.MetricFindings, map[string]string{"rule": "fin-wait-2", "severity": "problem"}); !ok || v != 0 {
		t.Errorf(`%s{rule="fin-wait-2",severity="problem"} = %v, %v; want a 0 sample`, admin.MetricFindings, v, ok)
	}
	if v, _ := value(t, mfs, admin.MetricDiagStatus, nil); v != 1 {
		t.Errorf("%s = %v, want 1 (warnings)", admin.MetricDiagStatus, v)
	}

	// The RTT histogram: the 13 open connections with a measured RTT
	// (12 CLOSE-WAIT and one ESTABLISHED; in process, well under 25 ms).
	if mf := mfs[admin.MetricRTT]; mf == nil || mf.GetType() != dto.MetricType_HISTOGRAM {
		t.Errorf("%s: %v, want a histogram", admin.MetricRTT, mf)
	} else if h := mf.Metric[0].Histogram; h.GetSampleCount() != 13 || h.GetSampleSum() <= 0 || len(h.Bucket) < 10 {
		t.Errorf("%s: %d samples, sum %v, %d buckets; want 13 samples", admin.MetricRTT, h.GetSampleCount(), h.GetSampleSum(), len(h.Bucket))
	} else {
		for _, b := range h.Bucket {
			if b.GetUpperBound() >= 0.025 && b.GetCumulativeCount() != 13 {
				t.Errorf("%s: bucket le=%v holds %d, want all 13", admin.MetricRTT, b.GetUpperBound(), b.GetCumulativeCount())
			}
		}
	}
	// The build.
	if mf := mfs[admin.MetricBuildInfo]; mf == nil || len(mf.Metric) != 1 || mf.Metric[0].Gauge.GetValue() != 1 {
		t.Errorf("%s: %v, want one sample of 1", admin.MetricBuildInfo, mf)
	} else if v, _ := value(t, mfs, admin.MetricBuildInfo, map[string]string{"goversion": runtime.Version()}); v != 1 {
		t.Errorf("%s has no goversion=%q: %v", admin.MetricBuildInfo, runtime.Version(), mf)
	}

	// Transitions counted from the events.
	if v, _ := value(t, mfs, admin.MetricTransitions, map[string]string{"from": "ESTABLISHED", "to": "CLOSE-WAIT"}); v != 12 {
		t.Errorf(`%s{from="ESTABLISHED",to="CLOSE-WAIT"} = %v, want 12`, admin.MetricTransitions, v)
	}
	if v, _ := value(t, mfs, admin.MetricTransitions, map[string]string{"from": "LISTEN", "to": "SYN-RECEIVED"}); v != 14 {
		t.Errorf(`%s{from="LISTEN",to="SYN-RECEIVED"} = %v, want 14`, admin.MetricTransitions, v)
	}
}

func TestConnectionsJSON(t *testing.T) {
	w := newWorld(t)
	want := w.scenario(t, 12)

	var snap diag.Snapshot
	getJSON(t, w.ts.URL+"/api/connections", &snap)
	if snap.Source != diag.SourceSynack {
		t.Errorf("source %q, want %q", snap.Source, diag.SourceSynack)
	}
	got := diag.CountStates(snap.Rows)
	for _, st := range tcp.States() {
		if got[st] != want[st] {
			t.Errorf("%d rows in %s, want %d", got[st], st, want[st])
		}
	}
	// The same rows as the stack's own view, field by field where it
	// maps one to one.
	direct := admin.Snapshot(w.b)
	if len(direct.Rows) != len(snap.Rows) {
		t.Fatalf("%d rows over HTTP, %d from admin.Snapshot", len(snap.Rows), len(direct.Rows))
	}
	byTuple := map[string]diag.Row{}
	for _, r := range snap.Rows {
		byTuple[r.Local.String()+" "+r.Remote.String()] = r
	}
	for _, d := range direct.Rows {
		r, ok := byTuple[d.Local.String()+" "+d.Remote.String()]
		if !ok {
			t.Errorf("row %v > %v missing over HTTP", d.Local, d.Remote)
			continue
		}
		if r.State != d.State || r.RecvQ != d.RecvQ || r.SendQ != d.SendQ || r.PID != d.PID {
			t.Errorf("row %v > %v: over HTTP %+v, direct %+v", d.Local, d.Remote, r, d)
		}
		if r.State == tcp.Established && r.RTT <= 0 {
			t.Errorf("ESTABLISHED row without an RTT: %+v", r)
		}
		if r.State == tcp.TimeWait && (r.Timer != "time-wait" || r.TimerLeft <= 0 || r.TimerLeft > 2*tcp.DefaultMSL) {
			t.Errorf("TIME-WAIT row timer %q %v, want time-wait within 2MSL", r.Timer, r.TimerLeft)
		}
		if r.State == tcp.CloseWait && (r.PID == 0 || r.Process != "testapp") {
			t.Errorf("CLOSE-WAIT row not owned by the process: %+v", r)
		}
		if r.State == tcp.TimeWait && r.PID != 0 {
			t.Errorf("TIME-WAIT row (closed by its owner) owned by pid %d", r.PID)
		}
		if r.State == tcp.Listen && (r.SendQ != stack.DefaultListenBacklog || r.Remote.IsValid()) {
			t.Errorf("LISTEN row %+v, want Send-Q the backlog and no remote", r)
		}
	}
	if l, ok := snap.Listeners[80]; !ok || l.Backlog != stack.DefaultListenBacklog || l.SynBacklog != stack.DefaultSynBacklog {
		t.Errorf("listener 80: %+v, %v", l, ok)
	}
	for k, v := range map[string]string{diag.KnobMSL: "30s", diag.KnobFinWait2Timeout: "1m0s", diag.KnobSynBacklog: "4096",
		diag.KnobAcceptBacklog: "128", diag.KnobEphemeralPorts: "32768-60999"} {
		if snap.Settings[k] != v {
			t.Errorf("setting %s = %q, want %q", k, snap.Settings[k], v)
		}
	}
	if snap.EphemeralRange != [2]int{stack.DefaultFirstEphemeral, stack.DefaultLastEphemeral} {
		t.Errorf("ephemeral range %v", snap.EphemeralRange)
	}
	if snap.Counters["PassiveOpens"] != 14 {
		t.Errorf("counters: PassiveOpens %d, want 14", snap.Counters["PassiveOpens"])
	}

	// Counters.
	var ctr stack.Counters
	for try := 0; ; try++ {
		before := w.b.Counters()
		getJSON(t, w.ts.URL+"/api/counters", &ctr)
		if before == w.b.Counters() {
			if ctr != before {
				t.Errorf("/api/counters %+v, want %+v", ctr, before)
			}
			break
		}
		if try == 10 {
			t.Fatal("the counters never held still")
		}
	}

	// The diagnosis: a CLOSE-WAIT warning naming synack's knobs, not sysctls.
	var rep diag.Report
	getJSON(t, w.ts.URL+"/api/diagnose", &rep)
	if len(rep.Findings) == 0 || rep.Findings[0].Rule != "close-wait" || rep.Findings[0].Count != 12 {
		t.Fatalf("findings %+v, want close-wait with 12 first", rep.Findings)
	}
	if rep.Status != 1 || rep.Counts["CLOSE-WAIT"] != 12 {
		t.Errorf("status %d, counts %v", rep.Status, rep.Counts)
	}
	if f := rep.Findings[0]; !strings.Contains(f.Process, "testapp") {
		t.Errorf("close-wait finding names process %q, want testapp", f.Process)
	}
}

// readLines reads newline-delimited JSON from body into ch until it ends.
func readLines[T any](body io.Reader, ch chan<- T, errc chan<- error) {
	sc := bufio.NewScanner(body)
	for sc.Scan() {
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			errc <- err
			return
		}
		ch <- v
	}
	close(ch)
}

func stream(t *testing.T, url string) (io.ReadCloser, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	return resp.Body, func() { cancel(); resp.Body.Close() }
}

func TestEventStream(t *testing.T) {
	w := newWorld(t)
	w.listen(t, 80)
	body, stop := stream(t, w.ts.URL+"/api/events?follow=1")
	defer stop()
	evs := make(chan admin.TraceRecord, 100)
	errc := make(chan error, 1)
	go readLines(body, evs, errc)

	// A whole lifecycle, passive side: the peer closes first.
	c, s := w.connect(t, 80)
	c.Close()
	s.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(s); err != nil {
		t.Fatal(err)
	}
	s.Close()

	want := []string{"LISTEN>SYN-RECEIVED", "SYN-RECEIVED>ESTABLISHED", "ESTABLISHED>CLOSE-WAIT", "CLOSE-WAIT>LAST-ACK", "LAST-ACK>CLOSED"}
	var got []string
	timeout := time.After(10 * time.Second)
	for len(got) < len(want) {
		select {
		case e, ok := <-evs:
			if !ok {
				t.Fatalf("stream ended after %v", got)
			}
			if e.ID != s.ID() {
				continue
			}
			if e.Kind != stack.TraceState || e.Tuple.Local.String() != s.LocalAddr().String() || e.Tuple.Remote.String() != s.RemoteAddr().String() || e.Seq == 0 || e.Time.IsZero() || e.Cause == tcp.NoCause {
				t.Errorf("event %+v: wrong kind or tuple, or no seq/time/cause", e)
			}
			got = append(got, e.From.String()+">"+e.To.String())
		case err := <-errc:
			t.Fatal(err)
		case <-timeout:
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("transitions %v, want %v", got, want)
	}

	// The same events in the ring, and counted.
	var all admin.Events
	getJSON(t, w.ts.URL+"/api/events", &all)
	var ring []string
	for _, e := range all.Events {
		if e.ID == s.ID() {
			ring = append(ring, e.From.String()+">"+e.To.String())
		}
	}
	if !reflect.DeepEqual(ring, want) {
		t.Errorf("ring %v, want %v", ring, want)
	}
	counted := map[string]uint64{}
	for _, tr := range all.Transitions {
		counted[tr.From+">"+tr.To] = tr.Count
	}
	if counted["ESTABLISHED>CLOSE-WAIT"] != 1 || counted["LAST-ACK>CLOSED"] != 1 {
		t.Errorf("transition counts %v", counted)
	}
	// ?after= gives only the newer ones.
	var none admin.Events
	getJSON(t, w.ts.URL+"/api/events?after="+itoa(all.Last), &none)
	if len(none.Events) != 0 {
		t.Errorf("after=%d: %d events, want none", all.Last, len(none.Events))
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

func TestEventStreamSSE(t *testing.T) {
	w := newWorld(t)
	w.listen(t, 80)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", w.ts.URL+"/api/events?follow=1", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	w.connect(t, 80)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			var e admin.TraceRecord
			if err := json.Unmarshal([]byte(data), &e); err != nil {
				t.Fatal(err)
			}
			if e.From == tcp.Listen && e.To == tcp.SynReceived && e.Cause == tcp.RcvSYN {
				return
			}
		}
	}
	t.Fatalf("stream ended: %v", sc.Err())
}

func TestTraceStream(t *testing.T) {
	w := newWorld(t)
	w.listen(t, 80)
	w.listen(t, 81)
	w.connect(t, 80) // before the client connects, and on another port: filtered out
	body, stop := stream(t, w.ts.URL+"/api/trace?port=81")
	defer stop()
	recs := make(chan admin.TraceRecord, 100)
	errc := make(chan error, 1)
	go readLines(body, recs, errc)

	c, s := w.connect(t, 81)
	c.Write([]byte("hello"))
	buf := make([]byte, 5)
	io.ReadFull(s, buf)

	// The handshake as the server sees it: rcv SYN, the child made a
	// copy of the listener (CLOSED -> LISTEN), LISTEN -> SYN-RECEIVED,
	// snd SYN,ACK, rcv ACK, SYN-RECEIVED -> ESTABLISHED, then the data.
	type step struct {
		kind  stack.TraceKind
		flags wire.TCPFlags
		to    tcp.State
	}
	want := []step{
		{stack.TraceReceived, wire.SYN, tcp.SynReceived},
		{stack.TraceState, 0, tcp.Listen},
		{stack.TraceState, 0, tcp.SynReceived},
		{stack.TraceSent, wire.SYN | wire.ACK, tcp.SynReceived},
		{stack.TraceReceived, wire.ACK, tcp.Established},
		{stack.TraceState, 0, tcp.Established},
	}
	var got []admin.TraceRecord
	timeout := time.After(10 * time.Second)
	sawData := false
	for !sawData {
		select {
		case r := <-recs:
			if r.Tuple.Local.Port() != 81 {
				t.Fatalf("record outside the filter: %+v", r)
			}
			got = append(got, r)
			if r.Kind == stack.TraceReceived && r.Len == 5 {
				sawData = true
			}
		case err := <-errc:
			t.Fatal(err)
		case <-timeout:
			t.Fatalf("no data segment in %d records", len(got))
		}
	}
	if len(got) < len(want) {
		t.Fatalf("%d records, want at least %d", len(got), len(want))
	}
	for i, st := range want {
		r := got[i]
		if r.Kind != st.kind || r.To != st.to || (st.flags != 0 && r.Segment.Flags != st.flags) {
			t.Errorf("record %d: %v %v -> %v, want %v %v -> %v", i, r.Kind, r.Segment.Flags, r.To, st.kind, st.flags, st.to)
		}
		if r.ID != s.ID() {
			t.Errorf("record %d: connection %d, want %d", i, r.ID, s.ID())
		}
	}
	// The SYN,ACK keeps its options across the wire.
	if o := got[3].Segment.Options; !o.HasMSS || o.MSS == 0 {
		t.Errorf("SYN,ACK without its MSS option: %+v", o)
	}
	// Round trip through JSON.
	for _, r := range got {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var back admin.TraceRecord
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, r) {
			t.Errorf("JSON round trip:\n got %+v\nwant %+v", back, r)
		}
	}
	// The recent past, without following.
	var recent []admin.TraceRecord
	sc := bufio.NewScanner(strings.NewReader(string(get(t, w.ts.URL+"/api/trace?follow=0&backlog=3&state=ESTABLISHED"))))
	for sc.Scan() {
		var r admin.TraceRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		recent = append(recent, r)
	}
	if len(recent) != 3 {
		t.Errorf("backlog=3: %d records", len(recent))
	}
	for _, r := range recent {
		if r.From != tcp.Established && r.To != tcp.Established {
			t.Errorf("state=ESTABLISHED let through %+v", r)
		}
	}
}

func TestTraceSlowClientDoesNotBlock(t *testing.T) {
	tr := admin.NewTracerSize(8)
	// Nobody reads: Hook must neither block nor grow without bound.
	for i := range 100000 {
		tr.Hook(stack.TraceEvent{Kind: stack.TraceState, Transition: tcp.Transition{ID: uint64(i), From: tcp.Established, To: tcp.CloseWait, Cause: tcp.RcvFIN}})
	}
	if r := tr.Recent(100, admin.TraceFilter{}); len(r) != 8 || r[7].ID != 99999 {
		t.Fatalf("recent: %d records, last %+v", len(r), r[len(r)-1])
	}
}

func TestTraceNoAlloc(t *testing.T) {
	tr := admin.NewTracer()
	seg := &tcp.Segment{Flags: wire.ACK, Payload: make([]byte, 100)}
	ev := stack.TraceEvent{Kind: stack.TraceSent, Transition: tcp.Transition{From: tcp.Established, To: tcp.Established}, Segment: seg}
	if n := testing.AllocsPerRun(1000, func() { tr.Hook(ev) }); n != 0 {
		t.Errorf("Hook allocates %v times per event", n)
	}
}

func TestParseTraceFilter(t *testing.T) {
	f, err := admin.ParseTraceFilter([]string{"port", "80", "10.0.0.2", "close-wait,443", "[fd00::1]:22", "state", "TIME_WAIT"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f.Ports, []uint16{80, 443, 22}) || len(f.Addrs) != 2 || len(f.States) != 2 {
		t.Errorf("filter %+v", f)
	}
	if f.Query() != "port=80&port=443&port=22&host=10.0.0.2&host=fd00::1&state=CLOSE-WAIT&state=TIME-WAIT" {
		t.Errorf("query %q", f.Query())
	}
	for _, bad := range [][]string{{"port", "x"}, {"nonsense"}, {"state"}, {"state", "FOO"}} {
		if _, err := admin.ParseTraceFilter(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// Issue 15: promlint found 40 problems in /metrics (camelCase netstat
// names, a gauge ending in _count). Every family a busy stack exports,
// findings and listeners included, must pass it.
func TestMetricsPromlint(t *testing.T) {
	w := newWorld(t)
	w.scenario(t, 12)
	body := get(t, w.ts.URL+"/metrics") // the text format
	problems, err := promlint.New(strings.NewReader(string(body))).Lint()
	if err != nil {
		t.Fatalf("promlint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	for _, name := range []string{"synack_netstat_tcp_active_opens_total", admin.MetricRTT + "_bucket", admin.MetricBuildInfo, admin.MetricTCPDrops} {
		if !strings.Contains(string(body), "\n"+name) {
			t.Errorf("/metrics has no %s", name)
		}
	}
}

func TestNetstatMetric(t *testing.T) {
	for _, c := range []struct {
		group, name string
		gauge       bool
		want        string
	}{
		{"Tcp", "ActiveOpens", false, "synack_netstat_tcp_active_opens_total"},
		{"Tcp", "CurrEstab", true, "synack_netstat_tcp_curr_estab"},
		{"Tcp", "InCsumErrors", false, "synack_netstat_tcp_in_csum_errors_total"},
		{"TcpExt", "TCPTimeWaitReopen", false, "synack_netstat_tcpext_tcp_time_wait_reopen_total"},
		{"TcpExt", "ECNNegotiated", false, "synack_netstat_tcpext_ecn_negotiated_total"},
		{"TcpExt", "CWRSent", false, "synack_netstat_tcpext_cwr_sent_total"},
		{"Ip", "ReasmOKs", false, "synack_netstat_ip_reasm_oks_total"},
		{"Icmp", "InPktTooBigs", false, "synack_netstat_icmp_in_pkt_too_bigs_total"},
	} {
		if got := admin.NetstatMetric(c.group, c.name, c.gauge); got != c.want {
			t.Errorf("NetstatMetric(%q, %q) = %q, want %q", c.group, c.name, got, c.want)
		}
	}
}

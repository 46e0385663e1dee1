//go:build linux

package hostlive

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/synack/synack/diag"
	"github.com/synack/synack/diag/hosttrace"
	"github.com/synack/synack/tcp"
)

// busyModel is a model with something in every metric: a listener, a
// pile-up that makes a finding, transitions, RSTs, retransmissions.
func busyModel(t *testing.T) *Model {
	t.Helper()
	f := &fake{now: t0}
	f.rows = []diag.Row{{State: tcp.Listen, Local: ap("0.0.0.0:80"), SendQ: 128}}
	for i := range 12 {
		f.rows = append(f.rows, diag.Row{State: tcp.CloseWait, Local: ap("10.0.0.1:80"),
			Remote: ap("10.0.0.2:" + strconv.Itoa(1000+i)), BytesReceived: 10})
	}
	m := f.model(Options{})
	m.o.Snapshot = func() (diag.Snapshot, error) {
		return diag.Snapshot{Source: diag.SourceHost, Time: f.now, Rows: f.rows, EphemeralRange: [2]int{32768, 60999}}, nil
	}
	m.Refresh(nil)
	m.Event(state(1, "10.0.0.1:80", "10.0.0.2:1000", tcp.Established, tcp.CloseWait))
	m.Event(other(hosttrace.KindSendReset, 2, "10.0.0.1:80", "10.0.0.3:1", tcp.Established))
	m.Event(other(hosttrace.KindRetransmit, 3, "10.0.0.1:80", "10.0.0.3:2", tcp.Established))
	m.Event(other(hosttrace.KindSynAckRetransmit, 4, "10.0.0.1:80", "10.0.0.3:3", tcp.SynReceived))
	return m
}

// TestCollectorPromlint: every family the collector exports passes
// promlint, and MetricNames lists exactly the families exported.
func TestCollectorPromlint(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(busyModel(t)))
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(fams).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	var got []string
	for _, f := range fams {
		got = append(got, f.GetName())
	}
	want := MetricNames()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("exported %v\nMetricNames %v", got, want)
	}
}

// metricRef finds the metric names in PromQL or YAML text.
var metricRef = regexp.MustCompile(`\bsynack_[a-z0-9_]+`)

// checkRefs fails for every synack_ name in text that the exporter does
// not export, and when text names none.
func checkRefs(t *testing.T, where, text string) {
	t.Helper()
	refs := metricRef.FindAllString(text, -1)
	if len(refs) == 0 {
		t.Errorf("%s: names no synack metric: %q", where, text)
	}
	for _, r := range refs {
		if !slices.Contains(MetricNames(), r) {
			t.Errorf("%s: %s is not a metric synack exporter --host exports", where, r)
		}
	}
}

// TestDashboard checks contrib/grafana/synack-host.json: it is a Grafana
// dashboard (the fields Grafana needs, panels laid out on its 24-column
// grid, unique ids) and every query names only metrics the exporter
// exports, so a typo in a metric name fails here.
func TestDashboard(t *testing.T) {
	b, err := os.ReadFile("../../contrib/grafana/synack-host.json")
	if err != nil {
		t.Fatal(err)
	}
	type target struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	}
	type panel struct {
		ID      int                      `json:"id"`
		Type    string                   `json:"type"`
		Title   string                   `json:"title"`
		GridPos struct{ X, Y, W, H int } `json:"gridPos"`
		Targets []target                 `json:"targets"`
		Panels  []panel                  `json:"panels"` // a row's
	}
	var d struct {
		UID           string  `json:"uid"`
		Title         string  `json:"title"`
		SchemaVersion int     `json:"schemaVersion"`
		Panels        []panel `json:"panels"`
		Templating    struct {
			List []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("the dashboard is not JSON Grafana reads: %v", err)
	}
	if d.UID == "" || d.Title == "" || d.SchemaVersion < 30 || len(d.Panels) == 0 {
		t.Fatalf("uid %q, title %q, schemaVersion %d, %d panels", d.UID, d.Title, d.SchemaVersion, len(d.Panels))
	}
	types := []string{"timeseries", "stat", "table", "gauge", "bargauge", "row", "text", "state-timeline"}
	ids := map[int]bool{}
	var walk func(ps []panel)
	used := map[string]bool{}
	walk = func(ps []panel) {
		for _, p := range ps {
			if p.ID == 0 || ids[p.ID] {
				t.Errorf("panel %q: id %d missing or repeated", p.Title, p.ID)
			}
			ids[p.ID] = true
			if p.Title == "" || !slices.Contains(types, p.Type) {
				t.Errorf("panel %d: title %q, type %q", p.ID, p.Title, p.Type)
			}
			g := p.GridPos
			if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
				t.Errorf("panel %q: gridPos %+v off Grafana's 24-column grid", p.Title, g)
			}
			if p.Type != "row" && p.Type != "text" && len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			refs := map[string]bool{}
			for _, tg := range p.Targets {
				if tg.RefID == "" || refs[tg.RefID] {
					t.Errorf("panel %q: refId %q missing or repeated", p.Title, tg.RefID)
				}
				refs[tg.RefID] = true
				checkRefs(t, "panel "+p.Title, tg.Expr)
				for _, r := range metricRef.FindAllString(tg.Expr, -1) {
					used[r] = true
				}
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			checkRefs(t, "variable "+v.Name, string(v.Query))
		}
	}
	// What the brief asks the dashboard to show.
	for _, m := range []string{MetricConnections, MetricTransitions, MetricRetransmits, MetricResets, MetricFindings} {
		if !used[m] {
			t.Errorf("no panel shows %s", m)
		}
	}
}

// TestAlertRules: every metric the alert rules and their promtool tests
// name is one the exporter exports (promtool checks the PromQL in CI).
func TestAlertRules(t *testing.T) {
	for _, f := range []string{"alerts.yml", "alerts_test.yml"} {
		b, err := os.ReadFile("../../contrib/prometheus/" + f)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for i, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "#") || !metricRef.MatchString(line) {
				continue
			}
			n++
			checkRefs(t, f+":"+strconv.Itoa(i+1), line)
		}
		if n == 0 {
			t.Errorf("%s names no metric", f)
		}
	}
}

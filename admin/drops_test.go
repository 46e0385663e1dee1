package admin_test

import (
	"encoding/json"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"

	"github.com/synack/synack/admin"
	"github.com/synack/synack/stack"
	"github.com/synack/synack/tcp"
)

// /metrics has one synack_tcp_drops_total sample per drop reason, zeros
// included, each the stack's Counters().Drops, and the family lints clean.
func TestMetricsDrops(t *testing.T) {
	w := newWorld(t)
	w.scenario(t, 2)
	mfs, ctr := w.scrapeStill(t)
	mf := mfs[admin.MetricTCPDrops]
	if mf == nil {
		t.Fatalf("no %s", admin.MetricTCPDrops)
	}
	if mf.GetType() != dto.MetricType_COUNTER {
		t.Errorf("%s is a %v, want a counter", admin.MetricTCPDrops, mf.GetType())
	}
	if n := len(mf.GetMetric()); n != len(tcp.DropReasons()) {
		t.Errorf("%s has %d samples, want one per reason (%d)", admin.MetricTCPDrops, n, len(tcp.DropReasons()))
	}
	for _, r := range tcp.DropReasons() {
		v, ok := value(t, mfs, admin.MetricTCPDrops, map[string]string{"reason": r.String()})
		if !ok || uint64(v) != ctr.Drops[r] {
			t.Errorf("%s{reason=%q} = %v, %v; want %d", admin.MetricTCPDrops, r, v, ok, ctr.Drops[r])
		}
	}
	problems, err := promlint.NewWithMetricFamilies([]*dto.MetricFamily{mf}).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

// A trace record keeps a received segment's drop reason through JSON.
func TestTraceRecordDropJSON(t *testing.T) {
	rec := admin.TraceRecord{Seq: 1, Kind: stack.TraceReceived, HasSegment: true, Drop: tcp.DropPAWS}
	rec.ID, rec.From, rec.To = 3, tcp.Established, tcp.Established
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil || m["drop"] != "paws" {
		t.Fatalf("%s: drop %v (%v), want \"paws\"", b, m["drop"], err)
	}
	var back admin.TraceRecord
	if err := json.Unmarshal(b, &back); err != nil || back.Drop != tcp.DropPAWS {
		t.Fatalf("round trip: Drop %v, %v", back.Drop, err)
	}
	rec.Drop = tcp.DropNone
	var taken map[string]any
	if b, _ := json.Marshal(rec); json.Unmarshal(b, &taken) == nil {
		if _, has := taken["drop"]; has {
			t.Errorf("%s: a segment that was taken has a drop", b)
		}
	}
}

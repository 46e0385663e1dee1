package admin_test

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/synack/synack/admin"
)

// TestMetricsBytes: /metrics counts the payload the stack's connections
// received and had acknowledged, exactly, and keeps it once they are
// closed (a counter, not a sum over the open connections).
func TestMetricsBytes(t *testing.T) {
	w := newWorld(t)
	w.listen(t, 80)
	c, s := w.connect(t, 80) // b is the server s
	if _, err := c.Write([]byte(strings.Repeat("x", 1000))); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(s, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte(strings.Repeat("y", 300))); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 300)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	s.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		tc := w.b.Counters().TCP
		if tc.BytesReceived == 1000 && tc.BytesAcked == 300 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stack counters: %d bytes received, %d acked; want 1000 and 300", tc.BytesReceived, tc.BytesAcked)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mfs := scrape(t, w.ts.URL)
	for name, want := range map[string]float64{admin.MetricReceivedBytes: 1000, admin.MetricAckedBytes: 300} {
		f := mfs[name]
		if f == nil || len(f.Metric) != 1 || f.Metric[0].Counter == nil {
			t.Errorf("/metrics has no counter %s", name)
			continue
		}
		if got := f.Metric[0].Counter.GetValue(); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if mfs["synack_netstat_tcpext_bytes_acked_total"] != nil {
		t.Error("the byte counters are also under a netstat name")
	}
}

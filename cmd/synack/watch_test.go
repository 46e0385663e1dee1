//go:build linux

package main

import (
	"bytes"
	"github.com/synack/synack/internal/headless"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/synack/synack/diag"
	"github.com/synack/synack/diag/hostlive"
	"github.com/synack/synack/diag/hosttrace"
	"github.com/synack/synack/tcp"
)

// TestWatchPageModel: the page of watch --host over a model fed by hand
// (no root needed): the boxes show the snapshot's counts, the arrows
// count and rate (12 transitions in 10 s: 1.2/s), and the table of
// resets and retransmissions shows the connection that retransmitted.
func TestWatchPageModel(t *testing.T) {
	bin := headless.Chromium(t)
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	ap := netip.MustParseAddrPort
	rows := []diag.Row{{State: tcp.Listen, Local: ap("0.0.0.0:80")}}
	for i := range 3 {
		rows = append(rows, diag.Row{State: tcp.Established, Local: ap("10.0.0.1:80"), Remote: netip.AddrPortFrom(netip.MustParseAddr("10.0.0.2"), uint16(5000+i))})
	}
	m := hostlive.New(hostlive.Options{
		Now: func() time.Time { return now },
		Snapshot: func() (diag.Snapshot, error) {
			return diag.Snapshot{Source: diag.SourceHost, Time: now, Rows: rows}, nil
		},
	})
	m.Refresh(nil)
	for i := range 12 {
		m.Event(&hosttrace.Event{Kind: hosttrace.KindState, Sock: uint64(100 + i), Time: now, Local: ap("10.0.0.1:80"),
			Remote: ap("10.0.0.2:6000"), From: tcp.Listen, To: tcp.SynReceived, LinuxTo: 3})
	}
	m.Event(&hosttrace.Event{Kind: hosttrace.KindRetransmit, Sock: 7, Time: now, Local: ap("10.0.0.1:80"),
		Remote: ap("10.0.0.2:5001"), To: tcp.Established, LinuxTo: 1})
	now = now.Add(10 * time.Second)
	m.Refresh(nil)
	ts := httptest.NewServer(watchHandler(m))
	defer ts.Close()
	doc, err := html.Parse(bytes.NewReader(headless.Run(t, bin, ts.URL+"/", 1400, 1000, "--dump-dom")))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(headless.Text(headless.ByID(doc, "n-ESTABLISHED"))); got != "3" {
		t.Errorf("ESTABLISHED box shows %q, want 3", got)
	}
	if got := strings.TrimSpace(headless.Text(headless.ByID(doc, "t-LISTEN>SYN-RECEIVED"))); got != "×12 (1.2/s)" {
		t.Errorf("LISTEN->SYN-RECEIVED arrow shows %q, want ×12 (1.2/s)", got)
	}
	// An arrow never taken keeps the page's plain ×0.
	if got := strings.TrimSpace(headless.Text(headless.ByID(doc, "t-SYN-RECEIVED>ESTABLISHED"))); got != "×0" {
		t.Errorf("SYN-RECEIVED->ESTABLISHED arrow shows %q, want ×0", got)
	}
	hc := headless.Text(headless.ByID(doc, "hostconns"))
	if !strings.Contains(hc, "ESTABLISHED10.0.0.1:8010.0.0.2:50011") {
		t.Errorf("resets and retransmissions table: %q", hc)
	}
	if h := headless.Text(headless.ByID(doc, "host-totals")); !strings.Contains(h, "1 segments") {
		t.Errorf("totals: %q", h)
	}
	if title := headless.Text(headless.ByID(doc, "diagram-title")); !strings.Contains(title, "kernel") {
		t.Errorf("diagram title: %q", title)
	}
}

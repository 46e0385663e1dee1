//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/synack/synack/internal/headless"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/vishvananda/netlink"
	"golang.org/x/net/html"

	"github.com/synack/synack/admin"
	"github.com/synack/synack/diag"
	"github.com/synack/synack/diag/host"
	"github.com/synack/synack/diag/hostlive"
	"github.com/synack/synack/diag/hosttrace"
	"github.com/synack/synack/link/tun/nstest"
)

// The test's addresses, on lo in its own namespace ("hw-..."): the
// tracepoints are the whole host's, so the model keeps only events
// between these two (and on the test's port).
var (
	hwSrv = netip.MustParseAddr("198.18.152.1")
	hwCli = netip.MustParseAddr("198.18.152.2")
)

// hwWorld is a namespace with a listener, a host model of it (its
// sock_diag read in the namespace, its tracepoints narrowed to the
// listener's port and the test's addresses) and the kernel connections
// the test made.
type hwWorld struct {
	ns    *nstest.NS
	port  uint16
	l     net.Listener
	m     *hostModel
	srvCh chan net.Conn
}

func newHWWorld(t *testing.T) *hwWorld {
	ns := nstest.NewPrefixed(t, "hw-") // skips without root, fails under CI=true
	var err error
	ns.Do(func() {
		lo, e := netlink.LinkByName("lo")
		if e != nil {
			err = e
			return
		}
		for _, a := range []netip.Addr{hwSrv, hwCli} {
			if err = netlink.AddrAdd(lo, &netlink.Addr{IPNet: netlink.NewIPNet(a.AsSlice())}); err != nil {
				return
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	w := &hwWorld{ns: ns, srvCh: make(chan net.Conn, 8)}
	if w.l, err = ns.Listen("tcp4", netip.AddrPortFrom(hwSrv, 0).String()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.l.Close() })
	w.port = uint16(w.l.Addr().(*net.TCPAddr).Port)
	go func() {
		for {
			c, err := w.l.Accept()
			if err != nil {
				close(w.srvCh)
				return
			}
			w.srvCh <- c
		}
	}()
	ours := func(ap netip.AddrPort) bool { return ap.Addr() == hwSrv || ap.Addr() == hwCli }
	keep := func(e *hosttrace.Event) bool {
		// A connecting socket's first event has local port 0.
		return ours(e.Local) && (ours(e.Remote) || e.Remote.Port() == 0)
	}
	snap := func() (s diag.Snapshot, err error) {
		ns.Do(func() { s, err = host.Read(host.Options{NoProcesses: true}) })
		return s, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	// An hour between looks: the test takes the looks it checks itself.
	o := hostOpts{ports: []uint16{w.port}, interval: time.Hour, maxConns: 100}
	// A CLOSE-WAIT is enough for a finding (B's server).
	th := diag.Thresholds{CloseWaitWarn: 1}
	w.m, err = startHostModel(ctx, o, hostlive.Options{Snapshot: snap, Keep: keep, Thresholds: th})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := w.m.wait(); err != nil {
			t.Error(err)
		}
	})
	return w
}

// dial connects a client socket from hwCli and returns it with the
// server's end.
func (w *hwWorld) dial(t *testing.T) (cli, srv net.Conn) {
	t.Helper()
	var err error
	w.ns.Do(func() {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: hwCli.AsSlice()}}
		cli, err = d.Dial("tcp4", netip.AddrPortFrom(hwSrv, w.port).String())
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	select {
	case srv = <-w.srvCh:
	case <-time.After(5 * time.Second):
		t.Fatal("no accept")
	}
	t.Cleanup(func() { srv.Close() })
	return cli, srv
}

// scenario makes four connections to the listener with the kernel's own
// sockets, in states that stay until the test ends:
//
//	A  both ends ESTABLISHED; the client sent 5 bytes, the server read them
//	B  the client closed: client FIN-WAIT-2, server CLOSE-WAIT
//	C  the server closed first, then the client: server TIME-WAIT, client gone
//	D  the client aborted (SO_LINGER 0): one RST sent, one received, both gone
//
// It returns once the tracepoints delivered the 28 transitions those
// make (as Linux 6.18 makes them: see diag/hosttrace's TestLifecycle), or
// fails after 5 s.
func (w *hwWorld) scenario(t *testing.T) {
	t.Helper()
	a, as := w.dial(t)
	if _, err := a.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(as, make([]byte, 5)); err != nil {
		t.Fatal(err)
	}
	b, _ := w.dial(t)
	b.Close()
	c, cs := w.dial(t)
	cs.Close()
	if _, err := io.ReadAll(c); err != nil {
		t.Fatal(err)
	}
	c.Close()
	d, ds := w.dial(t)
	d.(*net.TCPConn).SetLinger(0)
	d.Close()
	ds.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := ds.Read(make([]byte, 1)); err == nil || !strings.Contains(err.Error(), "reset") {
		t.Fatalf("server of D read %v, want a reset", err)
	}
	ds.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var n uint64
		for _, tr := range w.m.View(^uint64(0)).Transitions {
			n += tr.Count
		}
		if n >= 28 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d transitions after 5 s, want 28: %+v", n, w.m.View(^uint64(0)).Transitions)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // anything extra the kernel would send
	if err := w.m.Refresh(nil); err != nil {
		t.Fatal(err)
	}
}

// hwTransitions are the scenario's transitions, exactly.
var hwTransitions = map[string]float64{
	"CLOSED>SYN-SENT": 4, "SYN-SENT>ESTABLISHED": 4, "LISTEN>SYN-RECEIVED": 4, "SYN-RECEIVED>ESTABLISHED": 4,
	"ESTABLISHED>FIN-WAIT-1": 2, "FIN-WAIT-1>FIN-WAIT-2": 2, "FIN-WAIT-2>CLOSED": 2, // B's client, C's server: orphans in FIN-WAIT-2 become timewait socks at once
	"ESTABLISHED>CLOSE-WAIT": 2, "CLOSE-WAIT>LAST-ACK": 1, "LAST-ACK>CLOSED": 1,
	"ESTABLISHED>CLOSED": 2, // D: the abort and the RST received
}

func scrape(t *testing.T, url string) (map[string]*dto.MetricFamily, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, body)
	}
	return fams, body
}

// value is the value of the sample of family name whose labels are
// labels ("k=v" pairs); ok false when there is none.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for _, kv := range labels {
			k, v, _ := strings.Cut(kv, "=")
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		}
	}
	return 0, false
}

// TestExporterHost: the exporter's /metrics after the scenario: every
// state count by port and every transition counter exactly, the RSTs,
// the bytes, the listen queue; and promlint finds nothing.
func TestExporterHost(t *testing.T) {
	w := newHWWorld(t)
	w.scenario(t)
	ts := httptest.NewServer(exporterHandler(w.m.Model, false))
	defer ts.Close()
	fams, body := scrape(t, ts.URL+"/metrics")
	problems, err := promlint.New(bytes.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	port := strconv.Itoa(int(w.port))
	// The server's ends have the listener's port; the clients' have
	// ephemeral ones ("other").
	wantStates := map[[2]string]float64{
		{"LISTEN", port}: 1, {"ESTABLISHED", port}: 1, {"ESTABLISHED", "other"}: 1,
		{"CLOSE-WAIT", port}: 1, {"FIN-WAIT-2", "other"}: 1, {"TIME-WAIT", port}: 1,
	}
	for _, m := range fams[hostlive.MetricConnections].GetMetric() {
		var st, p string
		for _, l := range m.Label {
			switch l.GetName() {
			case "state":
				st = l.GetValue()
			case "port":
				p = l.GetValue()
			}
		}
		if got, want := m.Gauge.GetValue(), wantStates[[2]string{st, p}]; got != want {
			t.Errorf("%s{state=%q,port=%q} = %v, want %v", hostlive.MetricConnections, st, p, got, want)
		}
	}
	got := map[string]float64{}
	for _, m := range fams[hostlive.MetricTransitions].GetMetric() {
		var from, to string
		for _, l := range m.Label {
			if l.GetName() == "from" {
				from = l.GetValue()
			} else {
				to = l.GetValue()
			}
		}
		if v := m.Counter.GetValue(); v != 0 { // the unused arrows are there at 0
			got[from+">"+to] = v
		}
	}
	if len(fams[hostlive.MetricTransitions].GetMetric()) < len(admin.DrawnTransitions()) {
		t.Errorf("%s lacks some of the diagram's arrows", hostlive.MetricTransitions)
	}
	if fmt.Sprint(sorted(got)) != fmt.Sprint(sorted(hwTransitions)) {
		t.Errorf("transitions:\n got %v\nwant %v", sorted(got), sorted(hwTransitions))
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{hostlive.MetricResets, []string{"direction=sent"}, 1},
		{hostlive.MetricResets, []string{"direction=received"}, 1},
		// Linux counts sequence space: A's client had its SYN and
		// "hello" acked; A's server received "hello", B's server its FIN.
		{hostlive.MetricAckedBytes, nil, 6},
		{hostlive.MetricReceivedBytes, nil, 6},
		{hostlive.MetricAcceptQueue, []string{"port=" + port}, 0},
		{hostlive.MetricBacklog, []string{"port=" + port}, 4096}, // Go listens with somaxconn, 4096 by default
		{hostlive.MetricLostEvents, nil, 0},
		{hostlive.MetricConnsTracked, nil, 2}, // D's two ends
		{hostlive.MetricBuildInfo, nil, 1},
	} {
		if v, ok := value(fams, c.name, c.labels...); !ok || v != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, v, ok, c.want)
		}
	}
	if v, _ := value(fams, hostlive.MetricFindings, "rule=close-wait", "severity=warning"); v != 1 {
		t.Errorf("%s{rule=close-wait,severity=warning} = %v, want 1", hostlive.MetricFindings, v)
	}
	if v, _ := value(fams, hostlive.MetricDiagStatus); v != 1 {
		t.Errorf("%s = %v, want 1 (a warning)", hostlive.MetricDiagStatus, v)
	}
	if fams["go_goroutines"] == nil {
		t.Error("no Go runtime metrics")
	}
}

func sorted(m map[string]float64) []string {
	var out []string
	for k, v := range m {
		out = append(out, fmt.Sprintf("%s=%g", k, v))
	}
	sort.Strings(out)
	return out
}

// TestWatchHost: the page of watch --host, in headless Chromium, after
// the scenario: the kernel's counts in the diagram's boxes, the
// transition counts (and rates) on the arrows, the aborts among the
// other transitions, and the RSTs in the per-connection table.
func TestWatchHost(t *testing.T) {
	bin := headless.Chromium(t)
	w := newHWWorld(t)
	w.scenario(t)
	w.m.Refresh(nil) // a second sample: the rates are measured
	ts := httptest.NewServer(watchHandler(w.m.Model))
	defer ts.Close()

	// The API the page reads.
	resp, err := http.Get(ts.URL + "/api/host")
	if err != nil {
		t.Fatal(err)
	}
	var h hostAPI
	err = json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if h.Totals.ResetsSent != 1 || h.Totals.ResetsReceived != 1 || len(h.Conns) != 2 {
		t.Fatalf("api/host: %+v, want 1 RST sent, 1 received, 2 connections", h)
	}

	dom := headless.Run(t, bin, ts.URL+"/", 1400, 1000, "--dump-dom")
	doc, err := html.Parse(bytes.NewReader(dom))
	if err != nil {
		t.Fatal(err)
	}
	if headless.ByID(doc, "diagram") == nil || !strings.Contains(string(dom), "data-updated") {
		t.Fatalf("the page did not refresh:\n%s", dom)
	}
	for state, n := range map[string]string{"LISTEN": "1", "ESTABLISHED": "2", "CLOSE-WAIT": "1", "FIN-WAIT-2": "1",
		"TIME-WAIT": "1", "SYN-SENT": "0", "SYN-RECEIVED": "0", "FIN-WAIT-1": "0", "LAST-ACK": "0", "CLOSING": "0"} {
		if got := strings.TrimSpace(headless.Text(headless.ByID(doc, "n-"+state))); got != n {
			t.Errorf("box %s shows %q, want %s", state, got, n)
		}
	}
	for tr, n := range hwTransitions {
		el := headless.ByID(doc, "t-"+tr)
		if el == nil {
			continue // not drawn: in the "other" table
		}
		want := fmt.Sprintf("×%g (", n) // and the rate
		if got := strings.TrimSpace(headless.Text(el)); !strings.HasPrefix(got, want) || !strings.HasSuffix(got, "/s)") {
			t.Errorf("arrow %s shows %q, want %s…/s)", tr, got, want)
		}
	}
	if other := headless.Text(headless.ByID(doc, "other")); !strings.Contains(other, "ESTABLISHED → CLOSED×2") {
		t.Errorf("other transitions: %q", other)
	}
	hc := headless.Text(headless.ByID(doc, "hostconns"))
	if !strings.Contains(hc, netip.AddrPortFrom(hwSrv, w.port).String()) || strings.Count(hc, "CLOSED") != 2 {
		t.Errorf("resets table: %q", hc)
	}
	if tot := headless.Text(headless.ByID(doc, "host-totals")); !strings.Contains(tot, "1 RSTs sent, 1 received") {
		t.Errorf("host totals: %q", tot)
	}
	if f := headless.Text(headless.ByID(doc, "findings")); !strings.Contains(f, "close-wait") {
		t.Errorf("findings: %q", f)
	}
}

// TestExporterCommand runs `synack exporter --host` as a process in a
// namespace: it serves /metrics on the namespace's loopback with the
// namespace's sockets, counts a connection's transitions on the port it
// was given, and SIGTERM ends it with status 0 and its tracefs instance
// removed. (The exact counts are TestExporterHost's: here other
// namespaces' sockets on the same port number would count too.)
func TestExporterCommand(t *testing.T) {
	ns := nstest.NewPrefixed(t, "hw-")
	l, err := ns.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	cmd := synackCmd(os.Args[0], "exporter", "--host", "--listen", "127.0.0.1:9841", "--ports", port, "--interval", "100ms")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.Start(cmd); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	ready := make(chan string, 1)
	go func() {
		b := make([]byte, 4096)
		n, _ := io.ReadAtLeast(stderr, b, 1)
		ready <- string(b[:n])
		io.Copy(io.Discard, stderr)
	}()
	select {
	case line := <-ready:
		if !strings.Contains(line, "serving on http://127.0.0.1:9841/") {
			t.Fatalf("first line on stderr: %q", line)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("synack exporter did not start within 10 s")
	}
	go func() {
		if c, err := l.Accept(); err == nil {
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	c, err := ns.Dial("tcp4", "127.0.0.1:"+port)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: ns.DialContext}}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := hc.Get("http://127.0.0.1:9841/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		p := expfmt.NewTextParser(model.LegacyValidation)
		fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		lis, _ := value(fams, hostlive.MetricConnections, "state=LISTEN", "port="+port)
		syn, _ := value(fams, hostlive.MetricTransitions, "from=LISTEN", "to=SYN-RECEIVED")
		fw2, _ := value(fams, hostlive.MetricTransitions, "from=FIN-WAIT-2", "to=CLOSED")
		if lis == 1 && syn >= 1 && fw2 >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s: LISTEN on %s %v, LISTEN->SYN-RECEIVED %v, FIN-WAIT-2->CLOSED %v; want 1, >= 1, >= 1", port, lis, syn, fw2)
		}
		time.Sleep(100 * time.Millisecond)
	}
	hc.CloseIdleConnections()
	pid := cmd.Process.Pid
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("synack exporter after SIGTERM: %v", err)
	}
	if left, _ := filepath.Glob(fmt.Sprintf("%s/instances/synack-%d-*", hosttrace.Root, pid)); len(left) > 0 {
		t.Errorf("tracefs instances left behind: %v", left)
	}
}

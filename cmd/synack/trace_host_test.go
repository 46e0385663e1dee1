//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/synack/synack/admin"
	"github.com/synack/synack/diag/hosttrace"
	"github.com/synack/synack/diag/ladder"
	"github.com/synack/synack/link/tun/nstest"
	"github.com/synack/synack/tcp"
)

// TestTraceHostJSON: `synack trace --host --json port P` while kernel
// sockets in a namespace connect to P and close: the JSON lines carry the
// trace schema's field names and exactly the lifecycle's transitions
// (as diag/hosttrace's TestLifecycle establishes them), filtered by the
// port and the namespace's own addresses.
func TestTraceHostJSON(t *testing.T) {
	ns := nstest.New(t) // skips without root, fails under CI=true
	const srvIP, cliIP = "127.78.0.1", "127.78.0.2"
	l0, err := ns.Listen("tcp4", srvIP+":0")
	if err != nil {
		t.Fatal(err)
	}
	port := l0.Addr().(*net.TCPAddr).Port
	l0.Close()
	f, err := admin.ParseTraceFilter([]string{"host", srvIP + ":" + strconv.Itoa(port)})
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	// 12 records: 2 for the listener, 5 for each end.
	ready := make(chan struct{})
	go func() {
		done <- followHost(ctx, traceOpts{filter: f, json: true, count: 12, ready: ready}, &out, &errOut)
	}()
	select {
	case <-ready: // the tracepoints are attached: the connection below is seen whole
	case err := <-done:
		t.Fatalf("the tracer did not start: %v", err)
	}
	srv := srvIP + ":" + strconv.Itoa(port)
	l, err := ns.Listen("tcp4", srv)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		c, err := l.Accept()
		if err == nil {
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	var c net.Conn
	ns.Do(func() {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(cliIP)}}
		c, err = d.Dial("tcp4", srv)
	})
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("hello"))
	c.Close()
	time.Sleep(200 * time.Millisecond)
	l.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var got []string
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	for sc.Scan() {
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%q: %v", sc.Text(), err)
		}
		if r["kind"] != "state" {
			t.Errorf("unexpected record %s", sc.Text())
			continue
		}
		for _, k := range []string{"time", "sock", "local", "from", "to"} {
			if r[k] == nil {
				t.Errorf("record without %q: %s", k, sc.Text())
			}
		}
		got = append(got, r["from"].(string)+">"+r["to"].(string))
	}
	want := map[string]int{
		"CLOSED>LISTEN": 1, "LISTEN>CLOSED": 1,
		"CLOSED>SYN-SENT": 1, "SYN-SENT>ESTABLISHED": 1, "ESTABLISHED>FIN-WAIT-1": 1, "FIN-WAIT-1>FIN-WAIT-2": 1, "FIN-WAIT-2>CLOSED": 1,
		"LISTEN>SYN-RECEIVED": 1, "SYN-RECEIVED>ESTABLISHED": 1, "ESTABLISHED>CLOSE-WAIT": 1, "CLOSE-WAIT>LAST-ACK": 1, "LAST-ACK>CLOSED": 1,
	}
	count := map[string]int{}
	for _, g := range got {
		count[g]++
	}
	if len(got) != 12 || len(count) != len(want) {
		t.Fatalf("records %q, want each of %v once\n%s", got, want, out.String())
	}
	for k := range want {
		if count[k] != 1 {
			t.Errorf("%s: %d records, want 1\n%s", k, count[k], out.String())
		}
	}
	if errOut.String() != "" {
		t.Errorf("stderr: %s", errOut.String())
	}
}

// TestTraceHostLine: the text form and the filter of kernel events, no
// root needed.
func TestTraceHostLine(t *testing.T) {
	at := time.Date(2026, 12, 3, 16, 0, 0, 123456000, time.Local)
	l, r := netip.MustParseAddrPort("10.0.0.1:80"), netip.MustParseAddrPort("10.0.0.2:5555")
	evs := []hosttrace.Event{
		{Time: at, Kind: hosttrace.KindState, Sock: 0xff01, Local: l, Remote: r, From: tcp.Established, To: tcp.CloseWait, LinuxFrom: 1, LinuxTo: 8},
		{Time: at, Kind: hosttrace.KindSendReset, Local: l, Remote: r, Reason: 1},
		{Time: at, Kind: hosttrace.KindReceiveReset, Sock: 0xff01, Local: l, Remote: r},
		{Time: at, Kind: hosttrace.KindLost, Lost: 7},
	}
	want := []string{
		"16:00:00.123456  10.0.0.1:80 ↔ 10.0.0.2:5555  ESTABLISHED → CLOSE-WAIT",
		"16:00:00.123456  10.0.0.1:80 ↔ 10.0.0.2:5555  RST sent without a socket (reason 1)",
		"16:00:00.123456  10.0.0.1:80 ↔ 10.0.0.2:5555  RST received",
		"16:00:00.123456  (7 events lost here: the reader fell behind)",
	}
	for i := range evs {
		if got := hostLine(&evs[i]); got != want[i] {
			t.Errorf("hostLine = %q, want %q", got, want[i])
		}
	}
	for _, c := range []struct {
		words []string
		match []bool
	}{
		{[]string{"80"}, []bool{true, true, true, true}},
		{[]string{"port", "81"}, []bool{false, false, false, true}},
		{[]string{"close-wait"}, []bool{true, false, false, true}},
		{[]string{"10.0.0.2"}, []bool{true, true, true, true}},
	} {
		f, err := admin.ParseTraceFilter(c.words)
		if err != nil {
			t.Fatal(err)
		}
		for i := range evs {
			if got := hostMatch(&f, &evs[i]); got != c.match[i] {
				t.Errorf("filter %q on %q: %v, want %v", c.words, want[i], got, c.match[i])
			}
		}
	}
	// The ladder: a listener and a connection's transitions, numbered.
	var b strings.Builder
	ll := ladder.NewLive(&b)
	ids := &connIDs{ids: map[uint64]uint64{}}
	lis := netip.MustParseAddrPort("10.0.0.1:80")
	for _, e := range []hosttrace.Event{
		{Time: at, Kind: hosttrace.KindState, Sock: 1, Local: lis, Remote: netip.MustParseAddrPort("0.0.0.0:0"), From: tcp.Closed, To: tcp.Listen},
		{Time: at, Kind: hosttrace.KindState, Sock: 2, Local: l, Remote: r, From: tcp.Listen, To: tcp.SynReceived},
		{Time: at, Kind: hosttrace.KindState, Sock: 2, Local: l, Remote: r, From: tcp.SynReceived, To: tcp.Established},
		{Time: at, Kind: hosttrace.KindReceiveReset, Sock: 2, Local: l, Remote: r},
		{Time: at, Kind: hosttrace.KindState, Sock: 2, Local: l, Remote: r, From: tcp.Established, To: tcp.Closed},
		{Time: at, Kind: hosttrace.KindState, Sock: 2, Local: l, Remote: r, From: tcp.Listen, To: tcp.SynReceived}, // the address reused
	} {
		hostLadder(ll, ids, &e)
	}
	for _, w := range []string{"#1 10.0.0.1:80 ⇄ *:*", "CLOSED → LISTEN\n", "#2 10.0.0.1:80 ⇄ 10.0.0.2:5555", "RST received",
		"#2     path: LISTEN → SYN-RECEIVED → ESTABLISHED → CLOSED", "#3 10.0.0.1:80 ⇄ 10.0.0.2:5555"} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("ladder without %q:\n%s", w, b.String())
		}
	}
	j := hostJSON(&evs[0])
	if j.Kind != "state" || j.From != "ESTABLISHED" || j.To != "CLOSE-WAIT" || j.Local != "10.0.0.1:80" || j.Remote != "10.0.0.2:5555" || j.Sock != "0xff01" || j.LinuxTo != "CLOSE_WAIT" {
		t.Errorf("hostJSON = %+v", j)
	}
	if j := hostJSON(&evs[2]); j.Kind != "rst_rcv" || j.To != "" || j.LinuxTo != "" {
		t.Errorf("hostJSON of a RST received = %+v, want no state", j)
	}
}

package main

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/synack/synack/admin"
	"github.com/synack/synack/stack"
)

// trace --json writes JSON lines and nothing else, so `| jq` works: no
// header, no closing remark. The lines are admin.TraceRecords, the schema
// of demo --json.
func TestTraceJSONOnlyJSON(t *testing.T) {
	w := newAdmWorld(t, stack.Options{})
	admListen(t, w.b, admWatchAddr, 8080, func(c *stack.TCPConn) {
		io.Copy(io.Discard, c)
		c.Close()
	})
	out := &syncBuffer{}
	f, err := admin.ParseTraceFilter([]string{"port", "8080"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- followTrace(ctx, w.url, traceOpts{filter: f, json: true}, out) }()
	time.Sleep(100 * time.Millisecond) // let the client subscribe
	c := admDial(t, w.a, admWatchAddr, 8080)
	c.Write([]byte("hello"))
	c.Close()
	for !strings.Contains(out.String(), `"to":"CLOSED"`) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	text := out.String()
	if !strings.HasPrefix(text, "{") {
		t.Errorf("output does not start with a JSON line:\n%s", text)
	}
	var kinds []string
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		var rec admin.TraceRecord
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not a trace record: %q: %v", line, err)
		}
		if rec.Kind == stack.TraceState {
			kinds = append(kinds, rec.From.String()+">"+rec.To.String()+":"+rec.Cause.String())
		}
	}
	want := "LISTEN>SYN-RECEIVED:rcv SYN"
	if len(kinds) == 0 || !strings.Contains(strings.Join(kinds, " "), want) {
		t.Errorf("state changes %q, want one %q", kinds, want)
	}
}

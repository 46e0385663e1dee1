package main

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/synack/synack/admin"
	"github.com/synack/synack/stack"
	"github.com/synack/synack/tcp"
	"github.com/synack/synack/wire"
)

// Each scenario is a real exchange; these are the state paths RFC 9293
// prescribes for it.
var wantPaths = map[string][2]string{
	"lifecycle": {
		"CLOSED SYN-SENT ESTABLISHED FIN-WAIT-1 FIN-WAIT-2 TIME-WAIT CLOSED",
		"CLOSED LISTEN SYN-RECEIVED ESTABLISHED CLOSE-WAIT LAST-ACK CLOSED",
	},
	"simultaneous-open": {
		"CLOSED SYN-SENT SYN-RECEIVED ESTABLISHED FIN-WAIT-1 FIN-WAIT-2 TIME-WAIT CLOSED",
		"CLOSED SYN-SENT SYN-RECEIVED ESTABLISHED CLOSE-WAIT LAST-ACK CLOSED",
	},
	"simultaneous-close": {
		"CLOSED SYN-SENT ESTABLISHED FIN-WAIT-1 CLOSING TIME-WAIT CLOSED",
		"CLOSED LISTEN SYN-RECEIVED ESTABLISHED FIN-WAIT-1 CLOSING TIME-WAIT CLOSED",
	},
	"half-close": {
		"CLOSED SYN-SENT ESTABLISHED FIN-WAIT-1 FIN-WAIT-2 TIME-WAIT CLOSED",
		"CLOSED LISTEN SYN-RECEIVED ESTABLISHED CLOSE-WAIT LAST-ACK CLOSED",
	},
	"refused": {"CLOSED SYN-SENT CLOSED", "CLOSED"},
	"lost-ack": {
		"CLOSED SYN-SENT ESTABLISHED FIN-WAIT-1 FIN-WAIT-2 TIME-WAIT CLOSED",
		"CLOSED LISTEN SYN-RECEIVED ESTABLISHED CLOSE-WAIT LAST-ACK CLOSED",
	},
	"abort": {
		"CLOSED SYN-SENT ESTABLISHED CLOSED",
		"CLOSED LISTEN SYN-RECEIVED ESTABLISHED CLOSED",
	},
}

func pathString(p []tcp.State) string {
	s := make([]string, len(p))
	for i, x := range p {
		s[i] = x.String()
	}
	return strings.Join(s, " ")
}

func TestDemoScenarios(t *testing.T) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			want, ok := wantPaths[sc.name]
			if !ok {
				t.Fatalf("no expected path for scenario %s", sc.name)
			}
			var out bytes.Buffer
			v := newView(&out, false)
			if err := playScenario(&sc, v, 1, 0, 10*time.Millisecond); err != nil {
				t.Fatalf("scenario failed: %v\n%s", err, out.String())
			}
			if got := pathString(v.l.Path(v.l.Left())); got != want[0] {
				t.Errorf("client path:\n got %s\nwant %s\n%s", got, want[0], out.String())
			}
			if got := pathString(v.l.Path(v.l.Right())); got != want[1] {
				t.Errorf("server path:\n got %s\nwant %s\n%s", got, want[1], out.String())
			}
		})
	}
}

// The lost-ack scenario must show the loss and the FIN sent again.
func TestDemoLostACKRetransmitsFIN(t *testing.T) {
	var out bytes.Buffer
	v := newView(&out, false)
	sc := scenarios[5]
	if sc.name != "lost-ack" {
		t.Fatalf("scenario order changed: %s", sc.name)
	}
	if err := playScenario(&sc, v, 1, 0, 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	if !strings.Contains(text, "lost on the way") {
		t.Errorf("no lost segment shown:\n%s", text)
	}
	if n := strings.Count(text, "[F.]"); n < 3 {
		t.Errorf("want the server's FIN sent twice (3 FIN lines with the client's), got %d:\n%s", n, text)
	}
}

// With loss, every scenario still ends by the RFC's path: retransmission
// recovers what the link lost.
func TestDemoUnderLoss(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		var out bytes.Buffer
		v := newView(&out, false)
		sc := scenarios[0]
		if err := playScenario(&sc, v, seed, 0.2, 10*time.Millisecond); err != nil {
			t.Fatalf("seed %d: %v\n%s", seed, err, out.String())
		}
		// When the ACK of the client's FIN is lost, the server's FIN
		// carries it: FIN-WAIT-1 goes straight to TIME-WAIT (Figure 5).
		got := pathString(v.l.Path(v.l.Left()))
		direct := "CLOSED SYN-SENT ESTABLISHED FIN-WAIT-1 TIME-WAIT CLOSED"
		if want := wantPaths["lifecycle"][0]; got != want && got != direct {
			t.Errorf("seed %d client path %s, want %s or %s", seed, got, want, direct)
		}
		if got, want := pathString(v.l.Path(v.l.Right())), wantPaths["lifecycle"][1]; got != want {
			t.Errorf("seed %d server path %s, want %s", seed, got, want)
		}
	}
}

// demo --json prints one JSON object a line: the stacks' events in the
// schema of /api/trace and `synack trace --json` (admin.TraceRecord), and
// the demo's narration.
func TestDemoJSON(t *testing.T) {
	var out bytes.Buffer
	v := newView(&out, true)
	sc := scenarios[0]
	if err := playScenario(&sc, v, 1, 0, 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out.Bytes(), []byte("invalid")) {
		t.Errorf("an address printed as invalid:\n%s", out.String())
	}
	states, apps := 0, 0
	var listener *admin.TraceRecord
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not JSON: %q: %v", line, err)
		}
		switch m["kind"] {
		case "app":
			var n narration
			if err := json.Unmarshal([]byte(line), &n); err != nil || n.Time.IsZero() || n.Side == "" || n.Text == "" {
				t.Errorf("narration %q: %+v, %v", line, n, err)
			}
			apps++
			continue
		case "state", "snd", "rcv":
		default:
			t.Errorf("unexpected kind in %q", line)
			continue
		}
		// The trace's schema: it reads as a record and writes back the
		// same bytes.
		var rec admin.TraceRecord
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("not a trace record: %q: %v", line, err)
		}
		if back, err := json.Marshal(rec); err != nil || string(back) != line {
			t.Errorf("record %q written back as %s (%v)", line, back, err)
		}
		if rec.Time.Before(demoStart) || rec.ID == 0 && rec.Kind != stack.TraceReceived && rec.Kind != stack.TraceSent {
			t.Errorf("record without time or connection: %q", line)
		}
		if rec.Kind == stack.TraceState {
			states++
			if rec.Cause == tcp.NoCause {
				t.Errorf("state change without a cause: %q", line)
			}
			if rec.To == tcp.Listen && listener == nil {
				listener = &rec
			}
		}
	}
	// 6 client transitions, 5 for the server's child (its copy of the
	// listener's LISTEN is left out, as /api/events does), and the
	// listener opening and closing.
	if states != 13 || apps == 0 {
		t.Errorf("%d state events (want 13), %d narration lines", states, apps)
	}
	// A listener has a local address and no remote one.
	if listener == nil {
		t.Fatalf("no listener in:\n%s", out.String())
	}
	if listener.Tuple.Local != netip.AddrPortFrom(serverAddr, 80) || listener.Tuple.Remote.IsValid() || listener.Cause != tcp.UserListen {
		t.Errorf("listener record %+v", listener)
	}
}

// A lost segment is a record of kind "lost" with the segment, sender first.
func TestDemoJSONLost(t *testing.T) {
	var out bytes.Buffer
	v := newView(&out, true)
	sc := scenarios[5]
	if sc.name != "lost-ack" {
		t.Fatalf("scenario order changed: %s", sc.name)
	}
	if err := playScenario(&sc, v, 1, 0, 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	lost := 0
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if !strings.Contains(line, `"kind":"lost"`) {
			continue
		}
		var rec admin.TraceRecord
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if rec.Kind != admin.TraceLost || !rec.HasSegment || rec.Segment.Flags != wire.ACK || rec.Tuple.Local.Addr() != clientAddr {
			t.Errorf("lost record %q read as %+v", line, rec)
		}
		lost++
	}
	if lost != 1 {
		t.Errorf("%d lost records, want 1:\n%s", lost, out.String())
	}
}

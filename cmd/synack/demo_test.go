package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/synack/synack/tcp"
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
			l := newLadder(&out, demoStart, clientAddr, serverAddr)
			if err := playScenario(&sc, l, 1, 0, 10*time.Millisecond); err != nil {
				t.Fatalf("scenario failed: %v\n%s", err, out.String())
			}
			if got := pathString(l.left.path); got != want[0] {
				t.Errorf("client path:\n got %s\nwant %s\n%s", got, want[0], out.String())
			}
			if got := pathString(l.right.path); got != want[1] {
				t.Errorf("server path:\n got %s\nwant %s\n%s", got, want[1], out.String())
			}
		})
	}
}

// The lost-ack scenario must show the loss and the FIN sent again.
func TestDemoLostACKRetransmitsFIN(t *testing.T) {
	var out bytes.Buffer
	l := newLadder(&out, demoStart, clientAddr, serverAddr)
	sc := scenarios[5]
	if sc.name != "lost-ack" {
		t.Fatalf("scenario order changed: %s", sc.name)
	}
	if err := playScenario(&sc, l, 1, 0, 10*time.Millisecond); err != nil {
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
		l := newLadder(&out, demoStart, clientAddr, serverAddr)
		sc := scenarios[0]
		if err := playScenario(&sc, l, seed, 0.2, 10*time.Millisecond); err != nil {
			t.Fatalf("seed %d: %v\n%s", seed, err, out.String())
		}
		// When the ACK of the client's FIN is lost, the server's FIN
		// carries it: FIN-WAIT-1 goes straight to TIME-WAIT (Figure 5).
		got := pathString(l.left.path)
		direct := "CLOSED SYN-SENT ESTABLISHED FIN-WAIT-1 TIME-WAIT CLOSED"
		if want := wantPaths["lifecycle"][0]; got != want && got != direct {
			t.Errorf("seed %d client path %s, want %s or %s", seed, got, want, direct)
		}
		if got, want := pathString(l.right.path), wantPaths["lifecycle"][1]; got != want {
			t.Errorf("seed %d server path %s, want %s", seed, got, want)
		}
	}
}

func TestDemoJSON(t *testing.T) {
	var out bytes.Buffer
	l := newLadder(&out, demoStart, clientAddr, serverAddr)
	l.json = json.NewEncoder(&out)
	sc := scenarios[0]
	if err := playScenario(&sc, l, 1, 0, 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	states := 0
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not JSON: %q: %v", line, err)
		}
		if m["kind"] == "state" {
			states++
		}
	}
	// 6 client transitions, 6 for the server's child, and the listener opening and closing.
	if states < 12 {
		t.Errorf("only %d state events", states)
	}
}

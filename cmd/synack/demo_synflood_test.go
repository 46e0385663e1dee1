package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func init() {
	// The client connects through the flood with a SYN cookie: the server's
	// connection begins at the ACK, and reports the passive open then.
	wantPaths["syn-flood"] = [2]string{
		"CLOSED SYN-SENT ESTABLISHED FIN-WAIT-1 FIN-WAIT-2 TIME-WAIT CLOSED",
		"CLOSED LISTEN SYN-RECEIVED ESTABLISHED CLOSE-WAIT LAST-ACK CLOSED",
	}
}

// The flood is summed up, not printed SYN by SYN, and the counters show
// the cookies at work.
func TestDemoSynFloodSummary(t *testing.T) {
	var out bytes.Buffer
	v := newView(&out, false)
	var sc *scenario
	for i := range scenarios {
		if scenarios[i].name == "syn-flood" {
			sc = &scenarios[i]
		}
	}
	if sc == nil {
		t.Fatal("no syn-flood scenario")
	}
	if err := playScenario(sc, v, 1, 0, 10*time.Millisecond); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	text := out.String()
	// Narration wraps at the ladder's width: look for the words.
	words := strings.Join(strings.Fields(text), " ")
	for _, want := range []string{
		"attacker: 100 spoofed SYNs", "attacker: 300 spoofed SYNs",
		"SYN queue full (64 of 64 half-open)",
		"rcv ACK with valid SYN cookie",
		"peak 64 of 64",
		"SyncookiesSent 237 SyncookiesRecv 1 SyncookiesFailed 0",
	} {
		if !strings.Contains(words, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	if n := strings.Count(text, "\n"); n > 60 {
		t.Errorf("%d lines: the flood is printed, not summed up:\n%s", n, text)
	}
	if strings.Contains(text, "198.19.") && strings.Count(text, "198.19.") > 3 {
		t.Errorf("spoofed addresses in the ladder:\n%s", text)
	}
}

package tcp

import (
	"encoding/json"
	"testing"
)

// The words are what `synack demo` and `synack trace` print after a
// transition: they must not drift.
func TestCauseString(t *testing.T) {
	want := map[Cause]string{
		NoCause:            "",
		UserOpen:           "user CONNECT",
		UserListen:         "user LISTEN",
		UserClose:          "user CLOSE",
		UserAbort:          "user ABORT",
		RcvSYN:             "rcv SYN",
		RcvSYNACK:          "rcv SYN,ACK",
		RcvSYNSimultaneous: "rcv SYN (simultaneous open)",
		RcvACKOfSYN:        "rcv ACK of SYN",
		RcvACKOfFIN:        "rcv ACK of FIN",
		RcvFIN:             "rcv FIN",
		RcvRST:             "rcv RST",
		RcvSYNCookie:       "rcv ACK with valid SYN cookie",
		RcvICMPUnreachable: "rcv ICMP unreachable",
		DataAfterClose:     "data after close",
		Timeout2MSL:        "2MSL timeout",
		FinWait2Timeout:    "FIN-WAIT-2 timeout",
		RetransmitTimeout:  "retransmission limit",
		UserTimeout:        "user timeout",
		KeepAliveTimeout:   "keep-alive timeout",
		ReusedByConnect:    "reused by CONNECT",
		OrphanRetries:      "orphan retries",
	}
	if len(want) != int(numCauses) {
		t.Fatalf("the table names %d causes, there are %d", len(want), numCauses)
	}
	for c, w := range want {
		if got := c.String(); got != w {
			t.Errorf("Cause(%d).String() = %q, want %q", c, got, w)
		}
	}
	if got := Cause(200).String(); got != "Cause(200)" {
		t.Errorf("an unknown cause prints %q", got)
	}
}

func TestCauseJSON(t *testing.T) {
	for c := range numCauses {
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("%v: %v", c, err)
		}
		var back Cause
		if err := json.Unmarshal(b, &back); err != nil || back != c {
			t.Errorf("%s read back as %v, %v", b, back, err)
		}
	}
	var c Cause
	if err := json.Unmarshal([]byte(`"rcv SOMETHING"`), &c); err == nil {
		t.Errorf("unknown words read as %v", c)
	}
	if _, err := json.Marshal(Cause(200)); err == nil {
		t.Errorf("an unknown cause was written")
	}
}

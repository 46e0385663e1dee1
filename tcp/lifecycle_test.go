package tcp

import (
	"testing"
)

// Every fixture runs its own path through Figure 5; building each one
// checks the transitions on the way.
func TestFixturePaths(t *testing.T) {
	for name, mk := range map[string]func(*testing.T, ...func(*Config)) *tconn{
		"listen": newListen, "syn-sent": newSynSent, "syn-received": newSynReceived,
		"established": newEstablished, "fin-wait-1": newFinWait1, "fin-wait-2": newFinWait2,
		"close-wait": newCloseWait, "last-ack": newLastAck, "closing": newClosing, "time-wait": newTimeWait,
	} {
		t.Run(name, func(t *testing.T) {
			tc := mk(t)
			tc.wantNothing("nothing else is sent")
			for _, e := range tc.events {
				if !Legal(e.From, e.To) {
					t.Errorf("illegal transition %v -> %v", e.From, e.To)
				}
			}
		})
	}
}

func TestTimeWaitExpires(t *testing.T) {
	tc := newTimeWait(t)
	d := tc.advanceToDeadline()
	if d != 2*DefaultMSL {
		t.Errorf("TIME-WAIT lasted %v, want 2*MSL = %v", d, 2*DefaultMSL)
	}
	tc.wantState("after 2MSL", Closed)
	tc.wantTransition(TimeWait, Closed, Timeout2MSL)
	tc.wantNothing("closing quietly")
}

func TestLastAckToClosed(t *testing.T) {
	tc := newLastAck(t)
	tc.in(seg{flags: A, seq: irs + 2, ack: iss + 2})
	tc.wantState("ACK of our FIN", Closed)
	tc.wantTransition(LastAck, Closed, RcvACKOfFIN)
}

func TestClosingToTimeWait(t *testing.T) {
	tc := newClosing(t)
	tc.in(seg{flags: A, seq: irs + 2, ack: iss + 2})
	tc.wantState("ACK of our FIN", TimeWait)
	tc.wantTransition(Closing, TimeWait, RcvACKOfFIN)
}

func TestFinWait1ToTimeWaitOnFinAck(t *testing.T) {
	tc := newFinWait1(t)
	tc.in(seg{flags: F | A, seq: irs + 1, ack: iss + 2})
	tc.want("ACK of their FIN", seg{flags: A, seq: iss + 2, ack: irs + 2})
	tc.wantState("FIN with the ACK of ours", TimeWait)
	tc.wantTransition(FinWait1, TimeWait, RcvFIN)
}

func TestDataBothWaysAndHalfClose(t *testing.T) {
	tc := newEstablished(t, func(c *Config) { c.Nagle = false })
	n, err := tc.c.Write(tc.now, []byte("hello"))
	if n != 5 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	tc.want("data goes out", seg{flags: A | P, seq: iss + 1, ack: irs + 1, data: []byte("hello")})
	tc.in(seg{flags: A | P, seq: irs + 1, ack: iss + 6, data: []byte("world")})
	tc.wantNothing("ACK is delayed")
	tc.advanceToDeadline()
	tc.want("delayed ACK", seg{flags: A, seq: iss + 6, ack: irs + 6})
	buf := make([]byte, 10)
	n, _ = tc.c.Read(tc.now, buf)
	if string(buf[:n]) != "world" {
		t.Fatalf("Read %q", buf[:n])
	}
	// Peer half-closes; we still send.
	tc.in(seg{flags: F | A, seq: irs + 6, ack: iss + 6})
	tc.want("ACK of FIN", seg{flags: A, seq: iss + 6, ack: irs + 7})
	tc.wantState("half-closed by peer", CloseWait)
	if _, err := tc.c.Write(tc.now, []byte("more")); err != nil {
		t.Fatal(err)
	}
	tc.want("CLOSE-WAIT still sends", seg{flags: A | P, seq: iss + 6, ack: irs + 7, data: []byte("more")})
}

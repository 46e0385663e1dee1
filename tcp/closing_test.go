package tcp

import "testing"

func TestClosingFINRetransmitted(t *testing.T) {
	tc := newClosing(t)
	tc.advanceToDeadline()
	tc.want("our FIN again", seg{flags: F | A, seq: iss + 1, ack: irs + 2})
	tc.in(seg{flags: F | A, seq: irs + 1, ack: iss + 1})
	tc.want("their FIN again: ACK", seg{flags: A, seq: iss + 2, ack: irs + 2})
	tc.wantState("still CLOSING", Closing)
	tc.in(seg{flags: A, seq: irs + 2, ack: iss + 2})
	tc.wantState("rcv ACK of FIN", TimeWait)
}

func TestClosingRST(t *testing.T) {
	tc := newClosing(t)
	tc.in(seg{flags: R, seq: irs + 2})
	tc.wantState("RST in CLOSING", Closed)
}

// Data queued before our FIN still goes out in CLOSING: the ACKs that
// arrive there move SND.UNA and open the window, and output must follow.
// (No MSS option in the fixture's handshake: segments are 536 bytes.)
func TestClosingSendsQueuedData(t *testing.T) {
	tc := newEstablished(t, func(c *Config) { c.Nagle = false })
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1, win: 536})
	tc.wantNothing("a window update needs no answer")
	tc.write(make([]byte, 3*536))
	tc.want("what the window allows", seg{flags: A, seq: iss + 1, ack: irs + 1, len: 536})
	tc.c.Close(tc.now)
	tc.wantNothing("the FIN waits behind the queued data")
	tc.wantState("user CLOSE", FinWait1)
	tc.in(seg{flags: F | A, seq: irs + 1, ack: iss + 1, win: 536})
	tc.want("their FIN is acknowledged", seg{flags: A, seq: iss + 537, ack: irs + 2})
	tc.wantState("FINs crossed", Closing)
	tc.in(seg{flags: A, seq: irs + 2, ack: iss + 537, win: 536})
	tc.want("CLOSING still sends queued data", seg{flags: A, seq: iss + 537, ack: irs + 2, len: 536})
	tc.in(seg{flags: A, seq: irs + 2, ack: iss + 1073, win: 536})
	tc.want("the last data, with our FIN", seg{flags: F | P | A, seq: iss + 1073, ack: irs + 2, len: 536})
	tc.in(seg{flags: A, seq: irs + 2, ack: iss + 1610})
	tc.wantState("ACK of our FIN", TimeWait)
}

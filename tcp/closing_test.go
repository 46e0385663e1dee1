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

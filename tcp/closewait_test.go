package tcp

import "testing"

// CLOSE-WAIT and LAST-ACK.

func TestCloseWaitStillSends(t *testing.T) {
	tc := newCloseWait(t, withNoDelay)
	tc.write([]byte("reply"))
	tc.want("half-close: CLOSE-WAIT sends", seg{flags: A | P, seq: iss + 1, ack: irs + 2, data: []byte("reply")})
	tc.in(seg{flags: A, seq: irs + 2, ack: iss + 6})
	tc.c.Close(tc.now)
	tc.want("FIN after the data", seg{flags: F | A, seq: iss + 6, ack: irs + 2})
	tc.wantState("user CLOSE", LastAck)
	tc.wantTransition(CloseWait, LastAck, UserClose)
	tc.in(seg{flags: A, seq: irs + 2, ack: iss + 7})
	tc.wantState("ACK of FIN", Closed)
	tc.wantTransition(LastAck, Closed, RcvACKOfFIN)
	if tc.c.Err() != nil {
		t.Fatalf("graceful close: Err() = %v", tc.c.Err())
	}
}

func TestCloseWaitDataIgnored(t *testing.T) {
	tc := newCloseWait(t)
	tc.in(seg{flags: A, seq: irs + 2, ack: iss + 1, data: []byte("late")})
	tc.wantRead("text after the FIN is ignored", nil)
}

func TestCloseWaitRetransmittedFIN(t *testing.T) {
	tc := newCloseWait(t)
	tc.in(seg{flags: F | A, seq: irs + 1, ack: iss + 1})
	tc.want("a retransmitted FIN is re-ACKed", seg{flags: A, seq: iss + 1, ack: irs + 2})
	tc.wantState("unchanged", CloseWait)
}

func TestCloseWaitRST(t *testing.T) {
	tc := newCloseWait(t)
	tc.in(seg{flags: R, seq: irs + 2})
	tc.wantState("RST", Closed)
	tc.wantErr("reset", ErrReset)
}

func TestLastAckFINRetransmitted(t *testing.T) {
	tc := newLastAck(t)
	tc.advanceToDeadline()
	tc.want("FIN again after the RTO", seg{flags: F | A, seq: iss + 1, ack: irs + 2})
	tc.in(seg{flags: A, seq: irs + 2, ack: iss + 2})
	tc.wantState("ACK of FIN", Closed)
	tc.wantNoDeadline("nothing left")
}

func TestLastAckRST(t *testing.T) {
	tc := newLastAck(t)
	tc.in(seg{flags: R, seq: irs + 2})
	tc.wantState("RST in LAST-ACK", Closed)
}

func TestLastAckAbortSendsNothing(t *testing.T) {
	tc := newLastAck(t)
	tc.c.Abort(tc.now)
	tc.wantNothing("ABORT in LAST-ACK: just delete the TCB (3.10.5)")
	tc.wantState("closed", Closed)
}

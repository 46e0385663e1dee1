package tcp

import (
	"testing"
	"time"
)

// RFC 9293 section 3.10.7.4 for SYN-RECEIVED.

func TestSynReceivedACKOfSYN(t *testing.T) {
	tc := newSynReceived(t)
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1})
	tc.wantNothing("the ACK of our SYN needs no answer")
	tc.wantState("rcv ACK of SYN", Established)
	tc.wantTransition(SynReceived, Established, RcvACKOfSYN)
	tc.wantNoDeadline("SYN,ACK acknowledged: no timer")
}

func TestSynReceivedBadACKGetsRST(t *testing.T) {
	for _, ack := range []uint32{uint32(iss), uint32(iss) + 2, uint32(iss) + 1000} {
		tc := newSynReceived(t)
		tc.in(seg{flags: A, seq: irs + 1, ack: seqv(ack)})
		tc.want("not an ACK of our SYN: <SEQ=SEG.ACK><CTL=RST>", seg{flags: R, seq: seqv(ack)})
		tc.wantState("the segment is dropped", SynReceived)
	}
}

func TestSynReceivedRSTReturnsToListen(t *testing.T) {
	tc := newSynReceived(t)
	tc.in(seg{flags: R, seq: irs + 1})
	tc.wantNothing("RST is not answered")
	tc.wantState("passive OPEN goes back to LISTEN", Listen)
	tc.wantTransition(SynReceived, Listen, RcvRST)
	if tc.c.Err() != nil {
		t.Fatalf("Err() = %v after a passive RST, want nil", tc.c.Err())
	}
}

func TestSynReceivedRSTOutOfWindowDropped(t *testing.T) {
	tc := newSynReceived(t)
	tc.in(seg{flags: R, seq: irs + 100000})
	tc.wantNothing("RST outside the window is dropped silently")
	tc.wantState("unchanged", SynReceived)
	tc.in(seg{flags: R, seq: irs + 10})
	tc.want("RST in the window but not at RCV.NXT: challenge ACK (RFC 5961 3.2)", seg{flags: A, seq: iss + 1, ack: irs + 1})
	tc.wantState("unchanged", SynReceived)
}

func TestSynReceivedRetransmittedSYN(t *testing.T) {
	tc := newSynReceived(t)
	tc.in(seg{flags: S, seq: irs})
	tc.want("our SYN,ACK was lost: send it again", seg{flags: S | A, seq: iss, ack: irs + 1})
	tc.wantState("unchanged", SynReceived)
}

func TestSynReceivedNewSYNReturnsToListen(t *testing.T) {
	tc := newSynReceived(t)
	tc.in(seg{flags: S, seq: irs + 5})
	tc.wantState("fourth: a SYN in the window returns a passive open to LISTEN", Listen)
}

func TestSynReceivedACKWithDataAndFIN(t *testing.T) {
	tc := newSynReceived(t)
	tc.in(seg{flags: A | F, seq: irs + 1, ack: iss + 1, data: []byte("abc")})
	tc.want("data and FIN acknowledged at once", seg{flags: A, seq: iss + 1, ack: irs + 5})
	tc.wantState("ESTABLISHED then CLOSE-WAIT in one segment", CloseWait)
	tc.wantRead("the data", []byte("abc"))
	if _, err := tc.c.Read(tc.now, make([]byte, 1)); err.Error() != "EOF" {
		t.Fatalf("Read after FIN: %v, want EOF", err)
	}
}

func TestSynReceivedClose(t *testing.T) {
	tc := newSynReceived(t)
	tc.c.Close(tc.now)
	tc.wantState("CLOSE in SYN-RECEIVED", FinWait1)
	tc.wantNothing("the FIN waits until our SYN is acknowledged")
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1})
	tc.want("then the FIN goes", seg{flags: F | A, seq: iss + 1, ack: irs + 1})
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 2})
	tc.wantState("FIN acknowledged", FinWait2)
}

func TestSynReceivedAbortSendsRST(t *testing.T) {
	tc := newSynReceived(t)
	tc.c.Abort(tc.now)
	tc.want("ABORT in SYN-RECEIVED: <SEQ=SND.NXT><CTL=RST>", seg{flags: R, seq: iss + 1})
	tc.wantState("aborted", Closed)
}

func TestSynAckRetriesPassive(t *testing.T) {
	tc := newSynReceived(t, func(c *Config) { c.SynAckRetries = 2 })
	for i, d := range []time.Duration{time.Second, 2 * time.Second} {
		if got := tc.advanceToDeadline(); got != d {
			t.Fatalf("retry %d after %v, want %v", i+1, got, d)
		}
		tc.want("SYN,ACK retransmitted", seg{flags: S | A, seq: iss, ack: irs + 1})
	}
	tc.advanceToDeadline()
	tc.want("give-up tells the peer", seg{flags: R, seq: iss + 1})
	tc.wantState("passive open goes back to LISTEN", Listen)
	tc.wantTransition(SynReceived, Listen, RetransmitTimeout)
}

func TestSynAckRetriesActive(t *testing.T) {
	tc := newSynSent(t, func(c *Config) { c.SynAckRetries = 1 })
	tc.in(seg{flags: S, seq: irs})
	tc.want("simultaneous open", seg{flags: S | A, seq: iss, ack: irs + 1})
	tc.advanceToDeadline()
	tc.want("SYN,ACK retransmitted", seg{flags: S | A, seq: iss, ack: irs + 1})
	tc.advanceToDeadline()
	tc.want("give-up", seg{flags: R, seq: iss + 1})
	tc.wantState("an active open dies", Closed)
	tc.wantErr("timed out", ErrTimedOut)
}

func TestRTOAfterSYNTimeoutIsThreeSeconds(t *testing.T) {
	// RFC 6298 5.7: the SYN timed out with an RTO under 3 s, so the RTO
	// is 3 s when data transmission begins.
	tc := newSynSent(t)
	tc.advanceToDeadline()
	tc.want("SYN again", seg{flags: S, seq: iss})
	tc.in(seg{flags: S | A, seq: irs, ack: iss + 1})
	tc.want("ACK", seg{flags: A, seq: iss + 1, ack: irs + 1})
	if rto := tc.c.Info().RTO; rto != 3*time.Second {
		t.Fatalf("RTO after a SYN timeout = %v, want 3s", rto)
	}
}

package tcp

import (
	"testing"
	"time"
)

// RFC 9293 section 3.10.7.3: SEGMENT ARRIVES in SYN-SENT.

func TestSynSentSYNACK(t *testing.T) {
	tc := newSynSent(t)
	tc.in(seg{flags: S | A, seq: irs, ack: iss + 1})
	tc.want("our SYN acknowledged: ACK theirs", seg{flags: A, seq: iss + 1, ack: irs + 1})
	tc.wantState("rcv SYN,ACK", Established)
	tc.wantTransition(SynSent, Established, RcvSYNACK)
	tc.wantNoDeadline("nothing outstanding, no timer")
}

func TestSynSentBadACK(t *testing.T) {
	for _, ack := range []uint32{uint32(iss), uint32(iss) - 1, uint32(iss) + 2, uint32(iss) + 1<<30} {
		tc := newSynSent(t)
		tc.in(seg{flags: S | A, seq: irs, ack: seqv(ack)})
		tc.want("SEG.ACK =< ISS or > SND.NXT: <SEQ=SEG.ACK><CTL=RST>", seg{flags: R, seq: seqv(ack)})
		tc.wantState("the bad segment is dropped", SynSent)

		tc.in(seg{flags: R | A, seq: irs, ack: seqv(ack)})
		tc.wantNothing("an RST with a bad ACK is dropped, never answered")
		tc.wantState("still SYN-SENT", SynSent)
	}
}

func TestSynSentRSTRefused(t *testing.T) {
	tc := newSynSent(t)
	tc.in(seg{flags: R | A, seq: 0, ack: iss + 1})
	tc.wantNothing("an RST is never answered")
	tc.wantState("RST with acceptable ACK: connection refused", Closed)
	tc.wantTransition(SynSent, Closed, RcvRST)
	tc.wantErr("refused", ErrRefused)
	if _, err := tc.c.Write(tc.now, []byte("x")); err != ErrRefused {
		t.Fatalf("Write after refusal: %v, want ECONNREFUSED", err)
	}
	if _, err := tc.c.Read(tc.now, make([]byte, 1)); err != ErrRefused {
		t.Fatalf("Read after refusal: %v, want ECONNREFUSED", err)
	}
}

func TestSynSentRSTWithoutACKIgnored(t *testing.T) {
	tc := newSynSent(t)
	tc.in(seg{flags: R, seq: irs})
	tc.wantNothing("RST without ACK is dropped in SYN-SENT")
	tc.wantState("still SYN-SENT", SynSent)
}

func TestSynSentOtherSegmentsDropped(t *testing.T) {
	tc := newSynSent(t)
	tc.in(seg{flags: A, seq: irs, ack: iss + 1})
	tc.wantNothing("fifth: neither SYN nor RST is dropped")
	tc.in(seg{flags: F, seq: irs})
	tc.wantNothing("a FIN alone is dropped")
	tc.wantState("still SYN-SENT", SynSent)
}

func TestSimultaneousOpen(t *testing.T) {
	// RFC 9293 Figure 8.
	tc := newSynSent(t)
	tc.in(seg{flags: S, seq: irs})
	tc.want("our SYN crossed theirs: SYN,ACK", seg{flags: S | A, seq: iss, ack: irs + 1})
	tc.wantState("simultaneous open", SynReceived)
	tc.wantTransition(SynSent, SynReceived, NoCause)
	tc.in(seg{flags: S | A, seq: irs, ack: iss + 1})
	tc.wantNothing("their SYN,ACK repeats the SYN already taken and acknowledges ours: nothing new to ACK")
	tc.wantState("handshake complete", Established)
	tc.wantTransition(SynReceived, Established, RcvACKOfSYN)
}

// RFC 9293 3.10.7.3, fourth: a SYN in SYN-SENT that brings text or a FIN
// has them "queue[d] for processing after the ESTABLISHED state has been
// reached".
func TestSimultaneousOpenSYNTextQueued(t *testing.T) {
	tc := newSynSent(t)
	tc.in(seg{flags: S, seq: irs, data: []byte("abc")})
	tc.want("SYN,ACK acknowledges only the SYN: the text is queued, not yet processed", seg{flags: S | A, seq: iss, ack: irs + 1})
	tc.wantState("simultaneous open", SynReceived)
	tc.wantRead("nothing is readable before ESTABLISHED", nil)
	tc.in(seg{flags: A, seq: irs + 4, ack: iss + 1})
	tc.wantState("ACK of our SYN", Established)
	tc.wantRead("the queued text is delivered once ESTABLISHED", []byte("abc"))
	tc.c.Close(tc.now)
	tc.want("the text is acknowledged (here with our FIN)", seg{flags: F | A, seq: iss + 1, ack: irs + 4})
}

func TestSimultaneousOpenSYNFINQueued(t *testing.T) {
	tc := newSynSent(t)
	tc.in(seg{flags: S | F, seq: irs, data: []byte("abc")})
	tc.want("SYN,ACK acknowledges only the SYN", seg{flags: S | A, seq: iss, ack: irs + 1})
	tc.wantState("the FIN waits for ESTABLISHED", SynReceived)
	tc.in(seg{flags: A, seq: irs + 4, ack: iss + 1})
	tc.want("text and FIN processed after ESTABLISHED: the FIN is acknowledged at once", seg{flags: A, seq: iss + 1, ack: irs + 5})
	tc.wantState("the queued FIN was processed", CloseWait)
	tc.wantRead("the queued text", []byte("abc"))

	// Without text: the FIN alone is queued, and a retransmission of it
	// is processed only once.
	tc = newSynSent(t)
	tc.in(seg{flags: S | F, seq: irs})
	tc.want("SYN,ACK acknowledges only the SYN", seg{flags: S | A, seq: iss, ack: irs + 1})
	tc.in(seg{flags: F | A, seq: irs + 1, ack: iss + 1})
	tc.want("one FIN, acknowledged once", seg{flags: A, seq: iss + 1, ack: irs + 2})
	tc.wantState("FIN processed", CloseWait)
	tc.wantNothing("nothing else")
}

func TestSimultaneousOpenSYNTextBounded(t *testing.T) {
	tc := newSynSent(t, func(c *Config) { c.ReceiveBufferSize = 4 })
	tc.in(seg{flags: S, seq: irs, data: []byte("abcdefgh")})
	tc.want("SYN,ACK", seg{flags: S | A, seq: iss, ack: irs + 1})
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1})
	tc.wantRead("only what fits the window we offered is kept", []byte("abcd"))
}

func TestSimultaneousOpenRSTRefused(t *testing.T) {
	tc := newSynSent(t)
	tc.in(seg{flags: S, seq: irs})
	tc.want("SYN,ACK", seg{flags: S | A, seq: iss, ack: irs + 1})
	tc.in(seg{flags: R, seq: irs + 1})
	tc.wantState("an active open refused from SYN-RECEIVED", Closed)
	tc.wantErr("refused", ErrRefused)
}

func TestSynSentDataQueuedUntilEstablished(t *testing.T) {
	tc := newSynSent(t, withNoDelay)
	tc.write([]byte("early"))
	tc.wantNothing("data waits for the handshake")
	tc.in(seg{flags: S | A, seq: irs, ack: iss + 1})
	tc.want("queued data leaves with the ACK of the SYN,ACK", seg{flags: A | P, seq: iss + 1, ack: irs + 1, data: []byte("early")})
}

func TestSynSentSYNACKWithData(t *testing.T) {
	tc := newSynSent(t)
	tc.in(seg{flags: S | A | F, seq: irs, ack: iss + 1, data: []byte("hi")})
	tc.want("data and FIN on the SYN,ACK are taken and acknowledged", seg{flags: A, seq: iss + 1, ack: irs + 4})
	tc.wantState("FIN on the SYN,ACK", CloseWait)
	tc.wantRead("data of the SYN,ACK", []byte("hi"))
}

func TestSynSentCloseDeletes(t *testing.T) {
	tc := newSynSent(t)
	tc.c.Close(tc.now)
	tc.wantState("CLOSE in SYN-SENT deletes the TCB", Closed)
	tc.wantNothing("nothing is sent")
	tc.wantNoDeadline("no timers")
}

func TestSynSentRetries(t *testing.T) {
	tc := newSynSent(t, func(c *Config) { c.SynRetries = 3 })
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}
	for i, d := range want {
		if got := tc.advanceToDeadline(); got != d {
			t.Fatalf("retry %d after %v, want %v (RFC 6298 5.5 doubling)", i+1, got, d)
		}
		tc.want("SYN retransmitted", seg{flags: S, seq: iss})
	}
	if got := tc.advanceToDeadline(); got != 8*time.Second {
		t.Fatalf("give-up after %v, want 8s", got)
	}
	tc.wantNothing("no RST for a connection that never synchronized")
	tc.wantState("SynRetries exhausted", Closed)
	tc.wantTransition(SynSent, Closed, RetransmitTimeout)
	tc.wantErr("timed out", ErrTimedOut)
}

func TestSynSentICMPHardError(t *testing.T) {
	tc := newSynSent(t)
	tc.c.HandleUnreachable(tc.now, ErrRefused, true)
	tc.wantState("a hard ICMP error aborts an opening connection", Closed)
	tc.wantErr("the error given", ErrRefused)
}

func TestConnectTwice(t *testing.T) {
	tc := newSynSent(t)
	if err := tc.c.Connect(tc.now); err != ErrAlreadyOpen {
		t.Fatalf("second Connect: %v, want EISCONN", err)
	}
}

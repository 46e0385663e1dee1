package tcp

import (
	"testing"
	"time"

	"github.com/synack/synack/wire"
)

// RFC 9293 section 3.10.7.2: SEGMENT ARRIVES in LISTEN.

func TestListenIgnoresRST(t *testing.T) {
	for _, f := range []wire.TCPFlags{R, R | A} {
		tc := newListen(t)
		tc.in(seg{flags: f, seq: irs, ack: 77})
		tc.wantNothing("an incoming RST is ignored in LISTEN")
		tc.wantState("still listening", Listen)
	}
}

func TestListenACKGetsRST(t *testing.T) {
	tc := newListen(t)
	tc.in(seg{flags: A, seq: irs, ack: 4242})
	tc.want("any acknowledgment is bad in LISTEN: <SEQ=SEG.ACK><CTL=RST>", seg{flags: R, seq: 4242})
	tc.wantState("still listening", Listen)

	tc.in(seg{flags: S | A, seq: irs, ack: 99})
	tc.want("a SYN,ACK is an ACK too", seg{flags: R, seq: 99})
	tc.wantState("still listening", Listen)
}

func TestListenDropsOtherText(t *testing.T) {
	tc := newListen(t)
	tc.in(seg{flags: P, seq: irs, data: []byte("x")})
	tc.in(seg{flags: F, seq: irs})
	tc.wantNothing("fourth: other text or control is dropped")
	tc.wantState("still listening", Listen)
}

func TestListenSYN(t *testing.T) {
	tc := newListen(t)
	tc.in(seg{flags: S, seq: irs})
	tc.want("SYN is answered <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>", seg{flags: S | A, seq: iss, ack: irs + 1, win: 16384})
	tc.wantState("rcv SYN", SynReceived)
	tc.wantTransition(Listen, SynReceived, RcvSYN)
	if i := tc.c.Info(); i.IRS != irs || i.ISS != iss || i.RcvNxt != irs+1 || i.SndNxt != iss+1 {
		t.Fatalf("after SYN: IRS %d ISS %d RCV.NXT %d SND.NXT %d", i.IRS, i.ISS, i.RcvNxt, i.SndNxt)
	}
}

func TestListenSYNWithDataNotAcked(t *testing.T) {
	tc := newListen(t)
	tc.in(seg{flags: S, seq: irs, data: []byte("early")})
	tc.want("data on a SYN is not acknowledged: the peer sends it again", seg{flags: S | A, seq: iss, ack: irs + 1})
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1, data: []byte("early")})
	tc.wantState("ACK of SYN", Established)
	tc.wantRead("the data sent again arrives", []byte("early"))
}

func TestListenCloseAndAbort(t *testing.T) {
	tc := newListen(t)
	if err := tc.c.Close(tc.now); err != nil {
		t.Fatal(err)
	}
	tc.wantState("CLOSE in LISTEN deletes the TCB", Closed)
	tc.wantTransition(Listen, Closed, UserClose)
	tc.wantNothing("nothing to tell anyone")

	tc = newListen(t)
	tc.c.Release(tc.now, false)
	tc.wantState("closing a listening socket", Closed)

	tc = newListen(t)
	if _, err := tc.c.Write(tc.now, []byte("x")); err != ErrNotConnected {
		t.Fatalf("Write in LISTEN: %v, want ENOTCONN", err)
	}
}

func TestListenAgainAfterFailedHandshake(t *testing.T) {
	// A half-open child that went back to LISTEN carries nothing of the
	// attempt into the next one (RFC 9293 3.10.7.4: "return this
	// connection to the LISTEN state").
	tc := newSynReceived(t)
	tc.advanceToDeadline()
	tc.want("SYN,ACK retransmitted", seg{flags: S | A, seq: iss, ack: irs + 1})
	tc.advanceToDeadline()
	tc.want("SYN,ACK retransmitted again", seg{flags: S | A, seq: iss, ack: irs + 1})
	tc.in(seg{flags: R, seq: irs + 1})
	tc.wantState("RST returns a passive open to LISTEN", Listen)
	tc.wantNoDeadline("no timer survives the return to LISTEN")
	tc.wantNothing("RST is not answered")

	tc.now = tc.now.Add(time.Minute)
	tc.in(seg{flags: S, seq: irs + 100})
	tc.want("a new SYN is answered", seg{flags: S | A, seq: iss, ack: irs + 101})
	tc.wantDeadlineIn("the SYN,ACK timer starts from the initial RTO, not a backed-off one", time.Second)
}

package tcp

import (
	"testing"
	"time"
)

// FIN-WAIT-1 and FIN-WAIT-2 (RFC 9293 3.10.7.4, Figure 5).

func TestFinWait1ToFinWait2(t *testing.T) {
	tc := newFinWait1(t)
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 2})
	tc.wantState("our FIN acknowledged", FinWait2)
	tc.wantTransition(FinWait1, FinWait2, RcvACKOfFIN)
	tc.wantNoDeadline("no timer in FIN-WAIT-2 while the owner may still read")
}

func TestFinWait1ACKOfDataOnly(t *testing.T) {
	tc := newEstablished(t, withNoDelay)
	tc.write([]byte("abc"))
	tc.want("data", seg{flags: A | P, seq: iss + 1, ack: irs + 1, len: 3})
	tc.c.Close(tc.now)
	tc.want("FIN after the data", seg{flags: F | A, seq: iss + 4, ack: irs + 1})
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 4})
	tc.wantState("the data is acknowledged, not the FIN", FinWait1)
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 5})
	tc.wantState("now the FIN", FinWait2)
}

func TestFinWait1FINRetransmitted(t *testing.T) {
	tc := newFinWait1(t)
	tc.advanceToDeadline()
	tc.want("FIN retransmitted after the RTO", seg{flags: F | A, seq: iss + 1, ack: irs + 1})
}

func TestFinWait1SimultaneousClose(t *testing.T) {
	tc := newFinWait1(t)
	tc.in(seg{flags: F | A, seq: irs + 1, ack: iss + 1})
	tc.want("their FIN acknowledged", seg{flags: A, seq: iss + 2, ack: irs + 2})
	tc.wantState("FINs crossed", Closing)
	tc.wantTransition(FinWait1, Closing, RcvFIN)
	tc.in(seg{flags: A, seq: irs + 2, ack: iss + 2})
	tc.wantState("ACK of our FIN", TimeWait)
	tc.wantTransition(Closing, TimeWait, RcvACKOfFIN)
	tc.wantCauses("the whole path",
		"CLOSED>SYN-SENT:user CONNECT", "SYN-SENT>ESTABLISHED:rcv SYN,ACK",
		"ESTABLISHED>FIN-WAIT-1:user CLOSE", "FIN-WAIT-1>CLOSING:rcv FIN",
		"CLOSING>TIME-WAIT:rcv ACK of FIN")
}

func TestFinWait1FINWithDataAndACK(t *testing.T) {
	tc := newFinWait1(t)
	tc.in(seg{flags: F | A, seq: irs + 1, ack: iss + 2, data: []byte("tail")})
	tc.want("data and FIN acknowledged", seg{flags: A, seq: iss + 2, ack: irs + 6})
	tc.wantState("FIN with the ACK of ours", TimeWait)
	tc.wantTransition(FinWait1, TimeWait, RcvFIN)
	tc.wantRead("the data before the FIN", []byte("tail"))
}

func TestFinWait1FINTrimmedByWindowStillTakesACK(t *testing.T) {
	tc := newEstablishedMSS(t, 1000, func(c *Config) { c.ReceiveBufferSize = 1000 })
	tc.c.Close(tc.now)
	tc.want("FIN", seg{flags: F | A, seq: iss + 1, ack: irs + 1})
	// 1200 bytes and a FIN into a 1000-byte window: the tail and the FIN
	// are cut off, but the ACK of our FIN is still good.
	tc.in(seg{flags: F | A, seq: irs + 1, ack: iss + 2, data: payload(1200, 0)})
	tc.want("ACK of what fitted", seg{flags: A, seq: iss + 2, ack: irs + 1001})
	tc.wantState("our FIN acknowledged, theirs not taken", FinWait2)
}

func TestFinWait2StillReceives(t *testing.T) {
	tc := newFinWait2(t)
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 2, data: []byte("half")})
	tc.advance(time.Second)
	tc.want("delayed ACK of data in FIN-WAIT-2", seg{flags: A, seq: iss + 2, ack: irs + 5})
	tc.wantRead("half-close: the other direction still delivers", []byte("half"))
	tc.in(seg{flags: F | A, seq: irs + 5, ack: iss + 2})
	tc.want("ACK of FIN", seg{flags: A, seq: iss + 2, ack: irs + 6})
	tc.wantState("rcv FIN", TimeWait)
	tc.wantTransition(FinWait2, TimeWait, RcvFIN)
}

func TestFinWait2TimeoutAfterRelease(t *testing.T) {
	tc := newFinWait2(t, func(c *Config) { c.FinWait2Timeout = 10 * time.Second })
	tc.c.Release(tc.now, false)
	tc.wantDeadlineIn("FIN-WAIT-2 timeout armed once nobody can read", 10*time.Second)
	tc.advanceToDeadline()
	tc.wantState("the peer never sent its FIN", Closed)
	tc.wantTransition(FinWait2, Closed, FinWait2Timeout)
}

func TestFinWait2TimeoutReleaseFirst(t *testing.T) {
	tc := newEstablished(t, func(c *Config) { c.FinWait2Timeout = 10 * time.Second })
	tc.c.Release(tc.now, false)
	tc.want("FIN", seg{flags: F | A, seq: iss + 1, ack: irs + 1})
	tc.now = tc.now.Add(time.Second)
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 2})
	tc.wantState("FIN acknowledged", FinWait2)
	tc.wantDeadlineIn("FIN-WAIT-2 timeout", 10*time.Second)
}

func TestFinWait2NoTimeoutWithoutRelease(t *testing.T) {
	tc := newFinWait2(t)
	tc.advance(time.Hour)
	tc.wantState("a half-closed socket its owner still reads stays open", FinWait2)
}

func TestFinWait1RSTResets(t *testing.T) {
	tc := newFinWait1(t)
	tc.in(seg{flags: R, seq: irs + 1})
	tc.wantState("RST at RCV.NXT", Closed)
	tc.wantErr("reset", ErrReset)
}

package tcp

import (
	"testing"
	"time"
)

// Retransmission per RFC 6298 and the RETRANSMISSION TIMEOUT and USER
// TIMEOUT of RFC 9293 3.10.8.

func TestRTOBackoffAndClamp(t *testing.T) {
	tc := newEstablished(t, withNoDelay, func(c *Config) { c.MaxRTO = 10 * time.Second; c.MaxRetransmits = 8 })
	tc.write([]byte("x"))
	tc.want("data", seg{flags: A | P, seq: iss + 1, ack: irs + 1, len: 1})
	want := []time.Duration{1, 2, 4, 8, 10, 10} // seconds: doubling (5.5), then MaxRTO (2.5)
	for i, w := range want {
		if got := tc.advanceToDeadline(); got != w*time.Second {
			t.Fatalf("timeout %d after %v, want %v", i+1, got, w*time.Second)
		}
		tc.want("retransmission of the oldest segment (5.4)", seg{flags: A | P, seq: iss + 1, ack: irs + 1, len: 1})
	}
	if b := tc.c.Info().Backoff; b != len(want) {
		t.Fatalf("Backoff = %d, want %d", b, len(want))
	}
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 2})
	if b := tc.c.Info().Backoff; b != 0 {
		t.Fatalf("Backoff = %d after an ACK of new data, want 0", b)
	}
	tc.wantNoDeadline("all acknowledged: timer off (5.2)")
}

func TestRTOMinClamp(t *testing.T) {
	tc := newSynSent(t, func(c *Config) { c.MinRTO = 300 * time.Millisecond })
	tc.now = tc.now.Add(10 * time.Millisecond)
	tc.in(seg{flags: S | A, seq: irs, ack: iss + 1})
	if rto := tc.c.Info().RTO; rto != 300*time.Millisecond {
		t.Fatalf("RTO = %v after a 10 ms sample, want MinRTO 300ms", rto)
	}
}

func TestRTTEstimator(t *testing.T) {
	// RFC 6298 2.2 and 2.3, K = 4, alpha = 1/8, beta = 1/4.
	tc := newSynSent(t, withNoDelay, func(c *Config) { c.MinRTO = time.Millisecond })
	tc.now = tc.now.Add(100 * time.Millisecond)
	tc.in(seg{flags: S | A, seq: irs, ack: iss + 1})
	tc.drain()
	i := tc.c.Info()
	if i.RTT != 100*time.Millisecond || i.RTTVar != 50*time.Millisecond || i.RTO != 300*time.Millisecond {
		t.Fatalf("first sample 100ms: SRTT %v RTTVAR %v RTO %v, want 100ms 50ms 300ms", i.RTT, i.RTTVar, i.RTO)
	}
	tc.write([]byte("x"))
	tc.drain()
	tc.now = tc.now.Add(200 * time.Millisecond)
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 2})
	i = tc.c.Info()
	want := []time.Duration{112500 * time.Microsecond, 62500 * time.Microsecond, 362500 * time.Microsecond}
	if i.RTT != want[0] || i.RTTVar != want[1] || i.RTO != want[2] {
		t.Fatalf("second sample 200ms: SRTT %v RTTVAR %v RTO %v, want %v", i.RTT, i.RTTVar, i.RTO, want)
	}
}

func TestKarn(t *testing.T) {
	tc := newSynSent(t, withNoDelay, func(c *Config) { c.MinRTO = time.Millisecond })
	tc.now = tc.now.Add(100 * time.Millisecond)
	tc.in(seg{flags: S | A, seq: irs, ack: iss + 1})
	tc.drain()
	tc.write([]byte("x"))
	tc.want("data", seg{flags: A | P, seq: iss + 1, ack: irs + 1, len: 1})
	tc.advanceToDeadline()
	tc.want("retransmission", seg{flags: A | P, seq: iss + 1, ack: irs + 1, len: 1})
	tc.now = tc.now.Add(5 * time.Millisecond)
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 2})
	if i := tc.c.Info(); i.RTT != 100*time.Millisecond {
		t.Fatalf("SRTT %v: a retransmitted segment gave a sample (Karn)", i.RTT)
	}
}

func TestKarnFastRetransmit(t *testing.T) {
	// A segment sent again by fast retransmit gives no sample either.
	tc := newEstablishedMSS(t, 1000, func(c *Config) { c.MinRTO = time.Millisecond })
	tc.write(payload(5000, 0))
	tc.drain()
	rtt := tc.c.Info().RTT
	for range 3 {
		tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1})
	}
	tc.want("fast retransmit", seg{flags: A, seq: iss + 1, ack: irs + 1, len: 1000})
	tc.now = tc.now.Add(time.Second)
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 5001})
	if got := tc.c.Info().RTT; got != rtt {
		t.Fatalf("SRTT %v -> %v from an ACK of a retransmitted segment", rtt, got)
	}
}

func TestGiveUpAfterMaxRetransmits(t *testing.T) {
	tc := newEstablished(t, withNoDelay, func(c *Config) { c.MaxRetransmits = 3 })
	tc.write([]byte("x"))
	tc.drain()
	for range 3 {
		tc.advanceToDeadline()
		tc.want("retransmission", seg{flags: A | P, seq: iss + 1, ack: irs + 1, len: 1})
	}
	tc.advanceToDeadline()
	tc.want("give-up tells the peer", seg{flags: R, seq: iss + 2})
	tc.wantState("aborted", Closed)
	tc.wantTransition(Established, Closed, RetransmitTimeout)
	tc.wantErr("timed out", ErrTimedOut)
	if _, err := tc.c.Write(tc.now, []byte("y")); err != ErrTimedOut {
		t.Fatalf("Write after give-up: %v, want ETIMEDOUT", err)
	}
}

func TestUserTimeout(t *testing.T) {
	tc := newEstablished(t, withNoDelay, func(c *Config) { c.UserTimeout = 5 * time.Second })
	tc.write([]byte("x"))
	tc.drain()
	tc.advance(4 * time.Second)
	tc.wantState("1 s and 3 s retransmissions, still trying", Established)
	tc.advance(time.Second)
	tc.wantState("data unacknowledged for UserTimeout: abort", Closed)
	tc.wantTransition(Established, Closed, UserTimeout)
	tc.wantErr("timed out", ErrTimedOut)
}

func TestUserTimeoutRestartsOnProgress(t *testing.T) {
	tc := newEstablished(t, withNoDelay, func(c *Config) { c.UserTimeout = 3 * time.Second })
	tc.write([]byte("a"))
	tc.advance(2 * time.Second)
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 2})
	tc.write([]byte("b"))
	tc.advance(2 * time.Second)
	tc.wantState("the new data has been out only 2 s", Established)
}

func TestRetransmitAfterTimeoutGoesBackN(t *testing.T) {
	tc := newEstablishedMSS(t, 1000)
	tc.peerWin = 65535
	tc.write(payload(3000, 0))
	tc.want("flight", seg{flags: A, seq: iss + 1, ack: irs + 1, len: 1000})
	tc.want("flight", seg{flags: A, seq: iss + 1001, ack: irs + 1, len: 1000})
	tc.want("flight", seg{flags: A | P, seq: iss + 2001, ack: irs + 1, len: 1000})
	tc.advanceToDeadline()
	tc.want("RTO: one segment from SND.UNA (cwnd = 1 MSS)", seg{flags: A, seq: iss + 1, ack: irs + 1, len: 1000})
	tc.wantNothing("cwnd is one segment")
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1001})
	tc.want("slow start again", seg{flags: A, seq: iss + 1001, ack: irs + 1, len: 1000})
	tc.want("two segments", seg{flags: A | P, seq: iss + 2001, ack: irs + 1, len: 1000})
}

func TestUserTimeoutInSynSent(t *testing.T) {
	tc := newSynSent(t, func(c *Config) { c.UserTimeout = 4 * time.Second })
	tc.advanceToDeadline()
	tc.want("the SYN is retried, not given up at the first timeout", seg{flags: S, seq: iss})
	tc.advance(3 * time.Second)
	tc.wantState("the user timeout ends the attempt", Closed)
	tc.wantTransition(SynSent, Closed, UserTimeout)
}

// ABORT after a timeout has moved our send pointer back still sends its
// RST at the highest sequence number sent, the RFC's SND.NXT, so that it
// lands in the peer's window.
func TestAbortAfterTimeoutUsesHighestSeq(t *testing.T) {
	tc := newEstablishedMSS(t, 1000)
	tc.peerWin = 65535
	tc.write(payload(3000, 0))
	tc.want("flight", seg{flags: A, seq: iss + 1, ack: irs + 1, len: 1000})
	tc.want("flight", seg{flags: A, seq: iss + 1001, ack: irs + 1, len: 1000})
	tc.want("flight", seg{flags: A | P, seq: iss + 2001, ack: irs + 1, len: 1000})
	tc.advanceToDeadline()
	tc.want("RTO resend from SND.UNA", seg{flags: A, seq: iss + 1, ack: irs + 1, len: 1000})
	tc.c.Abort(tc.now)
	tc.want("RST at SND.UNA+3000", seg{flags: R, seq: iss + 3001})
}

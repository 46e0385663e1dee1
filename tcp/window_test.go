package tcp

import (
	"testing"
	"time"
)

// Flow control: zero window and persist timer (RFC 9293 3.8.6.1, RFC 1122
// 4.2.2.17), silly window avoidance on both sides (3.8.6.2), Nagle (3.7.4).

func TestZeroWindowPersist(t *testing.T) {
	tc := newEstablishedMSS(t, 1000, withNoDelay)
	tc.write(payload(100, 0))
	tc.want("data", seg{flags: A | P, seq: iss + 1, ack: irs + 1, len: 100})
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 101, zeroWin: true})
	tc.write(payload(50, 1))
	tc.wantNothing("zero window: nothing may be sent")
	tc.wantDeadlineIn("persist timer armed at the RTO", time.Second)

	for i, d := range []time.Duration{1, 2, 4} {
		if got := tc.advanceToDeadline(); got != d*time.Second {
			t.Fatalf("probe %d after %v, want %v (backoff)", i+1, got, d*time.Second)
		}
		tc.want("zero-window probe: one byte", seg{flags: A, seq: iss + 101, ack: irs + 1, len: 1})
		tc.in(seg{flags: A, seq: irs + 1, ack: iss + 101, zeroWin: true})
		tc.wantNothing("the peer still has no room")
		if tc.c.Deadline().IsZero() {
			t.Fatalf("after probe %d answered with a zero window, no timer is armed: the connection stalls", i+1)
		}
	}
	if tc.c.Stats().FastRetransmits != 0 {
		t.Fatal("answers to probes counted as duplicate ACKs")
	}
	if tc.c.State() != Established {
		t.Fatal("a peer answering probes must not be given up on")
	}
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 101, win: 4000})
	tc.want("window reopened: data flows", seg{flags: A | P, seq: iss + 101, ack: irs + 1, len: 50})
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 151, win: 4000})
	tc.wantNoDeadline("all acknowledged")
}

func TestZeroWindowProbeTaken(t *testing.T) {
	tc := newEstablishedMSS(t, 1000, withNoDelay)
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1, zeroWin: true})
	tc.write([]byte("abc"))
	tc.wantNothing("zero window")
	tc.advanceToDeadline()
	tc.want("probe", seg{flags: A, seq: iss + 1, ack: irs + 1, data: []byte("a")})
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 2, zeroWin: true})
	tc.wantNothing("the probe byte was taken, the window is zero again")
	tc.advanceToDeadline()
	tc.want("next probe carries the next byte", seg{flags: A, seq: iss + 2, ack: irs + 1, data: []byte("b")})
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 2, win: 1000})
	tc.want("the window opens: the rest from SND.UNA, the dropped probe byte first", seg{flags: A | P, seq: iss + 2, ack: irs + 1, data: []byte("bc")})
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 4, win: 1000})
	tc.wantNoDeadline("all acknowledged")
}

func TestWindowClosesWithDataInFlight(t *testing.T) {
	tc := newEstablishedMSS(t, 1000, withNoDelay)
	tc.write(payload(3000, 0))
	tc.drain()
	// The peer takes the first segment and closes its window: the rest
	// must wait for the window, probed, not retransmitted to death.
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1001, zeroWin: true})
	for range 20 {
		tc.advanceToDeadline()
		tc.drain()
		tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1001, zeroWin: true})
	}
	tc.wantState("a peer that keeps answering is never given up on", Established)
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1001, win: 8000})
	tc.want("window reopened: data again from SND.UNA (the probes were dropped)", seg{flags: A, seq: iss + 1001, ack: irs + 1, len: 1000})
}

func TestReceiverSWSWindowField(t *testing.T) {
	tc := newEstablishedMSS(t, 1000, func(c *Config) { c.ReceiveBufferSize = 4000 })
	for i := range 4 {
		tc.in(seg{flags: A, seq: irs + 1 + seqv(uint32(i*1000)), ack: iss + 1, data: payload(1000, 0)})
	}
	tc.drain()
	buf := make([]byte, 300)
	tc.c.Read(tc.now, buf)
	tc.wantNothing("300 bytes free is less than one MSS: no window update")
	tc.in(seg{flags: A, seq: irs + 6000, ack: iss + 1})
	tc.want("an ACK still offers a zero window (RFC 9293 3.8.6.2.2)", seg{flags: A, seq: iss + 1, ack: irs + 4001, zeroWin: true})
	tc.c.Read(tc.now, make([]byte, 500))
	tc.wantNothing("800 free is not yet an MSS")
	tc.c.Read(tc.now, buf)
	tc.want("1100 is: window update", seg{flags: A, seq: iss + 1, ack: irs + 4001, win: 1100})
}

func TestSenderSWSAndNagle(t *testing.T) {
	tc := newEstablishedMSS(t, 1000)
	tc.write([]byte("a"))
	tc.want("Nagle: nothing outstanding, the small segment goes", seg{flags: A | P, seq: iss + 1, ack: irs + 1, len: 1})
	tc.write([]byte("b"))
	tc.write([]byte("c"))
	tc.wantNothing("Nagle: small data waits while data is unacknowledged")
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 2})
	tc.want("ACK releases the coalesced bytes", seg{flags: A | P, seq: iss + 2, ack: irs + 1, data: []byte("bc")})
	tc.write(payload(1500, 0))
	tc.want("a full segment is always sent", seg{flags: A, seq: iss + 4, ack: irs + 1, len: 1000})
	tc.wantNothing("the 500-byte tail waits (Nagle)")
	tc.c.SetNoDelay(tc.now, true)
	tc.want("NoDelay flushes the tail", seg{flags: A | P, seq: iss + 1004, ack: irs + 1, len: 500})
}

func TestSenderSWSSmallWindow(t *testing.T) {
	// The peer offers less than half its largest window; with nothing in
	// flight we must not stall forever: the override timer (RFC 9293
	// 3.8.6.2.1, "(4)") sends what fits.
	tc := newEstablishedMSS(t, 1000, withNoDelay)
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1, win: 300})
	tc.write(payload(2000, 0))
	tc.wantNothing("300 bytes is less than half of the 8192 once offered: wait")
	if tc.c.Deadline().IsZero() {
		t.Fatal("no timer armed: the sender would stall")
	}
	tc.advanceToDeadline()
	tc.want("override timeout: send what the window allows", seg{flags: A, seq: iss + 1, ack: irs + 1, len: 300})
}

package tcp

import (
	"testing"
)

// NewReno: RFC 5681 slow start and congestion avoidance, RFC 6582 fast
// recovery, RFC 6928 initial window.

func TestInitialWindow(t *testing.T) {
	for _, c := range []struct{ mss, iw int }{{1000, 10000}, {1460, 14600}, {536, 5360}, {4000, 14600}, {9000, 18000}} {
		if got := initialWindow(c.mss); got != c.iw {
			t.Errorf("IW(%d) = %d, want %d", c.mss, got, c.iw)
		}
	}
}

// bulk sets up an established NewReno connection with MSS 1000, a large
// peer window and n bytes queued; it returns after the initial flight.
func bulk(t *testing.T, n int) *tconn {
	tc := newSynSent(t, func(c *Config) { c.SendBufferSize = 1 << 20; c.CongestionControl = "newreno" })
	tc.peerWin = 65535
	tc.in(seg{flags: S | A, seq: irs, ack: iss + 1, opts: mssOpt(1000)})
	tc.want("ACK", seg{flags: A, seq: iss + 1, ack: irs + 1})
	tc.write(payload(n, 0))
	return tc
}

func countSent(tc *tconn) (segs int) {
	for _, s := range tc.drain() {
		if len(s.Payload) > 0 {
			segs++
		}
	}
	return
}

func TestSlowStart(t *testing.T) {
	tc := bulk(t, 60000)
	if n := countSent(tc); n != 10 {
		t.Fatalf("initial flight %d segments, want 10 (IW = 10000 bytes)", n)
	}
	if w := tc.c.Info().CWnd; w != 10000 {
		t.Fatalf("cwnd %d after the handshake, want IW 10000 (the SYN is not data)", w)
	}
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1001})
	if w := tc.c.Info().CWnd; w != 11000 {
		t.Fatalf("slow start: cwnd %d after one MSS acknowledged, want 11000", w)
	}
	if n := countSent(tc); n != 2 {
		t.Fatalf("one ACK in slow start releases %d segments, want 2", n)
	}
}

func TestCongestionAvoidance(t *testing.T) {
	tc := bulk(t, 60000)
	tc.drain()
	r := tc.c.cc.(*newReno)
	r.ssthresh = 5000 // force congestion avoidance
	before := r.cwnd
	for i := 1; i <= 10; i++ {
		tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1 + seqv(uint32(i*1000))})
	}
	if r.cwnd != before+1000 {
		t.Fatalf("congestion avoidance: cwnd %d -> %d after one window acknowledged, want +1 MSS", before, r.cwnd)
	}
}

func TestFastRetransmitAndRecovery(t *testing.T) {
	tc := bulk(t, 30000)
	if n := countSent(tc); n != 10 {
		t.Fatalf("flight %d", n)
	}
	// Segment 1 lost; the next ones produce duplicate ACKs.
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1})
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1})
	tc.wantNothing("two duplicate ACKs do nothing")
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1})
	tc.want("third duplicate ACK: fast retransmit", seg{flags: A, seq: iss + 1, ack: irs + 1, len: 1000})
	tc.wantNothing("cwnd = ssthresh + 3 MSS = 8000 < flight 10000")
	i := tc.c.Info()
	if i.SSThresh != 5000 || i.CWnd != 8000 {
		t.Fatalf("after fast retransmit ssthresh %d cwnd %d, want 5000 8000", i.SSThresh, i.CWnd)
	}
	for range 2 {
		tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1})
	}
	tc.wantNothing("cwnd inflated to 10000 (RFC 5681 3.2 step 4): no room beyond the 10000 in flight")
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1})
	tc.want("window inflation lets a new segment out", seg{flags: A, seq: iss + 10001, ack: irs + 1, len: 1000})

	// Partial ACK: segments 1..3 acknowledged, segment 4 lost too.
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 3001})
	tc.want("partial ACK retransmits the next hole", seg{flags: A, seq: iss + 3001, ack: irs + 1, len: 1000})
	if !tc.c.snd.inRecovery {
		t.Fatal("a partial ACK does not end recovery")
	}
	tc.drain()
	// Full ACK of everything sent before recovery began.
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 10001})
	if tc.c.snd.inRecovery {
		t.Fatal("the full ACK ends recovery")
	}
	i = tc.c.Info()
	if i.CWnd > i.SSThresh {
		t.Fatalf("after recovery cwnd %d > ssthresh %d (RFC 6582 deflation)", i.CWnd, i.SSThresh)
	}
}

func TestNoFastRetransmitForOldDuplicates(t *testing.T) {
	// RFC 6582 section 4.1: after a timeout, duplicate ACKs that do not
	// cover more than recover start no fast retransmit.
	tc := bulk(t, 30000)
	tc.drain()
	tc.advanceToDeadline()
	tc.want("timeout retransmission", seg{flags: A, seq: iss + 1, ack: irs + 1, len: 1000})
	for range 4 {
		tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1})
	}
	tc.wantNothing("duplicates from before the timeout: no fast retransmit")
	if tc.c.Stats().FastRetransmits != 0 {
		t.Fatal("fast retransmit after a timeout on old duplicates")
	}
}

func TestFastRetransmitWithHighISS(t *testing.T) {
	// recover starts at the ISS (RFC 6582 3.2 step 1), so the
	// "covers more than recover" test works for any ISS.
	tc := newTC(t, func(c *Config) { c.ISN = FixedISN(0x90000000) })
	tc.c.Connect(tc.now)
	tc.drain()
	const my = 0x90000000
	tc.in(seg{flags: S | A, seq: irs, ack: my + 1, opts: mssOpt(1000)})
	tc.write(payload(5000, 0))
	tc.drain()
	for range 3 {
		tc.in(seg{flags: A, seq: irs + 1, ack: my + 1})
	}
	tc.want("fast retransmit", seg{flags: A, seq: my + 1, ack: irs + 1, len: 1000})
}

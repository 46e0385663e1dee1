package tcp

import (
	"reflect"
	"testing"
	"time"

	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/wire"
)

// newEstablishedSACKRTT is newEstablishedSACK with a handshake that took
// rtt, the connection's first RTT sample.
func newEstablishedSACKRTT(t *testing.T, rtt time.Duration, mods ...func(*Config)) *tconn {
	mods = append([]func(*Config){withOptions, func(c *Config) {
		c.NoTimestamps = true
		c.ReceiveBufferSize = 1 << 20
	}}, mods...)
	tc := newTC(t, mods...)
	tc.c.Connect(tc.now)
	tc.drain()
	tc.now = tc.now.Add(rtt)
	tc.peerWin = 65535
	o := synOpts(7, 1)
	o.HasTimestamps = false
	o.MSS = 1000
	tc.in(seg{flags: S | A, seq: irs, ack: iss + 1, opts: o})
	tc.want("ACK of SYN,ACK", seg{flags: A, seq: iss + 1, ack: irs + 1})
	if tc.c.rtt.min != rtt {
		t.Fatalf("min RTT %v after the handshake, want %v", tc.c.rtt.min, rtt)
	}
	return tc
}

func wantRate(t *testing.T, why string, got, want RateSample) {
	t.Helper()
	if got != want {
		t.Fatalf("%s:\n got %+v\nwant %+v", why, got, want)
	}
}

// draft-cheng-iccrg-delivery-rate-estimation on a hand-computed sequence:
// each sample is the bytes delivered between the send of the most
// recently sent segment the ACK delivers and its delivery, over the
// longer of the send and ACK intervals; SACKed segments count when
// SACKed; segments sent while the application had nothing more to send
// mark their samples app-limited until they are delivered.
func TestRateSamplesHandComputed(t *testing.T) {
	tc := newEstablishedSACK(t)
	ack := func(n int, o wire.TCPOptions) {
		tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1 + seqnum.Value(n), opts: o})
	}
	// t=0: four segments into an empty flight: they record delivered 0
	// at t=0, and app-limited, for nothing was queued before the write
	// (the connection starts app-limited, as the draft's check finds it
	// when the application has not written). The writer has nothing more:
	// the connection stays app-limited until what is in flight now (4000
	// bytes) is delivered.
	tc.write(make([]byte, 4000))
	if n := len(tc.drain()); n != 4 {
		t.Fatalf("%d segments, want 4", n)
	}
	if tc.c.rt.rs.appLimited != 4000 {
		t.Fatalf("app-limited mark %d, want 4000", tc.c.rt.rs.appLimited)
	}
	// t=100ms: two segments acknowledged. send_elapsed 0, ack_elapsed
	// 100 ms: 2000 bytes over 100 ms.
	tc.now = tc.now.Add(100 * time.Millisecond)
	ack(2000, wire.TCPOptions{})
	wantRate(t, "cumulative ACK of two segments", tc.c.rt.rs.last, RateSample{
		DeliveryRate: 20000, Delivered: 2000, Interval: 100 * time.Millisecond,
		PriorDelivered: 0, TotalDelivered: 2000, NewlyAcked: 2000,
		TxInFlight: 2000, AppLimited: true, RTT: 100 * time.Millisecond,
	})
	// Two more segments, sent while app-limited: they record delivered
	// 2000 at t=100ms, first_send_time 0.
	tc.write(make([]byte, 2000))
	tc.drain()
	// t=150ms: the fourth segment is SACKed; it was sent at 0 with
	// delivered 0: 3000 bytes over 150 ms.
	tc.now = tc.now.Add(50 * time.Millisecond)
	ack(2000, sackOpts(iss+1+3000, iss+1+4000))
	wantRate(t, "SACK of the fourth segment", tc.c.rt.rs.last, RateSample{
		DeliveryRate: 20000, Delivered: 3000, Interval: 150 * time.Millisecond,
		PriorDelivered: 0, TotalDelivered: 3000, NewlyAcked: 1000,
		TxInFlight: 4000, AppLimited: true, RTT: 150 * time.Millisecond,
	})
	// t=200ms: everything acknowledged. The newest segment (sent at
	// 100 ms with delivered 2000) gives the sample: send_elapsed 100 ms
	// (first_send_time 0), ack_elapsed 100 ms; 4000 bytes; app-limited.
	tc.now = tc.now.Add(50 * time.Millisecond)
	ack(6000, wire.TCPOptions{})
	wantRate(t, "cumulative ACK of the rest", tc.c.rt.rs.last, RateSample{
		DeliveryRate: 40000, Delivered: 4000, Interval: 100 * time.Millisecond,
		PriorDelivered: 2000, TotalDelivered: 6000, NewlyAcked: 3000,
		TxInFlight: 4000, AppLimited: true, RTT: 100 * time.Millisecond,
	})
	// The mark of 4000 is passed; the connection, idle again, is
	// app-limited anew from what it has delivered now.
	if tc.c.rt.rs.appLimited != 6000 {
		t.Fatalf("app-limited mark %d after everything was delivered, want 6000", tc.c.rt.rs.appLimited)
	}
	// Info reports the latest sample that was not app-limited or higher.
	if got := tc.c.Info().DeliveryRate; got != 40000 {
		t.Fatalf("Info().DeliveryRate %d, want 40000", got)
	}
}

// An ACK compressed into less than the minimum RTT gives no rate (the
// draft's section 3.3: it would overstate the bandwidth).
func TestRateSampleShorterThanMinRTTDiscarded(t *testing.T) {
	tc := newEstablishedSACKRTT(t, 100*time.Millisecond)
	// Two segments into the empty flight, both acknowledged 1 ms later:
	// send_elapsed 0, ack_elapsed 1 ms.
	tc.write(make([]byte, 2000))
	tc.drain()
	tc.now = tc.now.Add(time.Millisecond)
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1 + 2000})
	if rs := tc.c.rt.rs.last; rs.DeliveryRate != 0 || rs.NewlyAcked != 2000 || rs.Interval != time.Millisecond {
		t.Fatalf("sample over 1 ms with a 100 ms min RTT: %+v, want no rate, 2000 delivered over 1 ms", rs)
	}
}

// A cumulative ACK that ends inside a transmit record delivers that part
// of it: the part counts in C.delivered at once and the record gives the
// rate sample, without an RTT (a record's transmit time is its newest
// segment's); the rest counts, and gives the RTT, when it is acknowledged. (Records hold more
// than one segment when the transmit queue is full, maxTxSegs, as at 1
// Gbit/s x 100 ms; before, the part vanished from C.delivered and every
// later sample read low.)
func TestRateSamplePartlyAcknowledgedRecord(t *testing.T) {
	tc := newEstablishedSACK(t)
	// t=0: two segments, [0,1000) and [1000,2000), into an empty flight:
	// both record delivered 0 at t=0.
	tc.write(make([]byte, 2000))
	if n := len(tc.drain()); n != 2 {
		t.Fatalf("%d segments, want 2", n)
	}
	// t=100ms: ACK of 1500: the first segment and half of the second.
	// The second (the newest) gives the rate sample: 1500 bytes over
	// max(send_elapsed 0, ack_elapsed 100 ms); no RTT from a part.
	tc.now = tc.now.Add(100 * time.Millisecond)
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1 + 1500})
	wantRate(t, "ACK inside the second segment", tc.c.rt.rs.last, RateSample{
		DeliveryRate: 15000, Delivered: 1500, Interval: 100 * time.Millisecond,
		PriorDelivered: 0, TotalDelivered: 1500, NewlyAcked: 1500,
		TxInFlight: 2000, AppLimited: true,
	})
	// t=150ms: the rest of it: 2000 bytes since its send (delivered 0 at
	// t=0) over 150 ms.
	tc.now = tc.now.Add(50 * time.Millisecond)
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1 + 2000})
	wantRate(t, "ACK of the rest", tc.c.rt.rs.last, RateSample{
		DeliveryRate: 13333, Delivered: 2000, Interval: 150 * time.Millisecond,
		PriorDelivered: 0, TotalDelivered: 2000, NewlyAcked: 500,
		TxInFlight: 2000, AppLimited: true, RTT: 150 * time.Millisecond,
	})
}

// lossRecorder is a controller that records what rateLost tells it.
type lossRecorder struct {
	Congestion
	lost []lostPacket
}

func (r *lossRecorder) onPacketLost(_ time.Time, p lostPacket) { r.lost = append(r.lost, p) }

// BBR's HandleLostPacket (draft-ietf-ccwg-bbr-06 section 5.5.10.2) judges a loss by the lost segment's own send state: the
// flight when it left (P.tx_in_flight) and the bytes lost since
// (C.lost - P.lost), not by the state of the segment whose ACK revealed
// the loss. Four segments leave together, the flight growing 1000 to
// 4000; the last three are SACKed and RACK finds the first lost: the
// controller hears of a 1000-byte loss at a flight of 1000.
func TestRateLostPacketHasItsOwnSendState(t *testing.T) {
	tc := newEstablishedSACKRTT(t, 20*time.Millisecond)
	rec := &lossRecorder{Congestion: tc.c.cc}
	tc.c.cc = rec
	tc.write(make([]byte, 4000))
	if n := len(tc.drain()); n != 4 {
		t.Fatalf("%d segments, want 4", n)
	}
	tc.now = tc.now.Add(20 * time.Millisecond)
	in := seg{flags: A, seq: irs + 1, ack: iss + 1}
	in.opts.NumSACK = 1
	in.opts.SACKBlocks[0] = wire.SACKBlock{Start: iss + 1 + 1000, End: iss + 1 + 4000}
	tc.in(in)
	if len(rec.lost) == 0 {
		tc.advanceToDeadline() // RACK's reordering window
	}
	want := []lostPacket{{Size: 1000, TxInFlight: 1000, Lost: 1000, AppLimited: true, PriorDelivered: 0, TotalDelivered: 3000}}
	if !reflect.DeepEqual(rec.lost, want) {
		t.Fatalf("losses told:\n got %+v\nwant %+v", rec.lost, want)
	}
}

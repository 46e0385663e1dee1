package tcp

import (
	"testing"
	"time"

	"github.com/synack/synack/wire"
)

// newEstablishedTS is newEstablished with timestamps in use: the peer's
// SYN,ACK carries TSval 500, echoing our SYN's, 20 ms after it: the
// handshake's RTT sample is 20 ms.
func newEstablishedTS(t *testing.T, mods ...func(*Config)) *tconn {
	tc := newTC(t, append([]func(*Config){withOptions, withNoDelay}, mods...)...)
	tc.c.Connect(tc.now)
	syn := tc.want("SYN", seg{flags: S, seq: iss})
	tc.now = tc.now.Add(20 * time.Millisecond)
	o := synOpts(0, 500)
	o.TSEcr = syn.Options.TSVal
	tc.in(seg{flags: S | A, seq: irs, ack: iss + 1, opts: o})
	tc.want("ACK", seg{flags: A, seq: iss + 1, ack: irs + 1})
	tc.wantState("handshake done", Established)
	return tc
}

func tsOpt(val, ecr uint32) wire.TCPOptions {
	return wire.TCPOptions{HasTimestamps: true, TSVal: val, TSEcr: ecr}
}

// An ACK lost, the retransmission is a duplicate to the receiver, which
// answers with an ACK echoing the TS.Recent of the first transmission (the
// duplicate is unacceptable, its TSval not taken: RFC 7323 4.3). That echo
// is older than the retransmission: now - TSecr includes the whole RTO
// wait. Karn's rule, applied to timestamps, takes no sample from it (issue
// 10: samples of 45-240 s on a 20 ms path kept the RTO at MaxRTO).
func TestTimestampEchoOlderThanRetransmissionGivesNoSample(t *testing.T) {
	tc := newEstablishedTS(t, func(c *Config) { c.MinRTO = time.Millisecond })
	tc.write([]byte("x"))
	first := tc.want("data", seg{flags: A | P, seq: iss + 1, ack: irs + 1, len: 1})
	// The peer's ACK of it is lost.
	tc.advanceToDeadline()
	rtx := tc.want("retransmission", seg{flags: A | P, seq: iss + 1, ack: irs + 1, len: 1})
	if rtx.Options.TSVal == first.Options.TSVal {
		t.Fatalf("retransmission carries the first transmission's TSval %d", rtx.Options.TSVal)
	}
	tc.now = tc.now.Add(20 * time.Millisecond)
	before, samples := tc.c.Info(), tc.c.Stats().TimestampRTTSamples
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 2, opts: tsOpt(510, first.Options.TSVal)})
	if got := tc.c.Stats().TimestampRTTSamples; got != samples {
		t.Fatalf("TSecr %d (before the retransmission's TSval %d) gave an RTT sample: SRTT %v -> %v",
			first.Options.TSVal, rtx.Options.TSVal, before.RTT, tc.c.Info().RTT)
	}
	if after := tc.c.Info(); after.RTT != before.RTT {
		t.Fatalf("SRTT moved %v -> %v on a stale echo", before.RTT, after.RTT)
	}

	// Data sent after the retransmission is timed by its echo again: "y"
	// is the timed segment (RFC 6298 3), "z" only has its timestamp.
	tc.now = tc.now.Add(time.Millisecond)
	tc.write([]byte("y"))
	tc.want("new data", seg{flags: A | P, seq: iss + 2, ack: irs + 1, len: 1})
	tc.write([]byte("z"))
	z := tc.want("more new data", seg{flags: A | P, seq: iss + 3, ack: irs + 1, len: 1})
	tc.now = tc.now.Add(20 * time.Millisecond)
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 3, opts: tsOpt(530, z.Options.TSVal)})
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 4, opts: tsOpt(530, z.Options.TSVal)})
	if got := tc.c.Stats().TimestampRTTSamples; got != samples+1 {
		t.Fatalf("a fresh echo gave %d RTT samples, want 1", got-samples)
	}
}

// An ACK of data never sent is answered with an ACK and dropped (RFC 9293
// 3.10.7.4, fifth); its TSval must not become TS.Recent (RFC 7323 4.3:
// only an acceptable segment's), or the next valid segment, with an
// older TSval, fails PAWS and the connection stalls (issue 10).
func TestTSRecentNotTakenFromUnacceptableACK(t *testing.T) {
	tc := newEstablishedTS(t)
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 100, opts: tsOpt(9000, 0)})
	a := tc.want("an ACK of unsent data gets an ACK", seg{flags: A, seq: iss + 1, ack: irs + 1})
	if a.Options.TSEcr != 500 {
		t.Fatalf("the ACK echoes %d, want TS.Recent 500 (the dropped segment's TSval is not taken)", a.Options.TSEcr)
	}
	tc.in(seg{flags: A | P, seq: irs + 1, ack: iss + 1, data: []byte("hello"), opts: tsOpt(600, 0)})
	tc.wantNothing("the next valid segment is taken, its ACK delayed (not answered as a PAWS failure)")
	tc.wantRead("and its data taken", []byte("hello"))
	if n := tc.c.Stats().PAWSRejected; n != 0 {
		t.Fatalf("PAWSRejected = %d, want 0", n)
	}
}

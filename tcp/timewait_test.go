package tcp

import (
	"testing"
	"time"

	"github.com/synack/synack/wire"
)

func TestTimeWaitConfigurableMSL(t *testing.T) {
	tc := newTimeWait(t, func(c *Config) { c.MSL = 5 * time.Second })
	if d := tc.advanceToDeadline(); d != 10*time.Second {
		t.Fatalf("TIME-WAIT lasted %v, want 2*MSL = 10s", d)
	}
	tc.wantState("2MSL", Closed)
	tc.wantTransition(TimeWait, Closed, Timeout2MSL)
}

func TestTimeWaitRetransmittedFIN(t *testing.T) {
	tc := newTimeWait(t)
	tc.advance(40 * time.Second)
	tc.in(seg{flags: F | A, seq: irs + 1, ack: iss + 2})
	tc.want("the FIN is acknowledged again", seg{flags: A, seq: iss + 2, ack: irs + 2})
	tc.wantDeadlineIn("2MSL restarts", 2*DefaultMSL)
	tc.wantState("still TIME-WAIT", TimeWait)
}

func TestTimeWaitIgnoresRST(t *testing.T) {
	// RFC 1337: TIME-WAIT assassination.
	for _, s := range []seg{{flags: R, seq: irs + 2}, {flags: R | A, seq: irs + 2, ack: iss + 2}, {flags: R, seq: irs + 50}} {
		tc := newTimeWait(t)
		tc.in(s)
		tc.wantNothing("RST in TIME-WAIT is ignored")
		tc.wantState("still TIME-WAIT", TimeWait)
		tc.wantDeadlineIn("2MSL not cut short", 2*DefaultMSL)
	}
}

func TestTimeWaitData(t *testing.T) {
	tc := newTimeWait(t)
	tc.in(seg{flags: A, seq: irs + 2, ack: iss + 2, data: []byte("x")})
	tc.wantState("still TIME-WAIT", TimeWait)
	tc.in(seg{flags: S, seq: irs + 2})
	tc.want("a SYN the stack did not reopen with gets a challenge ACK", seg{flags: A, seq: iss + 2, ack: irs + 2})
}

// RFC 9293 3.6.1 (MAY-2) and RFC 6191: without timestamps, a SYN whose
// sequence number lies beyond everything the old incarnation sent may
// reopen the 4-tuple; one that does not is answered like a SYN in any
// synchronized state: a challenge ACK (RFC 5961 section 4), or a reset
// with RFC 793's rule.
func TestTimeWaitReopenBySequence(t *testing.T) {
	tc := newTimeWait(t)
	if !tc.c.TimeWaitReopen(&Segment{Seq: irs + 100, Flags: wire.SYN}) {
		t.Fatal("a SYN beyond RCV.NXT must reopen TIME-WAIT (RFC 1122 4.2.2.13, RFC 6191)")
	}
	old := &Segment{Seq: irs + 2, Flags: wire.SYN}
	if tc.c.TimeWaitReopen(old) {
		t.Fatal("a SYN at RCV.NXT is not newer than the old incarnation")
	}
	tc.in(seg{flags: S, seq: irs + 2})
	tc.want("challenge ACK for a SYN that does not reopen", seg{flags: A, seq: iss + 2, ack: irs + 2})
	tc.wantState("still TIME-WAIT", TimeWait)

	tc = newTimeWait(t, func(c *Config) { c.RFC793SYN = true })
	tc.in(seg{flags: S, seq: irs + 2})
	tc.want("RFC 793: a SYN in the window resets", seg{flags: R, seq: iss + 2})
	tc.wantState("reset", Closed)

	tc = newTimeWait(t)
	if tc.c.TimeWaitReopen(&Segment{Seq: irs + 100, Flags: wire.SYN | wire.ACK}) {
		t.Fatal("a SYN,ACK is no new connection request")
	}
	if n := tc.c.NextISS(); !n.GreaterThan(iss + 2) {
		t.Fatalf("NextISS %d is not beyond the old SND.NXT", n)
	}
}

// RFC 6191: an incarnation without timestamps is reopened by any SYN whose
// timestamps the new one would use.
func TestTimeWaitReopenNewTimestamps(t *testing.T) {
	tc := newTimeWait(t, func(c *Config) { c.NoTimestamps = false })
	syn := &Segment{Seq: irs - 1000, Flags: wire.SYN, Options: wire.TCPOptions{HasTimestamps: true, TSVal: 1}}
	if !tc.c.TimeWaitReopen(syn) {
		t.Fatal("old incarnation without timestamps, SYN with: reopen")
	}
}

func TestTimeWaitReopenByTimestamp(t *testing.T) {
	// RFC 6191: with timestamps, a newer TSval reopens even when the
	// sequence number went backwards.
	tc := newTC(t, withOptions)
	tc.c.Connect(tc.now)
	syn := tc.want("SYN with options", seg{flags: S, seq: iss})
	ts := func(v uint32) wire.TCPOptions {
		return wire.TCPOptions{HasTimestamps: true, TSVal: v, TSEcr: syn.Options.TSVal}
	}
	o := ts(100)
	o.HasMSS, o.MSS = true, 1000
	tc.in(seg{flags: S | A, seq: irs, ack: iss + 1, opts: o})
	tc.want("ACK", seg{flags: A, seq: iss + 1, ack: irs + 1})
	tc.c.Close(tc.now)
	tc.want("FIN", seg{flags: F | A, seq: iss + 1, ack: irs + 1})
	tc.in(seg{flags: F | A, seq: irs + 1, ack: iss + 2, opts: ts(200)})
	tc.want("ACK of FIN", seg{flags: A, seq: iss + 2, ack: irs + 2})
	tc.wantState("TIME-WAIT", TimeWait)

	newer := &Segment{Seq: irs - 1000, Flags: wire.SYN, Options: wire.TCPOptions{HasTimestamps: true, TSVal: 201}}
	if !tc.c.TimeWaitReopen(newer) {
		t.Fatal("a newer timestamp reopens, whatever the sequence number")
	}
	older := &Segment{Seq: irs + 1000, Flags: wire.SYN, Options: wire.TCPOptions{HasTimestamps: true, TSVal: 150}}
	if tc.c.TimeWaitReopen(older) {
		t.Fatal("an older timestamp does not reopen, whatever the sequence number")
	}
	same := &Segment{Seq: irs + 1000, Flags: wire.SYN, Options: wire.TCPOptions{HasTimestamps: true, TSVal: 200}}
	if !tc.c.TimeWaitReopen(same) {
		t.Fatal("an equal timestamp with a newer sequence number reopens")
	}
	same.Seq = irs + 2
	if tc.c.TimeWaitReopen(same) {
		t.Fatal("an equal timestamp with an old sequence number does not reopen")
	}
	noTS := &Segment{Seq: irs + 1000, Flags: wire.SYN}
	if !tc.c.TimeWaitReopen(noTS) {
		t.Fatal("a SYN without timestamps reopens by its newer sequence number (RFC 6191)")
	}
	noTS.Seq = irs + 2
	if tc.c.TimeWaitReopen(noTS) {
		t.Fatal("a SYN without timestamps and an old sequence number does not reopen")
	}
}

func TestTimeWaitNoTimersButTimeWait(t *testing.T) {
	tc := newTimeWait(t, func(c *Config) { c.KeepAlive = true })
	tc.wantDeadlineIn("only the 2MSL timer", 2*DefaultMSL)
}

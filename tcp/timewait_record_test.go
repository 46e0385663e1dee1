package tcp

import (
	"fmt"
	"testing"
	"time"
	"unsafe"

	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/wire"
)

// newTimeWaitTS is newTimeWait with every option on (window scaling,
// SACK, timestamps): the peer's SYN,ACK has TSval 100, its FIN 200.
func newTimeWaitTS(t *testing.T, mods ...func(*Config)) *tconn {
	tc := newTC(t, append([]func(*Config){withOptions}, mods...)...)
	tc.c.Connect(tc.now)
	syn := tc.want("SYN with options", seg{flags: S, seq: iss})
	o := wire.TCPOptions{HasTimestamps: true, TSVal: 100, TSEcr: syn.Options.TSVal,
		HasMSS: true, MSS: 1000, HasWindowScale: true, WindowScale: 2, SACKPermitted: true}
	tc.in(seg{flags: S | A, seq: irs, ack: iss + 1, opts: o})
	tc.want("ACK", seg{flags: A, seq: iss + 1, ack: irs + 1})
	tc.advance(time.Second)
	tc.c.Close(tc.now)
	tc.want("FIN", seg{flags: F | A, seq: iss + 1, ack: irs + 1})
	tc.advance(10 * time.Millisecond)
	ts := wire.TCPOptions{HasTimestamps: true, TSVal: 200, TSEcr: syn.Options.TSVal}
	tc.in(seg{flags: F | A, seq: irs + 1, ack: iss + 2, opts: ts})
	tc.want("ACK of FIN", seg{flags: A, seq: iss + 2, ack: irs + 2})
	tc.wantState("TIME-WAIT", TimeWait)
	return tc
}

func TestTimeWaitRecordSize(t *testing.T) {
	if n := unsafe.Sizeof(TimeWaitRecord{}); n > 104 {
		t.Errorf("TimeWaitRecord is %d bytes, want at most 104", n)
	}
}

// twStep is one segment fed to a Conn in TIME-WAIT and to its record, at
// after its predecessor. ts, when not zero, is added to the peer's FIN's
// TSval (200) as the segment's TSval, on the variants with timestamps.
type twStep struct {
	after time.Duration
	s     seg
	ts    int32
}

// TestTimeWaitRecordEquivalence puts a Conn in TIME-WAIT and its record
// side by side, feeds both the same segments and requires the same
// segments out, the same reopen decisions, the same 2MSL deadline and the
// same end.
func TestTimeWaitRecordEquivalence(t *testing.T) {
	big := func(c *Config) { c.ReceiveBufferSize = 1 << 20 } // window scaling in use
	variants := []struct {
		name string
		make func(*testing.T, ...func(*Config)) *tconn
		ts   bool
		mods []func(*Config)
	}{
		{"plain", newTimeWait, false, nil},
		{"timestamps", newTimeWaitTS, true, nil},
		{"timestamps+1MiB window", newTimeWaitTS, true, []func(*Config){big}},
		{"plain+RFC793SYN", newTimeWait, false, []func(*Config){func(c *Config) { c.RFC793SYN = true }}},
		{"timestamps+RFC793SYN", newTimeWaitTS, true, []func(*Config){func(c *Config) { c.RFC793SYN = true }}},
		{"challenge limit 2", newTimeWaitTS, true, []func(*Config){func(c *Config) { c.ChallengeACKLimit = 2 }}},
	}
	ack := func(s seg) seg { s.flags |= A; s.ack = iss + 2; return s }
	nxt := irs + 2 // RCV.NXT in TIME-WAIT
	scenarios := []struct {
		name  string
		steps []twStep
	}{
		{"RST at RCV.NXT", []twStep{{s: seg{flags: R, seq: nxt}}}},
		{"RST,ACK", []twStep{{s: ack(seg{flags: R, seq: nxt})}}},
		{"RST beyond", []twStep{{s: seg{flags: R, seq: nxt + 50}}}},
		{"old SYN", []twStep{{s: seg{flags: S, seq: nxt}}}},
		{"new SYN", []twStep{{s: seg{flags: S, seq: nxt + 100000}}}},
		{"new SYN newer TS", []twStep{{s: seg{flags: S, seq: irs - 1000}, ts: 1}}},
		{"SYN equal TS", []twStep{{s: seg{flags: S, seq: nxt}, ts: 0}}},
		{"SYN older TS (PAWS)", []twStep{{s: seg{flags: S, seq: nxt + 100000}, ts: -50}}},
		{"SYN,ACK", []twStep{{s: ack(seg{flags: S, seq: nxt})}}},
		{"SYN far out of window", []twStep{{s: seg{flags: S, seq: nxt + 1<<30}}}},
		{"many SYNs", []twStep{
			{s: seg{flags: S, seq: nxt}}, {s: seg{flags: S, seq: nxt}}, {s: seg{flags: S, seq: nxt}},
			{after: 500 * time.Millisecond, s: seg{flags: S, seq: nxt}},
			{after: 600 * time.Millisecond, s: seg{flags: S, seq: nxt}}, {s: seg{flags: S, seq: nxt}}, {s: seg{flags: S, seq: nxt}},
		}},
		{"retransmitted FIN", []twStep{{after: 40 * time.Second, s: ack(seg{flags: F, seq: irs + 1}), ts: 5}}},
		{"retransmitted FIN twice", []twStep{
			{after: 20 * time.Second, s: ack(seg{flags: F, seq: irs + 1}), ts: 5},
			{after: 50 * time.Second, s: ack(seg{flags: F, seq: irs + 1}), ts: 9},
		}},
		{"retransmitted FIN, old TS", []twStep{{after: time.Second, s: ack(seg{flags: F, seq: irs + 1}), ts: -1}}},
		{"pure ACK", []twStep{{s: ack(seg{seq: nxt}), ts: 1}}},
		{"ACK of unsent", []twStep{{s: seg{flags: A, seq: nxt, ack: iss + 100}}}},
		{"ancient ACK", []twStep{{s: seg{flags: A, seq: nxt, ack: iss.Sub(100000)}}}},
		{"window grows, then an old ACK", []twStep{
			{s: seg{flags: A, seq: nxt, ack: iss + 2, win: 60000}},
			{s: seg{flags: A, seq: nxt, ack: (iss + 2).Sub(20000)}},
		}},
		{"no ACK bit", []twStep{{s: seg{seq: nxt}}}},
		{"data", []twStep{{s: ack(seg{seq: nxt, data: []byte("late")}), ts: 2}}},
		{"old data", []twStep{{s: ack(seg{seq: irs - 10, data: []byte("dup")})}}},
		{"out of window", []twStep{{s: ack(seg{seq: nxt + 1<<30, data: []byte("x")})}}},
		{"PAWS: old TS with data", []twStep{{s: ack(seg{seq: nxt, data: []byte("x")}), ts: -10}}},
		{"PAWS: old TS, RST", []twStep{{s: seg{flags: R, seq: nxt}, ts: -10}}},
		{"second FIN at RCV.NXT", []twStep{{after: time.Second, s: ack(seg{flags: F, seq: nxt}), ts: 3}}},
		{"FIN beyond RCV.NXT", []twStep{{s: ack(seg{flags: F, seq: nxt + 10, data: []byte("ab")})}}},
		{"old SYN,FIN straddling RCV.NXT", []twStep{{s: seg{flags: S | F, seq: irs + 1}}}},
		{"old SYN,ACK,FIN straddling RCV.NXT", []twStep{{s: ack(seg{flags: S | F, seq: irs + 1}), ts: 1}}},
		{"old SYN with data straddling", []twStep{{s: ack(seg{flags: S, seq: irs + 1, data: []byte("xy")})}}},
		{"mixed", []twStep{
			{s: seg{flags: R, seq: nxt}},
			{after: time.Second, s: seg{flags: S, seq: nxt}, ts: 1},
			{after: 10 * time.Second, s: ack(seg{flags: F, seq: irs + 1}), ts: 2},
			{after: 59 * time.Second, s: ack(seg{seq: nxt}), ts: 3},
			{after: time.Millisecond, s: ack(seg{seq: nxt + 1<<20, data: []byte("z")}), ts: 4},
		}},
	}
	for _, v := range variants {
		for _, sc := range scenarios {
			t.Run(v.name+"/"+sc.name, func(t *testing.T) {
				tc := v.make(t, v.mods...)
				rec := tc.c.TimeWaitRecord()
				if rec.ID() != tc.c.ID() {
					t.Fatalf("record tuple %v, want %v", rec.ID(), tc.c.ID())
				}
				if !rec.Expiry().Equal(tc.c.Deadline()) {
					t.Fatalf("record expires at %v, the Conn at %v", rec.Expiry(), tc.c.Deadline())
				}
				if rec.NextISS() != tc.c.NextISS() {
					t.Fatalf("NextISS: record %v, Conn %v", rec.NextISS(), tc.c.NextISS())
				}
				closed := false
				for i, st := range sc.steps {
					tc.now = tc.now.Add(st.after)
					s := st.s
					if v.ts {
						s.opts.HasTimestamps = true
						s.opts.TSVal = uint32(200 + st.ts)
					}
					in := Segment{Seq: s.seq, Ack: s.ack, Flags: s.flags, Window: tc.peerWin, Options: s.opts, Payload: s.data}
					if s.win != 0 {
						in.Window = uint16(s.win)
					}
					step := fmt.Sprintf("step %d %s", i, in.String())
					if closed {
						break
					}
					if got, want := rec.Reopen(&in), tc.c.TimeWaitReopen(&in); got != want {
						t.Errorf("%s: record reopens %v, Conn %v", step, got, want)
					}
					var out []Segment
					recIn := in
					var recDrop DropReason
					closed, recDrop = rec.HandleSegmentDrop(tc.now, &recIn, func(s *Segment) {
						cp := *s
						cp.Payload = append([]byte(nil), s.Payload...)
						out = append(out, cp)
					})
					tc.out = nil
					tc.drops = nil
					tc.c.HandleSegment(tc.now, &in)
					connDrop := DropNone
					if len(tc.drops) > 0 {
						connDrop = tc.drops[0]
					}
					if len(tc.drops) > 1 || recDrop != connDrop {
						t.Errorf("%s: record drops it as %v, Conn as %v", step, recDrop, tc.drops)
					}
					if len(out) != len(tc.out) {
						t.Fatalf("%s: record sent %v, Conn %v", step, out, tc.out)
					}
					for j := range out {
						a, b := out[j], tc.out[j]
						if a.String() != b.String() || a.Options != b.Options {
							t.Errorf("%s: record sent %v, Conn %v", step, a.String(), b.String())
						}
					}
					if want := tc.c.State() == Closed; closed != want {
						t.Fatalf("%s: record closed %v, Conn in %v", step, closed, tc.c.State())
					}
					if !closed && !rec.Expiry().Equal(tc.c.Deadline()) {
						t.Errorf("%s: record expires at %v, the Conn at %v", step, rec.Expiry(), tc.c.Deadline())
					}
				}
			})
		}
	}
}

func TestTimeWaitRecordTSVal(t *testing.T) {
	tc := newTimeWaitTS(t)
	rec := tc.c.TimeWaitRecord()
	for _, d := range []time.Duration{0, time.Millisecond / 2, 1234567 * time.Microsecond, 59 * time.Second} {
		now := tc.now.Add(d)
		if got, want := rec.TSVal(now), tc.c.tsNow(now); got != want {
			t.Errorf("at +%v: record TSval %d, Conn %d", d, got, want)
		}
	}
}

// Our timestamp clock runs on across connections of a 4-tuple, so a new
// incarnation's TSvals are newer than its predecessor's (RFC 6191, and what
// TIME-WAIT reuse for active opens relies on).
func TestTimestampClockAcrossIncarnations(t *testing.T) {
	tc := newTimeWaitTS(t)
	rec := tc.c.TimeWaitRecord()
	old := rec.TSVal(tc.now)
	next := newTC(t, withOptions)
	next.cfg.ISN = tc.cfg.ISN
	next.c.Connect(tc.now.Add(time.Second))
	syn := next.want("SYN", seg{flags: S, seq: iss})
	if d := int32(syn.Options.TSVal - old); d < 1000 {
		t.Errorf("new incarnation's TSval %d is not a second past the old one's %d", syn.Options.TSVal, old)
	}
}

func TestTimeWaitRecordReusable(t *testing.T) {
	tc := newTimeWaitTS(t)
	rec := tc.c.TimeWaitRecord()
	if rec.Reusable(tc.now.Add(999*time.Millisecond), time.Second) {
		t.Error("reusable before a second in TIME-WAIT")
	}
	if !rec.Reusable(tc.now.Add(time.Second), time.Second) {
		t.Error("not reusable after a second in TIME-WAIT with timestamps")
	}
	if rec.Reusable(tc.now, 0) || !rec.Reusable(tc.now.Add(time.Millisecond), 0) {
		t.Error("reusable within the millisecond of entering TIME-WAIT")
	}
	plain := newTimeWait(t)
	r2 := plain.c.TimeWaitRecord()
	if r2.Reusable(plain.now.Add(time.Minute), time.Second) {
		t.Error("reusable without timestamps")
	}
	if !rec.Entered().Equal(tc.now) {
		t.Errorf("entered %v, want %v", rec.Entered(), tc.now)
	}
	if n := rec.NextISS(); !n.GreaterThan(iss+2) || n.Sub(128000) != seqnum.Value(iss+2) {
		t.Errorf("NextISS %d", n)
	}
}

// An old SYN straddling RCV.NXT (a SYN,FIN whose FIN lands at RCV.NXT)
// is not trimmed down to its FIN: RFC 5961 section 4.2, which RFC 9293
// 3.10.7.4 "fourth" adopts, answers a SYN in a synchronized state with a
// challenge ACK "irrespective of the sequence number", ahead of the
// general "only the new parts are processed" of the first step. The
// FreeBSD packetdrill suite checks exactly this
// (rcv-syn-fin-time-wait-*-outside-left-secure-nodrop).
func TestTimeWaitOldSYNStraddlingGetsChallengeACK(t *testing.T) {
	tc := newTimeWait(t)
	tc.advance(time.Second)
	tc.in(seg{flags: S | F, seq: irs + 1})
	tc.want("challenge ACK", seg{flags: A, seq: iss + 2, ack: irs + 2})
	tc.wantDeadlineIn("2MSL goes on: the FIN was not taken", 2*DefaultMSL-time.Second)
	tc.wantState("still TIME-WAIT", TimeWait)
}

// With RFC 793's rule a SYN resets only when it is in the window. An old
// SYN before RCV.NXT whose FIN reaches the window is not: it is
// acknowledged and dropped, and TIME-WAIT goes on (FreeBSD suite,
// rcv-syn-fin-time-wait-*-outside-left-insecure-nodrop).
func TestTimeWaitOldSYNStraddlingRFC793(t *testing.T) {
	tc := newTimeWait(t, func(c *Config) { c.RFC793SYN = true })
	tc.in(seg{flags: S | F, seq: irs + 1})
	tc.want("only an ACK: the SYN lies before the window", seg{flags: A, seq: iss + 2, ack: irs + 2})
	tc.wantState("still TIME-WAIT", TimeWait)
	rec := newTimeWait(t, func(c *Config) { c.RFC793SYN = true })
	r := rec.c.TimeWaitRecord()
	var out []Segment
	if closed := r.HandleSegment(rec.now, &Segment{Flags: S | F, Seq: irs + 1, Window: 8192}, func(s *Segment) { out = append(out, *s) }); closed {
		t.Fatal("the record reset on a SYN before the window")
	}
	if len(out) != 1 || out[0].Flags != A || out[0].Ack != irs+2 {
		t.Fatalf("record sent %v, want one ACK of %d", out, irs+2)
	}
}

// The same rule in ESTABLISHED: an old SYN straddling RCV.NXT is not an
// error under RFC 793; one in the window is.
func TestRFC793SYNOnlyInWindowResets(t *testing.T) {
	tc := newEstablished(t, func(c *Config) { c.RFC793SYN = true })
	tc.in(seg{flags: S, seq: irs, data: []byte("xy")})
	tc.want("an old SYN reaching into the window is acknowledged", seg{flags: A, seq: iss + 1, ack: irs + 1})
	tc.wantState("not reset", Established)
	tc.in(seg{flags: S, seq: irs + 5})
	tc.want("a SYN in the window resets (RFC 793)", seg{flags: R, seq: iss + 1})
	tc.wantState("reset", Closed)
}

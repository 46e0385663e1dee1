package tcp

import (
	"encoding/json"
	"testing"
)

func withRFC793SYN(c *Config) { c.RFC793SYN = true }

// TestDropReasons drives every drop reason with one segment: the Conn
// counts it under that reason alone, reports it to its DropSink, and sends
// only what the RFC answers such a segment with.
func TestDropReasons(t *testing.T) {
	nothing := []seg(nil)
	tests := []struct {
		reason DropReason
		make   func(*testing.T, ...func(*Config)) *tconn
		mods   []func(*Config)
		in     seg
		want   []seg // nil: nothing sent
		state  State // after; 0 (CLOSED) is checked too
	}{
		{DropClosed, newTC, nil, seg{flags: A, seq: irs, ack: 777},
			[]seg{{flags: R, seq: 777}}, Closed},
		{DropListenRST, newListen, nil, seg{flags: R, seq: irs}, nothing, Listen},
		{DropListenACK, newListen, nil, seg{flags: A, seq: irs, ack: 777},
			[]seg{{flags: R, seq: 777}}, Listen},
		{DropListenNoSYN, newListen, nil, seg{flags: F, seq: irs}, nothing, Listen},
		{DropSynSentBadACK, newSynSent, nil, seg{flags: S | A, seq: irs, ack: iss + 5},
			[]seg{{flags: R, seq: iss + 5}}, SynSent},
		{DropSynSentRSTNoACK, newSynSent, nil, seg{flags: R, seq: irs}, nothing, SynSent},
		{DropSynSentNoSYN, newSynSent, nil, seg{flags: A, seq: irs, ack: iss + 1}, nothing, SynSent},
		{DropSYNRetransmit, newSynReceived, nil, seg{flags: S, seq: irs},
			[]seg{{flags: S | A, seq: iss, ack: irs + 1}}, SynReceived},
		{DropSynRecvBadACK, newSynReceived, nil, seg{flags: A, seq: irs + 1, ack: iss + 5},
			[]seg{{flags: R, seq: iss + 5}}, SynReceived},
		{DropSynRecvSYN, newSynReceived, nil, seg{flags: S, seq: irs + 10}, nothing, Listen},
		{DropTimeWaitRST, newTimeWait, nil, seg{flags: R, seq: irs + 2}, nothing, TimeWait},
		{DropPAWS, newEstablishedTS, nil, seg{flags: A, seq: irs + 1, ack: iss + 1, data: []byte("old"), opts: tsOpt(499, 0)},
			[]seg{{flags: A, seq: iss + 1, ack: irs + 1}}, Established},
		{DropOutOfWindow, newEstablished, nil, seg{flags: A, seq: irs + 1 + 100000, ack: iss + 1, data: []byte("far")},
			[]seg{{flags: A, seq: iss + 1, ack: irs + 1}}, Established},
		{DropOutOfWindow, newEstablished, nil, seg{flags: A, seq: irs - 10, ack: iss + 1, data: []byte("old")},
			[]seg{{flags: A, seq: iss + 1, ack: irs + 1}}, Established},
		{DropRSTOutOfWindow, newEstablished, nil, seg{flags: R, seq: irs + 100000}, nothing, Established},
		{DropRSTInWindowChallenge, newEstablished, nil, seg{flags: R, seq: irs + 10},
			[]seg{{flags: A, seq: iss + 1, ack: irs + 1}}, Established},
		{DropSYNInWindowChallenge, newEstablished, nil, seg{flags: S, seq: irs + 10},
			[]seg{{flags: A, seq: iss + 1, ack: irs + 1}}, Established},
		{DropSYNInWindowReset, newEstablished, []func(*Config){withRFC793SYN}, seg{flags: S, seq: irs + 10},
			[]seg{{flags: R, seq: iss + 1}}, Closed},
		{DropSYNBeforeWindow, newEstablished, []func(*Config){withRFC793SYN}, seg{flags: S, seq: irs, data: []byte("ab")},
			[]seg{{flags: A, seq: iss + 1, ack: irs + 1}}, Established},
		{DropNoACK, newEstablished, nil, seg{flags: P, seq: irs + 1, data: []byte("x")}, nothing, Established},
		{DropACKUnsent, newEstablished, nil, seg{flags: A, seq: irs + 1, ack: iss + 100},
			[]seg{{flags: A, seq: iss + 1, ack: irs + 1}}, Established},
		{DropACKTooOld, newEstablished, nil, seg{flags: A, seq: irs + 1, ack: (iss + 1).Sub(8192 + 1)},
			[]seg{{flags: A, seq: iss + 1, ack: irs + 1}}, Established},
	}
	covered := map[DropReason]bool{}
	for _, tt := range tests {
		covered[tt.reason] = true
		t.Run(tt.reason.String(), func(t *testing.T) {
			tc := tt.make(t, tt.mods...)
			tc.drain()
			tc.drops = nil
			before := tc.c.Stats().Drops
			tc.in(tt.in)
			after := tc.c.Stats().Drops
			for r := range NumDropReasons {
				want := before[r]
				if r == tt.reason {
					want++
				}
				if after[r] != want {
					t.Errorf("Drops[%v] = %d, want %d", r, after[r], want)
				}
			}
			if len(tc.drops) != 1 || tc.drops[0] != tt.reason {
				t.Errorf("DropSink heard %v, want [%v]", tc.drops, tt.reason)
			}
			for _, w := range tt.want {
				tc.want("the RFC's answer to a "+tt.reason.String()+" drop", w)
			}
			tc.wantNothing("nothing more")
			tc.wantState("after the drop", tt.state)
		})
	}
	for _, r := range DropReasons() {
		if !covered[r] {
			t.Errorf("no case drives %v", r)
		}
	}
}

func TestDropReasonNames(t *testing.T) {
	seen := map[string]DropReason{}
	for r := range NumDropReasons {
		name := r.String()
		if name == "" || name == "unknown" {
			t.Errorf("reason %d has no name", r)
		}
		for _, ch := range name {
			if (ch < 'a' || ch > 'z') && ch != '_' {
				t.Errorf("%q is not snake_case", name)
				break
			}
		}
		if o, dup := seen[name]; dup {
			t.Errorf("%v and %v are both %q", o, r, name)
		}
		seen[name] = r
	}
	if NumDropReasons.String() != "unknown" {
		t.Errorf("NumDropReasons.String() = %q", NumDropReasons.String())
	}
}

// A segment that is taken is no drop: a whole exchange counts none.
func TestNoDropsOnAHealthyExchange(t *testing.T) {
	tc := newEstablished(t)
	tc.in(seg{flags: A | P, seq: irs + 1, ack: iss + 1, data: []byte("hello")})
	tc.write([]byte("world"))
	tc.in(seg{flags: A, seq: irs + 6, ack: iss + 6})
	tc.c.Close(tc.now)
	tc.in(seg{flags: F | A, seq: irs + 6, ack: iss + 7})
	tc.wantState("closed through TIME-WAIT", TimeWait)
	if d := tc.c.Stats().Drops; d.Total() != 0 || len(tc.drops) != 0 {
		t.Fatalf("drops %v (%v) on a healthy exchange", d, tc.drops)
	}
}

func TestDropCountsJSON(t *testing.T) {
	var d DropCounts
	d[DropPAWS], d[DropACKTooOld] = 3, 1<<40
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]uint64
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if len(m) != int(NumDropReasons)-1 || m["paws"] != 3 || m["ack_too_old"] != 1<<40 || m["out_of_window"] != 0 {
		t.Fatalf("DropCounts as JSON: %s", b)
	}
	var back DropCounts
	if err := json.Unmarshal(b, &back); err != nil || back != d {
		t.Fatalf("round trip: %v, %v; want %v", back, err, d)
	}
	if r, ok := ParseDropReason("syn_in_window_challenge"); !ok || r != DropSYNInWindowChallenge {
		t.Fatalf("ParseDropReason = %v, %v", r, ok)
	}
}

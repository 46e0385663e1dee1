package tcp

import (
	"testing"

	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/wire"
)

// Issue 10's leftover: two duplicate ACKs overtake each other on the way.
// The receiver's TSval grows from one to the next, so the one that comes
// second is older than TS.Recent and failed PAWS (RFC 7323 5.3): it was
// dropped as an old duplicate, answered with an ACK, and what it said (a
// duplicate ACK, its SACK blocks) was lost. A pure duplicate ACK at
// RCV.NXT with the window in force and a TSval within an RTO of
// TS.Recent is accepted now (disorderedACK), as Linux does.
func TestPAWSAcceptsReorderedPureACK(t *testing.T) {
	// Each case sends 3000 bytes in a few segments, then the peer's ACK
	// with TSval 530, then the late one with late's fields.
	type late struct {
		name   string
		tsval  uint32
		win    int
		data   []byte
		accept bool
	}
	sackOf := func(s Segment) wire.TCPOptions {
		o := tsOpt(0, s.Options.TSVal)
		o.NumSACK, o.SACKBlocks[0] = 1, wire.SACKBlock{Start: s.Seq, End: s.Seq.Add(seqnum.Size(len(s.Payload)))}
		return o
	}
	for _, c := range []late{
		{name: "a reordered duplicate ACK", tsval: 4990, accept: true},
		{name: "a TSval further behind than the RTO", tsval: 5000 - 1500},
		{name: "a different window", tsval: 4990, win: 4096},
		{name: "data", tsval: 4990, data: []byte("x")},
	} {
		t.Run(c.name, func(t *testing.T) {
			tc := newEstablishedTS(t)
			tc.write(payload(3000, 'a'))
			sent := tc.drain()
			if len(sent) < 3 {
				t.Fatalf("%d segments, want at least 3", len(sent))
			}
			last := sent[len(sent)-1]
			o := tsOpt(5000, sent[0].Options.TSVal)
			tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1, opts: o})
			tc.wantNothing("a duplicate ACK")
			lateOpts := sackOf(last)
			lateOpts.TSVal = c.tsval
			tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1, opts: lateOpts, win: c.win, data: c.data})
			st := tc.c.Stats()
			if c.accept {
				if st.Drops[DropPAWS] != 0 {
					t.Fatal("the reordered ACK was dropped by PAWS")
				}
				// Its SACK block may well start recovery; what must not go
				// out is PAWS's answer, a pure ACK.
				for _, o := range tc.drain() {
					if len(o.Payload) == 0 {
						t.Fatalf("%s sent in answer to an accepted duplicate ACK", o.String())
					}
				}
				if got := tc.c.Info().SACKedBytes; got != len(last.Payload) {
					t.Fatalf("SACKed %d bytes, want the late ACK's block (%d)", got, len(last.Payload))
				}
				if tc.c.tsRecent != 5000 {
					t.Fatalf("TS.Recent %d, want 5000: a late TSval never moves it back", tc.c.tsRecent)
				}
				return
			}
			if st.Drops[DropPAWS] != 1 {
				t.Fatalf("PAWS drops %d, want 1", st.Drops[DropPAWS])
			}
			tc.want("answered as PAWS says", seg{flags: A, seq: iss + 3001, ack: irs + 1})
		})
	}
}

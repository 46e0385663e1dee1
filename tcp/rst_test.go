package tcp

import (
	"testing"
	"time"

	"github.com/synack/synack/wire"
)

// Reset processing: RFC 9293 3.5.2 and 3.5.3, RFC 5961 sections 3 to 5 and
// 7, and the RFC 793 behaviour behind Config.RFC793Reset/RFC793SYN.

func TestRSTAtRCVNXTResets(t *testing.T) {
	for name, mk := range map[string]func(*testing.T, ...func(*Config)) *tconn{
		"established": newEstablished, "fin-wait-1": newFinWait1, "fin-wait-2": newFinWait2,
	} {
		t.Run(name, func(t *testing.T) {
			tc := mk(t)
			tc.in(seg{flags: R, seq: irs + 1})
			tc.wantNothing("an RST is never answered")
			tc.wantState("RST exactly at RCV.NXT resets", Closed)
			tc.wantTransition(tc.events[len(tc.events)-1].From, Closed, RcvRST)
			tc.wantErr("reset", ErrReset)
		})
	}
}

func TestRSTInWindowChallengeACK(t *testing.T) {
	tc := newEstablished(t)
	tc.in(seg{flags: R, seq: irs + 2})
	tc.want("RST in the window but not at RCV.NXT: challenge ACK", seg{flags: A, seq: iss + 1, ack: irs + 1})
	tc.wantState("not reset", Established)
	tc.in(seg{flags: R | A, seq: irs + 16000, ack: iss + 1})
	tc.want("near the right edge too", seg{flags: A, seq: iss + 1, ack: irs + 1})
	if tc.c.Stats().ChallengeACKs != 2 {
		t.Fatalf("ChallengeACKs = %d, want 2", tc.c.Stats().ChallengeACKs)
	}
}

func TestRSTOutOfWindowDropped(t *testing.T) {
	tc := newEstablished(t)
	for _, sq := range []uint32{uint32(irs), uint32(irs) + 1 + 16384, uint32(irs) + 1<<31} {
		tc.in(seg{flags: R, seq: seqv(sq)})
		tc.wantNothing("RST out of the window is dropped silently")
	}
	tc.wantState("not reset", Established)
}

func TestRFC793ResetMode(t *testing.T) {
	tc := newEstablished(t, func(c *Config) { c.RFC793Reset = true })
	tc.in(seg{flags: R, seq: irs + 500})
	tc.wantNothing("RFC 793: no challenge")
	tc.wantState("any RST in the window resets", Closed)
	tc.wantErr("reset", ErrReset)

	tc = newEstablished(t, func(c *Config) { c.RFC793Reset = true })
	tc.in(seg{flags: R, seq: irs + 1 + 16384})
	tc.wantState("but not one outside it", Established)
}

func TestSYNInSynchronizedStateChallengeACK(t *testing.T) {
	for name, mk := range map[string]func(*testing.T, ...func(*Config)) *tconn{
		"established": newEstablished, "fin-wait-2": newFinWait2, "close-wait": newCloseWait,
	} {
		t.Run(name, func(t *testing.T) {
			tc := mk(t)
			i := tc.c.Info()
			for _, sq := range []seqv32{seqv32(irs + 1), seqv32(irs + 300), seqv32(irs.Sub(3000))} {
				tc.in(seg{flags: S, seq: seqv(uint32(sq))})
				tc.want("RFC 5961 4.2: SYN anywhere gets a challenge ACK", seg{flags: A, seq: i.SndNxt, ack: i.RcvNxt})
			}
			tc.wantState("not reset", i.State)
		})
	}
}

type seqv32 uint32

func TestRFC793SYNMode(t *testing.T) {
	tc := newEstablished(t, func(c *Config) { c.RFC793SYN = true })
	tc.in(seg{flags: S, seq: irs + 10})
	tc.want("RFC 793: a SYN in the window is answered with RST", seg{flags: R, seq: iss + 1})
	tc.wantState("and resets", Closed)
	tc.wantErr("reset", ErrReset)
}

func TestChallengeACKRateLimit(t *testing.T) {
	tc := newEstablished(t, func(c *Config) { c.ChallengeACKLimit = 3 })
	for range 5 {
		tc.in(seg{flags: R, seq: irs + 10})
	}
	if n := len(tc.drain()); n != 3 {
		t.Fatalf("%d challenge ACKs in one second, want 3 (RFC 5961 7)", n)
	}
	if tc.c.Stats().ChallengeACKsLimited != 2 {
		t.Fatalf("ChallengeACKsLimited = %d, want 2", tc.c.Stats().ChallengeACKsLimited)
	}
	tc.now = tc.now.Add(time.Second)
	tc.in(seg{flags: S, seq: irs + 10})
	tc.want("a new second, a new budget", seg{flags: A, seq: iss + 1, ack: irs + 1})
}

func TestACKAcceptability(t *testing.T) {
	// RFC 5961 5.2: (SND.UNA - MAX.SND.WND) =< SEG.ACK =< SND.NXT.
	tc := newEstablished(t, withNoDelay)
	tc.write([]byte("0123456789"))
	tc.want("data", seg{flags: A | P, seq: iss + 1, ack: irs + 1, len: 10})
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 12, data: []byte("x")})
	tc.want("ACK of unsent data: ACK and drop", seg{flags: A, seq: iss + 11, ack: irs + 1})
	if tc.c.Readable() != 0 {
		t.Fatal("the text of a segment with a bad ACK was taken")
	}
	tc.in(seg{flags: A, seq: irs + 1, ack: iss.Sub(8192 + 1), data: []byte("x")})
	tc.want("ACK older than MAX.SND.WND behind SND.UNA: ACK and drop", seg{flags: A, seq: iss + 11, ack: irs + 1})
	if tc.c.Readable() != 0 {
		t.Fatal("the text of a segment with a too old ACK was taken")
	}
	tc.in(seg{flags: A, seq: irs + 1, ack: iss.Sub(100), data: []byte("y")})
	if tc.c.Readable() != 1 {
		t.Fatal("an old ACK within MAX.SND.WND is a duplicate: the text is taken")
	}
	if tc.c.Info().SndUna != iss+1 {
		t.Fatal("SND.UNA moved backwards")
	}
}

func TestSegmentWithoutACKDropped(t *testing.T) {
	tc := newEstablished(t)
	tc.in(seg{flags: P, seq: irs + 1, data: []byte("noack")})
	tc.wantNothing("fifth: ACK bit off, drop")
	if tc.c.Readable() != 0 {
		t.Fatal("text without ACK taken")
	}
}

func TestClosedAnswersWithRST(t *testing.T) {
	tc := newTC(t)
	tc.in(seg{flags: A, seq: 77, ack: 1234})
	tc.want("CLOSED, ACK on: <SEQ=SEG.ACK><CTL=RST>", seg{flags: R, seq: 1234})
	tc.in(seg{flags: S, seq: 77})
	tc.want("CLOSED, ACK off: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>", seg{flags: R | A, seq: 0, ack: 78})
	tc.in(seg{flags: P | F, seq: 77, data: []byte("abc")})
	tc.want("data and FIN count in SEG.LEN", seg{flags: R | A, seq: 0, ack: 77 + 4})
	tc.in(seg{flags: R, seq: 77})
	tc.in(seg{flags: R | A, seq: 77, ack: 5})
	tc.wantNothing("an RST is never answered")
}

func TestResetFor(t *testing.T) {
	cases := []struct {
		in   Segment
		ok   bool
		want Segment
	}{
		{Segment{Seq: 10, Ack: 20, Flags: wire.ACK}, true, Segment{Seq: 20, Flags: wire.RST}},
		{Segment{Seq: 10, Flags: wire.SYN}, true, Segment{Seq: 0, Ack: 11, Flags: wire.RST | wire.ACK}},
		{Segment{Seq: 0xFFFFFFFF, Flags: wire.SYN | wire.FIN, Payload: []byte("ab")}, true, Segment{Ack: 3, Flags: wire.RST | wire.ACK}},
		{Segment{Seq: 10, Flags: wire.RST}, false, Segment{}},
		{Segment{Seq: 10, Ack: 3, Flags: wire.RST | wire.ACK}, false, Segment{}},
	}
	for _, c := range cases {
		got, ok := ResetFor(&c.in)
		if ok != c.ok || got.Seq != c.want.Seq || got.Ack != c.want.Ack || got.Flags != c.want.Flags {
			t.Errorf("ResetFor(%v) = %v, %v; want %v, %v", c.in.String(), got.String(), ok, c.want.String(), c.ok)
		}
	}
}

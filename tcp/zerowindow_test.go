package tcp

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// After a zero-window probe, SND.NXT is one past the peer's RCV.NXT while
// its RCV.WND is 0. With a zero window the peer accepts a segment of no
// length only at SEG.SEQ = RCV.NXT (RFC 9293 3.10.7.4, first), so the ACKs
// and RSTs we send then must carry SND.UNA, the right edge of its window
// (acceptableSeq), not SND.NXT.

// probedZeroWindow is an ESTABLISHED connection that has sent one
// zero-window probe: the peer, at RCV.NXT = iss+1 with a zero window, did
// not take its byte.
func probedZeroWindow(t *testing.T, mods ...func(*Config)) *tconn {
	t.Helper()
	tc := newEstablishedMSS(t, 1000, append([]func(*Config){withNoDelay}, mods...)...)
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1, zeroWin: true})
	tc.write([]byte("abc"))
	tc.wantNothing("zero window")
	tc.advanceToDeadline()
	tc.want("probe", seg{flags: A, seq: iss + 1, ack: irs + 1, data: []byte("a")})
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1, zeroWin: true})
	tc.wantNothing("the probe's byte found no room; its answer needs none")
	return tc
}

// peerAccepts is the peer's acceptability test for a segment of ours of
// no length: its RCV.NXT is iss+1 and its window zero.
func peerAccepts(t *testing.T, why string, s Segment) {
	t.Helper()
	if !segAcceptable(s.Seq, 0, iss+1, 0) {
		t.Fatalf("%s: %v has SEQ %d; the peer, with RCV.NXT %d and a zero window, drops it", why, s.String(), s.Seq, iss+1)
	}
}

func TestZeroWindowProbeThenACKAcceptable(t *testing.T) {
	tc := probedZeroWindow(t)

	// Data from the peer, acknowledged when the delayed ACK runs out.
	tc.in(seg{flags: A | P, seq: irs + 1, ack: iss + 1, zeroWin: true, data: payload(100, 1)})
	tc.advance(time.Second)
	ack := tc.want("delayed ACK of the peer's data", seg{flags: A, seq: iss + 1, ack: irs + 101})
	peerAccepts(t, "delayed ACK", ack)

	// An old duplicate, answered at once.
	tc.in(seg{flags: A | P, seq: irs + 1, ack: iss + 1, zeroWin: true, data: payload(100, 1)})
	ack = tc.want("ACK of a duplicate", seg{flags: A, seq: iss + 1, ack: irs + 101})
	peerAccepts(t, "ACK of a duplicate", ack)

	// The window opens: sending resumes at SND.UNA with the probe's byte,
	// and ACKs are back at SND.NXT.
	tc.in(seg{flags: A, seq: irs + 101, ack: iss + 1, win: 1000})
	tc.want("the window opens", seg{flags: A | P, seq: iss + 1, ack: irs + 101, data: []byte("abc")})
	tc.in(seg{flags: A | P, seq: irs + 101, ack: iss + 1, win: 1000, data: payload(10, 2)})
	tc.advance(time.Second)
	tc.want("an ACK in an open window carries SND.NXT", seg{flags: A, seq: iss + 4, ack: irs + 111})
}

func TestZeroWindowProbeThenAbortRSTAcceptable(t *testing.T) {
	tc := probedZeroWindow(t)
	tc.c.Abort(tc.now)
	rst := tc.want("ABORT sends a RST", seg{flags: R, seq: iss + 1})
	// RFC 5961 section 3.2: the peer resets only on SEG.SEQ = RCV.NXT
	// exactly; with its zero window nothing else is even acceptable.
	peerAccepts(t, "RST of ABORT", rst)
	tc.wantState("aborted", Closed)
}

func TestZeroWindowProbeThenReleaseRSTAcceptable(t *testing.T) {
	tc := probedZeroWindow(t)
	tc.c.Release(tc.now, true) // linger 0
	rst := tc.want("closing with linger 0 sends a RST", seg{flags: R, seq: iss + 1})
	peerAccepts(t, "RST of a linger-0 close", rst)
}

func TestZeroWindowProbesGiveUpRSTAcceptable(t *testing.T) {
	// The peer stops answering probes: after MaxRetransmits of them the
	// connection ends with a RST the peer must still take.
	tc := probedZeroWindow(t, func(c *Config) { c.MaxRetransmits = 3 })
	var rst Segment
	for range 10 {
		tc.advanceToDeadline()
		s, ok := tc.next("")
		if !ok {
			t.Fatal("a timer ran and sent nothing")
		}
		if s.Flags&R != 0 {
			rst = s
			break
		}
		if s.Seq != iss+1 || len(s.Payload) != 1 {
			t.Fatalf("want a probe at %d, got %v", iss+1, s.String())
		}
	}
	if rst.Flags&R == 0 {
		t.Fatal("no RST after unanswered probes")
	}
	peerAccepts(t, "RST after unanswered probes", rst)
	tc.wantState("given up", Closed)
}

func TestZeroWindowProbeThenOrphanRSTAcceptable(t *testing.T) {
	// An orphan (closed by its owner) that has spent OrphanRetries probes
	// is reset; the peer answers the probes but never reads.
	tc := probedZeroWindow(t, func(c *Config) { c.OrphanRetries = 2 })
	tc.c.Release(tc.now, false)
	var rst Segment
	for range 10 {
		tc.advanceToDeadline()
		s, ok := tc.next("")
		if !ok {
			t.Fatal("a timer ran and sent nothing")
		}
		if s.Flags&R != 0 {
			rst = s
			break
		}
		tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1, zeroWin: true})
	}
	if rst.Flags&R == 0 {
		t.Fatal("the orphan was not reset")
	}
	peerAccepts(t, "RST of an orphan", rst)
}

func TestInvalidACKRateLimit(t *testing.T) {
	tc := newEstablished(t)
	old := seg{flags: A, seq: irs - 100, ack: iss + 1} // left of the window, no data
	tc.in(old)
	tc.want("an unacceptable segment is answered", seg{flags: A, seq: iss + 1, ack: irs + 1})
	tc.now = tc.now.Add(100 * time.Millisecond)
	tc.in(old)
	tc.wantNothing("a second pure ACK within 500 ms is not")
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 100}) // acknowledges nothing sent
	tc.wantNothing("nor an ACK of unsent data within 500 ms")
	tc.in(seg{flags: A | P, seq: irs - 100, ack: iss + 1, data: payload(10, 0)})
	tc.want("old data is always answered: its sender needs the ACK", seg{flags: A, seq: iss + 1, ack: irs + 1})
	if got := tc.c.Stats().InvalidACKsLimited; got != 2 {
		t.Fatalf("InvalidACKsLimited %d, want 2", got)
	}
	if got := tc.c.Stats().UnacceptableSegs; got != 3 {
		t.Fatalf("UnacceptableSegs %d, want 3 (the limited ones are still dropped and counted)", got)
	}
	tc.now = tc.now.Add(400 * time.Millisecond)
	tc.in(old)
	tc.want("500 ms after the last answer, one more", seg{flags: A, seq: iss + 1, ack: irs + 1})

	tc = newEstablished(t, func(c *Config) { c.NoInvalidACKLimit = true })
	for range 3 {
		tc.in(old)
		tc.want("NoInvalidACKLimit: every one answered", seg{flags: A, seq: iss + 1, ack: irs + 1})
	}
	tc = newEstablished(t, func(c *Config) { c.InvalidACKInterval = 50 * time.Millisecond })
	tc.in(old)
	tc.want("first", seg{flags: A, seq: iss + 1, ack: irs + 1})
	tc.now = tc.now.Add(50 * time.Millisecond)
	tc.in(old)
	tc.want("InvalidACKInterval 50 ms", seg{flags: A, seq: iss + 1, ack: irs + 1})
}

// fifoWire is a wire2 that neither loses nor reorders: every segment
// takes 10 ms, so that nothing is dropped for arriving late.
type fifoWire struct{ *wire2 }

func (w fifoWire) SendSegment(c *Conn, s *Segment) {
	cp := *s
	cp.Payload = append([]byte(nil), s.Payload...)
	w.n++
	w.q = append(w.q, packet{at: w.now.Add(10 * time.Millisecond), n: w.n, to: w.peer[c], seg: cp})
}

// Two connections write and neither reads: both windows close and both
// probe. Each must keep taking the other's ACKs: no ACK is unacceptable,
// and no ACKs go back and forth between probes (the issue: each answered
// the other's ACK, sent at SND.NXT past the zero window, with another such
// ACK, without end).
func TestZeroWindowBothWaysNoACKPingPong(t *testing.T) {
	for _, limit := range []bool{false, true} {
		w := fifoWire{&wire2{rng: rand.New(rand.NewPCG(1, 2)), now: epoch,
			peer: map[*Conn]*Conn{}, history: map[*Conn][]Transition{}}}
		mk := func(isn uint32) *Config {
			return &Config{ISN: FixedISN(isn), ReceiveBufferSize: 16 << 10, SendBufferSize: 16 << 10,
				NoInvalidACKLimit: !limit}
		}
		a := netip.MustParseAddrPort("10.0.0.1:1234")
		b := netip.MustParseAddrPort("10.0.0.2:80")
		A := NewConn(mk(1000), Tuple{Local: a, Remote: b}, w)
		B := NewConn(mk(5000), Tuple{Local: b, Remote: a}, w)
		w.peer[A], w.peer[B] = B, A
		B.Listen(w.now)
		A.Connect(w.now)
		data := payload(1<<20, 5)
		offA, offB := 0, 0
		var atProbing int
		for w.now.Before(epoch.Add(10 * time.Minute)) {
			if n, _ := A.Write(w.now, data[offA:]); n > 0 {
				offA += n
			}
			if n, _ := B.Write(w.now, data[offB:]); n > 0 {
				offB += n
			}
			if atProbing == 0 && A.Stats().ZeroWindowProbes > 0 && B.Stats().ZeroWindowProbes > 0 {
				atProbing = w.n
			}
			if !w.step(A, B) {
				t.Fatalf("limit %v: nothing to do at %v", limit, w.now.Sub(epoch))
			}
		}
		if atProbing == 0 {
			t.Fatalf("limit %v: the windows never closed both ways", limit)
		}
		for _, c := range []*Conn{A, B} {
			st := c.Stats()
			if c.State() != Established {
				t.Fatalf("limit %v: %v %v (%v)", limit, c.id, c.State(), c.Err())
			}
			if n := st.Drops.Total(); n != 0 {
				t.Errorf("limit %v: %v dropped %d segments (%d as unacceptable), want none", limit, c.id, n, st.UnacceptableSegs)
			}
			if st.ZeroWindowProbes > 20 {
				t.Errorf("limit %v: %v sent %d zero-window probes in 10 minutes: no backoff", limit, c.id, st.ZeroWindowProbes)
			}
		}
		// In ten minutes each side probes about ten times with backoff (up
		// to 120 s apart) and each probe is answered once.
		sent := w.n - atProbing
		probes := int(A.Stats().ZeroWindowProbes + B.Stats().ZeroWindowProbes)
		t.Logf("limit %v: %d segments in 10 minutes once both probed, %d of them probes", limit, sent, probes)
		if sent > 2*probes+4 {
			t.Errorf("limit %v: %d segments for %d probes: ACKs go back and forth", limit, sent, probes)
		}
	}
}

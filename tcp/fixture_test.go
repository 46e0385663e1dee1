package tcp

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/wire"
)

// The fixture drives one Conn segment by segment, packetdrill style, with
// fixed sequence numbers: our ISS is 1000, the peer's is 5000.
const (
	iss seqnum.Value = 1000
	irs seqnum.Value = 5000
)

// Flag shorthands for readable segment literals.
const (
	S = wire.SYN
	A = wire.ACK
	F = wire.FIN
	R = wire.RST
	P = wire.PSH
)

var (
	localAP  = netip.MustParseAddrPort("198.18.0.2:80")
	remoteAP = netip.MustParseAddrPort("198.18.0.1:40000")
	epoch    = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
)

// seg is an expected or injected segment. Zero fields take the fixture's
// defaults: an injected segment gets the peer's window; an expectation
// checks flags, seq, ack and payload length always, and the window only
// when win is not zero (or zeroWin is set).
type seg struct {
	flags   wire.TCPFlags
	seq     seqnum.Value
	ack     seqnum.Value
	win     int
	zeroWin bool
	data    []byte
	opts    wire.TCPOptions
	anyLen  bool     // expectation: any payload length
	len     int      // expectation: payload length when data is nil
	ecn     wire.ECN // injected: the IP ECN field (RFC 3168) it arrives with
}

type tconn struct {
	t      *testing.T
	c      *Conn
	cfg    Config
	now    time.Time
	out    []Segment
	events []Transition
	drops  []DropReason // what the Conn reported to its DropSink
	// peerWin is the window injected segments carry by default.
	peerWin uint16
}

// SendSegment implements Sink: it keeps a copy of every segment.
func (tc *tconn) SendSegment(c *Conn, s *Segment) {
	cp := *s
	cp.Payload = append([]byte(nil), s.Payload...)
	tc.out = append(tc.out, cp)
}

// StateChanged implements Sink.
func (tc *tconn) StateChanged(c *Conn, t Transition) { tc.events = append(tc.events, t) }

// SegmentDropped implements DropSink.
func (tc *tconn) SegmentDropped(c *Conn, s *Segment, r DropReason) { tc.drops = append(tc.drops, r) }

// newTC makes a CLOSED connection. By default no options are offered, so
// segments are plain, Nagle's algorithm is on, as RFC 9293 3.7.4
// (SHLD-7) has it, though a zero Config turns it off, and quick-ACK mode
// is off, so that ACKs follow RFC 9293 3.8.6.3's delayed-ACK rule alone;
// a test that wants otherwise passes a config change (withOptions,
// withNoDelay, withQuickACK).
func newTC(t *testing.T, mods ...func(*Config)) *tconn {
	t.Helper()
	tc := &tconn{t: t, now: epoch, peerWin: 8192}
	tc.cfg = Config{
		ISN:               FixedISN(iss),
		MSS:               1000,
		NoWindowScale:     true,
		NoTimestamps:      true,
		NoSACK:            true,
		ReceiveBufferSize: 16384,
		SendBufferSize:    16384,
		MinRTO:            time.Second,
		Nagle:             true,
		NoQuickACK:        true,
	}
	for _, m := range mods {
		m(&tc.cfg)
	}
	tc.c = NewConn(&tc.cfg, Tuple{Local: localAP, Remote: remoteAP}, tc)
	return tc
}

func withOptions(c *Config) { c.NoWindowScale, c.NoTimestamps, c.NoSACK = false, false, false }

// withQuickACK turns quick-ACK mode on, with the default count.
func withQuickACK(c *Config) { c.NoQuickACK = false }

// in injects a segment from the peer.
func (tc *tconn) in(s seg) {
	tc.t.Helper()
	w := tc.peerWin
	if s.win != 0 {
		w = uint16(s.win)
	}
	if s.zeroWin {
		w = 0
	}
	tc.c.HandleSegment(tc.now, &Segment{Seq: s.seq, Ack: s.ack, Flags: s.flags, Window: w, Options: s.opts, Payload: s.data, ECN: s.ecn})
}

func (tc *tconn) next(why string) (Segment, bool) {
	if len(tc.out) == 0 {
		return Segment{}, false
	}
	s := tc.out[0]
	tc.out = tc.out[1:]
	return s, true
}

// want takes the next segment the connection sent and compares it.
func (tc *tconn) want(why string, w seg) Segment {
	tc.t.Helper()
	got, ok := tc.next(why)
	if !ok {
		tc.t.Fatalf("%s: want %s, got nothing (state %v)", why, fmtSeg(w), tc.c.State())
	}
	var bad []string
	if got.Flags != w.flags {
		bad = append(bad, "flags")
	}
	if got.Seq != w.seq {
		bad = append(bad, "seq")
	}
	if w.flags&A != 0 && got.Ack != w.ack {
		bad = append(bad, "ack")
	}
	if (w.win != 0 && int(got.Window) != w.win) || (w.zeroWin && got.Window != 0) {
		bad = append(bad, "win")
	}
	switch {
	case w.anyLen:
	case w.data != nil:
		if !bytes.Equal(got.Payload, w.data) {
			bad = append(bad, "data")
		}
	case len(got.Payload) != w.len:
		bad = append(bad, "len")
	}
	if len(bad) > 0 {
		tc.t.Fatalf("%s:\n  want %s\n  got  %s\n  (%s differ; state %v)", why, fmtSeg(w), got.String(), strings.Join(bad, ", "), tc.c.State())
	}
	return got
}

func fmtSeg(w seg) string {
	n := w.len
	if w.data != nil {
		n = len(w.data)
	}
	s := fmt.Sprintf("[%s] seq %d", w.flags, w.seq)
	if w.flags&A != 0 {
		s += fmt.Sprintf(" ack %d", w.ack)
	}
	if w.win != 0 {
		s += fmt.Sprintf(" win %d", w.win)
	}
	return s + fmt.Sprintf(" len %d", n)
}

// wantNothing checks that the connection sent nothing.
func (tc *tconn) wantNothing(why string) {
	tc.t.Helper()
	if len(tc.out) > 0 {
		tc.t.Fatalf("%s: want nothing sent, got %s (state %v)", why, tc.out[0].String(), tc.c.State())
	}
}

// wantState checks the connection's state.
func (tc *tconn) wantState(why string, s State) {
	tc.t.Helper()
	if got := tc.c.State(); got != s {
		tc.t.Fatalf("%s: state %v, want %v", why, got, s)
	}
}

// wantTransition checks the last state change and its cause.
func (tc *tconn) wantTransition(from, to State, cause Cause) {
	tc.t.Helper()
	if len(tc.events) == 0 {
		tc.t.Fatalf("want transition %v -> %v (%s), got none", from, to, cause)
	}
	e := tc.events[len(tc.events)-1]
	if e.From != from || e.To != to || (cause != NoCause && e.Cause != cause) {
		tc.t.Fatalf("last transition %v -> %v (%s), want %v -> %v (%s)", e.From, e.To, e.Cause, from, to, cause)
	}
}

// advance moves time forward by d, running every timer that falls due on
// the way, in order.
func (tc *tconn) advance(d time.Duration) {
	end := tc.now.Add(d)
	for {
		dl := tc.c.Deadline()
		if dl.IsZero() || dl.After(end) {
			break
		}
		tc.now = dl
		tc.c.HandleTimers(tc.now)
	}
	tc.now = end
}

// advanceToDeadline moves time to the connection's next deadline and runs
// its timers.
func (tc *tconn) advanceToDeadline() time.Duration {
	tc.t.Helper()
	dl := tc.c.Deadline()
	if dl.IsZero() {
		tc.t.Fatalf("advanceToDeadline: no timer armed (state %v)", tc.c.State())
	}
	d := dl.Sub(tc.now)
	tc.now = dl
	tc.c.HandleTimers(tc.now)
	return d
}

// States built through real exchanges, so every fixture is itself a test
// of the path that leads to it.

func newListen(t *testing.T, mods ...func(*Config)) *tconn {
	tc := newTC(t, mods...)
	if err := tc.c.Listen(tc.now); err != nil {
		t.Fatal(err)
	}
	tc.wantState("passive OPEN", Listen)
	return tc
}

func newSynSent(t *testing.T, mods ...func(*Config)) *tconn {
	tc := newTC(t, mods...)
	if err := tc.c.Connect(tc.now); err != nil {
		t.Fatal(err)
	}
	tc.want("active OPEN sends SYN", seg{flags: S, seq: iss})
	tc.wantState("after SYN", SynSent)
	return tc
}

func newSynReceived(t *testing.T, mods ...func(*Config)) *tconn {
	tc := newListen(t, mods...)
	tc.in(seg{flags: S, seq: irs})
	tc.want("SYN,ACK answers SYN", seg{flags: S | A, seq: iss, ack: irs + 1})
	tc.wantState("after SYN", SynReceived)
	return tc
}

func newEstablished(t *testing.T, mods ...func(*Config)) *tconn {
	tc := newSynSent(t, mods...)
	tc.in(seg{flags: S | A, seq: irs, ack: iss + 1})
	tc.want("ACK of SYN,ACK", seg{flags: A, seq: iss + 1, ack: irs + 1})
	tc.wantState("handshake done", Established)
	return tc
}

func newFinWait1(t *testing.T, mods ...func(*Config)) *tconn {
	tc := newEstablished(t, mods...)
	tc.c.Close(tc.now)
	tc.want("CLOSE sends FIN", seg{flags: F | A, seq: iss + 1, ack: irs + 1})
	tc.wantState("after CLOSE", FinWait1)
	return tc
}

func newFinWait2(t *testing.T, mods ...func(*Config)) *tconn {
	tc := newFinWait1(t, mods...)
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 2})
	tc.wantNothing("ACK of FIN needs no answer")
	tc.wantState("FIN acknowledged", FinWait2)
	return tc
}

func newCloseWait(t *testing.T, mods ...func(*Config)) *tconn {
	tc := newEstablished(t, mods...)
	tc.in(seg{flags: F | A, seq: irs + 1, ack: iss + 1})
	tc.want("FIN is acknowledged at once", seg{flags: A, seq: iss + 1, ack: irs + 2})
	tc.wantState("after FIN", CloseWait)
	return tc
}

func newLastAck(t *testing.T, mods ...func(*Config)) *tconn {
	tc := newCloseWait(t, mods...)
	tc.c.Close(tc.now)
	tc.want("CLOSE sends FIN", seg{flags: F | A, seq: iss + 1, ack: irs + 2})
	tc.wantState("after CLOSE", LastAck)
	return tc
}

func newClosing(t *testing.T, mods ...func(*Config)) *tconn {
	tc := newFinWait1(t, mods...)
	tc.in(seg{flags: F | A, seq: irs + 1, ack: iss + 1})
	tc.want("their FIN is acknowledged", seg{flags: A, seq: iss + 2, ack: irs + 2})
	tc.wantState("FINs crossed", Closing)
	return tc
}

func newTimeWait(t *testing.T, mods ...func(*Config)) *tconn {
	tc := newFinWait2(t, mods...)
	tc.in(seg{flags: F | A, seq: irs + 1, ack: iss + 2})
	tc.want("their FIN is acknowledged", seg{flags: A, seq: iss + 2, ack: irs + 2})
	tc.wantState("after FIN", TimeWait)
	return tc
}

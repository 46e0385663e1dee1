package ladder

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/stack"
	"github.com/synack/synack/tcp"
	"github.com/synack/synack/wire"
)

var (
	t0      = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	stk     = netip.MustParseAddrPort("10.0.0.2:80")
	peer    = netip.MustParseAddrPort("10.0.0.1:40000")
	other   = netip.MustParseAddrPort("10.0.0.9:81")
	inbound = tcp.Tuple{Local: stk, Remote: peer}
)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func seg(flags wire.TCPFlags, seq, ack uint32, n int) *tcp.Segment {
	return &tcp.Segment{Flags: flags, Seq: seqnum.Value(seq), Ack: seqnum.Value(ack), Window: 512, Payload: make([]byte, n)}
}

func ev(k stack.TraceKind, ms int, id uint64, tu tcp.Tuple, from, to tcp.State, cause tcp.Cause, s *tcp.Segment) stack.TraceEvent {
	return stack.TraceEvent{Kind: k, Transition: tcp.Transition{Time: at(ms), ID: id, Tuple: tu, From: from, To: to, Cause: cause}, Segment: s}
}

// A passive open seen from the stack, as `synack trace` draws it: numbers
// relative to each direction's SYN, the child's copy of LISTEN left out,
// the path when the connection closes.
func TestLive(t *testing.T) {
	var b bytes.Buffer
	l := NewLive(&b)
	for _, e := range []stack.TraceEvent{
		ev(stack.TraceReceived, 0, 7, inbound, tcp.Closed, tcp.SynReceived, 0, seg(wire.SYN, 5000, 0, 0)),
		ev(stack.TraceState, 0, 7, inbound, tcp.Closed, tcp.Listen, tcp.UserListen, nil),
		ev(stack.TraceState, 0, 7, inbound, tcp.Listen, tcp.SynReceived, tcp.RcvSYN, nil),
		ev(stack.TraceSent, 0, 7, inbound, tcp.SynReceived, tcp.SynReceived, 0, seg(wire.SYN|wire.ACK, 9000, 5001, 0)),
		ev(stack.TraceReceived, 1, 0, tcp.Tuple{Local: other, Remote: peer}, tcp.Closed, tcp.Closed, 0, seg(wire.SYN, 1, 0, 0)),
		ev(stack.TraceReceived, 10, 7, inbound, tcp.SynReceived, tcp.Established, 0, seg(wire.ACK|wire.PSH, 5001, 9001, 5)),
		ev(stack.TraceState, 10, 7, inbound, tcp.SynReceived, tcp.Established, tcp.RcvACKOfSYN, nil),
		ev(stack.TraceState, 20, 7, inbound, tcp.Established, tcp.Closed, tcp.RcvRST, nil),
	} {
		l.Trace(e)
	}
	l.Dropped(3)
	want := `
              #7 10.0.0.2:80 ⇄ 10.0.0.1:40000
12:00:00.000  #7     LISTEN         ◀─────────────────────── [S] seq 0 win 512──
12:00:00.000  #7     SYN-RECEIVED  LISTEN → SYN-RECEIVED (rcv SYN)
12:00:00.000  #7     SYN-RECEIVED  ──[S.] seq 0 ack 1 win 512 ────────────────▶ 
12:00:00.001  -      no socket for 10.0.0.9:81 (from 10.0.0.1:40000): [S] seq 1
                       win 512
              #7 10.0.0.2:80 ⇄ 10.0.0.1:40000
12:00:00.010  #7     SYN-RECEIVED   ◀────────── [P.] seq 1 ack 1 win 512 len 5──
12:00:00.010  #7     ESTABLISHED   SYN-RECEIVED → ESTABLISHED (rcv ACK of SYN)
12:00:00.020  #7     CLOSED        ESTABLISHED → CLOSED (rcv RST)
              #7     path: LISTEN → SYN-RECEIVED → ESTABLISHED → CLOSED
   … 3 events not shown: this client read too slowly
`
	if got := b.String(); got != want[1:] {
		t.Errorf("got\n%s\nwant\n%s", got, want[1:])
	}
	// A live trace runs for days: a closed connection leaves nothing
	// behind, and a SYN that reached no connection is not remembered.
	if len(l.isn) != 0 || len(l.conns) != 0 {
		t.Errorf("after CLOSED the ladder keeps %d ISNs and %d connections", len(l.isn), len(l.conns))
	}
}

// Two stacks side by side, as `synack demo` draws them.
func TestPair(t *testing.T) {
	var b bytes.Buffer
	client, server := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	out := tcp.Tuple{Local: peer, Remote: stk}
	l := NewPair(&b, t0, client, server)
	l.Header()
	l.Trace(ev(stack.TraceState, 0, 1, tcp.Tuple{Local: stk}, tcp.Closed, tcp.Listen, tcp.UserListen, nil))
	l.Trace(ev(stack.TraceState, 0, 1, out, tcp.Closed, tcp.SynSent, tcp.UserOpen, nil))
	l.Trace(ev(stack.TraceSent, 0, 1, out, tcp.SynSent, tcp.SynSent, 0, seg(wire.SYN, 5000, 0, 0)))
	l.Lost(at(0), out, seg(wire.SYN, 5000, 0, 0))
	l.Note(at(5), "server", "waits")
	l.Aside(at(5), "something else")
	l.Trace(ev(stack.TraceReceived, 10, 2, inbound, tcp.Closed, tcp.SynReceived, 0, seg(wire.SYN, 5000, 0, 0)))
	l.Trace(ev(stack.TraceState, 10, 2, inbound, tcp.Closed, tcp.Listen, tcp.UserListen, nil))
	l.Trace(ev(stack.TraceState, 10, 2, inbound, tcp.Listen, tcp.SynReceived, tcp.RcvSYN, nil))
	l.Trace(ev(stack.TraceSent, 10, 2, inbound, tcp.SynReceived, tcp.SynReceived, 0, seg(wire.SYN|wire.ACK, 9000, 5001, 0)))
	l.Summary()
	want := `
      time  client 10.0.0.1                                      server 10.0.0.2
────────────────────────────────────────────────────────────────────────────────
    0.000s  CLOSED            server: CLOSED → LISTEN (user LISTEN) LISTEN
    0.000s  SYN-SENT      client: CLOSED → SYN-SENT (user CONNECT)
    0.000s  SYN-SENT      ──[S] seq 0 win 512 ───────────────────▶  LISTEN
    0.000s                   ✗ lost on the way: [S] seq 0 win 512
    0.005s     server app: waits
    0.005s     something else
    0.010s  SYN-SENT        server: LISTEN → SYN-RECEIVED (rcv SYN) SYN-RECEIVED
    0.010s  SYN-SENT       ◀──────────── [S.] seq 0 ack 1 win 512── SYN-RECEIVED
────────────────────────────────────────────────────────────────────────────────
client path: CLOSED → SYN-SENT
server path: CLOSED → LISTEN → SYN-RECEIVED
seq and ack are relative to each side's initial sequence number, as tcpdump
prints them (--absolute for raw).
`
	if got := b.String(); got != want[1:] {
		t.Errorf("got\n%s\nwant\n%s", got, want[1:])
	}
	if st := l.State(l.Right()); st != tcp.SynReceived {
		t.Errorf("server state %v", st)
	}
}

func TestAbsoluteAndColor(t *testing.T) {
	var b bytes.Buffer
	l := NewLive(&b)
	l.Absolute, l.Color = true, true
	l.Trace(ev(stack.TraceSent, 0, 3, inbound, tcp.SynSent, tcp.SynSent, 0, seg(wire.SYN, 5000, 0, 0)))
	l.Trace(ev(stack.TraceSent, 0, 3, inbound, tcp.SynSent, tcp.SynSent, 0, seg(wire.ACK, 5001, 77, 0)))
	got := b.String()
	if !strings.Contains(got, "[.] seq 5001 ack 77 win 512") {
		t.Errorf("absolute numbers not kept:\n%s", got)
	}
	if !strings.Contains(got, colCyan) || !strings.Contains(got, colReset) {
		t.Errorf("no colour:\n%q", got)
	}
}

// everything draws one of each kind of line, the long ones included: a
// SYN with options, long narration, a drop, a long path.
func everything(l *Ladder, live bool) {
	syn := seg(wire.SYN, 5000, 0, 0)
	syn.Window = 65535
	syn.Options = wire.TCPOptions{MSS: 1460, HasMSS: true, WindowScale: 7, HasWindowScale: true, SACKPermitted: true,
		TSVal: 4000000000, TSEcr: 0, HasTimestamps: true}
	out := tcp.Tuple{Local: peer, Remote: stk}
	l.Header()
	if live {
		rcv := ev(stack.TraceReceived, 0, 7, inbound, tcp.Listen, tcp.Listen, 0, syn)
		rcv.Drop = tcp.DropReason(1)
		l.Trace(rcv)
		l.Trace(ev(stack.TraceState, 0, 7, inbound, tcp.SynReceived, tcp.Established, tcp.RcvACKOfSYN, nil))
		l.Trace(ev(stack.TraceReceived, 1, 0, tcp.Tuple{Local: other, Remote: peer}, tcp.Closed, tcp.Closed, 0, syn))
	} else {
		l.Trace(ev(stack.TraceState, 0, 1, out, tcp.Closed, tcp.SynSent, tcp.UserOpen, nil))
		l.Trace(ev(stack.TraceSent, 0, 1, out, tcp.SynSent, tcp.SynSent, 0, syn))
		l.Lost(at(0), out, syn)
		l.Trace(ev(stack.TraceState, 10, 2, inbound, tcp.SynReceived, tcp.Established, tcp.RcvACKOfSYN, nil))
		l.Trace(ev(stack.TraceState, 10, 2, inbound, tcp.SynReceived, tcp.Established, tcp.RcvSYNCookie, nil))
		l.Trace(ev(stack.TraceState, 10, 1, out, tcp.SynReceived, tcp.Established, tcp.RcvSYNCookie, nil))
		for range 12 {
			l.Trace(ev(stack.TraceState, 20, 1, out, tcp.Established, tcp.FinWait1, tcp.UserClose, nil))
			l.Trace(ev(stack.TraceState, 20, 1, out, tcp.FinWait1, tcp.Established, tcp.UserClose, nil))
		}
	}
	l.Note(at(5), "server", "Read returned: read tcp 198.18.0.2:80->198.18.0.1:46740: read: connection reset by peer")
	l.Aside(at(5), "server counters: PassiveOpens 65 SyncookiesSent 237 SyncookiesRecv 1 SyncookiesFailed 0 ListenOverflows 0")
	l.Remark("the end of a stream, told at some length so that it has to wrap somewhere on an eighty-column screen")
	if !live {
		l.Summary()
	}
}

// Issue 15: the ladder wrapped in an 80-column terminal. At its default
// width (what pipes and files get) and at any width from 80 up, no line is
// wider; nothing is lost to the width but the tail of over-long options.
func TestWidth(t *testing.T) {
	for _, live := range []bool{false, true} {
		for _, width := range []int{0, 80, 100, 132, 200} {
			var b bytes.Buffer
			l := NewPair(&b, t0, peer.Addr(), stk.Addr())
			if live {
				l = NewLive(&b)
			}
			l.Width = width
			everything(l, live)
			limit := width
			if width == 0 {
				limit = DefaultWidth
			}
			widest := 0
			for _, line := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
				widest = max(widest, runes(line))
				if runes(line) > limit {
					t.Errorf("live %v width %d: %d columns: %q", live, width, runes(line), line)
				}
			}
			for _, want := range []string{"<mss 1460,sackOK,TS", "connection reset by peer", "ListenOverflows 0", "eighty-column screen"} {
				if !strings.Contains(strings.Join(strings.Fields(b.String()), " "), want) {
					t.Errorf("live %v width %d: %q missing:\n%s", live, width, want, b.String())
				}
			}
			// Wide terminals get the widest middle column, no more.
			if wantMid := min(limit-l.fixed(), maxMidWidth); l.mid() != wantMid || widest < l.lineWidth() {
				t.Errorf("live %v width %d: middle column %d (want %d), widest line %d of %d", live, width, l.mid(), wantMid, widest, l.lineWidth())
			}
			if t.Failed() {
				t.Logf("live %v width %d:\n%s", live, width, b.String())
				return
			}
		}
	}
}

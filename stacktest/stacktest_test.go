package stacktest

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/synack/synack/clock"
	"github.com/synack/synack/link/memlink"
	"github.com/synack/synack/stack"
	"github.com/synack/synack/tcp"
	"github.com/synack/synack/wire"
)

// A whole lifetime on a Pair: connect, echo, both closes, TIME-WAIT and
// its 2MSL, recorded transition by transition.
func TestPairLifetime(t *testing.T) {
	n := Pair(t)
	rec := Record(t, n.A)
	n.Run(t, func() {
		c, s := n.Connect(t, 7)
		n.Clock.Go(func() {
			io.Copy(s, s)
			s.Close()
		})
		c.Write([]byte("hello"))
		c.CloseWrite()
		got, err := io.ReadAll(c)
		if err != nil || string(got) != "hello" {
			t.Errorf("echo %q, %v", got, err)
		}
		c.Close()
		tw := rec.WaitState(t, tcp.TimeWait)
		closed := rec.WaitState(t, tcp.Closed, 3*tcp.DefaultMSL)
		if d := closed.Time.Sub(tw.Time); d != 2*tcp.DefaultMSL {
			t.Errorf("TIME-WAIT lasted %v, want 2MSL = %v", d, 2*tcp.DefaultMSL)
		}
		rec.ExpectStates(t, tw.ID, tcp.SynSent, tcp.Established, tcp.FinWait1, tcp.FinWait2, tcp.TimeWait, tcp.Closed)
	})
	if rec.Dropped() {
		t.Error("transitions dropped")
	}
}

// transfer moves size bytes from A to B on a Pair made with opts and
// returns the virtual time it took and A's link statistics.
func transfer(t *testing.T, size int, opts ...Option) (time.Duration, memlink.Stats) {
	n := Pair(t, opts...)
	var took time.Duration
	n.Run(t, func() {
		c, s := n.Connect(t, 9)
		start := n.Clock.Now()
		n.Clock.Go(func() {
			c.Write(make([]byte, size))
			c.Close()
		})
		got, err := io.Copy(io.Discard, s)
		if err != nil || got != int64(size) {
			t.Errorf("received %d bytes, %v; want %d", got, err, size)
		}
		took = n.Clock.Now().Sub(start)
		s.Close()
	})
	return took, n.LinkA.Stats()
}

// Impairments reach the link, and the same seed gives the same run.
func TestPairImpairmentsDeterministic(t *testing.T) {
	imp := memlink.Impairments{Delay: 10 * time.Millisecond, Loss: 0.05}
	d1, st1 := transfer(t, 1<<18, WithImpairments(imp, imp), WithSeed(3))
	d2, st2 := transfer(t, 1<<18, WithImpairments(imp, imp), WithSeed(3))
	if st1.DroppedLoss == 0 {
		t.Errorf("no packet lost on a 5%% lossy link: %+v", st1)
	}
	if d1 != d2 || st1 != st2 {
		t.Errorf("same seed, different runs: %v %+v and %v %+v", d1, st1, d2, st2)
	}
	clean, _ := transfer(t, 1<<18)
	if clean >= d1 {
		t.Errorf("clean link took %v, lossy delayed link %v", clean, d1)
	}
}

// The peer plays a server by hand: the stack's SYN, our SYN,ACK, its ACK,
// data, and a retransmission timed on the virtual clock.
func TestPeerHandshake(t *testing.T) {
	p := NewPeer(t, WithStacks(stack.Options{TCP: tcp.Config{ISN: tcp.FixedISN(1000), MinRTO: time.Second}}, stack.Options{}))
	p.Run(t, func() {
		conns := make(chan *stack.TCPConn, 1)
		p.Clock.Go(func() {
			c, err := p.Stack.DialTCP(context.Background(), netip.AddrPortFrom(AddrB, 80))
			if err != nil {
				t.Errorf("dial: %v", err)
			}
			conns <- c
		})
		syn := p.Expect(t, Flags(wire.SYN), To(80), Seq(1000), MSS(1460))
		synAck := syn.Reply()
		synAck.Flags, synAck.Seq, synAck.Ack, synAck.Window = wire.SYN|wire.ACK, 5000, syn.Seq+1, 65535
		synAck.Options = wire.TCPOptions{HasMSS: true, MSS: 1000}
		p.Inject(t, synAck)
		p.Expect(t, Flags(wire.ACK), Seq(1001), Ack(5001))
		c := <-conns
		if c == nil {
			return
		}
		c.Write([]byte("hi"))
		sent := p.Expect(t, Flags(wire.PSH|wire.ACK), Seq(1001), Ack(5001), Payload([]byte("hi")))
		// Unacknowledged, it comes again after the RTO (1 s: MinRTO, as
		// the handshake measured no RTT on the delay-free link) of virtual
		// time, and nothing before that.
		p.ExpectNone(t, 999*time.Millisecond)
		at := p.Clock.Now()
		again := p.Expect(t, Seq(sent.Seq), PayloadLen(2))
		if d := p.Clock.Now().Sub(at); d > time.Millisecond {
			t.Errorf("retransmission %v after the expected instant", d)
		}
		ack := again.Reply()
		ack.Flags, ack.Seq, ack.Ack, ack.Window = wire.ACK, 5001, again.Seq.Add(again.Len()), 65535
		p.Inject(t, ack)
		p.ExpectNone(t, 0)
		c.Close()
		p.Expect(t, Flags(wire.FIN|wire.ACK), Seq(1003))
	})
}

// Segments with default addresses reach the stack; a closed port answers
// with RST (RFC 9293 section 3.10.7.1).
func TestPeerInjectDefaults(t *testing.T) {
	p := NewPeer(t)
	p.Run(t, func() {
		p.Inject(t, Segment{Src: netip.AddrPortFrom(netip.Addr{}, 4000), Dst: netip.AddrPortFrom(netip.Addr{}, 80),
			TCPHeader: wire.TCPHeader{Seq: 100, Flags: wire.SYN, Window: 1000}})
		rst := p.Expect(t, Flags(wire.RST|wire.ACK), Seq(0), Ack(101), From(80), To(4000))
		if rst.Src.Addr() != AddrA || rst.Dst.Addr() != AddrB {
			t.Errorf("RST %v, want %v > %v", rst, AddrA, AddrB)
		}
		p.Inject(t, Segment{Src: netip.AddrPortFrom(netip.Addr{}, 4000), Dst: netip.AddrPortFrom(AddrA6, 80),
			TCPHeader: wire.TCPHeader{Seq: 7, Flags: wire.SYN, Window: 1000}})
		rst = p.Expect(t, Flags(wire.RST|wire.ACK), Ack(8))
		if rst.Src.Addr() != AddrA6 || rst.Dst.Addr() != AddrB6 {
			t.Errorf("RST %v, want %v > %v", rst, AddrA6, AddrB6)
		}
	})
}

// fakeT records a failure instead of failing the test, so the harness's own
// failures can be tested.
type fakeT struct {
	testing.TB
	msgs []string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, a ...any) {
	f.msgs = append(f.msgs, fmt.Sprintf(format, a...))
	runtime.Goexit()
}
func (f *fakeT) Errorf(format string, a ...any) {
	f.msgs = append(f.msgs, fmt.Sprintf(format, a...))
}

// Expect, ExpectNone, WaitState and ExpectStates fail when they should,
// and say what they got.
func TestFailures(t *testing.T) {
	cases := []struct {
		name string
		body func(p *Peer, rec *Recorder, ft *fakeT)
		want string
	}{
		{"wrong flags", func(p *Peer, _ *Recorder, ft *fakeT) {
			p.Inject(t, Segment{Src: netip.AddrPortFrom(AddrB, 1), Dst: netip.AddrPortFrom(AddrA, 2), TCPHeader: wire.TCPHeader{Seq: 1, Flags: wire.SYN}})
			p.Expect(ft, Flags(wire.SYN|wire.ACK))
		}, "flags R., want S."},
		{"nothing sent", func(p *Peer, _ *Recorder, ft *fakeT) {
			p.Timeout = 5 * time.Second
			p.Expect(ft)
		}, "no segment from the stack within 5s"},
		{"unwanted segment", func(p *Peer, _ *Recorder, ft *fakeT) {
			p.Inject(t, Segment{Src: netip.AddrPortFrom(AddrB, 1), Dst: netip.AddrPortFrom(AddrA, 2), TCPHeader: wire.TCPHeader{Seq: 1, Flags: wire.SYN}})
			p.ExpectNone(ft, 0)
		}, "want nothing, the stack sent 198.18.0.1:2 > 198.18.0.2:1: [R.]"},
		{"state never reached", func(_ *Peer, rec *Recorder, ft *fakeT) {
			rec.WaitState(ft, tcp.Established, time.Second)
		}, "no connection entered ESTABLISHED within 1s"},
		{"wrong path", func(_ *Peer, rec *Recorder, ft *fakeT) {
			rec.ExpectStates(ft, 1, tcp.SynSent)
		}, "connection 1 went through [], want [SYN-SENT]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPeer(t)
			rec := Record(t, p.Stack)
			ft := &fakeT{TB: t}
			p.Run(t, func() { tc.body(p, rec, ft) })
			if len(ft.msgs) != 1 || !strings.Contains(ft.msgs[0], tc.want) {
				t.Errorf("failures %q, want one containing %q", ft.msgs, tc.want)
			}
		})
	}
}

func TestSeededRand(t *testing.T) {
	read := func(seed, n uint64) []byte {
		b := make([]byte, 16)
		SeededRand(seed, n).Read(b)
		return b
	}
	if !slices.Equal(read(1, 1), read(1, 1)) || slices.Equal(read(1, 1), read(1, 2)) || slices.Equal(read(1, 1), read(2, 1)) {
		t.Error("SeededRand is not a function of (seed, n) alone")
	}
}

// With the real clock inside a synctest bubble (time virtual there too),
// the same harness works, as the stack's own synctest-based tests need.
func TestPairRealClockInSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := Pair(t, WithClock(clock.Real()))
		rec := Record(t, n.A)
		n.Run(t, func() {
			c, s := n.Connect(t, 7)
			c.Close()
			rec.WaitState(t, tcp.FinWait2)
			s.Close()
			tw := rec.WaitState(t, tcp.TimeWait)
			rec.WaitState(t, tcp.Closed, 3*tcp.DefaultMSL)
			rec.ExpectStates(t, tw.ID, tcp.SynSent, tcp.Established, tcp.FinWait1, tcp.FinWait2, tcp.TimeWait, tcp.Closed)
		})
		p := NewPeer(t, WithClock(clock.Real()))
		p.Inject(t, Segment{Src: netip.AddrPortFrom(AddrB, 1), Dst: netip.AddrPortFrom(AddrA, 2), TCPHeader: wire.TCPHeader{Seq: 1, Flags: wire.SYN}})
		p.Expect(t, Flags(wire.RST|wire.ACK), Ack(2))
		synctest.Wait()
		p.ExpectNone(t, 0)
	})
}

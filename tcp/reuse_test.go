package tcp

import (
	"fmt"
	"hash/fnv"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

// logPipe joins two connections back to back and logs every segment and
// transition, so two runs can be compared line by line. drop names the
// data segments (counted from 1, A to B only) that are lost on the way.
type logPipe struct {
	peer  map[*Conn]*Conn
	name  map[*Conn]string
	q     []pipePacket
	log   []string
	sent  int
	drop  map[int]bool
	clock time.Time
}

func newLogPipe() *logPipe {
	return &logPipe{peer: map[*Conn]*Conn{}, name: map[*Conn]string{}, drop: map[int]bool{}}
}

func (p *logPipe) SendSegment(c *Conn, s *Segment) {
	cp := *s
	cp.Payload = append([]byte(nil), s.Payload...)
	h := fnv.New32a()
	h.Write(s.Payload)
	p.log = append(p.log, fmt.Sprintf("%v %s> %s ECN %v payload %08x", p.clock.Sub(epoch), p.name[c], s, s.ECN, h.Sum32()))
	if len(s.Payload) > 0 && p.name[c] == "A" {
		p.sent++
		if p.drop[p.sent] {
			p.log = append(p.log, "  lost")
			return
		}
	}
	p.q = append(p.q, pipePacket{to: p.peer[c], seg: cp})
}

func (p *logPipe) StateChanged(c *Conn, t Transition) {
	p.log = append(p.log, fmt.Sprintf("%v %s %v -> %v (%v)", t.Time.Sub(epoch), p.name[c], t.From, t.To, t.Cause))
}

func (p *logPipe) join(a, b *Conn) {
	p.peer[a], p.peer[b] = b, a
	p.name[a], p.name[b] = "A", "B"
}

// reuseTuples are the 4-tuples of the scripted lives: the first and the
// second on different ones, so nothing keyed by the tuple (ISS, the
// timestamp offset) can pass for a leftover.
var reuseTuples = [2][2]netip.AddrPort{
	{netip.MustParseAddrPort("10.0.0.1:1234"), netip.MustParseAddrPort("10.0.0.2:80")},
	{netip.MustParseAddrPort("10.0.0.3:4321"), netip.MustParseAddrPort("10.0.0.2:80")},
}

// reuseLife runs one connection between a (the client) and b (the server),
// both as NewConn or Reinit left them, on p: a handshake with timestamps
// and SACK, upN bytes one way with the segments p.drop says lost (SACK
// recovery, RACK), downN the other, then a close from a (TIME-WAIT) and b (CLOSED). It
// returns the final Info of each.
func reuseLife(t *testing.T, p *logPipe, a, b *Conn, start time.Time, upN, downN int) (Info, Info) {
	t.Helper()
	now := start
	p.clock = now
	step := func() {
		for k := 0; k < len(p.q); k++ {
			p.q[k].to.HandleSegment(now, &p.q[k].seg)
		}
		p.q = p.q[:0]
	}
	if err := b.Listen(now); err != nil {
		t.Fatal(err)
	}
	if err := a.Connect(now); err != nil {
		t.Fatal(err)
	}
	step()
	if a.State() != Established || b.State() != Established {
		t.Fatalf("handshake: A %v B %v", a.State(), b.State())
	}
	up, down := payload(upN, 1), payload(downN, 7)
	var gotUp, gotDown []byte
	buf := make([]byte, 4096)
	wroteUp, wroteDown := 0, 0
	for i := 0; i < 2000 && (len(gotUp) < len(up) || len(gotDown) < len(down)); i++ {
		if wroteUp < len(up) {
			n, _ := a.Write(now, up[wroteUp:])
			wroteUp += n
		}
		if wroteDown < len(down) {
			n, _ := b.Write(now, down[wroteDown:])
			wroteDown += n
		}
		step()
		if n, _ := b.Read(now, buf); n > 0 {
			gotUp = append(gotUp, buf[:n]...)
		}
		if n, _ := a.Read(now, buf); n > 0 {
			gotDown = append(gotDown, buf[:n]...)
		}
		now = now.Add(10 * time.Millisecond)
		p.clock = now
		a.HandleTimers(now)
		b.HandleTimers(now)
		step()
	}
	if string(gotUp) != string(up) || string(gotDown) != string(down) {
		t.Fatalf("data: %d of %d bytes up, %d of %d down", len(gotUp), len(up), len(gotDown), len(down))
	}
	a.Close(now)
	step()
	b.Close(now)
	for i := 0; i < 100 && (a.State() != TimeWait || b.State() != Closed); i++ {
		step()
		now = now.Add(10 * time.Millisecond)
		p.clock = now
		a.HandleTimers(now)
		b.HandleTimers(now)
	}
	if a.State() != TimeWait || b.State() != Closed {
		t.Fatalf("close: A %v B %v, want TIME-WAIT and CLOSED", a.State(), b.State())
	}
	return a.Info(), b.Info()
}

// A Conn reused after a connection with timestamps, SACK, window scaling,
// losses, recovery and data both ways, and with the owner's settings
// changed, is the Conn NewConn makes, field for field, and then lives a
// second connection segment for segment, transition for transition and
// counter for counter as a new Conn does (issue 13 item 6: reuse must
// never carry a previous connection's bytes, sequence numbers, timers or
// options).
func TestReuseIsFresh(t *testing.T) {
	for _, cc := range []string{"cubic", "newreno", "bbr"} {
		t.Run(cc, func(t *testing.T) {
			cfg := &Config{Nagle: false, CongestionControl: cc}
			tup := func(life int, server bool) Tuple {
				l, r := reuseTuples[life][0], reuseTuples[life][1]
				if server {
					l, r = r, l
				}
				return Tuple{Local: l, Remote: r}
			}

			// The first life, on a and b, with what an owner may change.
			p1 := newLogPipe()
			p1.drop[3], p1.drop[4], p1.drop[9] = true, true, true
			a := NewConn(cfg, tup(0, false), p1)
			b := NewConn(cfg, tup(0, true), p1)
			p1.join(a, b)
			a.SetKeepAlive(epoch, true)
			a.SetKeepAliveParams(epoch, time.Minute, time.Second, 3)
			if err := b.SetCongestionControl("newreno"); err != nil {
				t.Fatal(err)
			}
			reuseLife(t, p1, a, b, epoch, 20000, 3000)
			if s := a.Stats(); s.SACKRecoveries+s.Timeouts == 0 || s.SACKBlocksIn == 0 {
				t.Fatalf("the first life did not recover from SACKed losses: %+v", s)
			}
			if !a.tsOK || !a.sackOK || !a.wsOK {
				t.Fatalf("the first life negotiated timestamps %v, SACK %v, window scaling %v; the test wants all", a.tsOK, a.sackOK, a.wsOK)
			}

			// Reset and Reinit on the second tuple: a Conn like a new one.
			p2 := newLogPipe()
			p2.drop[2], p2.drop[5] = true, true
			a.Reinit(cfg, tup(1, false), p2)
			b.Reinit(cfg, tup(1, true), p2)
			for _, c := range []*Conn{a, b} {
				if sp := c.spare; sp == nil || sp.loss == nil || sp.rt == nil || sp.cc == nil || sp.more == nil {
					t.Fatalf("Reset kept %+v: the test wants loss and rate state, controller and cold counters kept", sp)
				}
				checkSpareCleared(t, c.spare)
				fresh := NewConn(cfg, c.id, p2)
				got := *c
				got.spare = nil
				if !reflect.DeepEqual(&got, fresh) {
					t.Errorf("reinitialised Conn differs from a new one:\n got %+v\nwant %+v", got, *fresh)
				}
			}
			p2.join(a, b)
			start := epoch.Add(time.Hour)
			ra, rb := reuseLife(t, p2, a, b, start, 20000, 3000)

			// The same second life on new Conns.
			p3 := newLogPipe()
			p3.drop = p2.drop
			fa := NewConn(cfg, tup(1, false), p3)
			fb := NewConn(cfg, tup(1, true), p3)
			p3.join(fa, fb)
			wa, wb := reuseLife(t, p3, fa, fb, start, 20000, 3000)

			if !reflect.DeepEqual(p2.log, p3.log) {
				for i := range min(len(p2.log), len(p3.log)) {
					if p2.log[i] != p3.log[i] {
						t.Fatalf("reused and new Conns part at line %d of %d/%d:\nreused: %s\n   new: %s", i, len(p2.log), len(p3.log), p2.log[i], p3.log[i])
					}
				}
				t.Fatalf("reused Conns logged %d lines, new ones %d", len(p2.log), len(p3.log))
			}
			if !reflect.DeepEqual(ra, wa) || !reflect.DeepEqual(rb, wb) {
				t.Errorf("final Info differs:\nreused A %+v\n   new A %+v\nreused B %+v\n   new B %+v", ra, wa, rb, wb)
			}
			if a.Stats() != fa.Stats() || b.Stats() != fb.Stats() {
				t.Errorf("counters differ:\nreused A %+v\n   new A %+v", a.Stats(), fa.Stats())
			}
		})
	}
}

// checkSpareCleared checks that what Reset kept holds nothing of the old
// connection: zero values, arrays zeroed, and a controller as new.
func checkSpareCleared(t *testing.T, sp *connSpare) {
	t.Helper()
	if l := sp.loss; l != nil {
		for i, s := range l.txq.s {
			if s != (txSeg{}) {
				t.Errorf("kept transmit record %d not cleared: %+v", i, s)
			}
		}
		for i, r := range l.sb.r[:cap(l.sb.r)] {
			if r != (sackRange{}) {
				t.Errorf("kept scoreboard range %d not cleared: %+v", i, r)
			}
		}
		z := *l
		z.txq.s, z.sb.r = nil, nil
		if !reflect.DeepEqual(z, lossState{}) {
			t.Errorf("kept loss state not cleared: %+v", z)
		}
	}
	if sp.rt != nil && *sp.rt != (rateState{}) {
		t.Errorf("kept rate state not cleared: %+v", *sp.rt)
	}
	if sp.more != nil && *sp.more != (Stats{}) {
		t.Errorf("kept counters not cleared: %+v", *sp.more)
	}
	for _, b := range [][]byte{sp.snd, sp.rcv} {
		for i, x := range b {
			if x != 0 {
				t.Fatalf("kept ring array not cleared: byte %d is %#x", i, x)
			}
		}
	}
	if sp.reported != nil && *sp.reported != (StackCounts{}) {
		t.Errorf("kept counts not cleared: %+v", *sp.reported)
	}
}

// The ring arrays a short connection gives back (releaseRing) are zeroed
// and serve the next one as new arrays would: a third short connection on
// twice-used Conns, its ring arrays kept from the second, lives exactly as
// on new Conns.
func TestReuseRingsAreFresh(t *testing.T) {
	cfg := &Config{Nagle: false}
	tup := func(i int, server bool) Tuple {
		l, r := reuseTuples[i][0], reuseTuples[i][1]
		if server {
			l, r = r, l
		}
		return Tuple{Local: l, Remote: r}
	}
	p := newLogPipe()
	a := NewConn(cfg, tup(0, false), p)
	b := NewConn(cfg, tup(0, true), p)
	p.join(a, b)
	reuseLife(t, p, a, b, epoch, 200, 100)
	for i := 1; i <= 2; i++ {
		p = newLogPipe()
		a.Reinit(cfg, tup(i%2, false), p)
		b.Reinit(cfg, tup(i%2, true), p)
		p.join(a, b)
		if i == 2 {
			for _, c := range []*Conn{a, b} {
				if len(c.spare.snd) != ringMin || len(c.spare.rcv) != ringMin {
					t.Fatalf("kept ring arrays of %d and %d bytes, want %d each: the test exercises nothing", len(c.spare.snd), len(c.spare.rcv), ringMin)
				}
				checkSpareCleared(t, c.spare)
			}
		}
		reuseLife(t, p, a, b, epoch.Add(time.Duration(i)*time.Hour), 200+i, 100+i)
	}
	q := newLogPipe()
	fa := NewConn(cfg, tup(0, false), q)
	fb := NewConn(cfg, tup(0, true), q)
	q.join(fa, fb)
	reuseLife(t, q, fa, fb, epoch.Add(2*time.Hour), 202, 102)
	if !reflect.DeepEqual(p.log, q.log) {
		t.Fatalf("reused and new Conns differ:\nreused %q\n   new %q", p.log, q.log)
	}
	if a.Stats() != fa.Stats() || b.Stats() != fb.Stats() {
		t.Errorf("counters differ:\nreused A %+v\n   new A %+v", a.Stats(), fa.Stats())
	}
}

// A reused built-in controller is remade whole: the same as its
// constructor's, after a connection moved it far from there.
func TestReinitController(t *testing.T) {
	for _, name := range CongestionControls() {
		f, _ := lookupCongestion(name)
		used := f(1000)
		for i := range 50 {
			used.OnAck(epoch.Add(time.Duration(i)*time.Millisecond), Ack{Acked: 1000, Flight: 10000, SRTT: time.Millisecond, MinRTT: time.Millisecond, RTT: time.Millisecond})
		}
		used.OnFastRetransmit(epoch.Add(time.Second), 20000)
		used.OnRecoveryEnd(epoch.Add(2*time.Second), 1000)
		r, ok := used.(reiniter)
		if !ok {
			t.Fatalf("%s: built-in controller without reinit", name)
		}
		r.reinit(1448)
		if want := f(1448); !reflect.DeepEqual(used, want) {
			t.Errorf("%s: reinit gave %+v, the constructor %+v", name, used, want)
		}
	}
}

// A reused Conn makes nothing its previous connection already made: a
// short connection on Conns that had one before allocates nothing.
func TestAllocsShortConnectionReused(t *testing.T) {
	cfg := &Config{Nagle: false}
	one := []byte{'x'}
	buf := make([]byte, 16)
	a := netip.MustParseAddrPort("10.0.0.1:1234")
	b := netip.MustParseAddrPort("10.0.0.2:80")
	p := &pipeSink{peer: map[*Conn]*Conn{}}
	A := NewConn(cfg, Tuple{Local: a, Remote: b}, p)
	B := NewConn(cfg, Tuple{Local: b, Remote: a}, p)
	p.peer[A], p.peer[B] = B, A
	life := func() {
		now := epoch
		A.Reinit(cfg, Tuple{Local: a, Remote: b}, p)
		B.Reinit(cfg, Tuple{Local: b, Remote: a}, p)
		B.Listen(now)
		A.Connect(now)
		p.deliver(now)
		A.Write(now, one)
		p.deliver(now)
		B.Read(now, buf)
		B.Write(now, one)
		p.deliver(now)
		A.Read(now, buf)
		A.TakeCounts()
		B.TakeCounts()
		A.Close(now)
		p.deliver(now)
		B.Close(now)
		p.deliver(now)
		if A.State() != TimeWait || B.State() != Closed {
			t.Fatalf("close: A %v B %v, want TIME-WAIT and CLOSED", A.State(), B.State())
		}
	}
	life()
	life()
	// Even the four rings come from the spare: each gave its ringMin
	// array back at the end of the previous connection (releaseRing).
	if n := testing.AllocsPerRun(20, life); n != 0 {
		t.Errorf("a short connection on reused Conns: %v allocations, want 0", n)
	}
}

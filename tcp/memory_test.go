package tcp

import (
	"testing"

	"github.com/synack/synack/seqnum"
)

// The core's side of the stack's memory budget (memory.go).

// edge is the right edge of the window an ACK advertises.
func (tc *tconn) edge(s Segment) seqnum.Value {
	return s.Ack.Add(seqnum.Size(uint32(s.Window) << tc.c.rcv.wscale))
}

// flushACK lets a delayed ACK go out, if one is pending.
func (tc *tconn) flushACK() {
	if !tc.c.Deadline().IsZero() && tc.c.tm.delack.Equal(tc.c.Deadline()) {
		tc.advanceToDeadline()
	}
}

// A SYN,ACK sent under memory pressure offers a few segments, not the
// whole buffer.
func TestMemoryPressureClampsNewWindow(t *testing.T) {
	for _, m := range []MemoryState{MemoryNormal, MemoryPressure} {
		tc := newListen(t, withOptions, func(c *Config) { c.ReceiveBufferSize = 1 << 20 })
		tc.c.SetMemoryState(m)
		tc.in(seg{flags: S, seq: irs, win: 65535, opts: synOpts(7, 100)})
		sa := tc.want("SYN,ACK", seg{flags: S | A, seq: iss, ack: irs + 1})
		if m == MemoryNormal && sa.Window != 65535 {
			t.Errorf("%v: SYN,ACK window %d, want 65535", m, sa.Window)
		}
		if m != MemoryNormal && (sa.Window == 0 || int(sa.Window) > pressureWindowSegs*1000) {
			t.Errorf("%v: SYN,ACK window %d, want at most %d segments' worth", m, sa.Window, pressureWindowSegs)
		}
	}
}

// Under pressure the window stops opening, but the edge already offered
// never moves back (RFC 9293 3.8.6, RFC 7323 section 2.4); once RCV.NXT
// reaches it the window opens only a few segments ahead; back to normal
// it opens in full again.
func TestMemoryPressureStopsOpeningNeverRetracts(t *testing.T) {
	// A fixed 1 MiB window, to see it reopen in full after pressure
	// (autotune_test.go covers pressure with auto-tuning).
	tc := newEstablishedSACK(t, func(c *Config) { c.NoAutoTune = true })
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1, data: payload(1000, 'a')})
	tc.read()
	tc.flushACK()
	first := tc.drain()
	if len(first) == 0 {
		t.Fatal("no ACK of the first segment")
	}
	edge0 := tc.edge(first[len(first)-1])
	// A scaled window can only name edges on its granularity: holding
	// the edge may round it down by less than one unit (RFC 7323
	// section 2.4), which is not a retraction.
	unit := seqnum.Size(1) << tc.c.rcv.wscale
	tc.c.SetMemoryState(MemoryPressure)
	nxt := irs + 1001
	buf := make([]byte, 1<<16)
	for nxt.LessThan(edge0) {
		n := min(1000, int(nxt.Size(edge0)))
		tc.in(seg{flags: A, seq: nxt, ack: iss + 1, data: payload(n, 'b')})
		nxt = nxt.Add(seqnum.Size(n))
		for {
			if k, _ := tc.c.Read(tc.now, buf); k == 0 {
				break
			}
		}
		tc.flushACK()
		for _, s := range tc.drain() {
			e := tc.edge(s)
			if e.Add(unit).LessThanEq(edge0) {
				t.Fatalf("ACK of %d advertises edge %d, before the %d already offered: the window was retracted", s.Ack, e, edge0)
			}
			if e.GreaterThan(edge0.Add(unit)) && s.Ack.Size(e) > pressureWindowSegs*1000+unit {
				t.Fatalf("ACK of %d opens the window to %d under pressure, want at most %d", s.Ack, s.Ack.Size(e), pressureWindowSegs*1000)
			}
		}
	}
	tc.in(seg{flags: A, seq: nxt, ack: iss + 1, data: payload(1000, 'c')})
	tc.read()
	tc.flushACK()
	last := tc.drain()
	if len(last) == 0 {
		t.Fatal("no ACK at the old edge")
	}
	if s := last[len(last)-1]; s.Ack.Size(tc.edge(s)) > pressureWindowSegs*1000+unit {
		t.Fatalf("past the old edge the window is %d, want at most %d", s.Ack.Size(tc.edge(s)), pressureWindowSegs*1000+unit)
	}
	tc.c.SetMemoryState(MemoryNormal)
	tc.in(seg{flags: A, seq: nxt + 1000, ack: iss + 1, data: payload(1000, 'd')})
	tc.read()
	tc.flushACK()
	last = tc.drain()
	if len(last) == 0 {
		t.Fatal("no ACK after pressure")
	}
	if s := last[len(last)-1]; s.Ack.Size(tc.edge(s)) < 1<<19 {
		t.Fatalf("after pressure the window is %d, want it open again (1 MiB buffer)", s.Ack.Size(tc.edge(s)))
	}
}

// Over the limit, text that would take memory is not taken (and not
// acknowledged), while the segment's ACK still counts; in-order text that
// fits the ring's array is taken.
func TestMemoryOverLimitRefusesNewMemory(t *testing.T) {
	tc := newEstablishedSACK(t)
	tc.write(payload(500, 'o'))
	tc.drain()
	tc.c.SetMemoryState(MemoryOverLimit)
	before := tc.c.BufferMemory()

	tc.in(seg{flags: A, seq: irs + 1 + 5000, ack: iss + 1, data: payload(100, 'x')})
	s := tc.want("out-of-order text refused: ACK at once", seg{flags: A, seq: iss + 501, ack: irs + 1})
	if len(s.Options.SACK()) != 0 {
		t.Fatalf("SACK %v for text that was not kept", s.Options.SACK())
	}
	// In order, but the receive ring has no array yet: it would grow.
	// The ACK of our 500 bytes in it is processed all the same.
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 501, data: payload(100, 'y')})
	tc.want("in-order text needing memory refused", seg{flags: A, seq: iss + 501, ack: irs + 1})
	if tc.c.snd.una != iss+501 {
		t.Fatalf("SND.UNA %d, want %d: the ACK of a segment whose text was refused must count", tc.c.snd.una, iss+501)
	}
	if got := tc.c.Stats().MemoryDropped; got != 2 {
		t.Fatalf("MemoryDrops %d, want 2", got)
	}
	if m := tc.c.BufferMemory(); m > before {
		t.Fatalf("buffer memory grew from %d to %d over the limit", before, m)
	}

	// Give the ring an array, then over the limit again: text that fits
	// in it costs nothing and is taken.
	tc.c.SetMemoryState(MemoryNormal)
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 501, data: payload(100, 'z')})
	tc.c.SetMemoryState(MemoryOverLimit)
	tc.in(seg{flags: A, seq: irs + 101, ack: iss + 501, data: payload(100, 'z')})
	tc.flushACK()
	acks := tc.drain()
	if len(acks) == 0 || acks[len(acks)-1].Ack != irs+201 {
		t.Fatalf("ACKs %v, want RCV.NXT %d: text fitting the ring's array is taken", acks, irs+201)
	}
	if got := tc.c.Stats().MemoryDropped; got != 2 {
		t.Fatalf("MemoryDrops %d, want still 2", got)
	}
}

// Under pressure a drained ring gives its array back at once, not after
// the reclaim timer.
func TestMemoryPressureReclaimsAtOnce(t *testing.T) {
	tc := newEstablishedSACK(t)
	tc.c.SetMemoryState(MemoryPressure)
	for i := range 20 {
		tc.in(seg{flags: A, seq: irs + 1 + seqv(uint32(i*1000)), ack: iss + 1, data: payload(1000, 'a')})
	}
	if m := tc.c.BufferMemory(); m <= ringKeep {
		t.Fatalf("buffer memory %d after 20 kB, want the ring grown", m)
	}
	tc.read()
	if m := tc.c.BufferMemory(); m != 0 {
		t.Fatalf("buffer memory %d after the ring drained under pressure, want 0 at once", m)
	}
}

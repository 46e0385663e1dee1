package stack

import (
	"context"
	"errors"
	"hash/maphash"
	"io"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"sort"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
	"unsafe"

	"github.com/synack/synack/tcp"
	"github.com/synack/synack/wire"
)

// twRecordFor makes a record for tuple id expiring at exp, through a real
// tcp.Conn driven into TIME-WAIT.
func twRecordFor(t testing.TB, cfg *tcp.Config, id tcp.Tuple, entered time.Time) tcp.TimeWaitRecord {
	t.Helper()
	c := tcp.NewConn(cfg, id, nil)
	c.Connect(entered)
	iss := cfg.ISN.ISN(id, entered)
	c.HandleSegment(entered, &tcp.Segment{Seq: 5000, Ack: iss + 1, Flags: wire.SYN | wire.ACK, Window: 1000})
	c.Close(entered)
	c.HandleSegment(entered, &tcp.Segment{Seq: 5001, Ack: iss + 2, Flags: wire.FIN | wire.ACK, Window: 1000})
	if c.State() != tcp.TimeWait {
		t.Fatalf("fixture in %v", c.State())
	}
	return c.TimeWaitRecord()
}

// The table of records against a map, through random inserts (mostly in
// order of expiry, some late), removals, restarts and expiries.
func TestTimeWaitTable(t *testing.T) {
	t.Run("from 0", func(t *testing.T) { testTimeWaitTable(t, 0) })
	// Positions near the renumbering (twRebase), which the table crosses
	// several times over.
	t.Run("across the rebase", func(t *testing.T) { testTimeWaitTable(t, uint32(twRebase-3*twChunkSlots-5)) })
}

func testTimeWaitTable(t *testing.T, start uint32) {
	cfg := &tcp.Config{ISN: tcp.FixedISN(1000), MSL: time.Second}
	var tab twTable
	tab.seed = maphash.MakeSeed()
	tab.base, tab.head = start, start
	rebased := false
	model := map[tcp.Tuple]time.Time{} // expiry
	cids := map[tcp.Tuple]uint64{}
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.Unix(1e9, 0)
	var nextCID uint64
	tuple := func(i int) tcp.Tuple {
		return tcp.Tuple{
			Local:  netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), uint16(i)),
			Remote: netip.AddrPortFrom(netip.MustParseAddr("fd00::9"), 80),
		}
	}
	for step := range 20000 {
		now = now.Add(time.Duration(rng.IntN(3)) * time.Millisecond)
		id := tuple(rng.IntN(3000))
		switch op := rng.IntN(10); {
		case op < 5: // insert
			if _, ok := model[id]; ok {
				continue
			}
			entered := now
			if rng.IntN(20) == 0 {
				entered = now.Add(-time.Duration(rng.IntN(1500)) * time.Millisecond) // compacted late
			}
			rec := twRecordFor(t, cfg, id, entered)
			nextCID++
			tab.insert(rec, nextCID)
			model[id], cids[id] = rec.Expiry(), nextCID
			if dead := tab.n - tab.live; dead > max(tab.live, twChunkSlots) {
				t.Fatalf("step %d: %d dead slots kept beside %d live records", step, dead, tab.live)
			}
		case op < 7: // remove (an active open reusing the 4-tuple, a SYN reopening it, RST)
			p := tab.lookup(id)
			if _, ok := model[id]; ok != (p >= 0) {
				t.Fatalf("step %d: lookup %v = %d, model has it: %v", step, id, p, ok)
			}
			if p >= 0 {
				tab.remove(p)
				delete(model, id)
			}
		case op < 8: // a retransmitted FIN restarts 2MSL
			p := tab.lookup(id)
			if p < 0 {
				continue
			}
			r := tab.at(p)
			before := r.tw.Expiry()
			r.tw.HandleSegment(now, &tcp.Segment{Seq: 5001, Ack: 1002, Flags: wire.FIN | wire.ACK}, func(*tcp.Segment) {})
			if !r.tw.Expiry().After(before) && !now.Add(2*time.Second).Equal(before) {
				t.Fatalf("step %d: FIN did not restart 2MSL", step)
			}
			model[id] = r.tw.Expiry()
			tab.moved(p)
		default: // expire
			for {
				s, ok := tab.popDue(now)
				if !ok {
					break
				}
				id := s.tw.ID()
				exp, in := model[id]
				if !in || !exp.Equal(s.tw.Expiry()) || s.cid != cids[id] {
					t.Fatalf("step %d: popped %v (cid %d, expiry %v); model: %v %v", step, id, s.cid, s.tw.Expiry(), in, exp)
				}
				delete(model, id)
			}
			for id, exp := range model {
				if !exp.After(now) {
					t.Fatalf("step %d: %v expired at %v, now %v, not popped", step, id, exp, now)
				}
			}
		}
		if tab.live != len(model) {
			t.Fatalf("step %d: %d live, model %d", step, tab.live, len(model))
		}
		if max := tab.n/twChunkSlots + 2; len(tab.chunks) > max {
			t.Fatalf("step %d: %d chunks for %d slots in use", step, len(tab.chunks), tab.n)
		}
		if tab.base < start {
			rebased = true
		}
		if step%997 == 0 {
			for id := range model {
				if s := tab.get(id); s == nil || s.cid != cids[id] {
					t.Fatalf("step %d: %v not found", step, id)
				}
			}
			var exps []time.Time
			tab.all(func(s *twSlot) { exps = append(exps, s.tw.Expiry()) })
			if !sort.SliceIsSorted(exps, func(i, j int) bool { return exps[i].Before(exps[j]) }) {
				t.Fatalf("step %d: ring out of order", step)
			}
		}
	}
	if start >= twRebase/2 && !rebased {
		t.Fatal("the positions were never renumbered: the test did not cross twRebase")
	}
}

// A connection closed by its owner becomes a record in TIME-WAIT: it is
// listed and counted, answers a retransmitted FIN (restarting 2MSL) and
// ignores an RST, and ends with "2MSL timeout" under its own ID.
func TestTimeWaitRecordInStack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var sent []TraceEvent
		p := newPair(t, pairOpts{a: Options{Trace: func(e TraceEvent) {
			if e.Kind == TraceSent {
				seg := *e.Segment
				e.Segment = &seg
				sent = append(sent, e)
			}
		}}})
		ev, cancel := p.a.Subscribe(100)
		defer cancel()
		c, s := p.connect(t, 80)
		c.Close()
		s.Close()
		synctest.Wait()
		entered := time.Now()
		if c.tcb != nil {
			t.Fatal("client in TIME-WAIT after Close kept its tcp.Conn")
		}
		if _, in := p.a.shardOf(c.Tuple()).conns[c.Tuple()]; in {
			t.Fatal("client still in the demux table")
		}
		if st := c.State(); st != tcp.TimeWait {
			t.Fatalf("client State %v, want TIME-WAIT", st)
		}
		if n := p.a.StateCounts()[tcp.TimeWait]; n != 1 {
			t.Fatalf("StateCounts TIME-WAIT %d, want 1", n)
		}
		cs := p.a.Connections()
		if len(cs) != 1 || cs[0].ID != c.ID() || cs[0].State != tcp.TimeWait || !cs[0].Released || cs[0].Tuple != c.Tuple() {
			t.Fatalf("Connections %+v", cs)
		}
		info := c.Info()

		time.Sleep(30 * time.Second)
		sent = nil
		inject := func(h wire.TCPHeader) {
			h.Window = 1000
			pkt := tcpPacket(c.Tuple().Remote, c.Tuple().Local, h, nil)
			if _, err := p.eb.WritePackets([][]byte{pkt}); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
		}
		inject(wire.TCPHeader{Seq: info.RcvNxt.Sub(1), Ack: info.SndNxt, Flags: wire.FIN | wire.ACK})
		if len(sent) != 1 || sent[0].ID != c.ID() || sent[0].From != tcp.TimeWait || sent[0].Segment.Flags != wire.ACK ||
			sent[0].Segment.Ack != info.RcvNxt || sent[0].Segment.Seq != info.SndNxt {
			t.Fatalf("retransmitted FIN answered with %+v, want the ACK of the FIN from TIME-WAIT", sent)
		}
		restarted := time.Now()
		sent = nil
		inject(wire.TCPHeader{Seq: info.RcvNxt, Flags: wire.RST})
		if len(sent) != 0 {
			t.Fatalf("RST in TIME-WAIT answered with %v (RFC 1337)", sent)
		}
		time.Sleep(time.Until(entered.Add(2 * tcp.DefaultMSL)))
		synctest.Wait()
		if st := c.State(); st != tcp.TimeWait {
			t.Fatalf("left TIME-WAIT at the first 2MSL: the FIN did not restart it (%v)", st)
		}
		time.Sleep(time.Until(restarted.Add(2 * tcp.DefaultMSL)))
		synctest.Wait()
		if st := c.State(); st != tcp.Closed {
			t.Fatalf("client %v 2MSL after the FIN, want CLOSED", st)
		}
		if n := len(p.a.Connections()); n != 0 {
			t.Fatalf("%d connections left", n)
		}
		evs := byID(drain(ev))[c.ID()]
		last := evs[len(evs)-1]
		if last.From != tcp.TimeWait || last.To != tcp.Closed || last.Cause != tcp.Timeout2MSL || !last.Time.Equal(restarted.Add(2*tcp.DefaultMSL)) {
			t.Fatalf("last event %+v, want TIME-WAIT -> CLOSED by 2MSL timeout at %v", last, restarted.Add(2*tcp.DefaultMSL))
		}
	})
}

// A connection its owner still holds stays whole in TIME-WAIT; closed
// later, it becomes a record that still expires 2MSL after it entered
// TIME-WAIT, before records made since.
func TestTimeWaitLateCompaction(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{})
		ev, cancel := p.a.Subscribe(100)
		defer cancel()
		c1, s1 := p.connect(t, 80)
		c1.CloseWrite()
		s1.Close()
		synctest.Wait()
		entered1 := time.Now()
		if c1.State() != tcp.TimeWait || c1.tcb == nil {
			t.Fatalf("held connection: %v, compacted %v", c1.State(), c1.tcb == nil)
		}
		time.Sleep(10 * time.Second)
		c2, s2 := p.connect(t, 81)
		c2.Close()
		s2.Close()
		synctest.Wait()
		entered2 := time.Now()
		time.Sleep(5 * time.Second)
		if _, err := c1.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("read in TIME-WAIT: %v", err)
		}
		c1.Close()
		if c1.tcb != nil || c1.State() != tcp.TimeWait {
			t.Fatalf("closed in TIME-WAIT: not a record (%v)", c1.State())
		}
		time.Sleep(time.Hour)
		byc := byID(drain(ev))
		for _, x := range []struct {
			c       *TCPConn
			entered time.Time
		}{{c1, entered1}, {c2, entered2}} {
			evs := byc[x.c.ID()]
			last := evs[len(evs)-1]
			if last.Cause != tcp.Timeout2MSL || !last.Time.Equal(x.entered.Add(2*tcp.DefaultMSL)) {
				t.Errorf("connection %d ended %+v, want 2MSL timeout at %v", x.c.ID(), last, x.entered.Add(2*tcp.DefaultMSL))
			}
		}
	})
}

// TIME-WAIT reuse: with a tiny ephemeral range, many sequential
// connections to one server succeed with reuse on and run out of ports
// with it off; the server (another stack) takes every reused 4-tuple.
func TestTimeWaitReuse(t *testing.T) {
	const ports, rounds = 4, 10
	for _, reuse := range []bool{true, false} {
		t.Run(map[bool]string{true: "on", false: "off"}[reuse], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := newPair(t, pairOpts{a: Options{TimeWaitReuse: reuse, FirstEphemeral: 40000, LastEphemeral: 40000 + ports - 1}})
				ev, cancel := p.a.Subscribe(1000)
				defer cancel()
				l, err := p.b.ListenTCP(netip.AddrPortFrom(addrB, 80), 0)
				if err != nil {
					t.Fatal(err)
				}
				defer l.Close()
				go func() {
					for {
						s, err := l.AcceptTCP()
						if err != nil {
							return
						}
						go func() { io.Copy(s, s); s.Close() }()
					}
				}()
				var ids []uint64
				for i := range ports * rounds {
					c, err := p.a.DialTCP(context.Background(), netip.AddrPortFrom(addrB, 80))
					if err != nil {
						if !reuse && i == ports && errors.Is(err, syscall.EADDRNOTAVAIL) {
							return // as expected: every port in TIME-WAIT
						}
						t.Fatalf("dial %d: %v", i, err)
					}
					ids = append(ids, c.ID())
					c.Write([]byte("x"))
					if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
						t.Fatalf("echo %d: %v", i, err)
					}
					c.Close()
					synctest.Wait()
					if st := c.State(); st != tcp.TimeWait {
						t.Fatalf("client %d in %v, want TIME-WAIT", i, st)
					}
					time.Sleep(300 * time.Millisecond)
				}
				if !reuse {
					t.Fatalf("%d connections on %d ports without reuse", ports*rounds, ports)
				}
				if got, want := p.a.Counters().TCP.TCPTimeWaitReuse, uint64(ports*(rounds-1)); got != want {
					t.Errorf("TCPTimeWaitReuse %d, want %d", got, want)
				}
				if n := p.b.Counters().TCP.PassiveOpens; n != ports*rounds {
					t.Errorf("server PassiveOpens %d, want %d", n, ports*rounds)
				}
				byc := byID(drain(ev))
				for i, id := range ids[:len(ids)-ports] {
					evs := byc[id]
					if last := evs[len(evs)-1]; last.From != tcp.TimeWait || last.To != tcp.Closed || last.Cause != tcp.ReusedByConnect {
						t.Errorf("connection %d ended %+v, want its TIME-WAIT reused", i, last)
					}
				}
			})
		})
	}
}

// The reused 4-tuple starts beyond the old sequence space, with newer
// timestamps; without timestamps, or before a second, a 4-tuple is not
// reused.
func TestTimeWaitReuseRules(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{a: Options{TimeWaitReuse: true}})
		l, err := p.b.ListenTCP(netip.AddrPortFrom(addrB, 80), 0)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		from, to := netip.AddrPortFrom(addrA, 5001), netip.AddrPortFrom(addrB, 80)
		dial := func() (*TCPConn, error) { return p.a.DialTCPFrom(context.Background(), from, to) }
		c, err := dial()
		if err != nil {
			t.Fatal(err)
		}
		s, _ := l.AcceptTCP()
		info := c.Info()
		c.Close()
		s.Close()
		synctest.Wait()
		if _, err := dial(); !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("reuse within a second of TIME-WAIT: %v, want EADDRINUSE", err)
		}
		time.Sleep(time.Second)
		old := info.SndNxt
		c2, err := dial()
		if err != nil {
			t.Fatalf("reuse after a second: %v", err)
		}
		if d := c2.Info().ISS - old; !c2.Info().ISS.GreaterThan(old) || d < 128000 {
			t.Errorf("new ISS %d is not beyond the old SND.NXT %d", c2.Info().ISS, old)
		}
	})
}

// 100,000 connections closed through TIME-WAIT leave records of under 200
// bytes of heap each.
func TestTimeWaitMemory(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("100,000 connections: not in -short or -race")
	}
	const n = 100_000
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{a: Options{FirstEphemeral: 10000, LastEphemeral: 65000}})
		var ls []*Listener
		for port := uint16(80); port < 82; port++ {
			l, err := p.b.ListenTCP(netip.AddrPortFrom(addrB, port), 4096)
			if err != nil {
				t.Fatal(err)
			}
			ls = append(ls, l)
			go func() {
				for {
					s, err := l.AcceptTCP()
					if err != nil {
						return
					}
					go func() {
						io.Copy(io.Discard, s) // the client closes first and holds TIME-WAIT
						s.Close()
					}()
				}
			}()
		}
		cycle := func(i int) {
			c, err := p.a.DialTCP(context.Background(), netip.AddrPortFrom(addrB, uint16(80+i%2)))
			if err != nil {
				t.Fatalf("dial %d: %v", i, err)
			}
			c.Close()
		}
		for i := range 100 {
			cycle(i)
		}
		synctest.Wait()
		time.Sleep(2*tcp.DefaultMSL + time.Second) // warm-up records gone
		base := heapInUse()
		for i := range n {
			cycle(i)
			if i%1000 == 999 {
				synctest.Wait()
			}
		}
		synctest.Wait()
		if got := p.a.StateCounts()[tcp.TimeWait]; got != n {
			t.Fatalf("%d in TIME-WAIT, want %d", got, n)
		}
		if got := p.a.numConns(); got != 0 {
			t.Fatalf("%d connections left in the client's demux table", got)
		}
		per := float64(heapInUse()-base) / n
		ring, index := 0, 0
		for _, sh := range p.a.shards {
			ring, index = ring+len(sh.tw.chunks)*twChunkSlots, index+len(sh.tw.index)
		}
		t.Logf("heap per TIME-WAIT record: %.0f bytes (%d records, %d shards, chunks %d slots, indexes %d)", per, n, len(p.a.shards), ring, index)
		if per > 200 {
			t.Errorf("heap per TIME-WAIT record %.0f bytes, want under 200", per)
		}
		for _, l := range ls {
			l.Close()
		}
		time.Sleep(2 * tcp.DefaultMSL)
		synctest.Wait()
		if got := p.a.StateCounts()[tcp.TimeWait]; got != 0 {
			t.Fatalf("%d still in TIME-WAIT after 2MSL", got)
		}
	})
}

func heapInUse() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// A table that grows allocates about a record's slot and its share of the
// index per record, not a copy of itself each time it grows: it was one
// ring that grew by a quarter, some 620 bytes of allocation per record
// while the records piled up (the default 60 s TIME-WAIT under a steady
// connection rate), five times what the record holds (issue 13 item 6).
func TestTimeWaitTableGrowthAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own account")
	}
	cfg := &tcp.Config{ISN: tcp.FixedISN(1000), MSL: time.Minute}
	const n = 20000
	recs := make([]tcp.TimeWaitRecord, n)
	now := time.Unix(1e9, 0)
	for i := range recs {
		id := tcp.Tuple{
			Local:  netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 40000),
			Remote: netip.AddrPortFrom(netip.MustParseAddr("198.18.0.2"), 80),
		}
		recs[i] = twRecordFor(t, cfg, id, now.Add(time.Duration(i)*time.Microsecond))
	}
	var tab twTable
	tab.seed = maphash.MakeSeed()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range recs {
		tab.insert(recs[i], uint64(i+1))
	}
	runtime.ReadMemStats(&after)
	per := float64(after.TotalAlloc-before.TotalAlloc) / n
	t.Logf("%.0f bytes allocated per record as the table grew to %d", per, n)
	if slot := float64(unsafe.Sizeof(twSlot{})); per > slot+48 {
		t.Errorf("%.0f bytes allocated per record, want at most %.0f (the %.0f-byte slot and its share of the index)", per, slot+48, slot)
	}
	for i := range recs {
		if s := tab.get(recs[i].ID()); s == nil || s.cid != uint64(i+1) {
			t.Fatalf("record %d not found", i)
		}
	}
}

// Records taken out of the middle of the queue (TIME-WAIT reuse by active
// opens, at a high connection rate: each port's record is taken over long
// before it expires) leave dead slots the head reaches only after 2MSL;
// the queue must not hold 2MSL's worth of them, only about as many as
// there are live records.
func TestTimeWaitTableReuseChurn(t *testing.T) {
	cfg := &tcp.Config{ISN: tcp.FixedISN(1000), MSL: time.Minute}
	const ports = 500
	now := time.Unix(1e9, 0)
	tuple := func(i int) tcp.Tuple {
		return tcp.Tuple{
			Local:  netip.AddrPortFrom(netip.MustParseAddr("198.18.0.1"), uint16(32768+i)),
			Remote: netip.AddrPortFrom(netip.MustParseAddr("198.18.0.2"), 80),
		}
	}
	recs := make([]tcp.TimeWaitRecord, ports)
	for i := range recs {
		recs[i] = twRecordFor(t, cfg, tuple(i), now)
	}
	var tab twTable
	tab.seed = maphash.MakeSeed()
	for i := range ports {
		tab.insert(recs[i], uint64(i+1))
	}
	// 100,000 connections over the 500 ports, none expiring: each takes
	// its port's record over and leaves a new one.
	for k := range 100000 {
		i := k % ports
		p := tab.lookup(recs[i].ID())
		if p < 0 {
			t.Fatalf("connection %d: the record of port %d is gone", k, i)
		}
		tab.remove(p)
		tab.insert(recs[i], uint64(ports+k+1))
	}
	if tab.live != ports {
		t.Fatalf("%d live records, want %d", tab.live, ports)
	}
	if max := 2*ports/twChunkSlots + 3; len(tab.chunks) > max {
		t.Fatalf("%d chunks (%d slots, %d live records), want at most %d", len(tab.chunks), tab.n, tab.live, max)
	}
	for i := range ports {
		if s := tab.get(recs[i].ID()); s == nil || s.cid != uint64(ports+100000-ports+i+1) {
			t.Fatalf("record of port %d: %+v", i, s)
		}
	}
}

package memlink

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/synack/synack/clock"
	"github.com/synack/synack/link"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// mkpkt returns a fake packet of n bytes whose first 4 bytes are id.
func mkpkt(id uint32, n int) []byte {
	b := make([]byte, max(n, 8))
	binary.BigEndian.PutUint32(b, id)
	binary.BigEndian.PutUint32(b[4:], id) // a spare, for when corruption hits the first
	for i := 8; i < len(b); i++ {
		b[i] = byte(id) + byte(i)
	}
	return b
}

type arrival struct {
	id  uint32
	at  time.Duration
	pkt []byte
}

// recorder is a Dispatcher that keeps copies of what it gets.
type recorder struct {
	clk  clock.Clock
	idAt int // offset of the packet id
	mu   sync.Mutex
	got  []arrival
}

func (r *recorder) DeliverPacket(pkt []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, arrival{binary.BigEndian.Uint32(pkt[r.idAt:]), r.clk.Now().Sub(t0), bytes.Clone(pkt)})
}

func (r *recorder) ids() []uint32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []uint32
	for _, a := range r.got {
		ids = append(ids, a.id)
	}
	return ids
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// send writes packets 0..n-1 from a, one WritePackets call each, every gap of
// virtual time.
func send(t *testing.T, v *clock.Virtual, a *Endpoint, n, size int, gap time.Duration) {
	t.Helper()
	for i := range n {
		if _, err := a.WritePackets([][]byte{mkpkt(uint32(i), size)}); err != nil {
			t.Fatal(err)
		}
		if gap > 0 {
			v.Advance(gap)
		}
	}
}

func TestVirtualNeverSynchronous(t *testing.T) {
	v := clock.NewVirtual(t0)
	a, b := Pipe(Config{Clock: v})
	defer a.Close()
	r := &recorder{clk: v}
	b.Attach(r)
	send(t, v, a, 3, 100, 0)
	if n := r.len(); n != 0 {
		t.Fatalf("%d packets delivered inside WritePackets, want 0", n)
	}
	v.Advance(0) // due now: the clock's timer delivers them
	if got := r.ids(); !slices.Equal(got, []uint32{0, 1, 2}) {
		t.Fatalf("got %v, want [0 1 2]", got)
	}
	for _, a := range r.got {
		if a.at != 0 {
			t.Fatalf("zero-delay packet arrived at +%v", a.at)
		}
	}
}

func TestDelayAndRate(t *testing.T) {
	v := clock.NewVirtual(t0)
	// 1500 bytes at 12 Mbit/s take exactly 1 ms to serialize.
	a, b := Pipe(Config{Clock: v, AB: Impairments{Delay: 10 * time.Millisecond, Rate: 12_000_000, QueueLimit: 4}})
	defer a.Close()
	r := &recorder{clk: v}
	b.Attach(r)
	batch := make([][]byte, 6)
	for i := range batch {
		batch[i] = mkpkt(uint32(i), 1500)
	}
	if n, err := a.WritePackets(batch); n != 6 || err != nil {
		t.Fatalf("WritePackets = %d, %v", n, err)
	}
	v.Advance(time.Second)
	var got []string
	for _, a := range r.got {
		got = append(got, fmt.Sprintf("%d@%v", a.id, a.at))
	}
	// Four fit in the queue; the other two are dropped at its tail.
	want := "[0@11ms 1@12ms 2@13ms 3@14ms]"
	if fmt.Sprint(got) != want {
		t.Fatalf("arrivals %v, want %s", got, want)
	}
	st := a.Stats()
	if st.Sent != 6 || st.DroppedQueue != 2 || st.Delivered != 4 {
		t.Fatalf("stats %+v, want Sent 6, DroppedQueue 2, Delivered 4", st)
	}
}

func TestJitterKeepsOrder(t *testing.T) {
	v := clock.NewVirtual(t0)
	a, b := Pipe(Config{Clock: v, Seed: 3, AB: Impairments{Delay: 5 * time.Millisecond, Jitter: 20 * time.Millisecond}})
	defer a.Close()
	r := &recorder{clk: v}
	b.Attach(r)
	send(t, v, a, 200, 60, time.Millisecond)
	v.Advance(time.Second)
	ids := r.ids()
	if len(ids) != 200 || !slices.IsSorted(ids) {
		t.Fatalf("jitter alone reordered or lost packets: %v", ids)
	}
	spread := map[time.Duration]bool{}
	for _, a := range r.got {
		spread[a.at-time.Duration(a.id)*time.Millisecond] = true
	}
	if len(spread) < 10 {
		t.Fatalf("only %d distinct one-way delays: jitter not applied", len(spread))
	}
}

// run sends n packets through a heavily impaired link and returns what
// arrived, with times, and the counters.
func runImpaired(t *testing.T, seed int64, n int) ([]arrival, Stats) {
	v := clock.NewVirtual(t0)
	imp := Impairments{
		Loss: 0.1, Delay: 3 * time.Millisecond, Jitter: time.Millisecond,
		Reorder: 0.1, Duplicate: 0.05, Corrupt: 0.05,
	}
	a, b := Pipe(Config{Clock: v, Seed: seed, AB: imp})
	defer a.Close()
	r := &recorder{clk: v}
	b.Attach(r)
	send(t, v, a, n, 200, 100*time.Microsecond)
	v.Advance(time.Second)
	return r.got, a.Stats()
}

func TestDeterministic(t *testing.T) {
	got1, st1 := runImpaired(t, 42, 2000)
	got2, st2 := runImpaired(t, 42, 2000)
	got3, _ := runImpaired(t, 43, 2000)
	if st1 != st2 {
		t.Fatalf("same seed, different stats:\n%+v\n%+v", st1, st2)
	}
	same := func(x, y []arrival) bool {
		return slices.EqualFunc(x, y, func(p, q arrival) bool {
			return p.id == q.id && p.at == q.at && bytes.Equal(p.pkt, q.pkt)
		})
	}
	if !same(got1, got2) {
		t.Fatal("same seed, different deliveries")
	}
	if same(got1, got3) {
		t.Fatal("different seeds, identical deliveries")
	}
}

func TestImpairmentCounters(t *testing.T) {
	const n = 20000
	got, st := runImpaired(t, 7, n)
	t.Logf("%+v", st)
	near := func(name string, x uint64, p float64) {
		want := p * n
		if f := float64(x); f < 0.8*want || f > 1.2*want {
			t.Errorf("%s = %d, want about %.0f", name, x, want)
		}
	}
	near("DroppedLoss", st.DroppedLoss, 0.1)
	near("Reordered", st.Reordered, 0.1*0.9)
	near("Duplicated", st.Duplicated, 0.05*0.9)
	near("Corrupted", st.Corrupted, 0.05*0.9)
	if st.Sent != n {
		t.Errorf("Sent = %d, want %d", st.Sent, n)
	}
	if want := st.Sent - st.DroppedLoss + st.Duplicated; st.Delivered != want || uint64(len(got)) != want {
		t.Errorf("Delivered = %d (received %d), want Sent-DroppedLoss+Duplicated = %d", st.Delivered, len(got), want)
	}

	// Every corrupted packet differs from the original in exactly one bit.
	var corrupted, outOfOrder uint64
	var last uint32
	for i, a := range got {
		diffTo := func(id uint32) int {
			orig, diff := mkpkt(id, 200), 0
			for j := range orig {
				diff += bits.OnesCount8(orig[j] ^ a.pkt[j])
			}
			return diff
		}
		// If corruption hit the id, the spare copy still has it.
		id := a.id
		diff := diffTo(id)
		if spare := binary.BigEndian.Uint32(a.pkt[4:]); diff > 1 {
			id, diff = spare, diffTo(spare)
		}
		switch diff {
		case 0:
		case 1:
			corrupted++
		default:
			t.Fatalf("packet %d differs in %d bits", id, diff)
		}
		if i > 0 && id < last {
			outOfOrder++
		}
		last = id
	}
	// A corrupted packet that is also duplicated arrives once corrupted and
	// once intact.
	if corrupted != st.Corrupted {
		t.Errorf("saw %d corrupted packets, counters say %d", corrupted, st.Corrupted)
	}
	if outOfOrder == 0 {
		t.Error("Reorder produced no out-of-order delivery")
	}
}

func TestDropHook(t *testing.T) {
	v := clock.NewVirtual(t0)
	a, b := Pipe(Config{Clock: v, AB: Impairments{Drop: func(pkt []byte) bool {
		return binary.BigEndian.Uint32(pkt) == 2
	}}})
	defer a.Close()
	r := &recorder{clk: v}
	b.Attach(r)
	send(t, v, a, 5, 10, 0)
	v.Advance(0)
	if got := r.ids(); !slices.Equal(got, []uint32{0, 1, 3, 4}) {
		t.Fatalf("got %v, want [0 1 3 4]", got)
	}
	if st := a.Stats(); st.DroppedHook != 1 {
		t.Fatalf("DroppedHook = %d, want 1", st.DroppedHook)
	}
}

func TestTapAndDirections(t *testing.T) {
	v := clock.NewVirtual(t0)
	var taps []string
	a, b := Pipe(Config{Clock: v, Tap: func(d Dir, pkt []byte) {
		taps = append(taps, fmt.Sprintf("%v:%d", d, binary.BigEndian.Uint32(pkt)))
	}})
	defer a.Close()
	ra, rb := &recorder{clk: v}, &recorder{clk: v}
	a.Attach(ra)
	b.Attach(rb)
	a.WritePackets([][]byte{mkpkt(1, 20)})
	v.Advance(0)
	b.WritePackets([][]byte{mkpkt(2, 20)})
	v.Advance(0)
	if fmt.Sprint(taps) != "[a->b:1 b->a:2]" {
		t.Fatalf("taps %v", taps)
	}
	if !slices.Equal(rb.ids(), []uint32{1}) || !slices.Equal(ra.ids(), []uint32{2}) {
		t.Fatalf("a got %v, b got %v", ra.ids(), rb.ids())
	}
}

func TestMTUAndClose(t *testing.T) {
	v := clock.NewVirtual(t0)
	a, b := Pipe(Config{Clock: v, MTU: 100})
	r := &recorder{clk: v}
	b.Attach(r)
	n, err := a.WritePackets([][]byte{mkpkt(0, 100), mkpkt(1, 101), mkpkt(2, 10)})
	if n != 1 || !errors.Is(err, ErrTooBig) {
		t.Fatalf("WritePackets = %d, %v; want 1, ErrTooBig", n, err)
	}
	a.WritePackets([][]byte{mkpkt(3, 10)})
	b.Close() // before delivery: in-flight packets are lost
	v.Advance(time.Second)
	if r.len() != 0 {
		t.Fatalf("%d packets delivered after Close", r.len())
	}
	if _, err := a.WritePackets([][]byte{mkpkt(4, 10)}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after Close = %v, want net.ErrClosed", err)
	}
	if v.Pending() != 0 {
		t.Fatalf("%d virtual timers left after Close", v.Pending())
	}
}

func TestPacketsBeforeAttach(t *testing.T) {
	v := clock.NewVirtual(t0)
	a, b := Pipe(Config{Clock: v})
	defer a.Close()
	send(t, v, a, 3, 10, 0)
	v.Advance(time.Second)
	r := &recorder{clk: v}
	b.Attach(r)
	v.Advance(0)
	if got := r.ids(); !slices.Equal(got, []uint32{0, 1, 2}) {
		t.Fatalf("got %v after late Attach, want [0 1 2]", got)
	}
}

// Receiver replies from inside DeliverPacket, as the stack does: with the
// virtual clock this is a ping-pong driven purely by timers.
func TestPingPongVirtual(t *testing.T) {
	v := clock.NewVirtual(t0)
	a, b := Pipe(Config{Clock: v, AB: Impairments{Delay: time.Millisecond}, BA: Impairments{Delay: 2 * time.Millisecond}})
	defer a.Close()
	count := 0 // only the clock's goroutine (this one) delivers
	var last time.Duration
	echo := func(ep *Endpoint) link.DispatcherFunc {
		return func(pkt []byte) {
			count++
			last = v.Now().Sub(t0)
			id := binary.BigEndian.Uint32(pkt)
			if id < 100 {
				ep.WritePackets([][]byte{mkpkt(id+1, 64)})
			}
		}
	}
	a.Attach(echo(a))
	b.Attach(echo(b))
	a.WritePackets([][]byte{mkpkt(0, 64)})
	v.Advance(time.Hour)
	if count != 101 {
		t.Fatalf("%d deliveries, want 101 (ids 0..100)", count)
	}
	// 51 trips a->b of 1 ms, 50 trips b->a of 2 ms.
	if last != 151*time.Millisecond {
		t.Fatalf("last delivery at +%v, want +151ms", last)
	}
}

// Real clock inside a synctest bubble: fake time, durable blocking, and a
// leaked delivery goroutine would fail the bubble.
func TestRealClockInSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := clock.Real()
		a, b := Pipe(Config{AB: Impairments{Delay: 50 * time.Millisecond}})
		r := &recorder{clk: clk}
		b.Attach(r)
		a.Attach(link.DispatcherFunc(func([]byte) {}))
		start := time.Now()
		a.WritePackets([][]byte{mkpkt(1, 64), mkpkt(2, 64)})
		synctest.Wait()
		if r.len() != 0 {
			t.Fatal("delivered before the delay")
		}
		time.Sleep(50 * time.Millisecond)
		synctest.Wait()
		if got := r.ids(); !slices.Equal(got, []uint32{1, 2}) {
			t.Fatalf("got %v at +%v, want [1 2]", got, time.Since(start))
		}
		a.Close()
		synctest.Wait() // the goroutines must be gone, or the bubble panics at exit
	})
}

// Zero delay on the real clock: many packets, in order, from the delivery
// goroutine, and Close releases it.
func TestRealClockFlood(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := Pipe(Config{AB: Impairments{QueueLimit: 100000}})
		var mu sync.Mutex
		next, bad := uint32(0), 0
		b.Attach(link.DispatcherFunc(func(pkt []byte) {
			mu.Lock()
			if binary.BigEndian.Uint32(pkt) != next {
				bad++
			}
			next++
			mu.Unlock()
		}))
		batch := make([][]byte, 32)
		for i := range 300 {
			for j := range batch {
				batch[j] = mkpkt(uint32(i*32+j), 1400)
			}
			if _, err := a.WritePackets(batch); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		if next != 9600 || bad != 0 {
			t.Fatalf("received %d (%d out of order), want 9600 in order", next, bad)
		}
		a.Close()
	})
}

func TestSwitch(t *testing.T) {
	v := clock.NewVirtual(t0)
	sw := NewSwitch(Config{Clock: v, AB: Impairments{Delay: time.Millisecond}})
	defer sw.Close()
	h1, h2 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	h3 := netip.MustParseAddr("fd00::3")
	p1, p2, p3 := sw.Port(h1), sw.Port(h2), sw.Port() // p3 is learned
	r1, r2, r3 := &recorder{clk: v, idAt: 40}, &recorder{clk: v, idAt: 40}, &recorder{clk: v, idAt: 40}
	p1.Attach(r1)
	p2.Attach(r2)
	p3.Attach(r3)

	p1.WritePackets([][]byte{ipv4(1, h1, h2)})
	p1.WritePackets([][]byte{ipv6(2, netip.MustParseAddr("fd00::1"), h3)}) // h3 not known yet
	v.Advance(time.Second)
	p3.WritePackets([][]byte{ipv6(3, h3, netip.MustParseAddr("fd00::9"))}) // teaches h3, dst unknown
	v.Advance(time.Second)
	p2.WritePackets([][]byte{ipv6(4, netip.MustParseAddr("fd00::2"), h3)})
	p2.WritePackets([][]byte{ipv4(5, h2, h1)})
	v.Advance(time.Second)

	if !slices.Equal(r2.ids(), []uint32{1}) || !slices.Equal(r3.ids(), []uint32{4}) || !slices.Equal(r1.ids(), []uint32{5}) {
		t.Fatalf("p1 got %v, p2 got %v, p3 got %v; want [5] [1] [4]", r1.ids(), r2.ids(), r3.ids())
	}
	if n := sw.Unroutable(); n != 2 {
		t.Fatalf("Unroutable = %d, want 2", n)
	}
	if d := r2.got[0].at; d != time.Millisecond {
		t.Fatalf("delivered after %v, want 1ms (uplink delay only)", d)
	}
}

// ipv4 and ipv6 build just enough of a header for the switch, with the id at
// offset 40.
func ipv4(id uint32, src, dst netip.Addr) []byte {
	b := make([]byte, 44)
	binary.BigEndian.PutUint32(b[40:], id)
	b[0] = 0x45
	copy(b[12:], src.AsSlice())
	copy(b[16:], dst.AsSlice())
	return b
}

func ipv6(id uint32, src, dst netip.Addr) []byte {
	b := make([]byte, 44)
	binary.BigEndian.PutUint32(b[40:], id)
	b[0] = 0x60
	copy(b[8:], src.AsSlice())
	copy(b[24:], dst.AsSlice())
	return b
}

// The fast path (real clock, no impairment) must not allocate per packet.
func TestRealClockAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops buffers at random under -race")
	}
	a, b := Pipe(Config{})
	defer a.Close()
	const per = 64
	done := make(chan struct{}, 1)
	n := 0
	b.Attach(link.DispatcherFunc(func([]byte) {
		n++
		if n%per == 0 {
			done <- struct{}{}
		}
	}))
	batch := make([][]byte, per)
	for i := range batch {
		batch[i] = mkpkt(uint32(i), 1500)
	}
	allocs := testing.AllocsPerRun(200, func() {
		a.WritePackets(batch)
		<-done
	})
	if allocs > 1 { // a GC emptying the pool may cost a buffer now and then
		t.Fatalf("%.1f allocations per batch of %d packets", allocs, per)
	}
}

func BenchmarkPipe(b *testing.B) {
	for _, size := range []int{64, 1500} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			x, y := Pipe(Config{MTU: 1500, AB: Impairments{QueueLimit: 1 << 15}})
			defer x.Close()
			var mu sync.Mutex
			cond := sync.NewCond(&mu)
			got := 0
			y.Attach(link.DispatcherFunc(func([]byte) {
				mu.Lock()
				got++
				if got%64 == 0 {
					cond.Signal()
				}
				mu.Unlock()
			}))
			batch := make([][]byte, 64)
			for i := range batch {
				batch[i] = mkpkt(uint32(i), size)
			}
			b.SetBytes(int64(size * len(batch)))
			b.ReportAllocs()
			sent := 0
			for b.Loop() {
				x.WritePackets(batch)
				sent += len(batch)
				mu.Lock()
				for got < sent-4096 { // keep the queue bounded
					cond.Wait()
				}
				mu.Unlock()
			}
		})
	}
}

// The stack's blocking pattern over a link, under the virtual clock: a
// participant waits on a Gate with a deadline in clock time; the receiver
// broadcasts from DeliverPacket (which runs in the clock's goroutine).
func TestGateOverLinkVirtual(t *testing.T) {
	v := clock.NewVirtual(t0)
	a, b := Pipe(Config{Clock: v, AB: Impairments{Delay: 7 * time.Millisecond}})
	defer a.Close()
	g := v.NewGate()
	var mu sync.Mutex
	var inbox []uint32
	b.Attach(link.DispatcherFunc(func(pkt []byte) {
		mu.Lock()
		inbox = append(inbox, binary.BigEndian.Uint32(pkt))
		mu.Unlock()
		g.Broadcast()
	}))
	recv := func(deadline time.Time) (uint32, error) {
		for {
			mu.Lock()
			ticket := g.Chan()
			if len(inbox) > 0 {
				id := inbox[0]
				inbox = inbox[1:]
				mu.Unlock()
				return id, nil
			}
			mu.Unlock()
			if err := g.Wait(ticket, nil, deadline); err != nil {
				return 0, err
			}
		}
	}
	var log []string
	err := v.Run(func() {
		v.Go(func() {
			v.Sleep(time.Second)
			a.WritePackets([][]byte{mkpkt(9, 64)})
		})
		for range 2 {
			id, err := recv(t0.Add(2 * time.Second))
			log = append(log, fmt.Sprintf("%d,%v@%v", id, err, v.Now().Sub(t0)))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "[9,<nil>@1.007s 0,i/o timeout@2s]"
	if fmt.Sprint(log) != want {
		t.Fatalf("log %v, want %s", log, want)
	}
}

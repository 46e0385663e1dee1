package tcp

import (
	"container/heap"
	"net/netip"
	"testing"
	"time"
)

// Auto-tuning on a long fat path, under virtual time: two Conns joined by
// a path of 100 ms RTT whose forward direction is a 1 Gbit/s bottleneck
// with a queue that never drops. The bandwidth-delay product is 12.5 MB.

const (
	lfpRTT  = 100 * time.Millisecond
	lfpRate = 1e9 // bits per second
	lfpBDP  = int(lfpRate / 8 * 0.1)
)

type lfpPacket struct {
	at  time.Time
	n   int
	to  *Conn
	seg Segment
}

type lfpQueue []lfpPacket

func (q lfpQueue) Len() int { return len(q) }
func (q lfpQueue) Less(i, j int) bool {
	if q[i].at.Equal(q[j].at) {
		return q[i].n < q[j].n
	}
	return q[i].at.Before(q[j].at)
}
func (q lfpQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *lfpQueue) Push(x any)   { *q = append(*q, x.(lfpPacket)) }
func (q *lfpQueue) Pop() any {
	old := *q
	p := old[len(old)-1]
	*q = old[:len(old)-1]
	return p
}

// lfpPath carries segments from a (the sender) to b through the
// bottleneck, and back without one.
type lfpPath struct {
	a, b   *Conn
	now    time.Time
	q      lfpQueue
	n      int
	busy   time.Time // when the bottleneck is free again
	maxWnd int       // the largest window b advertised
}

func (p *lfpPath) SendSegment(c *Conn, s *Segment) {
	cp := *s
	cp.Payload = append([]byte(nil), s.Payload...)
	at := p.now.Add(lfpRTT / 2)
	to := p.b
	if c == p.b {
		to = p.a
		if s.Flags&0x02 == 0 { // not a SYN: the window is scaled
			p.maxWnd = max(p.maxWnd, int(s.Window)<<c.rcv.wscale)
		}
	} else {
		start := p.now
		if p.busy.After(start) {
			start = p.busy
		}
		p.busy = start.Add(time.Duration(float64((len(s.Payload)+52)*8) / lfpRate * float64(time.Second)))
		at = p.busy.Add(lfpRTT / 2)
	}
	p.n++
	heap.Push(&p.q, lfpPacket{at: at, n: p.n, to: to, seg: cp})
}

func (p *lfpPath) StateChanged(*Conn, Transition) {}

// step moves to the next event and runs it; false when nothing is left.
func (p *lfpPath) step() bool {
	next := time.Time{}
	for _, c := range []*Conn{p.a, p.b} {
		if d := c.Deadline(); !d.IsZero() && (next.IsZero() || d.Before(next)) {
			next = d
		}
	}
	if len(p.q) > 0 && (next.IsZero() || p.q[0].at.Before(next)) {
		next = p.q[0].at
	}
	if next.IsZero() {
		return false
	}
	p.now = next
	for len(p.q) > 0 && !p.q[0].at.After(p.now) {
		pk := heap.Pop(&p.q).(lfpPacket)
		pk.to.HandleSegment(p.now, &pk.seg)
	}
	p.a.HandleTimers(p.now)
	p.b.HandleTimers(p.now)
	return true
}

func newLFP(mod func(*Config)) *lfpPath {
	p := &lfpPath{now: epoch}
	mk := func(isn uint32) *Config {
		c := &Config{ISN: FixedISN(isn), ReceiveBufferSize: 32 << 20, SendBufferSize: 32 << 20}
		mod(c)
		return c
	}
	a := netip.MustParseAddrPort("10.0.0.1:1234")
	b := netip.MustParseAddrPort("10.0.0.2:80")
	p.a = NewConn(mk(1000), Tuple{Local: a, Remote: b}, p)
	p.b = NewConn(mk(5000), Tuple{Local: b, Remote: a}, p)
	p.b.Listen(p.now)
	p.a.Connect(p.now)
	return p
}

// lfpBulk moves size bytes from a to b, b's application reading all it
// can at every event, and returns the virtual time it took from the
// first byte written, and the largest window b advertised.
func lfpBulk(t *testing.T, size int, mod func(*Config)) (time.Duration, int, Info) {
	t.Helper()
	p := newLFP(mod)
	for p.a.State() != Established {
		if !p.step() {
			t.Fatal("no handshake")
		}
	}
	start := p.now
	data := payload(size, 7)
	off, got := 0, 0
	buf := make([]byte, 1<<20)
	for got < size {
		if n, _ := p.a.Write(p.now, data[off:]); n > 0 {
			off += n
		}
		for {
			n, _ := p.b.Read(p.now, buf)
			if n == 0 {
				break
			}
			got += n
		}
		if got == size {
			break
		}
		if !p.step() || p.now.Sub(start) > time.Hour {
			t.Fatalf("stalled after %v with %d/%d bytes", p.now.Sub(start), got, size)
		}
	}
	return p.now.Sub(start), p.maxWnd, p.b.Info()
}

// A bulk transfer on the long fat path: auto-tuned, the window grows to
// at least the BDP, and the transfer takes about as long as with the
// whole 32 MiB window offered from the start.
func TestAutoTuneLongFatPath(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB over a simulated 1 Gbit/s, 100 ms path, twice")
	}
	const size = 64 << 20
	fixed, fixedWnd, _ := lfpBulk(t, size, func(c *Config) { c.NoAutoTune = true })
	auto, autoWnd, info := lfpBulk(t, size, func(c *Config) {})
	gp := func(d time.Duration) float64 { return float64(size) * 8 / d.Seconds() / 1e6 }
	t.Logf("fixed 32 MiB window: %v, goodput %.0f Mbit/s, largest window %d", fixed, gp(fixed), fixedWnd)
	t.Logf("auto-tuned:          %v, goodput %.0f Mbit/s, largest window %d (limit %d, BDP %d)", auto, gp(auto), autoWnd, info.RcvSpace, lfpBDP)
	if autoWnd < lfpBDP {
		t.Errorf("auto-tuned window reached %d, want at least the BDP %d", autoWnd, lfpBDP)
	}
	if float64(auto) > 1.1*float64(fixed) {
		t.Errorf("auto-tuned transfer took %v, fixed %v: want within 10%%", auto, fixed)
	}
}

// A reader that takes 10 KB every 100 ms (one RTT) from a sender with
// plenty to send keeps a small window, and so a small buffer, for as long
// as it reads so. (Reading at exactly the RTT's pace, a measurement may
// span two reads, so the limit can settle above the first window; it
// stays within a few times what is read per round trip.)
func TestAutoTuneLongFatPathSlowReader(t *testing.T) {
	p := newLFP(func(c *Config) {})
	data := payload(8<<20, 9)
	off := 0
	buf := make([]byte, 10_000)
	nextRead := p.now
	maxMem, at5 := 0, 0
	for p.now.Before(epoch.Add(10 * time.Second)) {
		if at5 == 0 && p.now.After(epoch.Add(5*time.Second)) {
			at5 = p.b.Info().RcvSpace
		}
		if n, _ := p.a.Write(p.now, data[off:]); n > 0 {
			off += n
		}
		if !p.now.Before(nextRead) {
			p.b.Read(p.now, buf)
			nextRead = p.now.Add(lfpRTT)
		}
		maxMem = max(maxMem, p.b.BufferMemory())
		if !p.step() {
			t.Fatal("nothing left to happen")
		}
	}
	i := p.b.Info()
	t.Logf("slow reader after 10 s: limit %d, largest window %d, most buffer memory %d", i.RcvSpace, p.maxWnd, maxMem)
	if i.RcvSpace > 256<<10 || i.RcvSpace != at5 {
		t.Errorf("limit %d after 10 s (%d after 5 s), want it settled under 256 KiB", i.RcvSpace, at5)
	}
	if maxMem > 256<<10 {
		t.Errorf("receive buffers reached %d bytes, want them bounded by the small window", maxMem)
	}
}

package tcp

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"sort"
	"testing"
	"time"
)

// Two connections talk over a seeded lossy wire: segments are dropped,
// duplicated and reordered. A virtual clock steps to the next event; there
// are no goroutines.

type packet struct {
	at  time.Time
	n   int // tie-break, keeps the order stable
	to  *Conn
	seg Segment
}

type wire2 struct {
	rng     *rand.Rand
	q       []packet
	n       int
	now     time.Time
	loss    float64
	dup     float64
	peer    map[*Conn]*Conn
	history map[*Conn][]Transition
}

func (w *wire2) SendSegment(c *Conn, s *Segment) {
	for range 1 + b2i(w.rng.Float64() < w.dup) {
		if w.rng.Float64() < w.loss {
			continue
		}
		cp := *s
		cp.Payload = append([]byte(nil), s.Payload...)
		delay := 10*time.Millisecond + time.Duration(w.rng.IntN(20))*time.Millisecond
		w.n++
		w.q = append(w.q, packet{at: w.now.Add(delay), n: w.n, to: w.peer[c], seg: cp})
	}
}

func (w *wire2) StateChanged(c *Conn, t Transition) { w.history[c] = append(w.history[c], t) }

// step moves the clock to the next event, a segment's arrival or a
// deadline of one of conns, delivers what arrives then and runs the
// timers. It reports false when nothing is left to happen.
func (w *wire2) step(conns ...*Conn) bool {
	next := time.Time{}
	for _, c := range conns {
		if d := c.Deadline(); !d.IsZero() && (next.IsZero() || d.Before(next)) {
			next = d
		}
	}
	if len(w.q) > 0 {
		sort.Slice(w.q, func(i, j int) bool {
			if w.q[i].at.Equal(w.q[j].at) {
				return w.q[i].n < w.q[j].n
			}
			return w.q[i].at.Before(w.q[j].at)
		})
		if next.IsZero() || w.q[0].at.Before(next) {
			next = w.q[0].at
		}
	}
	if next.IsZero() {
		return false
	}
	w.now = next
	for len(w.q) > 0 && !w.q[0].at.After(w.now) {
		p := w.q[0]
		w.q = w.q[1:]
		p.to.HandleSegment(w.now, &p.seg)
	}
	for _, c := range conns {
		c.HandleTimers(w.now)
	}
	return true
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestLossyWire(t *testing.T) {
	seeds := 300
	if testing.Short() {
		seeds = 30
	}
	for seed := range seeds {
		runLossy(t, uint64(seed))
		if t.Failed() {
			return
		}
	}
}

func runLossy(t *testing.T, seed uint64) {
	w := &wire2{rng: rand.New(rand.NewPCG(seed, 99)), now: epoch, loss: 0.1, dup: 0.05,
		peer: map[*Conn]*Conn{}, history: map[*Conn][]Transition{}}
	mk := func(isn uint32, opts bool) *Config {
		c := &Config{ISN: FixedISN(isn), ReceiveBufferSize: 32 << 10, SendBufferSize: 32 << 10, MinRTO: 200 * time.Millisecond, Nagle: true}
		if !opts {
			c.NoTimestamps, c.NoSACK, c.NoWindowScale = true, true, true
		}
		return c
	}
	a := netip.MustParseAddrPort("10.0.0.1:1234")
	b := netip.MustParseAddrPort("10.0.0.2:80")
	opts := seed%2 == 0
	A := NewConn(mk(0xFFFFF000+uint32(seed), opts), Tuple{Local: a, Remote: b}, w)
	B := NewConn(mk(uint32(seed)*7919, opts), Tuple{Local: b, Remote: a}, w)
	w.peer[A], w.peer[B] = B, A
	B.Listen(w.now)
	A.Connect(w.now)

	sendA, sendB := payload(40000, 1), payload(25000, 2)
	var gotA, gotB []byte // what A and B received
	offA, offB := 0, 0
	closedA, closedB := false, false
	buf := make([]byte, 8192)
	deadline := epoch.Add(30 * time.Minute)
	for w.now.Before(deadline) {
		// User activity at the current instant.
		if n, _ := A.Write(w.now, sendA[offA:]); n > 0 {
			offA += n
		}
		if n, _ := B.Write(w.now, sendB[offB:]); n > 0 {
			offB += n
		}
		for {
			n, _ := A.Read(w.now, buf)
			if n == 0 {
				break
			}
			gotA = append(gotA, buf[:n]...)
		}
		for {
			n, _ := B.Read(w.now, buf)
			if n == 0 {
				break
			}
			gotB = append(gotB, buf[:n]...)
		}
		if offA == len(sendA) && !closedA && A.State() == Established {
			A.Close(w.now) // the active closer
			closedA = true
		}
		if offB == len(sendB) && !closedB && B.EOF() && B.Readable() == 0 {
			B.Close(w.now)
			closedB = true
		}
		if A.State() == Closed && B.State() == Closed {
			break
		}
		if !w.step(A, B) {
			t.Fatalf("seed %d: nothing to do; A %v B %v (stalled)", seed, A.State(), B.State())
		}
	}
	if A.State() != Closed || B.State() != Closed {
		t.Fatalf("seed %d: not closed after 30 min: A %v B %v", seed, A.State(), B.State())
	}
	if A.Err() != nil || B.Err() != nil {
		t.Fatalf("seed %d: errors A %v B %v\nA: %v\nB: %v", seed, A.Err(), B.Err(), w.history[A], w.history[B])
	}
	if !bytes.Equal(gotB, sendA) || !bytes.Equal(gotA, sendB) {
		t.Fatalf("seed %d: data corrupted: B got %d/%d, A got %d/%d", seed, len(gotB), len(sendA), len(gotA), len(sendB))
	}
	// The active closer went through TIME-WAIT; the passive one through
	// LAST-ACK (or, had the FINs crossed, CLOSING and TIME-WAIT).
	last := func(c *Conn) Transition { h := w.history[c]; return h[len(h)-1] }
	if l := last(A); l.From != TimeWait || l.Cause != Timeout2MSL {
		t.Fatalf("seed %d: A ended %v -> CLOSED (%s), want TIME-WAIT 2MSL", seed, l.From, l.Cause)
	}
	if l := last(B); l.From != LastAck && l.From != TimeWait {
		t.Fatalf("seed %d: B ended %v -> CLOSED (%s)", seed, l.From, l.Cause)
	}
}

// bulkLossy moves size bytes one way over w's loss (each direction) and
// returns the virtual time until the receiver has them all, and the
// sender's counters.
func bulkLossy(t *testing.T, seed uint64, loss float64, timestamps bool, size int) (time.Duration, Stats, Info) {
	t.Helper()
	w := &wire2{rng: rand.New(rand.NewPCG(seed, 7)), now: epoch, loss: loss,
		peer: map[*Conn]*Conn{}, history: map[*Conn][]Transition{}}
	mk := func(isn uint32) *Config {
		// Defaults otherwise (NewConn fills them in).
		return &Config{ISN: FixedISN(isn), ReceiveBufferSize: 64 << 10, SendBufferSize: 64 << 10, NoTimestamps: !timestamps}
	}
	a := netip.MustParseAddrPort("10.0.0.1:1234")
	b := netip.MustParseAddrPort("10.0.0.2:80")
	A := NewConn(mk(1000), Tuple{Local: a, Remote: b}, w)
	B := NewConn(mk(5000), Tuple{Local: b, Remote: a}, w)
	w.peer[A], w.peer[B] = B, A
	B.Listen(w.now)
	A.Connect(w.now)
	data := payload(size, 3)
	off, got := 0, 0
	buf := make([]byte, 64<<10)
	deadline := epoch.Add(24 * time.Hour)
	for got < size {
		if n, _ := A.Write(w.now, data[off:]); n > 0 {
			off += n
		}
		for {
			n, _ := B.Read(w.now, buf)
			if n == 0 {
				break
			}
			got += n
		}
		if got == size {
			break
		}
		if !w.step(A, B) || w.now.After(deadline) || A.State() == Closed {
			t.Fatalf("seed %d timestamps %v: stalled after %v with %d/%d bytes; A %v (%v)", seed, timestamps, w.now.Sub(epoch), got, size, A.State(), A.Err())
		}
	}
	return w.now.Sub(epoch), A.Stats(), A.Info()
}

// 1 MiB over 20 % loss each way: with timestamps the transfer must take
// about as long as without. Issue 10 saw 84-266 minutes with timestamps
// against about a minute without: RTT samples from echoes older than the
// retransmission (tsSample) kept the RTO at MaxRTO. One seed's time
// depends on how its timeouts back off; the sum over six does not much.
func TestLossyBulkTimestamps(t *testing.T) {
	if testing.Short() {
		t.Skip("1 MiB over a lossy wire, twelve times")
	}
	var sumOff, sumOn time.Duration
	for seed := range uint64(6) {
		off, _, _ := bulkLossy(t, seed+1, 0.2, false, 1<<20)
		on, st, info := bulkLossy(t, seed+1, 0.2, true, 1<<20)
		t.Logf("seed %d: 1 MiB, 20%% loss each way: timestamps off %v, on %v (on: %d timeouts, %d TS RTT samples, final RTO %v)",
			seed+1, off.Round(time.Millisecond), on.Round(time.Millisecond), st.Timeouts, st.TimestampRTTSamples, info.RTO)
		sumOff += off
		sumOn += on
	}
	t.Logf("six seeds: timestamps off %v, on %v", sumOff.Round(time.Second), sumOn.Round(time.Second))
	if sumOn > 2*sumOff {
		t.Errorf("with timestamps %v, more than twice the %v without", sumOn.Round(time.Second), sumOff.Round(time.Second))
	}
}

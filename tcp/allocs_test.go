package tcp

import (
	"net/netip"
	"runtime"
	"testing"
	"time"
	"unsafe"
)

type nullSink struct{}

func (nullSink) SendSegment(*Conn, *Segment)    {}
func (nullSink) StateChanged(*Conn, Transition) {}

// The per-segment paths allocate nothing once the buffers have grown.
func TestAllocsPerSegment(t *testing.T) {
	tc := newEstablishedMSS(t, 1000, withNoDelay, withOptions)
	tc.c.sink = nullSink{}
	c := tc.c
	data := payload(1000, 0)
	readBuf := make([]byte, 2000)
	seq := irs + 1
	sndAck := iss + 1
	in := &Segment{Flags: A, Window: 65535}
	warm := func() {
		in.Seq, in.Ack, in.Payload = seq, sndAck, data
		c.HandleSegment(tc.now, in)
		seq += 1000
		c.Read(tc.now, readBuf)
		tc.now = tc.now.Add(time.Millisecond)
		c.HandleTimers(tc.now)
	}
	for range 50 {
		warm()
	}
	if n := testing.AllocsPerRun(200, warm); n != 0 {
		t.Errorf("receiving an in-order segment: %v allocations, want 0", n)
	}

	send := func() {
		c.Write(tc.now, data)
		sndAck = c.snd.max
		in.Seq, in.Ack, in.Payload = seq, sndAck, nil
		c.HandleSegment(tc.now, in)
		tc.now = tc.now.Add(time.Millisecond)
		c.HandleTimers(tc.now)
	}
	for range 50 {
		send()
	}
	if n := testing.AllocsPerRun(200, send); n != 0 {
		t.Errorf("sending a segment and taking its ACK: %v allocations, want 0", n)
	}
}

// Taking ACKs with SACK blocks (the scoreboard, RACK, PRR and their
// retransmissions) allocates nothing once the transmit ring has grown.
func TestAllocsSACKRecovery(t *testing.T) {
	tc := sackBulk(t, 10000, withNoDelay)
	tc.c.sink = nullSink{}
	c := tc.c
	data := payload(1000, 0)
	hole := c.snd.una // the first segment is never acknowledged
	in := &Segment{Flags: A, Seq: irs + 1, Window: 65535}
	step := func() {
		c.Write(tc.now, data)
		in.Ack = hole
		in.Options.NumSACK = 1
		in.Options.SACKBlocks[0].Start = hole.Add(1000)
		in.Options.SACKBlocks[0].End = c.snd.max
		c.HandleSegment(tc.now, in)
		tc.now = tc.now.Add(time.Millisecond)
		c.HandleTimers(tc.now)
	}
	for range 300 {
		step()
	}
	if c.Stats().SACKRecoveries == 0 {
		t.Fatalf("no recovery: the test does not exercise it: %+v", c.Info())
	}
	if n := testing.AllocsPerRun(100, step); n != 0 {
		t.Errorf("taking a SACK: %v allocations, want 0", n)
	}
}

// pipeSink joins two connections back to back without allocating once
// warm: segments wait in a queue of copies whose payload arrays are
// reused.
type pipeSink struct {
	peer map[*Conn]*Conn
	q    []pipePacket
	bufs [][]byte
}

type pipePacket struct {
	to  *Conn
	seg Segment
}

func (p *pipeSink) SendSegment(c *Conn, s *Segment) {
	i := len(p.q)
	if i == len(p.bufs) {
		p.bufs = append(p.bufs, make([]byte, 0, 2048))
	}
	cp := *s
	p.bufs[i] = append(p.bufs[i][:0], s.Payload...)
	cp.Payload = p.bufs[i]
	p.q = append(p.q, pipePacket{to: p.peer[c], seg: cp})
}

func (p *pipeSink) StateChanged(*Conn, Transition) {}

// handshake makes a client and a server connection with cfg on p, shakes
// hands between them at epoch and checks both are ESTABLISHED.
func (p *pipeSink) handshake(t *testing.T, cfg *Config) (client, server *Conn) {
	t.Helper()
	a := netip.MustParseAddrPort("10.0.0.1:1234")
	b := netip.MustParseAddrPort("10.0.0.2:80")
	A := NewConn(cfg, Tuple{Local: a, Remote: b}, p)
	B := NewConn(cfg, Tuple{Local: b, Remote: a}, p)
	p.peer[A], p.peer[B] = B, A
	B.Listen(epoch)
	A.Connect(epoch)
	p.deliver(epoch)
	if A.State() != Established || B.State() != Established {
		t.Fatalf("handshake: client %v server %v", A.State(), B.State())
	}
	return A, B
}

// deliver hands over queued segments until none is left.
func (p *pipeSink) deliver(now time.Time) {
	for k := 0; k < len(p.q); k++ {
		p.q[k].to.HandleSegment(now, &p.q[k].seg)
	}
	p.q = p.q[:0]
}

// A short connection (handshake, one byte each way, close) allocates
// little beyond the two connections themselves (issue 13 item 6: it was
// four fresh 4 KiB rings, two MSS-sized scratch buffers and two 640-byte
// transmit rings, about 20 KB). Counted from ESTABLISHED to the end, so
// that the Conn structs and their congestion controllers, allocated by
// NewConn and the handshake, stay out of it; their loss-recovery state,
// made with the first data (lossState), is allowed for on top.
func TestAllocsShortConnection(t *testing.T) {
	cfg := &Config{Nagle: false}
	one := []byte{'x'}
	buf := make([]byte, 16)
	var ms runtime.MemStats
	life := func(p *pipeSink) (bytes, mallocs uint64) {
		now := epoch
		A, B := p.handshake(t, cfg)
		runtime.ReadMemStats(&ms)
		b0, m0 := ms.TotalAlloc, ms.Mallocs
		A.Write(now, one)
		p.deliver(now)
		if n, _ := B.Read(now, buf); n != 1 {
			t.Fatalf("B read %d bytes, want 1", n)
		}
		B.Write(now, one)
		p.deliver(now)
		if n, _ := A.Read(now, buf); n != 1 {
			t.Fatalf("A read %d bytes, want 1", n)
		}
		A.Close(now)
		p.deliver(now)
		B.Close(now)
		p.deliver(now)
		runtime.ReadMemStats(&ms)
		if A.State() != TimeWait || B.State() != Closed {
			t.Fatalf("close: A %v B %v, want TIME-WAIT and CLOSED", A.State(), B.State())
		}
		return ms.TotalAlloc - b0, ms.Mallocs - m0
	}
	p := &pipeSink{peer: map[*Conn]*Conn{}}
	life(p) // warm the pipe's queue
	var bytes, mallocs uint64
	for i := range 5 {
		// The least of a few runs: anything else the process allocates
		// meanwhile only adds.
		bt, m := life(p)
		if i == 0 || bt < bytes {
			bytes, mallocs = bt, m
		}
	}
	t.Logf("a short connection from ESTABLISHED to the end: %d bytes in %d allocations", bytes, mallocs)
	// Each end that sends data makes its loss state and its rate state
	// (delivery-rate estimation and pacing, rate.go, 456 bytes, which
	// came after this budget was first set).
	budget := 2048 + 2*uint64(unsafe.Sizeof(lossState{})+unsafe.Sizeof(rateState{}))
	if bytes > budget {
		t.Errorf("a short connection allocated %d bytes (%d allocations) after the handshake, want at most %d (2 KB, two loss states and two rate states)", bytes, mallocs, budget)
	}
}

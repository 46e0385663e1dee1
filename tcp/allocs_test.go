package tcp

import (
	"testing"
	"time"
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

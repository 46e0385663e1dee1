package tcp

import (
	"bytes"
	"testing"
	"time"

	"github.com/synack/synack/seqnum"
)

// testLoan is a Loan that counts its releases.
type testLoan struct {
	size     int
	released int
}

func (l *testLoan) Release()  { l.released++ }
func (l *testLoan) Size() int { return l.size }

// inLent injects an in-order data segment whose memory is lent, and
// reports whether the connection took the loan.
func (tc *tconn) inLent(seq int, data []byte, l *testLoan) bool {
	tc.t.Helper()
	s := &Segment{Seq: (irs + 1).Add(seqnum.Size(seq)), Ack: iss + 1, Flags: A, Window: tc.peerWin, Payload: data}
	return tc.c.HandleLentSegment(tc.now, s, l)
}

// returned hands the connection's returned loans to the test, releasing
// them as the runtime does.
func (tc *tconn) returned() int {
	r := tc.c.TakeReturned()
	for _, l := range r {
		l.Release()
	}
	return len(r)
}

// Large in-order segments whose memory a link lends stay where they are
// (no copy into the receive ring): reading copies them out, in order with
// the ring's bytes around them, and each loan comes back once, when its
// last byte has been read. Peek sees the same bytes and returns nothing.
// Small segments, and a loan much larger than its payload, are copied as
// before.
func TestLentSegmentsReadInOrder(t *testing.T) {
	tc := newEstablished(t)
	c := tc.c
	a, b, d := payload(100, 1), payload(5000, 2), payload(4096, 3)
	e := payload(200, 4)
	la, lb, ld, le := &testLoan{size: 8192}, &testLoan{size: 8192}, &testLoan{size: 8192}, &testLoan{size: 8192}
	if tc.inLent(0, a, la) {
		t.Fatal("a 100-byte segment's loan was taken: small text is copied")
	}
	if !tc.inLent(100, b, lb) {
		t.Fatal("a 5000-byte segment's loan was not taken")
	}
	wnd := c.rcvWindow()
	if !tc.inLent(5100, d, ld) {
		t.Fatal("a 4096-byte segment's loan was not taken")
	}
	if got := c.rcvWindow(); got != wnd-4096 {
		t.Fatalf("window after 4096 lent bytes: %d, want %d (lent bytes fill the window as buffered ones do)", got, wnd-4096)
	}
	if tc.inLent(9196, e, le) {
		t.Fatal("a 200-byte segment's loan was taken")
	}
	all := bytes.Join([][]byte{a, b, d, e}, nil)
	if c.Readable() != len(all) || c.LentBytes() != 9096 {
		t.Fatalf("readable %d, lent %d; want %d, 9096", c.Readable(), c.LentBytes(), len(all))
	}
	if m := c.BufferMemory(); m < 2*8192 {
		t.Fatalf("BufferMemory %d does not count the two loans held (8192 each)", m)
	}
	peek := make([]byte, len(all)+10)
	if n, err := c.Peek(tc.now, peek); err != nil || !bytes.Equal(peek[:n], all) {
		t.Fatalf("Peek: %d bytes, %v; want the %d bytes in order", n, err, len(all))
	}
	if tc.returned() != 0 {
		t.Fatal("a loan came back before its bytes were read")
	}
	// Read in pieces that end inside each kind of entry.
	var got []byte
	for _, k := range []int{60, 3000, 3000, 3000, 1000} {
		p := make([]byte, k)
		n, err := c.Read(tc.now, p)
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		got = append(got, p[:n]...)
		switch len(got) {
		case 3060:
			if tc.returned() != 0 {
				t.Fatal("b's loan came back with 2040 of its bytes unread")
			}
		case 6060:
			if tc.returned() != 1 || lb.released != 1 {
				t.Fatal("b's loan did not come back once its bytes were read")
			}
		}
	}
	if !bytes.Equal(got, all) {
		t.Fatalf("read %d bytes, not the %d received in order", len(got), len(all))
	}
	if tc.returned() != 1 || ld.released != 1 || la.released+le.released != 0 {
		t.Fatalf("releases: a %d, b %d, d %d, e %d; want 0, 1, 1, 0", la.released, lb.released, ld.released, le.released)
	}
	if c.Readable() != 0 || c.LentBytes() != 0 || c.lentMem() != 0 {
		t.Fatalf("after reading all: readable %d, lent %d, memory %d", c.Readable(), c.LentBytes(), c.lentMem())
	}
	// A loan four times the payload is not worth holding.
	if tc.inLent(9396, payload(4096, 5), &testLoan{size: 65536}) {
		t.Fatal("a 64 KiB loan for 4 KiB of text was taken")
	}
}

// Lent bytes dropped unread (CloseRead, an abort) give their loans back
// at once; nothing is released twice.
func TestLentSegmentsDropped(t *testing.T) {
	tc := newEstablished(t)
	c := tc.c
	l1, l2 := &testLoan{size: 5000}, &testLoan{size: 5000}
	tc.inLent(0, payload(5000, 1), l1)
	c.CloseRead(tc.now)
	if tc.returned() != 1 || l1.released != 1 {
		t.Fatal("CloseRead kept the loan of the bytes it dropped")
	}
	if tc.inLent(5000, payload(5000, 2), l2) {
		t.Fatal("a loan was taken after CloseRead: the bytes are dropped anyway")
	}

	tc = newEstablished(t)
	c = tc.c
	l3 := &testLoan{size: 5000}
	tc.inLent(0, payload(5000, 3), l3)
	c.Abort(tc.now)
	if tc.returned() != 1 || l3.released != 1 {
		t.Fatal("an abort kept the loan of unread bytes")
	}
	c.Release(tc.now, true)
	if tc.returned() != 0 || l3.released != 1 {
		t.Fatal("a loan came back twice")
	}
}

// A reader that stays a segment behind never lets the queue of lent
// segments empty: the queue's array must still stay the size of what it
// holds, not grow with every segment ever received.
func TestLentQueueDoesNotGrow(t *testing.T) {
	tc := newEstablished(t)
	c := tc.c
	seq := 0
	in := func() {
		if !tc.inLent(seq, payload(5000, byte(seq)), &testLoan{size: 5000}) {
			t.Fatal("loan not taken")
		}
		seq += 5000
	}
	in()
	p := make([]byte, 5000)
	for range 1000 {
		in()
		if n, err := c.Read(tc.now, p); n != 5000 || err != nil {
			t.Fatalf("Read = %d, %v", n, err)
		}
		tc.returned()
		tc.drain()
	}
	if n := cap(c.rcv.lent.q); n > 8 {
		t.Fatalf("the queue's array holds %d entries after 1000 segments with never more than 2 queued", n)
	}
}

// Receiving a lent segment, reading it and handing its loan back
// allocates nothing once the queue has its array, with the reader caught
// up or a segment behind.
func TestAllocsLentSegment(t *testing.T) {
	tc := newEstablished(t, withOptions)
	tc.c.sink = nullSink{}
	c := tc.c
	data := payload(5000, 0)
	readBuf := make([]byte, 5000)
	loan := &testLoan{size: 5000}
	seq := irs + 1
	in := &Segment{Flags: A, Ack: iss + 1, Window: 65535}
	warm := func() {
		in.Seq, in.Payload = seq, data
		if !c.HandleLentSegment(tc.now, in, loan) {
			t.Fatal("loan not taken")
		}
		seq += 5000
		c.Read(tc.now, readBuf)
		c.TakeReturned()
		tc.now = tc.now.Add(time.Millisecond)
		c.HandleTimers(tc.now)
	}
	for range 50 {
		warm()
	}
	if n := testing.AllocsPerRun(200, warm); n != 0 {
		t.Errorf("a lent segment in, read and returned (reader caught up): %v allocations, want 0", n)
	}
	in.Seq, in.Payload = seq, data
	c.HandleLentSegment(tc.now, in, loan) // one segment ahead of the reader from now on
	seq += 5000
	for range 50 {
		warm()
	}
	if n := testing.AllocsPerRun(200, warm); n != 0 {
		t.Errorf("a lent segment in, read and returned (reader a segment behind): %v allocations, want 0", n)
	}
}

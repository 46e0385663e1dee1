package tcp

import (
	"bytes"
	"io"
	"testing"
)

// Peek (recv's MSG_PEEK) copies in-order bytes and consumes nothing: they
// stay buffered, the window stays where it was (no window update goes out,
// RFC 9293 3.8.6.2.2), and the next Read returns the same bytes.
func TestPeekLeavesDataAndWindow(t *testing.T) {
	tc := newEstablishedMSS(t, 1000, func(c *Config) { c.ReceiveBufferSize = 4000 })
	if n, err := tc.c.Peek(tc.now, make([]byte, 10)); n != 0 || err != ErrWouldBlock {
		t.Fatalf("Peek with nothing received = %d, %v; want 0, ErrWouldBlock", n, err)
	}
	if n, err := tc.c.Peek(tc.now, nil); n != 0 || err != nil {
		t.Fatalf("Peek of 0 bytes = %d, %v; want 0, nil as Read", n, err)
	}
	data := payload(4000, 7)
	for i := range 4 {
		tc.in(seg{flags: A, seq: irs + 1 + seqv(uint32(i*1000)), ack: iss + 1, data: data[i*1000 : (i+1)*1000]})
	}
	tc.drain()
	before := tc.c.Info()
	deadline := tc.c.Deadline()

	p := make([]byte, 2500)
	for range 3 {
		n, err := tc.c.Peek(tc.now, p)
		if n != 2500 || err != nil || !bytes.Equal(p, data[:2500]) {
			t.Fatalf("Peek = %d, %v, %q; want 2500 bytes of the stream", n, err, trunc(p[:n]))
		}
	}
	tc.wantNothing("a peek opens no window: no window update")
	after := tc.c.Info()
	if after.RecvQueue != 4000 || after.RcvWnd != before.RcvWnd {
		t.Fatalf("after Peek: RecvQueue %d (want 4000), RcvWnd %d (want %d)", after.RecvQueue, after.RcvWnd, before.RcvWnd)
	}
	if d := tc.c.Deadline(); !d.Equal(deadline) {
		t.Fatalf("Peek moved the deadline from %v to %v", deadline, d)
	}
	tc.in(seg{flags: A, seq: irs + 6000, ack: iss + 1})
	tc.want("an ACK still offers a zero window after the peeks", seg{flags: A, seq: iss + 1, ack: irs + 4001, zeroWin: true})

	// Read gets the peeked bytes; consuming them is what opens the window.
	tc.wantRead("Read after Peek: the same bytes, all of them", data)
	tc.want("Read opened the window", seg{flags: A, seq: iss + 1, ack: irs + 4001, win: 4000})
}

// A peek across the end of the receive ring returns the bytes in order
// (the ring copies them into p when they wrap).
func TestPeekAcrossRingWrap(t *testing.T) {
	tc := newEstablishedMSS(t, 1000, func(c *Config) { c.ReceiveBufferSize = 4000 })
	data := payload(7000, 1)
	for i := range 4 {
		tc.in(seg{flags: A, seq: irs + 1 + seqv(uint32(i*1000)), ack: iss + 1, data: data[i*1000 : (i+1)*1000]})
	}
	if n, _ := tc.c.Read(tc.now, make([]byte, 3000)); n != 3000 {
		t.Fatalf("Read = %d, want 3000", n)
	}
	for i := 4; i < 7; i++ {
		tc.in(seg{flags: A, seq: irs + 1 + seqv(uint32(i*1000)), ack: iss + 1, data: data[i*1000 : (i+1)*1000]})
	}
	if r := tc.c.Readable(); r != 4000 {
		t.Fatalf("Readable = %d, want 4000", r)
	}
	if r := &tc.c.rcv.buf; r.head+r.n <= len(r.buf) {
		t.Fatalf("the ring does not wrap (head %d, %d bytes, size %d): the test tests nothing", r.head, r.n, len(r.buf))
	}
	p := make([]byte, 4000)
	if n, err := tc.c.Peek(tc.now, p); n != 4000 || err != nil || !bytes.Equal(p, data[3000:]) {
		t.Fatalf("Peek across the wrap = %d, %v, %q; want the stream's bytes 3000-6999", n, err, trunc(p[:n]))
	}
	tc.wantRead("Read after the wrapped Peek", data[3000:])
}

// With nothing buffered Peek answers as Read: io.EOF after the FIN, the
// reset's error after an RST.
func TestPeekEOFAndReset(t *testing.T) {
	tc := newEstablished(t)
	tc.in(seg{flags: A | P | F, seq: irs + 1, ack: iss + 1, data: []byte("bye")})
	p := make([]byte, 8)
	if n, err := tc.c.Peek(tc.now, p); n != 3 || err != nil || string(p[:n]) != "bye" {
		t.Fatalf("Peek before the FIN is reached = %d, %v, %q; want 3, nil, \"bye\"", n, err, p[:n])
	}
	tc.wantRead("Read after Peek", []byte("bye"))
	if n, err := tc.c.Peek(tc.now, p); n != 0 || err != io.EOF {
		t.Fatalf("Peek after the FIN = %d, %v; want 0, io.EOF", n, err)
	}
	if _, err := tc.c.Read(tc.now, p); err != io.EOF {
		t.Fatalf("Read after the FIN = %v, want io.EOF", err)
	}

	tc = newEstablished(t)
	tc.in(seg{flags: R, seq: irs + 1})
	_, perr := tc.c.Peek(tc.now, p)
	_, rerr := tc.c.Read(tc.now, p)
	if perr != ErrReset || rerr != ErrReset {
		t.Fatalf("after RST: Peek %v, Read %v; want both %v", perr, rerr, ErrReset)
	}
}

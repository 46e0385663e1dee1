package tcp

import (
	"bytes"
	"testing"
)

// In-order data for a reader that posted its buffer goes straight into
// it, as if read at once: the receive buffer stays empty and the window
// stays open; TakeRead hands it over and ends the offer.
func TestPostReadPlacesInOrderData(t *testing.T) {
	tc := newEstablished(t)
	c := tc.c
	wnd := c.rcvWindow()
	p := make([]byte, 150)
	if _, err := c.Read(tc.now, p); err != ErrWouldBlock {
		t.Fatalf("Read with nothing buffered: %v, want ErrWouldBlock", err)
	}
	c.PostRead(p)
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1, data: payload(100, 1)})
	if c.Placed() != 100 || c.Readable() != 0 || c.rcvWindow() != wnd {
		t.Fatalf("placed %d, buffered %d, window %d; want 100, 0, %d", c.Placed(), c.Readable(), c.rcvWindow(), wnd)
	}
	// More than the posted buffer holds: the rest waits in the buffer.
	tc.in(seg{flags: A, seq: irs + 101, ack: iss + 1, data: payload(100, 2)})
	if c.Placed() != 150 || c.Readable() != 50 {
		t.Fatalf("placed %d, buffered %d; want 150, 50", c.Placed(), c.Readable())
	}
	if n := c.TakeRead(tc.now); n != 150 {
		t.Fatalf("TakeRead = %d, want 150", n)
	}
	want := append(payload(100, 1), payload(100, 2)...)
	if !bytes.Equal(p, want[:150]) {
		t.Fatalf("posted buffer holds the wrong bytes")
	}
	tc.wantRead("the rest, from the buffer", want[150:])
	// No offer any more: data goes to the buffer.
	tc.in(seg{flags: A, seq: irs + 201, ack: iss + 1, data: payload(10, 3)})
	if c.Placed() != 0 || c.Readable() != 10 {
		t.Fatalf("after TakeRead: placed %d, buffered %d; want 0, 10", c.Placed(), c.Readable())
	}
}

// Data placed straight into a posted buffer keeps the byte order: not
// while bytes wait in the receive buffer ahead of it, nor when it fills a
// hole in front of out-of-order data, which must follow it.
func TestPostReadKeepsOrder(t *testing.T) {
	tc := newEstablished(t, withOptions)
	c := tc.c
	tc.in(seg{flags: A, seq: irs + 101, ack: iss + 1, data: payload(100, 2)}) // a hole before it
	tc.drain()
	p := make([]byte, 1000)
	c.PostRead(p)
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1, data: payload(100, 1)}) // fills the hole
	if c.Placed() != 0 || c.Readable() != 200 {
		t.Fatalf("hole filled: placed %d, buffered %d; want 0, 200", c.Placed(), c.Readable())
	}
	tc.in(seg{flags: A, seq: irs + 201, ack: iss + 1, data: payload(10, 3)}) // behind buffered bytes
	if c.Placed() != 0 || c.Readable() != 210 {
		t.Fatalf("bytes buffered ahead: placed %d, buffered %d; want 0, 210", c.Placed(), c.Readable())
	}
	if n := c.TakeRead(tc.now); n != 0 {
		t.Fatalf("TakeRead = %d, want 0", n)
	}
	tc.wantRead("all of it, in order", append(append(payload(100, 1), payload(100, 2)...), payload(10, 3)...))
}

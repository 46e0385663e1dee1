package tcp

import (
	"io"
	"testing"
	"time"
)

// RFC 9293 section 3.10.7.4 in ESTABLISHED: acceptability, text, delayed
// ACKs, and the user calls on an open connection.

// The four cases of the acceptability test (3.10.7.4 "first"), with
// RCV.NXT = irs+1 and RCV.WND = 16384.
func TestAcceptability(t *testing.T) {
	const wnd = 16384
	cases := []struct {
		name   string
		seq    uint32 // offset from RCV.NXT, may be negative as uint32
		n      int
		ok     bool
		stored int // bytes the segment adds beyond RCV.NXT when ok (in order or not)
	}{
		{"empty at RCV.NXT", 0, 0, true, 0},
		{"empty at the right edge - 1", wnd - 1, 0, true, 0},
		{"empty at the right edge", wnd, 0, false, 0},
		{"empty just before RCV.NXT", ^uint32(0), 0, false, 0},
		{"data at RCV.NXT", 0, 10, true, 10},
		{"data straddling the left edge", ^uint32(4), 10, true, 5},
		{"data straddling the right edge", wnd - 5, 10, true, 5},
		{"data ending at the right edge", wnd - 10, 10, true, 10},
		{"data at the right edge", wnd, 10, false, 0},
		{"old duplicate ending at RCV.NXT", ^uint32(9), 10, false, 0},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			tc := newEstablished(t)
			s := seg{flags: A, seq: irs + 1 + seqv(tt.seq), ack: iss + 1}
			if tt.n > 0 {
				s.data = payload(tt.n, 'a')
			}
			tc.in(s)
			if !tt.ok {
				tc.want("unacceptable: <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>", seg{flags: A, seq: iss + 1, ack: irs + 1})
				tc.wantNothing("and the segment is dropped")
				return
			}
			held := int(tc.c.Info().RcvNxt - (irs + 1))
			for _, sp := range tc.c.rcv.ooo.spanList() {
				held += sp.end - sp.start
			}
			if held != tt.stored {
				t.Fatalf("acceptable segment stored %d bytes, want %d", held, tt.stored)
			}
		})
	}
}

func TestZeroWindowAcceptability(t *testing.T) {
	setup := func(t *testing.T) *tconn {
		tc := newEstablishedMSS(t, 1000, func(c *Config) { c.ReceiveBufferSize = 2000 })
		tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1, data: payload(1000, 0)})
		tc.in(seg{flags: A, seq: irs + 1001, ack: iss + 1, data: payload(1000, 0)})
		tc.want("second full segment is ACKed at once, window now zero", seg{flags: A, seq: iss + 1, ack: irs + 2001, zeroWin: true})
		return tc
	}
	t.Run("empty at RCV.NXT is acceptable", func(t *testing.T) {
		tc := setup(t)
		tc.in(seg{flags: A, seq: irs + 2001, ack: iss + 1})
		tc.wantNothing("a plain ACK at RCV.NXT needs nothing")
	})
	t.Run("empty elsewhere is not", func(t *testing.T) {
		tc := setup(t)
		tc.in(seg{flags: A, seq: irs + 2002, ack: iss + 1})
		tc.want("ACK for an unacceptable segment", seg{flags: A, seq: iss + 1, ack: irs + 2001, zeroWin: true})
	})
	t.Run("data at RCV.NXT: ACK processed, data dropped", func(t *testing.T) {
		tc := setup(t)
		tc.write([]byte("x"))
		tc.want("our byte", seg{flags: A | P, seq: iss + 1, ack: irs + 2001, len: 1})
		tc.in(seg{flags: A, seq: irs + 2001, ack: iss + 2, data: []byte("probe")})
		tc.want("the probe is answered with the zero window", seg{flags: A, seq: iss + 2, ack: irs + 2001, zeroWin: true})
		if u := tc.c.Info().SndUna; u != iss+2 {
			t.Fatalf("special allowance: SND.UNA = %d, want %d (the ACK was taken)", u, iss+2)
		}
	})
	t.Run("RST at RCV.NXT resets", func(t *testing.T) {
		tc := setup(t)
		tc.in(seg{flags: R, seq: irs + 2001})
		tc.wantState("RST accepted in a zero window", Closed)
		tc.wantErr("reset", ErrReset)
	})
	t.Run("FIN at RCV.NXT waits", func(t *testing.T) {
		tc := setup(t)
		tc.in(seg{flags: F | A, seq: irs + 2001, ack: iss + 1})
		tc.want("FIN does not fit the zero window: ACK", seg{flags: A, seq: iss + 1, ack: irs + 2001})
		tc.wantState("FIN not taken", Established)
	})
}

func TestDelayedACK(t *testing.T) {
	tc := newEstablished(t)
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1, data: payload(100, 0)})
	tc.wantNothing("one segment: the ACK waits")
	tc.wantDeadlineIn("at most DelayedACK", DefaultDelayedACK)
	tc.advanceToDeadline()
	tc.want("delayed ACK", seg{flags: A, seq: iss + 1, ack: irs + 101})
	if tc.c.Stats().DelayedACKsSent != 1 {
		t.Fatalf("DelayedACKsSent = %d", tc.c.Stats().DelayedACKsSent)
	}

	// Every second full-sized segment is ACKed at once (RFC 5681 4.2).
	tc.in(seg{flags: A, seq: irs + 101, ack: iss + 1, data: payload(536, 0)})
	tc.wantNothing("first full segment: ACK waits")
	tc.in(seg{flags: A, seq: irs + 637, ack: iss + 1, data: payload(536, 0)})
	tc.want("second full segment: ACK now", seg{flags: A, seq: iss + 1, ack: irs + 1173})
	tc.wantNoDeadline("nothing owed")
}

func TestOutOfOrderACKedAtOnce(t *testing.T) {
	tc := newEstablished(t)
	tc.in(seg{flags: A, seq: irs + 101, ack: iss + 1, data: payload(100, 100)})
	tc.want("out-of-order data: duplicate ACK at once", seg{flags: A, seq: iss + 1, ack: irs + 1})
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1, data: payload(100, 0)})
	tc.want("the hole filled: ACK at once", seg{flags: A, seq: iss + 1, ack: irs + 201})
	want := append(payload(100, 0), payload(100, 100)...)
	tc.wantRead("both segments in order", want)
}

func TestDataBothWays(t *testing.T) {
	tc := newEstablished(t, withNoDelay)
	tc.write([]byte("ping"))
	tc.want("data", seg{flags: A | P, seq: iss + 1, ack: irs + 1, data: []byte("ping")})
	tc.wantDeadlineIn("retransmission timer at the initial RTO", time.Second)
	tc.in(seg{flags: A | P, seq: irs + 1, ack: iss + 5, data: []byte("pong")})
	tc.wantDeadlineIn("ours acknowledged: only the delayed ACK of pong is left", DefaultDelayedACK)
	tc.advanceToDeadline()
	tc.want("delayed ACK of pong", seg{flags: A, seq: iss + 5, ack: irs + 5})
	tc.wantNoDeadline("nothing outstanding either way")
}

func TestWriteAfterCloseEPIPE(t *testing.T) {
	tc := newFinWait1(t)
	if _, err := tc.c.Write(tc.now, []byte("x")); err != ErrClosing {
		t.Fatalf("Write after Close: %v, want EPIPE", err)
	}
	tc = newLastAck(t)
	if _, err := tc.c.Write(tc.now, []byte("x")); err != ErrClosing {
		t.Fatalf("Write in LAST-ACK: %v, want EPIPE", err)
	}
}

func TestReadAtEOF(t *testing.T) {
	tc := newEstablished(t)
	if _, err := tc.c.Read(tc.now, make([]byte, 4)); err != ErrWouldBlock {
		t.Fatalf("Read with nothing: %v, want EAGAIN", err)
	}
	tc.in(seg{flags: A | F, seq: irs + 1, ack: iss + 1, data: []byte("bye")})
	tc.want("ACK of data and FIN", seg{flags: A, seq: iss + 1, ack: irs + 5})
	tc.wantRead("data before EOF", []byte("bye"))
	if _, err := tc.c.Read(tc.now, make([]byte, 4)); err != io.EOF {
		t.Fatalf("Read at EOF: %v, want io.EOF", err)
	}
	if !tc.c.EOF() {
		t.Fatal("EOF() false after FIN")
	}
	// Still EOF once the connection is gone by the normal path.
	tc.c.Close(tc.now)
	tc.want("FIN", seg{flags: F | A, seq: iss + 1, ack: irs + 5})
	tc.in(seg{flags: A, seq: irs + 5, ack: iss + 2})
	tc.wantState("closed", Closed)
	if _, err := tc.c.Read(tc.now, make([]byte, 4)); err != io.EOF {
		t.Fatalf("Read after a graceful close: %v, want io.EOF", err)
	}
	if !tc.c.EOF() {
		t.Fatal("EOF() false after a graceful close")
	}
}

func TestCloseRead(t *testing.T) {
	tc := newEstablished(t)
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1, data: []byte("dropped")})
	tc.c.CloseRead(tc.now)
	if tc.c.Readable() != 0 {
		t.Fatal("CloseRead keeps buffered data")
	}
	tc.drain()
	tc.in(seg{flags: A, seq: irs + 8, ack: iss + 1, data: []byte("more")})
	tc.advance(time.Second)
	tc.want("later data is acknowledged and discarded", seg{flags: A, seq: iss + 1, ack: irs + 12})
	if tc.c.Readable() != 0 {
		t.Fatal("data after CloseRead is readable")
	}
	tc.write([]byte("still"))
	tc.want("the other direction still works", seg{flags: A | P, seq: iss + 1, ack: irs + 12, data: []byte("still")})
}

func TestReleaseWithUnreadDataSendsRST(t *testing.T) {
	// RFC 9293 3.6 / RFC 2525 2.17.
	tc := newEstablished(t)
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1, data: []byte("unread")})
	tc.c.Release(tc.now, false)
	tc.want("closing with unread data aborts", seg{flags: R, seq: iss + 1})
	tc.wantState("aborted", Closed)
}

func TestReleaseAbortSendsRST(t *testing.T) {
	tc := newEstablished(t)
	tc.c.Release(tc.now, true)
	tc.want("linger 0: RST", seg{flags: R, seq: iss + 1})
	tc.wantState("aborted", Closed)
	tc.wantTransition(Established, Closed, UserAbort)
}

func TestDataAfterReleaseGetsRST(t *testing.T) {
	tc := newEstablished(t)
	tc.c.Release(tc.now, false)
	tc.want("FIN", seg{flags: F | A, seq: iss + 1, ack: irs + 1})
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 2, data: []byte("late")})
	tc.want("nobody will read this: RST", seg{flags: R | A, seq: iss + 2, ack: irs + 5})
	tc.wantState("aborted", Closed)
	tc.wantErr("reset", ErrReset)
}

// Only new data after close is lost: a retransmission of data already
// received (here with the peer's FIN) is acknowledged, and the close goes
// on. Found by the simulation: the peer's ACK was lost, it resent its
// last data with its FIN, and a RST there cut short a clean close.
func TestRetransmittedDataAfterReleaseIsNoReset(t *testing.T) {
	tc := newEstablished(t)
	tc.in(seg{flags: A | P, seq: irs + 1, ack: iss + 1, data: []byte("data")})
	tc.wantRead("the data", []byte("data"))
	tc.c.Release(tc.now, false)
	tc.want("FIN, acknowledging the data", seg{flags: F | A, seq: iss + 1, ack: irs + 5})
	tc.in(seg{flags: F | P | A, seq: irs + 1, ack: iss + 1, data: []byte("data")})
	tc.want("their FIN is acknowledged; the old data changes nothing", seg{flags: A, seq: iss + 2, ack: irs + 6})
	tc.wantState("FINs crossed", Closing)
}

func TestAbortEstablished(t *testing.T) {
	tc := newEstablished(t)
	tc.c.Abort(tc.now)
	tc.want("ABORT: <SEQ=SND.NXT><CTL=RST>", seg{flags: R, seq: iss + 1})
	tc.wantState("closed", Closed)
	tc.wantErr("aborted", ErrConnectionAbort)
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1})
	tc.want("CLOSED answers with RST <SEQ=SEG.ACK>", seg{flags: R, seq: iss + 1})
}

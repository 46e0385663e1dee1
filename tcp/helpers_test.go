package tcp

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/wire"
)

// Helpers shared by the segment-level tests, on top of fixture_test.go.

// write calls Write and fails the test unless all of p is taken.
func (tc *tconn) write(p []byte) {
	tc.t.Helper()
	n, err := tc.c.Write(tc.now, p)
	if err != nil || n != len(p) {
		tc.t.Fatalf("Write(%d bytes) = %d, %v", len(p), n, err)
	}
}

// read reads everything readable now.
func (tc *tconn) read() []byte {
	tc.t.Helper()
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, err := tc.c.Read(tc.now, buf)
		out = append(out, buf[:n]...)
		if n == 0 || err != nil {
			return out
		}
	}
}

// wantRead checks that exactly want is readable now.
func (tc *tconn) wantRead(why string, want []byte) {
	tc.t.Helper()
	if got := tc.read(); !bytes.Equal(got, want) {
		tc.t.Fatalf("%s: read %q, want %q", why, trunc(got), trunc(want))
	}
}

func trunc(b []byte) []byte {
	if len(b) > 40 {
		return append(append([]byte(nil), b[:40]...), "..."...)
	}
	return b
}

// wantErr checks Err().
func (tc *tconn) wantErr(why string, want error) {
	tc.t.Helper()
	if got := tc.c.Err(); !errors.Is(got, want) && got != want {
		tc.t.Fatalf("%s: Err() = %v, want %v", why, got, want)
	}
}

// drain forgets every segment sent so far.
func (tc *tconn) drain() []Segment {
	out := tc.out
	tc.out = nil
	return out
}

// wantDeadlineIn checks that the next deadline is d from now.
func (tc *tconn) wantDeadlineIn(why string, d time.Duration) {
	tc.t.Helper()
	dl := tc.c.Deadline()
	if dl.IsZero() {
		tc.t.Fatalf("%s: no deadline, want one in %v", why, d)
	}
	if got := dl.Sub(tc.now); got != d {
		tc.t.Fatalf("%s: deadline in %v, want %v", why, got, d)
	}
}

// wantNoDeadline checks that no timer is armed.
func (tc *tconn) wantNoDeadline(why string) {
	tc.t.Helper()
	if dl := tc.c.Deadline(); !dl.IsZero() {
		tc.t.Fatalf("%s: deadline armed in %v, want none", why, dl.Sub(tc.now))
	}
}

// payload makes n bytes of recognisable data starting with byte b.
func payload(n int, b byte) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = b + byte(i%251)
	}
	return p
}

// mssOpt is a segment option list carrying only an MSS.
func mssOpt(m uint16) wire.TCPOptions { return wire.TCPOptions{HasMSS: true, MSS: m} }

// newEstablishedMSS is newEstablished where the peer's SYN,ACK announces
// an MSS of mss, so our segments carry up to mss bytes.
func newEstablishedMSS(t *testing.T, mss uint16, mods ...func(*Config)) *tconn {
	tc := newSynSent(t, mods...)
	tc.in(seg{flags: S | A, seq: irs, ack: iss + 1, opts: mssOpt(mss)})
	tc.want("ACK of SYN,ACK", seg{flags: A, seq: iss + 1, ack: irs + 1})
	tc.wantState("handshake done", Established)
	return tc
}

func withNoDelay(c *Config) { c.Nagle = false }

// wantEvents checks the causes of every transition so far, in order.
func (tc *tconn) wantCauses(why string, want ...string) {
	tc.t.Helper()
	var got []string
	for _, e := range tc.events {
		got = append(got, e.From.String()+">"+e.To.String()+":"+e.Cause.String())
	}
	if len(got) != len(want) {
		tc.t.Fatalf("%s: transitions\n  got  %q\n  want %q", why, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			tc.t.Fatalf("%s: transitions\n  got  %q\n  want %q", why, got, want)
		}
	}
}

func seqv(v uint32) seqnum.Value { return seqnum.Value(v) }

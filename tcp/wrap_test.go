package tcp

import (
	"bytes"
	"testing"

	"github.com/synack/synack/seqnum"
)

// Sequence numbers wrap modulo 2^32 (RFC 9293 3.4).

func TestSequenceWrap(t *testing.T) {
	cases := []struct {
		name          string
		local, remote seqnum.Value
	}{
		{"our ISS near the wrap", 0xFFFFFF00, irs},
		{"their ISS near the wrap", iss, 0xFFFFFF00},
		{"both near the wrap", 0xFFFFFFF0, 0xFFFFFFFE},
		{"ISS at 2^32-1", 0xFFFFFFFF, 0xFFFFFFFF},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tc := newTC(t, withNoDelay, func(cf *Config) { cf.ISN = FixedISN(c.local) })
			tc.c.Connect(tc.now)
			tc.want("SYN", seg{flags: S, seq: c.local})
			tc.in(seg{flags: S | A, seq: c.remote, ack: c.local + 1, opts: mssOpt(1000)})
			tc.want("ACK", seg{flags: A, seq: c.local + 1, ack: c.remote + 1})

			// Send 3000 bytes across the wrap.
			out := payload(3000, 7)
			tc.write(out)
			var got []byte
			for _, s := range tc.drain() {
				got = append(got, s.Payload...)
			}
			if !bytes.Equal(got, out) {
				t.Fatalf("sent %d bytes, want 3000", len(got))
			}
			tc.in(seg{flags: A, seq: c.remote + 1, ack: c.local + 3001})
			if u := tc.c.Info().SndUna; u != c.local+3001 {
				t.Fatalf("SND.UNA %#x, want %#x", u, c.local+3001)
			}
			tc.wantNoDeadline("all acknowledged across the wrap")

			// Receive 3000 bytes across the wrap, second half first.
			in := payload(3000, 3)
			tc.in(seg{flags: A, seq: c.remote + 1501, ack: c.local + 3001, data: in[1500:]})
			tc.want("out of order across the wrap", seg{flags: A, seq: c.local + 3001, ack: c.remote + 1})
			tc.in(seg{flags: A, seq: c.remote + 1, ack: c.local + 3001, data: in[:1500]})
			tc.want("hole filled", seg{flags: A, seq: c.local + 3001, ack: c.remote + 3001})
			tc.wantRead("in order", in)

			// An old segment from before the wrap is a duplicate.
			tc.in(seg{flags: A, seq: c.remote + 1, ack: c.local + 3001, data: in[:100]})
			tc.want("duplicate", seg{flags: A, seq: c.local + 3001, ack: c.remote + 3001})

			tc.c.Close(tc.now)
			tc.want("FIN", seg{flags: F | A, seq: c.local + 3001, ack: c.remote + 3001})
			tc.in(seg{flags: F | A, seq: c.remote + 3001, ack: c.local + 3002})
			tc.want("ACK of FIN", seg{flags: A, seq: c.local + 3002, ack: c.remote + 3002})
			tc.wantState("closed across the wrap", TimeWait)
		})
	}
}

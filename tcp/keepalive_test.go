package tcp

import (
	"testing"
	"time"
)

// Keep-alive (RFC 9293 3.8.4, RFC 1122 4.2.3.6).

func TestKeepAliveOffByDefault(t *testing.T) {
	tc := newEstablished(t)
	tc.wantNoDeadline("no keep-alive unless asked")
}

func TestKeepAliveProbesAndAbort(t *testing.T) {
	tc := newEstablished(t, func(c *Config) {
		c.KeepAlive, c.KeepAliveIdle, c.KeepAliveInterval, c.KeepAliveCount = true, time.Minute, 10*time.Second, 3
	})
	tc.wantDeadlineIn("first probe after the idle time", time.Minute)
	tc.advanceToDeadline()
	tc.want("probe: SEQ=SND.NXT-1, no data", seg{flags: A, seq: iss, ack: irs + 1})
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1})
	tc.wantDeadlineIn("an answer restarts the idle time", time.Minute)
	for i := range 3 {
		tc.advanceToDeadline()
		tc.want("probe", seg{flags: A, seq: iss, ack: irs + 1})
		if i < 2 {
			tc.wantDeadlineIn("next probe after the interval", 10*time.Second)
		}
	}
	tc.advanceToDeadline()
	tc.want("unanswered probes: RST", seg{flags: R, seq: iss + 1})
	tc.wantState("keep-alive gave up", Closed)
	tc.wantErr("timed out", ErrTimedOut)
}

func TestSetKeepAlive(t *testing.T) {
	tc := newEstablished(t)
	tc.c.SetKeepAlive(tc.now, true)
	tc.wantDeadlineIn("default idle", DefaultKeepAliveIdle)
	tc.c.SetKeepAlive(tc.now, false)
	tc.wantNoDeadline("off again")
}

// Per-connection timing, as TCP_KEEPIDLE / TCP_KEEPINTVL / TCP_KEEPCNT set
// it, overrides the shared Config.
func TestSetKeepAliveParams(t *testing.T) {
	tc := newEstablished(t)
	tc.c.SetKeepAlive(tc.now, true)
	tc.c.SetKeepAliveParams(tc.now, 15*time.Second, 5*time.Second, 2)
	tc.wantDeadlineIn("the connection's own idle time", 15*time.Second)
	tc.advanceToDeadline()
	tc.want("first probe", seg{flags: A, seq: iss, ack: irs + 1})
	tc.wantDeadlineIn("the connection's own interval", 5*time.Second)
	tc.advanceToDeadline()
	tc.want("second probe", seg{flags: A, seq: iss, ack: irs + 1})
	tc.advanceToDeadline()
	tc.want("two unanswered probes are the connection's limit", seg{flags: R, seq: iss + 1})
	tc.wantState("keep-alive gave up", Closed)
}

// With data in flight the retransmission timer watches the peer; no
// keep-alive probe goes out (RFC 1122 4.2.3.6: only on an idle connection).
func TestKeepAliveQuietWhileDataInFlight(t *testing.T) {
	tc := newEstablished(t, func(c *Config) {
		c.KeepAlive, c.KeepAliveIdle, c.KeepAliveInterval = true, time.Second, time.Second
		c.Nagle = false
		c.MinRTO, c.InitialRTO = 10*time.Second, 10*time.Second
	})
	tc.write([]byte("x"))
	tc.want("data", seg{flags: A | P, seq: iss + 1, ack: irs + 1, data: []byte("x")})
	tc.advance(5 * time.Second)
	tc.wantNothing("no keep-alive probe while the byte is unacknowledged")
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 2})
	tc.advance(1100 * time.Millisecond)
	tc.want("idle again: a probe", seg{flags: A, seq: iss + 1, ack: irs + 1})
}

package tcp

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/wire"
)

// Send-buffer auto-tuning and SO_SNDBUF/SO_RCVBUF (sndtune.go).

// newSndTune is an established connection with a 1 MiB maximum send
// buffer and a peer that offers 64 KiB.
func newSndTune(t *testing.T, mods ...func(*Config)) *tconn {
	mods = append([]func(*Config){func(c *Config) { c.SendBufferSize = 1 << 20 }, withNoDelay}, mods...)
	tc := newEstablishedMSS(t, 1000, mods...)
	tc.peerWin = 0xFFFF
	return tc
}

// fill writes as much as the connection takes now.
func (tc *tconn) fill() int {
	n, err := tc.c.Write(tc.now, payload(1<<20, 'x'))
	if err != nil && err != ErrWouldBlock {
		tc.t.Fatalf("Write: %v", err)
	}
	return n
}

// ackAll acknowledges everything sent so far, a round trip later.
func (tc *tconn) ackAll() {
	out := tc.drain()
	if len(out) == 0 {
		return
	}
	last := out[len(out)-1]
	tc.advance(10 * time.Millisecond)
	tc.in(seg{flags: A, seq: irs + 1, ack: last.Seq.Add(last.Len())})
}

func TestSendBufferStartsAtInitialAndFollowsCwnd(t *testing.T) {
	tc := newSndTune(t)
	if got := tc.fill(); got != InitialSendBuffer {
		t.Fatalf("first Write took %d bytes, want the initial buffer %d", got, InitialSendBuffer)
	}
	grew := false
	for round := range 12 {
		tc.ackAll()
		info := tc.c.Info()
		want := min(max(2*info.CWnd, InitialSendBuffer), 1<<20)
		want = max(want, tc.c.Unacked())
		if got := tc.c.SendBufferSize(); got != want {
			t.Fatalf("round %d: send buffer %d, want max(2*cwnd %d, 64 KiB) = %d", round, got, info.CWnd, want)
		}
		grew = grew || want > InitialSendBuffer
		if n := tc.fill(); tc.c.Unacked() > tc.c.SendBufferSize() {
			t.Fatalf("round %d: Write took %d, %d queued over the %d-byte buffer", round, n, tc.c.Unacked(), tc.c.SendBufferSize())
		}
	}
	if !grew {
		t.Fatalf("send buffer never grew past %d bytes (cwnd %d)", InitialSendBuffer, tc.c.Info().CWnd)
	}
}

func TestSendBufferNoGrowthUnderPressure(t *testing.T) {
	tc := newSndTune(t)
	tc.fill()
	tc.c.SetMemoryState(MemoryPressure)
	for range 8 {
		tc.ackAll()
		tc.fill()
	}
	if got := tc.c.SendBufferSize(); got != InitialSendBuffer {
		t.Fatalf("under pressure the send buffer grew to %d, want %d", got, InitialSendBuffer)
	}
	tc.c.SetMemoryState(MemoryNormal)
	tc.ackAll()
	if got := tc.c.SendBufferSize(); got <= InitialSendBuffer {
		t.Fatalf("after the pressure the send buffer stayed at %d (cwnd %d)", got, tc.c.Info().CWnd)
	}
}

func TestSendBufferOverLimitTakesNoNewMemory(t *testing.T) {
	tc := newSndTune(t)
	tc.c.SetMemoryState(MemoryOverLimit)
	if got := tc.fill(); got != ringKeep {
		t.Fatalf("over the limit with no send array, Write took %d, want the %d-byte minimum", got, ringKeep)
	}
	if got := tc.fill(); got != 0 {
		t.Fatalf("over the limit with a full array, Write took %d more", got)
	}
	size := tc.c.snd.buf.size()
	tc.ackAll()
	if got := tc.fill(); got == 0 || tc.c.snd.buf.size() != size {
		t.Fatalf("after an ACK over the limit: Write took %d, array %d -> %d bytes (want some, no growth)", got, size, tc.c.snd.buf.size())
	}
}

func TestSendBufferShrinksWhenDrainedAndIdle(t *testing.T) {
	tc := newSndTune(t)
	for range 10 {
		tc.fill()
		tc.ackAll()
	}
	for i := 0; i < 20 && tc.c.Unacked() > 0; i++ {
		tc.ackAll()
	}
	if tc.c.SendBufferSize() <= InitialSendBuffer || tc.c.Unacked() != 0 {
		t.Fatalf("setup: buffer %d, %d unacked; want grown and drained", tc.c.SendBufferSize(), tc.c.Unacked())
	}
	tc.advance(reclaimIdle + time.Millisecond)
	if m := tc.c.snd.buf.size(); m != 0 {
		t.Errorf("drained and idle, the send ring still holds a %d-byte array", m)
	}
	if got := tc.c.SendBufferSize(); got != InitialSendBuffer {
		t.Errorf("drained and idle, send buffer %d, want back to %d", got, InitialSendBuffer)
	}
}

func TestSetSendBufferDoublesAndLocks(t *testing.T) {
	tc := newSndTune(t)
	if err := tc.c.SetSendBuffer(10000); err != nil {
		t.Fatal(err)
	}
	if got := tc.c.SendBufferSize(); got != 20000 {
		t.Fatalf("SetSendBuffer(10000): size %d, want 20000 (doubled, as Linux)", got)
	}
	for range 8 {
		if n := tc.fill(); tc.c.Unacked() > 20000 {
			t.Fatalf("Write took %d: %d queued over the 20000 set", n, tc.c.Unacked())
		}
		tc.ackAll()
	}
	if got := tc.c.SendBufferSize(); got != 20000 {
		t.Fatalf("auto-tuning moved a set buffer to %d", got)
	}
	if err := tc.c.SetSendBuffer(1); err != nil || tc.c.SendBufferSize() != minSockBuffer {
		t.Fatalf("SetSendBuffer(1): %v, size %d, want %d", err, tc.c.SendBufferSize(), minSockBuffer)
	}
	if err := tc.c.SetSendBuffer(-1); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("SetSendBuffer(-1) = %v, want EINVAL", err)
	}
}

func TestNoAutoTuneKeepsFixedSendBuffer(t *testing.T) {
	tc := newSndTune(t, func(c *Config) { c.NoAutoTune = true })
	if got := tc.fill(); got != 1<<20 {
		t.Fatalf("NoAutoTune: Write took %d, want the whole 1 MiB buffer", got)
	}
}

func TestSetReceiveBufferBeforeConnectSetsScale(t *testing.T) {
	tc := newTC(t, withOptions)
	if err := tc.c.SetReceiveBuffer(4 << 20); err != nil {
		t.Fatal(err)
	}
	if err := tc.c.Connect(tc.now); err != nil {
		t.Fatal(err)
	}
	syn := tc.want("SYN", seg{flags: S, seq: iss, anyLen: true, opts: wire.TCPOptions{}})
	// 8 MiB (doubled) needs a shift of 8 to be named in 16 bits.
	if !syn.Options.HasWindowScale || syn.Options.WindowScale != 8 {
		t.Fatalf("SYN window scale %v/%d, want 8 for an 8 MiB buffer", syn.Options.HasWindowScale, syn.Options.WindowScale)
	}
	if got := tc.c.ReceiveBufferSize(); got != 8<<20 {
		t.Fatalf("ReceiveBufferSize %d, want 8 MiB", got)
	}
}

func TestSetReceiveBufferLocksWindow(t *testing.T) {
	tc := newEstablishedMSS(t, 1000, func(c *Config) { c.ReceiveBufferSize = 1 << 20 })
	if err := tc.c.SetReceiveBuffer(200000); err != nil {
		t.Fatal(err)
	}
	// The whole (doubled) buffer is the window's room at once, not
	// auto-tuned from 64 KiB (what the segment can name is then up to
	// the scale of the handshake; this one has none).
	tc.in(seg{flags: A | P, seq: irs + 1, ack: iss + 1, data: payload(1000, 'a')})
	if got, want := int(tc.c.rcvWindow()), 400000-1000; got != want {
		t.Fatalf("receive window %d after 1000 unread bytes, want %d (400000 set, no auto-tuning)", got, want)
	}
	if got := int(tc.c.windowField()); got != 0xFFFF {
		t.Fatalf("window field %d, want 65535: unscaled, it names no more", got)
	}
}

// In SACK recovery the bytes between SND.UNA and SND.MAX are more than
// what is in flight: the SACKed data above a hole stays in the send
// buffer until the hole is repaired, a round trip and more. A limit of
// twice cwnd then leaves no room for the window the controller may send
// next, and the sender goes application-limited every time a segment is
// lost (issue 11: BBR at 1 Gbit/s x 20 ms with 1 % loss found its
// buffer full with nothing unsent in most rounds, its delivery rate fell
// short of its pacing rate, and bw_lo and inflight_lo learned the
// shortfall round after round). The buffer holds the unacknowledged
// bytes and a congestion window beyond them, on ACKs that SACK too.
func TestSendBufferHoldsAWindowBeyondTheSACKedFlight(t *testing.T) {
	for _, cc := range []string{"cubic", "bbr"} {
		t.Run(cc, func(t *testing.T) {
			tc := newEstablishedSACK(t, withNoDelay, func(c *Config) {
				c.SendBufferSize = 4 << 20
				c.CongestionControl = cc
			})
			tc.peerWin = 0xFFFF // scale 7: 8 MiB
			tc.fill()
			for range 6 {
				tc.ackAll()
				tc.fill()
			}
			out := tc.drain()
			if len(out) < 20 {
				t.Fatalf("%d segments in flight, want a window of 20 or more", len(out))
			}
			// The first segment of the flight is lost; the peer SACKs
			// the rest, one ACK per segment as it arrives.
			tc.advance(10 * time.Millisecond)
			una := tc.c.snd.una
			var sndMax seqnum.Value
			for _, s := range out[1:] {
				sndMax = tc.c.snd.max
				var o wire.TCPOptions
				o.SACKBlocks[0] = wire.SACKBlock{Start: out[1].Seq, End: s.Seq.Add(s.Len())}
				o.NumSACK = 1
				tc.in(seg{flags: A, seq: irs + 1, ack: una, opts: o})
			}
			// What was unacknowledged when the last ACK came (the sender
			// then sent new data from the queue, which moves no limit).
			unacked := tc.c.snd.buf.len() - tc.c.unsent() - int(sndMax.Size(tc.c.snd.max))
			cwnd := tc.c.Info().CWnd
			if got := tc.c.SendBufferSize(); got < unacked+cwnd {
				t.Fatalf("in recovery: send buffer %d bytes, %d of them sent and unacknowledged, cwnd %d: want room for a window beyond them, %d",
					got, unacked, cwnd, unacked+cwnd)
			}
		})
	}
}

package tcp

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/synack/synack/wire"
)

// Bounded memory (issue 12): out-of-order data costs what was received,
// buffers are given back when drained, orphans end.

// newEstablishedSACK is an established connection with a 1 MiB receive
// buffer, window scaling and SACK in use both ways (no timestamps, so
// segments stay plain).
func newEstablishedSACK(t *testing.T, mods ...func(*Config)) *tconn {
	mods = append([]func(*Config){withOptions, func(c *Config) {
		c.NoTimestamps = true
		c.ReceiveBufferSize = 1 << 20
	}}, mods...)
	tc := newTC(t, mods...)
	tc.c.Connect(tc.now)
	tc.drain()
	o := synOpts(7, 1)
	o.HasTimestamps = false
	o.MSS = 1000
	tc.in(seg{flags: S | A, seq: irs, ack: iss + 1, opts: o})
	tc.want("ACK of SYN,ACK", seg{flags: A, seq: iss + 1, ack: irs + 1})
	tc.wantState("handshake done", Established)
	return tc
}

func TestOutOfOrderCostsWhatArrived(t *testing.T) {
	// A fixed 1 MiB window, so that 1,000,000 ahead is inside it: what is
	// tested is the cost of the out-of-order data held. (Auto-tuned, the
	// window starts at 64 KiB and the byte is outside it: autotune_test.go.)
	tc := newEstablishedSACK(t, func(c *Config) { c.NoAutoTune = true })
	far := irs + 1 + 1_000_000
	tc.in(seg{flags: A, seq: far, ack: iss + 1, data: []byte{'x'}})
	s := tc.want("out of order: duplicate ACK at once", seg{flags: A, seq: iss + 1, ack: irs + 1})
	if got := s.Options.SACK(); len(got) != 1 || got[0].Start != far || got[0].End != far+1 {
		t.Fatalf("SACK %v, want [%d,%d)", got, far, far+1)
	}
	if m := tc.c.BufferMemory(); m > 1024 {
		t.Fatalf("one byte 1,000,000 ahead of RCV.NXT holds %d bytes of buffer memory, want what arrived (< 1 KiB)", m)
	}
	// The same byte again costs nothing more; more far bytes cost theirs.
	tc.in(seg{flags: A, seq: far, ack: iss + 1, data: []byte{'x'}})
	tc.in(seg{flags: A, seq: far - 500_000, ack: iss + 1, data: []byte("yz")})
	tc.drain()
	if m := tc.c.BufferMemory(); m != 2*oooChunkOverhead+3 {
		t.Fatalf("buffer memory %d, want %d", m, 2*oooChunkOverhead+3)
	}
	// The data is still delivered in order once the holes fill.
	data := payload(1_000_001, 0)
	data[1_000_000] = 'x'
	data[500_000], data[500_001] = 'y', 'z'
	var got []byte
	buf := make([]byte, 1<<16)
	for off := 0; off < len(data); off += 1000 {
		end := min(off+1000, len(data))
		if off == 1_000_000 {
			continue // the byte held: not sent again
		}
		tc.in(seg{flags: A, seq: irs + 1 + seqv(uint32(off)), ack: iss + 1, data: data[off:end]})
		for {
			n, _ := tc.c.Read(tc.now, buf)
			if n == 0 {
				break
			}
			got = append(got, buf[:n]...)
		}
	}
	got = append(got, tc.read()...)
	if !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, want the %d sent, in order", len(got), len(data))
	}
	if i := tc.c.Info(); i.RcvNxt != irs+1+seqv(uint32(len(data))) {
		t.Fatalf("RCV.NXT %d, want %d", i.RcvNxt, irs+1+seqv(uint32(len(data))))
	}
	if m := tc.c.BufferMemory(); m > ringKeep {
		t.Fatalf("everything read: %d bytes of buffer memory held, want at most %d", m, ringKeep)
	}
}

func TestOutOfOrderLimit(t *testing.T) {
	// Room for three 1000-byte pieces: each costs its bytes plus the
	// bookkeeping.
	limit := 3*chunkCost(1000) + 10
	tc := newEstablishedSACK(t, func(c *Config) { c.OutOfOrderLimit = limit })
	data := payload(10000, 0)
	at := func(off int) seg {
		return seg{flags: A, seq: irs + 1 + seqv(uint32(off)), ack: iss + 1, data: data[off : off+1000]}
	}
	tc.in(at(2000))
	tc.in(at(4000))
	tc.in(at(6000))
	tc.in(at(8000))
	st := tc.c.Stats()
	if st.OutOfOrderSegs != 3 || st.OutOfOrderDropped != 1 {
		t.Fatalf("stored %d, dropped %d: want the fourth, farthest, dropped over the limit", st.OutOfOrderSegs, st.OutOfOrderDropped)
	}
	if got := oooCost(tc.c); got > limit {
		t.Fatalf("out-of-order cost %d over the limit %d", got, limit)
	}
	// Data nearer RCV.NXT is worth more: it makes room by dropping the
	// farthest piece (as Linux's tcp_prune_ofo_queue does).
	tc.in(at(1000))
	st = tc.c.Stats()
	if st.OutOfOrderSegs != 4 || st.OutOfOrderPruned != 1000 {
		t.Fatalf("stored %d, pruned %d bytes: want [1000,2000) kept and [6000,7000) dropped for it", st.OutOfOrderSegs, st.OutOfOrderPruned)
	}
	tc.drain()
	tc.in(at(0))
	tc.want("the hole filled: everything held up to 3000 acknowledged", seg{flags: A, seq: iss + 1, ack: irs + 3001})
	// The peer sends the rest again (nothing dropped was acknowledged).
	for off := 3000; off < 10000; off += 1000 {
		tc.in(at(off))
	}
	tc.drain()
	tc.wantRead("every byte once, in order", data)
}

func TestOutOfOrderTinyPiecesPayTheirBookkeeping(t *testing.T) {
	// One-byte islands: each costs its bookkeeping, so the limit bounds a
	// flood of them well before the island count would.
	tc := newEstablishedSACK(t, func(c *Config) { c.OutOfOrderLimit = 20 * chunkCost(1) })
	for i := range 1000 {
		tc.in(seg{flags: A, seq: irs + 3 + seqv(uint32(2*i)), ack: iss + 1, data: []byte{byte(i)}})
	}
	if n := tc.c.rcv.ooo.spans.len(); n != 20 {
		t.Fatalf("%d islands held, want the 20 the limit pays for", n)
	}
	if got := tc.c.BufferMemory(); got > 20*chunkCost(1) {
		t.Fatalf("buffer memory %d over the out-of-order limit", got)
	}
}

func TestPrune(t *testing.T) {
	tc := newEstablishedSACK(t)
	data := payload(5000, 0)
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1, data: data[:1000]})
	tc.in(seg{flags: A, seq: irs + 2001, ack: iss + 1, data: data[2000:3000]})
	tc.in(seg{flags: A, seq: irs + 4001, ack: iss + 1, data: data[4000:5000]})
	s := tc.drain()
	last := s[len(s)-1]
	if last.Options.NumSACK != 2 {
		t.Fatalf("SACK blocks %v, want 2", last.Options.SACK())
	}
	win := last.Window

	if n := tc.c.Prune(); n != 2000 {
		t.Fatalf("Prune dropped %d bytes, want the 2000 held out of order", n)
	}
	if m := tc.c.BufferMemory(); m > ringKeep {
		t.Fatalf("after Prune %d bytes held", m)
	}
	if tc.c.Readable() != 1000 {
		t.Fatal("Prune dropped in-order (acknowledged) data")
	}
	// The next ACK reports no SACK blocks (RFC 2018 section 8 lets a
	// receiver renege) and offers the same window: its right edge does
	// not move back (RFC 9293 3.8.6, RFC 7323 section 2.4).
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1}) // a window probe-like empty ACK
	tc.c.sendACK(tc.now)
	a := tc.want("ACK after Prune", seg{flags: A, seq: iss + 1, ack: irs + 1001})
	if a.Options.NumSACK != 0 || a.Window != win {
		t.Fatalf("after Prune: SACK %v window %d, want none and %d", a.Options.SACK(), a.Window, win)
	}
	// The peer sends it again and all arrives.
	tc.in(seg{flags: A, seq: irs + 1001, ack: iss + 1, data: data[1000:5000]})
	tc.drain()
	tc.wantRead("all of it", data)
}

func TestBuffersGivenBackWhenDrained(t *testing.T) {
	tc := newEstablishedMSS(t, 1000, withNoDelay, func(c *Config) {
		c.ReceiveBufferSize, c.SendBufferSize = 60000, 60000
	})
	// A burst in: the receive ring grows to hold it ...
	data := payload(50000, 0)
	for off := 0; off < len(data); off += 1000 {
		tc.in(seg{flags: A, seq: irs + 1 + seqv(uint32(off)), ack: iss + 1, win: 60000, data: data[off : off+1000]})
	}
	if m := tc.c.rcv.buf.size(); m < 50000 {
		t.Fatalf("receive ring %d bytes while holding 50000", m)
	}
	// ... and is given back once read and quiet for reclaimIdle.
	tc.wantRead("the burst", data)
	tc.advance(reclaimIdle)
	if m := tc.c.rcv.buf.size(); m > ringKeep {
		t.Fatalf("drained receive ring holds %d bytes, want at most %d", m, ringKeep)
	}
	// A burst out: the send buffer goes once everything is acknowledged.
	tc.drain()
	tc.write(data)
	for range 200 {
		out := tc.drain()
		if len(out) == 0 {
			break
		}
		last := out[len(out)-1]
		tc.in(seg{flags: A, seq: irs + 50001, ack: last.Seq.Add(last.Len()), win: 60000})
	}
	if u := tc.c.Unacked(); u != 0 {
		t.Fatalf("%d bytes still unacknowledged", u)
	}
	if m := tc.c.snd.buf.size(); m < 50000 {
		t.Fatalf("acknowledged send buffer holds %d bytes at once: a busy connection would allocate it again and again", m)
	}
	tc.advance(reclaimIdle)
	if m := tc.c.snd.buf.size(); m > ringKeep {
		t.Fatalf("acknowledged send buffer holds %d bytes, want at most %d", m, ringKeep)
	}
	if m := tc.c.BufferMemory(); m > 2*ringKeep {
		t.Fatalf("drained connection holds %d bytes of buffers", m)
	}
	if tc.c.out.Payload != nil {
		t.Fatal("the last segment sent still points into the send buffer's array")
	}
	tc.wantNoDeadline("buffers given back: no timer left")
}

func TestBusyBufferKept(t *testing.T) {
	// A ring that empties and fills again within reclaimIdle keeps its
	// array: giving it back at every empty moment would make a busy
	// connection allocate its way back up each time.
	tc := newEstablishedMSS(t, 1000, withNoDelay, func(c *Config) { c.ReceiveBufferSize = 60000 })
	data := payload(20000, 0)
	seq := irs + 1
	for round := range 10 {
		for off := 0; off < len(data); off += 1000 {
			tc.in(seg{flags: A, seq: seq, ack: iss + 1, data: data[off : off+1000]})
			seq += 1000
		}
		size := tc.c.rcv.buf.size()
		tc.wantRead("a burst", data)
		tc.drain()
		tc.advance(reclaimIdle / 4)
		if round > 0 && tc.c.rcv.buf.size() != size {
			t.Fatalf("round %d: ring %d bytes, then %d: given back while busy", round, size, tc.c.rcv.buf.size())
		}
	}
}

func TestOrphanZeroWindowPeerIsReset(t *testing.T) {
	// An application closes with 1 MiB queued; the peer never reads and
	// answers every zero-window probe. Without a bound the connection
	// lives in FIN-WAIT-1 forever (issue 12).
	// (A fixed buffer: auto-tuned, it would start at 64 KiB, sndtune.go.)
	tc := newEstablishedMSS(t, 1000, withNoDelay, func(c *Config) { c.SendBufferSize, c.NoAutoTune = 1<<20, true })
	tc.write(payload(1<<20, 'q'))
	out := tc.drain()
	last := out[len(out)-1]
	tc.peerWin = 0
	tc.in(seg{flags: A, seq: irs + 1, ack: last.Seq.Add(last.Len()), zeroWin: true})
	tc.c.Release(tc.now, false)
	tc.wantState("closed by its owner with data queued", FinWait1)
	start := tc.now
	probes := 0
	for tc.c.State() != Closed && tc.now.Sub(start) < 24*time.Hour {
		tc.advanceToDeadline()
		for _, s := range tc.drain() {
			if s.Flags&wire.RST != 0 {
				continue
			}
			probes++
			// A correct TCP with a full buffer: the probe is not taken,
			// the ACK repeats the zero window.
			tc.in(seg{flags: A, seq: irs + 1, ack: s.Seq, zeroWin: true})
		}
	}
	tc.wantState("the orphan is reset after its retries", Closed)
	if probes != DefaultOrphanRetries {
		t.Errorf("%d probes, want %d (Config.OrphanRetries default)", probes, DefaultOrphanRetries)
	}
	if d := tc.now.Sub(start); d > 10*time.Minute {
		t.Errorf("reset after %v", d)
	}
	tc.wantErr("ended by timeout", ErrTimedOut)
	if st := tc.c.Stats(); st.OrphanResets != 1 {
		t.Errorf("OrphanResets %d, want 1", st.OrphanResets)
	}
	if m := tc.c.BufferMemory(); m != 0 {
		t.Errorf("reset orphan still holds %d bytes", m)
	}
}

func TestOrphanRetriesNotForOwnedConnection(t *testing.T) {
	// RFC 1122 4.2.2.17: while the application still owns the
	// connection, a zero window answered forever is probed forever.
	tc := newEstablishedMSS(t, 1000, withNoDelay)
	tc.write(payload(12000, 'q'))
	out := tc.drain()
	last := out[len(out)-1]
	tc.peerWin = 0
	tc.in(seg{flags: A, seq: irs + 1, ack: last.Seq.Add(last.Len()), zeroWin: true})
	for range 50 {
		tc.advanceToDeadline()
		for _, s := range tc.drain() {
			tc.in(seg{flags: A, seq: irs + 1, ack: s.Seq, zeroWin: true})
		}
	}
	tc.wantState("still probing", Established)
}

func TestOrphanRetriesResetByProgress(t *testing.T) {
	// An orphan whose peer takes data, however slowly, is not reset:
	// the budget counts retries without progress.
	tc := newEstablishedMSS(t, 1000, withNoDelay, func(c *Config) { c.OrphanRetries = 2 })
	tc.write(payload(3000, 'q'))
	tc.drain()
	tc.peerWin = 0
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1, zeroWin: true})
	tc.c.Release(tc.now, false)
	una := iss + 1
	for range 20 {
		tc.advanceToDeadline()
		for _, s := range tc.drain() {
			if s.Len() > 0 && s.Flags&wire.FIN == 0 {
				una = s.Seq + 1 // the peer takes the probe's byte
			}
			tc.in(seg{flags: A, seq: irs + 1, ack: una, zeroWin: true})
		}
	}
	tc.wantState("progressing orphan still open", FinWait1)
}

// oooCost is what the connection's out-of-order data counts against
// Config.OutOfOrderLimit.
func oooCost(c *Conn) int { return c.rcv.ooo.cost }

// Random overlapping, duplicated and reordered pieces of one stream, under
// a tight out-of-order limit and with Prune calls: what is read is the
// stream, each byte once, in order, and the bookkeeping stays consistent.
func TestReassemblyRandomPieces(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 12))
		limit := 0
		if seed%2 == 1 {
			limit = 3000 + rng.IntN(6000)
		}
		tc := newEstablishedSACK(t, func(c *Config) { c.ReceiveBufferSize, c.OutOfOrderLimit = 1<<16, limit })
		stream := make([]byte, 30000)
		for i := range stream {
			stream[i] = byte(rng.Uint32())
		}
		var got []byte
		nxt := func() int { return int(tc.c.Info().RcvNxt - (irs + 1)) }
		for range 3000 {
			off := max(nxt()-200+rng.IntN(12000), 0)
			if off >= len(stream) {
				continue
			}
			end := min(off+1+rng.IntN(1500), len(stream))
			tc.in(seg{flags: A, seq: irs + 1 + seqv(uint32(off)), ack: iss + 1, data: stream[off:end]})
			switch rng.IntN(20) {
			case 0:
				tc.c.Prune()
			case 1, 2, 3:
				got = append(got, tc.read()...)
			}
			tc.drain()
			checkInvariants(t, tc)
		}
		for off := nxt(); off < len(stream); off = nxt() {
			tc.in(seg{flags: A, seq: irs + 1 + seqv(uint32(off)), ack: iss + 1, data: stream[off:min(off+1000, len(stream))]})
			got = append(got, tc.read()...)
		}
		if !bytes.Equal(got, stream) {
			t.Fatalf("seed %d: read %d bytes, not the %d-byte stream", seed, len(got), len(stream))
		}
		st := tc.c.Stats()
		t.Logf("seed %d: %d out-of-order segments stored, %d dropped, %d bytes pruned", seed, st.OutOfOrderSegs, st.OutOfOrderDropped, st.OutOfOrderPruned)
		if !tc.c.rcv.ooo.empty() || oooCost(tc.c) != 0 {
			t.Fatalf("seed %d: out-of-order data left after the stream was read", seed)
		}
	}
}

package stack

import (
	"io"
	"net/netip"
	"runtime"
	"testing"
	"testing/synctest"
	"time"

	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/tcp"
	"github.com/synack/synack/wire"
)

// Bounded memory under attack (issue 12), through the whole stack on a
// memlink, measured as Go heap after a GC. These are memory bounds, not
// speed assertions.

// heapNow is the live heap after a full collection.
func heapNow() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func perConn(before, after uint64, n int) int64 {
	return (int64(after) - int64(before)) / int64(n)
}

// openRaw completes a handshake with the stack's listener on addrA:80 from
// addrB:port, as a peer offering window scaling and SACK, and returns the
// stack's ISS.
func (r *rawPeer) openRaw(port uint16, peerISS seqnum.Value) seqnum.Value {
	r.t.Helper()
	from, to := netip.AddrPortFrom(addrB, port), netip.AddrPortFrom(addrA, 80)
	r.send(tcpPacket(from, to, wire.TCPHeader{Seq: peerISS, Flags: wire.SYN, Window: 65535,
		Options: wire.TCPOptions{HasMSS: true, MSS: 1460, HasWindowScale: true, WindowScale: 7, SACKPermitted: true}}, nil))
	p := r.recv()
	if p == nil {
		r.t.Fatal("no SYN,ACK")
	}
	h, _, err := wire.ParseTCP(p.Payload, p.Src, p.Dst, true)
	if err != nil || h.Flags != wire.SYN|wire.ACK {
		r.t.Fatalf("want SYN,ACK, got %v %v", h, err)
	}
	r.send(tcpPacket(from, to, wire.TCPHeader{Seq: peerISS + 1, Ack: h.Seq + 1, Flags: wire.ACK, Window: 512}, nil))
	return h.Seq
}

// drain forgets what the stack has sent.
func (r *rawPeer) drain() {
	synctest.Wait()
	for {
		select {
		case <-r.got:
		default:
			return
		}
	}
}

// The out-of-order amplification attack of issue 12: one byte a megabyte
// ahead of RCV.NXT made the connection's receive ring grow to a megabyte.
// With a fixed 1 MiB window (NoAutoTune) the byte is inside it, held
// (and SACKed) at the cost of what arrived; auto-tuned, the window starts
// at 64 KiB and the byte lies beyond it: dropped, answered with a plain
// ACK (RFC 9293 3.10.7.4), costing nothing.
func TestOutOfOrderAmplification(t *testing.T) {
	t.Run("fixed", func(t *testing.T) { testOutOfOrderAmplification(t, true) })
	t.Run("autotune", func(t *testing.T) { testOutOfOrderAmplification(t, false) })
}

func testOutOfOrderAmplification(t *testing.T, fixed bool) {
	const conns = 1000
	synctest.Test(t, func(t *testing.T) {
		r := newRawPeerOpts(t, Options{TCP: tcp.Config{NoAutoTune: fixed}})
		l, err := r.s.ListenTCP(netip.AddrPortFrom(addrA, 80), conns)
		if err != nil {
			t.Fatal(err)
		}
		accepted := make(chan *TCPConn, conns)
		go func() {
			for {
				c, err := l.AcceptTCP()
				if err != nil {
					return
				}
				accepted <- c // held, as a server holds its connections
			}
		}()
		base := heapNow()
		iss := make([]seqnum.Value, conns)
		for i := range conns {
			iss[i] = r.openRaw(uint16(10000+i), 1000)
		}
		synctest.Wait()
		if n := len(accepted); n != conns {
			t.Fatalf("%d connections accepted, want %d", n, conns)
		}
		idle := heapNow()
		for i := range conns {
			from, to := netip.AddrPortFrom(addrB, uint16(10000+i)), netip.AddrPortFrom(addrA, 80)
			r.send(tcpPacket(from, to, wire.TCPHeader{Seq: 1001 + 1_000_000, Ack: iss[i] + 1, Flags: wire.ACK, Window: 512}, []byte{'x'}))
			p := r.recv()
			if p == nil {
				t.Fatal("no duplicate ACK for the out-of-order byte")
			}
			h, _, err := wire.ParseTCP(p.Payload, p.Src, p.Dst, true)
			if err != nil || h.Ack != 1001 {
				t.Fatalf("want a duplicate ACK of 1001, got %v %v", h, err)
			}
			sack := h.Options.SACK()
			if fixed && (len(sack) != 1 || sack[0].Start != 1001+1_000_000) {
				t.Fatalf("SACK %v, want the byte at %d", sack, 1001+1_000_000)
			}
			if !fixed && len(sack) != 0 {
				t.Fatalf("SACK %v, want none: the byte is beyond the auto-tuned window", sack)
			}
		}
		attacked := heapNow()
		t.Logf("heap per connection: idle %d B, out-of-order-attacked %d B more", perConn(base, idle, conns), perConn(idle, attacked, conns))
		if grew := perConn(idle, attacked, conns); grew >= 64<<10 {
			t.Errorf("one out-of-order byte per connection grew the heap by %d bytes per connection, want < 64 KiB", grew)
		}
		// Reset them one by one, taking what the stack sends, so nothing
		// is left blocked on the peer's queue when the bubble ends.
		l.Close()
		for range conns {
			c := <-accepted
			c.SetLinger(0)
			c.Close()
			r.drain()
		}
	})
}

// A burst read to the end and then a quiet second: the buffers of both
// ends go back (issue 12: about 1.9 MiB per pair stayed for good).
func TestDrainedConnectionReturnsBuffers(t *testing.T) {
	const pairs = 20
	const burst = 1 << 20
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{})
		base := heapNow()
		type cs struct{ c, s *TCPConn }
		var conns []cs
		for i := range pairs {
			c, s := p.connect(t, uint16(8000+i))
			conns = append(conns, cs{c, s})
		}
		idle := heapNow()
		buf := make([]byte, burst)
		for _, x := range conns {
			done := make(chan error, 1)
			go func() {
				_, err := x.c.Write(buf)
				done <- err
			}()
			if _, err := io.ReadFull(x.s, make([]byte, burst)); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(2 * time.Second) // quiet: the reclaim timers run
		synctest.Wait()
		drained := heapNow()
		t.Logf("heap per connection pair: idle %d B, drained after a %d B burst %d B more", perConn(base, idle, pairs), burst, perConn(idle, drained, pairs))
		if grew := perConn(idle, drained, pairs); grew >= 64<<10 {
			t.Errorf("a drained, quiet connection pair holds %d bytes more than an idle one, want < 64 KiB", grew)
		}
		runtime.KeepAlive(conns)
	})
}

// An application closes a connection with 1 MiB queued; the peer is a
// correct TCP that never reads: it answers every zero-window probe. The
// orphan is reset after Config.OrphanRetries probes (issue 12: it lived
// in FIN-WAIT-1 for good).
func TestOrphanNeverReadingPeerReset(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRawPeer(t)
		l, err := r.s.ListenTCP(netip.AddrPortFrom(addrA, 80), 1)
		if err != nil {
			t.Fatal(err)
		}
		from, to := netip.AddrPortFrom(addrB, 4000), netip.AddrPortFrom(addrA, 80)
		iss := r.openRaw(4000, 1000)
		c, err := l.AcceptTCP()
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			// A bounded write, as net/http's WriteTimeout does, then Close.
			c.SetWriteDeadline(time.Now().Add(time.Second))
			c.Write(make([]byte, 1<<20))
			c.Close()
		}()
		// The peer has room for its first window (512<<7 bytes): it takes
		// data in order up to the right edge it advertised and
		// advertises the room left; once full, it answers every probe
		// with a zero window and takes nothing.
		una := iss + 1
		room := una + 512<<7 // where its buffer ends
		adv := room          // the right edge it advertised
		start := time.Now()
		deadline := start.Add(24 * time.Hour)
		probes, reset := 0, false
		for !reset && time.Now().Before(deadline) {
			p := r.recv()
			if p == nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			h, payload, err := wire.ParseTCP(p.Payload, p.Src, p.Dst, true)
			if err != nil {
				t.Fatal(err)
			}
			if h.Flags&wire.RST != 0 {
				reset = true
				continue
			}
			if len(payload) == 0 && h.Flags&wire.FIN == 0 {
				continue
			}
			if adv == una {
				probes++ // a zero-window probe
			} else if h.Seq == una {
				una = seqnum.Min(h.Seq.Add(seqnum.Size(len(payload))), adv)
			}
			w := una.Size(room) >> 7
			adv = una.Add(w << 7)
			r.send(tcpPacket(from, to, wire.TCPHeader{Seq: 1001, Ack: una, Flags: wire.ACK, Window: uint16(w)}, nil))
		}
		if !reset {
			t.Fatalf("after %d probes over 24 h the orphan is still there", probes)
		}
		t.Logf("reset after %d zero-window probes, %v", probes, time.Since(start))
		if probes > tcp.DefaultOrphanRetries+3 {
			t.Errorf("%d probes: want the orphan reset after %d (and the few sent before Close)", probes, tcp.DefaultOrphanRetries)
		}
		if st, m := c.State(), c.Info().Memory; st != tcp.Closed || m != 0 {
			t.Errorf("after the reset: state %v, %d bytes of buffers held", st, m)
		}
	})
}

// Over Options.MaxOrphans, the oldest orphan is reset and counted (Linux's
// tcp_max_orphans, "too many orphaned sockets").
func TestMaxOrphansResetsOldest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRawPeer(t)
		r.s.opts.MaxOrphans = 2
		l, err := r.s.ListenTCP(netip.AddrPortFrom(addrA, 80), 10)
		if err != nil {
			t.Fatal(err)
		}
		var conns []*TCPConn
		for i := range 3 {
			r.openRaw(uint16(5000+i), 1000)
			c, err := l.AcceptTCP()
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
			// The peer acknowledges nothing: closed with data and FIN
			// outstanding, the connection lives on in FIN-WAIT-1.
			c.Write([]byte("unacknowledged"))
			c.Close()
			synctest.Wait()
			if i < 2 {
				r.drain()
			}
		}
		var rst bool
		for {
			p := r.recv()
			if p == nil {
				break
			}
			h, _, err := wire.ParseTCP(p.Payload, p.Src, p.Dst, true)
			if err == nil && h.Flags&wire.RST != 0 && h.DstPort == 5000 {
				rst = true
			}
		}
		if !rst {
			t.Error("the oldest orphan was not reset")
		}
		if got := r.s.Counters().TCP.TCPAbortOnMemory; got != 1 {
			t.Errorf("TCPAbortOnMemory %d, want 1", got)
		}
		want := []tcp.State{tcp.Closed, tcp.FinWait1, tcp.FinWait1}
		for i, c := range conns {
			if st := c.State(); st != want[i] {
				t.Errorf("connection %d: %v, want %v", i, st, want[i])
			}
		}
	})
}

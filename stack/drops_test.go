package stack

import (
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/synack/synack/tcp"
	"github.com/synack/synack/wire"
)

// Segments the core discards are counted by reason in Counters().Drops,
// connections and TIME-WAIT records alike, and the trace shows the reason
// on the received segment.
func TestDropsCountedAndTraced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rcv []TraceEvent
		p := newPair(t, pairOpts{a: Options{Trace: func(e TraceEvent) {
			if e.Kind == TraceReceived {
				rcv = append(rcv, e)
			}
		}}})
		c, s := p.connect(t, 80)
		synctest.Wait()
		info := c.Info()
		inject := func(h wire.TCPHeader) TraceEvent {
			t.Helper()
			rcv = nil
			h.Window = 1000
			pkt := tcpPacket(c.Tuple().Remote, c.Tuple().Local, h, nil)
			if _, err := p.eb.WritePackets([][]byte{pkt}); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
			if len(rcv) != 1 {
				t.Fatalf("traced %d received segments, want 1", len(rcv))
			}
			return rcv[0]
		}
		before := p.a.Counters().Drops
		// RFC 5961 4.2: a SYN in ESTABLISHED gets a challenge ACK.
		if e := inject(wire.TCPHeader{Seq: info.RcvNxt.Add(10), Flags: wire.SYN}); e.Drop != tcp.DropSYNInWindowChallenge || e.ID != c.ID() {
			t.Errorf("SYN in the window traced with drop %v (ID %d), want %v (ID %d)", e.Drop, e.ID, tcp.DropSYNInWindowChallenge, c.ID())
		}
		// RFC 9293 3.10.7.4: an unacceptable RST is dropped silently.
		if e := inject(wire.TCPHeader{Seq: info.RcvNxt.Add(1 << 30), Flags: wire.RST}); e.Drop != tcp.DropRSTOutOfWindow {
			t.Errorf("RST out of the window traced with drop %v, want %v", e.Drop, tcp.DropRSTOutOfWindow)
		}
		// An ACK that is taken is no drop.
		if e := inject(wire.TCPHeader{Seq: info.RcvNxt, Ack: info.SndNxt, Flags: wire.ACK}); e.Drop != tcp.DropNone {
			t.Errorf("a valid ACK traced with drop %v", e.Drop)
		}
		if st := c.State(); st != tcp.Established {
			t.Fatalf("client %v after the drops, want ESTABLISHED", st)
		}

		// TIME-WAIT, as a record once the owner has closed: RFC 1337.
		c.Close()
		s.Close()
		synctest.Wait()
		if c.tcb != nil {
			t.Fatal("the client kept its tcp.Conn in TIME-WAIT")
		}
		time.Sleep(time.Second)
		info = c.Info()
		if e := inject(wire.TCPHeader{Seq: info.RcvNxt, Flags: wire.RST}); e.Drop != tcp.DropTimeWaitRST {
			t.Errorf("RST in TIME-WAIT traced with drop %v, want %v", e.Drop, tcp.DropTimeWaitRST)
		}

		after := p.a.Counters().Drops
		for r := range tcp.NumDropReasons {
			want := before[r]
			switch r {
			case tcp.DropSYNInWindowChallenge, tcp.DropRSTOutOfWindow, tcp.DropTimeWaitRST:
				want++
			}
			if after[r] != want {
				t.Errorf("Counters().Drops[%v] = %d, want %d", r, after[r], want)
			}
		}
	})
}

// Segments a listener discards are named as the core names them in LISTEN
// (RFC 9293 3.10.7.2), though the stack handles them without a tcp.Conn
// (syndefence.go): an RST, an ACK (answered with RST) and a segment with
// none of SYN, ACK, RST; and a SYN again to a SYN-queue entry, answered with
// the SYN,ACK again. Found by the hostile-packet test over TUN (interop),
// where 256 flag combinations to a listener moved no drop counter.
func TestListenerDropsCounted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rcv []TraceEvent
		p := newPair(t, pairOpts{a: Options{Trace: func(e TraceEvent) {
			if e.Kind == TraceReceived {
				rcv = append(rcv, e)
			}
		}}})
		l, err := p.a.ListenTCP(netip.AddrPortFrom(addrA, 80), 0)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		// From an address the stack at the other end does not own, so it
		// does not reset the SYN,ACK.
		from := netip.AddrPortFrom(netip.MustParseAddr("198.18.0.9"), 4000)
		to := netip.AddrPortFrom(addrA, 80)
		before := p.a.Counters().Drops
		for _, tc := range []struct {
			flags wire.TCPFlags
			want  tcp.DropReason
		}{
			{wire.RST, tcp.DropListenRST},
			{wire.RST | wire.ACK, tcp.DropListenRST},
			{wire.ACK, tcp.DropListenACK},
			{wire.FIN | wire.PSH, tcp.DropListenNoSYN},
			{0, tcp.DropListenNoSYN},
			{wire.SYN, tcp.DropNone},
			{wire.SYN, tcp.DropSYNRetransmit}, // the same SYN again, to the SYN-queue entry
		} {
			rcv = nil
			pkt := tcpPacket(from, to, wire.TCPHeader{Seq: 1000, Ack: 5000, Flags: tc.flags, Window: 1000}, nil)
			if _, err := p.eb.WritePackets([][]byte{pkt}); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
			if len(rcv) != 1 || rcv[0].Drop != tc.want {
				t.Errorf("[%v] to a listener: traced %v, want one event with drop %v", tc.flags, rcv, tc.want)
			}
		}
		after := p.a.Counters().Drops
		want := before
		want[tcp.DropListenRST] += 2
		want[tcp.DropListenACK]++
		want[tcp.DropListenNoSYN] += 2
		want[tcp.DropSYNRetransmit]++
		if after != want {
			t.Errorf("Counters().Drops = %v, want %v", after, want)
		}
	})
}

package stack

import (
	"io"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/synack/synack/link/memlink"
	"github.com/synack/synack/tcp"
	"github.com/synack/synack/wire"
)

// ECN end to end (RFC 3168): a client that asks, a server that accepts
// (the default), and a path that marks one ECN-capable packet in 40 CE
// instead of dropping it. The marks come back as ECE, the sender reduces
// its window without a single retransmission, and what each side puts in
// the IP header follows 6.1: ECT(0) on new data, Not-ECT on SYNs and pure
// ACKs.
func TestECNMarkedPathBacksOffWithoutLoss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var bad []string
		n := 0
		check := func(d memlink.Dir, pkt []byte) {
			p, err := wire.ParseIP(pkt)
			if err != nil || p.Protocol != wire.ProtocolTCP {
				return
			}
			h, payload, err := wire.ParseTCP(p.Payload, p.Src, p.Dst, true)
			if err != nil {
				mu.Lock()
				bad = append(bad, "unparsable TCP after marking: "+err.Error())
				mu.Unlock()
				return
			}
			e := p.ECN()
			var why string
			switch {
			case h.Flags&wire.SYN != 0 && e != wire.NotECT:
				why = "SYN is " + e.String()
			case len(payload) == 0 && e != wire.NotECT:
				why = "pure ACK is " + e.String()
			case len(payload) > 0 && d == memlink.AtoB && e != wire.ECT0 && e != wire.CE:
				why = "data is " + e.String()
			}
			if why != "" {
				mu.Lock()
				bad = append(bad, d.String()+": "+why)
				mu.Unlock()
			}
		}
		markEvery40 := func([]byte) bool {
			n++
			return n%40 == 0
		}
		p := newPair(t, pairOpts{
			link: memlink.Config{
				AB:  memlink.Impairments{Delay: 5 * time.Millisecond, MarkCE: markEvery40},
				BA:  memlink.Impairments{Delay: 5 * time.Millisecond},
				Tap: check,
			},
			a: Options{TCP: tcp.Config{ECN: tcp.ECNActive}},
		})
		c, s := p.connect(t, 80)
		const size = 4 << 20
		got := make(chan int64, 1)
		go func() {
			k, _ := io.Copy(io.Discard, s)
			s.Close()
			got <- k
		}()
		if _, err := c.Write(make([]byte, size)); err != nil {
			t.Fatal(err)
		}
		c.CloseWrite()
		if k := <-got; k != size {
			t.Fatalf("received %d bytes, want %d", k, size)
		}
		ci, si := c.Info(), s.Info()
		if !ci.ECN || !si.ECN {
			t.Fatalf("ECN in use: client %v server %v", ci.ECN, si.ECN)
		}
		marked := p.ea.Stats().MarkedCE
		if marked == 0 {
			t.Fatal("the link marked nothing")
		}
		if ci.ECNReductions == 0 || ci.SSThresh >= 1<<30 {
			t.Fatalf("the sender did not back off: %d reductions, ssthresh %d", ci.ECNReductions, ci.SSThresh)
		}
		if ci.Retransmits != 0 {
			t.Fatalf("%d retransmissions on a path that loses nothing", ci.Retransmits)
		}
		if si.CEReceived != marked {
			t.Errorf("server saw %d CE marks, the link made %d", si.CEReceived, marked)
		}
		if ci.CWRSent == 0 || ci.ECEReceived == 0 {
			t.Errorf("client: %d ECEs in, %d CWRs out", ci.ECEReceived, ci.CWRSent)
		}
		t.Logf("%d packets marked CE, %d ECEs, %d reductions, %d CWRs, final cwnd %d ssthresh %d",
			marked, ci.ECEReceived, ci.ECNReductions, ci.CWRSent, ci.CWnd, ci.SSThresh)
		ca, cb := p.a.Counters().TCP, p.b.Counters().TCP
		if ca.ECNNegotiated != 1 || cb.ECNNegotiated != 1 {
			t.Errorf("ECNNegotiated: client stack %d, server stack %d, want 1 each", ca.ECNNegotiated, cb.ECNNegotiated)
		}
		if cb.CEReceived != marked || ca.ECEReceived != ci.ECEReceived || ca.CWRSent != ci.CWRSent {
			t.Errorf("stack counters CE %d ECE %d CWR %d, connections %d %d %d",
				cb.CEReceived, ca.ECEReceived, ca.CWRSent, marked, ci.ECEReceived, ci.CWRSent)
		}
		mu.Lock()
		defer mu.Unlock()
		for i, b := range bad {
			if i == 5 {
				break
			}
			t.Error(b)
		}
		c.Close()
		p.close()
	})
}

// Without the knob on either side nothing is ECN-capable: the default
// client does not ask (tcp_ecn = 2).
func TestECNDefaultDoesNotAsk(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		ect := 0
		p := newPair(t, pairOpts{link: memlink.Config{Tap: func(_ memlink.Dir, pkt []byte) {
			if e, ok := wire.PacketECN(pkt); ok && e != wire.NotECT {
				mu.Lock()
				ect++
				mu.Unlock()
			}
		}}})
		c, s := p.connect(t, 80)
		go io.Copy(s, s)
		c.Write([]byte("hello"))
		buf := make([]byte, 5)
		io.ReadFull(c, buf)
		if c.Info().ECN || s.Info().ECN {
			t.Error("ECN negotiated by default")
		}
		mu.Lock()
		if ect != 0 {
			t.Errorf("%d ECN-capable packets", ect)
		}
		mu.Unlock()
		c.Close()
		s.Close()
		p.close()
	})
}

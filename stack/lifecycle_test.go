package stack

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/synack/synack/link/memlink"
	"github.com/synack/synack/tcp"
)

// drain returns the events received so far.
func drain(ch <-chan tcp.Transition) []tcp.Transition {
	var out []tcp.Transition
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				return out
			}
			out = append(out, e)
		default:
			return out
		}
	}
}

// byID groups events by connection.
func byID(evs []tcp.Transition) map[uint64][]tcp.Transition {
	m := make(map[uint64][]tcp.Transition)
	for _, e := range evs {
		m[e.ID] = append(m[e.ID], e)
	}
	return m
}

func TestLifecycleEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{})
		evA, cancelA := p.a.Subscribe(100)
		defer cancelA()
		evB, cancelB := p.b.Subscribe(100)
		defer cancelB()

		c, s := p.connect(t, 80)
		c.Write([]byte("ping"))
		buf := make([]byte, 4)
		io.ReadFull(s, buf)
		s.Write([]byte("pong"))
		io.ReadFull(c, buf)

		if got := p.a.Counters().TCP.CurrEstab; got != 1 {
			t.Errorf("client CurrEstab %d, want 1", got)
		}
		c.Close() // the active closer
		if _, err := s.Read(buf); err != io.EOF {
			t.Fatalf("server Read = %v, want io.EOF", err)
		}
		s.Close()
		synctest.Wait()
		if st := p.a.StateCounts(); st[tcp.TimeWait] != 1 {
			t.Fatalf("client state counts %v, want one TIME-WAIT", st)
		}
		entered := time.Now()
		time.Sleep(2*tcp.DefaultMSL - time.Millisecond)
		if st := p.a.StateCounts(); st[tcp.TimeWait] != 1 {
			t.Fatalf("client left TIME-WAIT before 2MSL: %v", st)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if n := len(p.a.Connections()); n != 0 {
			t.Fatalf("client has %d connections after 2MSL, want 0", n)
		}

		want := []tcp.State{tcp.SynSent, tcp.Established, tcp.FinWait1, tcp.FinWait2, tcp.TimeWait, tcp.Closed}
		ca := byID(drain(evA))[c.ID()]
		if got := states(ca); !slices.Equal(got, want) {
			t.Errorf("client went through %v, want %v", got, want)
		}
		if last := ca[len(ca)-1]; last.Cause != tcp.Timeout2MSL || last.Time.Sub(entered) != 2*tcp.DefaultMSL {
			t.Errorf("client left TIME-WAIT by %q after %v, want 2MSL timeout after %v", last.Cause, last.Time.Sub(entered), 2*tcp.DefaultMSL)
		}
		want = []tcp.State{tcp.Listen, tcp.SynReceived, tcp.Established, tcp.CloseWait, tcp.LastAck, tcp.Closed}
		sb := byID(drain(evB))[s.ID()]
		if got := states(sb); !slices.Equal(got, want) {
			t.Errorf("server went through %v, want %v", got, want)
		}
		for _, e := range append(ca, sb...) {
			if e.Cause == tcp.NoCause || e.Time.IsZero() {
				t.Errorf("event without cause or time: %+v", e)
			}
		}
		if e := sb[0]; e.Tuple != s.Tuple() || e.Tuple.Reverse() != c.Tuple() {
			t.Errorf("server event tuple %v, want %v", e.Tuple, s.Tuple())
		}
		ca2, cb := p.a.Counters().TCP, p.b.Counters().TCP
		if ca2.ActiveOpens != 1 || cb.PassiveOpens != 1 || ca2.CurrEstab != 0 || cb.CurrEstab != 0 {
			t.Errorf("counters: client %+v server %+v", ca2, cb)
		}
	})
}

func TestTraceOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var log []TraceEvent
		p := newPair(t, pairOpts{b: Options{Trace: func(e TraceEvent) {
			if e.Segment != nil {
				s := *e.Segment
				e.Segment = &s
			}
			log = append(log, e)
		}}})
		c, s := p.connect(t, 80)
		c.Close()
		s.Close()
		synctest.Wait()
		// The server's first events: the listener, then the SYN (with the
		// state it caused), the child's transitions, the SYN,ACK.
		var got []string
		for _, e := range log[:5] {
			got = append(got, e.Kind.String()+" "+e.From.String()+">"+e.To.String())
		}
		want := []string{
			"state CLOSED>LISTEN",       // the listener
			"rcv CLOSED>SYN-RECEIVED",   // the SYN
			"state CLOSED>LISTEN",       // the child
			"state LISTEN>SYN-RECEIVED", // ...
			"snd SYN-RECEIVED>SYN-RECEIVED",
		}
		if !slices.Equal(got, want) {
			t.Errorf("trace starts\n%q\nwant\n%q", got, want)
		}
	})
}

func TestTimeWaitReopen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{})
		l, err := p.b.ListenTCP(netip.AddrPortFrom(addrB, 80), 0)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		from := netip.AddrPortFrom(addrA, 5001)
		to := netip.AddrPortFrom(addrB, 80)
		for i := range 2 {
			c, err := p.a.DialTCPFrom(context.Background(), from, to)
			if err != nil {
				t.Fatalf("dial %d: %v", i, err)
			}
			s, err := l.AcceptTCP()
			if err != nil {
				t.Fatal(err)
			}
			s.Close() // the server closes first and ends in TIME-WAIT
			if _, err := c.Read(make([]byte, 1)); err != io.EOF {
				t.Fatalf("client Read = %v, want EOF", err)
			}
			c.Close()
			synctest.Wait()
			if got := s.State(); got != tcp.TimeWait {
				t.Fatalf("server in %v, want TIME-WAIT", got)
			}
			time.Sleep(time.Second)
		}
		if got := p.b.Counters().TCP.TCPTimeWaitReopen; got != 1 {
			t.Errorf("TCPTimeWaitReopen %d, want 1", got)
		}
	})
}

func TestListenBacklog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{})
		l, err := p.b.ListenTCP(netip.AddrPortFrom(addrB, 80), 2)
		if err != nil {
			t.Fatal(err)
		}
		dial := func() chan error {
			ch := make(chan error, 1)
			go func() {
				c, err := p.a.DialTCP(context.Background(), netip.AddrPortFrom(addrB, 80))
				if err == nil {
					c.Write([]byte("x"))
				}
				ch <- err
			}()
			return ch
		}
		d1, d2 := dial(), dial()
		if err := <-d1; err != nil {
			t.Fatal(err)
		}
		if err := <-d2; err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		// The accept queue is full: the next SYN is dropped.
		d3 := dial()
		synctest.Wait()
		if c := p.b.Counters().TCP; c.ListenOverflows != 1 || c.ListenDrops != 1 {
			t.Errorf("ListenOverflows %d ListenDrops %d, want 1 1", c.ListenOverflows, c.ListenDrops)
		}
		select {
		case err := <-d3:
			t.Fatalf("third dial returned %v with the accept queue full", err)
		default:
		}
		// Accepting makes room; the SYN retransmitted after 1 s gets in.
		c1, err := l.AcceptTCP()
		if err != nil {
			t.Fatal(err)
		}
		c1.Close()
		if err := <-d3; err != nil {
			t.Fatalf("third dial: %v", err)
		}
		for range 2 {
			c, err := l.AcceptTCP()
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 1)
			if _, err := io.ReadFull(c, buf); err != nil || buf[0] != 'x' {
				t.Errorf("accepted conn read %q, %v", buf, err)
			}
			c.Close()
		}
		l.Close()
	})
}

// Two handshakes race for the last slot of the accept queue: the ACK that
// finds it full is ignored, the child stays in SYN-RECEIVED and gets in
// after Accept makes room (its SYN,ACK retransmission draws a new ACK).
func TestListenAcceptQueueOverflow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// A delay lets both SYNs arrive before either handshake ends.
		delay := memlink.Impairments{Delay: 10 * time.Millisecond}
		p := newPair(t, pairOpts{link: memlink.Config{AB: delay, BA: delay}})
		l, err := p.b.ListenTCP(netip.AddrPortFrom(addrB, 80), 1)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		var clients []*TCPConn
		type result struct {
			c   *TCPConn
			err error
		}
		res := make(chan result, 2)
		for range 2 {
			go func() {
				c, err := p.a.DialTCP(context.Background(), netip.AddrPortFrom(addrB, 80))
				res <- result{c, err}
			}()
		}
		for range 2 {
			r := <-res
			if r.err != nil {
				t.Fatal(r.err)
			}
			clients = append(clients, r.c)
		}
		time.Sleep(50 * time.Millisecond) // the ACKs arrive
		c := p.b.Counters().TCP
		if c.ListenOverflows != 1 || c.ListenDrops != 1 {
			t.Errorf("ListenOverflows %d ListenDrops %d, want 1 1", c.ListenOverflows, c.ListenDrops)
		}
		if st := p.b.StateCounts(); st[tcp.SynReceived] != 1 || st[tcp.Established] != 1 {
			t.Errorf("server states %v, want one SYN-RECEIVED and one ESTABLISHED", st)
		}
		for i := range 2 {
			s, err := l.AcceptTCP()
			if err != nil {
				t.Fatalf("accept %d: %v", i, err)
			}
			defer s.Close()
		}
		for _, c := range clients {
			c.Close()
		}
	})
}

func TestSynBacklog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Nothing gets back from b to a: handshakes never complete.
		drop := func([]byte) bool { return true }
		p := newPair(t, pairOpts{
			link: memlink.Config{BA: memlink.Impairments{Drop: drop}},
			b:    Options{SynBacklog: 2, SynCookies: SynCookiesOff}, // auto would answer the third with a cookie (syncookie_test.go)
		})
		l, err := p.b.ListenTCP(netip.AddrPortFrom(addrB, 80), 0)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		errs := make(chan error, 3)
		for range 3 {
			go func() {
				_, err := p.a.DialTCP(ctx, netip.AddrPortFrom(addrB, 80))
				errs <- err
			}()
		}
		for range 3 {
			if err := <-errs; !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("dial: %v, want a timeout", err)
			}
		}
		c := p.b.Counters().TCP
		if c.ListenDrops != 1 || c.ListenOverflows != 0 || c.PassiveOpens != 2 {
			t.Errorf("ListenDrops %d ListenOverflows %d PassiveOpens %d, want 1 0 2", c.ListenDrops, c.ListenOverflows, c.PassiveOpens)
		}
		if st := p.b.StateCounts(); st[tcp.SynReceived] != 2 {
			t.Errorf("server states %v, want two SYN-RECEIVED", st)
		}
		l.Close()
		synctest.Wait()
		if n := len(p.b.Connections()); n != 0 {
			t.Errorf("%d connections left after the listener closed", n)
		}
	})
}

// Close aborts everything, wakes every blocked call and leaves no
// goroutine: the bubble would report one still blocked.
func TestCloseStack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{})
		c, s := p.connect(t, 80)
		l, err := p.b.Listen(context.Background(), "tcp", ":81")
		if err != nil {
			t.Fatal(err)
		}
		errs := make(chan error, 3)
		go func() { _, err := c.Read(make([]byte, 1)); errs <- err }()
		go func() { _, err := s.Read(make([]byte, 1)); errs <- err }()
		go func() { _, err := l.Accept(); errs <- err }()
		synctest.Wait()
		p.a.Close()
		p.b.Close()
		for range 3 {
			if err := <-errs; !errors.Is(err, net.ErrClosed) {
				t.Errorf("blocked call returned %v, want net.ErrClosed", err)
			}
		}
		if _, err := p.a.DialTCP(context.Background(), netip.AddrPortFrom(addrB, 80)); !errors.Is(err, net.ErrClosed) {
			t.Errorf("dial on a closed stack: %v", err)
		}
	})
}

// A dial waiting for its SYN,ACK when the stack closes returns
// net.ErrClosed.
func TestCloseStackDuringDial(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		drop := func([]byte) bool { return true }
		p := newPair(t, pairOpts{link: memlink.Config{AB: memlink.Impairments{Drop: drop}}})
		errs := make(chan error, 1)
		go func() {
			_, err := p.a.DialTCP(context.Background(), netip.AddrPortFrom(addrB, 80))
			errs <- err
		}()
		time.Sleep(100 * time.Millisecond)
		p.a.Close()
		if err := <-errs; !errors.Is(err, net.ErrClosed) {
			t.Errorf("dial returned %v, want net.ErrClosed", err)
		}
	})
}

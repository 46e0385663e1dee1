package stacktest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/synack/synack/link/memlink"
	"github.com/synack/synack/stacktest"
	"github.com/synack/synack/tcp"
	"github.com/synack/synack/wire"
)

// t stands for the *testing.T of a real test.
var t = &testing.T{}

// Two stacks on a link with 20 ms of delay each way: an echo, both closes
// and the client's TIME-WAIT, recorded, in no real time.
func ExamplePair() {
	delay := memlink.Impairments{Delay: 20 * time.Millisecond}
	n := stacktest.Pair(t, stacktest.WithImpairments(delay, delay))
	rec := stacktest.Record(t, n.A)
	n.Run(t, func() {
		c, s := n.Connect(t, 7)
		n.Clock.Go(func() { // a participant of the virtual clock, not `go`
			io.Copy(s, s)
			s.Close()
		})
		c.Write([]byte("hello"))
		c.CloseWrite()
		got, _ := io.ReadAll(c)
		c.Close()
		tw := rec.WaitState(t, tcp.TimeWait)
		closed := rec.WaitState(t, tcp.Closed, 2*time.Minute)
		fmt.Printf("echo %q, TIME-WAIT for %v\n", got, closed.Time.Sub(tw.Time))
		fmt.Println(rec.StatesOf(tw.ID))
	})
	// Output:
	// echo "hello", TIME-WAIT for 1m0s
	// [SYN-SENT ESTABLISHED FIN-WAIT-1 FIN-WAIT-2 TIME-WAIT CLOSED]
}

// A hand-played server: the peer answers the stack's SYN and then refuses
// the connection with a RST, which the dial reports as ECONNREFUSED.
func ExampleNewPeer() {
	p := stacktest.NewPeer(t)
	p.Run(t, func() {
		errc := make(chan error, 1)
		p.Clock.Go(func() {
			_, err := p.Stack.DialTCP(context.Background(), netip.AddrPortFrom(stacktest.AddrB, 80))
			errc <- err
		})
		syn := p.Expect(t, stacktest.Flags(wire.SYN), stacktest.To(80))
		fmt.Println("stack sent", syn.Flags, "with mss", syn.Options.MSS)
		rst := syn.Reply()
		rst.Flags, rst.Ack = wire.RST|wire.ACK, syn.Seq+1
		p.Inject(t, rst)
		p.ExpectNone(t, 0)
		fmt.Println("dial refused:", errors.Is(<-errc, syscall.ECONNREFUSED))
	})
	// Output:
	// stack sent S with mss 1460
	// dial refused: true
}

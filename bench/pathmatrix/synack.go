package pathmatrix

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/synack/synack/link"
	"github.com/synack/synack/link/memlink"
	"github.com/synack/synack/stack"
	"github.com/synack/synack/tcp"
)

// newSynack makes a synack stack with the cell's buffers on ep. Everything
// else is synack's default (NewReno today; Nagle off, as Go's net package).
func newSynack(c Cell, ep link.Endpoint, addr netip.Prefix) (*stack.Stack, error) {
	s := stack.New(stack.Options{TCP: tcp.Config{SendBufferSize: c.BufferSize(), ReceiveBufferSize: c.BufferSize()}})
	if _, err := s.AddLink(ep, addr); err != nil {
		s.Close()
		return nil, fmt.Errorf("synack: AddLink: %w", err)
	}
	return s, nil
}

// synackListen and synackDial are the two ends' calls on a synack stack.
func synackListen(s *stack.Stack, addr netip.Prefix) func() (net.Listener, error) {
	return func() (net.Listener, error) { return s.Listen(context.Background(), "tcp", hostPort(addr)) }
}

func synackDial(s *stack.Stack, addr netip.Prefix) func(ctx context.Context) (net.Conn, error) {
	return func(ctx context.Context) (net.Conn, error) { return s.DialContext(ctx, "tcp", hostPort(addr)) }
}

// synackStats reads the sending connection's counters. synack does not
// detect spurious retransmissions yet (no D-SACK processing), so it says
// nothing about them rather than a zero.
func synackStats(c net.Conn) senderStats {
	tc, ok := c.(*stack.TCPConn)
	if !ok {
		return senderStats{retrans: -1, spurious: -1}
	}
	return senderStats{retrans: int64(tc.Info().Retransmits), spurious: -1}
}

func synackWorld(c Cell, seed int64) (*world, error) {
	a, b := memlink.Pipe(c.Link(seed))
	snd, err := newSynack(c, a, senderAddr)
	if err != nil {
		a.Close()
		return nil, err
	}
	rcv, err := newSynack(c, b, receiverAddr)
	if err != nil {
		snd.Close()
		a.Close()
		return nil, err
	}
	return &world{
		listen: synackListen(rcv, receiverAddr),
		dial:   synackDial(snd, receiverAddr),
		stats:  synackStats,
		close: func() {
			snd.Close()
			rcv.Close()
			a.Close()
		},
	}, nil
}

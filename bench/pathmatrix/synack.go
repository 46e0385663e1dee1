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

// newSynack makes a synack stack with the cell's buffers on ep, finding
// losses by ld (empty: the default, RACK-TLP), with congestion control cc
// (empty: the default, CUBIC). Everything else is synack's default (Nagle
// off, as Go's net package).
func newSynack(c Cell, ep link.Endpoint, addr netip.Prefix, ld tcp.LossDetection, cc string) (*stack.Stack, error) {
	s := stack.New(stack.Options{TCP: tcp.Config{SendBufferSize: c.BufferSize(), ReceiveBufferSize: c.BufferSize(), LossDetection: ld, CongestionControl: cc}})
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

// synackStats reads the sending connection's counters. Spurious is the
// D-SACK blocks received (RFC 2883), the same evidence Linux counts (it
// counts the segments they cover; a block is one segment or more, so
// synack's figure can only be lower), and which duplicated data earns
// too. The recoveries and timeouts synack's sender itself judged spurious
// (Eifel, RFC 3522 and 4015; D-SACK, RFC 3708) go into Recovery: they
// count episodes, not segments, so they are a separate column.
func synackStats(c net.Conn) senderStats {
	tc, ok := c.(*stack.TCPConn)
	if !ok {
		return senderStats{retrans: -1, spurious: -1}
	}
	i := tc.Info()
	return senderStats{
		retrans:  int64(i.Retransmits),
		spurious: int64(i.DSACKsIn),
		what:     "D-SACK blocks received",
		recovery: &Recovery{
			SpuriousEpisodes: i.SpuriousRetrans,
			Undos:            i.Undos,
			RACKLosses:       i.RACKLosses,
			TLPProbes:        i.TLPProbes,
		},
	}
}

func synackWorld(c Cell, seed int64, ld tcp.LossDetection, cc string) (*world, error) {
	a, b := memlink.Pipe(c.Link(seed))
	snd, err := newSynack(c, a, senderAddr, ld, cc)
	if err != nil {
		a.Close()
		return nil, err
	}
	rcv, err := newSynack(c, b, receiverAddr, ld, cc)
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

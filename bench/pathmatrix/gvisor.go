package pathmatrix

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	gstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"github.com/synack/synack/link"
	"github.com/synack/synack/link/memlink"
)

// gvisorQueue is the depth of a gVisor channel endpoint's outbound queue,
// as in the clean-link benchmarks: the relay goroutine keeps it near
// empty, so only memlink's drop-tail queue decides what is dropped.
const gvisorQueue = 65536

// GVisorLink is a gVisor channel endpoint seen from the synack side: a
// link.Endpoint whose WritePackets hands bare IP packets to the gVisor
// stack as arrived, and which delivers what the gVisor stack sends to the
// attached Dispatcher, from one goroutine. Spliced to one end of a memlink
// pipe, it puts gVisor on exactly the impairment model synack runs on.
type GVisorLink struct {
	ch     *channel.Endpoint
	mtu    int
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

var _ link.Endpoint = (*GVisorLink)(nil)

// NewGVisorLink makes the channel endpoint (give Endpoint() to the gVisor
// stack) and its bridge.
func NewGVisorLink(mtu int) *GVisorLink {
	ctx, cancel := context.WithCancel(context.Background())
	return &GVisorLink{ch: channel.New(gvisorQueue, uint32(mtu), ""), mtu: mtu, ctx: ctx, cancel: cancel}
}

// Endpoint is the gVisor side of the link, for CreateNIC.
func (l *GVisorLink) Endpoint() gstack.LinkEndpoint { return l.ch }

// MTU is the link's MTU.
func (l *GVisorLink) MTU() int { return l.mtu }

// WritePackets delivers packets to the gVisor stack, in the caller's
// goroutine (gVisor processes an injected packet inline).
func (l *GVisorLink) WritePackets(pkts [][]byte) (int, error) {
	for i, p := range pkts {
		if len(p) == 0 {
			continue
		}
		if len(p) > l.mtu {
			return i, fmt.Errorf("gvisor link: packet of %d bytes exceeds MTU %d", len(p), l.mtu)
		}
		proto := ipv4.ProtocolNumber
		if p[0]>>4 == 6 {
			proto = ipv6.ProtocolNumber
		}
		// The packet is only valid during the call: gVisor keeps it.
		pkb := gstack.NewPacketBuffer(gstack.PacketBufferOptions{Payload: buffer.MakeWithData(append([]byte(nil), p...))})
		l.ch.InjectInbound(proto, pkb)
		pkb.DecRef()
	}
	return len(pkts), nil
}

// Attach starts the goroutine that takes what gVisor sends and hands it
// to d as bare IP packets.
func (l *GVisorLink) Attach(d link.Dispatcher) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		buf := make([]byte, 0, l.mtu)
		for {
			pkt := l.ch.ReadContext(l.ctx)
			if pkt == nil {
				return
			}
			buf = buf[:0]
			for _, s := range pkt.AsSlices() {
				buf = append(buf, s...)
			}
			pkt.DecRef()
			d.DeliverPacket(buf)
		}
	}()
}

// Close stops the goroutine and waits for it.
func (l *GVisorLink) Close() error {
	l.once.Do(func() {
		l.cancel()
		l.wg.Wait()
		l.ch.Close()
	})
	return nil
}

// newGVisor makes an IPv4 gVisor stack with congestion control cc ("reno",
// its default, or "cubic") and the cell's buffers, on ep. Everything else
// is gVisor's default (SACK, RACK on).
func newGVisor(c Cell, ep gstack.LinkEndpoint, addr netip.Prefix, cc string) (*gstack.Stack, error) {
	s := gstack.New(gstack.Options{
		NetworkProtocols:   []gstack.NetworkProtocolFactory{ipv4.NewProtocol},
		TransportProtocols: []gstack.TransportProtocolFactory{tcp.NewProtocol},
	})
	fail := func(what string, err tcpip.Error) (*gstack.Stack, error) {
		s.Close()
		return nil, fmt.Errorf("gvisor: %s: %s", what, err)
	}
	opt := tcpip.CongestionControlOption(cc)
	if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, &opt); err != nil {
		return fail("congestion control "+cc, err)
	}
	buf := c.BufferSize()
	rcv := tcpip.TCPReceiveBufferSizeRangeOption{Min: tcp.MinBufferSize, Default: buf, Max: buf}
	if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, &rcv); err != nil {
		return fail("receive buffer", err)
	}
	snd := tcpip.TCPSendBufferSizeRangeOption{Min: tcp.MinBufferSize, Default: buf, Max: buf}
	if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, &snd); err != nil {
		return fail("send buffer", err)
	}
	if err := s.CreateNIC(1, ep); err != nil {
		return fail("create NIC", err)
	}
	pa := tcpip.ProtocolAddress{
		Protocol:          ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddressWithPrefix{Address: tcpip.AddrFrom4(addr.Addr().As4()), PrefixLen: addr.Bits()},
	}
	if err := s.AddProtocolAddress(1, pa, gstack.AddressProperties{}); err != nil {
		return fail("add address", err)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: pa.AddressWithPrefix.Subnet(), NIC: 1}})
	return s, nil
}

func gvFullAddr(p netip.Prefix) tcpip.FullAddress {
	return tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFrom4(p.Addr().As4()), Port: port}
}

// gvisorStats reads the sending stack's counters (one connection per
// stack, so the stack's are the connection's). Spurious is the segments
// acknowledged by a D-SACK: gVisor's own detection of needless
// retransmissions (RFC 2883); a link that duplicates data adds to it too.
// A gVisor receiver sends no D-SACKs, though, so between two gVisor stacks
// the count is always zero (gvisorWorld says so instead).
func gvisorStats(s *gstack.Stack) func(net.Conn) senderStats {
	return func(net.Conn) senderStats {
		st := s.Stats().TCP
		return senderStats{
			retrans:  int64(st.Retransmits.Value()),
			spurious: int64(st.SegmentsAckedWithDSACK.Value()),
			what:     "segments D-SACKed",
		}
	}
}

func gvisorWorld(c Cell, seed int64, cc string) (*world, error) {
	a, b := memlink.Pipe(c.Link(seed))
	la, lb := NewGVisorLink(MTU), NewGVisorLink(MTU)
	snd, err := newGVisor(c, la.Endpoint(), senderAddr, cc)
	if err != nil {
		a.Close()
		return nil, err
	}
	rcv, err := newGVisor(c, lb.Endpoint(), receiverAddr, cc)
	if err != nil {
		snd.Close()
		a.Close()
		return nil, err
	}
	splice(la, a)
	splice(lb, b)
	return &world{
		listen: func() (net.Listener, error) {
			return gonet.ListenTCP(rcv, gvFullAddr(receiverAddr), ipv4.ProtocolNumber)
		},
		dial: func(ctx context.Context) (net.Conn, error) {
			return gonet.DialContextTCP(ctx, snd, gvFullAddr(receiverAddr), ipv4.ProtocolNumber)
		},
		stats:   gvisorStats(snd),
		noDSACK: "gVisor's receiver sends no D-SACK",
		close: func() {
			snd.Close()
			rcv.Close()
			a.Close() // the pipe first: no more deliveries into the stacks
			la.Close()
			lb.Close()
			snd.Wait()
			rcv.Wait()
		},
	}, nil
}

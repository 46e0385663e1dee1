package bench

import (
	"context"
	"fmt"
	"net"
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/link/pipe"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
)

// ChannelQueueDepth is the depth of each gVisor channel endpoint's queue, as
// BENCH-METHOD.md: shallower queues drop and cause retransmissions.
const ChannelQueueDepth = 65536

var (
	gvServerAddr = tcpip.AddrFrom4([4]byte{10, 0, 0, 1})
	gvClientAddr = tcpip.AddrFrom4([4]byte{10, 0, 0, 2})
)

type gvisorPair struct {
	server, client *stack.Stack
	cancel         context.CancelFunc
	wg             sync.WaitGroup
	closeOnce      sync.Once
}

// newGVisorStack makes an IPv4+TCP stack with gVisor's defaults, except
// TIME-WAIT port reuse for any address (like Linux's tcp_tw_reuse=1), as the
// reference numbers were taken.
func newGVisorStack(ep stack.LinkEndpoint, addr tcpip.Address) (*stack.Stack, error) {
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol},
	})
	reuse := tcpip.TCPTimeWaitReuseGlobal
	if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, &reuse); err != nil {
		return nil, fmt.Errorf("gvisor: time-wait reuse: %s", err)
	}
	if err := s.CreateNIC(1, ep); err != nil {
		return nil, fmt.Errorf("gvisor: create NIC: %s", err)
	}
	pa := tcpip.ProtocolAddress{
		Protocol:          ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddressWithPrefix{Address: addr, PrefixLen: 24},
	}
	if err := s.AddProtocolAddress(1, pa, stack.AddressProperties{}); err != nil {
		return nil, fmt.Errorf("gvisor: add address: %s", err)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: pa.AddressWithPrefix.Subnet(), NIC: 1}})
	return s, nil
}

// newGVisorPair makes two gVisor stacks on channel endpoints (or on
// link/pipe); offload is Config.RxChecksumOffload (channel endpoints only).
func newGVisorPair(mtu int, usePipe, offload bool) (*gvisorPair, error) {
	p := &gvisorPair{}
	var sep, cep stack.LinkEndpoint
	if usePipe {
		a, b := pipe.New("", "", uint32(mtu))
		sep, cep = a, b
	} else {
		a := channel.New(ChannelQueueDepth, uint32(mtu), "")
		b := channel.New(ChannelQueueDepth, uint32(mtu), "")
		if offload {
			a.LinkEPCapabilities |= stack.CapabilityRXChecksumOffload
			b.LinkEPCapabilities |= stack.CapabilityRXChecksumOffload
		}
		sep, cep = a, b
		ctx, cancel := context.WithCancel(context.Background())
		p.cancel = cancel
		p.wg.Add(2)
		go p.shuttle(ctx, a, b)
		go p.shuttle(ctx, b, a)
	}
	var err error
	if p.server, err = newGVisorStack(sep, gvServerAddr); err != nil {
		p.Close()
		return nil, err
	}
	if p.client, err = newGVisorStack(cep, gvClientAddr); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// shuttle moves what from sends to to's stack, as a wire would: one goroutine
// per direction.
func (p *gvisorPair) shuttle(ctx context.Context, from, to *channel.Endpoint) {
	defer p.wg.Done()
	for {
		pkt := from.ReadContext(ctx)
		if pkt == nil {
			return
		}
		// A fresh packet with only the bytes, as the receiving link would
		// see them (the outbound one has its headers parsed and set).
		in := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: pkt.ToBuffer()})
		proto := pkt.NetworkProtocolNumber
		pkt.DecRef()
		to.InjectInbound(proto, in)
		in.DecRef()
	}
}

func (p *gvisorPair) Listen() (net.Listener, error) { return p.ListenPort(DefaultPort) }

func (p *gvisorPair) Dial(ctx context.Context) (net.Conn, error) { return p.DialPort(ctx, DefaultPort) }

func (p *gvisorPair) ListenPort(port uint16) (net.Listener, error) {
	return gonet.ListenTCP(p.server, tcpip.FullAddress{NIC: 1, Addr: gvServerAddr, Port: port}, ipv4.ProtocolNumber)
}

func (p *gvisorPair) DialPort(ctx context.Context, port uint16) (net.Conn, error) {
	c, err := gonet.DialContextTCP(ctx, p.client, tcpip.FullAddress{NIC: 1, Addr: gvServerAddr, Port: port}, ipv4.ProtocolNumber)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// TimeWait is unknown for gVisor: -1.
func (p *gvisorPair) TimeWait() int { return -1 }

// ServerSegments makes the pair a SegmentCounter.
func (p *gvisorPair) ServerSegments() (in, out uint64) {
	t := p.server.Stats().TCP
	return t.ValidSegmentsReceived.Value(), t.SegmentsSent.Value()
}

func (p *gvisorPair) Close() {
	p.closeOnce.Do(func() {
		for _, s := range []*stack.Stack{p.client, p.server} {
			if s != nil {
				s.Close()
			}
		}
		if p.cancel != nil {
			p.cancel()
		}
		for _, s := range []*stack.Stack{p.client, p.server} {
			if s != nil {
				s.Wait()
			}
		}
		p.wg.Wait()
	})
}

package bench

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/synack/synack/link/memlink"
	"github.com/synack/synack/stack"
	"github.com/synack/synack/tcp"
)

// SynackQueueLimit is the memlink queue per direction: as deep as gVisor's
// channel queues (memlink's default, 1000 packets, would drop at MTU 1500
// with megabyte windows).
const SynackQueueLimit = 65536

// SynackBacklog matches gonet.ListenTCP's backlog.
const SynackBacklog = 4096

var (
	saServerAddr = netip.MustParseAddr("10.0.0.1")
	saClientAddr = netip.MustParseAddr("10.0.0.2")
)

type synackPair struct {
	server, client *stack.Stack
	closeOnce      sync.Once
}

// SynackTimeWaitReuseAfter is how long a client connection stays in
// TIME-WAIT before its 4-tuple may be reused (stack.Options.TimeWaitReuse):
// both stacks' timestamp clocks tick every millisecond, so a few
// milliseconds keep PAWS safe; Linux's 1 s would cap the rate to one
// destination at 28,232 connections a second (the ephemeral range).
const SynackTimeWaitReuseAfter = 5 * time.Millisecond

// newSynackPair makes two synack stacks on a memlink pipe. Nagle is off, by
// default in synack as in gVisor, and the client reuses ports in TIME-WAIT, as
// gVisor is measured; everything else is synack's default unless msl is set
// (TIME-WAIT lasts 2*msl). offload is Config.RxChecksumOffload.
func newSynackPair(mtu int, msl time.Duration, offload bool) (*synackPair, error) {
	imp := memlink.Impairments{QueueLimit: SynackQueueLimit}
	a, b := memlink.Pipe(memlink.Config{MTU: mtu, AB: imp, BA: imp, ChecksumOffload: offload})
	opts := stack.Options{TCP: tcp.Config{MSL: msl}}
	copts := opts
	copts.TimeWaitReuse, copts.TimeWaitReuseAfter = true, SynackTimeWaitReuseAfter
	p := &synackPair{server: stack.New(opts), client: stack.New(copts)}
	if _, err := p.server.AddLink(a, netip.PrefixFrom(saServerAddr, 24)); err != nil {
		p.Close()
		return nil, fmt.Errorf("synack: AddLink: %w", err)
	}
	if _, err := p.client.AddLink(b, netip.PrefixFrom(saClientAddr, 24)); err != nil {
		p.Close()
		return nil, fmt.Errorf("synack: AddLink: %w", err)
	}
	return p, nil
}

func (p *synackPair) Listen() (net.Listener, error) { return p.ListenPort(DefaultPort) }

func (p *synackPair) Dial(ctx context.Context) (net.Conn, error) { return p.DialPort(ctx, DefaultPort) }

func (p *synackPair) ListenPort(port uint16) (net.Listener, error) {
	return p.server.ListenTCP(netip.AddrPortFrom(saServerAddr, port), SynackBacklog)
}

func (p *synackPair) DialPort(ctx context.Context, port uint16) (net.Conn, error) {
	c, err := p.client.DialTCP(ctx, netip.AddrPortFrom(saServerAddr, port))
	if err != nil {
		return nil, err
	}
	return c, nil
}

// TimeWait reports the client stack's connections in TIME-WAIT.
func (p *synackPair) TimeWait() int { return p.client.StateCounts()[tcp.TimeWait] }

// ServerSegments makes the pair a SegmentCounter.
func (p *synackPair) ServerSegments() (in, out uint64) {
	c := p.server.Counters().TCP
	return c.InSegs, c.OutSegs
}

func (p *synackPair) Close() {
	p.closeOnce.Do(func() {
		p.client.Close()
		p.server.Close()
	})
}

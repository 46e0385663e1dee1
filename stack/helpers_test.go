package stack

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/synack/synack/link/memlink"
	"github.com/synack/synack/tcp"
)

var (
	addrA  = netip.MustParseAddr("198.18.0.1")
	addrB  = netip.MustParseAddr("198.18.0.2")
	addrA6 = netip.MustParseAddr("fd00::1")
	addrB6 = netip.MustParseAddr("fd00::2")
)

// seeded is a deterministic Rand for stacks in tests.
type seeded struct{ r *rand.ChaCha8 }

func newSeeded(seed byte) seeded {
	var s [32]byte
	s[0] = seed
	return seeded{rand.NewChaCha8(s)}
}

func (s seeded) Read(p []byte) (int, error) { return s.r.Read(p) }

// pair is two stacks joined by a memlink pipe: a (198.18.0.1, fd00::1)
// and b (198.18.0.2, fd00::2).
type pair struct {
	a, b   *Stack
	ea, eb *memlink.Endpoint
}

type pairOpts struct {
	link memlink.Config
	a, b Options
}

func newPair(t testing.TB, po pairOpts) *pair {
	t.Helper()
	p := &pair{}
	ea, eb := memlink.Pipe(po.link)
	p.ea, p.eb = ea, eb
	if po.a.Rand == nil {
		po.a.Rand = newSeeded(1)
	}
	if po.b.Rand == nil {
		po.b.Rand = newSeeded(2)
	}
	p.a = New(po.a)
	p.b = New(po.b)
	if _, err := p.a.AddLink(ea, netip.PrefixFrom(addrA, 24), netip.PrefixFrom(addrA6, 64)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.b.AddLink(eb, netip.PrefixFrom(addrB, 24), netip.PrefixFrom(addrB6, 64)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.a.Close()
		p.b.Close()
	})
	return p
}

func (p *pair) close() {
	p.a.Close()
	p.b.Close()
}

// connect dials b:port from a and accepts on b.
func (p *pair) connect(t testing.TB, port uint16) (client, server *TCPConn) {
	t.Helper()
	l, err := p.b.ListenTCP(netip.AddrPortFrom(addrB, port), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client, err = p.a.DialTCP(ctx, netip.AddrPortFrom(addrB, port))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	server, err = l.AcceptTCP()
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	return client, server
}

func states(evs []tcp.Transition) []tcp.State {
	var out []tcp.State
	for _, e := range evs {
		out = append(out, e.To)
	}
	return out
}

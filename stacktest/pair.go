// Package stacktest is a small harness for testing code that runs on synack,
// deterministically: two stacks on an in-memory link under a virtual clock
// ([Pair]), a raw peer that injects hand-built TCP segments into a stack and
// expects the ones it sends ([NewPeer]), and a recorder of state transitions
// ([Record]).
//
// Everything runs on a [clock.Virtual] unless [WithClock] says otherwise:
// time moves only when every participant goroutine is blocked, so a 2MSL
// TIME-WAIT, an RTO backoff or a keepalive probe costs no real time and every
// run with the same seeds is alike (participants at the same instant may
// still interleave differently; see clock.Virtual). Inside a
// testing/synctest bubble, WithClock(clock.Real()) gives the same. Code that blocks on the stacks (Dial, Accept, Read, Write, the
// peer's Expect, the recorder's WaitState) must run as a participant: inside
// [Net.Run] (or the clock's Run), or in a goroutine started with the clock's
// Go, never with a plain go statement (see package clock).
//
// Addresses come from the ranges reserved for tests and private use:
// 198.18.0.0/15 (RFC 2544) and fd00::/8 (RFC 4193).
package stacktest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/synack/synack/clock"
	"github.com/synack/synack/link"
	"github.com/synack/synack/link/memlink"
	"github.com/synack/synack/stack"
)

// The addresses of the two ends: A is the first stack of a [Pair] (the one a
// [Peer] tests), B the second stack or the peer.
var (
	AddrA  = netip.MustParseAddr("198.18.0.1")
	AddrB  = netip.MustParseAddr("198.18.0.2")
	AddrA6 = netip.MustParseAddr("fd00::1")
	AddrB6 = netip.MustParseAddr("fd00::2")
)

// Start is where a Net's virtual clock starts unless [WithStart] says
// otherwise: after 1970, so its timestamps make sense in a pcap file.
var Start = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// Option changes how [Pair], [New] and [NewPeer] build their world.
type Option func(*config)

type config struct {
	clock  clock.Clock
	start  time.Time
	link   memlink.Config
	a, b   stack.Options
	seed   uint64
	wrapA  func(link.Endpoint) link.Endpoint
	noIPv6 bool
}

// WithImpairments sets the link's impairments from A to B (ab) and from B to
// A (ba). They are deterministic, seeded by [WithSeed].
func WithImpairments(ab, ba memlink.Impairments) Option {
	return func(c *config) { c.link.AB, c.link.BA = ab, ba }
}

// WithLink sets the whole memlink configuration (MTU, impairments, Tap...).
// Its Clock is replaced by the Net's virtual clock, and a zero Seed by the
// one of [WithSeed].
func WithLink(cfg memlink.Config) Option { return func(c *config) { c.link = cfg } }

// WithStacks sets the options of stack A and stack B. Their Clock is replaced
// by the Net's virtual clock; a nil Rand becomes a reader seeded from
// [WithSeed] and the stack's name, so ISNs and ephemeral ports repeat from
// run to run.
func WithStacks(a, b stack.Options) Option { return func(c *config) { c.a, c.b = a, b } }

// WithSeed seeds the link's impairments and the stacks' randomness
// (default 1).
func WithSeed(seed uint64) Option { return func(c *config) { c.seed = seed } }

// WithClock runs the world on c instead of a new virtual clock: clock.Real()
// inside a testing/synctest bubble (where time is virtual too), or a
// Virtual clock the caller drives.
func WithClock(c clock.Clock) Option { return func(cf *config) { cf.clock = c } }

// WithStart sets the virtual clock's starting time (default [Start]).
func WithStart(t time.Time) Option { return func(c *config) { c.start = t } }

// WithTapA wraps stack A's end of the link before the stack gets it, for
// example in a pcap tap (link/pcap.Tap).
func WithTapA(wrap func(link.Endpoint) link.Endpoint) Option {
	return func(c *config) { c.wrapA = wrap }
}

// IPv4Only leaves the fd00::/8 addresses out: each stack gets only its
// 198.18.0.0/24 address.
func IPv4Only() Option { return func(c *config) { c.noIPv6 = true } }

func newConfig(opts []Option) *config {
	c := &config{start: Start, seed: 1}
	for _, o := range opts {
		o(c)
	}
	if c.clock == nil {
		c.clock = clock.NewVirtual(c.start)
	}
	return c
}

// pipe makes the link: its A end (wrapped by WithTapA) and its B end.
func (c *config) pipe() (*memlink.Endpoint, link.Endpoint, *memlink.Endpoint) {
	lc := c.link
	lc.Clock = c.clock
	if lc.Seed == 0 {
		lc.Seed = int64(c.seed)
	}
	ea, eb := memlink.Pipe(lc)
	var epA link.Endpoint = ea
	if c.wrapA != nil {
		epA = c.wrapA(ea)
	}
	return ea, epA, eb
}

// SeededRand returns a deterministic reader for stack.Options.Rand: the
// ChaCha8 stream keyed by seed and n (n tells apart the stacks of one run).
func SeededRand(seed, n uint64) io.Reader {
	var key [32]byte
	for i := range 8 {
		key[i] = byte(seed >> (8 * i))
		key[8+i] = byte(n >> (8 * i))
	}
	return rand.NewChaCha8(key)
}

// Net is two stacks joined by a memlink pipe under one clock.
type Net struct {
	// Clock is a *clock.Virtual unless WithClock gave another.
	Clock clock.Clock
	// A has AddrA/24 and AddrA6/64, B has AddrB/24 and AddrB6/64.
	A, B *stack.Stack
	// LinkA and LinkB are the two ends of the pipe, A's and B's: their
	// Stats count what each side sent.
	LinkA, LinkB *memlink.Endpoint
}

// Pair returns two stacks on a memlink pipe under a new virtual clock,
// configured by opts, and closes them when the test ends. Run the test's
// body with [Net.Run].
func Pair(t testing.TB, opts ...Option) *Net {
	t.Helper()
	n, err := New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// New is [Pair] for code that is not a test (the demo, simulations): the
// caller closes the Net.
func New(opts ...Option) (*Net, error) {
	c := newConfig(opts)
	ea, epA, eb := c.pipe()
	n := &Net{Clock: c.clock, LinkA: ea, LinkB: eb}
	var err error
	if n.A, err = c.newStack(c.a, 1, epA, AddrA, AddrA6); err != nil {
		return nil, err
	}
	if n.B, err = c.newStack(c.b, 2, eb, AddrB, AddrB6); err != nil {
		n.A.Close()
		return nil, err
	}
	return n, nil
}

// newStack makes stack number n of the world on ep with addresses a4 and a6.
func (c *config) newStack(o stack.Options, n uint64, ep link.Endpoint, a4, a6 netip.Addr) (*stack.Stack, error) {
	o.Clock = c.clock
	if o.Rand == nil {
		o.Rand = SeededRand(c.seed, n)
	}
	s := stack.New(o)
	prefixes := []netip.Prefix{netip.PrefixFrom(a4, 24)}
	if !c.noIPv6 {
		prefixes = append(prefixes, netip.PrefixFrom(a6, 64))
	}
	if _, err := s.AddLink(ep, prefixes...); err != nil {
		s.Close()
		return nil, fmt.Errorf("stacktest: %v", err)
	}
	return s, nil
}

// Close closes both stacks.
func (n *Net) Close() error {
	return errors.Join(n.A.Close(), n.B.Close())
}

// Run runs f as the virtual clock's main participant and drives virtual
// time until f returns; it fails t if every participant blocks with no timer
// left (clock.ErrDeadlock). t.Fatal inside f ends f (and so Run) early.
// With another clock (WithClock) it just calls f.
func (n *Net) Run(t testing.TB, f func()) {
	t.Helper()
	run(t, n.Clock, f)
}

func run(t testing.TB, c clock.Clock, f func()) {
	t.Helper()
	v, ok := c.(*clock.Virtual)
	if !ok {
		f()
		return
	}
	if err := v.Run(f); err != nil {
		t.Fatal(err)
	}
}

// Sleep blocks the calling goroutine (a participant, on a virtual clock)
// for d of the clock's time.
func (n *Net) Sleep(d time.Duration) { sleep(n.Clock, d) }

func sleep(c clock.Clock, d time.Duration) {
	if v, ok := c.(*clock.Virtual); ok {
		v.Sleep(d)
		return
	}
	g := c.NewGate()
	g.Wait(g.Chan(), nil, c.Now().Add(d))
}

// Connect listens on B at port, dials it from A and returns both ends of the
// connection (IPv4; the listener is closed again). Call it inside Run.
func (n *Net) Connect(t testing.TB, port uint16) (client, server *stack.TCPConn) {
	t.Helper()
	return connect(t, n.Clock, n.A, n.B, netip.AddrPortFrom(AddrB, port))
}

// connect dials to (a listener on server) from client, accepting in a
// goroutine of v (a participant, on a virtual clock).
func connect(t testing.TB, v clock.Clock, client, server *stack.Stack, to netip.AddrPort) (c, s *stack.TCPConn) {
	t.Helper()
	l, err := server.ListenTCP(to, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var acceptErr error
	var finished atomic.Bool
	done := v.NewGate()
	ticket := done.Chan()
	v.Go(func() {
		s, acceptErr = l.AcceptTCP()
		finished.Store(true)
		done.Broadcast()
	})
	c, err = client.DialTCP(context.Background(), to)
	if err != nil {
		t.Fatalf("stacktest: dial %v: %v", to, err)
	}
	// The accepting participant broadcasts once; wait for it, bounded
	// in virtual time in case the handshake never completes on B's side.
	for !finished.Load() {
		if err := done.Wait(ticket, nil, v.Now().Add(time.Minute)); err != nil {
			t.Fatalf("stacktest: accept on %v: %v", to, err)
		}
		ticket = done.Chan()
	}
	if acceptErr != nil {
		t.Fatalf("stacktest: accept on %v: %v", to, acceptErr)
	}
	return c, s
}

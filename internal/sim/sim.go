// Package sim runs seeded connection lifetimes between two synack stacks
// over an impaired in-memory link, and checks what TCP promises: every byte
// arrives exactly once and in order, and both ends finish CLOSED by the
// path RFC 9293 prescribes.
//
// A lifetime is a pure function of its seed: the link's impairments, the
// stacks' randomness, the sizes of the transfers and the way the
// connection ends all come from it, so a failing seed replays exactly.
package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/synack/synack/clock"
	"github.com/synack/synack/link"
	"github.com/synack/synack/link/memlink"
	"github.com/synack/synack/link/pcap"
	"github.com/synack/synack/stack"
	"github.com/synack/synack/stacktest"
	"github.com/synack/synack/tcp"
)

// Ending is how a lifetime's connection ends.
type Ending uint8

const (
	// ClientCloses: the client sends, half-closes, reads the reply to EOF
	// and closes; the server reads to EOF, replies and closes. The client
	// is the active closer and goes through TIME-WAIT.
	ClientCloses Ending = iota
	// ServerCloses: the server speaks first and closes first; it goes
	// through TIME-WAIT.
	ServerCloses
	// Simultaneous: both write, then both close without waiting for the
	// other: FIN-WAIT-1 and CLOSING or FIN-WAIT-2 on both, then TIME-WAIT.
	Simultaneous
	// ClientAborts: the client sends part of its data, then closes with
	// SetLinger(0): an RST; the server sees ECONNRESET (or EOF if the RST
	// was lost and the connection then timed out or was reset later).
	ClientAborts
	numEndings
)

func (e Ending) String() string {
	return [...]string{"client-closes", "server-closes", "simultaneous", "client-aborts"}[e]
}

// Plan is everything a seed decides.
type Plan struct {
	Seed          uint64
	Loss          float64
	Reorder       float64
	Duplicate     float64
	Corrupt       float64
	Delay, Jitter time.Duration
	Up, Down      int // bytes client->server and server->client
	Ending        Ending
	MTU           int
	// LossDetection is the stacks' tcp.Config.LossDetection (zero: the
	// default, RACK-TLP).
	LossDetection tcp.LossDetection
	// MarkEvery, when not 0, asks for ECN on the client's connect
	// (tcp.ECNActive; the server accepts, as by default) and has the link
	// mark every MarkEvery-th ECN-capable packet CE (RFC 3168).
	MarkEvery int
	// GSO, when not 0, is the link's memlink.Config.GSO: the stacks send
	// TCP super-segments that the link cuts into MSS-sized segments, each
	// meeting the impairments on its own (tcp/gso.go).
	GSO int
}

// NewPlan derives a lifetime from seed: 0-10% loss, reordering,
// duplication, 1% corruption and a delay of 1-50 ms.
func NewPlan(seed uint64) Plan {
	r := rand.New(rand.NewPCG(seed, 0x51a1))
	p := Plan{
		Seed:      seed,
		Loss:      r.Float64() * 0.10,
		Reorder:   r.Float64() * 0.10,
		Duplicate: r.Float64() * 0.05,
		Corrupt:   0.01,
		Delay:     time.Duration(1+r.IntN(50)) * time.Millisecond,
		Ending:    Ending(r.IntN(int(numEndings))),
		MTU:       []int{576, 1280, 1500, 9000}[r.IntN(4)],
	}
	p.Jitter = p.Delay / 4
	sizes := []int{0, 1, 100, 1460, 5000, 40_000, 200_000}
	p.Up = sizes[r.IntN(len(sizes))]
	p.Down = sizes[r.IntN(len(sizes))]
	if seed%7 == 0 {
		p.Loss, p.Reorder, p.Duplicate = 0, 0, 0 // a share of clean links
	}
	return p
}

func (p Plan) String() string {
	s := fmt.Sprintf("seed %d: %v, up %d B, down %d B, loss %.1f%%, reorder %.1f%%, dup %.1f%%, corrupt %.0f%%, delay %v±%v, mtu %d",
		p.Seed, p.Ending, p.Up, p.Down, 100*p.Loss, 100*p.Reorder, 100*p.Duplicate, 100*p.Corrupt, p.Delay, p.Jitter, p.MTU)
	if p.GSO > 0 {
		s += fmt.Sprintf(", gso %d", p.GSO)
	}
	return s
}

// Result is what a lifetime observed.
type Result struct {
	ClientPath, ServerPath []tcp.State
	// SuperSegments counts the super-segments (tcp.Segment.GSOSize) the
	// two stacks sent.
	SuperSegments int
	Elapsed       time.Duration // virtual time from dial to both CLOSED
}

var (
	clientAddr = stacktest.AddrA
	serverAddr = stacktest.AddrB
)

// recorder keeps the state path of the one connection each side has.
type recorder struct {
	mu     sync.Mutex
	path   map[netip.Addr][]tcp.State
	supers int
}

func (r *recorder) trace(ev stack.TraceEvent) {
	if ev.Kind == stack.TraceSent && ev.Segment != nil && ev.Segment.GSOSize != 0 {
		r.mu.Lock()
		r.supers++
		r.mu.Unlock()
		return
	}
	if ev.Kind != stack.TraceState || !ev.Tuple.Remote.IsValid() {
		return // listeners have no remote end
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	a := ev.Tuple.Local.Addr()
	p := r.path[a]
	if len(p) == 0 {
		p = append(p, ev.From)
	}
	r.path[a] = append(p, ev.To)
}

func (r *recorder) get(a netip.Addr) []tcp.State {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]tcp.State(nil), r.path[a]...)
}

// Run plays one lifetime with clk (the real clock inside a testing/synctest
// bubble, or a virtual clock's participant). If pcapOut is not nil, the
// client's link is recorded there.
func Run(p Plan, clk clock.Clock, pcapOut io.Writer) (Result, error) {
	imp := memlink.Impairments{
		Loss: p.Loss, Reorder: p.Reorder, Duplicate: p.Duplicate, Corrupt: p.Corrupt,
		Delay: p.Delay, Jitter: p.Jitter,
	}
	impAB, impBA := imp, imp
	if p.MarkEvery > 0 {
		var ab, ba int // each runs under its own direction's lock
		impAB.MarkCE = func([]byte) bool { ab++; return ab%p.MarkEvery == 0 }
		impBA.MarkCE = func([]byte) bool { ba++; return ba%p.MarkEvery == 0 }
	}
	var tap func(link.Endpoint) link.Endpoint
	if pcapOut != nil {
		w, err := pcap.NewWriter(pcapOut)
		if err != nil {
			return Result{}, err
		}
		tap = func(ep link.Endpoint) link.Endpoint { return pcap.Tap(ep, w, clk) }
	}
	rec := &recorder{path: map[netip.Addr][]tcp.State{}}
	opts := func(n uint64) stack.Options {
		ecn := tcp.ECNPassive
		if p.MarkEvery > 0 && n == 1 {
			ecn = tcp.ECNActive // the client asks
		}
		return stack.Options{
			Trace: rec.trace,
			// Nagle on for odd seeds: both send paths get exercised.
			TCP: tcp.Config{MinRTO: 200 * time.Millisecond, Nagle: p.Seed%2 == 1, LossDetection: p.LossDetection, ECN: ecn},
		}
	}
	// The client is the pair's A (clientAddr), the server its B.
	w, err := stacktest.New(
		stacktest.WithClock(clk),
		stacktest.WithSeed(p.Seed),
		stacktest.WithLink(memlink.Config{MTU: p.MTU, AB: impAB, BA: impBA, GSO: p.GSO}),
		stacktest.WithTapA(tap),
		stacktest.WithStacks(opts(1), opts(2)),
		stacktest.IPv4Only())
	if err != nil {
		return Result{}, err
	}
	defer w.Close()
	cs, ss := w.A, w.B

	start := clk.Now()
	res, err := play(p, clk, cs, ss)
	if err != nil {
		res.ClientPath = rec.get(clientAddr)
		res.ServerPath = rec.get(serverAddr)
		return res, err
	}
	// Let every timer run out: TIME-WAIT (2MSL), LAST-ACK retransmissions.
	deadline := start.Add(30 * time.Minute)
	for openConns(cs)+openConns(ss) > 0 {
		if clk.Now().After(deadline) {
			return res, fmt.Errorf("connections still open after 30 min: client %v server %v", cs.StateCounts(), ss.StateCounts())
		}
		sleep(clk, time.Second)
	}
	res.Elapsed = clk.Now().Sub(start)
	res.ClientPath = rec.get(clientAddr)
	res.ServerPath = rec.get(serverAddr)
	rec.mu.Lock()
	res.SuperSegments = rec.supers
	rec.mu.Unlock()
	return res, checkPaths(p, res)
}

// openConns counts a stack's connections, listeners aside.
func openConns(s *stack.Stack) int {
	n := 0
	for _, c := range s.Connections() {
		if c.Tuple.Remote.IsValid() {
			n++
		}
	}
	return n
}

func sleep(clk clock.Clock, d time.Duration) {
	if v, ok := clk.(*clock.Virtual); ok {
		v.Sleep(d)
		return
	}
	time.Sleep(d) // inside a synctest bubble this is virtual
}

func pattern(n int, salt byte) []byte {
	b := make([]byte, n)
	x := uint32(salt) | 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

// play runs the application side of the lifetime: both programs, with
// their results checked byte for byte.
func play(p Plan, clk clock.Clock, cs, ss *stack.Stack) (Result, error) {
	ln, err := ss.ListenTCP(netip.AddrPortFrom(serverAddr, 80), 8)
	if err != nil {
		return Result{}, err
	}
	defer ln.Close()
	up, down := pattern(p.Up, 1), pattern(p.Down, 2)

	server := goJoin(clk, func() error { return serve(p, clk, ln, up, down) })
	clientErr := client(p, clk, cs, up, down)
	return Result{}, errors.Join(clientErr, server())
}

func client(p Plan, clk clock.Clock, cs *stack.Stack, up, down []byte) error {
	c, err := cs.DialTCP(context.Background(), netip.AddrPortFrom(serverAddr, 80))
	if err != nil {
		return fmt.Errorf("client dial: %w", err)
	}
	c.SetDeadline(clk.Now().Add(20 * time.Minute))
	switch p.Ending {
	case ClientCloses:
		if _, err := c.Write(up); err != nil {
			return fmt.Errorf("client write: %w", err)
		}
		if err := c.CloseWrite(); err != nil {
			return fmt.Errorf("client CloseWrite: %w", err)
		}
		if err := readAll(c, down, "client"); err != nil {
			return err
		}
		return c.Close()
	case ServerCloses:
		if err := readAll(c, down, "client"); err != nil {
			return err
		}
		if _, err := c.Write(up); err != nil {
			return fmt.Errorf("client write after server's FIN: %w", err)
		}
		return c.Close()
	case Simultaneous:
		wait := goJoin(clk, func() error { _, err := c.Write(up); return err })
		if err := readAllNoEOFCheck(c, down, "client"); err != nil {
			return err
		}
		if werr := wait(); werr != nil {
			return fmt.Errorf("client write: %w", werr)
		}
		return c.Close()
	case ClientAborts:
		half := up[:len(up)/2]
		if _, err := c.Write(half); err != nil {
			return fmt.Errorf("client write: %w", err)
		}
		c.SetLinger(0)
		return c.Close()
	}
	return nil
}

func serve(p Plan, clk clock.Clock, ln *stack.Listener, up, down []byte) error {
	ln.SetDeadline(clk.Now().Add(10 * time.Minute))
	c, err := ln.AcceptTCP()
	if err != nil {
		if p.Ending == ClientAborts && errors.Is(err, os.ErrDeadlineExceeded) {
			// The RST can end the connection while it is still half
			// open (its last ACK lost): the listener drops it before
			// anyone accepts it, as RFC 9293 3.10.7.4 returns it to
			// LISTEN.
			return nil
		}
		return fmt.Errorf("server accept: %w", err)
	}
	c.SetDeadline(clk.Now().Add(20 * time.Minute))
	switch p.Ending {
	case ClientCloses:
		if err := readAll(c, up, "server"); err != nil {
			return err
		}
		if _, err := c.Write(down); err != nil {
			return fmt.Errorf("server write: %w", err)
		}
		return c.Close()
	case ServerCloses:
		if _, err := c.Write(down); err != nil {
			return fmt.Errorf("server write: %w", err)
		}
		if err := c.CloseWrite(); err != nil {
			return err
		}
		if err := readAll(c, up, "server"); err != nil {
			return err
		}
		return c.Close()
	case Simultaneous:
		wait := goJoin(clk, func() error { _, err := c.Write(down); return err })
		if err := readAllNoEOFCheck(c, up, "server"); err != nil {
			return err
		}
		if werr := wait(); werr != nil {
			return fmt.Errorf("server write: %w", werr)
		}
		return c.Close()
	case ClientAborts:
		// Whatever arrives before the RST must be a prefix of what was
		// sent, in order; then the reset. If the RST itself is lost the
		// connection is half-open (RFC 9293 3.5.1): the server only
		// learns when it sends, and the client's stack answers with a
		// RST for a connection it no longer has.
		c.SetReadDeadline(clk.Now().Add(5 * time.Second))
		got, err := io.ReadAll(c)
		if !bytes.HasPrefix(up, got) {
			return fmt.Errorf("server got %d bytes that are not a prefix of what the client sent", len(got))
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			c.SetDeadline(clk.Now().Add(10 * time.Minute))
			_, err = c.Write(append(down, 0)) // at least one byte, to draw the RST
			if err == nil {
				_, err = io.ReadAll(c)
			}
		}
		if !errors.Is(err, syscall.ECONNRESET) {
			return fmt.Errorf("server after the client's abort: %v, want ECONNRESET", err)
		}
		c.Close()
		return nil
	}
	return nil
}

// goJoin runs f in a goroutine the clock knows about and returns a
// function that waits for its result. The wait goes through a clock.Gate:
// under a virtual clock, participants may block only there.
func goJoin(clk clock.Clock, f func() error) func() error {
	g := clk.NewGate()
	var mu sync.Mutex
	done := false
	var err error
	clk.Go(func() {
		e := f()
		mu.Lock()
		done, err = true, e
		mu.Unlock()
		g.Broadcast()
	})
	return func() error {
		for {
			ticket := g.Chan()
			mu.Lock()
			if done {
				mu.Unlock()
				return err
			}
			mu.Unlock()
			g.Wait(ticket, nil, time.Time{})
		}
	}
}

// readAll reads to EOF and compares with want.
func readAll(c *stack.TCPConn, want []byte, who string) error {
	got, err := io.ReadAll(c)
	if err != nil {
		return fmt.Errorf("%s read: %w (after %d of %d bytes)", who, err, len(got), len(want))
	}
	return compare(got, want, who)
}

// readAllNoEOFCheck reads exactly len(want) bytes: in a simultaneous close
// the peer's FIN may come before or after ours.
func readAllNoEOFCheck(c *stack.TCPConn, want []byte, who string) error {
	got := make([]byte, len(want))
	n, err := io.ReadFull(c, got)
	if err != nil {
		return fmt.Errorf("%s read: %w (after %d of %d bytes)", who, err, n, len(want))
	}
	return compare(got, want, who)
}

func compare(got, want []byte, who string) error {
	if bytes.Equal(got, want) {
		return nil
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	return fmt.Errorf("%s received %d bytes, want %d; first difference at byte %d", who, len(got), len(want), i)
}

// checkPaths checks the state paths against RFC 9293 Figure 5 for the
// lifetime's ending.
func checkPaths(p Plan, r Result) error {
	var errs []string
	check := func(who string, path []tcp.State, viaTimeWait bool) {
		if len(path) == 0 || path[len(path)-1] != tcp.Closed {
			errs = append(errs, fmt.Sprintf("%s did not end CLOSED: %v", who, path))
			return
		}
		for i := 1; i < len(path); i++ {
			if !tcp.Legal(path[i-1], path[i]) {
				errs = append(errs, fmt.Sprintf("%s made an illegal transition %v -> %v", who, path[i-1], path[i]))
			}
		}
		tw := false
		for _, s := range path {
			tw = tw || s == tcp.TimeWait
		}
		if viaTimeWait && !tw {
			errs = append(errs, fmt.Sprintf("%s closed first but skipped TIME-WAIT: %v", who, path))
		}
		if !viaTimeWait && tw && p.Ending != Simultaneous {
			errs = append(errs, fmt.Sprintf("%s closed second but went through TIME-WAIT: %v", who, path))
		}
	}
	switch p.Ending {
	case ClientCloses:
		check("client", r.ClientPath, true)
		check("server", r.ServerPath, false)
	case ServerCloses:
		check("client", r.ClientPath, false)
		check("server", r.ServerPath, true)
	case Simultaneous:
		// Who reaches TIME-WAIT depends on whose FIN arrives first;
		// at least one side must.
		check("client", r.ClientPath, false)
		check("server", r.ServerPath, false)
		if !hasState(r.ClientPath, tcp.TimeWait) && !hasState(r.ServerPath, tcp.TimeWait) {
			errs = append(errs, "neither side went through TIME-WAIT")
		}
	case ClientAborts:
		check("client", r.ClientPath, false)
		check("server", r.ServerPath, false)
		if hasState(r.ClientPath, tcp.TimeWait) {
			errs = append(errs, "the aborting client went through TIME-WAIT")
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

func hasState(p []tcp.State, s tcp.State) bool {
	for _, x := range p {
		if x == s {
			return true
		}
	}
	return false
}

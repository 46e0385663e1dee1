package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/synack/synack/admin"
	"github.com/synack/synack/clock"
	"github.com/synack/synack/diag/ladder"
	"github.com/synack/synack/link/memlink"
	"github.com/synack/synack/stack"
	"github.com/synack/synack/stacktest"
	"github.com/synack/synack/tcp"
	"github.com/synack/synack/wire"
)

func init() {
	register(&command{
		name:    "demo",
		summary: "two stacks on an in-memory network, printing a ladder diagram of a TCP exchange",
		run:     runDemo,
	})
}

// scenario is one demo: a real exchange between two stacks, not a script
// of prints. run executes as the virtual clock's main participant.
type scenario struct {
	name, summary string
	run           func(d *demo) error
}

var scenarios = []scenario{
	{"lifecycle", "connect, data both ways, close; the client waits out TIME-WAIT (2MSL)", demoLifecycle},
	{"simultaneous-open", "both sides send SYN at once: SYN-SENT -> SYN-RECEIVED -> ESTABLISHED", demoSimultaneousOpen},
	{"simultaneous-close", "both sides close at once: FIN-WAIT-1 -> CLOSING -> TIME-WAIT on both", demoSimultaneousClose},
	{"half-close", "the client shuts down its sending side and keeps receiving (CLOSE-WAIT still sends)", demoHalfClose},
	{"refused", "connect to a port nobody listens on: RST, connection refused", demoRefused},
	{"lost-ack", "the ACK of the server's FIN is lost: LAST-ACK retransmits the FIN, TIME-WAIT answers again", demoLostACK},
	{"abort", "SetLinger(0) then Close: RST instead of FIN, the peer sees connection reset", demoAbort},
}

var (
	clientAddr = stacktest.AddrA
	serverAddr = stacktest.AddrB
	demoStart  = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
)

// demo is the world of one scenario: a virtual clock, a memlink pipe, a
// client stack and a server stack.
type demo struct {
	v              *clock.Virtual
	client, server *stack.Stack
	out            *view
	ctx            context.Context
	dropNext       func(pkt []byte) bool // set by a scenario to lose one chosen packet
}

func runDemo(args []string) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	list := fs.Bool("list", false, "list the scenarios")
	loss := fs.Float64("loss", 0, "probability that the link loses a packet, each direction (0..1)")
	seed := fs.Uint64("seed", 1, "seed of the link's impairments and the stacks' randomness")
	delay := fs.Duration("delay", 10*time.Millisecond, "one-way delay of the link")
	asJSON := fs.Bool("json", false, "print the events as JSON lines instead of a ladder")
	absolute := fs.Bool("absolute", false, "print absolute sequence numbers")
	noColor := fs.Bool("no-color", false, "no colour even on a terminal (so does a non-empty NO_COLOR)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: synack demo [flags] [SCENARIO]\n\nScenarios (default lifecycle):")
		for _, s := range scenarios {
			fmt.Fprintf(fs.Output(), "  %-19s %s\n", s.name, s.summary)
		}
		fmt.Fprintln(fs.Output(), "\nFlags:")
		fs.PrintDefaults()
	}
	// Accept flags after the scenario name too.
	var names []string
	for len(args) > 0 {
		if status, done := parseFlags(fs, args); done {
			return status
		}
		args = fs.Args()
		if len(args) > 0 {
			names = append(names, args[0])
			args = args[1:]
		}
	}
	if *list {
		for _, s := range scenarios {
			fmt.Printf("%-19s %s\n", s.name, s.summary)
		}
		return 0
	}
	name := "lifecycle"
	if len(names) > 1 {
		fmt.Fprintln(os.Stderr, "synack demo: one scenario at a time")
		return 2
	}
	if len(names) == 1 {
		name = names[0]
	}
	var sc *scenario
	for i := range scenarios {
		if scenarios[i].name == name {
			sc = &scenarios[i]
		}
	}
	if sc == nil {
		all := make([]string, len(scenarios))
		for i, s := range scenarios {
			all[i] = s.name
		}
		sort.Strings(all)
		fmt.Fprintf(os.Stderr, "synack demo: no scenario %q (have: %s)\n", name, strings.Join(all, ", "))
		return 2
	}
	if *loss < 0 || *loss >= 1 {
		fmt.Fprintln(os.Stderr, "synack demo: --loss must be in [0, 1)")
		return 2
	}
	out := newView(os.Stdout, *asJSON)
	out.l.Absolute = *absolute
	out.l.Color = !*asJSON && colorOn(os.Stdout, *noColor)
	out.l.Width = termWidth(os.Stdout)
	if err := playScenario(sc, out, *seed, *loss, *delay); err != nil {
		fmt.Fprintf(os.Stderr, "synack demo %s: %v\n", sc.name, err)
		return 1
	}
	return 0
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0 && os.Getenv("TERM") != "dumb"
}

// playScenario builds the world and runs one scenario under the virtual
// clock: time only moves when both stacks and both applications wait, so a
// 60 s TIME-WAIT passes at once and every run with the same seed is alike.
func playScenario(sc *scenario, out *view, seed uint64, loss float64, delay time.Duration) error {
	v := clock.NewVirtual(demoStart)
	d := &demo{v: v, out: out, ctx: context.Background()}
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	dropper := func(pkt []byte) bool {
		if d.dropNext != nil && d.dropNext(pkt) {
			out.lost(v.Now(), pkt)
			return true
		}
		if loss > 0 && rng.Float64() < loss {
			out.lost(v.Now(), pkt)
			return true
		}
		return false
	}
	// The world is a stacktest pair: A is the client, B the server, at
	// clientAddr and serverAddr (stacktest.AddrA and AddrB).
	w, err := stacktest.New(
		stacktest.WithClock(v),
		stacktest.WithSeed(seed),
		stacktest.WithImpairments(
			memlink.Impairments{Delay: delay, Drop: dropper},
			memlink.Impairments{Delay: delay, Drop: dropper}),
		stacktest.WithStacks(stack.Options{Trace: out.trace}, stack.Options{Trace: out.trace}),
		stacktest.IPv4Only())
	if err != nil {
		return err
	}
	d.client, d.server = w.A, w.B
	defer d.client.Close()
	defer d.server.Close()
	out.header()
	var runErr error
	if err := v.Run(func() { runErr = sc.run(d) }); err != nil {
		return err
	}
	out.summary()
	return runErr
}

// msl is the stacks' maximum segment lifetime: TIME-WAIT lasts twice this.
const msl = tcp.DefaultMSL

func (d *demo) note(who, format string, a ...any) {
	d.out.note(d.v.Now(), who, fmt.Sprintf(format, a...))
}

// connect listens on the server's port 80, dials it from the client, and
// runs server on the accepted connection in a participant of the virtual
// clock. It returns the client's end, a wait for server's result, and a
// stop that closes the listener.
func (d *demo) connect(server func(c *stack.TCPConn) error) (c *stack.TCPConn, wait func() error, stop func(), err error) {
	ln, err := d.server.ListenTCP(netip.AddrPortFrom(serverAddr, 80), 16)
	if err != nil {
		return nil, nil, nil, err
	}
	done := newOutcome[struct{}](d)
	d.v.Go(func() {
		sc, err := ln.AcceptTCP()
		if err == nil {
			err = server(sc)
		}
		done.set(struct{}{}, err)
	})
	c, err = d.client.DialTCP(d.ctx, netip.AddrPortFrom(serverAddr, 80))
	if err != nil {
		ln.Close()
		return nil, nil, nil, err
	}
	wait = func() error { _, err := done.wait(); return err }
	return c, wait, func() { ln.Close() }, nil
}

// waitTimeWait lets 2MSL pass, so TIME-WAIT ends on the page.
func (d *demo) waitTimeWait() {
	d.v.Sleep(2*msl + time.Second)
}

func demoLifecycle(d *demo) error {
	c, serverDone, stop, err := d.connect(func(c *stack.TCPConn) error {
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err != nil {
			return err
		}
		d.note("server", "read %q, writes %q", buf[:n], "world")
		if _, err := c.Write([]byte("world")); err != nil {
			return err
		}
		if _, err := c.Read(buf); err != io.EOF {
			return fmt.Errorf("server wanted EOF, got %v", err)
		}
		d.note("server", "read EOF (the client's FIN), calls Close")
		return c.Close()
	})
	if err != nil {
		return err
	}
	defer stop()
	d.note("client", "connected, writes %q", "hello")
	if _, err := c.Write([]byte("hello")); err != nil {
		return err
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	d.note("client", "read %q, calls Close", buf[:n])
	if err := c.Close(); err != nil {
		return err
	}
	if err := serverDone(); err != nil {
		return err
	}
	d.waitTimeWait()
	return nil
}

// outcome carries a participant's result to another participant. Under the
// virtual clock participants may block only through the clock's gates, so
// this is a gate plus the value, not a channel.
type outcome[T any] struct {
	g    *clock.Gate
	mu   sync.Mutex
	done bool
	val  T
	err  error
}

func newOutcome[T any](d *demo) *outcome[T] { return &outcome[T]{g: d.v.NewGate()} }

func (o *outcome[T]) set(v T, err error) {
	o.mu.Lock()
	o.done, o.val, o.err = true, v, err
	o.mu.Unlock()
	o.g.Broadcast()
}

func (o *outcome[T]) wait() (T, error) {
	for {
		ticket := o.g.Chan()
		o.mu.Lock()
		if o.done {
			o.mu.Unlock()
			return o.val, o.err
		}
		o.mu.Unlock()
		o.g.Wait(ticket, nil, time.Time{})
	}
}

func demoSimultaneousOpen(d *demo) error {
	cAP := netip.AddrPortFrom(clientAddr, 40000)
	sAP := netip.AddrPortFrom(serverAddr, 40001)
	d.note("client", "connects %v -> %v while the server connects back at the same moment", cAP, sAP)
	res := newOutcome[*stack.TCPConn](d)
	d.v.Go(func() { res.set(d.server.DialTCPFrom(d.ctx, sAP, cAP)) })
	c, err := d.client.DialTCPFrom(d.ctx, cAP, sAP)
	if err != nil {
		return err
	}
	sc, err := res.wait()
	if err != nil {
		return err
	}
	d.note("client", "both dials returned: one connection, opened from both ends")
	c.Close()
	buf := make([]byte, 1)
	sc.Read(buf)
	sc.Close()
	d.waitTimeWait()
	return nil
}

func demoSimultaneousClose(d *demo) error {
	accepted := newOutcome[*stack.TCPConn](d)
	c, _, stop, err := d.connect(func(c *stack.TCPConn) error {
		accepted.set(c, nil)
		return nil
	})
	if err != nil {
		return err
	}
	defer stop()
	sc, _ := accepted.wait()
	d.v.Sleep(100 * time.Millisecond)
	d.note("client", "both sides call Close at the same moment")
	res := newOutcome[struct{}](d)
	d.v.Go(func() { res.set(struct{}{}, sc.Close()) })
	if err := c.Close(); err != nil {
		return err
	}
	if _, err := res.wait(); err != nil {
		return err
	}
	d.waitTimeWait()
	return nil
}

func demoHalfClose(d *demo) error {
	c, serverDone, stop, err := d.connect(func(c *stack.TCPConn) error {
		got, err := io.ReadAll(c)
		if err != nil {
			return err
		}
		d.note("server", "read %q then EOF; the connection is half-closed, it still sends", got)
		for i := 1; i <= 3; i++ {
			msg := fmt.Sprintf("part %d", i)
			d.note("server", "writes %q in CLOSE-WAIT", msg)
			if _, err := c.Write([]byte(msg)); err != nil {
				return err
			}
			d.v.Sleep(50 * time.Millisecond)
		}
		d.note("server", "calls Close")
		return c.Close()
	})
	if err != nil {
		return err
	}
	defer stop()
	if _, err := c.Write([]byte("request")); err != nil {
		return err
	}
	d.note("client", "wrote %q, calls CloseWrite (shutdown SHUT_WR): FIN, but keeps reading", "request")
	if err := c.CloseWrite(); err != nil {
		return err
	}
	got, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	d.note("client", "read %q in FIN-WAIT-2, then EOF; calls Close", got)
	c.Close()
	if err := serverDone(); err != nil {
		return err
	}
	d.waitTimeWait()
	return nil
}

func demoRefused(d *demo) error {
	d.note("client", "connects to port 81, where nobody listens")
	_, err := d.client.DialTCP(d.ctx, netip.AddrPortFrom(serverAddr, 81))
	if err == nil {
		return errors.New("connect to a closed port succeeded")
	}
	d.note("client", "Dial returned: %v", err)
	var op *net.OpError
	if !errors.As(err, &op) {
		return fmt.Errorf("error is not a *net.OpError: %T", err)
	}
	return nil
}

func demoLostACK(d *demo) error {
	// Lose the first pure ACK the client sends from TIME-WAIT: the ACK of
	// the server's FIN.
	d.dropNext = func(pkt []byte) bool {
		ip, err := wire.ParseIP(pkt)
		if err != nil || ip.Src != clientAddr || ip.Protocol != wire.ProtocolTCP {
			return false
		}
		h, payload, err := wire.ParseTCP(ip.Payload, ip.Src, ip.Dst, false)
		if err != nil || h.Flags != wire.ACK || len(payload) != 0 {
			return false
		}
		// The drop hook runs inside the client stack's send path, so
		// it must not call the stack: it asks the ladder, which follows
		// every state change.
		if d.out.l.State(d.out.l.Left()) == tcp.TimeWait {
			d.dropNext = nil
			return true
		}
		return false
	}
	return demoLifecycle(d)
}

func demoAbort(d *demo) error {
	c, serverDone, stop, err := d.connect(func(c *stack.TCPConn) error {
		_, err := c.Read(make([]byte, 64))
		d.note("server", "Read returned: %v", err)
		if !errors.Is(err, syscallECONNRESET) {
			return fmt.Errorf("server wanted ECONNRESET, got %v", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	defer stop()
	d.v.Sleep(100 * time.Millisecond)
	d.note("client", "SetLinger(0) and Close: abort")
	c.SetLinger(0)
	c.Close()
	return serverDone()
}

// view is where a scenario's events go: the ladder diagram, or with --json
// one JSON line per event in the form of /api/trace and `synack trace
// --json` (admin.TraceRecord), plus the demo's own narration lines:
//
//	{"kind":"app","time":...,"side":"client","text":"connected, writes \"hello\""}
//	{"kind":"flood","time":...,"side":"attacker","text":"..."}
//
// and segments the link lost as records of kind "lost".
type view struct {
	// l draws the ladder; with --json it draws into io.Discard but still
	// follows each side's state, which the lost-ack scenario asks for.
	l *ladder.Ladder

	mu   sync.Mutex
	json *json.Encoder // --json
}

func newView(w io.Writer, asJSON bool) *view {
	if !asJSON {
		return &view{l: ladder.NewPair(w, demoStart, clientAddr, serverAddr)}
	}
	return &view{l: ladder.NewPair(io.Discard, demoStart, clientAddr, serverAddr), json: json.NewEncoder(w)}
}

// narration is a line of the demo's story in JSON.
type narration struct {
	Kind string    `json:"kind"` // "app", "flood"
	Time time.Time `json:"time"`
	Side string    `json:"side"` // "client", "server", "attacker"
	Text string    `json:"text"`
}

func (o *view) encode(v any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.json.Encode(v)
}

func (o *view) header() {
	if o.json == nil {
		o.l.Header()
	}
}

func (o *view) summary() {
	if o.json == nil {
		o.l.Summary()
	}
}

// trace is the stack.Options.Trace hook of both stacks.
func (o *view) trace(ev stack.TraceEvent) {
	o.l.Trace(ev)
	if o.json == nil {
		return
	}
	if ev.Kind == stack.TraceState && ev.From == tcp.Closed && ev.To == tcp.Listen && ev.Tuple.Remote.IsValid() {
		return // a listener's child starts as a copy of the listener, as /api/events leaves out
	}
	o.encode(admin.NewTraceRecord(ev))
}

// lost reports a packet the demo's link dropped.
func (o *view) lost(at time.Time, pkt []byte) {
	ip, err := wire.ParseIP(pkt)
	if err != nil || ip.Protocol != wire.ProtocolTCP {
		return
	}
	h, payload, err := wire.ParseTCP(ip.Payload, ip.Src, ip.Dst, false)
	if err != nil {
		return
	}
	tuple := tcp.Tuple{Local: netip.AddrPortFrom(ip.Src, h.SrcPort), Remote: netip.AddrPortFrom(ip.Dst, h.DstPort)}
	seg := tcp.Segment{Seq: h.Seq, Ack: h.Ack, Flags: h.Flags, Window: h.Window, Options: h.Options, Payload: payload}
	if o.json == nil {
		o.l.Lost(at, tuple, &seg)
		return
	}
	rec := admin.NewTraceRecord(stack.TraceEvent{Transition: tcp.Transition{Time: at, Tuple: tuple}, Segment: &seg})
	rec.Kind = admin.TraceLost
	o.encode(rec)
}

// note prints a line of narration: what the application did or saw.
func (o *view) note(at time.Time, who, msg string) {
	if o.json != nil {
		o.encode(narration{Kind: "app", Time: at, Side: who, Text: msg})
		return
	}
	o.l.Note(at, who, msg)
}

// aside prints a line about the flood.
func (o *view) aside(at time.Time, text string) {
	if o.json != nil {
		o.encode(narration{Kind: "flood", Time: at, Side: "attacker", Text: text})
		return
	}
	o.l.Aside(at, text)
}

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/synack/synack/admin"
	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/stack"
	"github.com/synack/synack/tcp"
	"github.com/synack/synack/wire"
)

func init() {
	register(&command{
		name:    "trace",
		summary: "the ladder diagram of a running synack's real connections, live (synack serve --admin)",
		run:     runTrace,
	})
}

type traceOpts struct {
	filter   admin.TraceFilter
	backlog  int
	count    int // stop after this many records; 0: never
	json     bool
	color    bool
	absolute bool
}

func runTrace(args []string) int {
	fs := flag.NewFlagSet("trace", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: synack trace [--admin URL] [flags] [FILTER ...]")
		fmt.Fprintln(fs.Output(), "\nPrints the segments and state changes of a running synack's connections as they happen,")
		fmt.Fprintln(fs.Output(), "as the ladder of `synack demo`: the stack on the left, each peer on the right.")
		fmt.Fprintln(fs.Output(), "\nFILTER words (all kinds must match; values of one kind are alternatives):")
		fmt.Fprintln(fs.Output(), "  port N | N            either end's port")
		fmt.Fprintln(fs.Output(), "  host ADDR | ADDR      either end's address (ADDR:PORT sets both)")
		fmt.Fprintln(fs.Output(), "  state S | S           the connection is in S before or after the event (close-wait, TIME-WAIT, ...)")
		fmt.Fprintln(fs.Output(), "\nflags:")
		fs.PrintDefaults()
	}
	base := fs.String("admin", "", "the admin `URL` of a running synack (default $SYNACK_ADMIN, else "+defaultAdminURL+")")
	var o traceOpts
	fs.IntVar(&o.backlog, "backlog", 0, "first show the last `N` recorded events that match")
	fs.IntVar(&o.count, "count", 0, "stop after `N` events (0: until interrupted)")
	fs.BoolVar(&o.json, "json", false, "print the events as JSON lines")
	fs.BoolVar(&o.absolute, "absolute", false, "print absolute sequence numbers")
	noColor := fs.Bool("no-color", false, "no colour even on a terminal")
	// Flags may come after filter words.
	var words []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		words = append(words, args[0])
		args = args[1:]
	}
	var err error
	if o.filter, err = admin.ParseTraceFilter(words); err != nil {
		fmt.Fprintf(os.Stderr, "synack trace: filter: %v\n", err)
		return 2
	}
	o.color = !*noColor && !o.json && isTerminal(os.Stdout)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = followTrace(ctx, adminBase(*base), o, os.Stdout)
	switch {
	case err == nil, ctx.Err() != nil:
		return 0
	default:
		fmt.Fprintf(os.Stderr, "synack trace: %v\n", err)
		return 1
	}
}

// followTrace reads base's /api/trace and prints it to w until ctx ends,
// the server ends the stream, or o.count events were printed.
func followTrace(ctx context.Context, base string, o traceOpts, w io.Writer) error {
	q := o.filter.Query()
	if o.backlog > 0 {
		if q != "" {
			q += "&"
		}
		q += "backlog=" + strconv.Itoa(o.backlog)
	}
	u := base + "/api/trace"
	if q != "" {
		u += "?" + q
	}
	if _, err := url.Parse(u); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("%w (is `synack serve --admin ADDR` running there?)", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s: %s: %s", u, resp.Status, strings.TrimSpace(string(b)))
	}
	ll := newLiveLadder(w, o)
	ll.header()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		if o.json {
			fmt.Fprintf(w, "%s\n", sc.Bytes())
		} else {
			var rec admin.TraceRecord
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				return fmt.Errorf("reading the trace: %w", err)
			}
			ll.record(&rec)
		}
		if n++; o.count > 0 && n >= o.count {
			return nil
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if !o.json {
		fmt.Fprintln(w, ll.paint(colDim, "(the server ended the trace: the stack closed)"))
	}
	return nil
}

// liveLadder prints one stack's trace as a ladder, for many connections
// at once: the stack on the left, the peer of each connection on the
// right, a connection column (#ID) on every line and a line naming the
// connection's addresses whenever the connection changes. It uses the
// demo ladder's widths, colours and segment text.
type liveLadder struct {
	w        io.Writer
	color    bool
	absolute bool
	conns    map[uint64]*liveConn
	last     uint64 // connection of the previous line
}

type liveConn struct {
	tuple    tcp.Tuple
	state    tcp.State
	iss, irs seqnum.Value
	hasISS   bool
	hasIRS   bool
	path     []tcp.State
}

const connWidth = 6

func newLiveLadder(w io.Writer, o traceOpts) *liveLadder {
	return &liveLadder{w: w, color: o.color, absolute: o.absolute, conns: map[uint64]*liveConn{}, last: ^uint64(0)}
}

func (l *liveLadder) paint(code, s string) string {
	if !l.color || code == "" {
		return s
	}
	return code + s + colReset
}

func (l *liveLadder) header() {
	fmt.Fprintf(l.w, "%-12s  %-*s %-*s %*s  %s\n", "time", connWidth, "conn", stateWidth,
		l.paint(colCyan, "synack"), midWidth-1, "", l.paint(colPurple, "peer"))
	fmt.Fprintln(l.w, strings.Repeat("─", 12+2+connWidth+1+stateWidth+midWidth+2+6))
}

func (l *liveLadder) conn(r *admin.TraceRecord) *liveConn {
	c := l.conns[r.ID]
	if c == nil {
		st := r.From
		if r.Kind == stack.TraceReceived && st == tcp.Closed && r.To == tcp.SynReceived {
			// A SYN that made a listener's child: the child starts as
			// a copy of the listener (RFC 9293's passive OPEN).
			st = tcp.Listen
		}
		c = &liveConn{tuple: r.Tuple, state: st, path: []tcp.State{st}}
		l.conns[r.ID] = c
	}
	return c
}

// record prints one record.
func (l *liveLadder) record(r *admin.TraceRecord) {
	if r.Kind == admin.TraceDropped {
		fmt.Fprintln(l.w, l.paint(colRed, fmt.Sprintf("   … %d events not shown: this client read too slowly", r.Dropped)))
		return
	}
	when := r.Time.Format("15:04:05.000")
	if r.ID == 0 {
		// Reached no connection: the stack answers with RST, shown on its
		// own line.
		if r.Kind == stack.TraceReceived {
			l.last = 0
			fmt.Fprintf(l.w, "%-12s  %-*s %s\n", when, connWidth, "-", l.paint(colDim, fmt.Sprintf("no socket for %s (from %s): %s", r.Tuple.Local, r.Tuple.Remote, segText(&r.Segment))))
		}
		return
	}
	c := l.conn(r)
	if r.ID != l.last {
		l.last = r.ID
		peer := "*:*"
		if r.Tuple.Remote.IsValid() {
			peer = r.Tuple.Remote.String()
		}
		fmt.Fprintln(l.w, l.paint(colDim, fmt.Sprintf("%-12s  #%d %s ⇄ %s", "", r.ID, r.Tuple.Local, peer)))
	}
	id := fmt.Sprintf("#%d", r.ID)
	switch r.Kind {
	case stack.TraceState:
		if r.From == tcp.Closed && r.To == tcp.Listen && r.Tuple.Remote.IsValid() {
			return // a listener's child starts as a copy of the listener
		}
		c.state = r.To
		if n := len(c.path); n == 0 || c.path[n-1] != r.To {
			c.path = append(c.path, r.To)
		}
		change := fmt.Sprintf("%s → %s", r.From, r.To)
		fmt.Fprintf(l.w, "%-12s  %-*s %s %s %s\n", when, connWidth, id,
			l.paint(colBold+colCyan, fmt.Sprintf("%-*s", stateWidth, r.To)),
			l.paint(colCyan, change), l.paint(colDim, "("+r.Cause.String()+")"))
		if r.To == tcp.Closed {
			names := make([]string, len(c.path))
			for i, s := range c.path {
				names[i] = s.String()
			}
			fmt.Fprintf(l.w, "%-12s  %-*s %s\n", "", connWidth, id, l.paint(colDim, "path: "+strings.Join(names, " → ")))
			delete(l.conns, r.ID)
		}
	case stack.TraceSent, stack.TraceReceived:
		if !r.HasSegment {
			return
		}
		s := l.relative(c, r)
		text := segText(&s)
		room := midWidth - 6
		if len(text) > room {
			text = text[:room-1] + "…"
		}
		pad := room - len([]rune(text))
		var mid, col string
		state := c.state // for a received segment: the state it found
		if r.Kind == stack.TraceSent {
			mid, col = "──"+text+" "+strings.Repeat("─", pad)+"─▶ ", colCyan
		} else {
			mid, col = " ◀─"+strings.Repeat("─", pad)+" "+text+"──", colPurple
		}
		fmt.Fprintf(l.w, "%-12s  %-*s %s %s\n", when, connWidth, id,
			l.paint(colCyan, fmt.Sprintf("%-*s", stateWidth, state)), l.paint(col, mid))
	}
}

// relative rewrites seq and ack relative to each side's ISN, learned from
// the SYNs, as tcpdump does.
func (l *liveLadder) relative(c *liveConn, r *admin.TraceRecord) tcp.Segment {
	s := r.Segment
	sent := r.Kind == stack.TraceSent
	if s.Flags&wire.SYN != 0 {
		if sent {
			c.iss, c.hasISS = s.Seq, true
		} else {
			c.irs, c.hasIRS = s.Seq, true
		}
	}
	if l.absolute {
		return s
	}
	seqBase, seqOK, ackBase, ackOK := c.iss, c.hasISS, c.irs, c.hasIRS
	if !sent {
		seqBase, seqOK, ackBase, ackOK = c.irs, c.hasIRS, c.iss, c.hasISS
	}
	if seqOK {
		s.Seq -= seqBase
	}
	if ackOK && s.Flags&wire.ACK != 0 {
		s.Ack -= ackBase
	}
	// Only the payload's length matters to segText.
	s.Payload = make([]byte, r.Len)
	return s
}

// Package ladder draws a stack's trace (stack.TraceEvent) as a ladder
// diagram: one line per segment, an arrow between the two ends with the
// segment as tcpdump would summarise it, and one line per state change
// with its cause. It is the one renderer behind `synack demo` and
// `synack trace`.
//
// A ladder has one of two layouts:
//
//   - Pair (NewPair): two stacks in one process, the client on the left
//     and the server on the right, each with its state column; time is
//     seconds since the start. Both stacks' trace hooks feed it.
//   - Live (NewLive): one stack, many connections: the stack on the left,
//     each connection's peer on the right, a connection column (#ID) on
//     every line, a line naming the connection whenever it changes, and
//     its path once it is CLOSED; time is the wall clock.
//
// A Ladder is safe for concurrent use; the hook may be called with a
// stack's lock held, so a Ladder never calls into a stack.
package ladder

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/stack"
	"github.com/synack/synack/tcp"
	"github.com/synack/synack/wire"
)

// ANSI colours, used when Color is set.
const (
	colReset  = "\x1b[0m"
	colBold   = "\x1b[1m"
	colDim    = "\x1b[2m"
	colRed    = "\x1b[31m"
	colCyan   = "\x1b[36m"
	colPurple = "\x1b[35m"
)

// Column widths.
const (
	timeWidth     = 10 // pair: "    0.010s"
	liveTimeWidth = 12 // live: "15:04:05.000"
	connWidth     = 6  // live: "#12"
	stateWidth    = 13 // "SYN-RECEIVED "

	// The middle column, the arrow with the segment on it, takes what the
	// width leaves, within these bounds: below the least a segment's
	// flags and numbers do not fit; beyond the most lines only get emptier.
	minMidWidth = 30
	maxMidWidth = 60

	// pairFixed and liveFixed are the columns around the middle one:
	// time, left state and, for a pair, the right state ("SYN-RECEIVED").
	pairFixed = timeWidth + 2 + stateWidth + 1 + 1 + stateWidth - 1
	liveFixed = liveTimeWidth + 2 + connWidth + 1 + stateWidth + 1
)

// DefaultWidth is the width in columns a ladder fits in when Width is not
// set: an 80-column terminal, and what pipes and files get, so that the
// output does not depend on where it goes.
const DefaultWidth = 80

// Side is one end of a pair ladder: a stack, its address, the state its
// connection is in and the states it went through.
type Side struct {
	Name  string
	Addr  netip.Addr
	State tcp.State
	Path  []tcp.State // starts with CLOSED
	color string
}

// Ladder renders trace events as they come. Set Color and Absolute before
// the first event.
type Ladder struct {
	// Color paints with ANSI escapes (for a terminal).
	Color bool
	// Absolute prints sequence numbers as they are on the wire instead of
	// relative to each direction's initial sequence number (tcpdump -S).
	Absolute bool
	// Width is the number of columns the lines fit in (a terminal's
	// width); 0 means DefaultWidth. The middle column takes what the time
	// and state columns leave, up to 60; segment options that do not fit
	// go on a line of their own and narration wraps. Below about 70
	// columns some lines are longer than Width.
	Width int

	mu    sync.Mutex
	w     io.Writer
	live  bool
	start time.Time // pair: time zero

	left, right *Side // pair

	conns map[uint64]*liveConn // live: connections on screen, by ID
	last  uint64               // live: connection of the previous line

	// isn is each direction's initial sequence number, learned from the
	// SYNs seen (sent or received), so that numbers read 0, 1, ... as
	// tcpdump prints them.
	isn map[direction]seqnum.Value
}

// direction is a sender and a receiver: the key of an ISN.
type direction struct{ from, to netip.AddrPort }

type liveConn struct {
	state tcp.State
	path  []tcp.State
	tuple tcp.Tuple
}

// NewPair returns the ladder of two stacks, client on the left and server
// on the right, with time counted from start.
func NewPair(w io.Writer, start time.Time, client, server netip.Addr) *Ladder {
	return &Ladder{
		w:     w,
		start: start,
		left:  &Side{Name: "client", Addr: client, color: colCyan, Path: []tcp.State{tcp.Closed}},
		right: &Side{Name: "server", Addr: server, color: colPurple, Path: []tcp.State{tcp.Closed}},
		isn:   map[direction]seqnum.Value{},
	}
}

// NewLive returns the ladder of one stack's connections.
func NewLive(w io.Writer) *Ladder {
	return &Ladder{w: w, live: true, conns: map[uint64]*liveConn{}, last: ^uint64(0), isn: map[direction]seqnum.Value{}}
}

// Left and Right return a pair ladder's sides. Read them under no other
// lock than the ladder's own: use State and Path.
func (l *Ladder) Left() *Side  { return l.left }
func (l *Ladder) Right() *Side { return l.right }

// State returns the state sd was last seen in.
func (l *Ladder) State(sd *Side) tcp.State {
	l.mu.Lock()
	defer l.mu.Unlock()
	return sd.State
}

// Path returns the states sd went through, CLOSED first.
func (l *Ladder) Path(sd *Side) []tcp.State {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]tcp.State(nil), sd.Path...)
}

func (l *Ladder) paint(code, s string) string {
	if !l.Color || code == "" {
		return s
	}
	return code + s + colReset
}

func (l *Ladder) side(a netip.Addr) *Side {
	if a == l.left.Addr {
		return l.left
	}
	return l.right
}

// width is the number of columns lines fit in.
func (l *Ladder) width() int {
	if l.Width > 0 {
		return l.Width
	}
	return DefaultWidth
}

// fixed is the width of the columns other than the middle one.
func (l *Ladder) fixed() int {
	if l.live {
		return liveFixed
	}
	return pairFixed
}

// mid is the width of the middle column.
func (l *Ladder) mid() int { return min(max(l.width()-l.fixed(), minMidWidth), maxMidWidth) }

// lineWidth is the width of a full line: the rule's.
func (l *Ladder) lineWidth() int { return l.fixed() + l.mid() }

// midStart is the column where the middle column begins.
func (l *Ladder) midStart() int {
	if l.live {
		return liveFixed
	}
	return timeWidth + 2 + stateWidth + 1
}

func (l *Ladder) rule() string { return strings.Repeat("─", l.lineWidth()) }

func runes(s string) int { return utf8.RuneCountInString(s) }

// Header prints the column titles.
func (l *Ladder) Header() {
	l.mu.Lock()
	defer l.mu.Unlock()
	var left, right string
	var lcol, rcol string
	if l.live {
		left = fmt.Sprintf("%-*s  %-*s ", liveTimeWidth, "time", connWidth, "conn")
		lcol, rcol = "synack", "peer"
		left, right = left+l.paint(colCyan, lcol), l.paint(colPurple, rcol)
	} else {
		left = fmt.Sprintf("%*s  ", timeWidth, "time")
		lcol, rcol = "client "+l.left.Addr.String(), "server "+l.right.Addr.String()
		left, right = left+l.paint(l.left.color, lcol), l.paint(l.right.color, rcol)
	}
	// The right title ends where the lines end.
	plain := l.midStart() - stateWidth - 1 + runes(lcol)
	if l.live {
		plain = liveTimeWidth + 2 + connWidth + 1 + runes(lcol)
	}
	pad := max(l.lineWidth()-plain-runes(rcol), 2)
	fmt.Fprintf(l.w, "%s%s%s\n", left, strings.Repeat(" ", pad), right)
	fmt.Fprintln(l.w, l.rule())
}

// wrap breaks text at spaces into lines of at most width runes; a word
// longer than that stays whole on its own line.
func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Split(text, " ") {
		switch {
		case line == "":
			line = w
		case runes(line)+1+runes(w) <= width:
			line += " " + w
		default:
			lines = append(lines, line)
			line = w
		}
	}
	return append(lines, line)
}

// narrate writes text after a prefix of prefixWidth columns (the time),
// painted with code, wrapped to the ladder's width; continuation lines are
// indented by indent more columns.
func (l *Ladder) narrate(prefix string, prefixWidth, indent int, code, text string) {
	// Leading spaces are part of the prefix: they indent every line.
	trimmed := strings.TrimLeft(text, " ")
	lead := strings.Repeat(" ", len(text)-len(trimmed))
	prefix, prefixWidth, text = prefix+lead, prefixWidth+len(lead), trimmed
	room := max(l.width()-prefixWidth, 20)
	lines := wrap(text, room)
	if len(lines) > 1 {
		rest := wrap(strings.Join(lines[1:], " "), max(room-indent, 20))
		lines = append(lines[:1], rest...)
	}
	for i, ln := range lines {
		if i > 0 {
			prefix = strings.Repeat(" ", prefixWidth) + strings.Repeat(" ", indent)
		}
		fmt.Fprintf(l.w, "%s%s\n", prefix, l.paint(code, ln))
	}
}

func (l *Ladder) when(t time.Time) string {
	if l.live {
		return fmt.Sprintf("%-*s", liveTimeWidth, t.Format("15:04:05.000"))
	}
	return fmt.Sprintf("%*.3fs", timeWidth-1, t.Sub(l.start).Seconds())
}

// childListen reports the LISTEN a listener's child starts in: a copy of
// the listener (RFC 9293's passive OPEN), nothing new to show.
func childListen(ev *stack.TraceEvent) bool {
	return ev.Kind == stack.TraceState && ev.From == tcp.Closed && ev.To == tcp.Listen && ev.Tuple.Remote.IsValid()
}

// Trace draws one event; it is a stack.Options.Trace hook.
func (l *Ladder) Trace(ev stack.TraceEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if childListen(&ev) {
		return
	}
	if ev.Segment != nil && ev.Segment.Flags&wire.SYN != 0 && (ev.ID != 0 || !l.live) {
		// (A live ladder forgets a connection's numbers when it closes;
		// a SYN that reached no connection would stay forever.)
		l.isn[l.dir(&ev)] = ev.Segment.Seq
	}
	if l.live {
		l.traceLive(&ev)
		return
	}
	sd := l.side(ev.Tuple.Local.Addr())
	switch ev.Kind {
	case stack.TraceState:
		sd.State = ev.To
		if n := len(sd.Path); n == 0 || sd.Path[n-1] != ev.To {
			sd.Path = append(sd.Path, ev.To)
		}
		l.pairState(&ev, sd)
	case stack.TraceSent:
		l.pairSegment(&ev, sd, sd.color)
	case stack.TraceReceived:
		// The arrow is drawn when the segment leaves; one that reached
		// no connection gets a line, since the RST that answers it
		// would otherwise come from nowhere.
		if ev.ID == 0 {
			fmt.Fprintf(l.w, "%s  %s\n", l.when(ev.Time), l.paint(colDim, sd.Name+": no socket for "+ev.Tuple.Local.String()))
		}
		if ev.Drop != tcp.DropNone {
			// The core discarded it (tcp.DropReason): it changed
			// nothing but what it was answered with.
			fmt.Fprintf(l.w, "%s  %s\n", l.when(ev.Time), l.paint(colDim, sd.Name+": dropped ("+ev.Drop.String()+")"))
		}
	}
}

// dir is the direction a segment travels in: a received one's tuple is
// the receiver's.
func (l *Ladder) dir(ev *stack.TraceEvent) direction {
	if ev.Kind == stack.TraceReceived {
		return direction{ev.Tuple.Remote, ev.Tuple.Local}
	}
	return direction{ev.Tuple.Local, ev.Tuple.Remote}
}

// relative returns the segment with seq and ack relative to each
// direction's ISN, unless Absolute.
func (l *Ladder) relative(ev *stack.TraceEvent) tcp.Segment {
	s := *ev.Segment
	if l.Absolute {
		return s
	}
	d := l.dir(ev)
	if isn, ok := l.isn[d]; ok {
		s.Seq -= isn
	}
	if isn, ok := l.isn[direction{d.to, d.from}]; ok && s.Flags&wire.ACK != 0 {
		s.Ack -= isn
	}
	return s
}

// truncate cuts text to n runes, the last one an ellipsis.
func truncate(text string, n int) string {
	if runes(text) <= n {
		return text
	}
	return string([]rune(text)[:n-1]) + "…"
}

// arrow is the middle column, width runes wide: the segment on an arrow
// pointing right (from the left column) or left.
func arrow(text string, width int, right bool) string {
	room := width - 6
	text = truncate(text, room)
	pad := room - runes(text)
	if right {
		return "──" + text + " " + strings.Repeat("─", pad) + "─▶ "
	}
	return " ◀─" + strings.Repeat("─", pad) + " " + text + "──"
}

// segmentText is a segment as tcpdump summarises it, split in two when it
// does not fit on an arrow: the flags and numbers, and the options
// ("<mss 1460,sackOK,...>") for a line of their own ("" if they fit).
func (l *Ladder) segmentText(s tcp.Segment) (main, opts string) {
	text := s.Text(wire.TextBrief)
	if runes(text) <= l.mid()-6 {
		return text, ""
	}
	if i := strings.Index(text, " <"); i >= 0 {
		return text[:i], text[i+1:]
	}
	return text, ""
}

// options writes the options segmentText split off, under the arrow.
func (l *Ladder) options(opts, col string) {
	if opts == "" {
		return
	}
	fmt.Fprintf(l.w, "%s%s\n", strings.Repeat(" ", l.midStart()+3), l.paint(col, truncate(opts, l.mid()-3)))
}

func (l *Ladder) pairSegment(ev *stack.TraceEvent, sd *Side, col string) {
	text, opts := l.segmentText(l.relative(ev))
	fmt.Fprintf(l.w, "%s  %s %s %s\n", l.when(ev.Time),
		l.paint(l.left.color, fmt.Sprintf("%-*s", stateWidth, l.left.State)),
		l.paint(col, arrow(text, l.mid(), sd == l.left)),
		l.paint(l.right.color, l.right.State.String()))
	l.options(opts, col)
}

func (l *Ladder) pairState(ev *stack.TraceEvent, sd *Side) {
	change := fmt.Sprintf("%s: %s → %s", sd.Name, ev.From, ev.To)
	cause := "(" + ev.Cause.String() + ")"
	// When the change and its cause do not fit on one line, the cause
	// goes under the change.
	sep := " "
	if l.midStart()+runes(change)+1+runes(cause) > l.lineWidth() {
		sep = "\n" + strings.Repeat(" ", l.midStart()+2)
	}
	var line string
	if sd == l.left {
		line = fmt.Sprintf("%s  %s %s%s%s", l.when(ev.Time),
			l.paint(colBold+sd.color, fmt.Sprintf("%-*s", stateWidth, ev.To)),
			l.paint(sd.color, change), sep, l.paint(colDim, cause))
	} else {
		// Right-aligned against the right state column; when that
		// does not fit, against the line's end without the state
		// column, which only repeats the change's new state.
		text := change + " " + cause
		to := " " + l.paint(colBold+sd.color, ev.To.String())
		// The arrows put the right state one column past the middle
		// column (pairSegment's separating space); so does this.
		pad := l.mid() - runes(text)
		if pad < 0 {
			to = ""
			pad = l.lineWidth() - l.midStart() - runes(text)
		}
		line = fmt.Sprintf("%s  %s %s%s%s%s%s", l.when(ev.Time),
			l.paint(l.left.color, fmt.Sprintf("%-*s", stateWidth, l.left.State)),
			strings.Repeat(" ", max(pad, 0)), l.paint(sd.color, change), sep, l.paint(colDim, cause), to)
	}
	fmt.Fprintln(l.w, line)
}

// Lost draws a segment the link lost on its way from tuple.Local to
// tuple.Remote.
func (l *Ladder) Lost(at time.Time, tuple tcp.Tuple, seg *tcp.Segment) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ev := stack.TraceEvent{Kind: stack.TraceSent, Transition: tcp.Transition{Time: at, Tuple: tuple}, Segment: seg}
	s := l.relative(&ev)
	l.narrate(l.when(at)+"  "+strings.Repeat(" ", stateWidth+1), l.midStart(), 5, colRed,
		"   ✗ lost on the way: "+s.Text(wire.TextBrief))
}

// Note prints a line of narration: what side who's application did or
// saw ("client", "server").
func (l *Ladder) Note(at time.Time, who, msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	col := colCyan
	if !l.live && who == l.right.Name {
		col = l.right.color
	}
	l.narrate(l.when(at)+"  ", l.whenWidth()+2, 5, colDim+col, "   "+who+" app: "+msg)
}

// whenWidth is the width of the time column.
func (l *Ladder) whenWidth() int {
	if l.live {
		return liveTimeWidth
	}
	return timeWidth
}

// Aside prints a line about something beside the connections drawn (an
// attack, a summary), in red.
func (l *Ladder) Aside(at time.Time, text string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.narrate(l.when(at)+"  ", l.whenWidth()+2, 5, colRed, "   "+text)
}

// Dropped tells that n events are missing: the source dropped them
// because this reader was too slow.
func (l *Ladder) Dropped(n uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintln(l.w, l.paint(colRed, fmt.Sprintf("   … %d events not shown: this client read too slowly", n)))
}

// Remark prints a dim line of its own (the end of a stream, ...).
func (l *Ladder) Remark(text string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.narrate("", 0, 2, colDim, text)
}

// Summary closes a pair ladder: each side's path, and how the numbers
// read.
func (l *Ladder) Summary() {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintln(l.w, l.rule())
	for _, sd := range []*Side{l.left, l.right} {
		name := sd.Name + " path: "
		l.narrate(l.paint(sd.color, name), runes(name), 0, "", pathText(sd.Path))
	}
	if !l.Absolute && len(l.isn) > 0 {
		l.narrate("", 0, 0, colDim, "seq and ack are relative to each side's initial sequence number, as tcpdump prints them (--absolute for raw).")
	}
}

func pathText(p []tcp.State) string {
	names := make([]string, len(p))
	for i, s := range p {
		names[i] = s.String()
	}
	return strings.Join(names, " → ")
}

func (l *Ladder) liveConn(ev *stack.TraceEvent) *liveConn {
	c := l.conns[ev.ID]
	if c == nil {
		st := ev.From
		if ev.Kind == stack.TraceReceived && st == tcp.Closed && ev.To == tcp.SynReceived {
			// A SYN that made a listener's child: the child starts as
			// a copy of the listener (RFC 9293's passive OPEN).
			st = tcp.Listen
		}
		c = &liveConn{state: st, path: []tcp.State{st}, tuple: ev.Tuple}
		l.conns[ev.ID] = c
	}
	return c
}

func (l *Ladder) traceLive(ev *stack.TraceEvent) {
	when := l.when(ev.Time)
	if ev.ID == 0 {
		// Reached no connection: the stack answers with RST, shown on
		// its own line.
		if ev.Kind == stack.TraceReceived {
			l.last = 0
			l.narrate(fmt.Sprintf("%s  %-*s ", when, connWidth, "-"), liveTimeWidth+2+connWidth+1, 2, colDim,
				fmt.Sprintf("no socket for %s (from %s): %s", ev.Tuple.Local, ev.Tuple.Remote, ev.Segment.Text(wire.TextBrief)))
		}
		return
	}
	c := l.liveConn(ev)
	if ev.ID != l.last {
		l.last = ev.ID
		peer := "*:*"
		if ev.Tuple.Remote.IsValid() {
			peer = ev.Tuple.Remote.String()
		}
		fmt.Fprintln(l.w, l.paint(colDim, fmt.Sprintf("%-*s  #%d %s ⇄ %s", liveTimeWidth, "", ev.ID, ev.Tuple.Local, peer)))
	}
	id := fmt.Sprintf("#%d", ev.ID)
	switch ev.Kind {
	case stack.TraceState:
		c.state = ev.To
		if n := len(c.path); n == 0 || c.path[n-1] != ev.To {
			c.path = append(c.path, ev.To)
		}
		change, cause := fmt.Sprintf("%s → %s", ev.From, ev.To), ""
		if ev.Cause != tcp.NoCause { // the kernel's transitions (trace --host) come without one
			cause = "(" + ev.Cause.String() + ")"
		}
		sep := " "
		switch {
		case cause == "":
			sep = ""
		case liveFixed+runes(change)+1+runes(cause) > l.width():
			sep = "\n" + strings.Repeat(" ", liveFixed+2) // the cause under the change
		}
		fmt.Fprintf(l.w, "%s  %-*s %s %s%s%s\n", when, connWidth, id,
			l.paint(colBold+colCyan, fmt.Sprintf("%-*s", stateWidth, ev.To)),
			l.paint(colCyan, change), sep, l.paint(colDim, cause))
		if ev.To == tcp.Closed {
			fmt.Fprintf(l.w, "%-*s  %-*s %s\n", liveTimeWidth, "", connWidth, id, l.paint(colDim, "path: "+pathText(c.path)))
			delete(l.conns, ev.ID)
			// The numbers of a tuple's next incarnation come with its
			// own SYNs; forget these so a long trace stays small.
			delete(l.isn, direction{c.tuple.Local, c.tuple.Remote})
			delete(l.isn, direction{c.tuple.Remote, c.tuple.Local})
		}
	case stack.TraceSent, stack.TraceReceived:
		if ev.Segment == nil {
			return
		}
		text, opts := l.segmentText(l.relative(ev))
		col := colCyan
		if ev.Kind == stack.TraceReceived {
			col = colPurple
		}
		// For a received segment the state column is the state it found.
		var dropped string
		if ev.Drop != tcp.DropNone {
			dropped = "dropped (" + ev.Drop.String() + ")"
			if liveFixed+l.mid()+1+runes(dropped) <= l.width() {
				dropped = " " + l.paint(colDim, dropped)
			} else {
				// Under the arrow, so the line keeps to the width.
				dropped = "\n" + strings.Repeat(" ", liveFixed+3) + l.paint(colDim, dropped)
			}
		}
		fmt.Fprintf(l.w, "%s  %-*s %s %s%s\n", when, connWidth, id,
			l.paint(colCyan, fmt.Sprintf("%-*s", stateWidth, c.state)), l.paint(col, arrow(text, l.mid(), ev.Kind == stack.TraceSent)), dropped)
		l.options(opts, col)
	}
}

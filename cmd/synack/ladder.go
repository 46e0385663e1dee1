package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/stack"
	"github.com/synack/synack/tcp"
	"github.com/synack/synack/wire"
)

// ladder prints the events of two stacks as a ladder diagram: one line per
// segment, with each side's state, and one line per state change. It reads
// the stacks' synchronous trace, the same events the tests check.
type ladder struct {
	mu       sync.Mutex
	w        io.Writer
	color    bool
	absolute bool // print absolute sequence numbers instead of relative ones
	start    time.Time
	json     *json.Encoder

	left, right *ladderSide
	isn         map[netip.AddrPort]seqnum.Value // each sender's ISN, learned from its SYN
}

// ladderSide is one stack: the client on the left, the server on the right.
type ladderSide struct {
	name  string
	addr  netip.Addr
	state tcp.State
	color string
	path  []tcp.State // the states its connection went through
}

const (
	colReset  = "\x1b[0m"
	colBold   = "\x1b[1m"
	colDim    = "\x1b[2m"
	colRed    = "\x1b[31m"
	colCyan   = "\x1b[36m"
	colPurple = "\x1b[35m"
)

const (
	timeWidth  = 10
	stateWidth = 13
	midWidth   = 60
)

func newLadder(w io.Writer, start time.Time, client, server netip.Addr) *ladder {
	return &ladder{
		w:     w,
		start: start,
		left:  &ladderSide{name: "client", addr: client, color: colCyan, path: []tcp.State{tcp.Closed}},
		right: &ladderSide{name: "server", addr: server, color: colPurple, path: []tcp.State{tcp.Closed}},
		isn:   map[netip.AddrPort]seqnum.Value{},
	}
}

func (l *ladder) paint(code, s string) string {
	if !l.color || code == "" {
		return s
	}
	return code + s + colReset
}

func (l *ladder) side(a netip.Addr) *ladderSide {
	if a == l.left.addr {
		return l.left
	}
	return l.right
}

func (l *ladder) header() {
	if l.json != nil {
		return
	}
	fmt.Fprintf(l.w, "%*s  %-*s %*s  %s\n", timeWidth, "time", stateWidth,
		l.paint(l.left.color, "client "+l.left.addr.String()), midWidth-1, "",
		l.paint(l.right.color, "server "+l.right.addr.String()))
	fmt.Fprintln(l.w, strings.Repeat("─", timeWidth+2+stateWidth+midWidth+2+stateWidth))
}

// trace is the stack.Options.Trace hook of both stacks.
func (l *ladder) trace(ev stack.TraceEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	sd := l.side(ev.Tuple.Local.Addr())
	switch ev.Kind {
	case stack.TraceState:
		if ev.From == tcp.Closed && ev.To == tcp.Listen && sd.state == tcp.Listen {
			// A listener's child starts as a copy of the listener
			// (RFC 9293's passive OPEN); nothing new to show.
			return
		}
		sd.state = ev.To
		if n := len(sd.path); n == 0 || sd.path[n-1] != ev.To {
			sd.path = append(sd.path, ev.To)
		}
		l.printState(ev, sd)
	case stack.TraceSent:
		if ev.Segment.Flags&wire.SYN != 0 {
			l.isn[ev.Tuple.Local] = ev.Segment.Seq
		}
		l.printSegment(ev, sd)
	case stack.TraceReceived:
		if ev.ID == 0 && l.json == nil {
			// Reached no connection: the stack answers with RST, which
			// shows as its own line.
			fmt.Fprintf(l.w, "%s  %s\n", l.when(ev.Time), l.paint(colDim, sd.name+": no socket for "+ev.Tuple.Local.String()))
		}
		if ev.Drop != tcp.DropNone && l.json == nil {
			// The core discarded the segment (tcp.DropReason): the
			// arrow above arrived but changed nothing but what it
			// answered.
			fmt.Fprintf(l.w, "%s  %s\n", l.when(ev.Time), l.paint(colDim, sd.name+": dropped ("+ev.Drop.String()+")"))
		}
		if l.json != nil {
			l.emitJSON(ev, sd)
		}
	}
}

// stateOf returns the state a side was last seen in.
func (l *ladder) stateOf(sd *ladderSide) tcp.State {
	l.mu.Lock()
	defer l.mu.Unlock()
	return sd.state
}

func (l *ladder) when(t time.Time) string {
	return fmt.Sprintf("%*.3fs", timeWidth-1, t.Sub(l.start).Seconds())
}

// relative rewrites seq and ack relative to each side's ISN, as tcpdump
// does, so the handshake reads 0, 1, ...
func (l *ladder) relative(ev stack.TraceEvent) tcp.Segment {
	s := *ev.Segment
	if l.absolute {
		return s
	}
	if isn, ok := l.isn[ev.Tuple.Local]; ok {
		s.Seq -= isn
	}
	if isn, ok := l.isn[ev.Tuple.Remote]; ok && s.Flags&wire.ACK != 0 {
		s.Ack -= isn
	}
	return s
}

func (l *ladder) printSegment(ev stack.TraceEvent, sd *ladderSide) {
	if l.json != nil {
		l.emitJSON(ev, sd)
		return
	}
	s := l.relative(ev)
	text := segText(&s)
	var mid string
	room := midWidth - 6
	if len(text) > room {
		text = text[:room-1] + "…"
	}
	pad := room - len([]rune(text))
	if sd == l.left {
		mid = "──" + text + " " + strings.Repeat("─", pad) + "─▶ "
	} else {
		mid = " ◀─" + strings.Repeat("─", pad) + " " + text + "──"
	}
	fmt.Fprintf(l.w, "%s  %s %s %s\n", l.when(ev.Time),
		l.paint(l.left.color, fmt.Sprintf("%-*s", stateWidth, l.left.state)),
		l.paint(sd.color, mid),
		l.paint(l.right.color, l.right.state.String()))
}

func (l *ladder) printState(ev stack.TraceEvent, sd *ladderSide) {
	if l.json != nil {
		l.emitJSON(ev, sd)
		return
	}
	change := fmt.Sprintf("%s: %s → %s", sd.name, ev.From, ev.To)
	cause := "(" + ev.Cause + ")"
	var line string
	if sd == l.left {
		line = fmt.Sprintf("%s  %s %s %s", l.when(ev.Time),
			l.paint(colBold+sd.color, fmt.Sprintf("%-*s", stateWidth, ev.To)),
			l.paint(sd.color, change), l.paint(colDim, cause))
	} else {
		text := change + " " + cause
		pad := midWidth - 1 - len([]rune(text))
		line = fmt.Sprintf("%s  %s %s%s %s %s", l.when(ev.Time),
			l.paint(l.left.color, fmt.Sprintf("%-*s", stateWidth, l.left.state)),
			strings.Repeat(" ", max(pad, 0)), l.paint(sd.color, change), l.paint(colDim, cause),
			l.paint(colBold+sd.color, ev.To.String()))
	}
	fmt.Fprintln(l.w, line)
}

// lost reports a packet the demo's link dropped.
func (l *ladder) lost(at time.Time, pkt []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ip, err := wire.ParseIP(pkt)
	if err != nil || ip.Protocol != wire.ProtocolTCP {
		return
	}
	h, payload, err := wire.ParseTCP(ip.Payload, ip.Src, ip.Dst, false)
	if err != nil {
		return
	}
	src := netip.AddrPortFrom(ip.Src, h.SrcPort)
	dst := netip.AddrPortFrom(ip.Dst, h.DstPort)
	seg := tcp.Segment{Seq: h.Seq, Ack: h.Ack, Flags: h.Flags, Window: h.Window, Options: h.Options, Payload: payload}
	ev := stack.TraceEvent{Time: at, Tuple: tcp.Tuple{Local: src, Remote: dst}, Segment: &seg}
	if l.json != nil {
		l.json.Encode(map[string]any{"t": at.Sub(l.start).Seconds(), "side": l.side(ip.Src).name, "kind": "lost", "segment": segJSON(l.relative(ev))})
		return
	}
	s := l.relative(ev)
	fmt.Fprintf(l.w, "%s  %s %s\n", l.when(at), fmt.Sprintf("%-*s", stateWidth, ""),
		l.paint(colRed, fmt.Sprintf("   ✗ lost on the way: %s", segText(&s))))
}

// note prints a line of narration: what the application did or saw.
func (l *ladder) note(at time.Time, who, msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.json != nil {
		l.json.Encode(map[string]any{"t": at.Sub(l.start).Seconds(), "side": who, "kind": "app", "text": msg})
		return
	}
	col := l.left.color
	if who == "server" {
		col = l.right.color
	}
	fmt.Fprintf(l.w, "%s  %s\n", l.when(at), l.paint(colDim+col, "   "+who+" app: "+msg))
}

func (l *ladder) summary() {
	if l.json != nil {
		return
	}
	fmt.Fprintln(l.w, strings.Repeat("─", timeWidth+2+stateWidth+midWidth+2+stateWidth))
	for _, sd := range []*ladderSide{l.left, l.right} {
		names := make([]string, len(sd.path))
		for i, s := range sd.path {
			names[i] = s.String()
		}
		fmt.Fprintf(l.w, "%s path: %s\n", l.paint(sd.color, sd.name), strings.Join(names, " → "))
	}
	if !l.absolute && len(l.isn) > 0 {
		fmt.Fprintln(l.w, l.paint(colDim, "seq and ack are relative to each side's initial sequence number, as tcpdump prints them (--absolute for raw)."))
	}
}

func segJSON(s tcp.Segment) map[string]any {
	m := map[string]any{
		"flags": s.Flags.String(), "seq": uint32(s.Seq), "win": s.Window, "len": len(s.Payload),
	}
	if s.Flags&wire.ACK != 0 {
		m["ack"] = uint32(s.Ack)
	}
	return m
}

func (l *ladder) emitJSON(ev stack.TraceEvent, sd *ladderSide) {
	m := map[string]any{
		"t":    ev.Time.Sub(l.start).Seconds(),
		"side": sd.name,
		"kind": ev.Kind.String(),
		"conn": ev.Tuple.String(),
	}
	switch ev.Kind {
	case stack.TraceState:
		m["from"], m["to"], m["cause"] = ev.From.String(), ev.To.String(), ev.Cause
	case stack.TraceReceived:
		// The tuple of a received event is the receiver's; the segment's
		// numbers are the sender's.
		rev := ev
		rev.Tuple = ev.Tuple.Reverse()
		m["segment"] = segJSON(l.relative(rev))
		m["state"] = ev.To.String()
		if ev.Drop != tcp.DropNone {
			m["drop"] = ev.Drop.String()
		}
	default:
		m["segment"] = segJSON(l.relative(ev))
		m["state"] = ev.To.String()
	}
	l.json.Encode(m)
}

// segText is a tcpdump-like one-liner made for the ladder: options are
// shown on the handshake, where they are negotiated, and SACK blocks where
// they appear; the timestamps every later segment carries are left out.
func segText(s *tcp.Segment) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] seq %d", s.Flags, s.Seq)
	if s.Flags&wire.ACK != 0 {
		fmt.Fprintf(&b, " ack %d", s.Ack)
	}
	fmt.Fprintf(&b, " win %d", s.Window)
	if len(s.Payload) > 0 {
		fmt.Fprintf(&b, " len %d", len(s.Payload))
	}
	o := &s.Options
	var opts []string
	if s.Flags&wire.SYN != 0 {
		if o.HasMSS {
			opts = append(opts, fmt.Sprintf("mss %d", o.MSS))
		}
		if o.SACKPermitted {
			opts = append(opts, "sackOK")
		}
		if o.HasTimestamps {
			opts = append(opts, "TS")
		}
		if o.HasWindowScale {
			opts = append(opts, fmt.Sprintf("wscale %d", o.WindowScale))
		}
	}
	for _, blk := range o.SACK() {
		opts = append(opts, fmt.Sprintf("sack %d:%d", blk.Start, blk.End))
	}
	if len(opts) > 0 {
		fmt.Fprintf(&b, " <%s>", strings.Join(opts, ","))
	}
	return b.String()
}

package stack

import (
	"sync/atomic"
	"time"

	"github.com/synack/synack/tcp"
)

type subscriber struct {
	ch      chan tcp.Transition
	dropped atomic.Uint64 // shards publish at once
}

// Subscribe returns a channel that receives every state change of every
// connection (or listener) from now on, with ID and Tuple set (in order for
// each connection; connections of different shards interleave), and a function that ends the
// subscription and closes the channel. The stack never waits for a
// subscriber: when the channel's buffer (buf events) is full, the event is
// dropped for that subscriber and counted in Counters.EventsDropped. For a
// lossless, synchronous log use Options.Trace. Close ends every
// subscription.
func (s *Stack) Subscribe(buf int) (<-chan tcp.Transition, func()) {
	sub := &subscriber{ch: make(chan tcp.Transition, max(buf, 0))}
	s.mu.Lock()
	if s.closed {
		close(sub.ch)
	} else {
		s.subs = append(s.subs, sub)
	}
	s.mu.Unlock()
	cancel := func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for i, x := range s.subs {
			if x == sub {
				s.subs = append(s.subs[:i], s.subs[i+1:]...)
				close(sub.ch)
				return
			}
		}
	}
	return sub.ch, cancel
}

// stateChanged is every transition of every connection: counters, events
// and the trace. It numbers the transition with the connection's cid and
// its tuple id (the core knows neither the number nor, for a listener's
// child about to be made, the final tuple).
//
// It is called in the shard of id (sh's lock held, or s.mu held for
// writing): the subscribers list changes only under s.mu held for writing,
// and the trace goes through the shard's tracer.
func (sh *shard) stateChanged(cid uint64, id tcp.Tuple, t tcp.Transition) {
	s := sh.s
	t.ID, t.Tuple = cid, id
	c := &s.ctr.TCP
	from, to := t.From, t.To
	switch {
	case from == tcp.Closed && to == tcp.SynSent:
		c.ActiveOpens.add(1)
	case from == tcp.Listen && to == tcp.SynReceived:
		c.PassiveOpens.add(1)
	case (from == tcp.SynSent || from == tcp.SynReceived) && (to == tcp.Closed || to == tcp.Listen):
		c.AttemptFails.add(1)
	case (from == tcp.Established || from == tcp.CloseWait) && to == tcp.Closed:
		c.EstabResets.add(1)
	}
	if counted(from) != counted(to) {
		if counted(to) {
			c.CurrEstab.add(1)
		} else {
			c.CurrEstab.dec()
		}
	}
	if len(s.subs) > 0 {
		for _, sub := range s.subs {
			select {
			case sub.ch <- t:
			default:
				sub.dropped.Add(1)
				s.ctr.EventsDropped.add(1)
			}
		}
	}
	if s.trace != nil {
		sh.tr.emit(TraceEvent{Kind: TraceState, Transition: t})
	}
}

// counted reports whether RFC 4022's tcpCurrEstab counts the state.
func counted(st tcp.State) bool { return st == tcp.Established || st == tcp.CloseWait }

// TraceKind says what a TraceEvent is.
type TraceKind uint8

const (
	TraceReceived TraceKind = iota // a TCP segment arrived
	TraceSent                      // a TCP segment was sent
	TraceState                     // a connection changed state
)

func (k TraceKind) String() string {
	switch k {
	case TraceReceived:
		return "rcv"
	case TraceSent:
		return "snd"
	case TraceState:
		return "state"
	}
	return "?"
}

// TraceEvent is one entry of the synchronous trace (Options.Trace): a
// segment received or sent, or a state change. A state change is the
// tcp.Transition itself (Kind TraceState); a segment carries the same
// header (Cause NoCause) and the segment, because the trace is one
// timeline of both. Segments are not state changes, which is why this
// type exists next to tcp.Transition.
//
// The events of one stack come in causal order: a received segment is
// reported first (with From the state before it was processed and To the
// state after), followed by the transitions and the segments it caused.
// A sent segment has From == To == the connection's state when it left. A
// segment that reached no connection has ID 0 and CLOSED states.
type TraceEvent struct {
	Kind TraceKind
	tcp.Transition
	Segment *tcp.Segment   // TraceReceived and TraceSent
	Drop    tcp.DropReason // TraceReceived only: why the core discarded the segment, or tcp.DropNone
}

// tracer orders trace events. While a received segment is processed the
// events it causes are held (segments copied) so that the segment itself,
// with its state after processing, is reported first.
type tracer struct {
	s       *Stack
	holding bool
	held    []TraceEvent
	segs    []tcp.Segment // backing for held segments
	arena   []byte        // held payloads
	in      TraceEvent
	inSeg   tcp.Segment
}

// begin starts holding events for the received seg.
func (t *tracer) begin(now time.Time, id tcp.Tuple, seg *tcp.Segment) {
	t.holding = true
	t.in = TraceEvent{Kind: TraceReceived, Transition: tcp.Transition{Time: now, Tuple: id}}
	t.inSeg = *seg
	t.in.Segment = &t.inSeg
}

// dropped notes that the core discarded the received segment, and why.
func (t *tracer) dropped(r tcp.DropReason) {
	if t.holding {
		t.in.Drop = r
	}
}

// end reports the received segment, then what it caused.
func (t *tracer) end(cid uint64, from, to tcp.State) {
	t.holding = false
	t.in.ID, t.in.From, t.in.To = cid, from, to
	t.s.emitTrace(t.in)
	for i := range t.held {
		ev := t.held[i]
		if ev.Segment != nil {
			ev.Segment = &t.segs[i]
		}
		t.s.emitTrace(ev)
	}
	clear(t.held)
	t.held = t.held[:0]
	clear(t.segs)
	t.segs = t.segs[:0]
	t.arena = t.arena[:0]
}

func (t *tracer) segment(k TraceKind, now time.Time, cid uint64, id tcp.Tuple, seg *tcp.Segment, from, to tcp.State) {
	t.emit(TraceEvent{Kind: k, Transition: tcp.Transition{Time: now, ID: cid, Tuple: id, From: from, To: to}, Segment: seg})
}

func (t *tracer) emit(ev TraceEvent) {
	if !t.holding {
		t.s.emitTrace(ev)
		return
	}
	var cp tcp.Segment
	if ev.Segment != nil {
		cp = *ev.Segment
		if len(cp.Payload) > 0 {
			start := len(t.arena)
			t.arena = append(t.arena, cp.Payload...)
			cp.Payload = t.arena[start:len(t.arena):len(t.arena)]
		}
	}
	t.held = append(t.held, ev)
	t.segs = append(t.segs, cp)
}

// emitTrace calls Options.Trace, one call at a time: shards trace at once.
func (s *Stack) emitTrace(ev TraceEvent) {
	s.traceMu.Lock()
	s.trace(ev)
	s.traceMu.Unlock()
}

package admin

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/synack/synack/diag"
	"github.com/synack/synack/stack"
	"github.com/synack/synack/tcp"
)

// TransitionCount counts one arrow of the state diagram: how many times
// connections went From -> To. It is a tally, not an event.
type TransitionCount struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Count uint64 `json:"count"`
	// Rate is transitions a second lately, where the server measures it
	// (`synack watch --host`); nil otherwise.
	Rate *float64 `json:"rate_per_second,omitempty"`
}

// Events is the reply of /api/events.
type Events struct {
	Start time.Time `json:"start"` // since when transitions are counted
	// Last is the Seq of the newest event; ask ?after=Last next time.
	Last uint64 `json:"last"`
	// Events are the state changes (Kind stack.TraceState), oldest first,
	// in the same form as /api/trace's.
	Events      []TraceRecord     `json:"events"`
	Transitions []TransitionCount `json:"transitions"`
}

// events keeps the recent state changes, counts transitions, remembers
// when each connection entered its state, and feeds streaming clients.
type events struct {
	mu          sync.Mutex
	start       time.Time
	ring        []TraceRecord
	head, n     int
	seq         uint64
	transitions map[[2]tcp.State]uint64
	since       map[uint64]time.Time
	followers   map[*follower]struct{}
	buf, maxF   int
	closed      bool
}

type follower struct {
	ch      chan TraceRecord
	dropped uint64 // guarded by events.mu
	done    chan struct{}
}

func newEvents(size, buf, maxFollowers int, start time.Time) *events {
	return &events{
		start: start, ring: make([]TraceRecord, size), buf: buf, maxF: maxFollowers,
		transitions: make(map[[2]tcp.State]uint64),
		since:       make(map[uint64]time.Time),
		followers:   make(map[*follower]struct{}),
	}
}

// childListen reports the LISTEN a listener's child starts in: a copy of
// the listener (RFC 9293's passive OPEN), not a transition of its own.
func childListen(e tcp.Transition) bool {
	return e.From == tcp.Closed && e.To == tcp.Listen && e.Tuple.Remote.IsValid()
}

func (ev *events) record(e tcp.Transition) {
	if childListen(e) {
		return
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	ev.seq++
	x := TraceRecord{Seq: ev.seq, Kind: stack.TraceState, Transition: e}
	ev.ring[(ev.head+ev.n)%len(ev.ring)] = x
	if ev.n < len(ev.ring) {
		ev.n++
	} else {
		ev.head = (ev.head + 1) % len(ev.ring)
	}
	ev.transitions[[2]tcp.State{e.From, e.To}]++
	if e.To == tcp.Closed {
		delete(ev.since, e.ID)
	} else {
		ev.since[e.ID] = e.Time
	}
	for f := range ev.followers {
		select {
		case f.ch <- x:
		default:
			f.dropped++
		}
	}
}

// addrText writes a listener's zero address as "[::]:port".
func addrText(ap netip.AddrPort) string {
	if !ap.Addr().IsValid() {
		return netipAny(ap.Port()).String()
	}
	return ap.String()
}

// stateSince tells when connection id entered its current state, if an
// event said.
func (ev *events) stateSince(id uint64) (time.Time, bool) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	t, ok := ev.since[id]
	return t, ok
}

// close ends every follower: the stack is gone.
func (ev *events) close() {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	ev.closed = true
	for f := range ev.followers {
		close(f.done)
		delete(ev.followers, f)
	}
}

// snapshot returns the events after seq and the transition counts.
func (ev *events) snapshot(after uint64) Events {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	out := Events{Start: ev.start, Last: ev.seq, Events: ev.after(after)}
	for k, n := range ev.transitions {
		out.Transitions = append(out.Transitions, TransitionCount{From: k[0].String(), To: k[1].String(), Count: n})
	}
	slices.SortFunc(out.Transitions, func(a, b TransitionCount) int {
		fa, _ := diag.ParseState(a.From)
		fb, _ := diag.ParseState(b.From)
		if c := cmp.Compare(fa, fb); c != 0 {
			return c
		}
		ta, _ := diag.ParseState(a.To)
		tb, _ := diag.ParseState(b.To)
		return cmp.Compare(ta, tb)
	})
	if out.Transitions == nil {
		out.Transitions = []TransitionCount{}
	}
	return out
}

// after returns the kept events with Seq > seq, oldest first. ev.mu held.
func (ev *events) after(seq uint64) []TraceRecord {
	out := []TraceRecord{}
	for i := range ev.n {
		x := ev.ring[(ev.head+i)%len(ev.ring)]
		if x.Seq > seq {
			out = append(out, x)
		}
	}
	return out
}

// follow registers a streaming client and returns the kept events after
// seq (when replay), atomically with the registration so nothing is missed
// or repeated.
func (ev *events) follow(replay bool, seq uint64) (*follower, []TraceRecord, error) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if ev.closed {
		return nil, nil, errStackClosed
	}
	if len(ev.followers) >= ev.maxF {
		return nil, nil, errTooMany
	}
	f := &follower{ch: make(chan TraceRecord, ev.buf), done: make(chan struct{})}
	ev.followers[f] = struct{}{}
	var old []TraceRecord
	if replay {
		old = ev.after(seq)
	}
	return f, old, nil
}

func (ev *events) unfollow(f *follower) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if _, ok := ev.followers[f]; ok {
		delete(ev.followers, f)
		close(f.done)
	}
}

// takeDropped returns and resets the events dropped for f.
func (ev *events) takeDropped(f *follower) uint64 {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	n := f.dropped
	f.dropped = 0
	return n
}

var (
	errStackClosed = fmt.Errorf("the stack is closed")
	errTooMany     = fmt.Errorf("too many streaming clients")
)

func (a *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var after uint64
	if s := q.Get("after"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			http.Error(w, "after: want a sequence number", http.StatusBadRequest)
			return
		}
		after = n
	}
	if !truthy(q.Get("follow")) {
		writeJSON(w, a.ev.snapshot(after))
		return
	}
	f, old, err := a.ev.follow(q.Has("after"), after)
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	defer a.ev.unfollow(f)
	st := newStream(w, r)
	for _, x := range old {
		st.send("", x)
	}
	st.flush()
	for {
		select {
		case x := <-f.ch:
			st.send("", x)
			// Send what else is queued before flushing.
			for more := true; more; {
				select {
				case x := <-f.ch:
					st.send("", x)
				default:
					more = false
				}
			}
			if n := a.ev.takeDropped(f); n > 0 {
				st.send("dropped", map[string]uint64{"dropped": n})
			}
			if err := st.flush(); err != nil {
				return
			}
		case <-f.done:
			return
		case <-r.Context().Done():
			return
		}
	}
}

func truthy(s string) bool {
	b, err := strconv.ParseBool(s)
	return err == nil && b
}

// stream writes a streaming response as newline-delimited JSON, or as
// server-sent events when the client asks for text/event-stream.
type stream struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	sse bool
	err error
}

func newStream(w http.ResponseWriter, r *http.Request) *stream {
	st := &stream{w: w, rc: http.NewResponseController(w)}
	st.sse = r.Header.Get("Accept") == "text/event-stream" || truthy(r.URL.Query().Get("sse"))
	if st.sse {
		w.Header().Set("Content-Type", "text/event-stream")
	} else {
		w.Header().Set("Content-Type", "application/x-ndjson")
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	return st
}

// send writes one record; kind names the SSE event ("" for the default,
// "message").
func (st *stream) send(kind string, v any) {
	if st.err != nil {
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		st.err = err
		return
	}
	if st.sse {
		if kind != "" {
			_, st.err = fmt.Fprintf(st.w, "event: %s\n", kind)
		}
		if st.err == nil {
			_, st.err = fmt.Fprintf(st.w, "data: %s\n\n", b)
		}
		return
	}
	b = append(b, '\n')
	_, st.err = st.w.Write(b)
}

func (st *stream) flush() error {
	if st.err != nil {
		return st.err
	}
	if err := st.rc.Flush(); err != nil {
		st.err = err
	}
	return st.err
}

package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/synack/synack/diag"
	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/stack"
	"github.com/synack/synack/tcp"
	"github.com/synack/synack/wire"
)

// DefaultTraceHistory is how many trace records a Tracer keeps for
// clients that ask for the recent past (?backlog=N).
const DefaultTraceHistory = 4096

// Tracer fans a stack's synchronous trace out to /api/trace clients. The
// stack's trace hook is fixed when the stack is made, so make the Tracer
// first and pass its Hook:
//
//	tr := admin.NewTracer()
//	s := stack.New(stack.Options{Trace: tr.Hook})
//	h := admin.Handler(s, admin.Options{Tracer: tr})
//
// Hook never blocks and does not allocate: it copies each event (the
// segment's header and options, not its payload) into a ring of recent
// records and into each client's bounded queue, dropping for a client
// whose queue is full (the client is told how many).
type Tracer struct {
	mu      sync.Mutex
	ring    []TraceRecord
	head, n int
	seq     uint64
	clients map[*traceClient]struct{}
	dropped uint64 // records dropped for slow clients, all clients
}

type traceClient struct {
	ch      chan TraceRecord
	filter  TraceFilter
	dropped uint64 // guarded by Tracer.mu
}

// NewTracer returns a Tracer keeping DefaultTraceHistory records.
func NewTracer() *Tracer { return NewTracerSize(DefaultTraceHistory) }

// NewTracerSize returns a Tracer keeping n records (at least 1).
func NewTracerSize(n int) *Tracer {
	return &Tracer{ring: make([]TraceRecord, max(n, 1)), clients: make(map[*traceClient]struct{})}
}

// Hook is the stack.Options.Trace function: it records ev and hands it to
// the clients, without blocking.
func (t *Tracer) Hook(ev stack.TraceEvent) {
	rec := NewTraceRecord(ev)
	t.mu.Lock()
	t.seq++
	rec.Seq = t.seq
	t.ring[(t.head+t.n)%len(t.ring)] = rec
	if t.n < len(t.ring) {
		t.n++
	} else {
		t.head = (t.head + 1) % len(t.ring)
	}
	for c := range t.clients {
		if !c.filter.Match(&rec) {
			continue
		}
		select {
		case c.ch <- rec:
		default:
			c.dropped++
			t.dropped++
		}
	}
	t.mu.Unlock()
}

// Dropped is the number of records dropped for slow clients since the
// Tracer was made.
func (t *Tracer) Dropped() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.dropped
}

// Recent returns up to n of the kept records that match f, oldest first.
func (t *Tracer) Recent(n int, f TraceFilter) []TraceRecord {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.recent(n, f)
}

func (t *Tracer) recent(n int, f TraceFilter) []TraceRecord {
	var out []TraceRecord
	for i := t.n - 1; i >= 0 && len(out) < n; i-- {
		r := t.ring[(t.head+i)%len(t.ring)]
		if f.Match(&r) {
			out = append(out, r)
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

func (t *Tracer) subscribe(f TraceFilter, buf, backlog, maxClients int) (*traceClient, []TraceRecord, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.clients) >= maxClients {
		return nil, nil, errTooMany
	}
	c := &traceClient{ch: make(chan TraceRecord, buf), filter: f}
	t.clients[c] = struct{}{}
	return c, t.recent(backlog, f), nil
}

func (t *Tracer) unsubscribe(c *traceClient) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.clients, c)
}

func (t *Tracer) takeDropped(c *traceClient) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := c.dropped
	c.dropped = 0
	return n
}

// TraceRecord is a stack.TraceEvent kept and served: a segment received
// or sent (header and options, the payload's length only) or a state
// change (the tcp.Transition), from the stack's side (Tuple.Local is the
// stack's end). Its JSON form is the one schema of /api/trace,
// /api/events, `synack trace --json` and `synack demo --json`.
// Kind "dropped" (TraceDropped) tells a client that Dropped records were
// left out because it read too slowly.
type TraceRecord struct {
	Seq  uint64
	Kind stack.TraceKind
	tcp.Transition
	HasSegment bool
	Segment    tcp.Segment // Payload nil; Len is its length
	Len        int
	Drop       tcp.DropReason // a received segment the core discarded: why
	Dropped    uint64         // Kind TraceDropped only
}

const (
	// TraceDropped is the Kind of the record that reports dropped records.
	TraceDropped stack.TraceKind = 255
	// TraceLost is the Kind of a segment the link lost on the way, which
	// only whoever watches the link knows (the demo's impaired link).
	TraceLost stack.TraceKind = 254
)

// NewTraceRecord copies ev into a record (without Seq). It does not
// allocate: the segment's payload is left out, only its length kept.
func NewTraceRecord(ev stack.TraceEvent) TraceRecord {
	rec := TraceRecord{Kind: ev.Kind, Transition: ev.Transition, Drop: ev.Drop}
	if ev.Segment != nil {
		rec.HasSegment = true
		rec.Segment = *ev.Segment
		rec.Segment.Payload = nil
		rec.Len = len(ev.Segment.Payload)
	}
	return rec
}

// Event returns the record as a stack.TraceEvent, for renderers written
// for the stack's trace (the ladder). The segment's payload is zeros of
// the recorded length.
func (r *TraceRecord) Event() stack.TraceEvent {
	ev := stack.TraceEvent{Kind: r.Kind, Transition: r.Transition, Drop: r.Drop}
	if r.HasSegment {
		seg := r.Segment
		seg.Payload = make([]byte, r.Len)
		ev.Segment = &seg
	}
	return ev
}

// traceJSON is TraceRecord on the wire.
type traceJSON struct {
	Seq     uint64       `json:"seq,omitempty"`
	Kind    string       `json:"kind"` // "rcv", "snd", "state", "dropped", "lost"
	Time    time.Time    `json:"time,omitzero"`
	ID      uint64       `json:"id,omitempty"`
	Local   string       `json:"local,omitempty"`
	Remote  string       `json:"remote,omitempty"`
	From    string       `json:"from,omitempty"`
	To      string       `json:"to,omitempty"`
	Cause   tcp.Cause    `json:"cause,omitempty"`
	Segment *segmentJSON `json:"segment,omitempty"`
	Drop    string       `json:"drop,omitempty"` // why the core discarded a received segment: "paws", "out_of_window", ...
	Dropped uint64       `json:"dropped,omitempty"`
}

type segmentJSON struct {
	Flags    string      `json:"flags"` // tcpdump's: "S.", "P.", "F."
	FlagBits uint8       `json:"flag_bits"`
	Seq      uint32      `json:"seq"`
	Ack      uint32      `json:"ack"`
	Win      uint16      `json:"win"`
	Len      int         `json:"len"`
	MSS      uint16      `json:"mss,omitempty"`
	WScale   *uint8      `json:"wscale,omitempty"`
	SACKOK   bool        `json:"sack_ok,omitempty"`
	TS       *[2]uint32  `json:"ts,omitempty"` // TSval, TSecr
	SACK     [][2]uint32 `json:"sack,omitempty"`
}

// MarshalJSON writes the record with states by name and the tuple as
// addresses.
func (r TraceRecord) MarshalJSON() ([]byte, error) {
	j := traceJSON{Seq: r.Seq, Time: r.Time, ID: r.ID, Cause: r.Cause}
	switch r.Kind {
	case TraceDropped:
		j.Kind, j.Dropped = "dropped", r.Dropped
		return json.Marshal(j)
	case TraceLost:
		j.Kind = "lost"
	default:
		j.Kind = r.Kind.String()
	}
	if r.Tuple.Local.IsValid() || r.Tuple.Local.Port() != 0 {
		j.Local = addrText(r.Tuple.Local) // a listener on every address: "[::]:80"
	}
	if r.Tuple.Remote.IsValid() {
		j.Remote = r.Tuple.Remote.String()
	}
	j.From, j.To = r.From.String(), r.To.String()
	if r.Drop != tcp.DropNone {
		j.Drop = r.Drop.String()
	}
	if r.HasSegment {
		s := &r.Segment
		o := &s.Options
		sj := &segmentJSON{Flags: s.Flags.String(), FlagBits: uint8(s.Flags), Seq: uint32(s.Seq), Ack: uint32(s.Ack), Win: s.Window, Len: r.Len}
		if o.HasMSS {
			sj.MSS = o.MSS
		}
		if o.HasWindowScale {
			ws := o.WindowScale
			sj.WScale = &ws
		}
		sj.SACKOK = o.SACKPermitted
		if o.HasTimestamps {
			sj.TS = &[2]uint32{o.TSVal, o.TSEcr}
		}
		for _, b := range o.SACK() {
			sj.SACK = append(sj.SACK, [2]uint32{uint32(b.Start), uint32(b.End)})
		}
		j.Segment = sj
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (r *TraceRecord) UnmarshalJSON(b []byte) error {
	var j traceJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*r = TraceRecord{Seq: j.Seq, Transition: tcp.Transition{Time: j.Time, ID: j.ID, Cause: j.Cause}, Dropped: j.Dropped}
	switch j.Kind {
	case "rcv":
		r.Kind = stack.TraceReceived
	case "snd":
		r.Kind = stack.TraceSent
	case "state":
		r.Kind = stack.TraceState
	case "lost":
		r.Kind = TraceLost
	case "dropped":
		r.Kind = TraceDropped
		return nil
	default:
		return fmt.Errorf("admin: unknown trace record kind %q", j.Kind)
	}
	var err error
	if j.Local != "" {
		if r.Tuple.Local, err = netip.ParseAddrPort(j.Local); err != nil {
			return fmt.Errorf("admin: trace record: %w", err)
		}
	}
	if j.Remote != "" {
		if r.Tuple.Remote, err = netip.ParseAddrPort(j.Remote); err != nil {
			return fmt.Errorf("admin: trace record: %w", err)
		}
	}
	var ok bool
	if r.From, ok = diag.ParseState(j.From); !ok {
		return fmt.Errorf("admin: trace record: unknown state %q", j.From)
	}
	if r.To, ok = diag.ParseState(j.To); !ok {
		return fmt.Errorf("admin: trace record: unknown state %q", j.To)
	}
	if j.Drop != "" {
		// A reason this build does not know stays DropNone.
		r.Drop, _ = tcp.ParseDropReason(j.Drop)
	}
	if sj := j.Segment; sj != nil {
		r.HasSegment = true
		r.Len = sj.Len
		s := &r.Segment
		s.Flags, s.Seq, s.Ack, s.Window = wire.TCPFlags(sj.FlagBits), seqnum.Value(sj.Seq), seqnum.Value(sj.Ack), sj.Win
		o := &s.Options
		if sj.MSS != 0 {
			o.MSS, o.HasMSS = sj.MSS, true
		}
		if sj.WScale != nil {
			o.WindowScale, o.HasWindowScale = *sj.WScale, true
		}
		o.SACKPermitted = sj.SACKOK
		if sj.TS != nil {
			o.TSVal, o.TSEcr, o.HasTimestamps = sj.TS[0], sj.TS[1], true
		}
		for i, blk := range sj.SACK {
			if i == len(o.SACKBlocks) {
				break
			}
			o.SACKBlocks[i] = wire.SACKBlock{Start: seqnum.Value(blk[0]), End: seqnum.Value(blk[1])}
			o.NumSACK = i + 1
		}
	}
	return nil
}

// TraceFilter chooses trace records by port, address and state. Each
// non-empty list must match (they are ANDed); within a list any value
// matches (ORed). A port or address matches either end of the
// connection; a state matches when the connection is in it before or
// after the event, so a state filter shows the segments exchanged in the
// state and the transitions into and out of it.
type TraceFilter struct {
	Ports  []uint16
	Addrs  []netip.Addr
	States []tcp.State
}

// Empty reports whether f lets everything through.
func (f TraceFilter) Empty() bool {
	return len(f.Ports) == 0 && len(f.Addrs) == 0 && len(f.States) == 0
}

// Match reports whether r passes the filter. Records of kind TraceDropped
// always do.
func (f *TraceFilter) Match(r *TraceRecord) bool {
	if r.Kind == TraceDropped {
		return true
	}
	if len(f.Ports) > 0 && !containsPort(f.Ports, r.Tuple.Local.Port()) && !containsPort(f.Ports, r.Tuple.Remote.Port()) {
		return false
	}
	if len(f.Addrs) > 0 && !containsAddr(f.Addrs, r.Tuple.Local.Addr()) && !containsAddr(f.Addrs, r.Tuple.Remote.Addr()) {
		return false
	}
	if len(f.States) > 0 && !containsState(f.States, r.From) && !containsState(f.States, r.To) {
		return false
	}
	return true
}

func containsPort(ps []uint16, p uint16) bool {
	for _, x := range ps {
		if x == p {
			return true
		}
	}
	return false
}

func containsAddr(as []netip.Addr, a netip.Addr) bool {
	a = a.Unmap()
	for _, x := range as {
		if x.Unmap() == a {
			return true
		}
	}
	return false
}

func containsState(ss []tcp.State, s tcp.State) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// ParseTraceFilter reads a filter as `synack trace` takes it: words such
// as "port 80", "host 10.0.0.2", "state time-wait", or the bare values
// "80", "10.0.0.2", "10.0.0.2:80", "[fd00::2]:80", "close-wait". Words may
// also be joined with commas ("80,443").
func ParseTraceFilter(args []string) (TraceFilter, error) {
	var f TraceFilter
	var words []string
	for _, a := range args {
		words = append(words, strings.FieldsFunc(a, func(r rune) bool { return r == ',' || r == ' ' })...)
	}
	for i := 0; i < len(words); i++ {
		w := strings.ToLower(words[i])
		kind := ""
		switch w {
		case "port", "host", "addr", "state", "and":
			if w == "and" {
				continue
			}
			if i+1 == len(words) {
				return f, fmt.Errorf("%q wants a value", w)
			}
			kind, w = w, words[i+1]
			i++
		}
		if err := f.add(kind, w); err != nil {
			return f, err
		}
	}
	return f, nil
}

func (f *TraceFilter) add(kind, w string) error {
	if kind == "" || kind == "port" {
		if n, err := strconv.ParseUint(w, 10, 16); err == nil {
			f.Ports = append(f.Ports, uint16(n))
			return nil
		} else if kind == "port" {
			return fmt.Errorf("bad port %q", w)
		}
	}
	if kind == "" || kind == "host" || kind == "addr" {
		if a, err := netip.ParseAddr(strings.Trim(w, "[]")); err == nil {
			f.Addrs = append(f.Addrs, a)
			return nil
		}
		if ap, err := netip.ParseAddrPort(w); err == nil {
			f.Addrs = append(f.Addrs, ap.Addr())
			f.Ports = append(f.Ports, ap.Port())
			return nil
		}
		if kind != "" {
			return fmt.Errorf("bad address %q", w)
		}
	}
	if st, ok := diag.ParseState(w); ok {
		f.States = append(f.States, st)
		return nil
	}
	if kind == "state" {
		return fmt.Errorf("unknown state %q", w)
	}
	return fmt.Errorf("%q is not a port, an address or a state", w)
}

// Query writes f as /api/trace's query parameters.
func (f TraceFilter) Query() string {
	var parts []string
	for _, p := range f.Ports {
		parts = append(parts, "port="+strconv.Itoa(int(p)))
	}
	for _, a := range f.Addrs {
		parts = append(parts, "host="+a.String())
	}
	for _, s := range f.States {
		parts = append(parts, "state="+s.String())
	}
	return strings.Join(parts, "&")
}

// traceFilterFromQuery reads what Query writes.
func traceFilterFromQuery(q map[string][]string) (TraceFilter, error) {
	var f TraceFilter
	for _, kind := range []string{"port", "host", "state"} {
		for _, v := range q[kind] {
			if err := f.add(kind, v); err != nil {
				return f, err
			}
		}
	}
	return f, nil
}

func (a *Server) serveTrace(w http.ResponseWriter, r *http.Request) {
	t := a.opts.Tracer
	if t == nil {
		http.Error(w, "this stack was not made with the admin tracer (stack.Options.Trace = tracer.Hook): no live trace", http.StatusNotFound)
		return
	}
	q := r.URL.Query()
	f, err := traceFilterFromQuery(q)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	backlog := 0
	if s := q.Get("backlog"); s != "" {
		if backlog, err = strconv.Atoi(s); err != nil || backlog < 0 {
			http.Error(w, "backlog: want a count", http.StatusBadRequest)
			return
		}
	}
	follow := q.Get("follow") == "" || truthy(q.Get("follow"))
	if !follow {
		st := newStream(w, r)
		for _, rec := range t.Recent(backlog, f) {
			st.send("", rec)
		}
		st.flush()
		return
	}
	c, old, err := t.subscribe(f, a.opts.FollowBuffer, backlog, a.opts.MaxFollowers)
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	defer t.unsubscribe(c)
	st := newStream(w, r)
	for _, rec := range old {
		st.send("", rec)
	}
	if err := st.flush(); err != nil {
		return
	}
	for {
		select {
		case rec := <-c.ch:
			st.send("", rec)
			for more := true; more; {
				select {
				case rec := <-c.ch:
					st.send("", rec)
				default:
					more = false
				}
			}
			if n := t.takeDropped(c); n > 0 {
				st.send("dropped", TraceRecord{Kind: TraceDropped, Dropped: n})
			}
			if err := st.flush(); err != nil {
				return
			}
		case <-a.done:
			return
		case <-r.Context().Done():
			return
		}
	}
}

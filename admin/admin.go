// Package admin serves a running synack stack to operators over HTTP: the
// Prometheus metrics, JSON views of its connections, counters and state
// changes, a live trace of its segments, and a page that draws the RFC 9293
// state diagram with the live count on each state and each transition.
//
// Endpoints (all GET):
//
//	/                  the page (HTML, no external resources)
//	/metrics           Prometheus text format
//	/api/connections   diag.Snapshot of the stack (what `synack ss --admin` reads)
//	/api/diagnose      diag.Report: counts, counters and findings (what the page shows)
//	/api/counters      stack.Counters
//	/api/events        recent state changes and transition counts;
//	                   ?after=SEQ for the newer ones only;
//	                   ?follow=1 streams them (newline-delimited JSON, or
//	                   server-sent events with Accept: text/event-stream)
//	/api/trace         live segments and state changes (what `synack trace` reads),
//	                   newline-delimited TraceRecords; ?port= ?host= ?state= filter,
//	                   ?backlog=N replays the last N first, ?follow=0 ends after that
//
// The handlers read the stack when asked: nothing runs per metric or per
// connection. One goroutine per Server drains the stack's event
// subscription; it ends when the stack is closed or the Server is.
package admin

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/synack/synack/diag"
	"github.com/synack/synack/stack"
)

// Options configures a Server. The zero value is usable.
type Options struct {
	// Tracer serves /api/trace: the one whose Hook the stack was created
	// with (stack.Options.Trace). nil: /api/trace answers 404.
	Tracer *Tracer

	// Thresholds for the findings in /metrics, /api/diagnose and the page.
	Thresholds diag.Thresholds

	// EventHistory is how many state changes /api/events keeps. Default 1000.
	EventHistory int

	// FollowBuffer is how many events or trace records are queued for one
	// streaming client before newer ones are dropped for it (the client is
	// told how many). Default 1024.
	FollowBuffer int

	// MaxFollowers bounds the streaming clients at once. Default 32.
	MaxFollowers int

	// Process names the owner of the stack's connections in the rows
	// (with this process's pid). Default: the program's name.
	Process string

	// NoProcessMetrics leaves Go's runtime and process collectors out of
	// /metrics.
	NoProcessMetrics bool
}

func (o *Options) defaults() {
	if o.EventHistory <= 0 {
		o.EventHistory = 1000
	}
	if o.FollowBuffer <= 0 {
		o.FollowBuffer = 1024
	}
	if o.MaxFollowers <= 0 {
		o.MaxFollowers = 32
	}
	if o.Process == "" {
		o.Process = defaultProcess()
	}
}

// Server is the admin HTTP handler of one stack.
type Server struct {
	s       *stack.Stack
	opts    Options
	mux     *http.ServeMux
	reg     *prometheus.Registry
	ev      *events
	cancel  func()
	done    chan struct{} // closed when the event goroutine has ended
	closeMu sync.Once

	diagMu   sync.Mutex
	prev     *diag.Snapshot // the previous look, for the rules that need deltas
	prevTime time.Time
}

// Handler returns the admin handler of s. It subscribes to s's state
// changes at once, so transitions are counted from now on. Close (or
// closing the stack) ends the subscription.
func Handler(s *stack.Stack, opts Options) *Server {
	opts.defaults()
	a := &Server{s: s, opts: opts, mux: http.NewServeMux(), done: make(chan struct{})}
	a.ev = newEvents(opts.EventHistory, opts.FollowBuffer, opts.MaxFollowers, s.Clock().Now())
	ch, cancel := s.Subscribe(4096)
	a.cancel = cancel
	go func() {
		defer close(a.done)
		defer a.ev.close()
		for e := range ch {
			a.ev.record(e)
		}
	}()

	a.reg = prometheus.NewRegistry()
	a.reg.MustRegister(&collector{a: a})
	if !opts.NoProcessMetrics {
		a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	a.mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	a.mux.HandleFunc("GET /api/connections", a.serveConnections)
	a.mux.HandleFunc("GET /api/diagnose", a.serveDiagnose)
	a.mux.HandleFunc("GET /api/counters", a.serveCounters)
	a.mux.HandleFunc("GET /api/events", a.serveEvents)
	a.mux.HandleFunc("GET /api/trace", a.serveTrace)
	a.mux.HandleFunc("GET /{$}", servePage)
	a.mux.HandleFunc("GET /diagram.svg", serveDiagram)
	return a
}

// ServeHTTP implements http.Handler.
func (a *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// Registry is the Prometheus registry /metrics serves, for adding
// collectors of the program's own.
func (a *Server) Registry() *prometheus.Registry { return a.reg }

// Close ends the event subscription and every streaming response.
func (a *Server) Close() {
	a.closeMu.Do(func() {
		a.cancel()
		<-a.done
	})
}

// Snapshot is Snapshot(s) with what the server learned from events: the
// time TIME-WAIT connections entered it, hence their age and time left.
func (a *Server) Snapshot() diag.Snapshot {
	return snapshot(a.s, a.opts.Process, a.ev.stateSince)
}

// diagnose takes a snapshot and returns it with its findings, judged
// against the previous look when there is one at least a second old (the
// rules on counters want deltas).
func (a *Server) diagnose() (diag.Snapshot, diag.Report) {
	cur := a.Snapshot()
	a.diagMu.Lock()
	prev := a.prev
	if prev == nil || cur.Time.Sub(a.prevTime) >= time.Second {
		a.prev, a.prevTime = &cur, cur.Time
	}
	a.diagMu.Unlock()
	if prev != nil && !cur.Time.After(prev.Time) {
		prev = nil
	}
	return cur, diag.NewReport(cur, prev, a.opts.Thresholds)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	enc.Encode(v)
}

func (a *Server) serveConnections(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, a.Snapshot())
}

func (a *Server) serveDiagnose(w http.ResponseWriter, r *http.Request) {
	_, rep := a.diagnose()
	if rep.Findings == nil {
		rep.Findings = []diag.Finding{}
	}
	writeJSON(w, rep)
}

func (a *Server) serveCounters(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, a.s.Counters())
}

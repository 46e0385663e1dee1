package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/synack/synack/diag/hostlive"
	"github.com/synack/synack/diag/hosttrace"
)

func init() {
	register(&command{
		name:    "exporter",
		summary: "Prometheus exporter of the host kernel's TCP states, transitions, resets and retransmissions (--host)",
		run:     runExporter,
	})
}

// hostOpts are the flags exporter --host and watch --host share.
type hostOpts struct {
	host     bool
	listen   string
	ports    []uint16
	interval time.Duration
	maxConns int
}

// hostFlags registers them; def is the default --listen.
func hostFlags(fs *flag.FlagSet, o *hostOpts, def string) {
	fs.BoolVar(&o.host, "host", false, "the host kernel's TCP (sock_diag and tracepoints; needs root)")
	fs.StringVar(&o.listen, "listen", def, "serve on `ADDR` (host:port; a bare :port binds 127.0.0.1 only)")
	fs.Func("ports", "only sockets and events with one of these ports at either end (`LIST`: 80,443)", func(s string) error {
		ps, err := parsePorts(s)
		o.ports = append(o.ports, ps...)
		return err
	})
	fs.DurationVar(&o.interval, "interval", 5*time.Second, "read the sockets (sock_diag) every `D`")
	fs.IntVar(&o.maxConns, "max-conns", 10000, "keep at most `N` connections in the per-connection table of resets and retransmissions")
}

func parsePorts(s string) ([]uint16, error) {
	var out []uint16
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		n, err := strconv.ParseUint(f, 10, 16)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("bad port %q", f)
		}
		out = append(out, uint16(n))
	}
	return out, nil
}

// hostModel is a model of the host's TCP fed by a tracer and sock_diag
// until its context ends.
type hostModel struct {
	*hostlive.Model
	tr   *hosttrace.Tracer
	done chan error
}

// startHostModel opens the tracepoints and starts the model (first
// snapshot included before it returns). Stop it by ending ctx, then wait.
func startHostModel(ctx context.Context, o hostOpts, lo hostlive.Options) (*hostModel, error) {
	tr, err := hosttrace.Open(hosttrace.Options{Resets: true, Retransmits: true, Destroys: true, Ports: o.ports})
	if err != nil {
		return nil, fmt.Errorf("%w (tracing the kernel needs root)", err)
	}
	lo.Ports, lo.MaxConns = o.ports, o.maxConns
	m := hostlive.New(lo)
	m.Refresh(tr.Lost)
	h := &hostModel{Model: m, tr: tr, done: make(chan error, 1)}
	go func() {
		err := m.Run(ctx, tr, o.interval)
		tr.Close()
		h.done <- err
	}()
	return h, nil
}

func (h *hostModel) wait() error { return <-h.done }

// exporterHandler serves /metrics of a host model: its collector, the
// build info, and Go's and the process's own unless noProcess.
func exporterHandler(m *hostlive.Model, noProcess bool) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(hostlive.NewCollector(m))
	if !noProcess {
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, `<!doctype html><title>synack exporter --host</title><h1>synack exporter --host</h1><p><a href="metrics">/metrics</a>: the host kernel's TCP states, transitions, resets and retransmissions.</p>`)
	})
	return mux
}

func runExporter(args []string) int {
	fs := flag.NewFlagSet("exporter", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: synack exporter --host [--listen ADDR] [--ports LIST] [flags]")
		fmt.Fprintln(fs.Output(), "\nServes /metrics for Prometheus: the host kernel's TCP sockets per RFC 9293 state and")
		fmt.Fprintln(fs.Output(), "listening port (sock_diag), every state transition, RST and retransmission (tracepoints,")
		fmt.Fprintln(fs.Output(), "from a private tracefs instance), listen queues, byte counters and `synack diagnose`")
		fmt.Fprintln(fs.Output(), "findings. Needs root. Counts are those of the network namespace it runs in; the")
		fmt.Fprintln(fs.Output(), "tracepoints are the whole host's (narrow them with --ports).")
		fmt.Fprintln(fs.Output(), "Alert rules: contrib/prometheus/alerts.yml; dashboard: contrib/grafana/synack-host.json.")
		fmt.Fprintln(fs.Output(), "\nflags:")
		fs.PrintDefaults()
	}
	var o hostOpts
	hostFlags(fs, &o, ":9841")
	noProcess := fs.Bool("no-process-metrics", false, "leave Go's runtime and process metrics out")
	if status, done := parseFlags(fs, args); done {
		return status
	}
	if !o.host || fs.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "synack exporter: --host is required (a synack stack serves its own /metrics with --admin)")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serveHost(ctx, "exporter", o, func(m *hostModel) http.Handler { return exporterHandler(m.Model, *noProcess) })
}

// serveHost starts the model, serves handler(model) on o.listen until ctx
// ends, and returns the exit status.
func serveHost(ctx context.Context, name string, o hostOpts, handler func(*hostModel) http.Handler) int {
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "synack %s: %v\n", name, err)
		return 1
	}
	la, err := adminListenAddr(o.listen)
	if err != nil {
		return fail(err)
	}
	ln, err := net.Listen("tcp", la)
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m, err := startHostModel(ctx, o, hostlive.Options{})
	if err != nil {
		ln.Close()
		return fail(err)
	}
	if miss := m.tr.Missing(); len(miss) > 0 {
		fmt.Fprintf(os.Stderr, "synack %s: this kernel lacks %s; going on without\n", name, strings.Join(miss, ", "))
	}
	srv := &http.Server{Handler: handler(m), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(os.Stderr, "synack %s: serving on %s\n", name, adminURL(ln.Addr()))
	status := 0
	modelDone := false
	select {
	case <-ctx.Done():
	case err := <-served:
		if !errors.Is(err, http.ErrServerClosed) {
			status = fail(err)
		}
	case err := <-m.done: // the tracer failed: stale numbers are worse than none
		modelDone = true
		if err != nil {
			status = fail(err)
		}
	}
	cancel()
	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer scancel()
	if srv.Shutdown(sctx) != nil {
		srv.Close()
	}
	if !modelDone {
		if err := m.wait(); err != nil && status == 0 {
			status = fail(err)
		}
	}
	return status
}

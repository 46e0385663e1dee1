package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/synack/synack/admin"
	"github.com/synack/synack/stack"
)

// defaultAdminURL is where trace, ss --admin and diagnose --admin look
// when no URL is given: the address `synack serve --admin :9090` binds.
const defaultAdminURL = "http://127.0.0.1:9090"

// adminFlag registers --admin ADDR on a command that runs a stack. Empty
// (the default) is off. A bare ":PORT" binds loopback only; give an
// address ("0.0.0.0:9090", "[::]:9090") to listen beyond this host.
func adminFlag(fs *flag.FlagSet) *string {
	return fs.String("admin", "", "serve the admin page, /metrics and the JSON API on `ADDR` "+
		"(host:port; a bare :port such as :9090 binds 127.0.0.1 only)")
}

// adminTracer fans the stack's trace out to `synack trace`. A process
// runs one stack with --admin, so one tracer serves.
var adminTracer *admin.Tracer

// adminTrace returns the stack.Options.Trace hook --admin needs (the live
// trace of /api/trace), nil when addr is empty. Call it before making the
// stack: the hook is fixed at stack.New.
func adminTrace(addr string) func(stack.TraceEvent) {
	if addr == "" {
		return nil
	}
	if adminTracer == nil {
		adminTracer = admin.NewTracer()
	}
	return adminTracer.Hook
}

// adminListenAddr applies the loopback default to a bare ":port".
func adminListenAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("--admin %q: want host:port or :port (%v)", addr, err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// startAdmin serves s's admin endpoints on addr (see adminFlag) until
// stop is called. With addr empty it does nothing. It says where it
// listens on stderr. When the stack was made with adminTrace(addr) as its
// Options.Trace, /api/trace serves its live trace.
func startAdmin(addr string, s *stack.Stack) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	la, err := adminListenAddr(addr)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", la)
	if err != nil {
		return nil, fmt.Errorf("--admin: %w", err)
	}
	h := admin.Handler(s, admin.Options{Tracer: adminTracer})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintf(os.Stderr, "synack: admin server: %v\n", err)
		}
	}()
	fmt.Fprintf(os.Stderr, "synack: admin page and /metrics on %s\n", adminURL(ln.Addr()))
	return func() {
		h.Close() // ends the streaming responses, so Shutdown need not wait for them
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			srv.Close()
		}
		<-done
	}, nil
}

// adminURL is the http URL of a listening address.
func adminURL(a net.Addr) string {
	return "http://" + a.String() + "/"
}

// adminBase turns what --admin URL says into a base URL: "http://" is
// added when missing, a bare ":9090" means loopback, and the trailing
// slash goes.
func adminBase(u string) string {
	if u == "" {
		if env := os.Getenv("SYNACK_ADMIN"); env != "" {
			u = env
		} else {
			u = defaultAdminURL
		}
	}
	if strings.HasPrefix(u, ":") {
		u = "127.0.0.1" + u
	}
	if !strings.Contains(u, "://") {
		u = "http://" + u
	}
	return strings.TrimRight(u, "/")
}

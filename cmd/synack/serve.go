package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	texttemplate "text/template"
	"time"

	"github.com/synack/synack/stack"
)

func init() {
	register(&command{
		name:    "serve",
		summary: "run the stack on a TUN device, serving echo, discard and HTTP",
		run:     runServe,
	})
}

func runServe(args []string) int {
	fs := flag.NewFlagSet("synack serve", flag.ContinueOnError)
	tf := addTunFlags(fs)
	echo := fs.Int("echo", 0, "serve echo (RFC 862) on `PORT`")
	discard := fs.Int("discard", 0, "serve discard (RFC 863) on `PORT`")
	httpPort := fs.Int("http", 0, "serve HTTP on `PORT`: a page about your connection, or the files of --http-dir")
	httpDir := fs.String("http-dir", "", "serve the files under `DIR` over HTTP instead of the built-in page")
	adminAddr := adminFlag(fs)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: synack serve [--tun NAME --host-addr CIDR --stack-addr IP] [--echo PORT] [--discard PORT] [--http PORT]")
		fmt.Fprintln(fs.Output(), "\nCreates a TUN interface, gives the kernel its side, and serves on the stack's address")
		fmt.Fprintln(fs.Output(), "until SIGINT or SIGTERM. Needs root (CAP_NET_ADMIN).\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "synack serve: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	for _, p := range []struct {
		name string
		v    int
	}{{"--echo", *echo}, {"--discard", *discard}, {"--http", *httpPort}} {
		if p.v < 0 || p.v > 65535 {
			fmt.Fprintf(os.Stderr, "synack serve: %s %d: not a port\n", p.name, p.v)
			return 2
		}
	}
	if *echo == 0 && *discard == 0 && *httpPort == 0 {
		fmt.Fprintln(os.Stderr, "synack serve: nothing to serve: give --echo PORT, --discard PORT and/or --http PORT")
		return 2
	}
	if *httpDir != "" && *httpPort == 0 {
		fmt.Fprintln(os.Stderr, "synack serve: --http-dir needs --http PORT")
		return 2
	}
	if *httpDir != "" {
		if st, err := os.Stat(*httpDir); err != nil || !st.IsDir() {
			fmt.Fprintf(os.Stderr, "synack serve: --http-dir %s: not a directory\n", *httpDir)
			return 2
		}
	}
	cfg, err := tf.config()
	if err != nil {
		fmt.Fprintf(os.Stderr, "synack serve: %v\n", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cfg.Options.Trace = adminTrace(*adminAddr)
	tn, err := tf.open(cfg)
	if err != nil {
		return setupFailed("serve", err)
	}
	srv := &server{net: tn, conns: map[net.Conn]struct{}{}}
	stopAdmin, err := startAdmin(*adminAddr, tn.Stack)
	if err != nil {
		tn.Close()
		fmt.Fprintf(os.Stderr, "synack serve: %v\n", err)
		return 1
	}
	var what []string
	listen := func(port int) (*stack.Listener, error) {
		return tn.Stack.ListenTCP(netip.AddrPortFrom(netip.Addr{}, uint16(port)), 0)
	}
	fail := func(err error) int {
		srv.shutdown()
		tn.Close()
		fmt.Fprintf(os.Stderr, "synack serve: %v\n", err)
		return 1
	}
	if *echo != 0 {
		l, err := listen(*echo)
		if err != nil {
			return fail(err)
		}
		srv.serveStream(l, echoConn)
		what = append(what, fmt.Sprintf("echo on port %d", *echo))
	}
	if *discard != 0 {
		l, err := listen(*discard)
		if err != nil {
			return fail(err)
		}
		srv.serveStream(l, discardConn)
		what = append(what, fmt.Sprintf("discard on port %d", *discard))
	}
	if *httpPort != 0 {
		l, err := listen(*httpPort)
		if err != nil {
			return fail(err)
		}
		var h http.Handler
		if *httpDir != "" {
			h = http.FileServer(http.Dir(*httpDir))
			what = append(what, fmt.Sprintf("HTTP (files of %s) on port %d", *httpDir, *httpPort))
		} else {
			h = &statusPage{s: tn.Stack}
			what = append(what, fmt.Sprintf("HTTP on port %d", *httpPort))
		}
		srv.serveHTTP(l, h)
	}
	fmt.Printf("synack serve: ready on %s: %s\n", tn, strings.Join(what, ", "))

	<-ctx.Done()
	stop()
	stopAdmin()
	srv.shutdown()
	if err := tn.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "synack serve: closing: %v\n", err)
		return 1
	}
	return 0
}

// server tracks listeners, HTTP servers and connections so shutdown can
// close them all.
type server struct {
	net *tunNet

	mu        sync.Mutex
	closed    bool
	listeners []net.Listener
	https     []*http.Server
	conns     map[net.Conn]struct{}
	wg        sync.WaitGroup
}

func (s *server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

// serveStream accepts connections on l and runs handle on each in its own
// goroutine.
func (s *server) serveStream(l *stack.Listener, handle func(*stack.TCPConn)) {
	s.mu.Lock()
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()
	go func() {
		for {
			c, err := l.AcceptTCP()
			if err != nil {
				if isClosed(err) {
					return
				}
				fmt.Fprintf(os.Stderr, "synack serve: accept on %v: %v\n", l.Addr(), err)
				return
			}
			if !s.track(c) {
				c.Close()
				return
			}
			go func() {
				defer s.untrack(c)
				handle(c)
			}()
		}
	}()
}

func (s *server) serveHTTP(l *stack.Listener, h http.Handler) {
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 30 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		},
		ErrorLog: nil,
	}
	s.mu.Lock()
	s.https = append(s.https, hs)
	s.mu.Unlock()
	go func() {
		if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) && !isClosed(err) {
			fmt.Fprintf(os.Stderr, "synack serve: HTTP on %v: %v\n", l.Addr(), err)
		}
	}()
}

// shutdown closes the listeners, then every connection, and waits for the
// handlers to return.
func (s *server) shutdown() {
	s.mu.Lock()
	s.closed = true
	ls, hs := s.listeners, s.https
	conns := make([]net.Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, h := range hs {
		h.Close() // closes its listener and connections
	}
	for _, l := range ls {
		l.Close()
	}
	for _, c := range conns {
		c.Close()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}

func isClosed(err error) bool { return errors.Is(err, net.ErrClosed) }

// echoConn sends back what it reads; at the peer's FIN it closes too.
func echoConn(c *stack.TCPConn) {
	defer c.Close()
	if _, err := io.Copy(c, c); err != nil {
		return
	}
	c.CloseWrite()
}

// discardConn reads and drops everything until the peer's FIN.
func discardConn(c *stack.TCPConn) {
	defer c.Close()
	io.Copy(io.Discard, c)
}

type connKey struct{}

// statusPage is the built-in HTTP page: the connection it is served on as
// the stack sees it, and the stack's connection table.
type statusPage struct{ s *stack.Stack }

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>synack</title>
<style>body{font-family:sans-serif;margin:2em}td,th{padding:0 1em 0 0;text-align:left;font-family:monospace}</style>
</head><body>
<h1>Hello from synack</h1>
<p>This page came over a TCP connection run by synack, a userspace TCP/IP stack written in Go,
not by the kernel you are talking from.</p>
{{with .Conn}}
<h2>Your connection</h2>
<table>
<tr><th>you</th><td>{{.Tuple.Remote}}</td></tr>
<tr><th>synack</th><td>{{.Tuple.Local}}</td></tr>
<tr><th>state</th><td>{{.State}}</td></tr>
<tr><th>RTT</th><td>{{.Info.RTT}} (var {{.Info.RTTVar}}, RTO {{.Info.RTO}})</td></tr>
<tr><th>MSS</th><td>{{.Info.MSS}} (yours {{.Info.PeerMSS}})</td></tr>
<tr><th>windows</th><td>send {{.Info.SndWnd}} (scale {{.Info.SndWScale}}), receive {{.Info.RcvWnd}} (scale {{.Info.RcvWScale}}), cwnd {{.Info.CWnd}}</td></tr>
<tr><th>options</th><td>timestamps {{.Info.Timestamps}}, SACK {{.Info.SACK}}</td></tr>
<tr><th>ISS / IRS</th><td>{{.Info.ISS}} / {{.Info.IRS}}</td></tr>
</table>
{{end}}
<h2>All connections ({{len .All}})</h2>
<table>
<tr><th>local</th><th>remote</th><th>state</th><th>age</th></tr>
{{range .All}}<tr><td>{{.Local}}</td><td>{{.Remote}}</td><td>{{.State}}</td><td>{{.Age}}</td></tr>
{{end}}</table>
</body></html>
`))

// textTmpl is the page for clients that do not ask for HTML (curl).
var textTmpl = texttemplate.Must(texttemplate.New("text").Parse(`Hello from synack, a userspace TCP/IP stack written in Go.
{{with .Conn}}
Your connection, as synack sees it:
  you       {{.Tuple.Remote}}
  synack    {{.Tuple.Local}}
  state     {{.State}}
  RTT       {{.Info.RTT}} (var {{.Info.RTTVar}}, RTO {{.Info.RTO}})
  MSS       {{.Info.MSS}} (yours {{.Info.PeerMSS}})
  windows   send {{.Info.SndWnd}} (scale {{.Info.SndWScale}}), receive {{.Info.RcvWnd}} (scale {{.Info.RcvWScale}}), cwnd {{.Info.CWnd}}
  options   timestamps {{.Info.Timestamps}}, SACK {{.Info.SACK}}
{{end}}
All connections ({{len .All}}):
{{range .All}}  {{printf "%-28s %-28s" .Local .Remote}} {{.State}}
{{end}}`))

type pageData struct {
	Conn *stack.ConnInfo
	All  []pageRow
}

type pageRow struct {
	Local, Remote, State string
	Age                  time.Duration
}

// endpoint prints a tuple's end; a listener on every address has no
// address, only a port.
func endpoint(ap netip.AddrPort) string {
	switch {
	case ap.Addr().IsValid():
		return ap.String()
	case ap.Port() != 0:
		return fmt.Sprintf("*:%d", ap.Port())
	}
	return "*"
}

func (p *statusPage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	all := p.s.Connections()
	slices.SortFunc(all, func(a, b stack.ConnInfo) int {
		if c := a.Tuple.Local.Compare(b.Tuple.Local); c != 0 {
			return c
		}
		return a.Tuple.Remote.Compare(b.Tuple.Remote)
	})
	d := pageData{}
	for _, c := range all {
		d.All = append(d.All, pageRow{
			Local: endpoint(c.Tuple.Local), Remote: endpoint(c.Tuple.Remote),
			State: c.State.String(), Age: c.Age.Round(time.Millisecond),
		})
	}
	if c, ok := r.Context().Value(connKey{}).(*stack.TCPConn); ok {
		id := c.Tuple()
		for i := range all {
			if all[i].Tuple == id {
				d.Conn = &all[i]
				break
			}
		}
		if d.Conn == nil {
			d.Conn = &stack.ConnInfo{Tuple: id, State: c.State(), Info: c.Info()}
		}
	}
	html := strings.Contains(r.Header.Get("Accept"), "text/html")
	if html {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
	} else {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}
	if r.Method == http.MethodHead {
		return
	}
	if html {
		pageTmpl.Execute(w, d)
	} else {
		textTmpl.Execute(w, d)
	}
}

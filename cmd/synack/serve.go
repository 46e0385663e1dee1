package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"io"
	"maps"
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

	"github.com/synack/synack/diag"
	"github.com/synack/synack/stack"
	"github.com/synack/synack/tcp"
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
	idle := fs.Duration("idle-timeout", defaultIdleTimeout, "close an echo or discard connection, or an idle HTTP keep-alive connection, after `D` without progress (0: never)")
	buffer := fs.Int("buffer", defaultServeBuffer, "each connection's send and receive buffer, in `bytes` (the most echo keeps queued per connection is twice this)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: synack serve [--tun NAME --host-addr CIDR --stack-addr IP] [--echo PORT] [--discard PORT] [--http PORT]")
		fmt.Fprintln(fs.Output(), "\nCreates a TUN interface, gives the kernel its side, and serves on the stack's address")
		fmt.Fprintln(fs.Output(), "until SIGINT or SIGTERM. Needs root (CAP_NET_ADMIN).")
		fmt.Fprintf(fs.Output(), "\nEvery accepted connection has keep-alive on (first probe after %v idle, then every %v,\n", serveKeepAlive.Idle, serveKeepAlive.Interval)
		fmt.Fprintf(fs.Output(), "reset after %d unanswered), so a peer that vanished is dropped within %v.\n\nflags:\n", serveKeepAlive.Count, serveKeepAlive.Idle+time.Duration(serveKeepAlive.Count)*serveKeepAlive.Interval)
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
	if *idle < 0 {
		fmt.Fprintf(os.Stderr, "synack serve: --idle-timeout %v: negative\n", *idle)
		return 2
	}
	if *buffer < minServeBuffer {
		fmt.Fprintf(os.Stderr, "synack serve: --buffer %d: less than %d bytes\n", *buffer, minServeBuffer)
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
	cfg.Options.TCP.SendBufferSize = *buffer
	cfg.Options.TCP.ReceiveBufferSize = *buffer
	apiURL := ""
	if *adminAddr != "" {
		la, err := adminListenAddr(*adminAddr)
		if err != nil {
			fmt.Fprintf(os.Stderr, "synack serve: %v\n", err)
			return 2
		}
		apiURL = adminAPIURL(la)
	}
	tn, err := tf.open(cfg)
	if err != nil {
		return setupFailed("serve", err)
	}
	srv := newServer(tn.Stack, *idle)
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
		srv.serveStream(l, srv.echo)
		what = append(what, fmt.Sprintf("echo on port %d", *echo))
	}
	if *discard != 0 {
		l, err := listen(*discard)
		if err != nil {
			return fail(err)
		}
		srv.serveStream(l, srv.discard)
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
			h = &statusPage{s: tn.Stack, rows: statusRows, api: apiURL}
			what = append(what, fmt.Sprintf("HTTP on port %d", *httpPort))
		}
		srv.serveHTTP(l, h)
	}
	fmt.Printf("synack serve: ready on %s [%s]: %s\n", tn, tn.Dev.Features(), strings.Join(what, ", "))

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

const (
	// defaultIdleTimeout is --idle-timeout's default: long enough for a
	// person typing into nc, short enough that a peer that went away
	// without a FIN or RST does not hold a connection for good.
	defaultIdleTimeout = 5 * time.Minute
	// defaultServeBuffer is --buffer's default. A quarter of the stack's
	// default (1 MiB) is still a window of 20 Gbit/s at the 0.1 ms round
	// trip of a TUN link on one host (not measured here), and it bounds
	// what a client that sends to echo and never reads makes the server
	// hold: the send buffer full of its echo, the receive buffer full of
	// what it sent since, and one copy chunk.
	defaultServeBuffer = 256 << 10
	// minServeBuffer keeps --buffer above a few segments: a smaller
	// window only makes the connection crawl.
	minServeBuffer = 4 << 10
	// echoChunk is echo's copy buffer: what it reads in one go, and so
	// the most it holds outside the stack's buffers.
	echoChunk = 16 << 10
	// statusRows is how many connections the status page lists; the
	// rest are counted, and the admin JSON API (--admin) has them all.
	statusRows = 100
)

// serveKeepAlive is the keep-alive of every accepted connection. Go's
// net default (15 s idle, 15 s apart, 9 probes) is chatty for a server
// with many idle clients and slow to give up (2.5 min); this finds a dead
// peer in 2 minutes and sends one probe a minute to a live idle one.
var serveKeepAlive = net.KeepAliveConfig{Enable: true, Idle: 60 * time.Second, Interval: 15 * time.Second, Count: 4}

// server tracks listeners, HTTP servers and connections so shutdown can
// close them all.
type server struct {
	st   *stack.Stack
	idle time.Duration // --idle-timeout; 0: none

	mu        sync.Mutex
	closed    bool
	listeners []net.Listener
	https     []*http.Server
	conns     map[net.Conn]struct{}
	wg        sync.WaitGroup
}

// newServer serves on st's listeners; deadlines are read from st's clock,
// so a stack on a virtual clock (or in a synctest bubble) times out in
// virtual time.
func newServer(st *stack.Stack, idle time.Duration) *server {
	return &server{st: st, idle: idle, conns: map[net.Conn]struct{}{}}
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
// goroutine, keep-alive on.
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
			c.SetKeepAliveConfig(serveKeepAlive)
			go func() {
				defer s.untrack(c)
				handle(c)
			}()
		}
	}()
}

// keepAliveListener turns keep-alive on for the connections net/http
// accepts, as serveStream does for its own.
type keepAliveListener struct{ *stack.Listener }

func (l keepAliveListener) Accept() (net.Conn, error) {
	c, err := l.AcceptTCP()
	if err != nil {
		return nil, err
	}
	c.SetKeepAliveConfig(serveKeepAlive)
	return c, nil
}

func (s *server) serveHTTP(l *stack.Listener, h http.Handler) {
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 30 * time.Second,
		// An idle keep-alive connection is closed like an idle echo
		// one (zero: never, as with --idle-timeout 0).
		IdleTimeout: s.idle,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		},
		ErrorLog: nil,
	}
	if s.idle == 0 {
		// net/http falls back to ReadTimeout, which is zero too; say
		// "never" explicitly rather than rely on that.
		hs.IdleTimeout = -1
	}
	s.mu.Lock()
	s.https = append(s.https, hs)
	s.mu.Unlock()
	go func() {
		if err := hs.Serve(keepAliveListener{l}); err != nil && !errors.Is(err, http.ErrServerClosed) && !isClosed(err) {
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

// deadline is --idle-timeout from now on the stack's clock; the zero time
// (no deadline) when the timeout is off.
func (s *server) deadline() time.Time {
	if s.idle == 0 {
		return time.Time{}
	}
	return s.st.Clock().Now().Add(s.idle)
}

// echo sends back what it reads (RFC 862); at the peer's FIN it closes
// too. It reads one chunk, writes it, and reads again only when the stack
// took all of it, so what a peer that never reads makes it hold is the
// connection's send buffer (full of the echo), its receive buffer (full of
// what the peer sent since) and the chunk: --buffer bounds it. A read that
// waits --idle-timeout for data closes the connection (FIN: the peer may
// just be quiet); a write that waits as long for room resets it, because
// a peer that has not read for that long will not take what is queued and
// a FIN behind it would keep the buffer until the stack gave up.
func (s *server) echo(c *stack.TCPConn) {
	defer c.Close()
	buf := make([]byte, echoChunk)
	for {
		c.SetReadDeadline(s.deadline())
		n, err := c.Read(buf)
		if n > 0 {
			c.SetWriteDeadline(s.deadline())
			if _, werr := c.Write(buf[:n]); werr != nil {
				if errors.Is(werr, os.ErrDeadlineExceeded) {
					c.SetLinger(0)
				}
				return
			}
		}
		if err == io.EOF {
			c.CloseWrite()
			return
		}
		if err != nil {
			return
		}
	}
}

// discard reads and drops everything until the peer's FIN (RFC 863), or
// until it has sent nothing for --idle-timeout.
func (s *server) discard(c *stack.TCPConn) {
	defer c.Close()
	buf := make([]byte, echoChunk)
	for {
		c.SetReadDeadline(s.deadline())
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}

type connKey struct{}

// adminAPIURL is the admin JSON API's connection list for an admin
// server listening on la (host:port): where the status page sends readers
// for the rows it leaves out. An unspecified host (0.0.0.0, ::) is
// reached on loopback from this host.
func adminAPIURL(la string) string {
	host, port, err := net.SplitHostPort(la)
	if err != nil {
		return ""
	}
	if a, err := netip.ParseAddr(host); err == nil && a.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/api/connections"
}

// statusPage is the built-in HTTP page: the connection it is served on as
// the stack sees it, the count of connections in each state, and the
// first rows of the stack's connection table. It lists at most rows
// connections so that one GET stays small however many there are (a SYN
// flood puts thousands in SYN-RECEIVED); the admin JSON API, when on, has
// the rest.
type statusPage struct {
	s    *stack.Stack
	rows int
	api  string // the admin API's connection list, "" when --admin is off
}

var pageTmpl = template.Must(template.New("page").Funcs(template.FuncMap{"ms": diag.RTTText}).Parse(`<!doctype html>
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
<tr><th>RTT</th><td>{{ms .Info.RTT}} ms (var {{ms .Info.RTTVar}} ms, RTO {{ms .Info.RTO}} ms)</td></tr>
<tr><th>MSS</th><td>{{.Info.MSS}} (yours {{.Info.PeerMSS}})</td></tr>
<tr><th>windows</th><td>send {{.Info.SndWnd}} (scale {{.Info.SndWScale}}), receive {{.Info.RcvWnd}} (scale {{.Info.RcvWScale}}), cwnd {{.Info.CWnd}}</td></tr>
<tr><th>options</th><td>timestamps {{.Info.Timestamps}}, SACK {{.Info.SACK}}</td></tr>
<tr><th>ISS / IRS</th><td>{{.Info.ISS}} / {{.Info.IRS}}</td></tr>
</table>
{{end}}
<h2>All connections ({{.Total}})</h2>
<table>
<tr><th>state</th><th>count</th></tr>
{{range .Counts}}<tr><td>{{.State}}</td><td>{{.N}}</td></tr>
{{end}}</table>
{{if .More}}<p>The first {{len .All}} are below; {{.More}} more are left out.
{{if .API}}All of them: <a href="{{.API}}">{{.API}}</a> (the admin JSON API).{{else}}Start synack serve with --admin to get all of them from its JSON API.{{end}}</p>
{{end}}<table>
<tr><th>local</th><th>remote</th><th>state</th><th>age</th></tr>
{{range .All}}<tr><td>{{.Local}}</td><td>{{.Remote}}</td><td>{{.State}}</td><td>{{.Age}}</td></tr>
{{end}}</table>
</body></html>
`))

// textTmpl is the page for clients that do not ask for HTML (curl).
var textTmpl = texttemplate.Must(texttemplate.New("text").Funcs(texttemplate.FuncMap{"ms": diag.RTTText}).Parse(`Hello from synack, a userspace TCP/IP stack written in Go.
{{with .Conn}}
Your connection, as synack sees it:
  you       {{.Tuple.Remote}}
  synack    {{.Tuple.Local}}
  state     {{.State}}
  RTT       {{ms .Info.RTT}} ms (var {{ms .Info.RTTVar}} ms, RTO {{ms .Info.RTO}} ms)
  MSS       {{.Info.MSS}} (yours {{.Info.PeerMSS}})
  windows   send {{.Info.SndWnd}} (scale {{.Info.SndWScale}}), receive {{.Info.RcvWnd}} (scale {{.Info.RcvWScale}}), cwnd {{.Info.CWnd}}
  options   timestamps {{.Info.Timestamps}}, SACK {{.Info.SACK}}
{{end}}
All connections ({{.Total}}):
{{range .Counts}}  {{printf "%-12s" .State}} {{.N}}
{{end}}{{if .More}}
The first {{len .All}} ({{.More}} more left out; {{if .API}}all of them: {{.API}}{{else}}start synack serve with --admin to get all of them as JSON{{end}}):
{{else}}
{{end}}{{range .All}}  {{printf "%-28s %-28s" .Local .Remote}} {{.State}}
{{end}}`))

type pageData struct {
	Conn   *stack.ConnInfo
	Total  int         // connections, listeners and TIME-WAIT included
	Counts []pageCount // per state, in the order of tcp.State
	All    []pageRow   // the first rows of them, by local then remote end
	More   int         // Total - len(All)
	API    string
}

type pageCount struct {
	State string
	N     int
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
	d := pageData{Total: len(all), API: p.api}
	counts := map[tcp.State]int{}
	for _, c := range all {
		counts[c.State]++
	}
	for _, st := range slices.Sorted(maps.Keys(counts)) {
		d.Counts = append(d.Counts, pageCount{State: st.String(), N: counts[st]})
	}
	if c, ok := r.Context().Value(connKey{}).(*stack.TCPConn); ok {
		id := c.Tuple()
		for i := range all {
			if all[i].Tuple == id {
				ci := all[i] // a copy: all is sorted below
				d.Conn = &ci
				break
			}
		}
		if d.Conn == nil {
			d.Conn = &stack.ConnInfo{Tuple: id, State: c.State(), Info: c.Info()}
		}
	}
	slices.SortFunc(all, func(a, b stack.ConnInfo) int {
		if c := a.Tuple.Local.Compare(b.Tuple.Local); c != 0 {
			return c
		}
		return a.Tuple.Remote.Compare(b.Tuple.Remote)
	})
	if len(all) > p.rows {
		all = all[:p.rows]
	}
	d.More = d.Total - len(all)
	for _, c := range all {
		d.All = append(d.All, pageRow{
			Local: endpoint(c.Tuple.Local), Remote: endpoint(c.Tuple.Remote),
			State: c.State.String(), Age: c.Age.Round(time.Millisecond),
		})
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

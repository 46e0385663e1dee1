package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/proxy"

	"github.com/synack/synack/stack"
)

func init() {
	register(&command{
		name:    "forward",
		summary: "accept TCP to any destination on a TUN device and relay it through the host's sockets",
		run:     runForward,
	})
}

const (
	// defaultForwardConns is --max-conns's default: each relay holds two
	// copy buffers (2 x 32 KiB) and a stack connection (up to twice
	// --buffer), so 1024 of them stay within a few hundred MiB.
	defaultForwardConns = 1024
	// defaultForwardBuffer is each forwarded connection's send and
	// receive buffer in the stack, as serve's default.
	defaultForwardBuffer = defaultServeBuffer
)

func runForward(args []string) int {
	fs := flag.NewFlagSet("synack forward", flag.ContinueOnError)
	tf := addTunFlags(fs)
	routes := fs.String("route", "", "comma-separated `CIDR`s the kernel routes into the TUN device, e.g. 0.0.0.0/0 (with --out-netns or --out-iface)")
	via := fs.String("via", "", "relay through a SOCKS5 proxy, `socks5://[USER:PASS@]HOST:PORT`, dialed as the destinations would be")
	outNetns := fs.String("out-netns", "", "dial destinations (or the proxy) from inside the network namespace `NAME` (/run/netns/NAME, or a path)")
	outIface := fs.String("out-iface", "", "dial destinations (or the proxy) bound to interface `NAME` (SO_BINDTODEVICE)")
	maxConns := fs.Int("max-conns", defaultForwardConns, "relay at most `N` connections at once; beyond, new ones wait in the accept queue, then their SYNs are dropped")
	maxInFlight := fs.Int("max-in-flight", stack.DefaultMaxInFlight, "bound on handshakes in flight (`N`); beyond, SYNs are answered with SYN cookies")
	dialTimeout := fs.Duration("dial-timeout", 10*time.Second, "give up connecting to a destination after `D`; the client then gets a RST")
	buffer := fs.Int("buffer", defaultForwardBuffer, "each forwarded connection's send and receive buffer in the stack, in `bytes`")
	udpTimeout := fs.Duration("udp-timeout", 60*time.Second, "relay UDP too, ending a flow (client and destination) after `D` without a datagram; 0: TCP only. Not with --via")
	maxFlows := fs.Int("max-udp-flows", defaultUDPFlows, "relay at most `N` UDP flows at once; datagrams of new ones beyond are dropped")
	verbose := fs.Bool("v", false, "print a line per connection (and UDP flow) relayed")
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintln(w, "usage: synack forward [--tun NAME --host-addr CIDR --stack-addr IP] [--route CIDR] [--via socks5://HOST:PORT] [--out-netns NAME | --out-iface NAME]")
		fmt.Fprintln(w, "\nCreates a TUN interface and accepts every TCP connection the kernel routes into it,")
		fmt.Fprintln(w, "whatever its destination, on the synack stack; then connects to that destination")
		fmt.Fprintln(w, "with the host's own sockets (or through a SOCKS5 proxy) and relays both ways:")
		fmt.Fprintln(w, "half-close is passed on, a reset on one side resets the other, and a destination")
		fmt.Fprintln(w, "that refuses or does not answer gets the client a reset. Runs until SIGINT or")
		fmt.Fprintln(w, "SIGTERM. Needs root (CAP_NET_ADMIN; CAP_SYS_ADMIN for --out-netns). UDP is relayed")
		fmt.Fprintln(w, "too, one host socket per client and destination, except through --via (SOCKS5's")
		fmt.Fprintln(w, "UDP ASSOCIATE is not supported).")
		fmt.Fprintln(w, "\nThe relay's own connections must not be routed back into the TUN device: dial")
		fmt.Fprintln(w, "from another namespace (--out-netns) or interface (--out-iface), or route only")
		fmt.Fprintln(w, "some prefixes into the TUN. --route with a default route requires one of them.")
		fmt.Fprintln(w, "\nExample, the namespace \"client\" sends all its TCP through synack, which dials from")
		fmt.Fprintln(w, "the host's namespace:")
		fmt.Fprintln(w, "  ip netns exec client synack forward --tun fwd0 --route 0.0.0.0/0 --out-netns /proc/1/ns/net")
		fmt.Fprint(w, "\nflags:\n")
		fs.PrintDefaults()
	}
	if status, done := parseFlags(fs, args); done {
		return status
	}
	bad := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "synack forward: "+format+"\n", a...)
		return 2
	}
	if fs.NArg() > 0 {
		return bad("unexpected argument %q", fs.Arg(0))
	}
	if *outNetns != "" && *outIface != "" {
		return bad("--out-netns and --out-iface: give one of them")
	}
	if *maxConns < 1 {
		return bad("--max-conns %d: at least 1", *maxConns)
	}
	if *maxInFlight < 1 {
		return bad("--max-in-flight %d: at least 1", *maxInFlight)
	}
	if *udpTimeout < 0 {
		return bad("--udp-timeout %v: negative", *udpTimeout)
	}
	if *maxFlows < 1 {
		return bad("--max-udp-flows %d: at least 1", *maxFlows)
	}
	if *dialTimeout <= 0 {
		return bad("--dial-timeout %v: must be positive", *dialTimeout)
	}
	if *buffer < minServeBuffer {
		return bad("--buffer %d: less than %d bytes", *buffer, minServeBuffer)
	}
	var rts []netip.Prefix
	for _, s := range splitList(*routes) {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return bad("--route %q: want a prefix, like 0.0.0.0/0 or 198.51.100.0/24", s)
		}
		if p.Bits() == 0 && *outNetns == "" && *outIface == "" {
			return bad("--route %v would send the relay's own connections back into the TUN device: add --out-netns or --out-iface", p)
		}
		rts = append(rts, p.Masked())
	}
	cfg, err := tf.config()
	if err != nil {
		return bad("%v", err)
	}
	out, err := newOutDialer(*outNetns, *outIface, *via)
	if err != nil {
		return bad("%v", err)
	}
	defer out.close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	cfg.Options.TCP.SendBufferSize = *buffer
	cfg.Options.TCP.ReceiveBufferSize = *buffer
	tn, err := tf.open(cfg)
	if err != nil {
		return setupFailed("forward", err)
	}
	for _, p := range rts {
		if err := tn.Dev.AddRoute(p); err != nil {
			tn.Close()
			fmt.Fprintf(os.Stderr, "synack forward: --route %v: %v\n", p, err)
			return 1
		}
	}
	l, err := tn.Stack.ListenAny(stack.ForwarderOptions{NIC: tn.NIC, MaxInFlight: *maxInFlight})
	if err != nil {
		tn.Close()
		fmt.Fprintf(os.Stderr, "synack forward: %v\n", err)
		return 1
	}
	udpOn := *udpTimeout > 0 && *via == ""
	var ur *udpRelay
	if udpOn {
		uf, err := tn.Stack.ListenUDPAny(stack.ForwarderOptions{NIC: tn.NIC})
		if err != nil {
			l.Close()
			tn.Close()
			fmt.Fprintf(os.Stderr, "synack forward: %v\n", err)
			return 1
		}
		ur = &udpRelay{f: uf, dial: out.directDial, timeout: *udpTimeout, max: *maxFlows, verbose: *verbose, flows: map[udpFlowKey]*udpFlow{}}
		go ur.serve()
	}
	r := &relay{dial: out.dial, dialTimeout: *dialTimeout, slots: make(chan struct{}, *maxConns), verbose: *verbose, conns: map[io.Closer]struct{}{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.serve(l)
	}()
	what := "TCP and UDP"
	if !udpOn {
		what = "TCP"
	}
	fmt.Printf("synack forward: ready on %s: relaying %s to any destination %s\n", tn, what, out)

	<-ctx.Done()
	stop()
	l.Close()
	<-done
	r.shutdown()
	if ur != nil {
		ur.f.Close()
		ur.shutdown()
	}
	if err := tn.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "synack forward: closing: %v\n", err)
		return 1
	}
	return 0
}

// outDialer connects to destinations the way --out-netns, --out-iface
// and --via say.
type outDialer struct {
	nd    net.Dialer
	ns    *netnsDialer // --out-netns; nil: this namespace
	iface string
	via   *url.URL
}

func newOutDialer(netnsName, iface, via string) (*outDialer, error) {
	o := &outDialer{iface: iface, nd: net.Dialer{KeepAlive: 15 * time.Second}}
	if iface != "" {
		o.nd.Control = bindToDevice(iface)
	}
	if via != "" {
		u, err := url.Parse(via)
		if err != nil || (u.Scheme != "socks5" && u.Scheme != "socks5h") || u.Host == "" {
			return nil, fmt.Errorf("--via %q: want socks5://[USER:PASS@]HOST:PORT", via)
		}
		if _, err := proxy.FromURL(u, proxy.Direct); err != nil {
			return nil, fmt.Errorf("--via %q: %w", via, err)
		}
		o.via = u
	}
	if netnsName != "" {
		ns, err := openNetns(netnsName, &o.nd)
		if err != nil {
			return nil, fmt.Errorf("--out-netns %s: %w", netnsName, err)
		}
		o.ns = ns
	}
	return o, nil
}

func (o *outDialer) close() {
	if o.ns != nil {
		o.ns.close()
	}
}

// String says where connections go, for the ready line.
func (o *outDialer) String() string {
	var parts []string
	if o.via != nil {
		parts = append(parts, "through SOCKS5 proxy "+o.via.Host)
	}
	switch {
	case o.ns != nil:
		parts = append(parts, "from network namespace "+o.ns.name)
	case o.iface != "":
		parts = append(parts, "from interface "+o.iface)
	default:
		parts = append(parts, "from this network namespace")
	}
	return strings.Join(parts, " ")
}

// relay accepts the forwarder's connections and relays each to its
// destination.
type relay struct {
	// dial connects to a destination ("ip:port") and returns the
	// kernel's connection (outDialer.dial).
	dial        func(ctx context.Context, dst string) (*net.TCPConn, error)
	dialTimeout time.Duration
	slots       chan struct{} // --max-conns
	verbose     bool

	mu     sync.Mutex
	closed bool
	conns  map[io.Closer]struct{}
	wg     sync.WaitGroup
}

// serve accepts until l is closed, taking a slot before each Accept so
// that at most --max-conns relays run: the rest wait in the stack's
// accept queue, and beyond it their SYNs are dropped (the client retries).
func (r *relay) serve(l *stack.Listener) {
	for {
		r.slots <- struct{}{}
		c, err := l.AcceptTCP()
		if err != nil {
			<-r.slots
			if !isClosed(err) {
				fmt.Fprintf(os.Stderr, "synack forward: accept: %v\n", err)
			}
			return
		}
		c.SetKeepAliveConfig(serveKeepAlive)
		if !r.track(c) {
			c.SetLinger(0)
			c.Close()
			<-r.slots
			return
		}
		go func() {
			defer func() { <-r.slots }()
			defer r.untrack(c)
			r.handle(c)
		}()
	}
}

func (r *relay) track(c io.Closer) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.conns[c] = struct{}{}
	r.wg.Add(1)
	return true
}

func (r *relay) untrack(c io.Closer) {
	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
	r.wg.Done()
}

// handle connects to c's original destination and copies both ways.
func (r *relay) handle(c *stack.TCPConn) {
	id := c.Tuple()
	dst := id.Local
	ctx, cancel := context.WithTimeout(context.Background(), r.dialTimeout)
	up, err := r.dial(ctx, dst.String())
	cancel()
	if err != nil {
		// The destination refused, was unreachable or did not answer:
		// the client gets a reset, as it would have had from a refusing
		// destination (the forwarder completed the handshake first).
		if r.verbose {
			fmt.Fprintf(os.Stderr, "synack forward: %v -> %v: %v\n", id.Remote, dst, err)
		}
		c.SetLinger(0)
		c.Close()
		return
	}
	if !r.track(up) {
		up.SetLinger(0)
		up.Close()
		c.SetLinger(0)
		c.Close()
		return
	}
	defer r.untrack(up)
	if r.verbose {
		fmt.Fprintf(os.Stderr, "synack forward: %v -> %v: relaying from %v\n", id.Remote, dst, up.LocalAddr())
	}
	start := time.Now()
	var wg sync.WaitGroup
	var toUp, toClient int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		toUp = pipe(up, c)
	}()
	toClient = pipe(c, up)
	wg.Wait()
	c.Close()
	up.Close()
	if r.verbose {
		fmt.Fprintf(os.Stderr, "synack forward: %v -> %v: done, %d bytes up, %d down, %v\n", id.Remote, dst, toUp, toClient, time.Since(start).Round(time.Millisecond))
	}
}

// conn is what pipe needs of either side: both *stack.TCPConn and
// *net.TCPConn have it.
type conn interface {
	io.ReadWriteCloser
	CloseWrite() error
	CloseRead() error
	SetLinger(sec int) error
}

// pipe copies from src to dst until src ends. At src's FIN it sends a FIN
// on dst (CloseWrite), so half-close goes through. If src was reset, or
// dst fails, it resets both (SetLinger(0) then Close: RST), which is how
// a reset on one side reaches the other. It returns the bytes copied.
func pipe(dst, src conn) int64 {
	n, err := io.Copy(dst, src)
	if err == nil {
		dst.CloseWrite()
		return n
	}
	if errors.Is(err, net.ErrClosed) {
		return n // the other direction, or shutdown, closed it
	}
	dst.SetLinger(0)
	dst.Close()
	src.SetLinger(0)
	src.Close()
	return n
}

// dial connects to dst and returns the kernel's TCP connection to it (to
// the proxy, past its handshake, with --via).
func (o *outDialer) dial(ctx context.Context, dst string) (*net.TCPConn, error) {
	if o.via == nil {
		c, err := o.directDial(ctx, "tcp", dst)
		if err != nil {
			return nil, err
		}
		return c.(*net.TCPConn), nil
	}
	// x/net/proxy hands back its own net.Conn, which cannot half-close;
	// past the SOCKS5 handshake it only passes bytes through, so the
	// relay uses the kernel connection it was built on, kept here.
	var raw *net.TCPConn
	fwd := dialerFunc(func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := o.directDial(ctx, network, addr)
		if err == nil {
			raw = c.(*net.TCPConn)
		}
		return c, err
	})
	pd, err := proxy.FromURL(o.via, fwd)
	if err != nil {
		return nil, err
	}
	c, err := pd.(proxy.ContextDialer).DialContext(ctx, "tcp", dst)
	if err != nil {
		if raw != nil {
			raw.Close()
		}
		return nil, err
	}
	_ = c // the same bytes as raw: no buffering past the handshake
	return raw, nil
}

func (o *outDialer) directDial(ctx context.Context, network, addr string) (net.Conn, error) {
	if o.ns != nil {
		return o.ns.DialContext(ctx, network, addr)
	}
	return o.nd.DialContext(ctx, network, addr)
}

// dialerFunc is a proxy.Dialer and proxy.ContextDialer made of a function.
type dialerFunc func(ctx context.Context, network, addr string) (net.Conn, error)

func (f dialerFunc) Dial(network, addr string) (net.Conn, error) {
	return f(context.Background(), network, addr)
}

func (f dialerFunc) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return f(ctx, network, addr)
}

// shutdown closes every connection being relayed and waits (at most 5 s)
// for the relays to end.
func (r *relay) shutdown() {
	r.mu.Lock()
	r.closed = true
	cs := make([]io.Closer, 0, len(r.conns))
	for c := range r.conns {
		cs = append(cs, c)
	}
	r.mu.Unlock()
	for _, c := range cs {
		c.Close()
	}
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}

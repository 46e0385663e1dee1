//go:build linux

package interop

import (
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/synack/synack/link"
	"github.com/synack/synack/link/tun"
	"github.com/synack/synack/link/tun/nstest"
	"github.com/synack/synack/stack"
	"github.com/synack/synack/tcp"
	"github.com/synack/synack/tunstack"
)

// family is one address family's addresses inside a test's namespace.
type family struct {
	name  string
	host  netip.Prefix // the kernel's side of the TUN
	stack netip.Addr   // synack's address
}

var families = []family{
	{"IPv4", netip.MustParsePrefix("198.18.0.1/24"), netip.MustParseAddr("198.18.0.2")},
	{"IPv6", netip.MustParsePrefix("fd00:5afe::1/64"), netip.MustParseAddr("fd00:5afe::2")},
}

func (f family) kernelAddr(port uint16) netip.AddrPort {
	return netip.AddrPortFrom(f.host.Addr(), port)
}

func (f family) stackAddr(port uint16) netip.AddrPort {
	return netip.AddrPortFrom(f.stack, port)
}

// network is "tcp4" or "tcp6".
func (f family) network() string {
	if f.stack.Is4() {
		return "tcp4"
	}
	return "tcp6"
}

// env is one test's world: a namespace, a TUN device in it with the
// kernel's address configured, and a synack stack on the device.
type env struct {
	t   testing.TB
	fam family
	ns  *nstest.NS
	net *tunstack.Net
	dev *tun.Device  // net.Dev
	s   *stack.Stack // net.Stack

	events   <-chan tcp.Transition
	pcapPath string
	pcapFile *os.File
	closed   bool
}

type envOption func(*envConfig)

type envConfig struct {
	pcap   bool
	wrap   func(link.Endpoint) link.Endpoint
	events bool
	opts   stack.Options
	tun    func(*tunstack.Config)
	prefix string // the namespace's name prefix; "": nstest.Prefix
}

// withTun changes the device's configuration (offloads, queues, name).
// Several compose, in order.
func withTun(f func(*tunstack.Config)) envOption {
	return func(c *envConfig) {
		prev := c.tun
		c.tun = func(tc *tunstack.Config) {
			if prev != nil {
				prev(tc)
			}
			f(tc)
		}
	}
}

// withNSPrefix names the namespace with prefix instead of nstest.Prefix
// (a test whose brief gives it a prefix of its own).
func withNSPrefix(prefix string) envOption { return func(c *envConfig) { c.prefix = prefix } }

// withPcap records the run in a pcap file (env.pcapPath).
func withPcap() envOption { return func(c *envConfig) { c.pcap = true } }

// withEvents subscribes to the stack's events before any connection.
func withEvents() envOption { return func(c *envConfig) { c.events = true } }

// withLink wraps the device before the stack gets it.
func withLink(w func(link.Endpoint) link.Endpoint) envOption {
	return func(c *envConfig) { c.wrap = w }
}

// interopUring, when false, runs every test's device with a read(2) or
// write(2) per packet (tun.Options.NoUring) instead of batches through
// io_uring.
var interopUring = flag.Bool("interop.uring", true, "batch the TUN's reads and writes through io_uring in every test (false: tun.Options.NoUring)")

// interopNSPrefix names every test's namespace with a prefix of its own
// (a helper's runs, told apart from the others' on a shared machine).
var interopNSPrefix = flag.String("interop.nsprefix", "", "the prefix of every test's network namespace (default: nstest.Prefix)")

// interopPcap records every test's link (kept when the test fails).
var interopPcap = flag.Bool("interop.pcap", false, "record every test's link in a pcap file, kept when the test fails")

func newEnv(t testing.TB, fam family, opts ...envOption) *env {
	t.Helper()
	var cfg envConfig
	cfg.pcap = *interopPcap
	for _, o := range opts {
		o(&cfg)
	}
	e := &env{t: t, fam: fam}
	if cfg.prefix == "" {
		cfg.prefix = *interopNSPrefix
	}
	if cfg.prefix != "" {
		e.ns = nstest.NewPrefixed(t, cfg.prefix)
	} else {
		e.ns = nstest.New(t)
	}
	tc := tunstack.Config{
		Name:    "synack0",
		MTU:     1500,
		Addrs:   []tunstack.Pair{{Host: fam.host, Stack: fam.stack}},
		Link:    cfg.wrap,
		Options: cfg.opts,
		NoUring: !*interopUring,
	}
	if cfg.tun != nil {
		cfg.tun(&tc)
	}
	if cfg.pcap {
		// Kept when the test fails, for a look with tshark or Wireshark.
		dir, err := os.MkdirTemp("", "synack-interop-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("capture kept: %s", e.pcapPath)
				return
			}
			os.RemoveAll(dir)
		})
		e.pcapPath = filepath.Join(dir, "interop.pcap")
		if e.pcapFile, err = os.Create(e.pcapPath); err != nil {
			t.Fatal(err)
		}
		tc.Pcap = e.pcapFile
	}
	var err error
	e.ns.Do(func() { e.net, err = tunstack.New(tc) })
	if err != nil {
		t.Fatalf("tunstack.New: %v", err)
	}
	e.dev, e.s = e.net.Dev, e.net.Stack
	if cfg.events {
		// Nothing listens or dials yet, so no connection has had an event.
		e.events, _ = e.s.Subscribe(1 << 16)
	}
	t.Cleanup(e.close)
	return e
}

// close tears down the stack and the device and flushes the capture. It
// runs in Cleanup; tests that read the capture call it first.
func (e *env) close() {
	if e.closed {
		return
	}
	e.closed = true
	done := make(chan error, 1)
	go func() { done <- e.net.Close() }()
	select {
	case err := <-done:
		if err != nil {
			e.t.Errorf("closing the stack on its TUN device: %v", err)
		}
	case <-time.After(10 * time.Second):
		e.t.Errorf("TUN reader still running 10s after Close")
	}
	if e.pcapFile != nil {
		if err := e.pcapFile.Close(); err != nil {
			e.t.Errorf("writing pcap: %v", err)
		}
		e.pcapFile = nil
	}
}

// kernelListen listens with the kernel's TCP on the host address.
func (e *env) kernelListen() net.Listener {
	e.t.Helper()
	l, err := e.ns.Listen(e.fam.network(), e.fam.kernelAddr(0).String())
	if err != nil {
		e.t.Fatalf("kernel Listen: %v", err)
	}
	e.t.Cleanup(func() { l.Close() })
	return l
}

// kernelDial connects from the kernel's TCP.
func (e *env) kernelDial(ctx context.Context, to netip.AddrPort) (*net.TCPConn, error) {
	c, err := e.ns.DialContext(ctx, e.fam.network(), to.String())
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// stackListen listens on synack's address.
func (e *env) stackListen(port uint16) *stack.Listener {
	e.t.Helper()
	l, err := e.s.ListenTCP(e.fam.stackAddr(port), 0)
	if err != nil {
		e.t.Fatalf("synack ListenTCP: %v", err)
	}
	e.t.Cleanup(func() { l.Close() })
	return l
}

// waitEvent reads the event stream until the connection with tuple id (as
// synack sees it) changes to state `to`.
func (e *env) waitEvent(id tcp.Tuple, to tcp.State, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var seen []string
	for {
		select {
		case ev, ok := <-e.events:
			if !ok {
				return fmt.Errorf("event stream closed waiting for %v to enter %v", id, to)
			}
			if ev.Tuple != id {
				continue
			}
			if ev.To == to {
				return nil
			}
			seen = append(seen, fmt.Sprintf("%v->%v (%s)", ev.From, ev.To, ev.Cause))
		case <-deadline.C:
			return fmt.Errorf("%v did not enter %v within %v; its transitions meanwhile: %v", id, to, timeout, seen)
		}
	}
}

// stream is a deterministic pseudo-random byte source of a given length.
func stream(seed uint64, n int64) io.Reader {
	var key [32]byte
	key[0] = byte(seed)
	key[1] = byte(seed >> 8)
	return io.LimitReader(rand.NewChaCha8(key), n)
}

// hashedCopy copies src to dst, returning the byte count and the SHA-256
// of what went through.
func hashedCopy(dst io.Writer, src io.Reader) (int64, [32]byte, error) {
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(dst, h), src)
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return n, sum, err
}

// result is what one side of a transfer saw.
type result struct {
	n   int64
	sum [32]byte
	err error
}

// halfCloser is a connection with CloseWrite: *net.TCPConn and
// *stack.TCPConn both are.
type halfCloser interface {
	net.Conn
	CloseWrite() error
}

// duplex sends n bytes of stream(seed) on c and half-closes, while reading
// everything c receives until EOF. It returns what was sent and received.
func duplex(c halfCloser, seed uint64, n int64) (sent, recvd result) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sent.n, sent.sum, sent.err = hashedCopy(c, stream(seed, n))
		if sent.err == nil {
			sent.err = c.CloseWrite()
		}
	}()
	recvd.n, recvd.sum, recvd.err = hashedCopy(io.Discard, c)
	wg.Wait()
	return sent, recvd
}

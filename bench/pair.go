// Package bench measures synack against gVisor's netstack, each as a pair of
// stacks in one process joined by an in-memory link of the same MTU, through
// the same net.Conn / net.Listener code. See cmd/vs for the side-by-side table
// and bench_test.go for the same shapes as Go benchmarks.
//
// The method follows ../shared/BENCH-METHOD.md: one connection, 1 GiB one way
// for bulk (a timed run where 1 GiB takes under half a second); connect,
// 1-byte echo, close for connection rate; 1-byte ping-pong for latency; idle
// established pairs for memory.
package bench

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
)

// Impl names a stack and link shape under test.
type Impl string

const (
	Synack     Impl = "synack"      // synack over link/memlink (a goroutine per direction)
	GVisorChan Impl = "gvisor"      // gVisor over link/channel, a goroutine per direction shuttling packets
	GVisorPipe Impl = "gvisor-pipe" // gVisor over link/pipe: the sender's goroutine delivers
)

// DefaultPort is the server's listening port in every pair.
const DefaultPort = 5001

// AllImpls is every implementation, in table order.
var AllImpls = []Impl{Synack, GVisorChan, GVisorPipe}

// Pair is two stacks joined by one link: a server stack listening on a port
// and a client stack dialing it.
type Pair interface {
	// Listen listens on the server stack.
	Listen() (net.Listener, error)
	// Dial connects from the client stack to the server's listening port.
	Dial(ctx context.Context) (net.Conn, error)
	// ListenPort and DialPort are Listen and Dial on another port.
	ListenPort(port uint16) (net.Listener, error)
	DialPort(ctx context.Context, port uint16) (net.Conn, error)
	// TimeWait is how many of the client stack's connections are in
	// TIME-WAIT, or -1 if the stack does not say.
	TimeWait() int
	// Close tears both stacks down; blocked calls should return.
	Close()
}

// SegmentCounter is a Pair that counts the TCP segments its server stack
// received and sent. In a one-way bulk transfer to the server, what it
// sent is nearly all ACKs: the bulk shapes report both, to compare how
// often each stack acknowledges.
type SegmentCounter interface {
	ServerSegments() (in, out uint64)
}

// NewPair builds a pair of the given implementation with links of the MTU.
// Of cfg only the stack knobs matter (SynackMSL).
func NewPair(impl Impl, mtu int, cfg Config) (Pair, error) {
	switch impl {
	case Synack:
		return newSynackPair(mtu, cfg.SynackMSL, cfg.RxChecksumOffload)
	case GVisorChan:
		return newGVisorPair(mtu, false, cfg.RxChecksumOffload)
	case GVisorPipe:
		return newGVisorPair(mtu, true, false) // link/pipe offers no offload
	}
	return nil, fmt.Errorf("unknown implementation %q", impl)
}

// ParseImpls parses a comma-separated list of implementations.
func ParseImpls(s string) ([]Impl, error) {
	if s == "" || s == "all" {
		return AllImpls, nil
	}
	var out []Impl
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		ok := false
		for _, i := range AllImpls {
			if string(i) == f {
				out, ok = append(out, i), true
			}
		}
		if !ok {
			return nil, fmt.Errorf("unknown implementation %q (have %v)", f, AllImpls)
		}
	}
	return out, nil
}

// tracker remembers open conns and listeners so a watchdog can close them all
// when a shape stalls.
type tracker struct {
	mu     sync.Mutex
	closed bool
	cs     map[any]func()
}

func (t *tracker) add(key any, close func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		close()
		return
	}
	if t.cs == nil {
		t.cs = make(map[any]func())
	}
	t.cs[key] = close
}

func (t *tracker) remove(key any) {
	t.mu.Lock()
	delete(t.cs, key)
	t.mu.Unlock()
}

func (t *tracker) closeAll() {
	t.mu.Lock()
	t.closed = true
	cs := t.cs
	t.cs = nil
	t.mu.Unlock()
	for _, c := range cs {
		c()
	}
}

func sortFloats(v []float64) []float64 {
	w := append([]float64(nil), v...)
	sort.Float64s(w)
	return w
}

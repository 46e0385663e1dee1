package pathmatrix

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/synack/synack/bench"
	"github.com/synack/synack/tcp"
)

// Impl names what runs at the two ends of a path.
type Impl string

const (
	Synack Impl = "synack" // synack to synack, in process, RACK-TLP (its default)
	// SynackDupThresh is synack to synack finding losses by RFC 6675's
	// duplicate threshold alone (tcp.LossDupThresh), for comparison.
	SynackDupThresh Impl = "synack-dupthresh"
	// SynackBBR is synack to synack with BBR (tcp "bbr", paced) instead of
	// its default CUBIC.
	SynackBBR Impl = "synack-bbr"
	// SynackNewReno is synack to synack with NewReno (tcp "newreno")
	// instead of CUBIC, for the loss-path comparisons.
	SynackNewReno Impl = "synack-newreno"
	GVisorReno    Impl = "gvisor-reno"  // gVisor to gVisor, in process, its default Reno
	GVisorCubic   Impl = "gvisor-cubic" // the same with CUBIC
	LinuxCubic    Impl = "linux-cubic"  // kernel to kernel across two namespaces and the relay
	LinuxBBR      Impl = "linux-bbr"    // the same with BBR
	SynackLinux   Impl = "synack>linux" // synack sends, the kernel receives
	LinuxSynack   Impl = "linux>synack" // the kernel (CUBIC) sends, synack receives
)

// Impls is every implementation, in table order.
var Impls = []Impl{Synack, SynackDupThresh, SynackBBR, SynackNewReno, GVisorReno, GVisorCubic, LinuxCubic, LinuxBBR, SynackLinux, LinuxSynack}

// NeedsRoot says whether the implementation needs namespaces and TUN
// devices (root, Linux).
func (i Impl) NeedsRoot() bool {
	switch i {
	case LinuxCubic, LinuxBBR, SynackLinux, LinuxSynack:
		return true
	}
	return false
}

// ParseImpls parses a comma-separated list ("" or "all": every one).
func ParseImpls(s string) ([]Impl, error) {
	if s == "" || s == "all" {
		return Impls, nil
	}
	var out []Impl
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		found := false
		for _, i := range Impls {
			if string(i) == f {
				out, found = append(out, i), true
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown implementation %q (have %v)", f, Impls)
		}
	}
	return out, nil
}

// Result is one bulk transfer.
type Result struct {
	Size     int64         // bytes the sender was to send
	Done     bool          // the receiver saw all of them and the FIN in time
	Elapsed  time.Duration // from the start of the connect to the receiver's EOF (Done), or the limit
	Received int64         // bytes the receiver got (all of Size when Done)
	// Retrans is the sender's retransmitted segments; Spurious the D-SACKs
	// it received (RFC 2883: evidence of needless retransmissions, or of a
	// link that duplicates), -1 where the stack does not say or its peer
	// sends none. Both are read from the sending connection or stack.
	Retrans, Spurious int64
	// SpuriousWhat says what Spurious counts for this stack.
	SpuriousWhat string
	// Recovery is what a synack sender says of its loss recovery; nil for
	// the other stacks.
	Recovery *Recovery
	// OtherLoad is the cores other processes used during the transfer
	// (-1: unknown): the machine is shared, and above a few tenths the
	// figures are disturbed.
	OtherLoad float64
}

// Goodput is the payload rate in bits per second, 0 if not done.
func (r Result) Goodput() float64 {
	if !r.Done || r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Size) * 8 / r.Elapsed.Seconds()
}

// Recovery is a synack sender's own account of its loss recovery
// (tcp.Stats).
type Recovery struct {
	// SpuriousEpisodes is the fast recoveries and retransmission timeouts
	// the sender found spurious — by Eifel (RFC 3522, 4015) or because
	// D-SACKs covered every retransmission of the episode (RFC 3708) —
	// and Undos those of them whose window reduction it undid. Episodes,
	// not segments: one spurious timeout may have resent many.
	SpuriousEpisodes, Undos uint64
	RACKLosses              uint64 // segments RACK marked lost (RFC 8985 section 6.2)
	TLPProbes               uint64 // Tail Loss Probes sent (RFC 8985 section 7.3)
}

// senderStats are what a world can say about its sending side.
type senderStats struct {
	retrans, spurious int64
	what              string
	recovery          *Recovery
}

// world is a path with a stack at each end, set up for one transfer: the
// receiver listens, the sender dials.
type world struct {
	listen func() (net.Listener, error)
	dial   func(ctx context.Context) (net.Conn, error)
	// stats reads the sender's counters; c is the dialed conn.
	stats func(c net.Conn) senderStats
	// noDSACK, if set, says why the receiver never sends a D-SACK
	// (RFC 2883): then the sender cannot tell a spurious retransmission,
	// and a count of zero would claim what nobody measured.
	noDSACK string
	close   func()
}

// Ports and addresses inside every path (198.18.0.0/15 is for benchmarks,
// RFC 2544).
var (
	senderAddr   = netip.MustParsePrefix("198.18.0.1/24")
	receiverAddr = netip.MustParsePrefix("198.18.0.2/24")
)

const port = 5201

// NSPrefix starts the name of every network namespace this package makes;
// the process id follows, so namespaces left by a killed run are found and
// removed by the next (RemoveStale). Other tests on the machine use other
// prefixes (cmd/pathmatrix's -ns-prefix sets it for a run beside others).
var NSPrefix = "pm-"

// hostPort is the receiver's listening address in a stack's own form.
func hostPort(p netip.Prefix) string { return netip.AddrPortFrom(p.Addr(), port).String() }

// newWorld builds the two ends of impl on the cell's path.
func newWorld(impl Impl, c Cell, seed int64) (*world, error) {
	switch impl {
	case Synack:
		return synackWorld(c, seed, "", "")
	case SynackDupThresh:
		return synackWorld(c, seed, tcp.LossDupThresh, "")
	case SynackBBR:
		return synackWorld(c, seed, "", "bbr")
	case SynackNewReno:
		return synackWorld(c, seed, "", "newreno")
	case GVisorReno:
		return gvisorWorld(c, seed, "reno")
	case GVisorCubic:
		return gvisorWorld(c, seed, "cubic")
	case LinuxCubic:
		return linuxWorld(c, seed, "cubic")
	case LinuxBBR:
		return linuxWorld(c, seed, "bbr")
	case SynackLinux:
		return mixedWorld(c, seed, true)
	case LinuxSynack:
		return mixedWorld(c, seed, false)
	}
	return nil, fmt.Errorf("unknown implementation %q", impl)
}

// ErrCorrupt says the receiver's bytes differ from the sender's.
var ErrCorrupt = errors.New("received bytes differ from those sent")

// Run makes a fresh path of the cell with impl at its ends, sends size
// bytes one way (a seeded pseudo-random stream) and checks their sha256 at
// the receiver. It never takes much more than limit: a transfer not done by
// then is closed and reported with Done false. An error means the run
// could not be set up or the bytes arrived wrong.
func Run(impl Impl, c Cell, size, seed int64, limit time.Duration) (Result, error) {
	w, err := newWorld(impl, c, seed)
	if err != nil {
		return Result{}, err
	}
	defer w.close()
	return transfer(w, size, seed, limit)
}

// payload returns the bytes sent: 1 MiB of seeded randomness, repeated.
func payload(seed int64) []byte {
	b := make([]byte, 1<<20)
	r := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
	for i := 0; i < len(b); i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// expectedSum is the sha256 of size bytes of the payload.
func expectedSum(p []byte, size int64) [32]byte {
	h := sha256.New()
	for n := int64(0); n < size; n += int64(len(p)) {
		h.Write(p[:min(int64(len(p)), size-n)])
	}
	var s [32]byte
	h.Sum(s[:0])
	return s
}

// counter counts the bytes written through it.
type counter struct{ n *atomic.Int64 }

func (c counter) Write(p []byte) (int, error) { c.n.Add(int64(len(p))); return len(p), nil }

// closers closes what a transfer opened, once, from whichever side gets
// there first (the limit or the end).
type closers struct {
	mu     sync.Mutex
	closed bool
	fs     []func()
}

func (c *closers) add(f func()) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		f()
		return
	}
	c.fs = append(c.fs, f)
	c.mu.Unlock()
}

func (c *closers) closeAll() {
	c.mu.Lock()
	c.closed = true
	fs := c.fs
	c.fs = nil
	c.mu.Unlock()
	for _, f := range fs {
		f()
	}
}

func transfer(w *world, size, seed int64, limit time.Duration) (res Result, err error) {
	res = Result{Size: size, Retrans: -1, Spurious: -1}
	load := bench.StartLoadMeter()
	defer func() { res.OtherLoad = load.Other() }()
	p := payload(seed)
	want := expectedSum(p, size)

	ln, err := w.listen()
	if err != nil {
		return res, fmt.Errorf("listen: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var cl closers
	defer cl.closeAll()
	cl.add(func() { ln.Close() })
	stop := context.AfterFunc(ctx, cl.closeAll)
	defer stop()

	var received atomic.Int64
	type rx struct {
		sum [32]byte
		at  time.Time
		err error
	}
	got := make(chan rx, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- rx{err: fmt.Errorf("accept: %w", err)}
			return
		}
		cl.add(func() { c.Close() })
		h := sha256.New()
		_, err = io.Copy(io.MultiWriter(h, counter{&received}), c)
		r := rx{at: time.Now(), err: err}
		h.Sum(r.sum[:0])
		got <- r
	}()

	start := time.Now()
	c, err := w.dial(ctx)
	if err != nil {
		if ctx.Err() != nil {
			res.Elapsed = limit
			return res, nil // the handshake did not finish in time
		}
		return res, fmt.Errorf("dial: %w", err)
	}
	cl.add(func() { c.Close() })
	sendErr := make(chan error, 1)
	go func() {
		for n := int64(0); n < size; n += int64(len(p)) {
			if _, err := c.Write(p[:min(int64(len(p)), size-n)]); err != nil {
				sendErr <- err
				return
			}
		}
		cw, ok := c.(interface{ CloseWrite() error })
		if !ok {
			sendErr <- fmt.Errorf("%T has no CloseWrite", c)
			return
		}
		sendErr <- cw.CloseWrite()
	}()

	var r rx
	select {
	case r = <-got:
	case <-ctx.Done():
		r.err = ctx.Err()
	}
	res.Received = received.Load()
	if r.err != nil {
		if ctx.Err() != nil {
			// Out of time (the receiver's error is then the Close).
			res.Elapsed = limit
			return res, nil
		}
		return res, fmt.Errorf("receive after %d bytes: %w", res.Received, r.err)
	}
	if err := <-sendErr; err != nil {
		return res, fmt.Errorf("send: %w", err)
	}
	res.Elapsed = r.at.Sub(start)
	if res.Received != size || r.sum != want {
		return res, fmt.Errorf("%w: %d of %d bytes", ErrCorrupt, res.Received, size)
	}
	res.Done = true
	st := w.stats(c)
	res.Retrans, res.Spurious, res.SpuriousWhat, res.Recovery = st.retrans, st.spurious, st.what, st.recovery
	if w.noDSACK != "" {
		res.Spurious, res.SpuriousWhat = -1, w.noDSACK
	}
	return res, nil
}

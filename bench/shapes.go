package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Config sizes the loads. The zero value is filled by Defaults.
type Config struct {
	Duration  time.Duration // length of timed shapes (connections/s, ping-pong, timed bulk)
	BulkBytes int64         // bytes of a bulk transfer (1 GiB)
	// BulkMinTime: a bulk transfer that takes less than this is repeated as a
	// timed run of Duration (BENCH-METHOD: 5 s runs where 1 GiB takes under 0.5 s).
	BulkMinTime time.Duration
	MemConns    int           // idle established pairs for the memory shape
	TWConns     int           // connections left in TIME-WAIT for the timewait shape
	Parallel    int           // concurrent connectors for the 16-way connection rate
	Stall       time.Duration // a shape making no progress this long fails
	Limit       time.Duration // a shape running longer than this fails
	ChunkSize   int           // write and read size for bulk
	// SynackMSL, if set, replaces synack's MSL (30 s; TIME-WAIT is 2*MSL).
	// Both stacks reuse ports in TIME-WAIT for new outgoing connections
	// (synack: stack.Options.TimeWaitReuse, see newSynackPair), so the
	// default MSL sustains any connection rate.
	SynackMSL time.Duration
	// RxChecksumOffload has the in-memory link vouch for the packets it
	// delivers, on both implementations alike: synack's memlink with
	// Config.ChecksumOffload (the stack then skips TCP checksum
	// verification), gVisor's channel endpoints with
	// CapabilityRXChecksumOffload (its stack then does the same). gVisor's
	// link/pipe endpoint has no capabilities, so gvisor-pipe verifies.
	// Both still compute checksums when sending.
	RxChecksumOffload bool
}

// Defaults returns the BENCH-METHOD.md loads.
func Defaults() Config {
	return Config{
		Duration:    5 * time.Second,
		BulkBytes:   1 << 30,
		BulkMinTime: 500 * time.Millisecond,
		MemConns:    10000,
		TWConns:     100000,
		Parallel:    16,
		Stall:       10 * time.Second,
		Limit:       90 * time.Second,
		ChunkSize:   64 << 10,
	}
}

// Quick returns small loads for a smoke test.
func Quick() Config {
	c := Defaults()
	c.Duration = 500 * time.Millisecond
	c.BulkBytes = 64 << 20
	c.BulkMinTime = 50 * time.Millisecond
	c.MemConns = 1000
	c.TWConns = 5000
	c.Stall = 5 * time.Second
	c.Limit = 30 * time.Second
	return c
}

// Metric is one number a shape reports.
type Metric struct {
	Name        string
	Unit        string
	Value       float64
	LowerBetter bool
}

// Result is one run of one shape on one implementation.
type Result struct {
	Metrics []Metric
	Note    string // e.g. "timed 5s run" or "1 GiB"
	// OtherLoad is the cores other processes used during the measured
	// window (-1: unknown). Above a few tenths the run is disturbed.
	OtherLoad float64
}

// Shape is one measurement.
type Shape struct {
	Name string
	Desc string
	MTU  int
	run  func(e *env) (Result, error)
}

// Shapes lists every measurement in table order.
func Shapes() []Shape {
	return []Shape{
		{"bulk1500", "bulk one way, MTU 1500", 1500, runBulk},
		{"bulk65535", "bulk one way, MTU 65535", 65535, runBulk},
		{"conn-seq", "connect+1B echo+close, sequential", 1500, func(e *env) (Result, error) { return runConnRate(e, 1) }},
		{"conn-16", "connect+1B echo+close, 16 at once", 1500, func(e *env) (Result, error) { return runConnRate(e, e.cfg.Parallel) }},
		{"pingpong", "1-byte ping-pong, one connection", 1500, runPingPong},
		{"mem", "idle established pairs", 1500, runMem},
		{"timewait", "connections left in TIME-WAIT", 1500, runTimeWait},
	}
}

// ShapeNames returns the names of Shapes, for flags.
func ShapeNames() []string {
	var n []string
	for _, s := range Shapes() {
		n = append(n, s.Name)
	}
	return n
}

// env is what a running shape has at hand.
type env struct {
	ctx      context.Context
	pair     Pair
	cfg      Config
	progress atomic.Int64 // anything that moves: bytes, connections, round trips
	phase    atomic.Value // string: what the shape is doing, for failure reports
	tr       tracker
	// otherLoad: the most cores other processes used in a measured window.
	otherLoad float64
}

func (e *env) setPhase(s string) { e.phase.Store(s) }

func (e *env) track(c io.Closer) { e.tr.add(c, func() { c.Close() }) }

func (e *env) untrack(c io.Closer) { e.tr.remove(c) }

// Run runs one shape once on a fresh pair of stacks of impl. It never takes
// much longer than cfg.Limit (+ a few seconds to tear down): a shape that
// stalls for cfg.Stall or overruns cfg.Limit is aborted — its conns and
// stacks closed — and reported as an error saying what it was doing.
func Run(impl Impl, sh Shape, cfg Config) (Result, error) {
	p, err := NewPair(impl, sh.MTU, cfg)
	if err != nil {
		return Result{}, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := &env{ctx: ctx, pair: p, cfg: cfg, otherLoad: -1}
	e.setPhase("start")
	type out struct {
		r   Result
		err error
	}
	done := make(chan out, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				done <- out{err: fmt.Errorf("panic: %v", v)}
			}
		}()
		r, err := sh.run(e)
		done <- out{r, err}
	}()

	start := time.Now()
	last, lastAt := e.progress.Load(), start
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var abort error
	for abort == nil {
		select {
		case o := <-done:
			o.r.OtherLoad = e.otherLoad
			e.tr.closeAll()
			if !closeWithin(p, 20*time.Second) {
				if o.err == nil {
					o.err = errors.New("stack Close did not return within 20s")
				}
			}
			return o.r, o.err
		case now := <-tick.C:
			if v := e.progress.Load(); v != last {
				last, lastAt = v, now
			}
			switch {
			case now.Sub(lastAt) > cfg.Stall:
				abort = fmt.Errorf("stalled: no progress for %v while %s (progress counter %d)", cfg.Stall, e.phase.Load(), last)
			case now.Sub(start) > cfg.Limit:
				abort = fmt.Errorf("overran the %v limit while %s (progress counter %d)", cfg.Limit, e.phase.Load(), last)
			}
		}
	}
	// Abort: close everything and give the shape a moment to notice.
	cancel()
	e.tr.closeAll()
	closed := closeWithin(p, 10*time.Second)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		abort = fmt.Errorf("%w; blocked calls did not return after Close (goroutines leaked)", abort)
	}
	if !closed {
		abort = fmt.Errorf("%w; stack Close did not return", abort)
	}
	return Result{}, abort
}

func closeWithin(p Pair, d time.Duration) bool {
	ch := make(chan struct{})
	go func() { p.Close(); close(ch) }()
	select {
	case <-ch:
		return true
	case <-time.After(d):
		return false
	}
}

// cpuMeter measures process CPU time (user+sys) against wall time, and the
// cores the rest of the machine used meanwhile.
type cpuMeter struct {
	wall time.Time
	cpu  time.Duration
	load loadMeter
	e    *env
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU(e *env) cpuMeter {
	return cpuMeter{wall: time.Now(), cpu: cpuTime(), load: startLoad(), e: e}
}

// stop returns the wall time since start and the cores used over it; it
// records the other processes' load in the env (the worst window wins).
func (m cpuMeter) stop() (wall time.Duration, cores float64) {
	cpu := cpuTime() - m.cpu
	wall = time.Since(m.wall)
	if m.e != nil {
		m.e.otherLoad = max(m.e.otherLoad, m.load.other())
	}
	return wall, cpu.Seconds() / wall.Seconds()
}

// connect listens, dials once and accepts: a connected pair of conns.
func connect(e *env, ln net.Listener) (client, server net.Conn, err error) {
	type acc struct {
		c   net.Conn
		err error
	}
	ch := make(chan acc, 1)
	go func() {
		c, err := ln.Accept()
		ch <- acc{c, err}
	}()
	client, err = e.pair.Dial(e.ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("dial: %w", err)
	}
	e.track(client)
	a := <-ch
	if a.err != nil {
		client.Close()
		return nil, nil, fmt.Errorf("accept: %w", a.err)
	}
	e.track(a.c)
	return client, a.c, nil
}

func listen(e *env) (net.Listener, error) {
	ln, err := e.pair.Listen()
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	e.track(ln)
	return ln, nil
}

// runBulk sends BulkBytes one way on one connection; if that takes under
// BulkMinTime, it sends again for Duration (a timed run) and reports that.
func runBulk(e *env) (Result, error) {
	ln, err := listen(e)
	if err != nil {
		return Result{}, err
	}
	e.setPhase("connecting")
	c, s, err := connect(e, ln)
	if err != nil {
		return Result{}, err
	}
	in0, out0 := serverSegments(e.pair)
	total, wall, cores, err := bulkOnce(e, c, s, e.cfg.BulkBytes, 0)
	if err != nil {
		return Result{}, err
	}
	note := fmt.Sprintf("%d MiB", total>>20)
	if wall < e.cfg.BulkMinTime {
		in0, out0 = serverSegments(e.pair)
		total, wall, cores, err = bulkOnce(e, c, s, 0, e.cfg.Duration)
		if err != nil {
			return Result{}, err
		}
		note = fmt.Sprintf("timed run, %d MiB in %.1fs", total>>20, wall.Seconds())
	}
	if in1, out1 := serverSegments(e.pair); out1 > out0 {
		note += fmt.Sprintf(", receiver got %d segments and sent %d (%.1f per ACK)", in1-in0, out1-out0, float64(in1-in0)/float64(out1-out0))
	}
	return Result{
		Metrics: []Metric{
			{Name: "throughput", Unit: "Gbit/s", Value: float64(total) * 8 / wall.Seconds() / 1e9},
			{Name: "cpu", Unit: "cores", Value: cores, LowerBetter: true},
		},
		Note: note,
	}, nil
}

// serverSegments is what p's server stack received and sent so far, or
// zeros when p does not count them (SegmentCounter).
func serverSegments(p Pair) (in, out uint64) {
	if sc, ok := p.(SegmentCounter); ok {
		return sc.ServerSegments()
	}
	return 0, 0
}

// bulkOnce sends size bytes from c to s or, if size is 0, sends for d. It
// returns the bytes sent and the time until the receiver had them all.
func bulkOnce(e *env, c, s net.Conn, size int64, d time.Duration) (int64, time.Duration, float64, error) {
	// target is the byte count the reader stops at; 0 while a timed writer
	// has not decided yet. A timed writer publishes it, then sends one last
	// byte, so the reader always wakes up to see it.
	var target atomic.Int64
	target.Store(size)
	type rres struct {
		n   int64
		err error
	}
	rd := make(chan rres, 1)
	go func() {
		buf := make([]byte, e.cfg.ChunkSize)
		var n int64
		for {
			if t := target.Load(); t > 0 && n >= t {
				break
			}
			k, err := s.Read(buf)
			n += int64(k)
			e.progress.Add(int64(k))
			if err != nil {
				rd <- rres{n, err}
				return
			}
		}
		rd <- rres{n, nil}
	}()
	buf := make([]byte, e.cfg.ChunkSize)
	for i := range buf {
		buf[i] = byte(i)
	}
	if size > 0 {
		e.setPhase(fmt.Sprintf("sending %d bytes", size))
	} else {
		e.setPhase(fmt.Sprintf("sending for %v", d))
	}
	m := startCPU(e)
	var sent int64
	for size == 0 || sent < size {
		k := int64(len(buf))
		if size > 0 {
			k = min(k, size-sent)
		} else if time.Since(m.wall) >= d {
			target.Store(sent + 1)
			k = 1
		}
		n, err := c.Write(buf[:k])
		sent += int64(n)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("write after %d bytes: %w", sent, err)
		}
		if k == 1 && size == 0 {
			break
		}
	}
	e.setPhase(fmt.Sprintf("waiting for the receiver to get %d bytes", sent))
	r := <-rd
	wall, cores := m.stop()
	if r.err != nil {
		return 0, 0, 0, fmt.Errorf("read after %d of %d bytes: %w", r.n, sent, r.err)
	}
	return sent, wall, cores, nil
}

// echoServer accepts until the listener closes; each conn echoes one byte,
// then waits for the client's FIN and closes.
func echoServer(e *env, ln net.Listener, wg *sync.WaitGroup) {
	defer wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		e.track(c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { c.Close(); e.untrack(c) }()
			var b [1]byte
			if _, err := io.ReadFull(c, b[:]); err != nil {
				return
			}
			if _, err := c.Write(b[:]); err != nil {
				return
			}
			c.Read(b[:]) // EOF
		}()
	}
}

func echoOnce(e *env) error {
	c, err := e.pair.Dial(e.ctx)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	e.track(c)
	defer func() { c.Close(); e.untrack(c) }()
	b := [1]byte{'x'}
	if _, err := c.Write(b[:]); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return fmt.Errorf("read echo: %w", err)
	}
	return nil
}

// runConnRate: par goroutines each connect, exchange a byte, close, for
// Duration; the client closes first (so its ports go through TIME-WAIT).
func runConnRate(e *env, par int) (Result, error) {
	ln, err := listen(e)
	if err != nil {
		return Result{}, err
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go echoServer(e, ln, &wg)
	e.setPhase(fmt.Sprintf("connect/echo/close, %d at once", par))
	var count atomic.Int64
	var firstErr error
	var errOnce sync.Once
	stop := make(chan struct{})
	var cwg sync.WaitGroup
	m := startCPU(e)
	timer := time.AfterFunc(e.cfg.Duration, func() { close(stop) })
	defer timer.Stop()
	for range par {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := echoOnce(e); err != nil {
					errOnce.Do(func() { firstErr = churnErr(count.Load(), time.Since(m.wall), err) })
					return
				}
				count.Add(1)
				e.progress.Add(1)
			}
		}()
	}
	cwg.Wait()
	wall, cores := m.stop()
	if firstErr != nil {
		return Result{}, firstErr
	}
	n := count.Load()
	return Result{
		Metrics: []Metric{
			{Name: "rate", Unit: "conn/s", Value: float64(n) / wall.Seconds()},
			{Name: "cpu", Unit: "cores", Value: cores, LowerBetter: true},
		},
		Note: fmt.Sprintf("%d connections", n),
	}, nil
}

// churnErr says what failed in a connection-rate run, spelling out port
// exhaustion.
func churnErr(n int64, el time.Duration, err error) error {
	if errors.Is(err, syscall.EADDRNOTAVAIL) {
		return fmt.Errorf("ephemeral ports exhausted after %d connections in %.1fs (%.0f conn/s until then): "+
			"every port sits in TIME-WAIT and none can be reused yet: %w", n, el.Seconds(), float64(n)/el.Seconds(), err)
	}
	return fmt.Errorf("after %d connections in %.1fs: %w", n, el.Seconds(), err)
}

// runPingPong: 1-byte round trips on one connection for Duration.
func runPingPong(e *env) (Result, error) {
	ln, err := listen(e)
	if err != nil {
		return Result{}, err
	}
	e.setPhase("connecting")
	c, s, err := connect(e, ln)
	if err != nil {
		return Result{}, err
	}
	go func() {
		var b [1]byte
		for {
			if _, err := io.ReadFull(s, b[:]); err != nil {
				return
			}
			if _, err := s.Write(b[:]); err != nil {
				return
			}
		}
	}()
	b := [1]byte{'p'}
	rt := func() error {
		if _, err := c.Write(b[:]); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		if _, err := io.ReadFull(c, b[:]); err != nil {
			return fmt.Errorf("read: %w", err)
		}
		e.progress.Add(1)
		return nil
	}
	e.setPhase("ping-pong warm-up")
	for range 1000 {
		if err := rt(); err != nil {
			return Result{}, fmt.Errorf("warm-up: %w", err)
		}
	}
	e.setPhase("ping-pong")
	lat := make([]time.Duration, 0, 1<<21)
	m := startCPU(e)
	end := time.Now().Add(e.cfg.Duration)
	for {
		t0 := time.Now()
		if !t0.Before(end) {
			break
		}
		if err := rt(); err != nil {
			return Result{}, fmt.Errorf("after %d round trips: %w", len(lat), err)
		}
		lat = append(lat, time.Since(t0))
	}
	wall, cores := m.stop()
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / 1e3 }
	return Result{
		Metrics: []Metric{
			{Name: "round trips", Unit: "/s", Value: float64(len(lat)) / wall.Seconds()},
			{Name: "p50", Unit: "µs", Value: q(0.50), LowerBetter: true},
			{Name: "p99", Unit: "µs", Value: q(0.99), LowerBetter: true},
			{Name: "cpu", Unit: "cores", Value: cores, LowerBetter: true},
		},
		Note: fmt.Sprintf("%d round trips", len(lat)),
	}, nil
}

func heapAfterGC() (uint64, int) {
	var ms runtime.MemStats
	for range 3 {
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, runtime.NumGoroutine()
}

// runMem establishes MemConns idle pairs and measures the Go heap and the
// goroutines they add.
func runMem(e *env) (Result, error) {
	ln, err := listen(e)
	if err != nil {
		return Result{}, err
	}
	n := e.cfg.MemConns
	clients := make([]net.Conn, n)
	servers := make([]net.Conn, 0, n)
	// Warm up: one connection, closed, so lazily built state is in "before".
	{
		c, s, err := connect(e, ln)
		if err != nil {
			return Result{}, err
		}
		c.Close()
		s.Close()
		e.untrack(c)
		e.untrack(s)
	}
	time.Sleep(100 * time.Millisecond)
	heap0, g0 := heapAfterGC()

	// One tracker entry for all of them: an entry per conn would itself add
	// about 0.2 KB per pair to the measured heap.
	var mu sync.Mutex
	e.tr.add(&clients, func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range clients {
			if c != nil {
				c.Close()
			}
		}
		for _, c := range servers {
			c.Close()
		}
	})
	accDone := make(chan error, 1)
	go func() {
		for len(servers) < n {
			c, err := ln.Accept()
			if err != nil {
				accDone <- fmt.Errorf("accept after %d: %w", len(servers), err)
				return
			}
			mu.Lock()
			servers = append(servers, c) // closed by the tracker entry below
			mu.Unlock()
			e.progress.Add(1)
		}
		accDone <- nil
	}()
	e.setPhase(fmt.Sprintf("establishing %d connections", n))
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr error
	var errOnce sync.Once
	t0 := time.Now()
	for range e.cfg.Parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				c, err := e.pair.Dial(e.ctx)
				if err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("dial #%d: %w", i, err) })
					return
				}
				mu.Lock()
				clients[i] = c // closed by the tracker entry below
				mu.Unlock()
				e.progress.Add(1)
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return Result{}, firstErr
	}
	if err := <-accDone; err != nil {
		return Result{}, err
	}
	setup := time.Since(t0)
	e.setPhase("idle")
	time.Sleep(time.Second) // let delayed ACKs and handshake timers settle
	heap1, g1 := heapAfterGC()
	runtime.KeepAlive(clients)
	runtime.KeepAlive(servers)
	e.setPhase("closing") // Run's tracker closes them all
	return Result{
		Metrics: []Metric{
			{Name: "heap per pair", Unit: "KB", Value: (float64(heap1) - float64(heap0)) / float64(n) / 1000, LowerBetter: true},
			{Name: "goroutines per conn", Unit: "", Value: float64(g1-g0) / float64(2*n), LowerBetter: true},
		},
		Note: fmt.Sprintf("%d pairs established in %.2fs", n, setup.Seconds()),
	}, nil
}

// twPerPort is how many TIME-WAIT connections the timewait shape puts on
// one server port: below both stacks' ephemeral ranges (synack 28,232,
// gVisor's larger), so ports are never reused and every connection stays.
const twPerPort = 20000

// runTimeWait closes TWConns connections from the client side, so each
// leaves the client stack in TIME-WAIT (spread over server ports, so no
// ephemeral port is reused), and measures the Go heap they keep: synack keeps
// a small record per connection, gVisor its endpoint.
func runTimeWait(e *env) (Result, error) {
	n := e.cfg.TWConns
	nports := (n + twPerPort - 1) / twPerPort
	var wg sync.WaitGroup
	serve := func(ln net.Listener) {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				io.Copy(io.Discard, c) // until the client's FIN: the client closes first
				c.Close()
			}()
		}
	}
	var lns []net.Listener
	for i := range nports {
		ln, err := e.pair.ListenPort(uint16(DefaultPort + 1 + i))
		if err != nil {
			return Result{}, err
		}
		e.track(ln)
		lns = append(lns, ln)
		wg.Add(1)
		go serve(ln)
	}
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
		wg.Wait()
	}()
	once := func(i int64) error {
		c, err := e.pair.DialPort(e.ctx, uint16(DefaultPort+1+int(i)%nports))
		if err != nil {
			return fmt.Errorf("dial #%d: %w", i, err)
		}
		return c.Close()
	}
	// Warm up, so lazily built state is in "before".
	for i := range int64(100) {
		if err := once(i); err != nil {
			return Result{}, err
		}
	}
	time.Sleep(100 * time.Millisecond)
	heap0, _ := heapAfterGC()
	tw0 := e.pair.TimeWait()
	e.setPhase(fmt.Sprintf("closing %d connections into TIME-WAIT", n))
	var next atomic.Int64
	var cwg sync.WaitGroup
	var firstErr error
	var errOnce sync.Once
	t0 := time.Now()
	for range e.cfg.Parallel {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				if err := once(100 + i); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				e.progress.Add(1)
			}
		}()
	}
	cwg.Wait()
	if firstErr != nil {
		return Result{}, firstErr
	}
	setup := time.Since(t0)
	e.setPhase("waiting for TIME-WAIT")
	time.Sleep(time.Second) // the last FINs and ACKs
	heap1, _ := heapAfterGC()
	note := fmt.Sprintf("%d connections closed in %.2fs", n, setup.Seconds())
	if tw := e.pair.TimeWait(); tw >= 0 {
		note += fmt.Sprintf(", %d in TIME-WAIT", tw-tw0)
	}
	return Result{
		Metrics: []Metric{
			{Name: "heap per TIME-WAIT", Unit: "B", Value: (float64(heap1) - float64(heap0)) / float64(n), LowerBetter: true},
		},
		Note: note,
	}, nil
}

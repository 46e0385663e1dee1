package bench

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The shapes of cmd/vs as Go benchmarks:
//
//	go test -bench . ./...
//	go test -bench 'Bulk/synack/mtu=1500' -cpuprofile cpu.out -benchtime 5s
//	go tool pprof -top cpu.out
//
// Each benchmark runs once per implementation: synack, gvisor (channel
// endpoints, a goroutine per direction), gvisor-pipe.

var (
	flagImpl     = flag.String("impl", "", "implementations to benchmark (default all): synack,gvisor,gvisor-pipe")
	flagMemConns = flag.Int("mem-conns", 10000, "idle pairs per iteration of BenchmarkIdleConns")
	flagMSL      = flag.Duration("synack-msl", 0, "synack's MSL (0: the stack's default); see Config.SynackMSL")
	flagOffload  = flag.Bool("rx-csum-offload", false, "receive checksum offload on both implementations; see Config.RxChecksumOffload")
)

func benchImpls(tb testing.TB) []Impl {
	is, err := ParseImpls(*flagImpl)
	if err != nil {
		tb.Fatal(err)
	}
	return is
}

func benchConfig() Config {
	c := Defaults()
	c.SynackMSL = *flagMSL
	c.RxChecksumOffload = *flagOffload
	return c
}

// newEnv makes a pair and an env for it; the pair is closed at cleanup.
func newEnv(tb testing.TB, impl Impl, mtu int, cfg Config) *env {
	tb.Helper()
	p, err := NewPair(impl, mtu, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &env{ctx: ctx, pair: p, cfg: cfg}
	tb.Cleanup(func() {
		cancel()
		e.tr.closeAll()
		if !closeWithin(p, 20*time.Second) {
			tb.Errorf("%s: Close did not return in 20s", impl)
		}
	})
	return e
}

// watchdog fails the benchmark's connections if its progress counter stops
// moving for stall: blocked calls then return errors instead of hanging.
func watchdog(tb testing.TB, e *env, stall time.Duration) {
	done := make(chan struct{})
	tb.Cleanup(func() { close(done) })
	go func() {
		t := time.NewTicker(stall / 4)
		defer t.Stop()
		last, at := e.progress.Load(), time.Now()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				if v := e.progress.Load(); v != last {
					last, at = v, now
				} else if now.Sub(at) > stall {
					e.tr.closeAll()
					e.pair.Close()
					return
				}
			}
		}
	}()
}

func BenchmarkBulk(b *testing.B) {
	for _, impl := range benchImpls(b) {
		for _, mtu := range []int{1500, 65535} {
			b.Run(fmt.Sprintf("%s/mtu=%d", impl, mtu), func(b *testing.B) {
				e := newEnv(b, impl, mtu, benchConfig())
				watchdog(b, e, 10*time.Second)
				ln, err := listen(e)
				if err != nil {
					b.Fatal(err)
				}
				c, s, err := connect(e, ln)
				if err != nil {
					b.Fatal(err)
				}
				go func() {
					buf := make([]byte, e.cfg.ChunkSize)
					for {
						n, err := s.Read(buf)
						e.progress.Add(int64(n))
						if err != nil {
							return
						}
					}
				}()
				buf := make([]byte, e.cfg.ChunkSize)
				b.SetBytes(int64(len(buf)))
				b.ReportAllocs()
				m := startCPU(e)
				for b.Loop() {
					if _, err := c.Write(buf); err != nil {
						b.Fatalf("write: %v", err)
					}
				}
				_, cores := m.stop()
				b.ReportMetric(float64(b.N)*float64(len(buf))*8/b.Elapsed().Seconds()/1e9, "Gbit/s")
				b.ReportMetric(cores, "cores")
			})
		}
	}
}

func BenchmarkConnect(b *testing.B) {
	for _, impl := range benchImpls(b) {
		for _, par := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/par=%d", impl, par), func(b *testing.B) {
				e := newEnv(b, impl, 1500, benchConfig())
				watchdog(b, e, 10*time.Second)
				ln, err := listen(e)
				if err != nil {
					b.Fatal(err)
				}
				var swg sync.WaitGroup
				swg.Add(1)
				go echoServer(e, ln, &swg)
				work := make(chan struct{})
				errs := make(chan error, par)
				var wg sync.WaitGroup
				for range par {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for range work {
							if err := echoOnce(e); err != nil {
								errs <- err
								for range work {
								}
								return
							}
							e.progress.Add(1)
						}
					}()
				}
				b.ReportAllocs()
				m := startCPU(e)
				var failed error
				for b.Loop() {
					select {
					case work <- struct{}{}:
						continue
					case failed = <-errs:
					}
					break
				}
				close(work)
				wg.Wait()
				_, cores := m.stop()
				if failed == nil {
					select {
					case failed = <-errs:
					default:
					}
				}
				if failed != nil {
					if errors.Is(failed, syscall.EADDRNOTAVAIL) {
						b.Skipf("%s: %v", impl, churnErr(e.progress.Load(), b.Elapsed(), failed))
					}
					b.Fatal(failed)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conn/s")
				b.ReportMetric(cores, "cores")
			})
		}
	}
}

func BenchmarkPingPong(b *testing.B) {
	for _, impl := range benchImpls(b) {
		b.Run(string(impl), func(b *testing.B) {
			e := newEnv(b, impl, 1500, benchConfig())
			watchdog(b, e, 10*time.Second)
			ln, err := listen(e)
			if err != nil {
				b.Fatal(err)
			}
			c, s, err := connect(e, ln)
			if err != nil {
				b.Fatal(err)
			}
			go func() {
				var p [1]byte
				for {
					if _, err := io.ReadFull(s, p[:]); err != nil {
						return
					}
					if _, err := s.Write(p[:]); err != nil {
						return
					}
				}
			}()
			p := []byte{'p'}
			lat := make([]time.Duration, 0, 1<<20)
			b.ReportAllocs()
			m := startCPU(e)
			for b.Loop() {
				t0 := time.Now()
				if _, err := c.Write(p); err != nil {
					b.Fatalf("write: %v", err)
				}
				if _, err := io.ReadFull(c, p); err != nil {
					b.Fatalf("read: %v", err)
				}
				lat = append(lat, time.Since(t0))
				e.progress.Add(1)
			}
			_, cores := m.stop()
			slices.Sort(lat)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rt/s")
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
			b.ReportMetric(float64(lat[(len(lat)-1)*99/100].Nanoseconds()), "p99-ns")
			b.ReportMetric(cores, "cores")
		})
	}
}

// BenchmarkIdleConns: one iteration establishes -mem-conns idle pairs on a
// fresh pair of stacks and measures the heap and goroutines they hold.
func BenchmarkIdleConns(b *testing.B) {
	for _, impl := range benchImpls(b) {
		b.Run(string(impl), func(b *testing.B) {
			cfg := benchConfig()
			cfg.MemConns = *flagMemConns
			var heap, gor float64
			b.ReportAllocs()
			for b.Loop() {
				r, err := Run(impl, Shapes()[5], cfg)
				if err != nil {
					b.Fatal(err)
				}
				heap += r.Metrics[0].Value * 1000
				gor += r.Metrics[1].Value
			}
			b.ReportMetric(heap/float64(b.N), "heap-B/pair")
			b.ReportMetric(gor/float64(b.N), "goroutines/conn")
			b.ReportMetric(0, "ns/op") // an iteration is a whole setup; its time means little
		})
	}
}

// TestIntegrity checks that the bytes of a bulk transfer arrive intact and in
// order on every implementation, so the throughput numbers count real data.
func TestIntegrity(t *testing.T) {
	for _, impl := range benchImpls(t) {
		for _, mtu := range []int{1500, 65535} {
			t.Run(fmt.Sprintf("%s/mtu=%d", impl, mtu), func(t *testing.T) {
				e := newEnv(t, impl, mtu, Quick())
				watchdog(t, e, 10*time.Second)
				ln, err := listen(e)
				if err != nil {
					t.Fatal(err)
				}
				c, s, err := connect(e, ln)
				if err != nil {
					t.Fatal(err)
				}
				want := make([]byte, 16<<20)
				for i := range want {
					want[i] = byte(i*7 + i>>11)
				}
				go func() {
					for off := 0; off < len(want); off += 50000 {
						if _, err := c.Write(want[off:min(off+50000, len(want))]); err != nil {
							return
						}
						e.progress.Add(1)
					}
					c.(interface{ CloseWrite() error }).CloseWrite()
				}()
				got, err := io.ReadAll(s)
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("got %d bytes, want %d; differ", len(got), len(want))
				}
			})
		}
	}
}

// TestShapes runs every shape of cmd/vs briefly on every implementation.
func TestShapes(t *testing.T) {
	cfg := Quick()
	cfg.Duration = 200 * time.Millisecond
	cfg.BulkBytes = 16 << 20
	cfg.BulkMinTime = 0
	cfg.MemConns = 200
	cfg.SynackMSL = *flagMSL
	for _, sh := range Shapes() {
		for _, impl := range benchImpls(t) {
			t.Run(sh.Name+"/"+string(impl), func(t *testing.T) {
				r, err := Run(impl, sh, cfg)
				if err != nil {
					t.Fatal(err)
				}
				if len(r.Metrics) == 0 || r.Metrics[0].Value <= 0 && sh.Name != "mem" {
					t.Fatalf("no result: %+v", r)
				}
			})
		}
	}
}

// TestWatchdog: a shape that blocks forever is aborted and reported, on
// every implementation, within the stall time plus teardown.
func TestWatchdog(t *testing.T) {
	hang := Shape{Name: "hang", MTU: 1500, run: func(e *env) (Result, error) {
		ln, err := listen(e)
		if err != nil {
			return Result{}, err
		}
		c, _, err := connect(e, ln)
		if err != nil {
			return Result{}, err
		}
		e.setPhase("reading what nobody sends")
		var p [1]byte
		_, err = c.Read(p[:])
		return Result{}, err
	}}
	cfg := Quick()
	cfg.Stall = 300 * time.Millisecond
	for _, impl := range benchImpls(t) {
		t.Run(string(impl), func(t *testing.T) {
			t0 := time.Now()
			_, err := Run(impl, hang, cfg)
			if err == nil || !strings.Contains(err.Error(), "stalled") || !strings.Contains(err.Error(), "nobody sends") {
				t.Fatalf("err = %v, want a stall report", err)
			}
			if el := time.Since(t0); el > 5*time.Second {
				t.Fatalf("took %v", el)
			}
			t.Log(err)
		})
	}
}

// TestNoLeftovers: after each shape, the pair's Close leaves no goroutine
// behind (checked for synack, logged for gVisor).
func TestNoLeftovers(t *testing.T) {
	cfg := Quick()
	cfg.Duration = 200 * time.Millisecond
	cfg.BulkBytes = 16 << 20
	cfg.BulkMinTime = 0
	cfg.MemConns = 200
	cfg.SynackMSL = *flagMSL
	for _, impl := range benchImpls(t) {
		t.Run(string(impl), func(t *testing.T) {
			g0 := runtime.NumGoroutine()
			for _, sh := range Shapes() {
				if _, err := Run(impl, sh, cfg); err != nil {
					t.Fatalf("%s: %v", sh.Name, err)
				}
			}
			var g int
			for range 40 {
				if g = runtime.NumGoroutine(); g <= g0 {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			if impl == Synack {
				t.Errorf("%d goroutines left after Close (before: %d):\n%s", g-g0, g0, buf)
			} else {
				t.Logf("%s: %d goroutines left after Close", impl, g-g0)
			}
		})
	}
}

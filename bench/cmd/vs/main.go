// Command vs runs synack and gVisor's netstack side by side — each as a pair
// of stacks in this process joined by an in-memory link of the same MTU — and
// prints one table: median (min–max) of -runs runs per shape and the ratio
// synack/gVisor (gVisor on channel endpoints with a goroutine per direction;
// gVisor on link/pipe as a third column).
//
//	go run ./cmd/vs                     # everything, 3 runs (about 5 minutes)
//	go run ./cmd/vs -quick              # a smoke test (short loads, 1 run)
//	go run ./cmd/vs -only bulk1500,pingpong -runs 5
//	go run ./cmd/vs -impl synack,gvisor -duration 2s
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/synack/synack/bench"
)

func main() {
	def := bench.Defaults()
	var (
		runs      = flag.Int("runs", 3, "runs per shape and implementation (median, min and max are reported)")
		duration  = flag.Duration("duration", def.Duration, "length of the timed shapes (connections/s, ping-pong, timed bulk runs)")
		only      = flag.String("only", "", "comma-separated shapes to run (default all): "+strings.Join(bench.ShapeNames(), ","))
		impls     = flag.String("impl", "", "comma-separated implementations (default all): synack,gvisor,gvisor-pipe; the ratio is first/second")
		quick     = flag.Bool("quick", false, "short loads and 1 run, for a smoke test")
		bulkBytes = flag.Int64("bulk-bytes", def.BulkBytes, "bytes per bulk transfer")
		memConns  = flag.Int("mem-conns", def.MemConns, "idle established pairs for the memory shape")
		stall     = flag.Duration("stall", def.Stall, "fail a shape that makes no progress for this long")
		limit     = flag.Duration("limit", def.Limit, "fail a shape that runs longer than this")
		twConns   = flag.Int("tw-conns", def.TWConns, "connections left in TIME-WAIT for the timewait shape")
		msl       = flag.Duration("synack-msl", 0, "synack's MSL (default: the stack's, 30 s, so TIME-WAIT is 60 s)")
		cpuprof   = flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
		quiet     = flag.Float64("quiet", 0.3, "the machine counts as quiet when other processes use under this many cores; runs wait for it and are redone when disturbed beyond it (0: don't)")
		quietWait = flag.Duration("quiet-wait", 60*time.Second, "longest wait for a quiet machine before each run")
		retries   = flag.Int("retries", 2, "times a disturbed run is redone (the least disturbed is kept)")
		verbose   = flag.Bool("v", false, "print each run as it finishes")
		offload   = flag.Bool("rx-csum-offload", false, "the in-memory links vouch for their packets, so both stacks skip receive checksum verification (synack: memlink ChecksumOffload; gVisor channel: CapabilityRXChecksumOffload; gvisor-pipe cannot)")
	)
	flag.Parse()

	cfg := def
	if *quick {
		cfg = bench.Quick()
		if !isSet("runs") {
			*runs = 1
		}
	}
	set := func(name string, f func()) {
		if isSet(name) {
			f()
		}
	}
	set("duration", func() { cfg.Duration = *duration })
	set("bulk-bytes", func() { cfg.BulkBytes = *bulkBytes })
	set("mem-conns", func() { cfg.MemConns = *memConns })
	set("tw-conns", func() { cfg.TWConns = *twConns })
	set("stall", func() { cfg.Stall = *stall })
	set("limit", func() { cfg.Limit = *limit })
	cfg.SynackMSL = *msl
	cfg.RxChecksumOffload = *offload

	is, err := bench.ParseImpls(*impls)
	if err != nil {
		fatal(err)
	}
	shapes, err := selectShapes(*only)
	if err != nil {
		fatal(err)
	}
	if *cpuprof != "" {
		f, err := os.Create(*cpuprof)
		if err != nil {
			fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fatal(err)
		}
		defer pprof.StopCPUProfile()
	}

	host, _ := os.Hostname()
	fmt.Printf("synack vs gVisor netstack (gvisor.dev/gvisor v0.0.0-20250503011706-39ed1f5ac29c)\n")
	fmt.Printf("%s, %s, %s/%s, GOMAXPROCS=%d, NumCPU=%d, %s\n", host, runtime.Version(), runtime.GOOS, runtime.GOARCH,
		runtime.GOMAXPROCS(0), runtime.NumCPU(), time.Now().Format("2006-01-02 15:04 MST"))
	fmt.Printf("runs=%d duration=%v bulk=%d MiB (timed run when under %v) mem-conns=%d tw-conns=%d stall=%v limit=%v\n",
		*runs, cfg.Duration, cfg.BulkBytes>>20, cfg.BulkMinTime, cfg.MemConns, cfg.TWConns, cfg.Stall, cfg.Limit)
	fmt.Printf("synack: memlink, queue %d, Nagle off, TIME-WAIT reuse after %v", bench.SynackQueueLimit, bench.SynackTimeWaitReuseAfter)
	if cfg.SynackMSL > 0 {
		fmt.Printf(", MSL %v (TIME-WAIT %v) instead of the default", cfg.SynackMSL, 2*cfg.SynackMSL)
	}
	fmt.Printf("; gvisor: defaults, TIME-WAIT reuse global, channel queues %d\n", bench.ChannelQueueDepth)
	if cfg.RxChecksumOffload {
		fmt.Printf("receive checksum offload on both: memlink ChecksumOffload, gVisor channel CapabilityRXChecksumOffload\n")
	}
	fmt.Println()

	t := bench.NewTable(is, shapes, *runs)
	t.Disturbed = *quiet
	start := time.Now()
	for _, sh := range shapes {
		// Interleave implementations run by run, so drift hits all alike.
		for run := range *runs {
			for _, impl := range is {
				var r bench.Result
				var err error
				for try := 0; ; try++ {
					if *quiet > 0 {
						if o := bench.WaitQuiet(*quiet, *quietWait); o >= *quiet {
							fmt.Fprintf(os.Stderr, "machine still busy (other processes: %.2f cores) after %v; running anyway\n", o, *quietWait)
						}
					}
					r2, err2 := bench.Run(impl, sh, cfg)
					if try == 0 || err2 != nil && err != nil || err2 == nil && (err != nil || r2.OtherLoad < r.OtherLoad) {
						r, err = r2, err2
					}
					if *quiet <= 0 || err2 != nil || r2.OtherLoad < *quiet || try >= *retries {
						break
					}
					fmt.Fprintf(os.Stderr, "%-10s %-12s run %d: disturbed (other processes used %.2f cores); redoing\n", sh.Name, impl, run+1, r2.OtherLoad)
				}
				t.Add(sh.Name, impl, r, err)
				if *verbose || err != nil {
					if err != nil {
						fmt.Fprintf(os.Stderr, "%-10s %-12s run %d: FAILED: %v\n", sh.Name, impl, run+1, err)
					} else {
						fmt.Fprintf(os.Stderr, "%-10s %-12s run %d: %s  (%s; other load %.2f cores)\n", sh.Name, impl, run+1, fmtMetrics(r), r.Note, r.OtherLoad)
					}
				}
				runtime.GC()
			}
		}
	}
	t.Write(os.Stdout)
	fmt.Printf("\nTotal %.0fs. Ratios are medians %s/%s; for cpu, p50, p99 and heap lower is better.\n",
		time.Since(start).Seconds(), is[0], is[min(1, len(is)-1)])
}

func fmtMetrics(r bench.Result) string {
	var s []string
	for _, m := range r.Metrics {
		s = append(s, fmt.Sprintf("%s=%.4g%s", m.Name, m.Value, m.Unit))
	}
	return strings.Join(s, " ")
}

func selectShapes(only string) ([]bench.Shape, error) {
	all := bench.Shapes()
	if only == "" {
		return all, nil
	}
	var out []bench.Shape
	taken := map[string]bool{} // a shape two names select runs once ("mem,timewait")
	for _, name := range strings.Split(only, ",") {
		name = strings.TrimSpace(name)
		found := false
		for _, s := range all {
			// "bulk" and "conn" name their groups; "mem" both memory
			// shapes (idle pairs and TIME-WAIT).
			if s.Name == name || (name == "bulk" && strings.HasPrefix(s.Name, "bulk")) || (name == "conn" && strings.HasPrefix(s.Name, "conn")) ||
				(name == "mem" && s.Name == "timewait") {
				found = true
				if !taken[s.Name] {
					taken[s.Name] = true
					out = append(out, s)
				}
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown shape %q (have %s)", name, strings.Join(bench.ShapeNames(), ","))
		}
	}
	return out, nil
}

func isSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "vs:", err)
	os.Exit(2)
}

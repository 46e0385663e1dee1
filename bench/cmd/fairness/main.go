// Command fairness measures synack's congestion controllers as issue 11
// asks and prints Markdown tables:
//
//   - fairness: two flows sharing one bottleneck (default 100 Mbit/s,
//     20 ms RTT, a drop-tail queue of one BDP) for 30 s — cubic vs cubic,
//     bbr vs bbr, newreno vs newreno, cubic vs bbr — with each flow's
//     throughput and share and Jain's index, on the virtual clock; with
//     -linux also synack's cubic beside the kernel's cubic, in real time
//     through pathmatrix's relay (root, network namespaces);
//
//   - slow start: a 100 MiB bulk at 1 Gbit/s and 100 ms RTT with a one-BDP
//     queue for cubic (HyStart++), newreno and bbr: when it reaches 80 % of
//     the link, and the retransmissions around the end of slow start.
//
//     go run ./cmd/fairness             # both, 30 s pairs
//     go run ./cmd/fairness -quick      # 10 s pairs, a 32 MiB bulk
//     go run ./cmd/fairness -linux -ns-prefix fa-
//     go run ./cmd/fairness -pairs "" -ss "" -kernel bbr -rtt 100ms -stagger 5s -ns-prefix fa-
//
// -kernel runs two flows of the kernel's controller (Linux to Linux across
// the relay, real time) with the same stagger, and prints each flow's
// throughput, cwnd and bbr's model every -kernel-every.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/synack/synack/bench/fairness"
	"github.com/synack/synack/bench/pathmatrix"
)

func main() {
	var (
		quick  = flag.Bool("quick", false, "10 s pairs")
		dur    = flag.Duration("d", 30*time.Second, "how long each pair runs")
		rtt    = flag.Duration("rtt", 20*time.Millisecond, "round-trip time of the shared path")
		rate   = flag.String("rate", "100M", "rate of the shared path")
		loss   = flag.Float64("loss", 0, "random loss of the shared path, each direction (0.01 is 1 %)")
		pairs  = flag.String("pairs", "cubic/cubic,bbr/bbr,newreno/newreno,cubic/bbr", "comma-separated controller pairs a/b")
		linux  = flag.Bool("linux", false, "also run synack cubic beside Linux cubic in real time (root: namespaces, TUN)")
		ssRTT  = flag.Duration("ss-rtt", 100*time.Millisecond, "round-trip time of the slow-start path")
		ssRate = flag.String("ss-rate", "1G", "rate of the slow-start path")
		ssSize = flag.Int64("ss-size", 100<<20, "bytes of the slow-start bulk (0: the path matrix's size for the path, pathmatrix.Cell.Size)")
		ssCCs  = flag.String("ss", "cubic,newreno,bbr", "controllers of the slow-start runs (empty: none)")
		ssReo  = flag.Float64("ss-reorder", 0, "reordering of the slow-start path, each direction (0.01 is 1 %)")
		ssLoss = flag.Float64("ss-loss", 0, "random loss of the slow-start path, each direction (0.01 is 1 %)")
		seed   = flag.Int64("seed", 1, "seed of the link's fates and of the stacks' ISN keys (a run repeats with its seed)")
		seeds  = flag.String("ss-seeds", "", "comma-separated seeds of the slow-start runs (default: -seed)")
		stag   = flag.Duration("stagger", 0, "the second flow of each synack pair starts sending this long after the first")
		nsPfx  = flag.String("ns-prefix", pathmatrix.NSPrefix, "start of the names of the network namespaces -linux makes")
		kernel = flag.String("kernel", "", "also run two Linux flows of this controller (e.g. bbr) in real time, with -stagger (root)")
		kEvery = flag.Duration("kernel-every", 5*time.Second, "interval of the -kernel flows' printed series")
	)
	flag.Parse()
	if *quick {
		*dur = 10 * time.Second
	}
	r, err := pathmatrix.ParseRate(*rate)
	if err != nil {
		fail(err)
	}
	ssr, err := pathmatrix.ParseRate(*ssRate)
	if err != nil {
		fail(err)
	}
	cell := pathmatrix.Cell{RTT: *rtt, Rate: r, Loss: *loss}
	ssCell := pathmatrix.Cell{RTT: *ssRTT, Rate: ssr, Reorder: *ssReo, Loss: *ssLoss}
	if *ssSize <= 0 {
		*ssSize = ssCell.Size()
	}
	ssSeeds := []int64{*seed}
	if *seeds != "" {
		ssSeeds = nil
		for _, f := range strings.Split(*seeds, ",") {
			n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
			if err != nil {
				fail(fmt.Errorf("-ss-seeds: %w", err))
			}
			ssSeeds = append(ssSeeds, n)
		}
	}

	if *linux || *kernel != "" {
		if err := pathmatrix.RootError(); err != nil {
			fail(fmt.Errorf("-linux %w", err))
		}
		pathmatrix.NSPrefix = *nsPfx
		pathmatrix.RemoveStale()
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
		go func() {
			s := <-sig
			pathmatrix.Cleanup()
			fmt.Fprintf(os.Stderr, "fairness: %v: namespaces removed\n", s)
			os.Exit(1)
		}()
		defer pathmatrix.Cleanup()
	}

	var prs []fairness.PairResult
	for _, p := range strings.Split(*pairs, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		a, b, ok := strings.Cut(p, "/")
		if !ok {
			fail(fmt.Errorf("pair %q: want a/b, e.g. cubic/bbr", p))
		}
		t0 := time.Now()
		res, err := fairness.RunPairStaggered(cell, a, b, *dur, *seed, *stag)
		if err != nil {
			fail(fmt.Errorf("%s: %w", p, err))
		}
		fmt.Fprintf(os.Stderr, "%s: %.1f / %.1f Mbit/s, Jain %.3f (%v)\n", p, res.Mbit(0), res.Mbit(1), res.Jain(), time.Since(t0).Round(time.Second))
		prs = append(prs, res)
	}
	if *linux {
		res, err := fairness.RunMixedPair(cell, *dur, *seed)
		if err != nil {
			fmt.Fprintln(os.Stderr, "fairness: synack cubic vs Linux cubic:", err)
		} else {
			fmt.Fprintf(os.Stderr, "cubic/linux-cubic: %.1f / %.1f Mbit/s, Jain %.3f\n", res.Mbit(0), res.Mbit(1), res.Jain())
			prs = append(prs, res)
		}
	}

	if *kernel != "" {
		res, series, err := fairness.RunKernelPair(cell, *kernel, *dur, *stag, *seed)
		if err != nil {
			fmt.Fprintln(os.Stderr, "fairness: Linux pair:", err)
		} else {
			fmt.Fprintf(os.Stderr, "linux %s pair: %.1f / %.1f Mbit/s, Jain %.3f / %.3f\n", *kernel, res.Mbit(0), res.Mbit(1), res.Jain(), res.LateJain())
			printKernelSeries(series, *kEvery)
			prs = append(prs, res)
		}
	}

	var ssr2 []fairness.SlowStartResult
	for _, cc := range strings.Split(*ssCCs, ",") {
		if cc = strings.TrimSpace(cc); cc == "" {
			continue
		}
		for _, sd := range ssSeeds {
			t0 := time.Now()
			res, err := fairness.RunSlowStart(ssCell, cc, *ssSize, sd, 60*time.Second)
			if err != nil {
				fail(fmt.Errorf("slow start %s: %w", cc, err))
			}
			fmt.Fprintf(os.Stderr, "slow start %s seed %d: 80%% at %v, exit %v, retrans %d at exit (%v)\n", cc, sd, res.Reach, res.Exit, res.RetransAtExit, time.Since(t0).Round(time.Second))
			ssr2 = append(ssr2, res)
		}
	}

	if len(prs) > 0 {
		fmt.Printf("Fairness: two flows on %s, drop-tail queue of one BDP (%d packets), %v, seed %d\n\n",
			cell, cell.QueuePackets(), *dur, *seed)
		fairness.PairsMarkdown(os.Stdout, prs)
		fmt.Println()
	}
	if len(ssr2) > 0 {
		fmt.Printf("Slow start: %d MiB on %s, drop-tail queue of one BDP (%d packets), virtual clock, seeds %v\n\n",
			*ssSize>>20, ssCell, ssCell.QueuePackets(), ssSeeds)
		fairness.SlowStartMarkdown(os.Stdout, ssr2)
	}
}

// printKernelSeries writes, every interval, each kernel flow's rate over
// the interval, cwnd, smoothed RTT and bbr's bandwidth and min RTT.
func printKernelSeries(series [2][]fairness.KernelSample, every time.Duration) {
	n := int(every / time.Second)
	if n < 1 {
		n = 1
	}
	fmt.Println("| t | flow 1 Mbit/s | cwnd | srtt | bbr bw, min_rtt | flow 2 Mbit/s | cwnd | srtt | bbr bw, min_rtt |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	for t := n - 1; t < len(series[0]); t += n {
		fmt.Printf("| %ds |", t+1)
		for i := range series {
			s := series[i][t]
			var prev int64
			if t >= n {
				prev = series[i][t-n].Bytes
			}
			rate := float64(s.Bytes-prev) * 8 / float64(n) / 1e6
			fmt.Printf(" %.1f | %d | %v | %.1f Mbit/s, %v |", rate, s.Cwnd, s.RTT.Round(time.Millisecond), s.BW/1e6, s.MinRTT.Round(time.Millisecond))
		}
		fmt.Println()
	}
	fmt.Println()
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "fairness:", err)
	os.Exit(2)
}

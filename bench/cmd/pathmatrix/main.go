// Command pathmatrix runs bulk transfers over seeded impaired paths —
// synack (RACK-TLP and dupthresh; CUBIC, BBR and NewReno), gVisor (Reno and CUBIC), Linux to Linux
// (CUBIC, BBR) and Linux to synack, on the same link/memlink impairment
// model — and prints Markdown tables: goodput, retransmissions, D-SACKs
// received, synack's own count of spurious recoveries, and the completion
// time of a 1 MiB transfer (issue 10).
//
//	go run ./cmd/pathmatrix                              # the whole matrix (long: see BENCHMARKS.md)
//	go run ./cmd/pathmatrix -rtt 20ms -rate 100M -impl synack,gvisor-reno
//	go run ./cmd/pathmatrix -imp 'loss 1%,reorder 5%' -limit 30s -v
//
// The Linux implementations need root: they create network namespaces
// named pm-<pid>-<n> and TUN devices, all removed on exit (and, after a
// kill -9, by the next run).
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/synack/synack/bench/pathmatrix"
)

func main() {
	var (
		rtts   = flag.String("rtt", "", "comma-separated round-trip times (default 20ms,100ms)")
		rates  = flag.String("rate", "", "comma-separated rates, e.g. 100M,1G (default both)")
		imps   = flag.String("imp", "", "comma-separated impairments (default all): "+strings.Join(pathmatrix.Impairments(), ", "))
		impls  = flag.String("impl", "", "comma-separated implementations (default all): "+fmt.Sprint(pathmatrix.Impls))
		limit  = flag.Duration("limit", 60*time.Second, "time limit of each transfer")
		size   = flag.Int64("size", 0, "bulk bytes for every cell (default: per cell, see Cell.Size)")
		seed   = flag.Int64("seed", 1, "seed of the link's fates and of the payload")
		no1MiB = flag.Bool("no-1mib", false, "skip the separate 1 MiB completion-time transfers")
		quiet  = flag.Bool("q", false, "no progress lines on stderr")
		qWait  = flag.Duration("quiet-wait", 0, "before each run, wait up to this long for the rest of the machine to use under -quiet cores (0: don't wait)")
		qCores = flag.Float64("quiet", 0.3, "cores other processes may use for the machine to count as quiet")
		nsPfx  = flag.String("ns-prefix", pathmatrix.NSPrefix, "start of the names of the network namespaces the Linux cells make")
	)
	flag.Parse()

	o := pathmatrix.Options{Seed: *seed, Limit: *limit, Size: *size, SkipOneMiB: *no1MiB, QuietWait: *qWait, QuietCores: *qCores}
	if !*quiet {
		o.Progress = os.Stderr
	}
	var err error
	if o.Impls, err = pathmatrix.ParseImpls(*impls); err != nil {
		fail(err)
	}
	rttList, err := parseList(*rtts, time.ParseDuration)
	if err != nil {
		fail(err)
	}
	rateList, err := parseList(*rates, pathmatrix.ParseRate)
	if err != nil {
		fail(err)
	}
	var impList []string
	if *imps != "" {
		impList = strings.Split(*imps, ",")
	}
	if o.Cells, err = pathmatrix.Matrix(rttList, rateList, impList); err != nil {
		fail(err)
	}
	for _, i := range o.Impls {
		if i.NeedsRoot() {
			if err := pathmatrix.RootError(); err != nil {
				fail(fmt.Errorf("%s %w (leave it out with -impl)", i, err))
			}
		}
	}

	// Namespaces outlive the process unless removed: on a signal, remove
	// them before exiting.
	pathmatrix.NSPrefix = *nsPfx
	pathmatrix.RemoveStale()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sig
		pathmatrix.Cleanup()
		fmt.Fprintf(os.Stderr, "pathmatrix: %v: namespaces removed\n", s)
		os.Exit(1)
	}()
	defer pathmatrix.Cleanup()

	start := time.Now()
	rows := pathmatrix.RunMatrix(o)
	fmt.Printf("seed %d, limit %v per transfer, %d cells x %d implementations in %v\n\n",
		*seed, *limit, len(o.Cells), len(o.Impls), time.Since(start).Round(time.Second))
	pathmatrix.Markdown(os.Stdout, rows)
}

func parseList[T any](s string, parse func(string) (T, error)) ([]T, error) {
	if s == "" {
		return nil, nil
	}
	var out []T
	for _, f := range strings.Split(s, ",") {
		v, err := parse(strings.TrimSpace(f))
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "pathmatrix:", err)
	os.Exit(2)
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/synack/synack/diag"
)

func init() {
	register(&command{
		name:    "diagnose",
		summary: "count TCP states and explain what looks wrong (exit 0 fine, 1 warnings, 2 problems)",
		run:     runDiagnose,
	})
}

// thresholdFlags collects repeated --threshold NAME=VALUE flags.
type thresholdFlags struct{ th *diag.Thresholds }

func (t thresholdFlags) String() string { return "" }
func (t thresholdFlags) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	if !ok {
		return fmt.Errorf("want NAME=VALUE, got %q", s)
	}
	return t.th.Set(name, value)
}

func runDiagnose(args []string) int {
	fs := flag.NewFlagSet("diagnose", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: synack diagnose [--host | --admin URL] [--json] [--watch [--interval 2s] [--count N]] [--threshold NAME=VALUE ...]")
		fmt.Fprintln(fs.Output(), "\nExit status: 0 nothing found, 1 warnings, 2 problems, 3 error.")
		fs.PrintDefaults()
		fmt.Fprintln(fs.Output(), "\nthresholds:", strings.Join(diag.ThresholdNames(), " "))
	}
	var src diagSource
	src.addFlags(fs)
	asJSON := fs.Bool("json", false, "write the report as JSON (one object per look with --watch)")
	watch := fs.Bool("watch", false, "look again every --interval and show how the counts move")
	interval := fs.Duration("interval", 2*time.Second, "time between looks with --watch")
	count := fs.Int("count", 0, "with --watch, stop after `N` looks (0: until interrupted)")
	var th diag.Thresholds
	fs.Var(thresholdFlags{&th}, "threshold", "set a threshold, `NAME=VALUE` (repeatable; see the list below)")
	if status, done := parseFlags(fs, args); done {
		if status != 0 {
			return diagStatusError
		}
		return 0
	}
	if fs.NArg() > 0 {
		return diagFail("diagnose", diagStatusError, fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	if *interval <= 0 {
		return diagFail("diagnose", diagStatusError, errors.New("--interval must be positive"))
	}
	if !*watch {
		snap, err := src.snapshot()
		if err != nil {
			return diagFail("diagnose", diagStatusError, err)
		}
		rep := diag.NewReport(snap, nil, th)
		if err := writeReport(rep, *asJSON, true); err != nil {
			return diagFail("diagnose", diagStatusError, err)
		}
		return rep.Status
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	clear := !*asJSON && diagIsTerminal(os.Stdout)
	var prev *diag.Snapshot
	status := 0
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	for n := 0; *count <= 0 || n < *count; n++ {
		if n > 0 {
			select {
			case <-ctx.Done():
				return status
			case <-tick.C:
			}
		}
		snap, err := src.snapshot()
		if err != nil {
			return diagFail("diagnose", diagStatusError, err)
		}
		rep := diag.NewReport(snap, prev, th)
		status = rep.Status
		switch {
		case clear:
			fmt.Print("\x1b[H\x1b[2J")
		case !*asJSON && n > 0:
			fmt.Println(strings.Repeat("─", 60))
		}
		if err := writeReport(rep, *asJSON, false); err != nil {
			return diagFail("diagnose", diagStatusError, err)
		}
		if clear {
			fmt.Printf("\n(every %s; interrupt to stop)\n", *interval)
		}
		prev = &snap
	}
	return status
}

// writeReport writes a report as text (counts, then findings) or JSON,
// indented when it is the only one.
func writeReport(rep diag.Report, asJSON, indent bool) error {
	if asJSON {
		if indent {
			return diag.WriteJSON(os.Stdout, rep)
		}
		return json.NewEncoder(os.Stdout).Encode(rep)
	}
	if err := diag.WriteCounts(os.Stdout, rep); err != nil {
		return err
	}
	fmt.Println()
	return diag.WriteFindings(os.Stdout, rep.Findings)
}

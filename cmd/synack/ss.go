package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/synack/synack/diag"
	"github.com/synack/synack/tcp"
)

func init() {
	register(&command{
		name:    "ss",
		summary: "list TCP connections with state, queues, timers, RTT and owning process",
		run:     runSS,
	})
}

func runSS(args []string) int {
	fs := flag.NewFlagSet("ss", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: synack ss [--host | --admin URL] [--json] [--state STATE] [--sport N] [--dport N] [--process NAME]")
		fs.PrintDefaults()
	}
	var src diagSource
	src.addFlags(fs)
	asJSON := fs.Bool("json", false, "write the rows as JSON")
	state := fs.String("state", "", "only rows in these `STATES`, comma-separated (close-wait, TIME-WAIT, syn-recv, estab, ...)")
	sport := fs.Int("sport", 0, "only rows with this local `port`")
	dport := fs.Int("dport", 0, "only rows with this remote `port`")
	process := fs.String("process", "", "only rows owned by a process whose name contains `NAME`")
	if status, done := parseFlags(fs, args); done {
		return status
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "synack ss: unexpected arguments %q\n", fs.Args())
		return 2
	}
	var states []tcp.State
	if *state != "" {
		for _, name := range strings.Split(*state, ",") {
			st, ok := diag.ParseState(name)
			if !ok {
				fmt.Fprintf(os.Stderr, "synack ss: unknown state %q\n", name)
				return 2
			}
			states = append(states, st)
		}
	}
	snap, err := src.snapshot()
	if err != nil {
		return diagFail("ss", 1, err)
	}
	rows := diag.Filter(snap.Rows, func(r diag.Row) bool {
		switch {
		case len(states) > 0 && !containsState(states, r.State):
			return false
		case *sport != 0 && int(r.Local.Port()) != *sport:
			return false
		case *dport != 0 && int(r.Remote.Port()) != *dport:
			return false
		case *process != "" && !strings.Contains(r.Process, *process):
			return false
		}
		return true
	})
	diag.SortRows(rows)
	if *asJSON {
		if rows == nil {
			rows = []diag.Row{}
		}
		err = diag.WriteJSON(os.Stdout, rows)
	} else {
		err = diag.WriteTable(os.Stdout, rows)
		for _, n := range snap.Notes {
			fmt.Fprintln(os.Stderr, "note:", n)
		}
	}
	if err != nil {
		return diagFail("ss", 1, err)
	}
	return 0
}

func containsState(states []tcp.State, s tcp.State) bool {
	for _, x := range states {
		if x == s {
			return true
		}
	}
	return false
}

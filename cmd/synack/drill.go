package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/synack/synack/internal/pktdrill"
)

func init() {
	register(&command{
		name:    "drill",
		summary: "run packetdrill scripts against the stack (virtual clock)",
		run:     runDrill,
	})
}

func runDrill(args []string) int {
	fs := flag.NewFlagSet("drill", flag.ContinueOnError)
	verbose := fs.Bool("v", false, "log every packet and system call")
	strict := fs.Bool("strict", false, "compare FreeBSD's constants too (no compatibility profile)")
	quiet := fs.Bool("q", false, "print only failures and the summary")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: synack drill [-v] [-q] [-strict] SCRIPT.pkt|DIR...")
		fmt.Fprintln(fs.Output(), "\nRuns packetdrill scripts against a fresh synack stack each, on a virtual clock.")
		fmt.Fprintln(fs.Output(), "A directory runs every .pkt file below it.")
		fs.PrintDefaults()
	}
	if status, done := parseFlags(fs, args); done {
		return status
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	var files []string
	for _, a := range fs.Args() {
		st, err := os.Stat(a)
		if err != nil {
			fmt.Fprintln(os.Stderr, "synack drill:", err)
			return 2
		}
		if !st.IsDir() {
			files = append(files, a)
			continue
		}
		filepath.WalkDir(a, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(p, ".pkt") {
				files = append(files, p)
			}
			return nil
		})
	}
	sort.Strings(files)
	o := pktdrill.Options{}
	if *strict {
		o.Profile = pktdrill.Strict
	}
	var counts [3]int
	for _, f := range files {
		var log io.Writer
		if *verbose {
			fmt.Printf("== %s\n", f)
			log = os.Stdout
		}
		o.Log = log
		res := pktdrill.RunFile(f, o)
		counts[res.Status]++
		if !*quiet || res.Status == pktdrill.Fail {
			fmt.Println(res)
		}
	}
	fmt.Printf("%d scripts: %d passed, %d failed, %d skipped\n", len(files), counts[pktdrill.Pass], counts[pktdrill.Fail], counts[pktdrill.Skip])
	if counts[pktdrill.Fail] > 0 {
		return 1
	}
	return 0
}

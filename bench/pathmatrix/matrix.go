package pathmatrix

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/synack/synack/bench"
)

// Options picks what RunMatrix runs.
type Options struct {
	Cells []Cell
	Impls []Impl
	Seed  int64
	// Limit bounds each transfer (default 60 s); one that has not finished
	// by then is "not done in Limit".
	Limit time.Duration
	// Size, if set, replaces every cell's bulk size (Cell.Size).
	Size int64
	// SkipOneMiB leaves out the separate 1 MiB transfer of cells whose bulk
	// size is larger (where it is 1 MiB, the bulk run is that transfer).
	SkipOneMiB bool
	// QuietWait, if set, is the longest each run waits beforehand for the
	// rest of the machine to use under QuietCores (bench.WaitQuiet).
	QuietWait  time.Duration
	QuietCores float64
	// Progress, if set, gets a line per finished run.
	Progress io.Writer
}

// run is Run after waiting for a quiet machine, if asked to.
func (o *Options) run(impl Impl, c Cell, size int64) (Result, error) {
	if o.QuietWait > 0 {
		bench.WaitQuiet(o.QuietCores, o.QuietWait)
	}
	return Run(impl, c, size, o.Seed, o.Limit)
}

// Row is one implementation on one cell.
type Row struct {
	Cell   Cell
	Impl   Impl
	Bulk   Result
	OneMiB Result // the 1 MiB completion; OneMiB.Size == 0 when not run
	Err    error  // set-up failure or corrupt data (then the results are partial)
}

// RunMatrix runs every implementation on every cell, one transfer at a
// time, each on a fresh path.
func RunMatrix(o Options) []Row {
	if o.Limit <= 0 {
		o.Limit = 60 * time.Second
	}
	var rows []Row
	for _, c := range o.Cells {
		for _, impl := range o.Impls {
			r := Row{Cell: c, Impl: impl}
			size := c.Size()
			if o.Size > 0 {
				size = o.Size
			}
			r.Bulk, r.Err = o.run(impl, c, size)
			if r.Err == nil {
				switch {
				case size == 1<<20:
					r.OneMiB = r.Bulk
				case !o.SkipOneMiB:
					r.OneMiB, r.Err = o.run(impl, c, 1<<20)
				}
			}
			if o.Progress != nil {
				fmt.Fprintf(o.Progress, "%-28s %-16s %s\n", c, impl, r.summary())
			}
			rows = append(rows, r)
		}
	}
	return rows
}

func (r Row) summary() string {
	if r.Err != nil {
		return "error: " + r.Err.Error()
	}
	s := fmt.Sprintf("%s: %s, retrans %s, D-SACKs %s", sizeName(r.Bulk.Size), r.goodputUnit(), count(r.Bulk.Retrans), count(r.Bulk.Spurious))
	if rc := r.Bulk.Recovery; rc != nil {
		s += fmt.Sprintf(", spurious episodes %d (undone %d), RACK lost %d, TLPs %d", rc.SpuriousEpisodes, rc.Undos, rc.RACKLosses, rc.TLPProbes)
	}
	if r.OneMiB.Size > 0 {
		s += ", 1 MiB in " + r.oneMiB()
	}
	return s + ", other load " + r.load()
}

func sizeName(n int64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d MiB", n>>20)
}

func count(n int64) string {
	if n < 0 {
		return "—"
	}
	return fmt.Sprint(n)
}

func (r Row) goodput() string {
	if r.Err != nil {
		return "error"
	}
	return resultCell(r.Bulk, func(res Result) string { return fmt.Sprintf("%.1f", res.Goodput()/1e6) })
}

// goodputUnit is goodput with its unit when there is a figure.
func (r Row) goodputUnit() string {
	if r.Err == nil && r.Bulk.Done {
		return r.goodput() + " Mbit/s"
	}
	return r.goodput()
}

// load is the most cores other processes used during the row's runs.
func (r Row) load() string {
	l := max(r.Bulk.OtherLoad, r.OneMiB.OtherLoad)
	if l < 0 {
		return "?"
	}
	return fmt.Sprintf("%.1f", l)
}

func (r Row) oneMiB() string {
	if r.OneMiB.Size == 0 {
		return "—"
	}
	return resultCell(r.OneMiB, func(res Result) string { return fmt.Sprintf("%.2f s", res.Elapsed.Seconds()) })
}

// resultCell is f(res), or what became of a run that did not finish.
func resultCell(res Result, f func(Result) string) string {
	if !res.Done {
		return fmt.Sprintf("not done in %v (%s)", res.Elapsed.Round(time.Second), kib(res.Received))
	}
	return f(res)
}

func kib(n int64) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", n>>10)
}

// Markdown writes the rows as two tables: every figure per cell and
// implementation, then goodput alone with cells as rows and
// implementations as columns, plus the ratios of synack to gVisor and to
// Linux (CUBIC), the baselines the loss-recovery work is measured
// against.
//
// "D-SACKs" is the sender's count of D-SACKs received: segments for
// Linux (tcpi_dsack_dups) and gVisor, blocks for synack; "spurious
// episodes" is synack's own count of recoveries and timeouts found
// spurious, with those undone in brackets (Recovery).
func Markdown(w io.Writer, rows []Row) {
	fmt.Fprintln(w, "| path | size | stack | goodput Mbit/s | retrans | D-SACKs | spurious episodes (undone) | TLPs | 1 MiB done in | other load |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		retr, spur, epi, tlp := "—", "—", "—", "—"
		if r.Err == nil && r.Bulk.Done {
			retr, spur = count(r.Bulk.Retrans), count(r.Bulk.Spurious)
			if rc := r.Bulk.Recovery; rc != nil {
				epi, tlp = fmt.Sprintf("%d (%d)", rc.SpuriousEpisodes, rc.Undos), fmt.Sprint(rc.TLPProbes)
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Cell, sizeName(r.Bulk.Size), r.Impl, r.goodput(), retr, spur, epi, tlp, r.oneMiB(), r.load())
	}
	for _, r := range rows {
		if r.Err != nil {
			fmt.Fprintf(w, "\n%s %s: %v\n", r.Cell, r.Impl, r.Err)
		}
	}

	// Goodput: cells x implementations.
	var impls []Impl
	seen := map[Impl]bool{}
	var cells []Cell
	seenCell := map[Cell]bool{}
	byKey := map[Cell]map[Impl]Row{}
	for _, r := range rows {
		if !seen[r.Impl] {
			seen[r.Impl] = true
			impls = append(impls, r.Impl)
		}
		if !seenCell[r.Cell] {
			seenCell[r.Cell] = true
			cells = append(cells, r.Cell)
			byKey[r.Cell] = map[Impl]Row{}
		}
		byKey[r.Cell][r.Impl] = r
	}
	fmt.Fprintln(w)
	head := []string{"path"}
	for _, i := range impls {
		head = append(head, string(i))
	}
	ratios := [][2]Impl{
		{Synack, GVisorReno}, {Synack, GVisorCubic}, {Synack, LinuxCubic},
		{SynackDupThresh, GVisorReno}, {SynackBBR, Synack}, {SynackBBR, LinuxBBR},
		{Synack, SynackNewReno},
		{SynackLinux, LinuxCubic}, {LinuxSynack, LinuxCubic},
	}
	var useRatios [][2]Impl
	for _, q := range ratios {
		if seen[q[0]] && seen[q[1]] {
			useRatios = append(useRatios, q)
			head = append(head, fmt.Sprintf("%s / %s", q[0], q[1]))
		}
	}
	fmt.Fprintf(w, "| %s |\n", strings.Join(head, " | "))
	fmt.Fprintf(w, "|%s\n", strings.Repeat("---|", len(head)))
	for _, c := range cells {
		line := []string{c.String()}
		for _, i := range impls {
			r, ok := byKey[c][i]
			switch {
			case !ok:
				line = append(line, "")
			case r.Err != nil:
				line = append(line, "error")
			case !r.Bulk.Done:
				line = append(line, fmt.Sprintf("not done in %v", r.Bulk.Elapsed.Round(time.Second)))
			default:
				line = append(line, fmt.Sprintf("%.1f", r.Bulk.Goodput()/1e6))
			}
		}
		for _, q := range useRatios {
			x, y := byKey[c][q[0]], byKey[c][q[1]]
			if x.Err == nil && y.Err == nil && x.Bulk.Done && y.Bulk.Done {
				line = append(line, fmt.Sprintf("%.2f", x.Bulk.Goodput()/y.Bulk.Goodput()))
			} else {
				line = append(line, "—")
			}
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(line, " | "))
	}
}

package bench

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
)

// Summary is the median, min and max of one metric over runs.
type Summary struct {
	Median, Min, Max float64
	N                int
}

// Summarize returns the median (the mean of the middle two for an even
// count), min and max of v.
func Summarize(v []float64) Summary {
	if len(v) == 0 {
		return Summary{Median: math.NaN(), Min: math.NaN(), Max: math.NaN()}
	}
	w := sortFloats(v)
	n := len(w)
	med := w[n/2]
	if n%2 == 0 {
		med = (w[n/2-1] + w[n/2]) / 2
	}
	return Summary{Median: med, Min: w[0], Max: w[n-1], N: n}
}

// Cell is what one implementation got for one shape over all runs.
type Cell struct {
	Results []Result
	Errors  []error
}

// summary of the named metric over the successful runs.
func (c *Cell) summary(name string) (Summary, Metric, bool) {
	var v []float64
	var m Metric
	for _, r := range c.Results {
		for _, x := range r.Metrics {
			if x.Name == name {
				v = append(v, x.Value)
				m = x
			}
		}
	}
	if len(v) == 0 {
		return Summary{}, m, false
	}
	return Summarize(v), m, true
}

// Table is the outcome of a whole comparison.
type Table struct {
	Impls  []Impl
	Shapes []Shape
	Runs   int
	Cells  map[string]map[Impl]*Cell // shape name -> impl
	// Disturbed: results whose OtherLoad reached this are marked "!".
	Disturbed float64
}

// NewTable makes an empty table.
func NewTable(impls []Impl, shapes []Shape, runs int) *Table {
	t := &Table{Impls: impls, Shapes: shapes, Runs: runs, Cells: map[string]map[Impl]*Cell{}}
	for _, s := range shapes {
		t.Cells[s.Name] = map[Impl]*Cell{}
		for _, i := range impls {
			t.Cells[s.Name][i] = &Cell{}
		}
	}
	return t
}

// Add records one run.
func (t *Table) Add(shape string, impl Impl, r Result, err error) {
	c := t.Cells[shape][impl]
	if err != nil {
		c.Errors = append(c.Errors, err)
		return
	}
	c.Results = append(c.Results, r)
}

func fmtNum(v float64) string {
	a := math.Abs(v)
	switch {
	case math.IsNaN(v):
		return "-"
	case a == 0:
		return "0"
	case a >= 100000:
		return fmt.Sprintf("%.0fk", v/1000)
	case a >= 10000:
		return fmt.Sprintf("%.1fk", v/1000)
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

func fmtSummary(s Summary) string {
	if s.N <= 1 {
		return fmtNum(s.Median)
	}
	return fmt.Sprintf("%s (%s–%s)", fmtNum(s.Median), fmtNum(s.Min), fmtNum(s.Max))
}

// firstLine shortens an error for a table cell.
func shortErr(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 110 {
		s = s[:107] + "..."
	}
	return "failed: " + s
}

func (t *Table) disturbed(c *Cell) bool {
	for _, r := range c.Results {
		if t.Disturbed > 0 && r.OtherLoad >= t.Disturbed {
			return true
		}
	}
	return false
}

// Write prints the table: per shape and metric, each implementation's median
// (min–max) and the ratio of the first implementation to the second
// (synack/gVisor channel).
func (t *Table) Write(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	hdr := []string{"shape", "metric"}
	for _, i := range t.Impls {
		hdr = append(hdr, string(i))
	}
	ratio := len(t.Impls) >= 2
	if ratio {
		hdr = append(hdr, fmt.Sprintf("%s/%s", t.Impls[0], t.Impls[1]))
	}
	fmt.Fprintln(tw, strings.Join(hdr, "\t"))
	var failures []string
	for _, sh := range t.Shapes {
		cells := t.Cells[sh.Name]
		// The metric names, from any implementation that has a result.
		var names []string
		for _, i := range t.Impls {
			if rs := cells[i].Results; len(rs) > 0 {
				for _, m := range rs[0].Metrics {
					names = append(names, m.Name)
				}
				break
			}
		}
		if len(names) == 0 {
			names = []string{"-"}
		}
		for k, name := range names {
			label := ""
			if k == 0 {
				label = fmt.Sprintf("%s (%s)", sh.Name, sh.Desc)
			}
			row := []string{label}
			var unit string
			var meds []float64
			for _, i := range t.Impls {
				c := cells[i]
				s, m, ok := c.summary(name)
				if m.Unit != "" {
					unit = m.Unit
				}
				switch {
				case ok:
					cell := fmtSummary(s)
					if t.disturbed(c) {
						cell += " !"
					}
					if len(c.Errors) > 0 {
						cell += fmt.Sprintf(" [%d/%d failed]", len(c.Errors), len(c.Errors)+len(c.Results))
					}
					row = append(row, cell)
					meds = append(meds, s.Median)
				case len(c.Errors) > 0:
					if k == 0 {
						row = append(row, "failed (see below)")
					} else {
						row = append(row, "")
					}
					meds = append(meds, math.NaN())
				default:
					row = append(row, "-")
					meds = append(meds, math.NaN())
				}
			}
			metric := name
			if unit != "" {
				metric += " [" + unit + "]"
			}
			row = append([]string{row[0], metric}, row[1:]...)
			if ratio {
				r := meds[0] / meds[1]
				if math.IsNaN(r) || math.IsInf(r, 0) {
					row = append(row, "-")
				} else {
					row = append(row, fmt.Sprintf("%.2f", r))
				}
			}
			fmt.Fprintln(tw, strings.Join(row, "\t"))
		}
		for _, i := range t.Impls {
			for _, err := range cells[i].Errors {
				failures = append(failures, fmt.Sprintf("%s / %s: %s", sh.Name, i, shortErr(err)))
			}
		}
	}
	tw.Flush()
	fmt.Fprintln(w, "\nmedian (min–max) of the runs; \"!\": some run had other processes using the CPU (see Runs)")
	if len(failures) > 0 {
		fmt.Fprintln(w, "\nFailures:")
		for _, f := range failures {
			fmt.Fprintln(w, "  "+f)
		}
	}
	// Notes: what each run actually did (transfer size, counts).
	fmt.Fprintln(w, "\nRuns:")
	for _, sh := range t.Shapes {
		for _, i := range t.Impls {
			var notes []string
			for _, r := range t.Cells[sh.Name][i].Results {
				n := r.Note
				if r.OtherLoad >= 0 {
					n += fmt.Sprintf(" [others %.2f cores]", r.OtherLoad)
				}
				notes = append(notes, n)
			}
			if len(notes) > 0 {
				fmt.Fprintf(w, "  %-10s %-12s %s\n", sh.Name, i, strings.Join(notes, "; "))
			}
		}
	}
}

package fairness

import (
	"fmt"
	"io"
	"time"
)

// JainTarget is issue 11's target for two flows of one controller.
const JainTarget = 0.9

// PairsMarkdown writes the fairness table. The verdict applies the
// target to same-controller pairs only; a mixed pair's index is reported
// without one.
func PairsMarkdown(w io.Writer, rs []PairResult) {
	fmt.Fprintln(w, "| pair | clock | flow 1 Mbit/s (share) | flow 2 Mbit/s (share) | Jain, whole run | Jain, second half | link used | retrans 1 / 2 | Jain ≥ 0.9 |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		clk := "real"
		if r.Virtual {
			clk = "virtual"
		}
		verdict := "— (mixed)"
		if r.Names[0] == r.Names[1] {
			verdict = "no"
			if r.Jain() >= JainTarget {
				verdict = "yes"
			}
		}
		fmt.Fprintf(w, "| %s vs %s | %s | %.1f (%.0f %%) | %.1f (%.0f %%) | %.3f | %.3f | %.0f %% | %s / %s | %s |\n",
			r.Names[0], r.Names[1], clk, r.Mbit(0), 100*r.Share(0), r.Mbit(1), 100*r.Share(1),
			r.Jain(), r.LateJain(), 100*r.Utilization(), count(r.Retrans[0]), count(r.Retrans[1]), verdict)
	}
}

// SlowStartMarkdown writes the slow-start table.
func SlowStartMarkdown(w io.Writer, rs []SlowStartResult) {
	fmt.Fprintf(w, "| controller | done in | goodput Mbit/s | %.0f %% of the link over %v at | within %v | over %v at | slow start ended at (cwnd, by) | retrans by exit + %v | retrans in all | RTOs |\n",
		100*ReachFraction, RateWindow, ReachWithin, HoldWindow, ExitWindow)
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		done := fmt.Sprintf("not done in %v", r.Elapsed.Round(time.Millisecond))
		if r.Done {
			done = r.Elapsed.Round(time.Millisecond).String()
		}
		// The target is the first: reached. Whether the rate
		// then holds is the next column's figure.
		within := "no"
		if r.Reach > 0 && r.Reach <= ReachWithin {
			within = "yes"
		}
		exit := "never"
		if r.Exit > 0 {
			by := "delay"
			if r.ByLoss {
				by = "loss"
			}
			exit = fmt.Sprintf("%v (%d KiB, %s)", r.Exit.Round(time.Millisecond), r.ExitCWnd>>10, by)
		}
		fmt.Fprintf(w, "| %s | %s | %.1f | %s | %s | %s | %s | %d | %d | %d |\n",
			r.Name, done, r.Goodput()/1e6, at(r.Reach), within, at(r.Hold), exit, r.RetransAtExit, r.Retrans, r.Timeouts)
	}
}

func at(d time.Duration) string {
	if d == 0 {
		return "never"
	}
	return d.Round(time.Millisecond).String()
}

func count(n int64) string {
	if n < 0 {
		return "—"
	}
	return fmt.Sprint(n)
}

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
	fmt.Fprintf(w, "| controller | done in | goodput Mbit/s | %.0f %% of the link at | within %v | slow start ended at (cwnd) | retrans by exit + %d RTT | retrans in all | RTOs |\n",
		100*ReachFraction, ReachWithin, ExitWindow)
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		done := fmt.Sprintf("not done in %v", r.Elapsed.Round(time.Millisecond))
		if r.Done {
			done = r.Elapsed.Round(time.Millisecond).String()
		}
		reach, within := "never", "no"
		if r.Reach > 0 {
			reach = r.Reach.Round(time.Millisecond).String()
			if r.Reach <= ReachWithin {
				within = "yes"
			}
		}
		exit := "never"
		if r.Exit > 0 {
			exit = fmt.Sprintf("%v (%d KiB)", r.Exit.Round(time.Millisecond), r.ExitCWnd>>10)
		}
		fmt.Fprintf(w, "| %s | %s | %.1f | %s | %s | %s | %d | %d | %d |\n",
			r.Name, done, r.Goodput()/1e6, reach, within, exit, r.RetransAtExit, r.Retrans, r.Timeouts)
	}
}

func count(n int64) string {
	if n < 0 {
		return "—"
	}
	return fmt.Sprint(n)
}

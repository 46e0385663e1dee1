package diag

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Severity ranks findings.
type Severity int

// Severities, least severe first.
const (
	Info    Severity = iota // worth knowing; nothing to fix
	Warning                 // something is likely wrong or about to go wrong
	Problem                 // something is wrong now
)

func (s Severity) String() string {
	switch s {
	case Info:
		return "info"
	case Warning:
		return "warning"
	case Problem:
		return "problem"
	}
	return fmt.Sprintf("severity(%d)", int(s))
}

// MarshalText writes the name: "info", "warning", "problem".
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads what MarshalText writes.
func (s *Severity) UnmarshalText(b []byte) error {
	switch strings.ToLower(string(b)) {
	case "info":
		*s = Info
	case "warning":
		*s = Warning
	case "problem":
		*s = Problem
	default:
		return fmt.Errorf("diag: unknown severity %q", b)
	}
	return nil
}

// Finding is one pattern a rule recognized, told so that someone can act on
// it.
type Finding struct {
	Rule     string   `json:"rule"`     // the rule's name, stable: "close-wait", "time-wait-ports", ...
	Severity Severity `json:"severity"` // info, warning, problem
	Seen     string   `json:"seen"`     // what is seen, with the numbers
	Means    string   `json:"means"`    // what it usually means
	Confirm  []string `json:"confirm"`  // how to confirm it
	Do       []string `json:"do"`       // what to do, settings included

	Count int `json:"count"` // the number that made the rule fire (connections, drops, ...)

	// The process, local port and remote end most involved, when there is
	// one. For sockets that have no owner any more (TIME-WAIT), Process is
	// the likely owner: the listener on the local port or the process with
	// open connections to the same destination.
	Process string `json:"process,omitempty"` // "name (pid N)"
	PID     int    `json:"pid,omitempty"`
	Port    uint16 `json:"port,omitempty"`
	Remote  string `json:"remote,omitempty"`
}

// SortFindings orders findings most severe first, then by count, largest
// first, then by rule name.
func SortFindings(fs []Finding) {
	slices.SortStableFunc(fs, func(a, b Finding) int {
		if c := cmp.Compare(b.Severity, a.Severity); c != 0 {
			return c
		}
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return cmp.Compare(a.Rule, b.Rule)
	})
}

// Worst is the highest severity among findings and whether there is any.
func Worst(fs []Finding) (Severity, bool) {
	if len(fs) == 0 {
		return Info, false
	}
	w := Info
	for _, f := range fs {
		w = max(w, f.Severity)
	}
	return w, true
}

// ExitStatus maps findings to a process exit status for scripts: 0 when
// there is nothing above info, 1 for warnings, 2 for problems.
func ExitStatus(fs []Finding) int {
	w, ok := Worst(fs)
	switch {
	case !ok:
		return 0
	case w >= Problem:
		return 2
	case w >= Warning:
		return 1
	}
	return 0
}

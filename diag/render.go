package diag

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/synack/synack/tcp"
)

// Report is what `synack diagnose` shows: counts, how they moved, the
// counters that matter, and the findings.
type Report struct {
	Source   string            `json:"source"`
	Time     time.Time         `json:"time"`
	Total    int               `json:"total"`
	Counts   map[string]int    `json:"counts"`            // by RFC state name, every state
	Changes  map[string]int    `json:"changes,omitempty"` // since the previous snapshot, states that moved
	Since    time.Duration     `json:"-"`                 // time since the previous snapshot; 0 without one
	Counters map[string]uint64 `json:"counters,omitempty"`
	// CounterChanges are the KeyCounters that moved since the previous
	// snapshot.
	CounterChanges map[string]uint64   `json:"counter_changes,omitempty"`
	Listeners      map[uint16]Listener `json:"listeners,omitempty"`
	Findings       []Finding           `json:"findings"`
	Status         int                 `json:"status"` // ExitStatus(Findings)
	Notes          []string            `json:"notes,omitempty"`
}

// MarshalJSON writes the report with "findings": [] when there are none,
// never null, so that consumers can iterate without a check.
func (r Report) MarshalJSON() ([]byte, error) {
	type plain Report // without this method
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	return json.Marshal(plain(r))
}

// KeyCounters are the counters a report shows, in this order, when the
// source has them.
var KeyCounters = []string{
	"ActiveOpens", "PassiveOpens", "AttemptFails", "EstabResets", "CurrEstab",
	"InSegs", "OutSegs", "RetransSegs", "InErrs", "OutRsts",
	"ListenOverflows", "ListenDrops", "SyncookiesSent", "SyncookiesRecv", "SyncookiesFailed",
	"TCPTimeWaitOverflow", "TCPAbortOnMemory",
}

// NewReport diagnoses cur (against prev, when not nil) and gathers what
// the renderers show.
func NewReport(cur Snapshot, prev *Snapshot, th Thresholds) Report {
	if cur.Listeners == nil {
		cur.FillListeners(nil)
	}
	counts := CountStates(cur.Rows)
	r := Report{
		Source: cur.Source, Time: cur.Time, Total: counts.Total(), Counts: counts.ByName(),
		Counters: make(map[string]uint64), Listeners: cur.Listeners, Notes: cur.Notes,
		Findings: Diagnose(cur, prev, th),
	}
	r.Status = ExitStatus(r.Findings)
	for _, n := range KeyCounters {
		if v, ok := cur.Counters[n]; ok {
			r.Counters[n] = v
		}
	}
	if prev != nil {
		r.Since = cur.Time.Sub(prev.Time)
		r.Changes = make(map[string]int)
		pc := CountStates(prev.Rows)
		for _, s := range tcp.States() {
			if d := counts[s] - pc[s]; d != 0 {
				r.Changes[s.String()] = d
			}
		}
		r.CounterChanges = make(map[string]uint64)
		for _, n := range KeyCounters {
			a, ok1 := prev.Counters[n]
			b, ok2 := cur.Counters[n]
			if ok1 && ok2 && b > a {
				r.CounterChanges[n] = b - a
			}
		}
	}
	return r
}

// WriteJSON writes v as indented JSON.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// SortRows orders rows as the table shows them: by state in the RFC's
// order, then local, then remote address.
func SortRows(rows []Row) {
	slices.SortStableFunc(rows, func(a, b Row) int {
		if c := cmp.Compare(a.State, b.State); c != 0 {
			return c
		}
		if c := a.Local.Compare(b.Local); c != 0 {
			return c
		}
		return a.Remote.Compare(b.Remote)
	})
}

// WriteTable writes rows as a table in the manner of `ss -tan`: state,
// queues, addresses, timer, RTT, age and owning process. The RTT is in
// milliseconds with three decimals (microseconds, the resolution Linux's
// tcp_info has), as `ss -i` and the admin page write it and as the JSON's
// rtt_ms holds it, whatever its size.
func WriteTable(w io.Writer, rows []Row) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "State\tRecv-Q\tSend-Q\tLocal Address:Port\tPeer Address:Port\tTimer\tRTT(ms)\tAge\tProcess")
	for _, r := range rows {
		peer := "*:*"
		if r.Remote.IsValid() && (r.Remote.Port() != 0 || !r.Remote.Addr().IsUnspecified()) {
			peer = r.Remote.String()
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n",
			r.State, r.RecvQ, r.SendQ, r.Local, peer, timerText(r), RTTText(r.RTT), durText(r.Age), processText(r))
	}
	return tw.Flush()
}

func timerText(r Row) string {
	if r.Timer == "" {
		return ""
	}
	s := r.Timer
	if r.TimerLeft > 0 {
		s += " " + Round(r.TimerLeft).String()
	}
	if r.Retransmits > 0 {
		s += fmt.Sprintf(" #%d", r.Retransmits)
	}
	return s
}

// RTTText writes a round-trip time in milliseconds with three decimals
// ("0.023", "12.345", "1500.000"), "" when unknown: the one unit every
// table of synack uses for RTTs.
func RTTText(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return strconv.FormatFloat(ms(d), 'f', 3, 64)
}

func durText(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return Round(d).String()
}

func processText(r Row) string {
	if r.PID <= 0 {
		return ""
	}
	return fmt.Sprintf("%s/%d", r.Process, r.PID)
}

// barWidth is the widest bar WriteCounts draws.
const barWidth = 40

// WriteCounts writes the per-state counts with a bar chart, the changes
// since the previous snapshot when the report has them, and the key
// counters.
func WriteCounts(w io.Writer, r Report) error {
	var b strings.Builder
	when := ""
	if !r.Time.IsZero() {
		when = " at " + r.Time.Format("15:04:05")
	}
	fmt.Fprintf(&b, "TCP sockets (%s)%s: %d\n", r.Source, when, r.Total)
	most := 0
	for _, n := range r.Counts {
		most = max(most, n)
	}
	watch := r.Changes != nil
	for _, s := range tcp.States() {
		name := s.String()
		n, d := r.Counts[name], r.Changes[name]
		if n == 0 && d == 0 {
			continue
		}
		change := ""
		if watch {
			change = signed(d)
		}
		fmt.Fprintf(&b, "  %-12s %7d %6s  %s\n", name, n, change, bar(n, most))
	}
	if r.Total == 0 {
		b.WriteString("  (none)\n")
	}
	if len(r.Counters) > 0 {
		var parts []string
		for _, n := range KeyCounters {
			v, ok := r.Counters[n]
			if !ok {
				continue
			}
			p := fmt.Sprintf("%s %d", n, v)
			if d := r.CounterChanges[n]; d > 0 {
				p += fmt.Sprintf(" (+%d)", d)
			}
			parts = append(parts, p)
		}
		label := "Counters since boot:"
		if watch && r.Since > 0 {
			label = fmt.Sprintf("Counters since boot (+ changes over the last %s):", Round(r.Since.Round(10*time.Millisecond)))
		}
		b.WriteString(label + "\n")
		line := " "
		for i, p := range parts {
			if i < len(parts)-1 {
				p += ","
			}
			if len(line)+1+len(p) > 100 {
				b.WriteString(line + "\n")
				line = " "
			}
			line += " " + p
		}
		b.WriteString(line + "\n")
	}
	for _, n := range r.Notes {
		b.WriteString(wrap("note: ", n, 100))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func signed(d int) string {
	switch {
	case d > 0:
		return fmt.Sprintf("+%d", d)
	case d < 0:
		return fmt.Sprint(d)
	}
	return "="
}

// bar draws n against the largest count as a row of blocks; any non-zero
// count gets at least one.
func bar(n, most int) string {
	if n <= 0 || most <= 0 {
		return ""
	}
	k := max(1, n*barWidth/most)
	return strings.Repeat("█", k)
}

// WriteFindings writes the findings in the order given (Diagnose sorts them
// most severe first), or a line saying there are none.
func WriteFindings(w io.Writer, fs []Finding) error {
	var b strings.Builder
	if len(fs) == 0 {
		b.WriteString("No findings: no pattern of trouble in the connection states.\n")
	}
	for i, f := range fs {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s  %s\n", strings.ToUpper(f.Severity.String()), f.Rule)
		b.WriteString(wrap("seen:    ", f.Seen, 100))
		b.WriteString(wrap("means:   ", f.Means, 100))
		for j, c := range f.Confirm {
			label := "confirm: "
			if j > 0 {
				label = "         "
			}
			b.WriteString(wrap(label+"- ", c, 100))
		}
		for j, d := range f.Do {
			label := "do:      "
			if j > 0 {
				label = "         "
			}
			b.WriteString(wrap(label+"- ", d, 100))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// wrap writes text after label, indented by two spaces, broken at spaces
// into lines of at most width runes; continuation lines line up under the
// text.
func wrap(label, text string, width int) string {
	var b strings.Builder
	pad := "  " + strings.Repeat(" ", len([]rune(label)))
	line := "  " + label
	n := 0
	for _, word := range strings.Fields(text) {
		if n > 0 && len([]rune(line))+1+len([]rune(word)) > width {
			b.WriteString(line + "\n")
			line, n = pad+word, 1
			continue
		}
		if n > 0 {
			line += " "
		}
		line += word
		n++
	}
	b.WriteString(line + "\n")
	return b.String()
}

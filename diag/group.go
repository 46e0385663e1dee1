package diag

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/synack/synack/tcp"
)

// Counts is the number of rows in each state.
type Counts map[tcp.State]int

// CountStates counts rows by state.
func CountStates(rows []Row) Counts {
	c := make(Counts)
	for _, r := range rows {
		c[r.State]++
	}
	return c
}

// Total is the number of rows counted.
func (c Counts) Total() int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

// ByName returns the counts keyed by the states' RFC names, every state
// present (zeros included), for JSON and metrics.
func (c Counts) ByName() map[string]int {
	m := make(map[string]int, len(tcp.States()))
	for _, s := range tcp.States() {
		m[s.String()] = c[s]
	}
	return m
}

// Key names the group a row belongs to; see ByProcess, ByLocalPort,
// ByRemoteAddr, ByRemotePort, ByRemote.
type Key func(Row) string

// Unknown is the group of rows whose key cannot be known (no process).
const Unknown = "(unknown)"

// Keys to group by.
var (
	// ByProcess groups by owning process: "name (pid N)".
	ByProcess Key = func(r Row) string {
		if l := r.ProcessLabel(); l != "" {
			return l
		}
		return Unknown
	}
	ByLocalPort  Key = func(r Row) string { return strconv.Itoa(int(r.Local.Port())) }
	ByRemoteAddr Key = func(r Row) string { return r.Remote.Addr().String() }
	ByRemotePort Key = func(r Row) string { return strconv.Itoa(int(r.Remote.Port())) }
	// ByRemote groups by remote address and port: one destination.
	ByRemote Key = func(r Row) string { return r.Remote.String() }
	// ByProcessAndLocalPort groups by owner and local port: one server.
	ByProcessAndLocalPort Key = func(r Row) string {
		return ByProcess(r) + " port " + ByLocalPort(r)
	}
)

// Group is a set of rows with the same key.
type Group struct {
	Key    string `json:"key"`
	Count  int    `json:"count"`
	Counts Counts `json:"-"`
	Rows   []Row  `json:"-"`
}

// Ages summarizes the known ages of the group's rows.
func (g Group) Ages() AgeSummary { return Ages(g.Rows) }

// GroupBy groups rows by key, largest group first (ties by key).
func GroupBy(rows []Row, key Key) []Group {
	idx := make(map[string]int)
	var gs []Group
	for _, r := range rows {
		k := key(r)
		i, ok := idx[k]
		if !ok {
			i = len(gs)
			idx[k] = i
			gs = append(gs, Group{Key: k, Counts: make(Counts)})
		}
		gs[i].Count++
		gs[i].Counts[r.State]++
		gs[i].Rows = append(gs[i].Rows, r)
	}
	slices.SortFunc(gs, func(a, b Group) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return cmp.Compare(a.Key, b.Key)
	})
	return gs
}

// Filter returns the rows for which keep is true.
func Filter(rows []Row, keep func(Row) bool) []Row {
	var out []Row
	for _, r := range rows {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

// InState returns the rows in one of the states.
func InState(rows []Row, states ...tcp.State) []Row {
	return Filter(rows, func(r Row) bool { return slices.Contains(states, r.State) })
}

// AgeSummary describes the ages of the rows whose age is known.
type AgeSummary struct {
	Known            int // rows with a known age
	Min, Median, Max time.Duration
}

// Ages summarizes the known (non-zero) ages of rows.
func Ages(rows []Row) AgeSummary {
	var as []time.Duration
	for _, r := range rows {
		if r.Age > 0 {
			as = append(as, r.Age)
		}
	}
	if len(as) == 0 {
		return AgeSummary{}
	}
	slices.Sort(as)
	return AgeSummary{Known: len(as), Min: as[0], Median: as[len(as)/2], Max: as[len(as)-1]}
}

// String reads "ages 1s..45s, median 20s", or "" when no age is known.
func (a AgeSummary) String() string {
	if a.Known == 0 {
		return ""
	}
	return fmt.Sprintf("ages %s..%s, median %s", Round(a.Min), Round(a.Max), Round(a.Median))
}

// Round shortens a duration for people: 1.234567s -> 1.23s, 93m12.5s -> 1h33m.
func Round(d time.Duration) time.Duration {
	switch {
	case d >= time.Hour:
		return d.Round(time.Minute)
	case d >= time.Minute:
		return d.Round(time.Second)
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d
}

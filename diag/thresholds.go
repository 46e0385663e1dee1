package diag

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// Thresholds decide when a pattern becomes a finding. Counts are numbers of
// connections; fractions are of a bound the snapshot knows (the ephemeral
// port range, a listener's backlog, a kernel limit), so they scale with the
// machine. A zero field takes the default given in its comment; a negative
// one turns that level of the rule off.
type Thresholds struct {
	// FIN-WAIT-1 connections for a warning / a problem. Default 20 / 200.
	FinWait1Warn, FinWait1Problem int
	// FIN-WAIT-2 connections for a warning / a problem. Default 20 / 200.
	FinWait2Warn, FinWait2Problem int
	// CLOSE-WAIT connections for a warning / a problem. Default 10 / 100.
	// CLOSE-WAIT never ends by itself, so the bar is low.
	CloseWaitWarn, CloseWaitProblem int
	// LAST-ACK connections for a warning / a problem. Default 20 / 200.
	LastAckWarn, LastAckProblem int
	// CLOSING connections for a warning / a problem. Default 20 / 200.
	ClosingWarn, ClosingProblem int

	// TimeWaitMany is the TIME-WAIT count reported as a note on connection
	// churn (severity info). Default 10000.
	TimeWaitMany int
	// TimeWaitPortsWarn / TimeWaitPortsProblem: the fraction of the
	// ephemeral port range held toward one destination ip:port (TIME-WAIT
	// plus open connections from ephemeral ports); past it the host runs out
	// of ports for that destination. Default 0.3 / 0.7.
	TimeWaitPortsWarn, TimeWaitPortsProblem float64
	// TimeWaitBuckets: the fraction of the kernel's TIME-WAIT table
	// (net.ipv4.tcp_max_tw_buckets) in use for a warning. Default 0.8.
	TimeWaitBuckets float64

	// SynRecvWarn / SynRecvProblem: half-open handshakes (SYN-RECEIVED) on
	// a listener as a fraction of its SYN backlog. Default 0.5 / 0.9.
	SynRecvWarn, SynRecvProblem float64
	// SynRecvMin: fewer half-open handshakes on a port never make a finding
	// unless its SYN backlog is full. Default 10.
	SynRecvMin int
	// SynRecvMany: SYN-RECEIVED connections on ports with no known bound,
	// for a warning. Default 256.
	SynRecvMany int
	// SynFloodWarn / SynFloodProblem: stalled half-open handshakes on a
	// port (their SYN,ACK retransmitted, or a second old) read as a SYN
	// flood whatever the backlog, when they are most of the port's
	// SYN-RECEIVED rows and at least SynRecvMin. Default 10 / 100.
	SynFloodWarn, SynFloodProblem int

	// AcceptQueueWarn / AcceptQueueProblem: a listener's accept queue as a
	// fraction of its backlog. Default 0.5 / 0.9.
	AcceptQueueWarn, AcceptQueueProblem float64
	// AcceptQueueMin: shorter queues never make a finding. Default 1.
	AcceptQueueMin int

	// RetransMin: a connection counts as retransmitting once its oldest
	// segment timed out this many times in a row. Default 2.
	RetransMin int
	// Retransmitting connections for a warning / a problem. Default 5 / 50.
	RetransWarn, RetransProblem int
	// RetransRatio: RetransSegs over OutSegs between two snapshots for a
	// warning, once at least RetransMinSegs segments went out. Default 0.02
	// and 1000.
	RetransRatio   float64
	RetransMinSegs int

	// Orphans: sockets no process owns any more (closed, still sending FIN
	// or waiting for the last ACK) as a fraction of
	// net.ipv4.tcp_max_orphans, for a warning. Default 0.5.
	Orphans float64
}

// DefaultThresholds returns the defaults documented on Thresholds.
func DefaultThresholds() Thresholds {
	return Thresholds{
		FinWait1Warn: 20, FinWait1Problem: 200,
		FinWait2Warn: 20, FinWait2Problem: 200,
		CloseWaitWarn: 10, CloseWaitProblem: 100,
		LastAckWarn: 20, LastAckProblem: 200,
		ClosingWarn: 20, ClosingProblem: 200,
		TimeWaitMany:      10000,
		TimeWaitPortsWarn: 0.3, TimeWaitPortsProblem: 0.7,
		TimeWaitBuckets: 0.8,
		SynRecvWarn:     0.5, SynRecvProblem: 0.9,
		SynRecvMin:   10,
		SynRecvMany:  256,
		SynFloodWarn: 10, SynFloodProblem: 100,
		AcceptQueueWarn: 0.5, AcceptQueueProblem: 0.9,
		AcceptQueueMin: 1,
		RetransMin:     2,
		RetransWarn:    5, RetransProblem: 50,
		RetransRatio: 0.02, RetransMinSegs: 1000,
		Orphans: 0.5,
	}
}

// withDefaults fills zero fields from DefaultThresholds.
func (t Thresholds) withDefaults() Thresholds {
	d := reflect.ValueOf(DefaultThresholds())
	v := reflect.ValueOf(&t).Elem()
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			v.Field(i).Set(d.Field(i))
		}
	}
	return t
}

// Set sets one threshold by its field name (case-insensitive), as in
// "CloseWaitWarn=5" on a command line.
func (t *Thresholds) Set(name, value string) error {
	v := reflect.ValueOf(t).Elem()
	f := v.FieldByNameFunc(func(n string) bool { return strings.EqualFold(n, name) })
	if !f.IsValid() {
		return fmt.Errorf("diag: no threshold %q (have %s)", name, strings.Join(ThresholdNames(), ", "))
	}
	switch f.Kind() {
	case reflect.Int:
		n, err := strconv.Atoi(value)
		if err != nil {
			return fmt.Errorf("diag: threshold %s: %w", name, err)
		}
		f.SetInt(int64(n))
	case reflect.Float64:
		x, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return fmt.Errorf("diag: threshold %s: %w", name, err)
		}
		f.SetFloat(x)
	}
	return nil
}

// ThresholdNames lists the names Set accepts.
func ThresholdNames() []string {
	ty := reflect.TypeFor[Thresholds]()
	out := make([]string, ty.NumField())
	for i := range out {
		out[i] = ty.Field(i).Name
	}
	return out
}

// level returns the severity count reaches against a warn and a problem
// bar, and whether it reaches either. A negative bar is off.
func level(count, warn, problem int) (Severity, bool) {
	switch {
	case problem >= 0 && count >= problem:
		return Problem, true
	case warn >= 0 && count >= warn:
		return Warning, true
	}
	return Info, false
}

// levelf is level for fractions.
func levelf(x, warn, problem float64) (Severity, bool) {
	switch {
	case problem >= 0 && x >= problem:
		return Problem, true
	case warn >= 0 && x >= warn:
		return Warning, true
	}
	return Info, false
}

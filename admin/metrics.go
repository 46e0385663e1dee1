package admin

import (
	"strconv"
	"strings"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/synack/synack/diag"
	"github.com/synack/synack/internal/buildinfo"
	"github.com/synack/synack/tcp"
)

// Metric names, in Prometheus's conventions (snake_case, counters ending
// in _total, base units; promlint finds nothing). The stack's counters
// keep netstat's groups and names, written in snake_case:
// synack_netstat_tcp_active_opens_total,
// synack_netstat_tcpext_listen_overflows_total,
// synack_netstat_ip_in_receives_total, synack_netstat_icmp_in_msgs_total,
// and the gauge synack_netstat_tcp_curr_estab (NetstatMetric gives the
// name of each). Before December 2026 they were written as node_exporter
// writes them (synack_netstat_Tcp_ActiveOpens_total) and
// synack_diag_finding_value was synack_diag_finding_count.
const (
	MetricConnections  = "synack_tcp_connections"       // gauge {state}: connections (and listeners) per state
	MetricTransitions  = "synack_tcp_transitions_total" // counter {from,to}: state changes since the admin server started
	MetricAcceptQueue  = "synack_listen_queue_length"   // gauge {addr,port}: handshakes waiting for Accept
	MetricBacklog      = "synack_listen_queue_backlog"  // gauge {addr,port}: the accept queue's bound
	MetricSynQueue     = "synack_syn_queue_length"      // gauge {addr,port}: half-open handshakes
	MetricSynBacklog   = "synack_syn_queue_backlog"     // gauge {addr,port}: the SYN queue's bound
	MetricFindings     = "synack_diag_findings"         // gauge {rule,severity}: findings of each rule at each severity (0 or 1)
	MetricFindingValue = "synack_diag_finding_value"    // gauge {rule,severity}: the number that made the rule fire
	MetricDiagStatus   = "synack_diag_status"           // gauge: 0 fine, 1 warnings, 2 problems (as synack diagnose exits)
	MetricEventsDrop   = "synack_events_dropped_total"  // counter: state changes not delivered to a slow subscriber
	MetricTraceDrop    = "synack_trace_dropped_total"   // counter: trace records dropped for slow /api/trace clients
	MetricTCPDrops     = "synack_tcp_drops_total"       // counter {reason}: segments the TCP core discarded, by tcp.DropReason
	MetricBuildInfo    = "synack_build_info"            // gauge {version,revision,goversion}: always 1
	// MetricRTT is a histogram of the smoothed RTT (RFC 6298 SRTT) of the
	// connections open at scrape time, those with a measured RTT: a
	// distribution at that moment, not samples accumulated since start,
	// so buckets can go down between scrapes. Read it with
	// histogram_quantile on the buckets as they are, not over rate().
	MetricRTT          = "synack_tcp_rtt_seconds"
	metricNetstatStart = "synack_netstat_"

	// MetricAckedBytes and MetricReceivedBytes are the connections'
	// payload bytes acknowledged by the peers and received in order
	// (stack.TCPCounters BytesAcked and BytesReceived; netstat has no such
	// counters, so they are not under synack_netstat_). `synack exporter
	// --host` has the same for the kernel, synack_host_tcp_*_bytes_total.
	MetricAckedBytes    = "synack_tcp_acked_bytes_total"
	MetricReceivedBytes = "synack_tcp_received_bytes_total"
)

// ownCounters are the stack's counters exported under a name of their
// own instead of a netstat one, with their help.
var ownCounters = map[string][2]string{
	"BytesAcked":    {MetricAckedBytes, "Payload bytes of the stack's connections acknowledged by the peers (RFC 4898 HCThruOctetsAcked)."},
	"BytesReceived": {MetricReceivedBytes, "Payload bytes the stack's connections received in order (RFC 4898 HCThruOctetsReceived)."},
}

// rttBuckets span a loopback or in-process RTT (tens of µs) to a path
// that is losing (seconds), about ×2–2.5 apart.
var rttBuckets = []float64{
	25e-6, 50e-6, 100e-6, 250e-6, 500e-6,
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
	1, 2.5, 5,
}

// NetstatMetric is the metric name of a netstat counter in group ("Tcp",
// "TcpExt", "Ip", "Icmp", "Udp") named name ("ActiveOpens"), a gauge or not:
// synack_netstat_tcp_active_opens_total.
func NetstatMetric(group, name string, gauge bool) string {
	n := metricNetstatStart + strings.ToLower(group) + "_" + snake(name)
	if !gauge {
		n += "_total"
	}
	return n
}

// snake writes a CamelCase name in snake_case, keeping acronyms whole:
// ActiveOpens → active_opens, InCsumErrors → in_csum_errors,
// TCPTimeWaitReopen → tcp_time_wait_reopen, ReasmOKs → reasm_oks.
func snake(s string) string {
	r := []rune(s)
	var b strings.Builder
	for i, c := range r {
		if unicode.IsUpper(c) && i > 0 {
			prevLower := unicode.IsLower(r[i-1]) || unicode.IsDigit(r[i-1])
			// The last capital of an acronym starts the next word
			// (TCPTime: tcp_time), unless what follows is only a
			// plural s (OKs).
			nextLower := i+1 < len(r) && unicode.IsLower(r[i+1]) &&
				!(r[i+1] == 's' && (i+2 == len(r) || unicode.IsUpper(r[i+2])))
			if prevLower || unicode.IsUpper(r[i-1]) && nextLower {
				b.WriteByte('_')
			}
		}
		b.WriteRune(unicode.ToLower(c))
	}
	return b.String()
}

// collector reads the stack at scrape time.
type collector struct {
	a *Server
}

var (
	descConnections = prometheus.NewDesc(MetricConnections, "TCP connections in each RFC 9293 state; LISTEN counts listeners.", []string{"state"}, nil)
	descTransitions = prometheus.NewDesc(MetricTransitions, "State changes seen since the admin server started, by RFC 9293 transition.", []string{"from", "to"}, nil)
	descAcceptQueue = prometheus.NewDesc(MetricAcceptQueue, "Completed handshakes waiting for Accept, per listener.", []string{"addr", "port"}, nil)
	descBacklog     = prometheus.NewDesc(MetricBacklog, "Bound of the accept queue (the listen backlog), per listener.", []string{"addr", "port"}, nil)
	descSynQueue    = prometheus.NewDesc(MetricSynQueue, "Half-open handshakes (SYN-RECEIVED), per listener.", []string{"addr", "port"}, nil)
	descSynBacklog  = prometheus.NewDesc(MetricSynBacklog, "Bound of the SYN queue, per listener.", []string{"addr", "port"}, nil)
	descFindings    = prometheus.NewDesc(MetricFindings, "Findings of `synack diagnose` on the stack's connections, by rule and severity.", []string{"rule", "severity"}, nil)
	descFindingN    = prometheus.NewDesc(MetricFindingValue, "The number that made a rule fire (connections, drops, ...), by rule and severity; 0 when it did not.", []string{"rule", "severity"}, nil)
	descStatus      = prometheus.NewDesc(MetricDiagStatus, "Worst finding: 0 none, 1 warning, 2 problem (the exit status of synack diagnose).", nil, nil)
	descTraceDrop   = prometheus.NewDesc(MetricTraceDrop, "Trace records dropped for /api/trace clients that read too slowly.", nil, nil)
	descTCPDrops    = prometheus.NewDesc(MetricTCPDrops, "Segments the TCP core discarded, by reason (RFC 9293 3.10.7 and the RFCs that refine it).", []string{"reason"}, nil)
	descBuildInfo   = prometheus.NewDesc(MetricBuildInfo, "The synack that serves these metrics: module version, VCS revision, Go version; always 1.", []string{"version", "revision", "goversion"}, nil)
	descRTT         = prometheus.NewDesc(MetricRTT, "Smoothed RTT of the connections open at scrape time that have measured one, in seconds (a distribution now, not accumulated samples).", nil, nil)
	descCounters    = counterDescs()
)

// counterDescs makes one Desc per stack counter, in counterFields order.
func counterDescs() []*prometheus.Desc {
	var out []*prometheus.Desc
	for _, f := range counterFields() {
		name := NetstatMetric(f.group, f.name, f.gauge)
		help := "netstat " + f.group + " " + f.name + " of the synack stack (counter)."
		own, isOwn := ownCounters[f.name]
		switch {
		case isOwn && f.group == "TcpExt":
			name, help = own[0], own[1]
		case f.group == "":
			name = MetricEventsDrop
			help = "State changes not delivered to a stack event subscriber whose channel was full."
		case f.gauge:
			help = "netstat " + f.group + " " + f.name + " of the synack stack (gauge)."
		}
		out = append(out, prometheus.NewDesc(name, help, nil, nil))
	}
	return out
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConnections, descTransitions, descAcceptQueue, descBacklog,
		descSynQueue, descSynBacklog, descFindings, descFindingN, descStatus, descTraceDrop, descTCPDrops,
		descBuildInfo, descRTT} {
		ch <- d
	}
	for _, d := range descCounters {
		ch <- d
	}
}

// Collect implements prometheus.Collector: one look at the stack.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	a := c.a
	s := a.s
	counts := s.StateCounts()
	for _, st := range tcp.States() {
		ch <- prometheus.MustNewConstMetric(descConnections, prometheus.GaugeValue, float64(counts[st]), st.String())
	}

	ctr := s.Counters()
	for i, f := range counterFields() {
		vt := prometheus.CounterValue
		if f.gauge {
			vt = prometheus.GaugeValue
		}
		ch <- prometheus.MustNewConstMetric(descCounters[i], vt, float64(f.get(ctr)))
	}
	// Every reason, zeros included, so a rate over a reason exists
	// before its first drop.
	for _, r := range tcp.DropReasons() {
		ch <- prometheus.MustNewConstMetric(descTCPDrops, prometheus.CounterValue, float64(ctr.Drops[r]), r.String())
	}

	for _, l := range s.Listeners() {
		addr := "*"
		if l.Addr.Addr().IsValid() {
			addr = l.Addr.Addr().String()
		}
		port := strconv.Itoa(int(l.Addr.Port()))
		ch <- prometheus.MustNewConstMetric(descAcceptQueue, prometheus.GaugeValue, float64(l.AcceptQueue), addr, port)
		ch <- prometheus.MustNewConstMetric(descBacklog, prometheus.GaugeValue, float64(l.Backlog), addr, port)
		ch <- prometheus.MustNewConstMetric(descSynQueue, prometheus.GaugeValue, float64(l.SynQueue), addr, port)
		ch <- prometheus.MustNewConstMetric(descSynBacklog, prometheus.GaugeValue, float64(l.SynBacklog), addr, port)
	}

	for _, t := range a.ev.snapshot(^uint64(0)).Transitions {
		ch <- prometheus.MustNewConstMetric(descTransitions, prometheus.CounterValue, float64(t.Count), t.From, t.To)
	}

	snap, rep := a.diagnose()
	CollectFindings(ch, descFindings, descFindingN, rep.Findings)
	ch <- prometheus.MustNewConstMetric(descStatus, prometheus.GaugeValue, float64(rep.Status))
	ch <- rttHistogram(snap.Rows)
	bi := buildinfo.Read()
	ch <- prometheus.MustNewConstMetric(descBuildInfo, prometheus.GaugeValue, 1, bi.Version, bi.Revision, bi.GoVersion)
	if a.opts.Tracer != nil {
		ch <- prometheus.MustNewConstMetric(descTraceDrop, prometheus.CounterValue, float64(a.opts.Tracer.Dropped()))
	}
}

// CollectFindings sends findings as two gauges labelled {rule, severity}:
// found, how many findings of the rule at that severity (0 or 1), and
// value, the number that made it fire. Every rule at every severity,
// zeros included, so alerts can tell "no finding" from "no data". The
// stack's /metrics and `synack exporter --host` both use it.
func CollectFindings(ch chan<- prometheus.Metric, found, value *prometheus.Desc, fs []diag.Finding) {
	type key struct{ rule, sev string }
	n := make(map[key]int)
	count := make(map[key]int)
	for _, f := range fs {
		k := key{f.Rule, f.Severity.String()}
		n[k]++
		count[k] += f.Count
	}
	for _, r := range diag.Rules() {
		for _, sev := range []diag.Severity{diag.Info, diag.Warning, diag.Problem} {
			k := key{r.Name, sev.String()}
			ch <- prometheus.MustNewConstMetric(found, prometheus.GaugeValue, float64(n[k]), k.rule, k.sev)
			ch <- prometheus.MustNewConstMetric(value, prometheus.GaugeValue, float64(count[k]), k.rule, k.sev)
		}
	}
}

// rttHistogram is MetricRTT over rows: the connections with a measured
// smoothed RTT, listeners and TIME-WAIT left out.
func rttHistogram(rows []diag.Row) prometheus.Metric {
	counts := make(map[float64]uint64, len(rttBuckets))
	var n uint64
	var sum float64
	for _, r := range rows {
		if r.RTT <= 0 || r.State == tcp.Listen || r.State == tcp.TimeWait {
			continue
		}
		x := r.RTT.Seconds()
		n++
		sum += x
		for _, b := range rttBuckets {
			if x <= b {
				counts[b]++ // cumulative: every bucket at or above x
			}
		}
	}
	return prometheus.MustNewConstHistogram(descRTT, n, sum, counts)
}

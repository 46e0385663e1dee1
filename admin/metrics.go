package admin

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/synack/synack/diag"
	"github.com/synack/synack/tcp"
)

// Metric names. The counters keep netstat's names, as node_exporter's
// node_netstat_* do: synack_netstat_Tcp_ActiveOpens_total,
// synack_netstat_TcpExt_ListenOverflows_total, synack_netstat_Ip_InReceives_total,
// synack_netstat_Icmp_InMsgs_total, and the gauge synack_netstat_Tcp_CurrEstab.
const (
	MetricConnections  = "synack_tcp_connections"       // gauge {state}: connections (and listeners) per state
	MetricTransitions  = "synack_tcp_transitions_total" // counter {from,to}: state changes since the admin server started
	MetricAcceptQueue  = "synack_listen_queue_length"   // gauge {addr,port}: handshakes waiting for Accept
	MetricBacklog      = "synack_listen_queue_backlog"  // gauge {addr,port}: the accept queue's bound
	MetricSynQueue     = "synack_syn_queue_length"      // gauge {addr,port}: half-open handshakes
	MetricSynBacklog   = "synack_syn_queue_backlog"     // gauge {addr,port}: the SYN queue's bound
	MetricFindings     = "synack_diag_findings"         // gauge {rule,severity}: findings of each rule at each severity (0 or 1)
	MetricFindingCount = "synack_diag_finding_count"    // gauge {rule,severity}: the number that made the rule fire
	MetricDiagStatus   = "synack_diag_status"           // gauge: 0 fine, 1 warnings, 2 problems (as synack diagnose exits)
	MetricEventsDrop   = "synack_events_dropped_total"  // counter: state changes not delivered to a slow subscriber
	MetricTraceDrop    = "synack_trace_dropped_total"   // counter: trace records dropped for slow /api/trace clients
	MetricTCPDrops     = "synack_tcp_drops_total"       // counter {reason}: segments the TCP core discarded, by tcp.DropReason
	metricNetstatStart = "synack_netstat_"
)

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
	descFindingN    = prometheus.NewDesc(MetricFindingCount, "The number that made a rule fire (connections, drops, ...), by rule and severity; 0 when it did not.", []string{"rule", "severity"}, nil)
	descStatus      = prometheus.NewDesc(MetricDiagStatus, "Worst finding: 0 none, 1 warning, 2 problem (the exit status of synack diagnose).", nil, nil)
	descTraceDrop   = prometheus.NewDesc(MetricTraceDrop, "Trace records dropped for /api/trace clients that read too slowly.", nil, nil)
	descTCPDrops    = prometheus.NewDesc(MetricTCPDrops, "Segments the TCP core discarded, by reason (RFC 9293 3.10.7 and the RFCs that refine it).", []string{"reason"}, nil)
	descCounters    = counterDescs()
)

// counterDescs makes one Desc per stack counter, in counterFields order.
func counterDescs() []*prometheus.Desc {
	var out []*prometheus.Desc
	for _, f := range counterFields() {
		name := metricNetstatStart + f.group + "_" + f.name + "_total"
		help := "netstat " + f.group + " " + f.name + " of the synack stack (counter)."
		switch {
		case f.group == "":
			name = MetricEventsDrop
			help = "State changes not delivered to a stack event subscriber whose channel was full."
		case f.gauge:
			name = metricNetstatStart + f.group + "_" + f.name
			help = "netstat " + f.group + " " + f.name + " of the synack stack (gauge)."
		}
		out = append(out, prometheus.NewDesc(name, help, nil, nil))
	}
	return out
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConnections, descTransitions, descAcceptQueue, descBacklog,
		descSynQueue, descSynBacklog, descFindings, descFindingN, descStatus, descTraceDrop, descTCPDrops} {
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

	// Every rule at every severity, zeros included, so alerts can tell
	// "no finding" from "no data".
	_, rep := a.diagnose()
	type key struct{ rule, sev string }
	found := make(map[key]int)
	count := make(map[key]int)
	for _, f := range rep.Findings {
		k := key{f.Rule, f.Severity.String()}
		found[k]++
		count[k] += f.Count
	}
	for _, r := range diag.Rules() {
		for _, sev := range []diag.Severity{diag.Info, diag.Warning, diag.Problem} {
			k := key{r.Name, sev.String()}
			ch <- prometheus.MustNewConstMetric(descFindings, prometheus.GaugeValue, float64(found[k]), k.rule, k.sev)
			ch <- prometheus.MustNewConstMetric(descFindingN, prometheus.GaugeValue, float64(count[k]), k.rule, k.sev)
		}
	}
	ch <- prometheus.MustNewConstMetric(descStatus, prometheus.GaugeValue, float64(rep.Status))
	if a.opts.Tracer != nil {
		ch <- prometheus.MustNewConstMetric(descTraceDrop, prometheus.CounterValue, float64(a.opts.Tracer.Dropped()))
	}
}

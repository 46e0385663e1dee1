//go:build linux

package hostlive

import (
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/synack/synack/admin"
	"github.com/synack/synack/internal/buildinfo"
	"github.com/synack/synack/tcp"
)

// Metric names of `synack exporter --host`, in Prometheus's conventions
// (snake_case, counters ending in _total, base units; promlint finds
// nothing). They start synack_host_ so that they never mix with the
// synack_ metrics of a synack stack's own /metrics. The alert rules in
// contrib/prometheus and the dashboard in contrib/grafana use them.
const (
	MetricConnections     = "synack_host_tcp_connections"                  // gauge {state,port}: sockets per RFC 9293 state and local port (listening ports, else "other")
	MetricTransitions     = "synack_host_tcp_transitions_total"            // counter {from,to}: state changes seen by the tracepoints
	MetricResets          = "synack_host_tcp_resets_total"                 // counter {direction}: RSTs sent and received
	MetricRetransmits     = "synack_host_tcp_retransmitted_segments_total" // counter: segments retransmitted
	MetricSynAckRetrans   = "synack_host_tcp_synack_retransmits_total"     // counter: SYN-ACKs retransmitted for half-open handshakes
	MetricAckedBytes      = "synack_host_tcp_acked_bytes_total"            // counter: payload bytes the peers acknowledged (tcp_info bytes_acked)
	MetricReceivedBytes   = "synack_host_tcp_received_bytes_total"         // counter: payload bytes received in order (tcp_info bytes_received)
	MetricAcceptQueue     = "synack_host_listen_queue_length"              // gauge {port}: completed handshakes waiting for accept
	MetricBacklog         = "synack_host_listen_queue_backlog"             // gauge {port}: the accept queue's bound
	MetricSynQueue        = "synack_host_syn_queue_length"                 // gauge {port}: half-open handshakes
	MetricSynBacklog      = "synack_host_syn_queue_backlog"                // gauge {port}: the bound on half-open handshakes
	MetricEphemeralPorts  = "synack_host_ephemeral_ports"                  // gauge: ports in net.ipv4.ip_local_port_range
	MetricFindings        = "synack_host_diag_findings"                    // gauge {rule,severity}: findings of each rule at each severity
	MetricFindingValue    = "synack_host_diag_finding_value"               // gauge {rule,severity}: the number that made the rule fire
	MetricDiagStatus      = "synack_host_diag_status"                      // gauge: 0 fine, 1 warnings, 2 problems
	MetricConnsTracked    = "synack_host_tracked_connections"              // gauge: entries of the per-connection table
	MetricConnsUntracked  = "synack_host_untracked_connections_total"      // counter: connections the table had no room for
	MetricEvents          = "synack_host_trace_events_total"               // counter: tracepoint events taken
	MetricLostEvents      = "synack_host_trace_lost_events_total"          // counter: tracepoint events the kernel could not record
	MetricSnapshotErrors  = "synack_host_snapshot_errors_total"            // counter: failed sock_diag reads
	MetricSnapshotTime    = "synack_host_snapshot_timestamp_seconds"       // gauge: when the counts were read
	MetricBuildInfo       = "synack_build_info"                            // gauge {version,revision,goversion}: always 1
	resetsSent, resetsRcv = "sent", "received"
)

// MetricNames lists every metric the collector exports.
func MetricNames() []string {
	return []string{
		MetricConnections, MetricTransitions, MetricResets, MetricRetransmits, MetricSynAckRetrans,
		MetricAckedBytes, MetricReceivedBytes, MetricAcceptQueue, MetricBacklog, MetricSynQueue,
		MetricSynBacklog, MetricEphemeralPorts, MetricFindings, MetricFindingValue, MetricDiagStatus,
		MetricConnsTracked, MetricConnsUntracked, MetricEvents, MetricLostEvents, MetricSnapshotErrors,
		MetricSnapshotTime, MetricBuildInfo,
	}
}

var (
	descConnections = prometheus.NewDesc(MetricConnections, "Kernel TCP sockets in each RFC 9293 state (sock_diag), by local port: the listening ports, else \"other\"; LISTEN counts listeners.", []string{"state", "port"}, nil)
	descTransitions = prometheus.NewDesc(MetricTransitions, "Kernel TCP state changes seen by the tracepoint sock:inet_sock_set_state, by RFC 9293 transition.", []string{"from", "to"}, nil)
	descResets      = prometheus.NewDesc(MetricResets, "RSTs the kernel sent (tcp:tcp_send_reset) and received (tcp:tcp_receive_reset).", []string{"direction"}, nil)
	descRetransmits = prometheus.NewDesc(MetricRetransmits, "Segments the kernel retransmitted (tcp:tcp_retransmit_skb).", nil, nil)
	descSynAck      = prometheus.NewDesc(MetricSynAckRetrans, "SYN-ACKs the kernel retransmitted for half-open handshakes (tcp:tcp_retransmit_synack).", nil, nil)
	descAcked       = prometheus.NewDesc(MetricAckedBytes, "Bytes acknowledged by the peers: the growth of tcp_info bytes_acked between sock_diag looks (Linux counts a client's SYN too).", nil, nil)
	descReceived    = prometheus.NewDesc(MetricReceivedBytes, "Bytes received in order: the growth of tcp_info bytes_received between sock_diag looks (Linux counts a FIN received too).", nil, nil)
	descAcceptQueue = prometheus.NewDesc(MetricAcceptQueue, "Completed handshakes waiting for accept, per listening port.", []string{"port"}, nil)
	descBacklog     = prometheus.NewDesc(MetricBacklog, "Bound of the accept queue (the listen backlog), per listening port.", []string{"port"}, nil)
	descSynQueue    = prometheus.NewDesc(MetricSynQueue, "Half-open handshakes (SYN-RECEIVED), per listening port.", []string{"port"}, nil)
	descSynBacklog  = prometheus.NewDesc(MetricSynBacklog, "Bound on half-open handshakes, per listening port.", []string{"port"}, nil)
	descEphemeral   = prometheus.NewDesc(MetricEphemeralPorts, "Ports in the ephemeral range (net.ipv4.ip_local_port_range) outgoing connections take theirs from.", nil, nil)
	descFindings    = prometheus.NewDesc(MetricFindings, "Findings of `synack diagnose --host`, by rule and severity.", []string{"rule", "severity"}, nil)
	descFindingN    = prometheus.NewDesc(MetricFindingValue, "The number that made a rule fire (connections, drops, ...), by rule and severity; 0 when it did not.", []string{"rule", "severity"}, nil)
	descStatus      = prometheus.NewDesc(MetricDiagStatus, "Worst finding: 0 none, 1 warning, 2 problem (the exit status of synack diagnose).", nil, nil)
	descTracked     = prometheus.NewDesc(MetricConnsTracked, "Connections in the per-connection table (those reset or retransmitted).", nil, nil)
	descUntracked   = prometheus.NewDesc(MetricConnsUntracked, "Connections reset or retransmitted that the full per-connection table could not keep.", nil, nil)
	descEvents      = prometheus.NewDesc(MetricEvents, "Tracepoint events taken into the model.", nil, nil)
	descLost        = prometheus.NewDesc(MetricLostEvents, "Tracepoint events the kernel could not record because the reader fell behind.", nil, nil)
	descSnapErrors  = prometheus.NewDesc(MetricSnapshotErrors, "sock_diag reads that failed.", nil, nil)
	descSnapTime    = prometheus.NewDesc(MetricSnapshotTime, "When the latest sock_diag look was taken, in seconds since the Unix epoch.", nil, nil)
	descBuildInfo   = prometheus.NewDesc(MetricBuildInfo, "The synack that serves these metrics: module version, VCS revision, Go version; always 1.", []string{"version", "revision", "goversion"}, nil)
)

// Collector exports a Model to Prometheus: it reads the model at scrape
// time (the model refreshes itself; a scrape reads no sockets).
type Collector struct{ m *Model }

// NewCollector returns m's collector.
func NewCollector(m *Model) *Collector { return &Collector{m} }

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConnections, descTransitions, descResets, descRetransmits, descSynAck,
		descAcked, descReceived, descAcceptQueue, descBacklog, descSynQueue, descSynBacklog, descEphemeral,
		descFindings, descFindingN, descStatus, descTracked, descUntracked, descEvents, descLost,
		descSnapErrors, descSnapTime, descBuildInfo} {
		ch <- d
	}
}

func gauge(d *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

func counter(d *prometheus.Desc, v uint64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	v := c.m.View(^uint64(0))
	// Every state for every port label seen and for "other", zeros
	// included, so that an alert can tell "none" from "no data".
	labels := []string{OtherPort}
	for _, byPort := range v.Counts {
		for p := range byPort {
			if !slices.Contains(labels, p) {
				labels = append(labels, p)
			}
		}
	}
	for _, st := range tcp.States() {
		for _, p := range labels {
			ch <- gauge(descConnections, float64(v.Counts[st][p]), st.String(), p)
		}
	}
	// The arrows of RFC 9293 Figure 5 even before they are taken, so
	// that a rate over one exists (and is 0) from the first scrape: the
	// SYN-flood alert compares SYN-RECEIVED->ESTABLISHED with the
	// half-open count.
	seen := map[[2]string]bool{}
	for _, t := range v.Transitions {
		k := [2]string{t.From.String(), t.To.String()}
		seen[k] = true
		ch <- counter(descTransitions, t.Count, k[0], k[1])
	}
	for _, arrow := range admin.DrawnTransitions() {
		from, to, _ := strings.Cut(arrow, ">")
		if !seen[[2]string{from, to}] {
			ch <- counter(descTransitions, 0, from, to)
		}
	}
	tot := v.Totals
	ch <- counter(descResets, tot.ResetsSent, resetsSent)
	ch <- counter(descResets, tot.ResetsReceived, resetsRcv)
	ch <- counter(descRetransmits, tot.Retransmits)
	ch <- counter(descSynAck, tot.SynAckRetransmits)
	ch <- counter(descAcked, tot.BytesAcked)
	ch <- counter(descReceived, tot.BytesReceived)
	for _, p := range v.ListeningPorts {
		l := v.Snapshot.Listeners[p]
		port := strconv.Itoa(int(p))
		ch <- gauge(descAcceptQueue, float64(l.AcceptQueue), port)
		ch <- gauge(descBacklog, float64(l.Backlog), port)
		ch <- gauge(descSynQueue, float64(l.SynQueue), port)
		ch <- gauge(descSynBacklog, float64(l.SynBacklog), port)
	}
	if n := v.Snapshot.EphemeralSize(); n > 0 {
		ch <- gauge(descEphemeral, float64(n))
	}
	admin.CollectFindings(ch, descFindings, descFindingN, v.Report.Findings)
	ch <- gauge(descStatus, float64(v.Report.Status))
	ch <- gauge(descTracked, float64(len(v.Conns)))
	ch <- counter(descUntracked, tot.ConnsDropped)
	ch <- counter(descEvents, tot.Events)
	ch <- counter(descLost, tot.Lost)
	ch <- counter(descSnapErrors, tot.SnapshotErrors)
	if !v.Time.IsZero() {
		ch <- gauge(descSnapTime, float64(v.Time.UnixNano())/1e9)
	}
	bi := buildinfo.Read()
	ch <- gauge(descBuildInfo, 1, bi.Version, bi.Revision, bi.GoVersion)
}

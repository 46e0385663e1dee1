package diag

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/synack/synack/tcp"
)

// Rule is one pattern Diagnose looks for.
type Rule struct {
	Name    string // as in Finding.Rule
	Summary string // one line: what the rule looks at
	check   func(*checker) []Finding
}

var rules = []Rule{
	{"close-wait", "many CLOSE-WAIT: the application never calls close (socket leak)", (*checker).closeWait},
	{"fin-wait-1", "many FIN-WAIT-1: the peer or the network does not acknowledge our FIN", (*checker).finWait1},
	{"fin-wait-2", "many FIN-WAIT-2: the peer never sends its FIN", (*checker).finWait2},
	{"time-wait-ports", "TIME-WAIT toward one destination against the ephemeral port range", (*checker).timeWaitPorts},
	{"time-wait", "many TIME-WAIT: connection churn (info)", (*checker).timeWait},
	{"time-wait-buckets", "TIME-WAIT against the kernel's table size (tcp_max_tw_buckets)", (*checker).timeWaitBuckets},
	{"syn-received", "many SYN-RECEIVED against a listener's SYN backlog, or half-open handshakes that do not complete: SYN flood", (*checker).synReceived},
	{"accept-queue", "a listener's accept queue near its backlog: the application accepts too slowly", (*checker).acceptQueue},
	{"last-ack", "LAST-ACK pile-up: the final ACK does not come back", (*checker).lastAck},
	{"closing", "CLOSING pile-up: simultaneous closes whose ACKs are lost", (*checker).closing},
	{"retransmitting", "connections (not half-open ones) retransmitting by timeout", (*checker).retransmitting},
	{"retrans-rate", "RetransSegs against OutSegs between two looks", (*checker).retransRate},
	{"reordering", "retransmissions found needless (D-SACK, timestamps): paths that reorder or duplicate packets", (*checker).reordering},
	{"listen-drops", "ListenOverflows / ListenDrops moving: handshakes dropped at listeners", (*checker).listenDrops},
	{"syncookies", "SyncookiesSent moving: a listener's SYN backlog overflowed", (*checker).syncookies},
	{"orphans", "sockets no process owns against tcp_max_orphans", (*checker).orphans},
	{"memory", "the stack's memory budget: over its limit, under pressure, or pressure since the last look", (*checker).memory},
}

// Rules lists the rules Diagnose applies, in no particular order of
// severity.
func Rules() []Rule { return append([]Rule(nil), rules...) }

// Diagnose applies every rule to cur and returns the findings, most severe
// first; an empty, non-nil slice when there are none. prev, when not nil, is an earlier snapshot of the same source: with
// it, rules see how counters moved between the two (ListenOverflows, ...);
// without it, only the counters' totals since boot are known.
func Diagnose(cur Snapshot, prev *Snapshot, th Thresholds) []Finding {
	if cur.Listeners == nil {
		cur.FillListeners(nil)
	}
	c := &checker{s: &cur, prev: prev, th: th.withDefaults(), counts: CountStates(cur.Rows)}
	out := []Finding{} // none is an empty list, not nil (JSON [])
	for _, r := range rules {
		for _, f := range r.check(c) {
			f.Rule = r.Name
			out = append(out, f)
		}
	}
	SortFindings(out)
	return out
}

type checker struct {
	s      *Snapshot
	prev   *Snapshot
	th     Thresholds
	counts Counts
}

func (c *checker) host() bool { return c.s.Source != SourceSynack }

// pick returns the advice for the snapshot's source.
func (c *checker) pick(linux, synack []string) []string {
	if c.host() {
		return linux
	}
	return synack
}

// knob names a setting with its current value when known:
// "net.ipv4.tcp_fin_timeout (now 60)".
func (c *checker) knob(name string) string {
	if v := c.s.Setting(name); v != "" {
		return fmt.Sprintf("%s (now %s)", name, v)
	}
	return name
}

// delta is how much a counter moved since prev; false without prev, when
// either side lacks it or when it went backwards (a restart).
func (c *checker) delta(name string) (uint64, bool) {
	if c.prev == nil {
		return 0, false
	}
	a, ok1 := c.prev.Counters[name]
	b, ok2 := c.s.Counters[name]
	if !ok1 || !ok2 || b < a {
		return 0, false
	}
	return b - a, true
}

// since says "in the last 2s" for deltas.
func (c *checker) since() string {
	if c.prev == nil || c.prev.Time.IsZero() || c.s.Time.IsZero() {
		return "since the last look"
	}
	return "in the last " + Round(c.s.Time.Sub(c.prev.Time)).String()
}

// moved lists the counters among names that moved: "ListenDrops +12,
// SyncookiesSent +300".
func (c *checker) moved(names ...string) string {
	var parts []string
	for _, n := range names {
		if d, ok := c.delta(n); ok && d > 0 {
			parts = append(parts, fmt.Sprintf("%s +%d", n, d))
		}
	}
	return strings.Join(parts, ", ")
}

// timeWaitLen is how long TIME-WAIT lasts on the source.
func (c *checker) timeWaitLen() time.Duration {
	if !c.host() {
		if d, err := time.ParseDuration(c.s.Setting(KnobMSL)); err == nil && d > 0 {
			return 2 * d
		}
		return 2 * tcp.DefaultMSL
	}
	return 60 * time.Second // TCP_TIMEWAIT_LEN, fixed in Linux
}

// owner is the process that owns most of rows, "" if none is known.
func owner(rows []Row) (label string, pid int) {
	gs := GroupBy(Filter(rows, Row.Owned), ByProcess)
	if len(gs) == 0 {
		return "", 0
	}
	return gs[0].Key, gs[0].Rows[0].PID
}

// likelyOwner guesses who made rows that no process owns any more
// (TIME-WAIT, orphans): the process listening on their local port, else the
// process with open connections to the same remote address and port.
func (c *checker) likelyOwner(rows []Row) (label string, pid int) {
	if l, p := owner(rows); l != "" {
		return l, p
	}
	if len(rows) == 0 {
		return "", 0
	}
	if l, ok := c.s.Listeners[rows[0].Local.Port()]; ok && l.PID > 0 {
		return Row{PID: l.PID, Process: l.Process}.ProcessLabel(), l.PID
	}
	remote := rows[0].Remote
	return owner(Filter(c.s.Rows, func(r Row) bool { return r.Remote == remote && r.Owned() }))
}

// top describes the largest groups: "myapp (pid 1) 35, (unknown) 2".
func top(gs []Group, n int, label func(Group) string) string {
	var parts []string
	for i, g := range gs {
		if i == n {
			parts = append(parts, fmt.Sprintf("%d more groups", len(gs)-n))
			break
		}
		parts = append(parts, fmt.Sprintf("%s: %d", label(g), g.Count))
	}
	return strings.Join(parts, "; ")
}

func keyLabel(g Group) string { return g.Key }

// idle describes the longest idle time among rows, "" if unknown.
func idle(rows []Row) string {
	var m time.Duration
	for _, r := range rows {
		m = max(m, r.Idle)
	}
	if m == 0 {
		return ""
	}
	return "; the longest idle for " + Round(m).String()
}

func ages(rows []Row) string {
	if a := Ages(rows).String(); a != "" {
		return "; " + a
	}
	return ""
}

// plural writes "1 connection", "2 connections".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	if strings.HasSuffix(noun, "s") {
		return fmt.Sprintf("%d %ses", n, noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// churn tells the closing rate TIME-WAIT entries imply: each lasts life, so
// n of them were all closed within the last life.
func churn(n int, life time.Duration) string {
	s := fmt.Sprintf("All were closed within the last %s", Round(life))
	if rate := float64(n) / life.Seconds(); rate >= 1 {
		s += fmt.Sprintf(": at a steady rate, about %.0f connections a second", rate)
	}
	return s + "."
}

func pct(x float64) string { return strconv.FormatFloat(100*x, 'f', 0, 64) + "%" }

func (c *checker) closeWait() []Finding {
	rows := InState(c.s.Rows, tcp.CloseWait)
	sev, ok := level(len(rows), c.th.CloseWaitWarn, c.th.CloseWaitProblem)
	if !ok {
		return nil
	}
	gs := GroupBy(rows, ByProcessAndLocalPort)
	lead := gs[0].Rows[0]
	label := func(g Group) string {
		r := g.Rows[0]
		who := r.ProcessLabel()
		if who == "" {
			who = "an unknown process"
		}
		return fmt.Sprintf("%s on local port %d", who, r.Local.Port())
	}
	seen := fmt.Sprintf("%d connections in CLOSE-WAIT. By owner: %s%s%s.",
		len(rows), top(gs, 3, label), idle(rows), ages(rows))
	if !lead.Owned() {
		seen += " The owning process is not known (run as root to see it)."
	}
	who := lead.ProcessLabel()
	if who == "" {
		who = "the owning process"
	}
	f := Finding{
		Severity: sev, Count: len(rows), Seen: seen,
		Process: lead.ProcessLabel(), PID: lead.PID, Port: lead.Local.Port(),
		Means: "The peer closed its side (it sent FIN, which was acknowledged), but the application " +
			"holding the socket has not called close. CLOSE-WAIT never times out: this is almost " +
			"always a socket leak in " + who + " — a code path that stops using a connection without " +
			"closing it, or a worker stuck before it gets there. No TCP setting removes these sockets.",
		Confirm: []string{
			"watch the count grow: synack diagnose --watch",
			fmt.Sprintf("list them: synack ss --state close-wait --sport %d", lead.Local.Port()),
		},
		Do: []string{
			"fix the application to close a connection once a read returns end of file (0 bytes, io.EOF), " +
				"on every path, errors included (in Go: defer conn.Close(); close http.Response.Body)",
			"put idle or read timeouts on connections so a stuck handler lets go",
			"restarting " + who + " releases them for now; they will come back until the code is fixed",
		},
	}
	if lead.PID > 0 {
		f.Confirm = append(f.Confirm, fmt.Sprintf("open file descriptors grow with them: ls /proc/%d/fd | wc -l", lead.PID))
	}
	if !c.host() {
		f.Do = append(f.Do, "in synack the Conn's owner must call Close (or CloseWrite then Close); the stack never closes a CLOSE-WAIT connection on its own")
	}
	return []Finding{f}
}

func (c *checker) finWait1() []Finding {
	rows := InState(c.s.Rows, tcp.FinWait1)
	sev, ok := level(len(rows), c.th.FinWait1Warn, c.th.FinWait1Problem)
	if !ok {
		return nil
	}
	gs := GroupBy(rows, ByRemoteAddr)
	var zeroWin, retrans, queued int
	for _, r := range rows {
		if r.Timer == "persist" {
			zeroWin++
		}
		if r.Retransmits > 0 || r.Timer == "retransmit" {
			retrans++
		}
		queued += r.SendQ
	}
	seen := fmt.Sprintf("%d connections in FIN-WAIT-1 (%d retransmitting, %d probing a zero window, %d bytes still unacknowledged). By peer: %s.",
		len(rows), retrans, zeroWin, queued, top(gs, 3, keyLabel))
	who, pid := c.likelyOwner(rows)
	return []Finding{{
		Severity: sev, Count: len(rows), Seen: seen, Process: who, PID: pid, Remote: gs[0].Key,
		Means: "This side closed and sent its FIN, and the peer has not acknowledged it. The peer or " +
			"the path is not answering: the peer host is gone or unreachable, a firewall drops the " +
			"packets, or the peer stopped reading so its window is zero and our remaining data and FIN " +
			"cannot be sent.",
		Confirm: []string{
			"synack ss --state fin-wait-1: a large Send-Q with a persist timer means a zero window; " +
				"a retransmit timer with growing RTO means loss",
			"ping and trace the path to " + gs[0].Key + "; capture: tcpdump -ni any host " + gs[0].Key,
		},
		Do: c.pick([]string{
			"fix the path or the peer",
			"closed (orphaned) FIN-WAIT-1 sockets are retried " + c.knob(SysctlOrphanRetries) +
				" times; lowering it (e.g. to 2) frees them sooner",
			"they count against " + c.knob(SysctlMaxOrphans) + "; past it the kernel resets them",
			"an application that must not wait can close with SO_LINGER 0 (reset instead of FIN)",
		}, []string{
			"fix the path or the peer",
			c.knob(KnobMaxRetransmits) + " and " + c.knob(KnobUserTimeout) + " bound how long the FIN is retried",
			"Conn.SetLinger(0) closes with a reset instead of waiting",
		}),
	}}
}

func (c *checker) finWait2() []Finding {
	rows := InState(c.s.Rows, tcp.FinWait2)
	sev, ok := level(len(rows), c.th.FinWait2Warn, c.th.FinWait2Problem)
	if !ok {
		return nil
	}
	gs := GroupBy(rows, ByRemote)
	owned := len(Filter(rows, Row.Owned))
	seen := fmt.Sprintf("%d connections in FIN-WAIT-2. By peer: %s%s.", len(rows), top(gs, 3, keyLabel), ages(rows))
	if c.host() {
		seen += fmt.Sprintf(" %d still owned by a process (shut down for writing: they wait for the peer as long as the process keeps them), %d closed (freed after %s).",
			owned, len(rows)-owned, c.knob(SysctlFinTimeout))
	}
	who, pid := c.likelyOwner(rows)
	return []Finding{{
		Severity: sev, Count: len(rows), Seen: seen, Process: who, PID: pid, Remote: gs[0].Key,
		Means: "This side closed and the peer acknowledged our FIN, but the peer never sends its own " +
			"FIN: the application on the peer has not closed its end (the peer shows them in CLOSE-WAIT " +
			"— a leak over there), or a middlebox lost the FIN. An application that half-closes " +
			"(shutdown for writing) and waits for the peer's end of file waits with it.",
		Confirm: []string{
			"on the peer " + gs[0].Key + ": synack diagnose --host shows CLOSE-WAIT toward this host",
			"synack ss --state fin-wait-2 --json: owned rows (with a process) are half-closed by the application",
		},
		Do: c.pick([]string{
			"fix the peer application so it closes its connections",
			"lower " + c.knob(SysctlFinTimeout) + " (e.g. 15–30 s) to free closed FIN-WAIT-2 sockets sooner",
			"an application that half-closes should still put a read deadline on the peer's end of file",
		}, []string{
			"fix the peer application so it closes its connections",
			"lower " + c.knob(KnobFinWait2Timeout) + " to free closed FIN-WAIT-2 connections sooner",
			"a Conn that calls CloseWrite should still SetReadDeadline for the peer's end of file",
		}),
	}}
}

// timeWaitPorts compares, per destination ip:port, the local ports held
// toward it with the size of the ephemeral range.
func (c *checker) timeWaitPorts() []Finding {
	size := c.s.EphemeralSize()
	if size == 0 {
		return nil
	}
	// Ports held toward each destination: every connection from an
	// ephemeral port, TIME-WAIT or not.
	held := Filter(c.s.Rows, func(r Row) bool {
		return r.State != tcp.Listen && r.Remote.IsValid() && r.Remote.Port() != 0 && c.s.Ephemeral(r.Local.Port())
	})
	var out []Finding
	for _, g := range GroupBy(held, ByRemote) {
		tw := g.Counts[tcp.TimeWait]
		if tw == 0 {
			continue
		}
		frac := float64(g.Count) / float64(size)
		sev, ok := levelf(frac, c.th.TimeWaitPortsWarn, c.th.TimeWaitPortsProblem)
		if !ok {
			continue
		}
		who, pid := c.likelyOwner(InState(g.Rows, tcp.TimeWait))
		seen := fmt.Sprintf("%s toward %s; with %s they hold %d of the %d ephemeral ports (%s). %s",
			plural(tw, "connection")+" in TIME-WAIT", g.Key, plural(g.Count-tw, "other connection"),
			g.Count, size, pct(frac), churn(tw, c.timeWaitLen()))
		if who != "" {
			seen += " Likely opened by " + who + ", which has connections there."
		}
		port := g.Rows[0].Remote.Port()
		out = append(out, Finding{
			Severity: sev, Count: tw, Seen: seen, Process: who, PID: pid, Remote: g.Key,
			Means: "This host opens and closes connections to " + g.Key + " quickly. The side that " +
				"closes first keeps each connection's address and port pair in TIME-WAIT for " +
				c.timeWaitLen().String() + " (2×MSL), so a client talking to one destination runs out " +
				"of local ports: connect fails with EADDRNOTAVAIL (\"cannot assign requested address\").",
			Confirm: []string{
				fmt.Sprintf("synack ss --state time-wait --dport %d", port),
				"watch ActiveOpens move: synack diagnose --watch",
				"look for EADDRNOTAVAIL / \"cannot assign requested address\" in the client's logs",
			},
			Do: c.pick([]string{
				"reuse connections: HTTP keep-alive, a connection pool (in Go: read response bodies to the end " +
					"and close them; raise http.Transport.MaxIdleConnsPerHost)",
				c.twReuse(),
				"widen " + c.knob(SysctlPortRange) + ", or spread over more destination addresses or ports",
				"do not shorten TIME-WAIT itself (tcp_tw_recycle is gone since Linux 4.12 for breaking clients behind NAT)",
			}, []string{
				"reuse connections: keep-alive, a connection pool",
				"widen the stack's ephemeral port range " + c.knob(KnobEphemeralPorts),
				"lower " + c.knob(KnobMSL) + " only on a network where old duplicates cannot arrive: TIME-WAIT is 2×MSL",
			}),
		})
	}
	return out
}

// twReuse advises on tcp_tw_reuse by its current value.
func (c *checker) twReuse() string {
	switch c.s.Setting(SysctlTWReuse) {
	case "1":
		return SysctlTWReuse + " is already 1: outgoing connections reuse TIME-WAIT ports when timestamps allow"
	case "2":
		return "set " + SysctlTWReuse + " to 1 (now 2, which reuses TIME-WAIT ports for loopback connections only): " +
			"new outgoing connections may then reuse TIME-WAIT ports (timestamps keep it safe)"
	}
	return "set " + c.knob(SysctlTWReuse) + " to 1: new outgoing connections may then reuse TIME-WAIT ports (timestamps keep it safe)"
}

func (c *checker) timeWait() []Finding {
	rows := InState(c.s.Rows, tcp.TimeWait)
	if c.th.TimeWaitMany < 0 || len(rows) < c.th.TimeWaitMany {
		return nil
	}
	server := len(Filter(rows, func(r Row) bool { _, ok := c.s.Listeners[r.Local.Port()]; return ok }))
	seen := fmt.Sprintf("%d connections in TIME-WAIT. %s %d of them on listening ports (this host is the server and closes first), %d toward other hosts. Top destinations: %s.",
		len(rows), churn(len(rows), c.timeWaitLen()), server, len(rows)-server, top(GroupBy(rows, ByRemote), 3, keyLabel))
	who, pid := c.likelyOwner(rows)
	return []Finding{{
		Severity: Info, Count: len(rows), Seen: seen, Process: who, PID: pid,
		Means: "TIME-WAIT is normal: the side that closes first holds each connection for 2×MSL so late " +
			"segments cannot corrupt a new connection. Many of them mean many short connections. Each costs " +
			"little memory; what runs out first is local ports toward one destination (see time-wait-ports).",
		Confirm: []string{"watch the rate: synack diagnose --watch (ActiveOpens, PassiveOpens)"},
		Do: c.pick([]string{
			"reuse connections where you can (keep-alive, pools)",
			c.twReuse(),
			"a server that closes first can let clients close first (HTTP: the client closes, or keep-alive)",
		}, []string{
			"reuse connections where you can (keep-alive, pools)",
			"TIME-WAIT lasts 2×" + c.knob(KnobMSL),
		}),
	}}
}

func (c *checker) timeWaitBuckets() []Finding {
	if !c.host() {
		return nil
	}
	limit, err := strconv.Atoi(c.s.Setting(SysctlMaxTWBuckets))
	if err != nil || limit <= 0 || c.th.TimeWaitBuckets < 0 {
		return nil
	}
	n := c.counts[tcp.TimeWait]
	frac := float64(n) / float64(limit)
	if frac < c.th.TimeWaitBuckets {
		return nil
	}
	sev := Warning
	if n >= limit {
		sev = Problem
	}
	return []Finding{{
		Severity: sev, Count: n,
		Seen: fmt.Sprintf("%d connections in TIME-WAIT, %s of %s.", n, pct(frac), c.knob(SysctlMaxTWBuckets)),
		Means: "When the TIME-WAIT table is full the kernel closes connections without TIME-WAIT " +
			"(\"TCP: time wait bucket table overflow\" in the kernel log), so late segments of old " +
			"connections may be taken for new ones.",
		Confirm: []string{"dmesg | grep 'time wait bucket'", "TCPTimeWaitOverflow in /proc/net/netstat"},
		Do: []string{
			"reuse connections so fewer are closed",
			"raise " + c.knob(SysctlMaxTWBuckets) + " if memory allows (each entry is small)",
		},
	}}
}

// stalledHandshake reports whether a SYN-RECEIVED row shows its handshake is
// not completing: its SYN,ACK timed out at least once (RFC 9293 §3.8.1: the
// initial RTO is 1 s, RFC 6298 §2.1), or it has waited that long. A real
// client answers a SYN,ACK within one round trip; a spoofed source never
// does.
func stalledHandshake(r Row) bool { return r.Retransmits > 0 || r.Age >= time.Second }

func (c *checker) synReceived() []Finding {
	rows := InState(c.s.Rows, tcp.SynReceived)
	if len(rows) == 0 {
		return nil
	}
	counters := c.moved("ListenOverflows", "ListenDrops", "SyncookiesSent")
	var out []Finding
	var unbound []Row
	for _, g := range GroupBy(rows, ByLocalPort) {
		port := g.Rows[0].Local.Port()
		l, ok := c.s.Listeners[port]
		bound := 0
		if ok {
			bound = l.SynBacklog
			if bound == 0 {
				bound = l.Backlog
			}
		}
		if bound <= 0 {
			unbound = append(unbound, g.Rows...)
			continue
		}
		frac := float64(g.Count) / float64(bound)
		ofBound := fmt.Sprintf("%s of its SYN backlog of %d", pct(frac), bound)
		sev, fire := Info, false
		switch {
		case g.Count >= bound && c.th.SynRecvProblem >= 0:
			sev, fire = Problem, true
		case g.Count >= c.th.SynRecvMin:
			sev, fire = levelf(frac, c.th.SynRecvWarn, c.th.SynRecvProblem)
		}
		// A pile-up that does not complete is a flood whatever the
		// backlog: 300 spoofed SYNs are 7% of a 4096 backlog.
		if fs, ffire := c.floodLevel(g.Rows); ffire {
			sev, fire = max(sev, fs), true
		}
		if !fire {
			continue
		}
		out = append(out, c.synFinding(sev, g.Rows, port, ofBound, counters, l))
	}
	if len(unbound) > 0 {
		sev, fire := level(len(unbound), c.th.SynRecvMany, -1)
		if fs, ffire := c.floodLevel(unbound); ffire {
			sev, fire = max(sev, fs), true
		}
		if fire {
			out = append(out, c.synFinding(sev, unbound, 0, "no bound known", counters, Listener{}))
		}
	}
	return out
}

// floodLevel is the severity of a SYN-RECEIVED pile-up whose handshakes do
// not complete (see stalledHandshake), against SynFloodWarn and
// SynFloodProblem, when the stalled ones are most of rows and at least
// SynRecvMin (below which no SYN-RECEIVED reading speaks); false otherwise.
func (c *checker) floodLevel(rows []Row) (Severity, bool) {
	n := len(Filter(rows, stalledHandshake))
	if 2*n < len(rows) || n < c.th.SynRecvMin {
		return Info, false
	}
	return level(n, c.th.SynFloodWarn, c.th.SynFloodProblem)
}

func (c *checker) synFinding(sev Severity, rows []Row, port uint16, ofBound, counters string, l Listener) Finding {
	sources := GroupBy(rows, ByRemoteAddr)
	where := "on ports " + top(GroupBy(rows, ByLocalPort), 3, keyLabel)
	if port != 0 {
		where = fmt.Sprintf("on port %d", port)
	}
	seen := fmt.Sprintf("%s (SYN-RECEIVED) %s, %s; from %s (top: %s).",
		plural(len(rows), "half-open handshake"), where, ofBound, plural(len(sources), "distinct address"), top(sources, 3, keyLabel))
	stalled := len(Filter(rows, stalledHandshake))
	flood := false
	if _, flood = c.floodLevel(rows); flood {
		seen += fmt.Sprintf(" %d of them have had their SYN,ACK retransmitted or waited a second or more: the handshakes are not completing.", stalled)
	}
	if counters != "" {
		seen += " Counters moved " + c.since() + ": " + counters + "."
	}
	who := ""
	if l.PID > 0 {
		who = Row{PID: l.PID, Process: l.Process}.ProcessLabel()
	}
	portArg := ""
	if port != 0 {
		portArg = fmt.Sprintf(" --sport %d", port)
	}
	means := "SYNs arrive and SYN,ACKs go out, but the final ACK of the handshake does not come back. " +
		"Usually a SYN flood (many distinct, often spoofed, source addresses), or clients that give up " +
		"mid-handshake, or a return path that loses the SYN,ACK (asymmetric routing, a firewall). " +
		"When the SYN backlog is full, new connections are dropped or answered with SYN cookies."
	if flood {
		means = "This is what a SYN flood looks like: SYNs arrive, SYN,ACKs go out and are retransmitted, " +
			"and the final ACK never comes back, because the sources (often spoofed, many distinct addresses) " +
			"never meant to connect. Real clients answer a SYN,ACK within a round trip and do not stay here. " +
			"It is a flood whatever the size of the backlog: each entry holds memory and is retried until " +
			"the SYN,ACK retries run out, and once the backlog fills, new connections are dropped or " +
			"answered with SYN cookies. Less often: a return path that loses the SYN,ACKs (asymmetric " +
			"routing, a firewall) for every client. The retransmissions are the SYN,ACKs' own, not loss " +
			"on established connections."
	}
	return Finding{
		Severity: sev, Count: len(rows), Seen: seen, Port: port, Process: who, PID: l.PID,
		Means: means,
		Confirm: []string{
			"count the sources: synack ss --state syn-received" + portArg + " --json",
			"watch ListenDrops and SyncookiesSent move: synack diagnose --watch",
			"capture handshakes: tcpdump -ni any 'tcp[tcpflags] & tcp-syn != 0'" + strings.ReplaceAll(portArg, " --sport ", " and port "),
		},
		Do: c.pick([]string{
			"keep " + c.knob(SysctlSyncookies) + " at 1 so a full queue answers with cookies instead of dropping",
			"raise " + c.knob(SysctlMaxSynBacklog) + " together with " + c.knob(SysctlSomaxconn) + " and the listen() backlog",
			"lower " + c.knob(SysctlSynAckRetries) + " (e.g. 2) so half-open entries expire sooner",
			"filter a flood upstream: rate-limit SYNs per source",
		}, []string{
			"enable " + c.knob(KnobSyncookies) + " so a full SYN backlog answers with cookies",
			"raise " + c.knob(KnobSynBacklog),
			"lower " + c.knob(KnobSynAckRetries) + " so half-open entries expire sooner",
			"filter a flood upstream: rate-limit SYNs per source",
		}),
	}
}

func (c *checker) acceptQueue() []Finding {
	var out []Finding
	for _, r := range InState(c.s.Rows, tcp.Listen) {
		q, backlog := r.RecvQ, r.SendQ
		if backlog <= 0 || q < c.th.AcceptQueueMin {
			continue
		}
		frac := float64(q) / float64(backlog)
		sev, ok := levelf(frac, c.th.AcceptQueueWarn, c.th.AcceptQueueProblem)
		if !ok {
			continue
		}
		who := r.ProcessLabel()
		seen := fmt.Sprintf("The listener on %s has %d completed handshakes waiting for accept, %s of its backlog of %d.",
			r.Local, q, pct(frac), backlog)
		if who != "" {
			seen += " It belongs to " + who + "."
		} else {
			who = "the application"
		}
		if m := c.moved("ListenOverflows", "ListenDrops"); m != "" {
			seen += " Counters moved " + c.since() + ": " + m + "."
		}
		out = append(out, Finding{
			Severity: sev, Count: q, Seen: seen, Process: r.ProcessLabel(), PID: r.PID, Port: r.Local.Port(),
			Means: "The handshakes are done and the connections wait for " + who + " to accept them. A full " +
				"queue means it accepts too slowly or not at all (busy, blocked, too few acceptors); further " +
				"handshakes are dropped (ListenOverflows) and clients see slow connects and timeouts.",
			Confirm: []string{
				fmt.Sprintf("Recv-Q of the LISTEN row stays high: synack ss --state listen --sport %d", r.Local.Port()),
				"ListenOverflows moving: synack diagnose --watch",
				"a stack dump of the application shows what its accept loop waits for",
			},
			Do: c.pick([]string{
				"make the application accept faster (a dedicated accept loop that hands connections off)",
				"raise the listen() backlog and " + c.knob(SysctlSomaxconn) + ", which caps it (Go's net.Listen asks for somaxconn)",
			}, []string{
				"make the application call Accept faster",
				"raise " + c.knob(KnobAcceptBacklog),
			}),
		})
	}
	return out
}

// pileUp is the rule for a state that should pass quickly.
func (c *checker) pileUp(st tcp.State, warn, problem int, means string, do []string) []Finding {
	rows := InState(c.s.Rows, st)
	sev, ok := level(len(rows), warn, problem)
	if !ok {
		return nil
	}
	gs := GroupBy(rows, ByRemoteAddr)
	who, pid := c.likelyOwner(rows)
	name := strings.ToLower(st.String())
	return []Finding{{
		Severity: sev, Count: len(rows), Process: who, PID: pid, Remote: gs[0].Key,
		Seen:  fmt.Sprintf("%d connections in %s. By peer: %s%s.", len(rows), st, top(gs, 3, keyLabel), ages(rows)),
		Means: means,
		Confirm: []string{
			"synack ss --state " + name + ": retransmit timers and growing RTO show the ACKs are missing",
			"capture toward " + gs[0].Key + ": tcpdump -ni any host " + gs[0].Key,
		},
		Do: do,
	}}
}

func (c *checker) lastAck() []Finding {
	return c.pileUp(tcp.LastAck, c.th.LastAckWarn, c.th.LastAckProblem,
		"This side received the peer's FIN, closed, sent its own FIN and waits for the peer's last ACK, "+
			"which does not come: the peer went away right after closing, or the path drops packets. "+
			"They are retried, then dropped.",
		c.finRetryAdvice())
}

// finRetryAdvice is what to do about connections waiting for the ACK of
// their FIN (LAST-ACK, CLOSING): host and synack advice.
func (c *checker) finRetryAdvice() []string {
	return c.pick([]string{
		"check the path to the peers",
		"they are retried " + c.knob(SysctlOrphanRetries) + " times; lowering it frees them sooner",
	}, []string{
		"check the path to the peers",
		c.knob(KnobMaxRetransmits) + " bounds how long the FIN is retried",
	})
}

func (c *checker) closing() []Finding {
	return c.pileUp(tcp.Closing, c.th.ClosingWarn, c.th.ClosingProblem,
		"Both sides closed at the same time and each waits for the ACK of its FIN. Many of them mean "+
			"those ACKs are lost: a lossy path or a middlebox that mishandles FINs.",
		c.finRetryAdvice())
}

func (c *checker) retransmitting() []Finding {
	rows := Filter(c.s.Rows, func(r Row) bool {
		// Half-open handshakes retransmit their SYN,ACK, not data: a
		// pile of them is the syn-received rule's (a flood), not a lossy
		// path's.
		return r.State != tcp.Listen && r.State != tcp.TimeWait && r.State != tcp.SynReceived &&
			r.Retransmits >= c.th.RetransMin
	})
	sev, ok := level(len(rows), c.th.RetransWarn, c.th.RetransProblem)
	if !ok {
		return nil
	}
	gs := GroupBy(rows, ByRemoteAddr)
	who, pid := owner(rows)
	var maxRTO time.Duration
	for _, r := range rows {
		maxRTO = max(maxRTO, r.RTO)
	}
	seen := fmt.Sprintf("%d connections have timed out %d or more times in a row waiting for an ACK. By peer: %s.",
		len(rows), c.th.RetransMin, top(gs, 3, keyLabel))
	if maxRTO > 0 {
		seen += " Largest RTO " + Round(maxRTO).String() + "."
	}
	return []Finding{{
		Severity: sev, Count: len(rows), Seen: seen, Process: who, PID: pid, Remote: gs[0].Key,
		Means: "The peers do not acknowledge what is sent: packet loss or congestion on the path, a peer " +
			"that is gone, or an MTU black hole (large segments dropped silently).",
		Confirm: []string{
			"synack ss --dport PORT shows retransmit timers and RTOs doubling",
			"RetransSegs moving: synack diagnose --watch",
			"path MTU: ping -M do -s 1472 " + gs[0].Key + "; loss: mtr " + gs[0].Key,
		},
		Do: c.pick([]string{
			"fix the path or the peer",
			"for MTU black holes set " + c.knob(SysctlMTUProbing) + " to 1",
			c.knob(SysctlRetries2) + " bounds how long a connection retries before it is reset",
		}, []string{
			"fix the path or the peer",
			c.knob(KnobMaxRetransmits) + " and " + c.knob(KnobUserTimeout) + " bound how long a connection retries",
		}),
	}}
}

func (c *checker) retransRate() []Finding {
	re, ok1 := c.delta("RetransSegs")
	out, ok2 := c.delta("OutSegs")
	if !ok1 || !ok2 || c.th.RetransRatio < 0 || out == 0 || out < uint64(c.th.RetransMinSegs) {
		return nil
	}
	ratio := float64(re) / float64(out)
	if ratio < c.th.RetransRatio {
		return nil
	}
	return []Finding{{
		Severity: Warning, Count: int(re),
		Seen: fmt.Sprintf("%d of %d segments sent %s were retransmissions (%.1f%%).", re, out, c.since(), 100*ratio),
		Means: "Segments are being lost somewhere on the paths this host uses, or peers are slow to " +
			"acknowledge. A few tenths of a percent is ordinary; several percent slows every connection.",
		Confirm: []string{"synack ss: look for rows with retransmit timers and large RTOs, and which peers they share"},
		Do:      []string{"find the lossy path or peer (see the retransmitting finding, if any)"},
	}}
}

// reorderMin is how many needless retransmissions, or D-SACKs received,
// between two looks make the reordering note: a few are ordinary.
const reorderMin = 10

// reordering reads the counters that tell reordering and duplication from
// loss: a D-SACK (RFC 2883) says the peer got a segment twice, and a
// retransmission undone by a D-SACK (RFC 3708) or by timestamps (Eifel,
// RFC 3522, RFC 4015) was not needed. synack counts the undone episodes
// in TCPSpuriousRetrans; Linux splits them by how they were found.
func (c *checker) reordering() []Finding {
	dsacks, ok := c.delta("TCPDSACKRecv")
	if !ok {
		return nil
	}
	spurious := c.pick(
		[]string{"TCPSpuriousRTOs", "TCPDSACKUndo", "TCPFullUndo", "TCPPartialUndo", "TCPLossUndo"},
		[]string{"TCPSpuriousRetrans"})
	var needless uint64
	for _, n := range spurious {
		if d, ok := c.delta(n); ok {
			needless += d
		}
	}
	if dsacks < reorderMin && needless < reorderMin {
		return nil
	}
	names := append([]string{"TCPDSACKRecv"}, spurious...)
	if c.host() {
		names = append(names, "TCPSACKReorder", "TCPTSReorder", "TCPRenoReorder")
	}
	return []Finding{{
		Severity: Info, Count: int(max(dsacks, needless)),
		Seen: fmt.Sprintf("Retransmissions that were not needed %s: %s.", c.since(), c.moved(names...)),
		Means: "Some paths reorder or duplicate packets (multipath links, load balancers that spread one flow, " +
			"Wi-Fi or tunnel retries): segments the sender took for lost arrived after all. With SACK, " +
			"RACK (RFC 8985) widens its reordering window on these D-SACKs and the congestion response is " +
			"undone, so throughput recovers; without SACK or timestamps every reordering costs a window reduction.",
		Confirm: []string{"ss -ti (or synack ss): look for connections with a reordering window (reord) above 3 or spurious retransmissions"},
		Do: c.pick(
			[]string{"keep net.ipv4.tcp_sack and tcp_timestamps on, and net.ipv4.tcp_recovery=1 (RACK)",
				"find the path that reorders (traceroute, the peers the affected connections share); ECMP by flow hash keeps a flow on one path"},
			[]string{"keep SACK and timestamps on (tcp.Config.NoSACK / NoTimestamps false) and LossDetection \"rack\" (the default)",
				"find the path that reorders: the peers the affected connections share"}),
	}}
}

func (c *checker) listenDrops() []Finding {
	if c.prev == nil {
		var parts []string
		for _, n := range []string{"ListenOverflows", "ListenDrops", "SyncookiesSent"} {
			if v := c.s.Counters[n]; v > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", n, v))
			}
		}
		if len(parts) == 0 {
			return nil
		}
		return []Finding{{
			Severity: Info, Count: int(c.s.Counters["ListenDrops"]),
			Seen:  "Since boot: " + strings.Join(parts, ", ") + ". One look cannot tell whether they still move.",
			Means: "At some time listeners dropped handshakes (accept queue full) or answered with SYN cookies (SYN backlog full).",
			Confirm: []string{
				"synack diagnose --watch shows whether they move now",
			},
			Do: []string{"nothing, unless they move; then see the accept-queue and syn-received findings"},
		}}
	}
	over, _ := c.delta("ListenOverflows")
	drops, _ := c.delta("ListenDrops")
	if over == 0 && drops == 0 {
		return nil
	}
	var full []string
	for p, l := range c.s.Listeners {
		if l.Backlog > 0 && l.AcceptQueue*2 >= l.Backlog {
			full = append(full, strconv.Itoa(int(p)))
		}
	}
	seen := fmt.Sprintf("ListenOverflows +%d, ListenDrops +%d %s.", over, drops, c.since())
	if len(full) > 0 {
		seen += " Accept queues at least half full on ports " + strings.Join(full, ", ") + "."
	}
	return []Finding{{
		Severity: Problem, Count: int(max(over, drops)), Seen: seen,
		Means: "Listeners are dropping connection attempts now. ListenOverflows counts handshakes dropped " +
			"because an accept queue was full (the application accepts too slowly); ListenDrops counts " +
			"every drop at a listener, those included (the rest: memory, SYN backlog without cookies).",
		Confirm: []string{
			"synack ss --state listen: Recv-Q near Send-Q is the listener whose queue overflows",
			"clients see connects that take 1 s, 3 s, 7 s (SYN retransmissions)",
		},
		Do: c.pick([]string{
			"make the application accept faster",
			"raise the listen() backlog and " + c.knob(SysctlSomaxconn),
			c.knob(SysctlAbortOnOverflow) + ": 1 resets clients instead of dropping silently; keep 0 unless you understand the trade",
		}, []string{
			"make the application accept faster",
			"raise " + c.knob(KnobAcceptBacklog) + " and " + c.knob(KnobSynBacklog),
		}),
	}}
}

func (c *checker) syncookies() []Finding {
	sent, ok := c.delta("SyncookiesSent")
	if !ok || sent == 0 {
		return nil
	}
	seen := fmt.Sprintf("SyncookiesSent +%d %s", sent, c.since())
	if m := c.moved("SyncookiesRecv", "SyncookiesFailed"); m != "" {
		seen += ", " + m
	}
	return []Finding{{
		Severity: Warning, Count: int(sent), Seen: seen + ".",
		Means: "A listener's SYN backlog overflowed and the stack answered SYNs with cookies instead of " +
			"keeping state: a SYN flood or a burst of connections larger than the backlog. Connections " +
			"still work, but without some TCP options.",
		Confirm: []string{"synack ss --state syn-received: which port, how many sources"},
		Do: c.pick([]string{
			"if it is a burst of real clients, raise " + c.knob(SysctlMaxSynBacklog) + ", " + c.knob(SysctlSomaxconn) + " and the listen() backlog",
			"if it is a flood, keep " + c.knob(SysctlSyncookies) + " on and filter upstream",
		}, []string{
			"if it is a burst of real clients, raise " + c.knob(KnobSynBacklog),
			"if it is a flood, keep " + c.knob(KnobSyncookies) + " on and filter upstream",
		}),
	}}
}

func (c *checker) orphans() []Finding {
	if !c.host() || c.th.Orphans < 0 {
		return nil
	}
	limit, err := strconv.Atoi(c.s.Setting(SysctlMaxOrphans))
	if err != nil || limit <= 0 {
		return nil
	}
	rows := Filter(c.s.Rows, func(r Row) bool {
		switch r.State {
		case tcp.FinWait1, tcp.FinWait2, tcp.LastAck, tcp.Closing:
			return r.Inode == 0
		}
		return false
	})
	frac := float64(len(rows)) / float64(limit)
	if frac < c.th.Orphans {
		return nil
	}
	return []Finding{{
		Severity: Warning, Count: len(rows),
		Seen: fmt.Sprintf("%d closed sockets still finishing their close, %s of %s.", len(rows), pct(frac), c.knob(SysctlMaxOrphans)),
		Means: "Sockets the applications closed but whose FIN exchange is not done. Past the limit the kernel " +
			"resets them (\"too many orphaned sockets\" in the kernel log).",
		Confirm: []string{"dmesg | grep -i orphan", "see the fin-wait-1 and last-ack findings for where they pile up"},
		Do: []string{
			"fix the peers or the path that keeps them from finishing",
			"lower " + c.knob(SysctlOrphanRetries) + "; raise " + c.knob(SysctlMaxOrphans) + " only if memory allows",
		},
	}}
}

// memory is one finding per state of synack's memory budget (stack
// Options.MemoryLimit, like Linux's tcp_mem): over the limit (a problem:
// data is being dropped), under pressure (a warning: windows are held
// small), or back to normal after pressure since the last look (info).
// The state and the bytes in use are gauges of a synack snapshot
// (TCPMemoryState, TCPMemoryBytes); the pressure count and the drops are
// counters Linux has too (TCPMemoryPressures, TCPRcvQDrop).
func (c *checker) memory() []Finding {
	if c.host() {
		return nil
	}
	state, ok := c.s.Counters["TCPMemoryState"]
	if !ok {
		return nil
	}
	used := c.s.Counters["TCPMemoryBytes"]
	inUse := fmt.Sprintf("%d bytes in use", used)
	if limit, err := strconv.ParseUint(c.s.Setting(KnobMemoryLimit), 10, 64); err == nil && limit > 0 {
		inUse += fmt.Sprintf(", %s of %s", pct(float64(used)/float64(limit)), c.knob(KnobMemoryLimit))
	}
	confirm := []string{
		"synack ss: the connections with the most Recv-Q and out-of-order data (Info.Memory) are the ones holding it",
		"synack diagnose --watch: whether TCPMemoryPressures and TCPRcvQDrop still move",
	}
	do := []string{
		"if the connections holding memory are real clients whose application reads too slowly, make it read faster or raise " + c.knob(KnobMemoryLimit),
		"if they are attackers (out-of-order data far ahead, data never read), limit them upstream; the budget keeps the process alive meanwhile",
	}
	switch state {
	case 2:
		drops := c.s.Counters["TCPRcvQDrop"]
		seen := fmt.Sprintf("The stack is at its memory limit: %s. %d segments' data dropped over the limit since start.", inUse, drops)
		if m := c.moved("TCPRcvQDrop", "OFOPruned"); m != "" {
			seen += " Counters moved " + c.since() + ": " + m + "."
		}
		return []Finding{{
			Severity: Problem, Count: int(drops), Seen: seen,
			Means: "Connections' buffers (unread data, out-of-order data) fill the whole budget. Arriving data " +
				"that would take more memory is dropped before it is queued, so peers must send it again: " +
				"every connection that needs memory stalls until some is given back.",
			Confirm: confirm, Do: do,
		}}
	case 1:
		return []Finding{{
			Severity: Warning, Count: int(c.s.Counters["TCPMemoryPressures"]),
			Seen: "The stack is under memory pressure: " + inUse + ".",
			Means: "Past 75% of the budget every receive window is held to a few segments and out-of-order " +
				"data is pruned, largest holders first, until memory falls under 50%. Connections are slower " +
				"meanwhile; nothing is dropped yet.",
			Confirm: confirm, Do: do,
		}}
	}
	n, ok := c.delta("TCPMemoryPressures")
	if !ok || n == 0 {
		return nil
	}
	return []Finding{{
		Severity: Info, Count: int(n),
		Seen: fmt.Sprintf("The stack entered memory pressure %d times %s and is back to normal (%s).", n, c.since(), inUse),
		Means: "Buffers came close to the budget for a while: a burst, slow readers or an attack that has " +
			"passed. Windows were held small meanwhile.",
		Confirm: confirm[1:], Do: []string{"nothing, unless it recurs; then see what holds the memory"},
	}}
}

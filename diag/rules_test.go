package diag

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/synack/synack/tcp"
)

// A synthetic host: ports 40000-40099 are ephemeral (100 of them), so the
// relative TIME-WAIT thresholds are easy to hit and to miss by one.
func newSnap() Snapshot {
	return Snapshot{
		Source:         SourceHost,
		Time:           time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		EphemeralRange: [2]int{40000, 40099},
		Counters:       map[string]uint64{},
		Settings:       map[string]string{},
	}
}

var (
	serverAddr = netip.MustParseAddr("10.0.0.1")
	peerAddr   = netip.MustParseAddr("192.0.2.7")
)

// conns makes n rows in state st. Each is a connection from a distinct
// peer port to local port lport (or, when lport is 0, from distinct
// ephemeral ports to remote), changed by each when not nil.
func conns(n int, st tcp.State, lport uint16, remote netip.AddrPort, each func(i int, r *Row)) []Row {
	rows := make([]Row, n)
	for i := range rows {
		r := Row{Source: SourceHost, State: st, UID: 0}
		if lport != 0 {
			r.Local = netip.AddrPortFrom(serverAddr, lport)
			r.Remote = netip.AddrPortFrom(peerAddr, uint16(50000+i))
		} else {
			r.Local = netip.AddrPortFrom(serverAddr, uint16(40000+i))
			r.Remote = remote
		}
		if each != nil {
			each(i, &r)
		}
		rows[i] = r
	}
	return rows
}

func listener(port uint16, backlog, queued int) Row {
	return Row{Source: SourceHost, State: tcp.Listen, Local: netip.AddrPortFrom(serverAddr, port),
		SendQ: backlog, RecvQ: queued, PID: 7, Process: "server"}
}

func owned(pid int, name string) func(int, *Row) {
	return func(_ int, r *Row) { r.PID, r.Process, r.Inode = pid, name, uint64(1000+pid) }
}

// find returns the findings of rule.
func find(fs []Finding, rule string) []Finding {
	var out []Finding
	for _, f := range fs {
		if f.Rule == rule {
			out = append(out, f)
		}
	}
	return out
}

type ruleCase struct {
	name string
	snap func() Snapshot
	prev func() *Snapshot // nil: no previous snapshot
	th   Thresholds
	rule string
	want Severity // ignored when none
	none bool     // the rule must not fire
	// check looks further at the one finding.
	check func(t *testing.T, f Finding)
}

func runCases(t *testing.T, cases []ruleCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var prev *Snapshot
			if tc.prev != nil {
				prev = tc.prev()
			}
			fs := find(Diagnose(tc.snap(), prev, tc.th), tc.rule)
			if tc.none {
				if len(fs) != 0 {
					t.Fatalf("%s fired: %+v", tc.rule, fs[0])
				}
				return
			}
			if len(fs) != 1 {
				t.Fatalf("got %d %s findings, want 1", len(fs), tc.rule)
			}
			f := fs[0]
			if f.Severity != tc.want {
				t.Errorf("severity %s, want %s (seen: %s)", f.Severity, tc.want, f.Seen)
			}
			if f.Seen == "" || f.Means == "" || len(f.Confirm) == 0 || len(f.Do) == 0 {
				t.Errorf("incomplete finding: %+v", f)
			}
			if tc.check != nil {
				tc.check(t, f)
			}
		})
	}
}

func with(rows ...[]Row) func() Snapshot {
	return func() Snapshot {
		s := newSnap()
		for _, r := range rows {
			s.Rows = append(s.Rows, r...)
		}
		return s
	}
}

func contains(sub ...string) func(*testing.T, Finding) {
	return func(t *testing.T, f Finding) {
		t.Helper()
		all := f.Seen + "\n" + f.Means + "\n" + strings.Join(f.Confirm, "\n") + "\n" + strings.Join(f.Do, "\n")
		for _, s := range sub {
			if !strings.Contains(all, s) {
				t.Errorf("finding does not mention %q:\n%s", s, all)
			}
		}
	}
}

func TestCloseWait(t *testing.T) {
	app := owned(4242, "myapp")
	runCases(t, []ruleCase{
		{name: "below the bar", snap: with(conns(9, tcp.CloseWait, 8080, netip.AddrPort{}, app)), rule: "close-wait", none: true},
		{name: "warning", snap: with(conns(10, tcp.CloseWait, 8080, netip.AddrPort{}, app)), rule: "close-wait", want: Warning,
			check: func(t *testing.T, f Finding) {
				if f.PID != 4242 || f.Process != "myapp (pid 4242)" || f.Port != 8080 || f.Count != 10 {
					t.Errorf("got pid %d process %q port %d count %d", f.PID, f.Process, f.Port, f.Count)
				}
				contains("myapp (pid 4242) on local port 8080: 10", "has not called close", "socket leak")(t, f)
			}},
		{name: "problem", snap: with(conns(100, tcp.CloseWait, 8080, netip.AddrPort{}, app)), rule: "close-wait", want: Problem},
		{name: "names the leaking process among several",
			snap: with(conns(3, tcp.CloseWait, 22, netip.AddrPort{}, owned(1, "sshd")),
				conns(30, tcp.CloseWait, 8080, netip.AddrPort{}, app)),
			rule: "close-wait", want: Warning,
			check: func(t *testing.T, f Finding) {
				if f.PID != 4242 {
					t.Errorf("process %s, want myapp", f.Process)
				}
				contains("myapp (pid 4242) on local port 8080: 30; sshd (pid 1) on local port 22: 3")(t, f)
			}},
		{name: "owner unknown", snap: with(conns(12, tcp.CloseWait, 8080, netip.AddrPort{}, nil)), rule: "close-wait", want: Warning,
			check: contains("an unknown process", "run as root")},
		{name: "threshold lowered", snap: with(conns(3, tcp.CloseWait, 8080, netip.AddrPort{}, app)),
			th: Thresholds{CloseWaitWarn: 3}, rule: "close-wait", want: Warning},
		{name: "turned off", snap: with(conns(500, tcp.CloseWait, 8080, netip.AddrPort{}, app)),
			th: Thresholds{CloseWaitWarn: -1, CloseWaitProblem: -1}, rule: "close-wait", none: true},
		{name: "other states do not count", snap: with(conns(50, tcp.Established, 8080, netip.AddrPort{}, app)), rule: "close-wait", none: true},
	})
}

func TestFinWait1(t *testing.T) {
	dst := netip.AddrPortFrom(peerAddr, 443)
	stuck := func(i int, r *Row) {
		r.SendQ = 1000
		if i%2 == 0 {
			r.Timer, r.Retransmits = "retransmit", 3
		} else {
			r.Timer = "persist"
		}
	}
	runCases(t, []ruleCase{
		{name: "below", snap: with(conns(19, tcp.FinWait1, 0, dst, stuck)), rule: "fin-wait-1", none: true},
		{name: "warning", snap: with(conns(20, tcp.FinWait1, 0, dst, stuck)), rule: "fin-wait-1", want: Warning,
			check: func(t *testing.T, f Finding) {
				contains("10 retransmitting, 10 probing a zero window, 20000 bytes", "192.0.2.7: 20", "net.ipv4.tcp_orphan_retries")(t, f)
				if f.Remote != "192.0.2.7" {
					t.Errorf("remote %q", f.Remote)
				}
			}},
		{name: "problem", snap: with(conns(200, tcp.FinWait1, 0, dst, nil)), rule: "fin-wait-1", want: Problem},
	})
}

func TestFinWait2(t *testing.T) {
	dst := netip.AddrPortFrom(peerAddr, 5432)
	synack := func() Snapshot {
		s := with(conns(20, tcp.FinWait2, 0, dst, nil))()
		s.Source = SourceSynack
		s.Settings[KnobFinWait2Timeout] = "1m0s"
		return s
	}
	runCases(t, []ruleCase{
		{name: "below", snap: with(conns(19, tcp.FinWait2, 0, dst, nil)), rule: "fin-wait-2", none: true},
		{name: "host advice", snap: func() Snapshot {
			s := with(conns(15, tcp.FinWait2, 0, dst, nil), conns(5, tcp.FinWait2, 0, dst, owned(9, "client")))()
			s.Settings[SysctlFinTimeout] = "60"
			return s
		}, rule: "fin-wait-2", want: Warning,
			check: contains("5 still owned", "15 closed", "net.ipv4.tcp_fin_timeout (now 60)", "192.0.2.7:5432: 20", "never sends its own FIN")},
		{name: "synack advice", snap: synack, rule: "fin-wait-2", want: Warning,
			check: func(t *testing.T, f Finding) {
				contains("FinWait2Timeout (now 1m0s)")(t, f)
				if strings.Contains(strings.Join(f.Do, " "), "net.ipv4") {
					t.Errorf("synack advice names Linux sysctls: %q", f.Do)
				}
			}},
		{name: "problem", snap: with(conns(200, tcp.FinWait2, 0, dst, nil)), rule: "fin-wait-2", want: Problem},
	})
}

func TestTimeWaitPorts(t *testing.T) {
	db := netip.AddrPortFrom(peerAddr, 5432)
	other := netip.AddrPortFrom(netip.MustParseAddr("192.0.2.8"), 5432)
	runCases(t, []ruleCase{
		// 100 ephemeral ports: 30% is 30.
		{name: "29 of 100 ports", snap: with(conns(29, tcp.TimeWait, 0, db, nil)), rule: "time-wait-ports", none: true},
		{name: "30 of 100 ports", snap: with(conns(30, tcp.TimeWait, 0, db, nil)), rule: "time-wait-ports", want: Warning,
			check: func(t *testing.T, f Finding) {
				contains("30 connections in TIME-WAIT toward 192.0.2.7:5432", "30 of the 100 ephemeral ports (30%)",
					"net.ipv4.tcp_tw_reuse", "net.ipv4.ip_local_port_range", "EADDRNOTAVAIL")(t, f)
				if f.Remote != "192.0.2.7:5432" || f.Count != 30 {
					t.Errorf("remote %s count %d", f.Remote, f.Count)
				}
			}},
		{name: "open connections count too", snap: with(conns(25, tcp.TimeWait, 0, db, nil),
			conns(5, tcp.Established, 0, db, func(i int, r *Row) {
				r.Local = netip.AddrPortFrom(serverAddr, uint16(40050+i))
				owned(77, "pgclient")(i, r)
			})),
			rule: "time-wait-ports", want: Warning,
			check: func(t *testing.T, f Finding) {
				contains("with 5 other connections they hold 30", "Likely opened by pgclient (pid 77)")(t, f)
				if f.PID != 77 {
					t.Errorf("likely owner pid %d, want 77", f.PID)
				}
			}},
		{name: "70 of 100 ports", snap: with(conns(70, tcp.TimeWait, 0, db, nil)), rule: "time-wait-ports", want: Problem},
		{name: "per destination", snap: with(conns(20, tcp.TimeWait, 0, db, nil), conns(20, tcp.TimeWait, 0, other, func(i int, r *Row) {
			r.Local = netip.AddrPortFrom(serverAddr, uint16(40050+i))
		})), rule: "time-wait-ports", none: true},
		{name: "the same count against a wide range", snap: func() Snapshot {
			s := with(conns(70, tcp.TimeWait, 0, db, nil))()
			s.EphemeralRange = [2]int{32768, 60999}
			s.Rows = conns(70, tcp.TimeWait, 0, db, func(i int, r *Row) { r.Local = netip.AddrPortFrom(serverAddr, uint16(32768+i)) })
			return s
		}, rule: "time-wait-ports", none: true},
		{name: "server side is not about ports", snap: with(conns(90, tcp.TimeWait, 80, netip.AddrPort{}, nil)), rule: "time-wait-ports", none: true},
		{name: "range unknown", snap: func() Snapshot {
			s := with(conns(90, tcp.TimeWait, 0, db, nil))()
			s.EphemeralRange = [2]int{}
			return s
		}, rule: "time-wait-ports", none: true},
		{name: "fractions configurable", snap: with(conns(10, tcp.TimeWait, 0, db, nil)),
			th: Thresholds{TimeWaitPortsWarn: 0.1}, rule: "time-wait-ports", want: Warning},
	})
}

func TestTimeWaitChurn(t *testing.T) {
	runCases(t, []ruleCase{
		{name: "below", snap: with(conns(99, tcp.TimeWait, 80, netip.AddrPort{}, nil)), th: Thresholds{TimeWaitMany: 100}, rule: "time-wait", none: true},
		{name: "info", snap: with([]Row{listener(80, 128, 0)}, conns(120, tcp.TimeWait, 80, netip.AddrPort{}, nil)),
			th: Thresholds{TimeWaitMany: 100}, rule: "time-wait", want: Info,
			check: func(t *testing.T, f Finding) {
				contains("120 connections in TIME-WAIT", "about 2 connections a second", "120 of them on listening ports")(t, f)
				if f.PID != 7 {
					t.Errorf("likely owner %q, want the listener's process", f.Process)
				}
			}},
		{name: "default bar", snap: with(conns(9999, tcp.TimeWait, 80, netip.AddrPort{}, nil)), rule: "time-wait", none: true},
	})
}

func TestTimeWaitBuckets(t *testing.T) {
	snap := func(n int, src string) func() Snapshot {
		return func() Snapshot {
			s := with(conns(n, tcp.TimeWait, 80, netip.AddrPort{}, nil))()
			s.Settings[SysctlMaxTWBuckets] = "1000"
			s.Source = src
			return s
		}
	}
	runCases(t, []ruleCase{
		{name: "79%", snap: snap(799, SourceHost), rule: "time-wait-buckets", none: true},
		{name: "80%", snap: snap(800, SourceHost), rule: "time-wait-buckets", want: Warning},
		{name: "full", snap: snap(1000, SourceHost), rule: "time-wait-buckets", want: Problem},
		{name: "not for synack", snap: snap(1000, SourceSynack), rule: "time-wait-buckets", none: true},
	})
}

func TestSynReceived(t *testing.T) {
	half := func(n int) []Row { return conns(n, tcp.SynReceived, 80, netip.AddrPort{}, nil) }
	spoofed := func(n int) []Row {
		return conns(n, tcp.SynReceived, 80, netip.AddrPort{}, func(i int, r *Row) {
			r.Remote = netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}), 1234)
		})
	}
	runCases(t, []ruleCase{
		// Backlog 128: 50% is 64, 90% is 115.2.
		{name: "63 of 128", snap: with([]Row{listener(80, 128, 0)}, half(63)), rule: "syn-received", none: true},
		{name: "64 of 128", snap: with([]Row{listener(80, 128, 0)}, half(64)), rule: "syn-received", want: Warning,
			check: func(t *testing.T, f Finding) {
				contains("64 half-open handshakes (SYN-RECEIVED) on port 80, 50% of its SYN backlog of 128",
					"net.ipv4.tcp_syncookies", "net.ipv4.tcp_max_syn_backlog", "net.core.somaxconn", "net.ipv4.tcp_synack_retries")(t, f)
				if f.Port != 80 || f.PID != 7 {
					t.Errorf("port %d pid %d", f.Port, f.PID)
				}
			}},
		{name: "116 of 128", snap: with([]Row{listener(80, 128, 0)}, spoofed(116)), rule: "syn-received", want: Problem,
			check: contains("from 116 distinct addresses")},
		{name: "few against a small backlog", snap: with([]Row{listener(80, 16, 0)}, half(9)), rule: "syn-received", none: true},
		{name: "a full small backlog", snap: with([]Row{listener(80, 8, 0)}, half(8)), rule: "syn-received", want: Problem},
		{name: "the SYN backlog, when known, is the bound", snap: func() Snapshot {
			s := with([]Row{listener(80, 4096, 0)}, half(20))()
			s.FillListeners(func(Listener) int { return 32 })
			return s
		}, rule: "syn-received", want: Warning, check: contains("of its SYN backlog of 32")},
		{name: "counters moving", snap: func() Snapshot {
			s := with([]Row{listener(80, 128, 0)}, half(64))()
			s.Counters["SyncookiesSent"], s.Counters["ListenDrops"] = 500, 10
			return s
		}, prev: func() *Snapshot {
			s := newSnap()
			s.Time = s.Time.Add(-2 * time.Second)
			s.Counters["SyncookiesSent"], s.Counters["ListenDrops"] = 100, 10
			return &s
		}, rule: "syn-received", want: Warning, check: contains("Counters moved in the last 2s: SyncookiesSent +400")},
		{name: "no listener: absolute bar", snap: with(half(255)), rule: "syn-received", none: true},
		{name: "no listener: many", snap: with(half(256)), rule: "syn-received", want: Warning},
		{name: "synack advice", snap: func() Snapshot {
			s := with([]Row{listener(80, 128, 0)}, half(120))()
			s.Source = SourceSynack
			return s
		}, rule: "syn-received", want: Problem, check: contains("SynBacklog", "Syncookies", "SynAckRetries")},
	})
}

// Issue 15: 300 spoofed SYNs against a 4096 backlog are 7% of it, yet a
// flood: none of them completes, every SYN,ACK is being retransmitted.
func TestSynFloodWhateverTheBacklog(t *testing.T) {
	stalled := func(n int) []Row {
		return conns(n, tcp.SynReceived, 80, netip.AddrPort{}, func(i int, r *Row) {
			r.Remote = netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)}), 1234)
			r.Retransmits, r.Timer, r.RTO = 2, "retransmit", 4*time.Second
		})
	}
	young := func(n int) []Row { return conns(n, tcp.SynReceived, 80, netip.AddrPort{}, nil) }
	big := []Row{listener(80, 4096, 0)}
	synack := func(rows ...[]Row) func() Snapshot {
		return func() Snapshot {
			s := with(rows...)()
			s.Source = SourceSynack
			s.Settings[KnobMaxRetransmits] = "15"
			return s
		}
	}
	runCases(t, []ruleCase{
		{name: "300 stalled of 4096", snap: with(big, stalled(300)), rule: "syn-received", want: Problem,
			check: contains("300 half-open handshakes (SYN-RECEIVED) on port 80, 7% of its SYN backlog of 4096",
				"300 of them have had their SYN,ACK retransmitted", "SYN flood",
				"net.ipv4.tcp_syncookies", "net.ipv4.tcp_max_syn_backlog", "net.ipv4.tcp_synack_retries")},
		{name: "20 stalled of 4096", snap: with(big, stalled(20)), rule: "syn-received", want: Warning, check: contains("SYN flood")},
		{name: "9 stalled", snap: with(big, stalled(9)), rule: "syn-received", none: true},
		{name: "SynRecvMin holds", snap: with(big, stalled(20)), th: Thresholds{SynRecvMin: 21}, rule: "syn-received", none: true},
		{name: "waiting a second counts as stalled", snap: with(big, conns(20, tcp.SynReceived, 80, netip.AddrPort{},
			func(_ int, r *Row) { r.Age = 1500 * time.Millisecond })), rule: "syn-received", want: Warning},
		{name: "handshakes completing", snap: with(big, stalled(10), young(40)), rule: "syn-received", none: true},
		{name: "no listener", snap: with(stalled(120)), rule: "syn-received", want: Problem, check: contains("no bound known", "SYN flood")},
		{name: "synack: the SYN settings", snap: synack(big, stalled(300)), rule: "syn-received", want: Problem,
			check: func(t *testing.T, f Finding) {
				contains("SynBacklog", "Syncookies", "SynAckRetries")(t, f)
				if all := strings.Join(f.Do, "\n"); strings.Contains(all, "MaxRetransmits") {
					t.Errorf("flood advice names MaxRetransmits: %s", all)
				}
			}},
		{name: "synack: not read as retransmitting", snap: synack(big, stalled(300)), rule: "retransmitting", none: true},
		{name: "host: not read as retransmitting", snap: with(big, stalled(300)), rule: "retransmitting", none: true},
	})
}

func TestAcceptQueue(t *testing.T) {
	runCases(t, []ruleCase{
		{name: "empty", snap: with([]Row{listener(8080, 128, 0)}), rule: "accept-queue", none: true},
		{name: "63 of 128", snap: with([]Row{listener(8080, 128, 63)}), rule: "accept-queue", none: true},
		{name: "64 of 128", snap: with([]Row{listener(8080, 128, 64)}), rule: "accept-queue", want: Warning},
		{name: "full", snap: with([]Row{listener(8080, 128, 129)}), rule: "accept-queue", want: Problem,
			check: func(t *testing.T, f Finding) {
				contains("129 completed handshakes waiting for accept", "server (pid 7)", "net.core.somaxconn")(t, f)
				if f.Port != 8080 || f.PID != 7 {
					t.Errorf("port %d pid %d", f.Port, f.PID)
				}
			}},
		{name: "minimum", snap: with([]Row{listener(8080, 2, 1)}), th: Thresholds{AcceptQueueMin: 2}, rule: "accept-queue", none: true},
	})
}

func TestPileUps(t *testing.T) {
	dst := netip.AddrPortFrom(peerAddr, 443)
	runCases(t, []ruleCase{
		{name: "last-ack below", snap: with(conns(19, tcp.LastAck, 80, netip.AddrPort{}, nil)), rule: "last-ack", none: true},
		{name: "last-ack", snap: with(conns(20, tcp.LastAck, 80, netip.AddrPort{}, nil)), rule: "last-ack", want: Warning,
			check: contains("20 connections in LAST-ACK", "192.0.2.7: 20")},
		{name: "last-ack problem", snap: with(conns(200, tcp.LastAck, 80, netip.AddrPort{}, nil)), rule: "last-ack", want: Problem},
		{name: "closing below", snap: with(conns(19, tcp.Closing, 0, dst, nil)), rule: "closing", none: true},
		{name: "closing", snap: with(conns(20, tcp.Closing, 0, dst, nil)), rule: "closing", want: Warning,
			check: contains("20 connections in CLOSING")},
	})
}

func TestRetransmitting(t *testing.T) {
	dst := netip.AddrPortFrom(peerAddr, 443)
	retrans := func(k int) func(int, *Row) {
		return func(_ int, r *Row) { r.Retransmits, r.Timer, r.RTO = k, "retransmit", 3200*time.Millisecond }
	}
	runCases(t, []ruleCase{
		{name: "four", snap: with(conns(4, tcp.Established, 0, dst, retrans(2))), rule: "retransmitting", none: true},
		{name: "first retry does not count", snap: with(conns(50, tcp.Established, 0, dst, retrans(1))), rule: "retransmitting", none: true},
		{name: "five", snap: with(conns(5, tcp.Established, 0, dst, retrans(2))), rule: "retransmitting", want: Warning,
			check: contains("5 connections have timed out 2 or more times", "Largest RTO 3.2s", "192.0.2.7: 5", "net.ipv4.tcp_mtu_probing")},
		{name: "fifty", snap: with(conns(50, tcp.Established, 0, dst, retrans(4))), rule: "retransmitting", want: Problem},
		{name: "half-open ones do not count", snap: with(conns(4, tcp.Established, 0, dst, retrans(2)),
			conns(300, tcp.SynReceived, 80, netip.AddrPort{}, retrans(3))), rule: "retransmitting", none: true},
		{name: "SYN-SENT ones do", snap: with(conns(5, tcp.SynSent, 0, dst, retrans(2))), rule: "retransmitting", want: Warning},
	})
}

func counters(m map[string]uint64, ago time.Duration) func() *Snapshot {
	return func() *Snapshot {
		s := newSnap()
		s.Time = s.Time.Add(-ago)
		s.Counters = m
		return &s
	}
}

func withCounters(m map[string]uint64) func() Snapshot {
	return func() Snapshot {
		s := newSnap()
		s.Counters = m
		return s
	}
}

func TestRetransRate(t *testing.T) {
	base := map[string]uint64{"OutSegs": 1000000, "RetransSegs": 1000}
	runCases(t, []ruleCase{
		{name: "3%", snap: withCounters(map[string]uint64{"OutSegs": 1010000, "RetransSegs": 1300}), prev: counters(base, 10*time.Second),
			rule: "retrans-rate", want: Warning, check: contains("300 of 10000 segments sent in the last 10s were retransmissions (3.0%)")},
		{name: "1%", snap: withCounters(map[string]uint64{"OutSegs": 1010000, "RetransSegs": 1100}), prev: counters(base, 10*time.Second),
			rule: "retrans-rate", none: true},
		{name: "too few segments", snap: withCounters(map[string]uint64{"OutSegs": 1000500, "RetransSegs": 1100}), prev: counters(base, time.Second),
			rule: "retrans-rate", none: true},
		{name: "one look", snap: withCounters(base), rule: "retrans-rate", none: true},
	})
}

func TestReordering(t *testing.T) {
	synack := func(f func() Snapshot) func() Snapshot {
		return func() Snapshot { s := f(); s.Source = SourceSynack; return s }
	}
	base := map[string]uint64{"TCPDSACKRecv": 100, "TCPSpuriousRetrans": 10, "RetransSegs": 500}
	runCases(t, []ruleCase{
		{name: "synack: d-sacks and undos", snap: synack(withCounters(map[string]uint64{"TCPDSACKRecv": 160, "TCPSpuriousRetrans": 25, "RetransSegs": 560})),
			prev: counters(base, 10*time.Second), rule: "reordering", want: Info,
			check: contains("in the last 10s: TCPDSACKRecv +60, TCPSpuriousRetrans +15", "LossDetection")},
		{name: "synack: spurious only", snap: synack(withCounters(map[string]uint64{"TCPDSACKRecv": 100, "TCPSpuriousRetrans": 22, "RetransSegs": 520})),
			prev: counters(base, 10*time.Second), rule: "reordering", want: Info, check: contains("TCPSpuriousRetrans +12")},
		{name: "synack: a few", snap: synack(withCounters(map[string]uint64{"TCPDSACKRecv": 103, "TCPSpuriousRetrans": 11, "RetransSegs": 600})),
			prev: counters(base, 10*time.Second), rule: "reordering", none: true},
		{name: "host: undone by D-SACK and timestamps", snap: withCounters(map[string]uint64{"TCPDSACKRecv": 100, "TCPDSACKUndo": 8, "TCPFullUndo": 6, "TCPSACKReorder": 40}),
			prev: counters(map[string]uint64{"TCPDSACKRecv": 100, "TCPDSACKUndo": 0, "TCPFullUndo": 0, "TCPSACKReorder": 0}, 2*time.Second),
			rule: "reordering", want: Info, check: contains("TCPDSACKUndo +8, TCPFullUndo +6, TCPSACKReorder +40", "tcp_recovery")},
		{name: "one look", snap: withCounters(base), rule: "reordering", none: true},
	})
}

func TestListenDrops(t *testing.T) {
	runCases(t, []ruleCase{
		{name: "quiet", snap: withCounters(map[string]uint64{"ListenOverflows": 0, "ListenDrops": 0}), rule: "listen-drops", none: true},
		{name: "since boot", snap: withCounters(map[string]uint64{"ListenOverflows": 5, "ListenDrops": 5}), rule: "listen-drops", want: Info,
			check: contains("Since boot: ListenOverflows 5, ListenDrops 5", "--watch")},
		{name: "moving", snap: withCounters(map[string]uint64{"ListenOverflows": 17, "ListenDrops": 17}),
			prev: counters(map[string]uint64{"ListenOverflows": 5, "ListenDrops": 5}, 2*time.Second),
			rule: "listen-drops", want: Problem, check: contains("ListenOverflows +12, ListenDrops +12 in the last 2s")},
		{name: "still", snap: withCounters(map[string]uint64{"ListenOverflows": 5, "ListenDrops": 5}),
			prev: counters(map[string]uint64{"ListenOverflows": 5, "ListenDrops": 5}, 2*time.Second), rule: "listen-drops", none: true},
		{name: "went backwards (restart)", snap: withCounters(map[string]uint64{"ListenOverflows": 1, "ListenDrops": 1}),
			prev: counters(map[string]uint64{"ListenOverflows": 5, "ListenDrops": 5}, 2*time.Second), rule: "listen-drops", none: true},
	})
}

func TestSyncookies(t *testing.T) {
	runCases(t, []ruleCase{
		{name: "moving", snap: withCounters(map[string]uint64{"SyncookiesSent": 300, "SyncookiesRecv": 20}),
			prev: counters(map[string]uint64{"SyncookiesSent": 100, "SyncookiesRecv": 10}, time.Second),
			rule: "syncookies", want: Warning, check: contains("SyncookiesSent +200 in the last 1s, SyncookiesRecv +10")},
		{name: "still", snap: withCounters(map[string]uint64{"SyncookiesSent": 100}),
			prev: counters(map[string]uint64{"SyncookiesSent": 100}, time.Second), rule: "syncookies", none: true},
		{name: "one look", snap: withCounters(map[string]uint64{"SyncookiesSent": 100}), rule: "syncookies", none: true},
	})
}

func TestOrphans(t *testing.T) {
	dst := netip.AddrPortFrom(peerAddr, 443)
	snap := func(n int) func() Snapshot {
		return func() Snapshot {
			s := with(conns(n, tcp.FinWait1, 0, dst, nil))()
			s.Settings[SysctlMaxOrphans] = "100"
			return s
		}
	}
	runCases(t, []ruleCase{
		{name: "49 of 100", snap: snap(49), rule: "orphans", none: true},
		{name: "50 of 100", snap: snap(50), rule: "orphans", want: Warning, check: contains("50 closed sockets", "50% of net.ipv4.tcp_max_orphans (now 100)")},
		{name: "owned sockets are not orphans", snap: func() Snapshot {
			s := with(conns(60, tcp.FinWait1, 0, dst, owned(3, "x")))()
			s.Settings[SysctlMaxOrphans] = "100"
			return s
		}, rule: "orphans", none: true},
	})
}

func TestQuiet(t *testing.T) {
	s := with([]Row{listener(80, 128, 0)}, conns(500, tcp.Established, 80, netip.AddrPort{}, nil),
		conns(5, tcp.TimeWait, 80, netip.AddrPort{}, nil), conns(3, tcp.CloseWait, 80, netip.AddrPort{}, nil))()
	if fs := Diagnose(s, nil, Thresholds{}); len(fs) != 0 {
		t.Errorf("findings on a healthy server: %+v", fs)
	}
	if got := ExitStatus(nil); got != 0 {
		t.Errorf("ExitStatus(nil) = %d", got)
	}
}

func TestOrderAndExitStatus(t *testing.T) {
	s := with([]Row{listener(8080, 10, 10)}, // accept queue full: problem
		conns(10, tcp.CloseWait, 80, netip.AddrPort{}, nil), // warning, count 10
		conns(40, tcp.LastAck, 80, netip.AddrPort{}, nil),   // warning, count 40
	)()
	s.Counters["ListenOverflows"] = 3 // info
	fs := Diagnose(s, nil, Thresholds{})
	var got []string
	for _, f := range fs {
		got = append(got, fmt.Sprintf("%s/%s", f.Severity, f.Rule))
	}
	want := "problem/accept-queue warning/last-ack warning/close-wait info/listen-drops"
	if strings.Join(got, " ") != want {
		t.Errorf("order %q, want %q", strings.Join(got, " "), want)
	}
	if st := ExitStatus(fs); st != 2 {
		t.Errorf("exit status %d, want 2", st)
	}
	if st := ExitStatus(fs[1:]); st != 1 {
		t.Errorf("exit status without the problem %d, want 1", st)
	}
	if st := ExitStatus(fs[3:]); st != 0 {
		t.Errorf("exit status with only info %d, want 0", st)
	}
}

func TestEveryRuleHasATest(t *testing.T) {
	tested := map[string]bool{
		"close-wait": true, "fin-wait-1": true, "fin-wait-2": true, "time-wait-ports": true, "time-wait": true,
		"time-wait-buckets": true, "syn-received": true, "accept-queue": true, "last-ack": true, "closing": true,
		"retransmitting": true, "retrans-rate": true, "reordering": true, "listen-drops": true, "syncookies": true, "orphans": true,
		"memory": true, // TestMemoryRule
	}
	for _, r := range Rules() {
		if !tested[r.Name] {
			t.Errorf("rule %s has no test", r.Name)
		}
		if r.Summary == "" {
			t.Errorf("rule %s has no summary", r.Name)
		}
	}
}

func TestThresholds(t *testing.T) {
	var th Thresholds
	if err := th.Set("closewaitwarn", "5"); err != nil || th.CloseWaitWarn != 5 {
		t.Errorf("Set closewaitwarn: %v, %d", err, th.CloseWaitWarn)
	}
	if err := th.Set("TimeWaitPortsWarn", "0.25"); err != nil || th.TimeWaitPortsWarn != 0.25 {
		t.Errorf("Set TimeWaitPortsWarn: %v, %v", err, th.TimeWaitPortsWarn)
	}
	if err := th.Set("nope", "1"); err == nil {
		t.Error("Set accepted an unknown name")
	}
	if err := th.Set("CloseWaitWarn", "x"); err == nil {
		t.Error("Set accepted a bad number")
	}
	d := th.withDefaults()
	if d.CloseWaitWarn != 5 || d.CloseWaitProblem != 100 || d.SynRecvWarn != 0.5 {
		t.Errorf("withDefaults: %+v", d)
	}
	if len(ThresholdNames()) == 0 {
		t.Error("no threshold names")
	}
}

// One memory finding per state of synack's memory budget.
func TestMemoryRule(t *testing.T) {
	snap := func(state, used, pressures, drops uint64) Snapshot {
		s := newSnap()
		s.Source = SourceSynack
		s.Settings[KnobMemoryLimit] = "4194304"
		s.Counters["TCPMemoryState"] = state
		s.Counters["TCPMemoryBytes"] = used
		s.Counters["TCPMemoryPressures"] = pressures
		s.Counters["TCPRcvQDrop"] = drops
		return s
	}
	prev := snap(0, 1000, 2, 0)
	for _, c := range []struct {
		name  string
		cur   Snapshot
		prev  *Snapshot
		sev   Severity
		none  bool
		count int
		seen  string
	}{
		{name: "normal, no pressure", cur: snap(0, 1000, 0, 0), none: true},
		{name: "normal, pressure since boot but no earlier look", cur: snap(0, 1000, 3, 0), none: true},
		{name: "normal, pressure since the last look", cur: snap(0, 1000, 5, 0), prev: &prev, sev: Info, count: 3, seen: "3 times"},
		{name: "normal, no pressure since the last look", cur: snap(0, 1000, 2, 0), prev: &prev, none: true},
		{name: "pressure", cur: snap(1, 3500000, 3, 0), sev: Warning, count: 3, seen: "83% of MemoryLimit (now 4194304)"},
		{name: "over the limit", cur: snap(2, 4194304, 3, 77), prev: &prev, sev: Problem, count: 77, seen: "TCPRcvQDrop +77"},
		{name: "not for the host", cur: func() Snapshot { s := snap(2, 1, 1, 1); s.Source = SourceHost; return s }(), none: true},
		{name: "no gauge: an older synack", cur: func() Snapshot { s := snap(2, 1, 1, 1); delete(s.Counters, "TCPMemoryState"); return s }(), none: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			fs := find(Diagnose(c.cur, c.prev, Thresholds{}), "memory")
			if c.none {
				if len(fs) != 0 {
					t.Fatalf("got %+v, want no memory finding", fs)
				}
				return
			}
			if len(fs) != 1 {
				t.Fatalf("got %d memory findings, want 1", len(fs))
			}
			f := fs[0]
			if f.Severity != c.sev || f.Count != c.count || !strings.Contains(f.Seen, c.seen) {
				t.Fatalf("got %v count %d %q, want %v count %d with %q", f.Severity, f.Count, f.Seen, c.sev, c.count, c.seen)
			}
		})
	}
}

//go:build linux

package host

import (
	"bufio"
	"strings"
	"testing"

	"github.com/synack/synack/diag"
	"github.com/synack/synack/tcp"
)

func TestParseCounters(t *testing.T) {
	const snmp = `Ip: Forwarding DefaultTTL
Ip: 1 64
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens CurrEstab RetransSegs
Tcp: 1 200 120000 -1 38 5 2 7
Udp: InDatagrams NoPorts
Udp: 3 4
`
	const netstat = `TcpExt: SyncookiesSent SyncookiesRecv ListenOverflows ListenDrops
TcpExt: 11 12 13 14
IpExt: InNoRoutes InTruncatedPkts
IpExt: 0 0
`
	m := map[string]uint64{}
	for _, f := range []string{snmp, netstat} {
		if err := parseCounters(bufio.NewScanner(strings.NewReader(f)), m); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]uint64{"RtoAlgorithm": 1, "RtoMin": 200, "RtoMax": 120000, "ActiveOpens": 38, "PassiveOpens": 5,
		"CurrEstab": 2, "RetransSegs": 7, "SyncookiesSent": 11, "SyncookiesRecv": 12, "ListenOverflows": 13, "ListenDrops": 14}
	if len(m) != len(want) {
		t.Errorf("got %v, want %v", m, want)
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %d, want %d", k, m[k], v)
		}
	}
	bad := "Tcp: A B\nTcp: 1\n"
	if err := parseCounters(bufio.NewScanner(strings.NewReader(bad)), map[string]uint64{}); err == nil {
		t.Error("a short value line was accepted")
	}
}

func TestKernelStates(t *testing.T) {
	want := map[uint8]tcp.State{1: tcp.Established, 2: tcp.SynSent, 3: tcp.SynReceived, 4: tcp.FinWait1, 5: tcp.FinWait2,
		6: tcp.TimeWait, 7: tcp.Closed, 8: tcp.CloseWait, 9: tcp.LastAck, 10: tcp.Listen, 11: tcp.Closing, 12: tcp.SynReceived}
	for k, w := range want {
		if got, ok := State(k); !ok || got != w {
			t.Errorf("State(%d) = %v, %v; want %v", k, got, ok, w)
		}
	}
	if _, ok := State(13); ok {
		t.Error("State(13) known")
	}
}

func TestSynBacklog(t *testing.T) {
	l := diag.Listener{Backlog: 4096}
	if got := synBacklog(l, map[string]string{diag.SysctlSyncookies: "1", diag.SysctlMaxSynBacklog: "1024"}); got != 4096 {
		t.Errorf("with cookies: %d, want the backlog 4096", got)
	}
	if got := synBacklog(l, map[string]string{diag.SysctlSyncookies: "0", diag.SysctlMaxSynBacklog: "1024"}); got != 768 {
		t.Errorf("without cookies: %d, want 3/4 of tcp_max_syn_backlog 768", got)
	}
}

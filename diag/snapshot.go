// Package diag shows and diagnoses TCP connection states from any source:
// the host kernel's sockets (package diag/host) or synack's own
// connections. A source produces a Snapshot; the functions here count
// states, group connections, render tables and turn patterns into Findings
// ("120 connections in CLOSE-WAIT, 118 of them owned by myapp on port 8080:
// the application never calls close").
package diag

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/synack/synack/tcp"
)

// Sources of a Snapshot. The source decides which settings the advice in a
// Finding names: Linux sysctls for the host, synack's own knobs for synack.
const (
	SourceHost   = "host"   // the host kernel, through sock_diag
	SourceSynack = "synack" // a synack stack
)

// Row is one connection or listener.
type Row struct {
	Source string         // where the row comes from: SourceHost, SourceSynack, ...
	Local  netip.AddrPort // local address and port
	Remote netip.AddrPort // remote address and port; zero for listeners
	State  tcp.State

	// RecvQ and SendQ are bytes queued, as ss shows them: for connections,
	// received but not read by the application, and sent but not
	// acknowledged (or not yet sent). For LISTEN rows, RecvQ is the accept
	// queue's length and SendQ its bound (the backlog).
	RecvQ, SendQ int

	// Timer names the running timer ("retransmit", "keepalive",
	// "time-wait", "persist", ...; "" for none) and TimerLeft the time
	// until it fires.
	Timer     string
	TimerLeft time.Duration

	RTT, RTO    time.Duration // smoothed round-trip time and retransmission timeout; 0 if unknown
	Retransmits int           // consecutive retransmissions by timeout of the oldest unacknowledged segment

	// Age is how long the connection has existed, or for TIME-WAIT and
	// orphaned FIN-WAIT-2 how long it has been in that state; 0 if unknown.
	// Idle is the time since a segment was last received; 0 if unknown.
	Age, Idle time.Duration

	// BytesAcked and BytesReceived are the connection's payload bytes
	// acknowledged by the peer and received in order (tcp_info's
	// bytes_acked and bytes_received, RFC 4898's HCThruOctetsAcked and
	// HCThruOctetsReceived); 0 if unknown.
	BytesAcked, BytesReceived uint64

	PID     int    // owning process; 0 if unknown (no permission, orphaned, kernel-held)
	Process string // the owning process's name
	Inode   uint64 // socket inode on the host; 0 for orphaned and request sockets
	UID     int    // owning user id; -1 if unknown
}

// Owned reports whether the row has a known owning process.
func (r Row) Owned() bool { return r.PID > 0 }

// ProcessLabel names the owning process as "name (pid N)", or "" if unknown.
func (r Row) ProcessLabel() string {
	if r.PID <= 0 {
		return ""
	}
	name := r.Process
	if name == "" {
		name = "?"
	}
	return fmt.Sprintf("%s (pid %d)", name, r.PID)
}

// Listener describes the listening sockets on one local port. When more than
// one socket listens on the port (IPv4 and IPv6, SO_REUSEPORT groups), the
// numbers are sums over them.
type Listener struct {
	Port        uint16 `json:"port"`
	Sockets     int    `json:"sockets"`       // listening sockets on the port
	Backlog     int    `json:"backlog"`       // accept queue bound: completed handshakes waiting for accept
	AcceptQueue int    `json:"accept_queue"`  // completed handshakes waiting for accept now
	SynBacklog  int    `json:"syn_backlog"`   // bound on half-open handshakes (SYN-RECEIVED); 0 if unknown
	SynQueue    int    `json:"syn_queue"`     // half-open handshakes now (SYN-RECEIVED rows on the port)
	PID         int    `json:"pid,omitempty"` // owning process of one of the sockets, when known
	Process     string `json:"process,omitempty"`
}

// Snapshot is everything one look at a source returns.
type Snapshot struct {
	Source string    `json:"source"` // SourceHost, SourceSynack
	Time   time.Time `json:"time"`
	Rows   []Row     `json:"rows"`

	// Counters are cumulative counters named as Linux's `netstat -s` and
	// RFC 4022 name them: ListenOverflows, ListenDrops, SyncookiesSent,
	// ActiveOpens, RetransSegs, ... Gauges such as CurrEstab too.
	Counters map[string]uint64 `json:"counters,omitempty"`

	// Settings are the knobs that bear on the findings: for the host, sysctls
	// by their dotted names ("net.ipv4.tcp_fin_timeout"); for synack, its
	// configuration ("MSL", "FinWait2Timeout", ...).
	Settings map[string]string `json:"settings,omitempty"`

	// Listeners by local port. Built by the source or by FillListeners.
	Listeners map[uint16]Listener `json:"listeners,omitempty"`

	// EphemeralRange is the inclusive range local ports of outgoing
	// connections are chosen from; zero if unknown.
	EphemeralRange [2]int `json:"ephemeral_range"`

	// Notes tell what could not be read ("process names need root", ...).
	Notes []string `json:"notes,omitempty"`
}

// EphemeralSize is the number of ports in the ephemeral range, 0 if unknown.
func (s *Snapshot) EphemeralSize() int {
	lo, hi := s.EphemeralRange[0], s.EphemeralRange[1]
	if lo <= 0 || hi < lo {
		return 0
	}
	return hi - lo + 1
}

// Ephemeral reports whether port lies in the ephemeral range.
func (s *Snapshot) Ephemeral(port uint16) bool {
	return s.EphemeralSize() > 0 && int(port) >= s.EphemeralRange[0] && int(port) <= s.EphemeralRange[1]
}

// FillListeners builds s.Listeners from the LISTEN and SYN-RECEIVED rows,
// keeping any SynBacklog already known. synBacklog, when positive, is used
// for ports whose SynBacklog is unknown.
func (s *Snapshot) FillListeners(synBacklog func(l Listener) int) {
	old := s.Listeners
	m := make(map[uint16]Listener)
	for _, r := range s.Rows {
		if r.State != tcp.Listen {
			continue
		}
		p := r.Local.Port()
		l := m[p]
		l.Port = p
		l.Sockets++
		l.Backlog += r.SendQ
		l.AcceptQueue += r.RecvQ
		if l.PID == 0 && r.PID > 0 {
			l.PID, l.Process = r.PID, r.Process
		}
		m[p] = l
	}
	for _, r := range s.Rows {
		if r.State != tcp.SynReceived {
			continue
		}
		if l, ok := m[r.Local.Port()]; ok {
			l.SynQueue++
			m[r.Local.Port()] = l
		}
	}
	for p, l := range m {
		if o, ok := old[p]; ok && o.SynBacklog > 0 {
			l.SynBacklog = o.SynBacklog
		} else if synBacklog != nil {
			l.SynBacklog = synBacklog(l)
		}
		m[p] = l
	}
	s.Listeners = m
}

// ParseState reads a state name as people write it: the RFC's
// ("SYN-RECEIVED", "TIME-WAIT"), the kernel's ("SYN_RECV", "NEW_SYN_RECV",
// "FIN_WAIT1", "CLOSE") or ss's ("syn-recv", "estab", "close-wait"), in any
// case.
func ParseState(name string) (tcp.State, bool) {
	n := strings.ToUpper(strings.TrimSpace(name))
	n = strings.ReplaceAll(n, "_", "-")
	switch n {
	case "ESTAB":
		return tcp.Established, true
	case "SYN-RECV", "NEW-SYN-RECV", "SYN-RCVD":
		return tcp.SynReceived, true
	case "FIN-WAIT1":
		return tcp.FinWait1, true
	case "FIN-WAIT2":
		return tcp.FinWait2, true
	case "CLOSE", "UNCONN":
		return tcp.Closed, true
	case "LISTENING":
		return tcp.Listen, true
	}
	for _, s := range tcp.States() {
		if s.String() == n || strings.ReplaceAll(s.String(), "-", "") == n {
			return s, true
		}
	}
	return 0, false
}

// jsonRow is Row as JSON: states by name, durations in milliseconds.
type jsonRow struct {
	Source      string  `json:"source,omitempty"`
	Local       string  `json:"local"`
	Remote      string  `json:"remote,omitempty"`
	State       string  `json:"state"`
	RecvQ       int     `json:"recv_q"`
	SendQ       int     `json:"send_q"`
	Timer       string  `json:"timer,omitempty"`
	TimerLeftMS float64 `json:"timer_left_ms,omitempty"`
	RTTMS       float64 `json:"rtt_ms,omitempty"`
	RTOMS       float64 `json:"rto_ms,omitempty"`
	Retransmits int     `json:"retransmits,omitempty"`
	AgeMS       float64 `json:"age_ms,omitempty"`
	IdleMS      float64 `json:"idle_ms,omitempty"`
	BytesAcked  uint64  `json:"bytes_acked,omitempty"`
	BytesRecv   uint64  `json:"bytes_received,omitempty"`
	PID         int     `json:"pid,omitempty"`
	Process     string  `json:"process,omitempty"`
	Inode       uint64  `json:"inode,omitempty"`
	UID         int     `json:"uid"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func fromMS(f float64) time.Duration {
	return time.Duration(f * float64(time.Millisecond))
}

// MarshalJSON writes the row with the state's RFC name and durations in
// milliseconds (fields ending in _ms).
func (r Row) MarshalJSON() ([]byte, error) {
	remote := ""
	if r.Remote.IsValid() {
		remote = r.Remote.String()
	}
	return json.Marshal(jsonRow{
		Source: r.Source, Local: r.Local.String(), Remote: remote, State: r.State.String(),
		RecvQ: r.RecvQ, SendQ: r.SendQ, Timer: r.Timer, TimerLeftMS: ms(r.TimerLeft),
		RTTMS: ms(r.RTT), RTOMS: ms(r.RTO), Retransmits: r.Retransmits,
		AgeMS: ms(r.Age), IdleMS: ms(r.Idle), PID: r.PID, Process: r.Process,
		Inode: r.Inode, UID: r.UID, BytesAcked: r.BytesAcked, BytesRecv: r.BytesReceived,
	})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (r *Row) UnmarshalJSON(b []byte) error {
	var j jsonRow
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	st, ok := ParseState(j.State)
	if !ok {
		return fmt.Errorf("diag: unknown state %q", j.State)
	}
	var local, remote netip.AddrPort
	var err error
	if j.Local != "" {
		if local, err = netip.ParseAddrPort(j.Local); err != nil {
			return fmt.Errorf("diag: local address: %w", err)
		}
	}
	if j.Remote != "" {
		if remote, err = netip.ParseAddrPort(j.Remote); err != nil {
			return fmt.Errorf("diag: remote address: %w", err)
		}
	}
	*r = Row{
		Source: j.Source, Local: local, Remote: remote, State: st,
		RecvQ: j.RecvQ, SendQ: j.SendQ, Timer: j.Timer, TimerLeft: fromMS(j.TimerLeftMS),
		RTT: fromMS(j.RTTMS), RTO: fromMS(j.RTOMS), Retransmits: j.Retransmits,
		Age: fromMS(j.AgeMS), Idle: fromMS(j.IdleMS), PID: j.PID, Process: j.Process,
		Inode: j.Inode, UID: j.UID, BytesAcked: j.BytesAcked, BytesReceived: j.BytesRecv,
	}
	return nil
}

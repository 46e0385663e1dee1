//go:build linux

// Package host reads the host kernel's TCP sockets into a diag.Snapshot:
// every IPv4 and IPv6 socket in every state through netlink sock_diag
// (INET_DIAG with tcp_info, as ss reads them), the owning process where
// permissions allow (socket inode to pid through /proc/PID/fd), the kernel's
// counters from /proc/net/netstat and /proc/net/snmp, and the sysctls the
// findings name.
//
// Everything is read in the network namespace of the calling OS thread:
// a caller that wants another namespace locks its goroutine to a thread and
// enters the namespace first.
package host

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/synack/synack/diag"
	"github.com/synack/synack/tcp"
)

// Options adjust Read. The zero value reads everything from /proc.
type Options struct {
	// Proc is where procfs is mounted. Default "/proc".
	Proc string
	// NoProcesses skips finding each socket's owning process, which scans
	// every process's file descriptors.
	NoProcesses bool
}

// Read returns a snapshot of the TCP sockets, counters and settings of the
// network namespace of the calling OS thread.
func Read(opts Options) (diag.Snapshot, error) {
	if opts.Proc == "" {
		opts.Proc = "/proc"
	}
	// The netlink socket, /proc/thread-self/net and /proc/sys/net all answer
	// for the namespace of the thread that opens them: stay on one thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	s := diag.Snapshot{
		Source:   diag.SourceHost,
		Time:     time.Now(),
		Counters: make(map[string]uint64),
		Settings: make(map[string]string),
	}
	rows, err := dumpAll()
	if err != nil {
		return s, err
	}
	s.Rows = rows

	netDir := filepath.Join(opts.Proc, "thread-self", "net")
	if _, err := os.Stat(netDir); err != nil {
		netDir = filepath.Join(opts.Proc, "self", "net") // before Linux 3.17
	}
	for _, f := range []string{"snmp", "netstat"} {
		if err := readCounters(filepath.Join(netDir, f), s.Counters); err != nil {
			s.Notes = append(s.Notes, "counters: "+err.Error())
		}
	}
	for _, name := range diag.Sysctls() {
		b, err := os.ReadFile(filepath.Join(opts.Proc, "sys", strings.ReplaceAll(name, ".", "/")))
		if err != nil {
			continue // not every kernel has every sysctl
		}
		s.Settings[name] = strings.Join(strings.Fields(string(b)), " ")
	}
	if f := strings.Fields(s.Settings[diag.SysctlPortRange]); len(f) == 2 {
		lo, err1 := strconv.Atoi(f[0])
		hi, err2 := strconv.Atoi(f[1])
		if err1 == nil && err2 == nil {
			s.EphemeralRange = [2]int{lo, hi}
		}
	}
	fillAges(&s)
	if !opts.NoProcesses {
		if note := fillProcesses(opts.Proc, s.Rows); note != "" {
			s.Notes = append(s.Notes, note)
		}
	}
	s.FillListeners(func(l diag.Listener) int { return synBacklog(l, s.Settings) })
	return s, nil
}

// dumpAll asks sock_diag for every TCP socket of both families. A dump the
// kernel marks interrupted (the table changed under it) is asked again a
// few times, then taken as it is.
func dumpAll() ([]diag.Row, error) {
	var rows []diag.Row
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		var resp []*netlink.InetDiagTCPInfoResp
		var err error
		for range 3 {
			resp, err = netlink.SocketDiagTCPInfo(fam)
			if !errors.Is(err, netlink.ErrDumpInterrupted) {
				break
			}
		}
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			if fam == unix.AF_INET6 && (errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EAFNOSUPPORT)) {
				continue // no IPv6 in this kernel
			}
			return nil, fmt.Errorf("host: sock_diag dump (family %d): %w", fam, err)
		}
		for _, r := range resp {
			if r == nil || r.InetDiagMsg == nil {
				continue
			}
			rows = append(rows, toRow(r))
		}
	}
	return rows, nil
}

// Kernel TCP states (include/net/tcp_states.h).
const (
	kEstablished = 1 + iota
	kSynSent
	kSynRecv
	kFinWait1
	kFinWait2
	kTimeWait
	kClose
	kCloseWait
	kLastAck
	kListen
	kClosing
	kNewSynRecv
)

// State maps a kernel TCP state number to the RFC state. NEW_SYN_RECV (the
// kernel's request sockets, the half-open handshakes) is SYN-RECEIVED.
func State(k uint8) (tcp.State, bool) {
	switch k {
	case kEstablished:
		return tcp.Established, true
	case kSynSent:
		return tcp.SynSent, true
	case kSynRecv, kNewSynRecv:
		return tcp.SynReceived, true
	case kFinWait1:
		return tcp.FinWait1, true
	case kFinWait2:
		return tcp.FinWait2, true
	case kTimeWait:
		return tcp.TimeWait, true
	case kClose:
		return tcp.Closed, true
	case kCloseWait:
		return tcp.CloseWait, true
	case kLastAck:
		return tcp.LastAck, true
	case kListen:
		return tcp.Listen, true
	case kClosing:
		return tcp.Closing, true
	}
	return tcp.Closed, false
}

// timerName names idiag_timer's values (as inet_diag fills them).
func timerName(t uint8, st tcp.State) string {
	switch t {
	case 1:
		return "retransmit"
	case 2:
		return "keepalive"
	case 3:
		if st == tcp.FinWait2 {
			return "fin-timeout" // a closed FIN-WAIT-2 socket the kernel keeps as a time-wait entry
		}
		return "time-wait"
	case 4:
		return "persist" // zero window probe
	}
	return ""
}

func addrPort(ip net.IP, port uint16) netip.AddrPort {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(a.Unmap(), port)
}

func toRow(r *netlink.InetDiagTCPInfoResp) diag.Row {
	m := r.InetDiagMsg
	st, _ := State(m.State)
	row := diag.Row{
		Source:      diag.SourceHost,
		Local:       addrPort(m.ID.Source, m.ID.SourcePort),
		Remote:      addrPort(m.ID.Destination, m.ID.DestinationPort),
		State:       st,
		RecvQ:       int(m.RQueue),
		SendQ:       int(m.WQueue),
		Timer:       timerName(m.Timer, st),
		Retransmits: int(m.Retrans),
		Inode:       uint64(m.INode),
		UID:         int(m.UID),
	}
	if st == tcp.Listen {
		row.Remote = netip.AddrPort{} // the kernel says 0.0.0.0:0 or [::]:0
	}
	if row.Timer != "" {
		row.TimerLeft = time.Duration(m.Expires) * time.Millisecond
	}
	if ti := r.TCPInfo; ti != nil {
		row.RTT = time.Duration(ti.Rtt) * time.Microsecond
		row.RTO = time.Duration(ti.Rto) * time.Microsecond
		if st != tcp.Listen {
			row.Idle = time.Duration(ti.Last_ack_recv) * time.Millisecond
			row.BytesAcked, row.BytesReceived = ti.Bytes_acked, ti.Bytes_received
		}
	}
	return row
}

// fillAges sets the ages the kernel lets us know: how long time-wait
// entries have been in TIME-WAIT (which lasts 60 s, TCP_TIMEWAIT_LEN) or in
// a closed FIN-WAIT-2 (which lasts tcp_fin_timeout).
func fillAges(s *diag.Snapshot) {
	finTimeout := time.Duration(0)
	if n, err := strconv.Atoi(s.Settings[diag.SysctlFinTimeout]); err == nil {
		finTimeout = time.Duration(n) * time.Second
	}
	for i := range s.Rows {
		r := &s.Rows[i]
		var life time.Duration
		switch r.Timer {
		case "time-wait":
			life = 60 * time.Second
		case "fin-timeout":
			life = finTimeout
		default:
			continue
		}
		if life > r.TimerLeft {
			r.Age = life - r.TimerLeft
		}
	}
}

// synBacklog is the bound on a Linux listener's half-open handshakes: its
// backlog, and when SYN cookies are off, also three quarters of
// tcp_max_syn_backlog (past which SYNs from unproven peers are dropped).
func synBacklog(l diag.Listener, settings map[string]string) int {
	b := l.Backlog
	if settings[diag.SysctlSyncookies] == "0" {
		if m, err := strconv.Atoi(settings[diag.SysctlMaxSynBacklog]); err == nil && m > 0 {
			b = min(b, m-m/4)
		}
	}
	return b
}

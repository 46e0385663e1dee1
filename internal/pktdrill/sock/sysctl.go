package sock

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/synack/synack/tcp"
)

// Settings are the sysctls a script has set, as synack's configuration
// sees them. The one table below (Set) is used by the Go runner, which
// reads the sysctls of backtick lines, and by the shared object for the
// real packetdrill, which reads the assignments a stub sysctl recorded.
// Sysctls that select a behaviour map onto tcp.Config; those that only
// restate a default are ignored; a value synack cannot honour gives a skip
// reason (the runner skips the script; the shared object, which cannot
// skip, runs it anyway). contrib/packetdrill/README.md shows the table.
//
// FreeBSD (the FreeBSD TCP test suite):
//
//	sysctl                          value        synack
//	net.inet.tcp.insecure_rst       0 / 1        tcp.Config.RFC793Reset (RFC 5961 section 3 vs RFC 793)
//	net.inet.tcp.insecure_syn       0 / 1        tcp.Config.RFC793SYN (RFC 5961 section 4 vs RFC 793)
//	net.inet.tcp.rfc1323            1 / 0        0 sets NoTimestamps and NoWindowScale (RFC 7323)
//	net.inet.tcp.sack.enable        1 / 0        0 sets NoSACK (RFC 2018)
//	net.inet.tcp.recvspace          N            ReceiveBufferSize (see the compatibility profile)
//	net.inet.tcp.sendspace          N            SendBufferSize
//	net.inet.tcp.rexmit_initial     N ms         InitialRTO
//	net.inet.tcp.delacktime         N ms         DelayedACK (RFC 9293 3.8.6.3: at most 500 ms;
//	                                             0 and values above 500 are a skip)
//	net.inet.tcp.keepidle/keepintvl N ms         KeepAliveIdle / KeepAliveInterval
//	net.inet.tcp.keepcnt            N            KeepAliveCount; these three may change between
//	                                             sockets: a socket takes them when it is made and
//	                                             sets them on its connection (SetKeepAliveParams)
//	net.inet.tcp.drop_synfin        0            ignored (synack processes SYN+FIN as RFC 9293 says: in
//	                                             SYN-SENT the FIN is queued until ESTABLISHED, 3.10.7.3)
//	                                1            skip: synack has no "drop SYN+FIN" switch
//	net.inet.tcp.ecn.enable         0 / 1 / 2    ECN (RFC 3168): tcp.ECNOff / ECNActive / ECNPassive
//	                                             (2, the default: ECN only when the peer asks); other: skip
//	net.inet.tcp.ecn.maxretries     N            ECNSynRetries: SYN retransmissions that still ask for
//	                                             ECN (FreeBSD's default, and the profile's, is 1)
//	kern.ipc.maxsockbuf             2097152      ignored (default)
//	                                other        skip: synack derives its window scale from its
//	                                             receive buffer, not from a buffer ceiling
//	net.inet.tcp.rexmit_drop_options 0           ignored; 1: skip (synack keeps SYN options on retransmission)
//	net.inet.tcp.icmp_may_rst       1            ignored (default); 0: skip
//	net.inet.tcp.keepinit           75000        ignored (default); other: skip (no connect timer knob)
//	net.inet.tcp.rexmit_slop        200          ignored: synack adds no slop to its RTO. FreeBSD adds it
//	                                             to every backed-off RTO (TCPT_RANGESET), so its second
//	                                             SYN retransmission comes 200 ms after RFC 6298's
//	blackhole=0, hostcache.purgenow,
//	syncookies=1, syncookies_only=0, tolerate_missing_ts
//	                                             ignored: defaults, or no effect on these scripts
//	net.inet.tcp.cc.algorithm       newreno/cubic CongestionControl (the profile's default is newreno,
//	                                             FreeBSD's); other: skip
//	udp_tunneling_*                 any          skip: TCP over UDP encapsulation is not implemented
//
// Linux (packetdrill's gtests/net/tcp scripts):
//
//	net.ipv4.tcp_timestamps         1 / 0        0 sets NoTimestamps (RFC 7323)
//	net.ipv4.tcp_window_scaling     1 / 0        0 sets NoWindowScale
//	net.ipv4.tcp_sack               1 / 0        0 sets NoSACK (RFC 2018)
//	net.ipv4.tcp_rmem / tcp_wmem    "min def max" ReceiveBufferSize / SendBufferSize: the default
//	net.ipv4.tcp_syn_retries        N            SynRetries
//	net.ipv4.tcp_synack_retries     N            SynAckRetries
//	net.ipv4.tcp_ecn                0 / 1 / 2    ECN (RFC 3168): tcp.ECNOff / ECNActive / ECNPassive
//	                                             (defaults.sh sets 0; Linux's own default is 2); other: skip
//	net.ipv4.tcp_ecn_fallback       1 / 0        ECNSynRetries 0 (a retransmitted SYN no longer asks,
//	                                             the default) / unbounded
//	net.ipv4.tcp_congestion_control reno / cubic CongestionControl "newreno" / "cubic" (the default, as
//	                                / bbr        Linux's) / "bbr"; other: skip
//	net.ipv4.tcp_fastopen           0 or defaults.sh's 0x70403 ignored (no data on SYN is ever sent or
//	                                             accepted without a cookie); other: skip (no TCP Fast Open)
//	tcp_syncookies=1, tcp_dsack=1, tcp_fack=0, tcp_reordering=3, tcp_frto, tcp_slow_start_after_idle=0,
//	tcp_early_retrans, tcp_recovery, tcp_tso_win_divisor, tcp_ecn_option, tcp_pacing_*_ratio,
//	tcp_notsent_lowat=4294967295, tcp_fastopen_key, tcp_min_tso_segs
//	                                             ignored: defaults.sh's values, or segmentation and
//	                                             pacing knobs with no synack counterpart that the
//	                                             profile's joining of segments makes moot
//
// Any other sysctl gives a skip reason, so that a new knob is noticed.
type Settings struct {
	rfc793Reset, rfc793SYN bool
	noTS, noWS, noSACK     bool
	recvspace, sendspace   int
	initialRTO             time.Duration
	delayedACK             time.Duration
	synRetries             int
	synAckRetries          int
	keepIdle, keepIntvl    time.Duration
	keepCnt                int
	noQuickACK             bool
	congestion             string // tcp.Config.CongestionControl
	noAutoTune             bool
	ecn                    tcp.ECNMode
	ecnSynRetries          int
}

// FreeBSDDefaults are FreeBSD's socket buffer sizes (the suite restates
// them at the top of every script), its ACK policy, which has no
// quick-ACK mode (tcp_input's DELAY_ACK: the first segment's ACK waits,
// the second is acknowledged at once; tcp.Config.NoQuickACK), its
// default congestion control, NewReno (net.inet.tcp.cc.algorithm), and
// a receive window that is the whole buffer from the start
// (tcp.Config.NoAutoTune), as the suite's scripts expect of FreeBSD's
// fixed socket buffers; everything else is synack's default.
func FreeBSDDefaults() Settings {
	return Settings{recvspace: 65536, sendspace: 32768, noQuickACK: true, congestion: "newreno", noAutoTune: true,
		ecn: tcp.ECNPassive, ecnSynRetries: 1}
}

// LinuxDefaults is what packetdrill's gtests/net/common/defaults.sh sets
// (a Linux-written script runs it first), as far as synack has the knob:
// tcp_rmem and tcp_wmem defaults 540000 and 262144, timestamps and SACK
// on, five SYN and SYN,ACK retries, ECN off (tcp_ecn=0). The rest of
// defaults.sh restates what synack does anyway (RACK-TLP on, no slow
// start after idle) or tunes Linux internals (TSO, pacing, FRTO) the
// Linux profile does not compare.
func LinuxDefaults() Settings {
	return Settings{recvspace: 540000, sendspace: 262144, synRetries: 5, synAckRetries: 5, ecn: tcp.ECNOff}
}

// RecvSpace is the receive buffer the sysctls ask for, 0 for synack's
// default.
func (st Settings) RecvSpace() int { return st.recvspace }

// PerStack is the part of the settings that configures the stack itself.
// The keep-alive defaults are not: like FreeBSD's sockets, each socket
// takes them when it is made (and synack sets them per connection,
// tcp.Conn.SetKeepAliveParams), so a script may change them between
// sockets.
func (st Settings) PerStack() Settings {
	st.keepIdle, st.keepIntvl, st.keepCnt = 0, 0, 0
	return st
}

// KeepAlive is the keep-alive timing the settings give a connection:
// synack's defaults where no sysctl set one.
func (st Settings) KeepAlive() (idle, interval time.Duration, count int) {
	d := tcp.Config{KeepAliveIdle: st.keepIdle, KeepAliveInterval: st.keepIntvl, KeepAliveCount: st.keepCnt}.WithDefaults()
	return d.KeepAliveIdle, d.KeepAliveInterval, d.KeepAliveCount
}

// Config is the stack configuration the settings give; zero fields take
// tcp.Config's defaults.
func (st Settings) Config() tcp.Config {
	return tcp.Config{
		RFC793Reset:       st.rfc793Reset,
		RFC793SYN:         st.rfc793SYN,
		NoTimestamps:      st.noTS,
		NoWindowScale:     st.noWS,
		NoSACK:            st.noSACK,
		ReceiveBufferSize: st.recvspace,
		SendBufferSize:    st.sendspace,
		InitialRTO:        st.initialRTO,
		DelayedACK:        st.delayedACK,
		SynRetries:        st.synRetries,
		SynAckRetries:     st.synAckRetries,
		KeepAliveIdle:     st.keepIdle,
		KeepAliveInterval: st.keepIntvl,
		KeepAliveCount:    st.keepCnt,
		NoQuickACK:        st.noQuickACK,
		CongestionControl: st.congestion,
		NoAutoTune:        st.noAutoTune,
		ECN:               st.ecn,
		ECNSynRetries:     st.ecnSynRetries,
	}
}

// SetLine applies one "name=value" assignment, as sysctl takes it (the
// value may hold spaces: tcp_rmem="4096 540000 15728640"). A line without
// "=" is a read and changes nothing.
func (st *Settings) SetLine(a string) (skip string) {
	name, val, ok := strings.Cut(strings.TrimSpace(a), "=")
	if !ok {
		return ""
	}
	return st.Set(strings.TrimSpace(name), strings.Trim(strings.TrimSpace(val), `"'`))
}

// Set applies one sysctl. It returns why a script that sets it cannot be
// run as written, or "".
func (st *Settings) Set(name, val string) (skip string) {
	if strings.HasPrefix(name, "net.ipv4.") {
		return st.setLinux(strings.TrimPrefix(name, "net.ipv4."), val)
	}
	if name == "net.inet.tcp.cc.algorithm" {
		return st.setCongestion(name, val, val)
	}
	n, err := strconv.ParseInt(val, 10, 64)
	if err != nil {
		return fmt.Sprintf("sysctl %s=%s: not a number", name, val)
	}
	b := n != 0
	switch name {
	case "net.inet.tcp.insecure_rst":
		st.rfc793Reset = b
	case "net.inet.tcp.insecure_syn":
		st.rfc793SYN = b
	case "net.inet.tcp.rfc1323":
		st.noTS, st.noWS = !b, !b
	case "net.inet.tcp.sack.enable":
		st.noSACK = !b
	case "net.inet.tcp.recvspace":
		st.recvspace = int(n)
	case "net.inet.tcp.sendspace":
		st.sendspace = int(n)
	case "net.inet.tcp.rexmit_initial":
		st.initialRTO = time.Duration(n) * time.Millisecond
	case "net.inet.tcp.delacktime":
		// RFC 9293 section 3.8.6.3 (RFC 1122 4.2.3.2): an ACK may be
		// delayed, but by less than 0.5 s. synack's zero means "the
		// default", and it has no "never delay" switch.
		if n <= 0 || n > 500 {
			return fmt.Sprintf("delacktime=%d: synack's delayed-ACK timeout is between 1 and 500 ms (RFC 9293 3.8.6.3)", n)
		}
		st.delayedACK = time.Duration(n) * time.Millisecond
	case "net.inet.tcp.keepidle":
		st.keepIdle = time.Duration(n) * time.Millisecond
	case "net.inet.tcp.keepintvl":
		st.keepIntvl = time.Duration(n) * time.Millisecond
	case "net.inet.tcp.keepcnt":
		st.keepCnt = int(n)
	case "net.inet.tcp.drop_synfin":
		if b {
			return "drop_synfin=1: synack has no switch to drop SYN+FIN segments (it processes the SYN as RFC 9293 3.10.7.2 / 3.10.7.3 say)"
		}
	case "net.inet.tcp.ecn.enable":
		m, err := tcp.ECNModeFromSysctl(int(n))
		if err != nil {
			return "net.inet.tcp.ecn.enable: " + err.Error()
		}
		st.ecn = m
	case "net.inet.tcp.ecn.maxretries":
		st.ecnSynRetries = int(max(n, 0))
	case "kern.ipc.maxsockbuf":
		if n != 2097152 {
			return "kern.ipc.maxsockbuf: synack derives its window scale from its receive buffer, not from a socket-buffer ceiling"
		}
	case "net.inet.tcp.rexmit_drop_options":
		if b {
			return "rexmit_drop_options=1: synack keeps its SYN options on retransmission"
		}
	case "net.inet.tcp.icmp_may_rst":
		if !b {
			return "icmp_may_rst=0: synack has no switch to ignore ICMP errors for connections"
		}
	case "net.inet.tcp.keepinit":
		if n != 75000 {
			return "keepinit: synack bounds connection setup by SYN retries, not by a timer"
		}
	case "net.inet.tcp.blackhole", "net.inet.tcp.rexmit_slop", "net.inet.tcp.hostcache.purgenow",
		"net.inet.tcp.syncookies", "net.inet.tcp.syncookies_only",
		"net.inet.tcp.tolerate_missing_ts":
	case "net.inet.tcp.udp_tunneling_port", "net.inet.tcp.udp_tunneling_overhead":
		if b {
			return "TCP over UDP encapsulation (RFC 6951 style tunneling) is not implemented"
		}
	default:
		return "sysctl " + name + " has no synack equivalent"
	}
	return ""
}

// setLinux applies one of Linux's net.ipv4 sysctls (name without the
// prefix).
func (st *Settings) setLinux(name, val string) string {
	f := strings.Fields(val)
	if len(f) == 0 {
		return "sysctl net.ipv4." + name + " without a value"
	}
	num := func(s string) (int64, bool) {
		n, err := strconv.ParseInt(s, 0, 64)
		return n, err == nil
	}
	n, isNum := num(f[0])
	switch name {
	case "tcp_rmem", "tcp_wmem":
		// "min default max": a new socket's buffer is the default.
		if len(f) != 3 {
			return "sysctl net.ipv4." + name + " wants three numbers"
		}
		d, ok := num(f[1])
		if !ok || d <= 0 {
			return "sysctl net.ipv4." + name + "=" + val + ": bad default"
		}
		if name == "tcp_rmem" {
			st.recvspace = int(d)
		} else {
			st.sendspace = int(d)
		}
		return ""
	case "tcp_congestion_control":
		cc := val
		if cc == "reno" {
			cc = "newreno" // Linux's reno recovers as NewReno (RFC 6582)
		}
		return st.setCongestion("net.ipv4."+name, val, cc)
	case "tcp_fastopen_key":
		return ""
	}
	if !isNum {
		return fmt.Sprintf("sysctl net.ipv4.%s=%s: not a number", name, val)
	}
	b := n != 0
	switch name {
	case "tcp_timestamps":
		st.noTS = !b
	case "tcp_window_scaling":
		st.noWS = !b
	case "tcp_sack":
		st.noSACK = !b
	case "tcp_syn_retries":
		st.synRetries = int(n)
	case "tcp_synack_retries":
		st.synAckRetries = int(n)
	case "tcp_ecn":
		m, err := tcp.ECNModeFromSysctl(int(n))
		if err != nil {
			return "net.ipv4.tcp_ecn: " + err.Error()
		}
		st.ecn = m
	case "tcp_ecn_fallback":
		st.ecnSynRetries = 0
		if !b {
			st.ecnSynRetries = math.MaxInt32 // every retransmitted SYN still asks
		}
	case "tcp_fastopen":
		if b && n != 0x70403 {
			return "TCP Fast Open (RFC 7413) is not implemented"
		}
	case "tcp_syncookies", "tcp_dsack", "tcp_fack", "tcp_reordering", "tcp_frto",
		"tcp_slow_start_after_idle", "tcp_early_retrans", "tcp_recovery", "tcp_tso_win_divisor",
		"tcp_ecn_option", "tcp_pacing_ss_ratio", "tcp_pacing_ca_ratio", "tcp_min_tso_segs":
	case "tcp_notsent_lowat":
		if uint64(n) != 4294967295 {
			return "tcp_notsent_lowat: synack has no unsent-data low-water mark"
		}
	default:
		return "sysctl net.ipv4." + name + " has no synack equivalent"
	}
	return ""
}

// setCongestion sets the congestion controller a sysctl names (cc, the
// name synack registers it under), or says why it cannot.
func (st *Settings) setCongestion(name, val, cc string) string {
	if !KnownCongestion(cc) {
		return fmt.Sprintf("sysctl %s=%s: synack has the congestion controllers %s", name, val, strings.Join(tcp.CongestionControls(), ", "))
	}
	st.congestion = cc
	return ""
}

// KnownCongestion reports whether synack registers a congestion
// controller under name.
func KnownCongestion(name string) bool {
	return slices.Contains(tcp.CongestionControls(), name)
}

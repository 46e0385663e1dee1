package pktdrill

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/synack/synack/tcp"
)

// Backtick lines are never executed. The FreeBSD sysctls among them are
// read instead: those that select a behaviour map onto synack's
// configuration, those that only restate FreeBSD's defaults are ignored,
// and a non-default value of a knob synack does not have makes the script
// a skip (with the reason below) rather than a run that tests something
// else. The table is also in contrib/packetdrill/README.md.
//
//	sysctl                          value        synack
//	net.inet.tcp.insecure_rst       0 / 1        tcp.Config.RFC793Reset (RFC 5961 section 3 vs RFC 793)
//	net.inet.tcp.insecure_syn       0 / 1        tcp.Config.RFC793SYN (RFC 5961 section 4 vs RFC 793)
//	net.inet.tcp.rfc1323            1 / 0        0 sets NoTimestamps and NoWindowScale (RFC 7323)
//	net.inet.tcp.sack.enable        1 / 0        0 sets NoSACK (RFC 2018)
//	net.inet.tcp.recvspace          N            ReceiveBufferSize (see the compatibility profile)
//	net.inet.tcp.sendspace          N            SendBufferSize
//	net.inet.tcp.rexmit_initial     N ms         InitialRTO
//	net.inet.tcp.keepidle/keepintvl N ms         KeepAliveIdle / KeepAliveInterval
//	net.inet.tcp.keepcnt            N            KeepAliveCount; these three may change between
//	                                             sockets: a socket takes them when it is made and
//	                                             sets them on its connection (SetKeepAliveParams)
//	net.inet.tcp.drop_synfin        0            ignored (synack processes SYN+FIN as RFC 9293 says: in
//	                                             SYN-SENT the FIN is queued until ESTABLISHED, 3.10.7.3)
//	                                1            skip: synack has no "drop SYN+FIN" switch
//	net.inet.tcp.ecn.enable         2            ignored (FreeBSD default: ECN only when asked)
//	                                other        skip: ECN (RFC 3168) is not implemented
//	kern.ipc.maxsockbuf             2097152      ignored (default)
//	                                other        skip: synack derives its window scale from its
//	                                             receive buffer, not from a buffer ceiling
//	net.inet.tcp.rexmit_drop_options 0           ignored; 1: skip (synack keeps SYN options on retransmission)
//	net.inet.tcp.icmp_may_rst       1            ignored (default); 0: skip
//	net.inet.tcp.keepinit           75000        ignored (default); other: skip (no connect timer knob)
//	net.inet.tcp.rexmit_slop        200          ignored: synack adds no slop to its RTO. FreeBSD adds it
//	                                             to every backed-off RTO (TCPT_RANGESET), so its second
//	                                             SYN retransmission comes 200 ms after RFC 6298's
//	blackhole=0, hostcache.purgenow, ecn.maxretries,
//	syncookies=1, syncookies_only=0, tolerate_missing_ts
//	                                             ignored: defaults, or no effect on these scripts
//	udp_tunneling_*                 any          skip: TCP over UDP encapsulation is not implemented
//
// Any other sysctl makes the script a skip, so that a new knob is noticed.

type settings struct {
	rfc793Reset, rfc793SYN bool
	noTS, noWS, noSACK     bool
	recvspace, sendspace   int
	initialRTO             time.Duration
	keepIdle, keepIntvl    time.Duration
	keepCnt                int
}

// perStack is the part of the settings that configures the stack itself.
// The keep-alive defaults are not: like FreeBSD's sockets, each socket of
// the runner takes them when it is made (and synack sets them per
// connection, tcp.Conn.SetKeepAliveParams), so a script may change them
// between sockets.
func (st settings) perStack() settings {
	st.keepIdle, st.keepIntvl, st.keepCnt = 0, 0, 0
	return st
}

// keepAlive is the keep-alive timing the settings give a connection:
// synack's defaults where no sysctl set one.
func (st settings) keepAlive() (idle, interval time.Duration, count int) {
	c := tcp.Config{KeepAliveIdle: st.keepIdle, KeepAliveInterval: st.keepIntvl, KeepAliveCount: st.keepCnt}.WithDefaults()
	return c.KeepAliveIdle, c.KeepAliveInterval, c.KeepAliveCount
}

func defaultSettings() settings {
	return settings{recvspace: 65536, sendspace: 32768}
}

// applyShell reads one backtick command. It returns a skip reason when the
// command asks for something synack cannot do.
func (st *settings) applyShell(cmd string) (skip string) {
	for _, line := range strings.Split(cmd, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		switch f[0] {
		case "sysctl":
			for _, a := range f[1:] {
				if a == "-w" || a == "-n" {
					continue
				}
				name, val, ok := strings.Cut(a, "=")
				if !ok {
					continue // a read
				}
				if r := st.sysctl(name, val); r != "" {
					return r
				}
			}
		case "sockstat":
			// A state check; the runner evaluates it (see sockstat).
		case "kldstat", "kldload", "setkey", "ifconfig", "route":
			return "needs the host to run `" + f[0] + "` (kernel modules, IPsec keys or interfaces)"
		default:
			return "runs a shell command synack cannot stand in for: " + f[0]
		}
	}
	return ""
}

func (st *settings) sysctl(name, val string) string {
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
		if n != 2 {
			return "ECN (RFC 3168) is not implemented"
		}
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
		"net.inet.tcp.ecn.maxretries", "net.inet.tcp.syncookies", "net.inet.tcp.syncookies_only",
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

package pktdrill

import (
	"path"
	"strings"

	"github.com/synack/synack/internal/pktdrill/sock"
)

// Backtick lines are never executed. What they ask for is read instead:
// sysctl assignments go through the sysctl table (sock.Settings.Set),
// packetdrill's gtests/net/common/defaults.sh (which every Linux-written
// script runs first) applies Linux's defaults (sock.LinuxDefaults), and
// sockstat state checks are evaluated by the runner (see sockstat). A
// command that needs the host itself makes the script a skip, with the
// reason.

// applyShell reads one backtick command into st. It returns a skip reason
// when the command asks for something synack cannot do.
func applyShell(st *sock.Settings, cmd string) (skip string) {
	// A backslash at the end of a line continues the command.
	cmd = strings.ReplaceAll(cmd, "\\\n", " ")
	for _, line := range strings.Split(cmd, "\n") {
		line = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(line), "\\"))
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		switch base := path.Base(f[0]); {
		case base == "defaults.sh" && strings.Contains(f[0], "common/"):
			*st = sock.LinuxDefaults()
		case base == "set_sysctls.py" || strings.HasPrefix(f[0], "/proc/sys/"):
			// set_sysctls.py /proc/sys/net/ipv4/tcp_wmem="4096 50000 4194304",
			// its arguments possibly continued on the next lines.
			for _, a := range sysctlArgs(line) {
				if !strings.HasPrefix(a, "/proc/sys/") {
					continue
				}
				name, val, _ := strings.Cut(strings.TrimPrefix(a, "/proc/sys/"), "=")
				if r := st.SetLine(strings.ReplaceAll(name, "/", ".") + "=" + val); r != "" {
					return r
				}
			}
		case strings.HasPrefix(base, "sysctl_restore"):
			// The end of a Linux script puts back the host's sysctls;
			// there is no host here.
		case f[0] == "sysctl":
			for _, a := range sysctlArgs(line) {
				if r := st.SetLine(a); r != "" {
					return r
				}
			}
		case f[0] == "sockstat":
			// A state check; the runner evaluates it (see sockstat).
		case f[0] == "kldstat" || f[0] == "kldload" || f[0] == "setkey" || f[0] == "ifconfig" || f[0] == "route" ||
			f[0] == "ip" || f[0] == "tc" || f[0] == "ethtool":
			return "needs the host to run `" + f[0] + "` (kernel modules, IPsec keys, interfaces, routes or qdiscs)"
		default:
			return "runs a shell command synack cannot stand in for: " + f[0]
		}
	}
	return ""
}

// sysctlArgs splits a sysctl command line into its assignments and reads,
// dropping flags and keeping a quoted value whole
// (net.ipv4.tcp_rmem="4096 540000 15728640").
func sysctlArgs(line string) []string {
	var out []string
	var cur strings.Builder
	quote := byte(0)
	flush := func() {
		if a := cur.String(); a != "" && !strings.HasPrefix(a, "-") && a != "sysctl" {
			out = append(out, a)
		}
		cur.Reset()
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote == 0 && (c == '"' || c == '\''):
			quote = c
		case quote == 0 && (c == ' ' || c == '\t'):
			flush()
		default:
			cur.WriteByte(c)
		}
	}
	flush()
	return out
}

package sock

import (
	"testing"
	"time"

	"github.com/synack/synack/tcp"
)

func TestSettings(t *testing.T) {
	st := FreeBSDDefaults()
	for _, a := range []string{"net.inet.tcp.delacktime=200", "net.inet.tcp.sack.enable=0", "net.inet.tcp.keepidle=3000"} {
		if why := st.SetLine(a); why != "" {
			t.Fatalf("%s: %s", a, why)
		}
	}
	c := st.Config()
	if c.DelayedACK != 200*time.Millisecond || !c.NoSACK || c.ReceiveBufferSize != 65536 || c.KeepAliveIdle != 3*time.Second {
		t.Errorf("config %+v", c)
	}
	if st.PerStack().Config().KeepAliveIdle != 0 {
		t.Error("PerStack keeps the keep-alive timing")
	}
	for _, a := range []string{"net.inet.tcp.delacktime=0", "net.inet.tcp.delacktime=600", "net.inet.tcp.no_such=1",
		"net.ipv4.tcp_ecn=3", "net.inet.tcp.ecn.enable=4", "net.ipv4.tcp_congestion_control=vegas", "net.ipv4.tcp_rmem=4096"} {
		if st.SetLine(a) == "" {
			t.Errorf("%s: no skip reason", a)
		}
	}

	if why := st.SetLine("net.ipv4.tcp_congestion_control=bbr"); why != "" || st.Config().CongestionControl != "bbr" {
		t.Errorf("tcp_congestion_control=bbr: %q, controller %q", why, st.Config().CongestionControl)
	}

	lx := LinuxDefaults()
	if why := lx.SetLine(`net.ipv4.tcp_wmem="4096 50000 4194304"`); why != "" {
		t.Fatal(why)
	}
	if why := lx.SetLine("net.ipv4.tcp_timestamps=0"); why != "" {
		t.Fatal(why)
	}
	c = lx.Config()
	if c.SendBufferSize != 50000 || c.ReceiveBufferSize != 540000 || !c.NoTimestamps || c.SynRetries != 5 {
		t.Errorf("linux config %+v", c)
	}
}

// ECN (RFC 3168) maps onto tcp.Config.ECN with the sysctls' values on
// both systems; each system's defaults are its own (defaults.sh turns
// Linux's off, FreeBSD asks nothing and retries one ECN-setup SYN).
func TestSettingsECN(t *testing.T) {
	if c := FreeBSDDefaults().Config(); c.ECN != tcp.ECNPassive || c.ECNSynRetries != 1 {
		t.Errorf("FreeBSD defaults: ECN %v, %d ECN SYN retries", c.ECN, c.ECNSynRetries)
	}
	if c := LinuxDefaults().Config(); c.ECN != tcp.ECNOff || c.ECNSynRetries != 0 {
		t.Errorf("Linux defaults: ECN %v, %d ECN SYN retries", c.ECN, c.ECNSynRetries)
	}
	for _, c := range []struct {
		line    string
		mode    tcp.ECNMode
		retries int
	}{
		{"net.inet.tcp.ecn.enable=0", tcp.ECNOff, 1},
		{"net.inet.tcp.ecn.enable=1", tcp.ECNActive, 1},
		{"net.inet.tcp.ecn.enable=2", tcp.ECNPassive, 1},
		{"net.inet.tcp.ecn.maxretries=0", tcp.ECNPassive, 0},
		{"net.ipv4.tcp_ecn=1", tcp.ECNActive, 1},
		{"net.ipv4.tcp_ecn=0", tcp.ECNOff, 1},
		{"net.ipv4.tcp_ecn_fallback=1", tcp.ECNPassive, 0},
	} {
		st := FreeBSDDefaults()
		if why := st.SetLine(c.line); why != "" {
			t.Fatalf("%s: %s", c.line, why)
		}
		if got := st.Config(); got.ECN != c.mode || got.ECNSynRetries != c.retries {
			t.Errorf("%s: ECN %v, %d retries; want %v, %d", c.line, got.ECN, got.ECNSynRetries, c.mode, c.retries)
		}
	}
}

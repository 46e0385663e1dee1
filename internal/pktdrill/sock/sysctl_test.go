package sock

import (
	"testing"
	"time"
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
		"net.ipv4.tcp_ecn=1", "net.ipv4.tcp_congestion_control=vegas", "net.ipv4.tcp_rmem=4096"} {
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

package pktdrill

import (
	"slices"
	"testing"

	"github.com/synack/synack/internal/pktdrill/sock"
)

func TestApplyShell(t *testing.T) {
	got := sysctlArgs(`sysctl -q net.ipv4.tcp_rmem="4096 540000 15728640" net.ipv4.tcp_sack=1`)
	if want := []string{"net.ipv4.tcp_rmem=4096 540000 15728640", "net.ipv4.tcp_sack=1"}; !slices.Equal(got, want) {
		t.Errorf("sysctlArgs = %q, want %q", got, want)
	}
	var st sock.Settings
	if why := applyShell(&st, "../../common/defaults.sh\n../common/set_sysctls.py /proc/sys/net/ipv4/tcp_wmem=\"4096 50000 4194304\" \\\n /proc/sys/net/ipv4/tcp_timestamps=0"); why != "" {
		t.Fatal(why)
	}
	c := st.Config()
	if c.ReceiveBufferSize != 540000 || c.SendBufferSize != 50000 || !c.NoTimestamps {
		t.Errorf("after defaults.sh and set_sysctls.py: %+v", c)
	}
	for _, cmd := range []string{"tc qdisc add dev tun0 root fq", "echo 1 > /proc/x", "sysctl -q net.ipv4.tcp_ecn=3"} {
		if applyShell(&st, cmd) == "" {
			t.Errorf("%q: no skip reason", cmd)
		}
	}
}

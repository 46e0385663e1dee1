package tcp

import (
	"net/netip"
	"testing"

	"github.com/synack/synack/wire"
)

// newPMTUConn is an ESTABLISHED connection to remote whose peer offered
// an MSS of 1460 (and so did we), with 4000 bytes in flight in segments of that size.
func newPMTUConn(t *testing.T, remote netip.AddrPort, mods ...func(*Config)) *tconn {
	t.Helper()
	tc := newTC(t, append([]func(*Config){func(c *Config) { c.MSS = 1460 }}, mods...)...)
	local := localAP
	if remote.Addr().Is6() {
		local = netip.MustParseAddrPort("[2001:db8::2]:80")
	}
	tc.c = NewConn(&tc.cfg, Tuple{Local: local, Remote: remote}, tc)
	if err := tc.c.Connect(tc.now); err != nil {
		t.Fatal(err)
	}
	tc.want("active OPEN sends SYN", seg{flags: S, seq: iss})
	tc.in(seg{flags: S | A, seq: irs, ack: iss + 1, win: 65535, opts: wire.TCPOptions{HasMSS: true, MSS: 1460}})
	tc.want("ACK of SYN,ACK", seg{flags: A, seq: iss + 1, ack: irs + 1})
	tc.write(make([]byte, 4000))
	tc.drain()
	return tc
}

// RFC 8201 section 4: a Packet Too Big below the IPv6 minimum link MTU
// is discarded; the path MTU never goes below 1280.
func TestPacketTooBigIPv6Floor(t *testing.T) {
	tc := newPMTUConn(t, netip.MustParseAddrPort("[2001:db8::1]:40000"))
	before := tc.c.mss
	for _, mtu := range []int{600, 1279, 128, 0} {
		tc.c.HandlePacketTooBig(tc.now, mtu)
		if tc.c.mss != before {
			t.Fatalf("PTB %d: MSS %d, want %d unchanged", mtu, tc.c.mss, before)
		}
		tc.wantNothing("a PTB below 1280 is discarded")
	}
	tc.c.HandlePacketTooBig(tc.now, 1280)
	if tc.c.mss != 1280-60 {
		t.Fatalf("PTB 1280: MSS %d, want %d", tc.c.mss, 1280-60)
	}
	if s, ok := tc.next("resend"); !ok || len(s.Payload) != 1280-60 {
		t.Errorf("after PTB 1280: resent %d bytes (%v), want %d", len(s.Payload), ok, 1280-60)
	}
}

// IPv4: a reported MTU below Config.MinPMTU (552 by default, as Linux's
// min_pmtu) counts as MinPMTU.
func TestPacketTooBigIPv4Floor(t *testing.T) {
	for _, tt := range []struct {
		name   string
		minMTU int
		mtu    int
		want   int
	}{
		{"default floor", 0, 128, 552 - 40},
		{"default floor, MTU 0", 0, 0, 552 - 40},
		{"above the floor", 0, 1000, 1000 - 40},
		{"knob", 1000, 576, 1000 - 40},
		{"knob below RFC 791's 68", 20, 40, 68 - 40},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tc := newPMTUConn(t, remoteAP, func(c *Config) { c.MinPMTU = tt.minMTU })
			tc.c.HandlePacketTooBig(tc.now, tt.mtu)
			if tc.c.mss != tt.want {
				t.Fatalf("PTB %d with MinPMTU %d: MSS %d, want %d", tt.mtu, tt.minMTU, tc.c.mss, tt.want)
			}
			if s, ok := tc.next("resend"); !ok || len(s.Payload) != tt.want {
				t.Errorf("resent %d bytes (%v), want %d", len(s.Payload), ok, tt.want)
			}
		})
	}
}

package pktdrill

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// What the Linux profile relaxes must still fail when it does not hold: a
// packet outside its a~b range, segments that do not cover the expected
// one exactly, and options out of Linux's order.
func TestLinuxProfileFailures(t *testing.T) {
	const handshake = "`../common/defaults.sh`\n" + `
0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 65535 <mss 1000,sackOK,nop,nop,nop,wscale 7>
+0 > S. 0:0(0) ack 1 <mss 1460,nop,nop,sackOK,nop,wscale 8>
+.1 < . 1:1(0) ack 1 win 2000
+0 accept(3, ..., ...) = 4
`
	for _, tc := range []struct {
		name, script, want string
	}{
		{"early for its range", handshake + `
+0 write(4, ..., 1000) = 1000
+.01~+.02 > P. 1:1001(1000) ack 1
`, "expected at"},
		{"late for its range", handshake + `
+0 write(4, ..., 1000) = 1000
+0 > P. 1:1001(1000) ack 1
+0~+.01 > P. 1:1001(1000) ack 1
`, "at 0.100000~0.110000"},
		{"segments that do not end where the expected one does", handshake + `
+0 write(4, ..., 3000) = 3000
+0 > P. 1:2501(2500) ack 1
`, "packet differs (length)"},
		{"FreeBSD's SYN option layout", "`../common/defaults.sh`\n" + `
0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0
+0 connect(3, ..., ...) = -1 EINPROGRESS
+0 > S 0:0(0) <mss 1460,nop,wscale 8,sackOK,TS val 100 ecr 0>
`, "packet differs (options)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse(tc.script)
			if err != nil {
				t.Fatal(err)
			}
			res := Run(s, Options{Profile: Linux})
			if res.Status != Fail || !strings.Contains(res.Msg, tc.want) {
				t.Fatalf("got %v, want a failure saying %q", res, tc.want)
			}
		})
	}
}

// Without JoinSegments the TSO-sized expectation of testdata/linux is not
// met: the joining is what makes that script pass.
func TestLinuxProfileJoinNeeded(t *testing.T) {
	prof := Linux
	prof.JoinSegments = false
	res := RunFile(filepath.Join("testdata", "linux", "tso-joined-segments.pkt"), Options{Profile: prof})
	if res.Status != Fail || !strings.Contains(res.Msg, "want: > P. 1:3001(3000)") {
		t.Fatalf("got %v, want a failure at the 3000-byte segment", res)
	}
}

// net.inet.tcp.delacktime sets how long synack holds back an ACK.
func TestDelAckTime(t *testing.T) {
	for _, ms := range []int{40, 100, 200} {
		s, err := Parse(fmt.Sprintf("--tolerance_usecs=1000\n0 `sysctl -w net.inet.tcp.delacktime=%d`\n", ms) + `
+0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 32767 <mss 1000>
+0 > S. 0:0(0) ack 1 <...>
+0 < . 1:1(0) ack 1 win 32767
+0 accept(3, ..., ...) = 4
+0 < P. 1:101(100) ack 1 win 32767
` + fmt.Sprintf("+.%03d > . 1:1(0) ack 101\n", ms))
		if err != nil {
			t.Fatal(err)
		}
		if res := Run(s, Options{}); res.Status != Pass {
			t.Errorf("delacktime=%d: %v", ms, res)
		}
	}
}

// A script that runs defaults.sh gets the Linux profile by default; one
// that does not, FreeBSD's.
func TestProfileFor(t *testing.T) {
	lx, err := ParseFile(filepath.Join("testdata", "linux", "tso-joined-segments.pkt"))
	if err != nil {
		t.Fatal(err)
	}
	if p := ProfileFor(lx); p.Name != "linux" {
		t.Errorf("defaults.sh script: profile %s", p.Name)
	}
	if res := Run(lx, Options{}); res.Status != Pass {
		t.Errorf("with the default profile: %v", res)
	}
	bsd, err := Parse("0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n")
	if err != nil {
		t.Fatal(err)
	}
	if p := ProfileFor(bsd); p.Name != "freebsd" {
		t.Errorf("plain script: profile %s", p.Name)
	}
	for _, n := range []string{"freebsd", "linux", "strict"} {
		if p, ok := ProfileByName(n); !ok || p.Name != n {
			t.Errorf("ProfileByName(%q) = %v, %v", n, p.Name, ok)
		}
	}
}

func TestParseTimeRange(t *testing.T) {
	s, err := Parse("+.01~+.015 > . 1:1(0) ack 1\n0.5~0.75 > . 1:1(0) ack 1\n")
	if err != nil {
		t.Fatal(err)
	}
	if e := s.Events[0]; e.TimeKind != Relative || !e.HasUpto || !e.UptoRel || e.Time.Microseconds() != 10000 || e.Upto.Microseconds() != 15000 {
		t.Errorf("relative range: %+v", e)
	}
	if e := s.Events[1]; e.TimeKind != Absolute || !e.HasUpto || e.UptoRel || e.Upto.Milliseconds() != 750 {
		t.Errorf("absolute range: %+v", e)
	}
	for _, bad := range []string{"+.02~+.01 > . 1:1(0) ack 1", "0.1~+0.2 > . 1:1(0) ack 1", "+.01~ > . 1:1(0) ack 1"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

package pktdrill

import "testing"

// TCP_CONGESTION names the controller of a socket (issue 11): the FreeBSD
// profile starts from FreeBSD's NewReno, an unknown name is ENOENT as on
// Linux, and an accepted connection inherits the listener's choice.
func TestCongestionOption(t *testing.T) {
	s, err := Parse(`--tolerance_usecs=10000
0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 getsockopt(3, IPPROTO_TCP, TCP_CONGESTION, "newreno", [7]) = 0
+0 setsockopt(3, IPPROTO_TCP, TCP_CONGESTION, "vegas", 5) = -1 ENOENT (No such file or directory)
+0 setsockopt(3, IPPROTO_TCP, TCP_CONGESTION, "bbr", 3) = 0
+0 getsockopt(3, IPPROTO_TCP, TCP_CONGESTION, "bbr", [3]) = 0
+0 setsockopt(3, IPPROTO_TCP, TCP_CONGESTION, "cubic", 5) = 0
+0 getsockopt(3, IPPROTO_TCP, TCP_CONGESTION, "cubic", [5]) = 0
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 32767 <mss 1000,sackOK,nop,nop>
+0 > S. 0:0(0) ack 1 win 65535 <mss 1460,nop,nop,sackOK>
+.1 < . 1:1(0) ack 1 win 32767
+0 accept(3, ..., ...) = 4
+0 getsockopt(4, IPPROTO_TCP, TCP_CONGESTION, "cubic", [5]) = 0
+0 setsockopt(4, IPPROTO_TCP, TCP_CONGESTION, "newreno", 7) = 0
+0 getsockopt(4, IPPROTO_TCP, TCP_CONGESTION, "newreno", [7]) = 0
`)
	if err != nil {
		t.Fatal(err)
	}
	if res := Run(s, Options{}); res.Status != Pass {
		t.Fatal(res)
	}
}

// A script that sets a controller by sysctl gets it; one synack lacks is
// skipped, not run with another.
func TestCongestionSysctl(t *testing.T) {
	s, err := Parse("0 `sysctl -w net.inet.tcp.cc.algorithm=cubic`\n" + `+0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 getsockopt(3, IPPROTO_TCP, TCP_CONGESTION, "cubic", [5]) = 0
`)
	if err != nil {
		t.Fatal(err)
	}
	if res := Run(s, Options{}); res.Status != Pass {
		t.Fatal(res)
	}
	s, err = Parse("0 `sysctl -w net.inet.tcp.cc.algorithm=vegas`\n+0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n")
	if err != nil {
		t.Fatal(err)
	}
	if res := Run(s, Options{}); res.Status != Skip {
		t.Fatal(res)
	}
}

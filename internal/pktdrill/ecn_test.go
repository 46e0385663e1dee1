package pktdrill

import (
	"strings"
	"testing"
)

// ecnHandshake is a passive open of an ECN-setup SYN (RFC 3168 6.1.1),
// answered by an ECN-setup SYN,ACK; the attributes check the IP ECN
// field of what we send and set it on what the script injects.
const ecnHandshake = `--tolerance_usecs=10000
0.000 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < SEW 0:0(0) win 32767 <mss 1000,sackOK,nop,nop>
+0 >[noecn] SE. 0:0(0) ack 1 win 65535 <mss 1460,nop,nop,sackOK>
+.1 <[noecn] . 1:1(0) ack 1 win 32767
+0 accept(3, ..., ...) = 4
`

// The runner injects [ce] and checks [ect0] / [noecn]: a CE mark comes
// back as ECE at once and on our data until the peer's CWR; our new data
// is ECT(0), our pure ACKs Not-ECT; an ECE on the peer's ACK makes our
// next data carry CWR.
func TestRunECN(t *testing.T) {
	s, err := Parse(ecnHandshake + `+0 <[ce] P. 1:11(10) ack 1 win 32767
+0 >[noecn] E. 1:1(0) ack 11
+0 read(4, ..., 100) = 10
+0 %{ assert tcpi_options == (TCPI_OPT_SACK | TCPI_OPT_ECN) }%
+0 write(4, ..., 5) = 5
+0 >[ect0] PE. 1:6(5) ack 11
+.1 <[ect0] PW. 11:21(10) ack 6 win 32767
+0 read(4, ..., 100) = 10
+0 write(4, ..., 5) = 5
+0 >[ect0] P. 6:11(5) ack 21
+.1 <[noecn] E. 21:21(0) ack 11 win 32767
+0 write(4, ..., 5) = 5
+0 >[ect0] PW. 11:16(5) ack 21
+.1 < . 21:21(0) ack 16 win 32767
+0 write(4, ..., 5) = 5
+0 >[ect01] P. 16:21(5) ack 21
`)
	if err != nil {
		t.Fatal(err)
	}
	if res := Run(s, Options{}); res.Status != Pass {
		t.Fatal(res)
	}
}

// A packet whose ECN field is not the one the script names fails, and
// says which it had.
func TestRunECNMismatch(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{"+0 >[noecn] P. 1:6(5) ack 1", "ECN field ect0"},
		{"+0 >[ce] P. 1:6(5) ack 1", "ECN field ect0"},
	} {
		s, err := Parse(ecnHandshake + "+0 write(4, ..., 5) = 5\n" + tc.line + "\n")
		if err != nil {
			t.Fatal(err)
		}
		res := Run(s, Options{})
		if res.Status != Fail || !strings.Contains(res.Msg, tc.want) || !strings.Contains(res.Msg, "got:  [ect0] P.") {
			t.Errorf("%s: got %v, want a failure saying %q", tc.line, res, tc.want)
		}
	}
	// An attribute the runner does not know is a skip, not a guess.
	s, err := Parse(ecnHandshake + "+0 <[ect2] . 1:1(0) ack 1 win 32767\n")
	if err != nil {
		t.Fatal(err)
	}
	if res := Run(s, Options{}); res.Status != Skip {
		t.Errorf("[ect2]: %v, want a skip", res)
	}
}

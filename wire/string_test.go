package wire

import "testing"

func TestTCPHeaderAppendText(t *testing.T) {
	synOpts := TCPOptions{HasMSS: true, MSS: 1460, SACKPermitted: true, HasTimestamps: true, TSVal: 9, TSEcr: 3, HasWindowScale: true, WindowScale: 7}
	sack := TCPOptions{HasTimestamps: true, TSVal: 9, TSEcr: 3, NumSACK: 2}
	sack.SACKBlocks[0] = SACKBlock{Start: 10, End: 20}
	sack.SACKBlocks[1] = SACKBlock{Start: 30, End: 40}
	tests := []struct {
		h    TCPHeader
		n    int
		form TextForm
		want string
	}{
		{TCPHeader{Seq: 1, Ack: 2, Flags: SYN | ACK, Window: 512, Options: synOpts}, 0, TextBrief,
			"[S.] seq 1 ack 2 win 512 <mss 1460,sackOK,TS,wscale 7>"},
		{TCPHeader{Seq: 1, Ack: 2, Flags: SYN | ACK, Window: 512, Options: synOpts}, 0, TextFull,
			"[S.] seq 1 ack 2 win 512 len 0 <mss 1460,sackOK,TS val 9 ecr 3,nop,wscale 7>"},
		// After the handshake the brief form drops the timestamps.
		{TCPHeader{Seq: 1, Ack: 2, Flags: PSH | ACK, Window: 512, Options: TCPOptions{HasTimestamps: true, TSVal: 9}}, 10, TextBrief,
			"[P.] seq 1 ack 2 win 512 len 10"},
		{TCPHeader{Seq: 1, Ack: 2, Flags: ACK, Window: 512, Options: sack}, 0, TextBrief,
			"[.] seq 1 ack 2 win 512 <sack 10:20,sack 30:40>"},
		{TCPHeader{Seq: 1, Ack: 2, Flags: ACK, Window: 512, Options: sack}, 0, TextFull,
			"[.] seq 1 ack 2 win 512 len 0 <nop,nop,TS val 9 ecr 3,nop,nop,sack 2 {10:20} {30:40}>"},
		{TCPHeader{Seq: 1001, Ack: 2001, Flags: FIN | ACK, Window: 64}, -1, TextFull, "[F.] seq 1001 ack 2001 win 64"},
		{TCPHeader{Seq: 5, Flags: URG, Urgent: 3}, 1, TextBrief, "[U] seq 5 win 0 urg 3 len 1"},
	}
	for _, tt := range tests {
		if got := string(tt.h.AppendText([]byte("x "), tt.n, tt.form)); got != "x "+tt.want {
			t.Errorf("got  %s\nwant x %s", got, tt.want)
		}
	}
}

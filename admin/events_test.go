package admin_test

import (
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"github.com/synack/synack/admin"
	"github.com/synack/synack/stack"
	"github.com/synack/synack/tcp"
)

// A state change has one JSON form, the one /api/events, /api/trace and
// the command line's --json print; the admin page reads its keys.
func TestTransitionJSON(t *testing.T) {
	at := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		tr   tcp.Transition
		want string
	}{
		{
			tcp.Transition{Time: at, ID: 3, Tuple: tcp.Tuple{Local: netip.AddrPortFrom(netip.Addr{}, 80)}, From: tcp.Closed, To: tcp.Listen, Cause: tcp.UserListen},
			`{"seq":9,"kind":"state","time":"2026-12-03T10:00:00Z","id":3,"local":"[::]:80","from":"CLOSED","to":"LISTEN","cause":"user LISTEN"}`,
		},
		{
			tcp.Transition{Time: at, ID: 4, Tuple: tcp.Tuple{Local: netip.MustParseAddrPort("10.0.0.2:80"), Remote: netip.MustParseAddrPort("10.0.0.1:4000")}, From: tcp.SynSent, To: tcp.Established, Cause: tcp.RcvSYNACK},
			`{"seq":9,"kind":"state","time":"2026-12-03T10:00:00Z","id":4,"local":"10.0.0.2:80","remote":"10.0.0.1:4000","from":"SYN-SENT","to":"ESTABLISHED","cause":"rcv SYN,ACK"}`,
		},
	} {
		rec := admin.NewTraceRecord(stack.TraceEvent{Kind: stack.TraceState, Transition: tt.tr})
		rec.Seq = 9
		b, err := json.Marshal(rec)
		if err != nil || string(b) != tt.want {
			t.Errorf("got  %s (%v)\nwant %s", b, err, tt.want)
		}
		var back admin.TraceRecord
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if back.Cause != tt.tr.Cause || back.From != tt.tr.From || back.To != tt.tr.To || back.ID != tt.tr.ID || back.Tuple.Remote != tt.tr.Tuple.Remote || back.Tuple.Local.Port() != tt.tr.Tuple.Local.Port() {
			t.Errorf("read back as %+v, want %+v", back.Transition, tt.tr)
		}
	}
}

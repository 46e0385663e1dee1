package memlink

import (
	"net/netip"
	"testing"

	"github.com/synack/synack/clock"
	"github.com/synack/synack/wire"
)

// MarkCE marks ECN-capable packets CE as a router would (RFC 3168
// section 5), leaves Not-ECT ones alone, and never touches the sender's
// buffer; the marked IPv4 header still checks.
func TestMarkCE(t *testing.T) {
	v := clock.NewVirtual(t0)
	a, b := Pipe(Config{Clock: v, AB: Impairments{MarkCE: func([]byte) bool { return true }}})
	defer a.Close()
	r := &recorder{clk: v, idAt: wire.IPv4MinHeaderLen}
	b.Attach(r)
	src, dst := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2")
	var sent [][]byte
	for i, e := range []wire.ECN{wire.NotECT, wire.ECT0, wire.ECT1, wire.CE} {
		h := wire.IPv4Header{TOS: wire.WithECN(0xb8, e), TTL: 64, Protocol: 253, Src: src, Dst: dst}
		pkt := append(wire.AppendIPv4(nil, &h, 4), 0, 0, 0, byte(i))
		sent = append(sent, pkt)
		if _, err := a.WritePackets([][]byte{pkt}); err != nil {
			t.Fatal(err)
		}
	}
	v.Advance(0)
	want := []wire.ECN{wire.NotECT, wire.CE, wire.CE, wire.CE}
	if len(r.got) != len(want) {
		t.Fatalf("%d packets delivered, want %d", len(r.got), len(want))
	}
	for i, g := range r.got {
		h, _, err := wire.ParseIPv4(g.pkt)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if wire.ECNOf(h.TOS) != want[i] || h.TOS>>2 != 0xb8>>2 {
			t.Errorf("packet %d: TOS %#x, want ECN %v and the DSCP kept", i, h.TOS, want[i])
		}
		if e, _ := wire.PacketECN(sent[i]); i > 0 && e == wire.CE && i != 3 {
			t.Errorf("packet %d: the sender's buffer was marked", i)
		}
	}
	if st := a.Stats(); st.MarkedCE != 2 {
		t.Errorf("MarkedCE %d, want 2 (the ECT packets)", st.MarkedCE)
	}
}

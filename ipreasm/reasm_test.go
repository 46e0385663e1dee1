package ipreasm

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/synack/synack/wire"
)

var (
	src4  = netip.MustParseAddr("198.18.0.1")
	dst4  = netip.MustParseAddr("198.18.0.2")
	src6  = netip.MustParseAddr("fd00::1")
	dst6  = netip.MustParseAddr("fd00::2")
	epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
)

// data is a recognisable payload of n octets.
func data(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

// piece is one fragment to make: [off, off+n) of the data, more fragments
// following or not.
type piece struct {
	off, n int
	more   bool
}

// split4 cuts payload into IPv4 fragments as a router would: offsets in
// 8-octet units, MF on all but the last. Each is parsed back with
// wire.ParseIPv4, as the stack hands them over.
func split4(t testing.TB, h wire.IPv4Header, payload []byte, pieces ...piece) (hs []wire.IPv4Header, ps [][]byte) {
	t.Helper()
	for _, p := range pieces {
		fh := h
		fh.FragOff = uint16(p.off / 8)
		if p.more {
			fh.Flags |= wire.IPv4MoreFragments
		}
		if p.off != 0 {
			fh.Options = nil // RFC 791: only copied options go on; none here
		}
		b := append(wire.AppendIPv4(nil, &fh, p.n), payload[p.off:p.off+p.n]...)
		ph, pp, err := wire.ParseIPv4(b)
		if !errors.Is(err, wire.ErrFragment) {
			t.Fatalf("fragment %+v: %v", p, err)
		}
		hs, ps = append(hs, ph), append(ps, pp)
	}
	return hs, ps
}

// tcpHeader is a 20-octet TCP header, so the fragmentable part starts with
// a whole upper-layer header (RFC 7112).
func tcpHeader(payload []byte) []byte {
	copy(payload, []byte{0x10, 0x00, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0})
	return payload
}

func TestIPv4InOrderAndOutOfOrder(t *testing.T) {
	payload := tcpHeader(data(3000))
	h := wire.IPv4Header{ID: 77, TTL: 64, Protocol: wire.ProtocolTCP, Src: src4, Dst: dst4, Options: []byte{1, 1, 1, 0}}
	pieces := []piece{{0, 1480, true}, {1480, 1480, true}, {2960, 40, false}}
	for _, order := range [][]int{{0, 1, 2}, {2, 1, 0}, {1, 2, 0}, {2, 0, 1}} {
		r := New(Config{})
		hs, ps := split4(t, h, payload, pieces...)
		var out []byte
		for i, j := range order {
			out = r.AddIPv4(epoch, &hs[j], ps[j])
			if (out != nil) != (i == len(order)-1) {
				t.Fatalf("order %v: fragment %d gave %v", order, j, out != nil)
			}
		}
		got, gp, err := wire.ParseIPv4(out)
		if err != nil {
			t.Fatalf("order %v: reassembled datagram: %v", order, err)
		}
		if !bytes.Equal(gp, payload) || got.ID != 77 || got.IsFragment() || !bytes.Equal(got.Options, h.Options) || got.Src != src4 {
			t.Errorf("order %v: got %+v with %d octets, want the original", order, got, len(gp))
		}
		if c := r.Counters(); c.ReasmReqds != 3 || c.ReasmOKs != 1 || c.ReasmFails != 0 || r.Len() != 0 || r.Mem() != 0 {
			t.Errorf("order %v: counters %+v, %d datagrams, %d bytes held", order, c, r.Len(), r.Mem())
		}
	}
}

func TestIPv4Duplicate(t *testing.T) {
	r := New(Config{})
	payload := tcpHeader(data(48))
	hs, ps := split4(t, wire.IPv4Header{ID: 1, TTL: 9, Protocol: wire.ProtocolTCP, Src: src4, Dst: dst4}, payload, piece{0, 24, true}, piece{24, 24, false})
	for range 2 { // the first fragment, then its duplicate
		if r.AddIPv4(epoch, &hs[0], ps[0]) != nil {
			t.Fatal("completed early")
		}
	}
	out := r.AddIPv4(epoch, &hs[1], ps[1])
	if _, p, err := wire.ParseIPv4(out); err != nil || !bytes.Equal(p, payload) {
		t.Fatalf("duplicate spoiled the datagram: %v", err)
	}
	if c := r.Counters(); c.ReasmReqds != 3 || c.ReasmOKs != 1 || c.ReasmFails != 0 {
		t.Errorf("counters %+v", c)
	}
}

// RFC 5722 section 4 for IPv6, and Linux for IPv4: an overlap discards the
// whole datagram, and what comes later for it does not complete it.
func TestIPv4Overlap(t *testing.T) {
	r := New(Config{})
	payload := tcpHeader(data(64))
	h := wire.IPv4Header{ID: 2, TTL: 9, Protocol: wire.ProtocolUDP, Src: src4, Dst: dst4}
	hs, ps := split4(t, h, payload, piece{0, 32, true}, piece{24, 16, true}, piece{32, 32, false})
	r.AddIPv4(epoch, &hs[0], ps[0])
	if r.AddIPv4(epoch, &hs[1], ps[1]) != nil || r.Len() != 0 || r.Mem() != 0 {
		t.Fatalf("overlap kept: %d datagrams, %d bytes", r.Len(), r.Mem())
	}
	if r.AddIPv4(epoch, &hs[2], ps[2]) != nil {
		t.Fatal("completed after an overlap")
	}
	if c := r.Counters(); c.ReasmOverlap != 1 || c.ReasmFails != 1 || c.ReasmOKs != 0 {
		t.Errorf("counters %+v", c)
	}
}

func TestIPv4Refused(t *testing.T) {
	h := wire.IPv4Header{ID: 3, TTL: 9, Protocol: wire.ProtocolTCP, Src: src4, Dst: dst4}
	payload := data(70000)
	tests := []struct {
		name string
		p    piece
	}{
		// RFC 3128 section 4: TCP at fragment offset 1.
		{"TCP at offset 8", piece{8, 16, true}},
		{"not a multiple of 8", piece{0, 20, true}},
		{"empty and more", piece{16, 0, true}},
		{"past 65535", piece{65528, 8, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := New(Config{})
			hs, ps := split4(t, h, payload, tt.p)
			r.AddIPv4(epoch, &hs[0], ps[0])
			if c := r.Counters(); c.ReasmFails != 1 || r.Len() != 0 || r.Mem() != 0 {
				t.Errorf("counters %+v, %d datagrams held", c, r.Len())
			}
		})
	}
	// 65515 octets of data fit behind a 20-octet header, not behind the
	// 60 octets of a first fragment with 40 of options.
	long := h
	long.Options = make([]byte, 40)
	long.Options[0] = 1
	for _, order := range [][]int{{0, 1, 2}, {2, 1, 0}, {1, 0, 2}} {
		r := New(Config{})
		var hs []wire.IPv4Header
		var ps [][]byte
		h0, p0 := split4(t, long, payload, piece{0, 32752, true})
		h1, p1 := split4(t, h, payload, piece{32752, 32760, true}, piece{65512, 3, false})
		hs, ps = append(h0, h1...), append(p0, p1...)
		for _, i := range order {
			if out := r.AddIPv4(epoch, &hs[i], ps[i]); out != nil {
				t.Fatalf("order %v: a datagram of %d octets", order, len(out))
			}
		}
		if c := r.Counters(); c.ReasmFails != 1 || r.Len() != 0 || r.Mem() != 0 {
			t.Errorf("order %v: too long with the first fragment's options: counters %+v, %d held", order, c, r.Len())
		}
	}
	// Without the options it fits exactly.
	r := New(Config{})
	hs, ps := split4(t, h, payload, piece{0, 32752, true}, piece{32752, 32760, true}, piece{65512, 3, false})
	var out []byte
	for i := range hs {
		out = r.AddIPv4(epoch, &hs[i], ps[i])
	}
	if len(out) != MaxDatagram {
		t.Errorf("a datagram of 65535 octets came out as %d", len(out))
	}
	// Two last fragments with different ends, and data beyond a last one.
	for name, pieces := range map[string][]piece{
		"two ends":       {{16, 8, false}, {24, 8, false}},
		"beyond the end": {{32, 8, true}, {16, 8, false}},
		"end moved back": {{16, 8, false}, {24, 8, true}},
	} {
		r := New(Config{})
		hs, ps := split4(t, h, payload, pieces...)
		for i := range hs {
			r.AddIPv4(epoch, &hs[i], ps[i])
		}
		if c := r.Counters(); c.ReasmFails != 1 || r.Len() != 0 || r.Mem() != 0 {
			t.Errorf("%s: counters %+v, %d held", name, c, r.Len())
		}
	}
}

func TestTimeout(t *testing.T) {
	r := New(Config{})
	payload := tcpHeader(data(64))
	hs, ps := split4(t, wire.IPv4Header{ID: 4, TTL: 9, Protocol: wire.ProtocolTCP, Src: src4, Dst: dst4}, payload, piece{0, 32, true}, piece{32, 32, false})
	r.AddIPv4(epoch, &hs[0], ps[0])
	f6 := frag6(t, 9, tcpHeader(data(64)), piece{0, 32, true})
	r.AddIPv6(epoch.Add(time.Second), &f6[0].h, f6[0].frag, 0)
	if d := r.Deadline(); !d.Equal(epoch.Add(30 * time.Second)) {
		t.Errorf("deadline %v, want 30 s after the first fragment", d)
	}
	r.Expire(epoch.Add(30*time.Second - 1))
	if r.Len() != 2 {
		t.Fatalf("expired early: %d left", r.Len())
	}
	// IPv4 after 30 s (Linux's ipfrag_time), IPv6 after 60 s (RFC 8200).
	if r.AddIPv4(epoch.Add(30*time.Second), &hs[1], ps[1]) != nil {
		t.Fatal("completed after its timeout")
	}
	if c := r.Counters(); c.ReasmTimeout != 1 || c.ReasmFails != 1 || r.Len() != 2 {
		t.Errorf("at 30 s: counters %+v, %d held (the IPv6 one and the new IPv4 one)", c, r.Len())
	}
	r.Expire(epoch.Add(61 * time.Second))
	if c := r.Counters(); c.ReasmTimeout != 3 || r.Len() != 0 || r.Mem() != 0 || !r.Deadline().IsZero() {
		t.Errorf("at 61 s: counters %+v, %d held, %d bytes", c, r.Len(), r.Mem())
	}
}

// A flood of first fragments with distinct IDs stays within the budget:
// the oldest datagrams make room for new ones.
func TestBudget(t *testing.T) {
	const budget = 256 << 10
	r := New(Config{Budget: budget})
	payload := tcpHeader(data(1480))
	h := wire.IPv4Header{TTL: 9, Protocol: wire.ProtocolTCP, Src: src4, Dst: dst4}
	for id := range 10000 {
		h.ID = uint16(id)
		hs, ps := split4(t, h, payload, piece{0, 1480, true})
		r.AddIPv4(epoch, &hs[0], ps[0])
		if r.Mem() > budget {
			t.Fatalf("after %d fragments: %d bytes held, budget %d", id+1, r.Mem(), budget)
		}
	}
	per := DatagramOverhead + FragmentOverhead + 1480
	if r.Mem() != r.Len()*per || r.Len() != budget/per {
		t.Errorf("%d datagrams, %d bytes: want %d datagrams of %d", r.Len(), r.Mem(), budget/per, per)
	}
	c := r.Counters()
	if c.ReasmReqds != 10000 || c.ReasmEvicted != uint64(10000-r.Len()) || c.ReasmFails != c.ReasmEvicted {
		t.Errorf("counters %+v", c)
	}
	// The newest one still completes.
	hs, ps := split4(t, h, append(payload, data(8)...), piece{1480, 8, false})
	if r.AddIPv4(epoch, &hs[0], ps[0]) == nil {
		t.Error("the newest datagram did not complete")
	}
}

type fragPkt struct {
	h    wire.IPv6Header
	frag []byte // from the Fragment header on
	pkt  []byte
}

// frag6 cuts payload (the fragmentable part, starting with a TCP header)
// into IPv6 fragments with identification id.
func frag6(t testing.TB, id uint32, payload []byte, pieces ...piece) []fragPkt {
	t.Helper()
	var out []fragPkt
	for _, p := range pieces {
		f := wire.IPv6Fragment{NextHeader: wire.ProtocolTCP, Offset: uint16(p.off / 8), More: p.more, ID: id}
		body := append(wire.AppendIPv6Fragment(nil, &f), payload[p.off:p.off+p.n]...)
		b := append(wire.AppendIPv6(nil, &wire.IPv6Header{NextHeader: wire.ProtocolFragment, HopLimit: 64, Src: src6, Dst: dst6}, len(body)), body...)
		h, fp, err := wire.ParseIPv6(b)
		if !errors.Is(err, wire.ErrFragment) {
			t.Fatalf("fragment %+v: %v", p, err)
		}
		out = append(out, fragPkt{h: h, frag: fp, pkt: b})
	}
	return out
}

func TestIPv6(t *testing.T) {
	payload := tcpHeader(data(2000))
	r := New(Config{})
	fs := frag6(t, 5, payload, piece{0, 1232, true}, piece{1232, 768, false})
	if r.AddIPv6(epoch, &fs[1].h, fs[1].frag, 0) != nil {
		t.Fatal("completed early")
	}
	out := r.AddIPv6(epoch, &fs[0].h, fs[0].frag, 0)
	h, p, err := wire.ParseIPv6(out)
	if err != nil || h.NextHeader != wire.ProtocolTCP || !bytes.Equal(p, payload) || h.Src != src6 {
		t.Fatalf("reassembled: %+v %d octets %v", h, len(p), err)
	}

	// RFC 6946: an atomic fragment is the whole packet, and leaves a
	// reassembly with its identification alone.
	r.AddIPv6(epoch, &fs[0].h, fs[0].frag, 0)
	at := frag6(t, 5, payload[:40], piece{0, 40, false})
	out = r.AddIPv6(epoch, &at[0].h, at[0].frag, 0)
	if _, p, err := wire.ParseIPv6(out); err != nil || !bytes.Equal(p, payload[:40]) {
		t.Fatalf("atomic fragment: %v", err)
	}
	if r.Len() != 1 || r.AddIPv6(epoch, &fs[1].h, fs[1].frag, 0) == nil {
		t.Error("the atomic fragment disturbed the reassembly of its ID")
	}

	// RFC 5722: overlap discards.
	ov := frag6(t, 6, payload, piece{0, 1232, true}, piece{1224, 776, false})
	r.AddIPv6(epoch, &ov[0].h, ov[0].frag, 0)
	if r.AddIPv6(epoch, &ov[1].h, ov[1].frag, 0) != nil || r.Len() != 0 {
		t.Error("overlapping IPv6 fragments reassembled")
	}

	// RFC 7112: a first fragment that cuts the TCP header.
	cut := frag6(t, 7, payload, piece{8, 1992, false}, piece{0, 8, true})
	r.AddIPv6(epoch, &cut[0].h, cut[0].frag, 0)
	if r.AddIPv6(epoch, &cut[1].h, cut[1].frag, 0) != nil || r.Len() != 0 {
		t.Error("a first fragment without the whole header chain was taken")
	}
	if c := r.Counters(); c.ReasmOKs != 3 || c.ReasmOverlap != 1 || c.ReasmFails != 2 || c.ReasmReqds != 9 {
		t.Errorf("counters %+v", c)
	}
}

// FuzzReassemble feeds fragments cut from a fuzzed script and checks the
// accounting: memory within the budget and equal to what is held, every
// output a whole datagram that parses.
func FuzzReassemble(f *testing.F) {
	f.Add([]byte{0, 0, 10, 1, 0, 10, 20, 0, 0, 20, 5, 0})
	f.Add([]byte{1, 0, 0, 30, 1, 1, 0, 30, 8, 0, 1, 0, 0, 200, 2, 1})
	f.Fuzz(func(t *testing.T, script []byte) {
		r := New(Config{Budget: 1})
		payload := tcpHeader(data(4096))
		now := epoch
		for len(script) >= 4 {
			op, id, off, n := script[0], script[1]&3, int(script[2])*8, int(script[3])*4
			script = script[4:]
			more := op&1 != 0
			now = now.Add(time.Duration(op>>4) * time.Second)
			if off+n > len(payload) {
				continue
			}
			var out []byte
			if op&2 == 0 {
				if off == 0 && !more {
					continue // not a fragment
				}
				hs, ps := split4(t, wire.IPv4Header{ID: uint16(id), TTL: 9, Protocol: wire.ProtocolUDP, Src: src4, Dst: dst4}, payload, piece{off, n, more})
				out = r.AddIPv4(now, &hs[0], ps[0])
			} else {
				fs := frag6(t, uint32(id), payload, piece{off, n, more})
				out = r.AddIPv6(now, &fs[0].h, fs[0].frag, 0)
			}
			if out != nil {
				p, err := wire.ParseIP(out)
				if err != nil {
					t.Fatalf("output does not parse: %v", err)
				}
				if want := payload[:len(p.Payload)]; !bytes.Equal(p.Payload, want) {
					t.Fatalf("output payload differs from the data cut")
				}
			}
			held := 0
			for _, d := range r.m {
				c := DatagramOverhead
				for _, fr := range d.frags {
					c += len(fr.data) + FragmentOverhead
				}
				if c != d.cost {
					t.Fatalf("datagram cost %d, holds %d", d.cost, c)
				}
				held += c
			}
			if held != r.Mem() || r.Mem() > r.Budget() {
				t.Fatalf("mem %d, held %d, budget %d", r.Mem(), held, r.Budget())
			}
		}
		c := r.Counters()
		// Each fragment ends at most one datagram or is refused alone.
		if c.ReasmOKs+c.ReasmFails+uint64(r.Len()) > c.ReasmReqds {
			t.Fatalf("counters %+v", c)
		}
	})
}

// RFC 3168 section 5.3: reassembly must not lose a CE mark. A CE fragment
// marks the datagram; CE beside a Not-ECT fragment drops it; fragments
// that agree keep their codepoint. For IPv4 and IPv6, the CE fragment
// first and last.
func TestECNReassembly(t *testing.T) {
	payload := tcpHeader(data(64))
	cases := []struct {
		name   string
		ecn    [2]wire.ECN // of the first and the second fragment
		want   wire.ECN
		refuse bool
	}{
		{"all ECT(0)", [2]wire.ECN{wire.ECT0, wire.ECT0}, wire.ECT0, false},
		{"all Not-ECT", [2]wire.ECN{wire.NotECT, wire.NotECT}, wire.NotECT, false},
		{"CE then ECT(0)", [2]wire.ECN{wire.CE, wire.ECT0}, wire.CE, false},
		{"ECT(0) then CE", [2]wire.ECN{wire.ECT0, wire.CE}, wire.CE, false},
		{"ECT(1) then CE", [2]wire.ECN{wire.ECT1, wire.CE}, wire.CE, false},
		{"CE beside Not-ECT", [2]wire.ECN{wire.NotECT, wire.CE}, 0, true},
		{"Not-ECT beside CE", [2]wire.ECN{wire.CE, wire.NotECT}, 0, true},
	}
	for _, tc := range cases {
		for _, v6 := range []bool{false, true} {
			for _, lastFirst := range []bool{false, true} {
				r := New(Config{})
				var out []byte
				order := []int{0, 1}
				if lastFirst {
					order = []int{1, 0}
				}
				if v6 {
					fs := frag6(t, 9, payload, piece{0, 32, true}, piece{32, 32, false})
					for i := range fs {
						fs[i].h.TrafficClass = wire.WithECN(0xb8, tc.ecn[i])
					}
					for _, i := range order {
						out = r.AddIPv6(epoch, &fs[i].h, fs[i].frag, 0)
					}
				} else {
					hs, ps := split4(t, wire.IPv4Header{ID: 9, TTL: 9, TOS: 0xb8, Protocol: wire.ProtocolTCP, Src: src4, Dst: dst4}, payload, piece{0, 32, true}, piece{32, 32, false})
					for i := range hs {
						hs[i].TOS = wire.WithECN(0xb8, tc.ecn[i])
					}
					for _, i := range order {
						out = r.AddIPv4(epoch, &hs[i], ps[i])
					}
				}
				name := fmt.Sprintf("%s, v6 %v, last first %v", tc.name, v6, lastFirst)
				if tc.refuse {
					if out != nil || r.Len() != 0 || r.Mem() != 0 || r.Counters().ReasmFails != 1 {
						t.Errorf("%s: reassembled (or kept) a datagram mixing CE and Not-ECT", name)
					}
					continue
				}
				p, err := wire.ParseIP(out)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if got := p.ECN(); got != tc.want {
					t.Errorf("%s: ECN %v, want %v", name, got, tc.want)
				}
				if dscp := p.IPv4.TOS &^ 3; !v6 && dscp != 0xb8 {
					t.Errorf("%s: DSCP %#x changed", name, dscp)
				}
			}
		}
	}
}

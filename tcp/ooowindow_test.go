package tcp

import "testing"

// A sender may fill the whole window we advertise (RFC 9293 3.8.6: data
// inside the window is acceptable; RFC 7323 section 2.4). When the first
// segment of such a flight is lost, everything after it is out of order,
// and all of it must be kept: dropping the far end of the flight (or
// pruning SACKed islands to make room) costs the sender a second round of
// retransmissions, and a reneged SACK an RTO. The default out-of-order
// limit follows the window, so nothing inside it is dropped.
func TestOutOfOrderWholeWindowKept(t *testing.T) {
	for _, tt := range []struct {
		name string
		size int // segment size the peer sends
		mods []func(*Config)
	}{
		{"fixed window, 1000-byte segments", 1000, []func(*Config){func(c *Config) { c.NoAutoTune = true }}},
		{"fixed window, 1460-byte segments", 1460, []func(*Config){func(c *Config) { c.NoAutoTune = true }}},
		{"fixed 4 MiB window", 1000, []func(*Config){func(c *Config) { c.NoAutoTune, c.ReceiveBufferSize = true, 4<<20 }}},
		{"auto-tuned window", 1000, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tc := newEstablishedSACK(t, tt.mods...)
			wnd := int(tc.c.rcv.nxt.Size(tc.c.rcv.advEdge))
			if wnd < 60000 {
				t.Fatalf("advertised window %d, want at least the initial 64 KiB", wnd)
			}
			data := payload(wnd, 3)
			// The first segment is lost; the rest of the flight, up to the
			// advertised right edge, arrives.
			for off := tt.size; off < wnd; off += tt.size {
				end := min(off+tt.size, wnd)
				tc.in(seg{flags: A, seq: irs + 1 + seqv(uint32(off)), ack: iss + 1, data: data[off:end]})
			}
			tc.drain()
			st := tc.c.Stats()
			if st.OutOfOrderDropped != 0 || st.OutOfOrderPruned != 0 {
				t.Fatalf("window %d: %d out-of-order segments dropped, %d bytes pruned; want all of a flight inside the window kept",
					wnd, st.OutOfOrderDropped, st.OutOfOrderPruned)
			}
			if held := tc.c.rcv.ooo.bytes(); held != wnd-tt.size {
				t.Fatalf("%d bytes held out of order, want %d", held, wnd-tt.size)
			}
			tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1, data: data[:tt.size]})
			s := tc.drain()
			if got := s[len(s)-1].Ack; got != irs+1+seqv(uint32(wnd)) {
				t.Fatalf("after the hole is filled: ack %d, want the whole window %d", got-(irs+1), wnd)
			}
			tc.wantRead("the whole window, in order", data)
		})
	}
}

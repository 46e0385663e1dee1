package stack

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"
	"testing/synctest"

	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/wire"
)

// The last figure of "Memory under attack (issue 12)" in BENCHMARKS.md:
// 10,000 attacking connections against no MemoryLimit, 64 MiB (more than
// the rings of unread data need) and 32 MiB (less: data is dropped). Each sends
// 2,000 bytes in order that the application never reads, 1,000 bytes
// 100,000, 200,000 and 300,000 ahead and one byte 1,000,000 ahead. Run with -memfigures
// (memfigures_test.go); it needs Options.MemoryLimit, so unlike the other
// figures it has no "before".
func TestMemoryFiguresUnderLimit(t *testing.T) {
	if !*memFigures {
		t.Skip("figures for BENCHMARKS.md: run with -memfigures")
	}
	const conns = 10_000
	for _, limit := range []int64{-1, 64 << 20, 32 << 20} {
		figUnderLimit(t, conns, limit)
	}
}

// figUnderLimit is one run of TestMemoryFiguresUnderLimit; a negative
// limit is none, for comparison.
func figUnderLimit(t *testing.T, conns int, limit int64) {
	synctest.Test(t, func(t *testing.T) {
		r := newRawPeerOpts(t, Options{MemoryLimit: limit})
		base := figHeap()
		cs, iss := figConns(t, r, conns)
		idle := figHeap()
		var peak int64
		in := bytes.Repeat([]byte{'i'}, 1000)
		ooo := bytes.Repeat([]byte{'o'}, 1000)
		for i := range conns {
			from, to := netip.AddrPortFrom(addrB, uint16(10000+i)), netip.AddrPortFrom(addrA, 80)
			ack := iss[i] + 1
			for _, s := range []struct {
				seq  seqnum.Value
				data []byte
			}{{1001, in}, {2001, in}, {1001 + 100_000, ooo}, {1001 + 200_000, ooo}, {1001 + 300_000, ooo}, {1001 + 1_000_000, []byte{'x'}}} {
				r.send(tcpPacket(from, to, wire.TCPHeader{Seq: s.seq, Ack: ack, Flags: wire.ACK, Window: 512}, s.data))
			}
			r.figDrain()
			peak = max(peak, r.s.Memory().InUse)
		}
		attacked := figHeap()
		m := r.s.Memory()
		c := r.s.Counters().TCP
		lim := "none"
		if limit > 0 {
			lim = fmt.Sprintf("%d MiB", limit>>20)
		}
		fmt.Printf("%d attackers, MemoryLimit %s: heap %d MiB idle, %d MiB attacked (+%d B per connection); budget peak %d B, now %d B (%v); pressures %d, prune passes %d, %d B out of order pruned, %d segments' text dropped\n",
			conns, lim, (idle-base)>>20, (attacked-base)>>20, (attacked-idle)/int64(conns), peak, m.InUse, m.State,
			c.TCPMemoryPressures, c.PruneCalled, c.OFOPruned, c.TCPRcvQDrop)
		if limit > 0 && peak > limit+memSlack {
			t.Errorf("budget peak %d over the limit %d", peak, limit)
		}
		figClose(r, cs)
	})
}

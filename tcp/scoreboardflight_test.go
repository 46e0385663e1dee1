package tcp

import (
	"testing"
	"time"

	"github.com/synack/synack/wire"
)

// A 2,000-segment flight loses every other segment (a slow-start overshoot
// into a drop-tail queue): the peer SACKs the 1,000 that arrived, four
// blocks per ACK. The sender holds all 1,000 ranges, and loss recovery
// (RFC 6675 NextSeg, or RACK's) resends exactly the 1,000 holes, each
// once, and nothing SACKed but the one rescue retransmission rule 4 makes
// while the top of the flight is not yet SACKed. With 16 ranges it forgot all but the lowest
// and counted the rest of the flight as not SACKed.
func TestScoreboardThousandRangesResendsOnlyHoles(t *testing.T) {
	for _, mode := range []struct {
		name string
		ld   LossDetection
	}{{"dupthresh", LossDupThresh}, {"rack", LossRACK}} {
		t.Run(mode.name, func(t *testing.T) { thousandRanges(t, mode.ld) })
	}
}

func thousandRanges(t *testing.T, ld LossDetection) {
	const mss, segs = 1000, 2000
	tc := newSynSent(t, func(c *Config) {
		c.SendBufferSize = 4 << 20
		c.NoSACK, c.NoWindowScale = false, false
		c.LossDetection = ld
		c.NoAutoTune = true
	})
	tc.peerWin = 65535
	tc.advance(100 * time.Millisecond)
	o := mssOpt(mss)
	o.SACKPermitted = true
	o.HasWindowScale, o.WindowScale = true, 7 // 8 MiB
	tc.in(seg{flags: S | A, seq: irs, ack: iss + 1, opts: o})
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1}) // the SYN's window is not scaled (RFC 7323 section 2.2)
	tc.drain()
	tc.c.cc.(windowSetter).setWindow(4*segs*mss, 4*segs*mss)
	tc.write(payload(segs*mss, 0))
	if n := countSent(tc); n != segs {
		t.Fatalf("flight of %d segments, want %d", n, segs)
	}

	// The peer: got[k] when segment k has arrived.
	got := make([]bool, segs)
	for k := 1; k < segs; k += 2 {
		got[k] = true
	}
	ackOf := func() int {
		k := 0
		for k < segs && got[k] {
			k++
		}
		return k
	}
	// ack sends the cumulative ACK with the SACK blocks of the (up to
	// four) ranges above it, starting with the one holding seg.
	ack := func(from int) {
		a := ackOf()
		var o wire.TCPOptions
		for k := max(from, a+1); k < segs && o.NumSACK < 4; {
			if !got[k] {
				k++
				continue
			}
			e := k
			for e < segs && got[e] {
				e++
			}
			o.SACKBlocks[o.NumSACK] = wire.SACKBlock{Start: iss + 1 + seqv(uint32(k*mss)), End: iss + 1 + seqv(uint32(e*mss))}
			o.NumSACK++
			k = e
		}
		tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1 + seqv(uint32(a*mss)), opts: o})
	}
	tc.advance(100 * time.Millisecond)
	for k := 1; k < segs; k += 8 {
		ack(k)
	}
	if n := len(tc.c.lr().sb.r); n != segs/2 {
		t.Fatalf("the scoreboard holds %d ranges, want %d", n, segs/2)
	}
	// RFC 6675 IsLost: every hole below the third-highest SACKed range
	// (segment 1995) is lost, 998 of them.
	if lost := tc.c.lr().sb.unsackedIn(tc.c.snd.una, tc.c.lostBelow()); lost != (segs/2-2)*mss {
		t.Fatalf("%d bytes lost, want %d", lost, (segs/2-2)*mss)
	}
	resent, extra := 0, 0
	for round := 0; ackOf() < segs; round++ {
		out := tc.drain()
		if len(out) == 0 {
			if round > 100*segs {
				t.Fatalf("stalled at segment %d, %d resent", ackOf(), resent)
			}
			tc.advance(10 * time.Millisecond)
			tc.c.HandleTimers(tc.now)
			continue
		}
		for _, s := range out {
			if len(s.Payload) == 0 {
				continue
			}
			off := int(s.Seq - (iss + 1))
			if off%mss != 0 || len(s.Payload) != mss {
				t.Fatalf("resent %d bytes at %d: not a whole segment", len(s.Payload), off)
			}
			k := off / mss
			if got[k] {
				// Only RFC 6675 NextSeg rule 4 may resend what the peer
				// holds: the rescue retransmission of the highest byte not
				// yet SACKed, before the top of the flight is SACKed.
				extra++
				continue
			}
			got[k] = true
			resent++
			ack(k + 1)
		}
	}
	st := tc.c.Stats()
	if resent != segs/2 || extra > int(st.RescueRetrans) || st.Retransmits != uint64(resent+extra) {
		t.Fatalf("resent the %d holes %d times, %d more segments (%d rescues; %d retransmits), want each hole once and no more",
			segs/2, resent, extra, st.RescueRetrans, st.Retransmits)
	}
	if tc.c.lr().sb.r != nil {
		t.Fatal("the scoreboard's array outlives its ranges")
	}
}

package tcp

import (
	"encoding/binary"
	"slices"
	"testing"
	"time"

	"github.com/synack/synack/wire"
)

var fuzzFixtures = []func(*testing.T, ...func(*Config)) *tconn{
	newListen, newSynSent, newSynReceived, newEstablished, newFinWait1,
	newFinWait2, newCloseWait, newLastAck, newClosing, newTimeWait,
}

// FuzzConn feeds a Conn in any fixture state a sequence of arbitrary
// segments, time steps and user calls, and checks the invariants after
// each step. The input is a fixture byte, an options byte, then 8-byte
// steps.
func FuzzConn(f *testing.F) {
	for i := range fuzzFixtures {
		f.Add([]byte{byte(i), 0, 0, byte(A), 0, 1, 0, 1, 0, 10})
		f.Add([]byte{byte(i), 1, 0, byte(A | F), 0, 1, 0, 1, 0, 0, 4, 0x80, 0, 0, 0, 0, 0, 0})
		f.Add([]byte{byte(i), 0, 0, byte(R), 0, 1, 0, 0, 0, 0, 0, byte(S), 0, 3, 0, 0, 0, 0})
	}
	f.Add([]byte{3, 0, 5, 200, 0, 0, 0, 0, 0, 0, 4, 0xff, 0, 0, 0, 0, 0, 0, 0, byte(A), 0x10, 0x01, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < 2 {
			return
		}
		mods := []func(*Config){func(c *Config) { c.ReceiveBufferSize, c.SendBufferSize = 4096, 4096 }}
		o := in[1]
		if o&1 != 0 {
			mods = append(mods, withOptions)
		}
		if o&2 != 0 {
			mods = append(mods, withNoDelay)
		}
		if o&4 != 0 {
			mods = append(mods, func(c *Config) { c.RFC793Reset, c.RFC793SYN = true, true })
		}
		if o&8 != 0 {
			mods = append(mods, func(c *Config) { c.KeepAlive, c.KeepAliveIdle = true, 10*time.Second })
		}
		if o&16 != 0 {
			mods = append(mods, func(c *Config) { c.UserTimeout = 5 * time.Second })
		}
		if o&32 != 0 {
			mods = append(mods, func(c *Config) { c.OutOfOrderLimit = 600 })
		}
		tc := fuzzFixtures[int(in[0])%len(fuzzFixtures)](t, mods...)
		if o&64 != 0 {
			tc.c.SetSegmentOffload(3000) // a link that segments (gso.go)
		}
		tc.drain()
		checkInvariants(t, tc)
		buf := make([]byte, 4096)
		for steps := in[2:]; len(steps) >= 8; steps = steps[8:] {
			s := steps[:8]
			switch op := s[0] % 8; op {
			case 0, 1, 2, 3: // a segment from the peer
				seq := irs + 1 + seqv(uint32(int32(int16(binary.BigEndian.Uint16(s[2:])))*int32(1+op)))
				ack := iss + 1 + seqv(uint32(int32(int16(binary.BigEndian.Uint16(s[4:])))))
				sg := seg{flags: wire.TCPFlags(s[1]) & (S | A | F | R | P), seq: seq, ack: ack, win: int(s[6]) << 6, zeroWin: s[6] == 0}
				if n := int(s[7]) * 8; n > 0 {
					sg.data = buf[:n]
				}
				if s[0]&8 != 0 {
					sg.opts.HasTimestamps = true
					sg.opts.TSVal = uint32(s[3]) << 8
					sg.opts.TSEcr = uint32(s[5])
				}
				if s[0]&32 != 0 && sg.flags&S == 0 {
					// A SACK block somewhere around what we sent.
					start := iss + 1 + seqv(uint32(s[2])<<6)
					sg.opts.SACKBlocks[0] = wire.SACKBlock{Start: start, End: start + seqv(uint32(s[3])<<5+1)}
					sg.opts.NumSACK = 1
					if s[0]&64 != 0 { // and a second, as a D-SACK would pair
						sg.opts.SACKBlocks[1] = wire.SACKBlock{Start: start - seqv(uint32(s[6])<<4), End: start + seqv(uint32(s[7])<<6+1)}
						sg.opts.NumSACK = 2
					}
				}
				if s[0]&16 != 0 && sg.flags&S != 0 {
					sg.opts.HasMSS, sg.opts.MSS = true, uint16(s[4])<<4
					sg.opts.HasWindowScale, sg.opts.WindowScale = true, s[5]&15
					sg.opts.SACKPermitted = true
				}
				tc.in(sg)
			case 4: // time passes
				tc.advance(time.Duration(binary.BigEndian.Uint16(s[1:])) * time.Millisecond * 10)
			case 5:
				tc.c.Write(tc.now, buf[:int(s[1])*16])
			case 6:
				if s[2]&1 != 0 {
					tc.c.Prune() // memory pressure
				}
				tc.c.Read(tc.now, buf[:int(s[1])*16])
			case 7:
				switch s[1] % 8 {
				case 0:
					tc.c.Close(tc.now)
				case 1:
					tc.c.Release(tc.now, false)
				case 2:
					tc.c.Release(tc.now, true)
				case 3:
					tc.c.Abort(tc.now)
				case 4:
					tc.c.CloseRead(tc.now)
				case 5:
					tc.c.SetNoDelay(tc.now, s[2]&1 != 0)
				case 6:
					tc.c.SetKeepAlive(tc.now, s[2]&1 != 0)
				case 7:
					tc.c.HandlePacketTooBig(tc.now, int(binary.BigEndian.Uint16(s[2:])))
				}
			}
			checkSuperSegments(t, tc.c, tc.drain())
			checkInvariants(t, tc)
		}
		// Whatever happened, time running on ends in a quiet state.
		tc.advance(24 * time.Hour)
		tc.drain()
		checkInvariants(t, tc)
	})
}

func checkInvariants(t *testing.T, tc *tconn) {
	t.Helper()
	c := tc.c
	if c.state != Closed && c.state != Listen && c.haveSYN || c.state.Synchronized() {
		if c.snd.nxt.LessThan(c.snd.una) || c.snd.max.LessThan(c.snd.nxt) {
			t.Fatalf("state %v: SND.UNA %d <= SND.NXT %d <= SND.MAX %d violated", c.state, c.snd.una, c.snd.nxt, c.snd.max)
		}
	}
	if c.snd.buf.len() > c.cfg.SendBufferSize || c.rcv.buf.len() > c.cfg.ReceiveBufferSize || c.rcv.buf.len() < 0 {
		t.Fatalf("buffers over their limits: snd %d rcv %d", c.snd.buf.len(), c.rcv.buf.len())
	}
	checkTree(t, &c.rcv.ooo.chunks)
	checkTree(t, &c.rcv.ooo.spans)
	if c.rcv.ooo.spans.len() > c.rcv.ooo.chunks.len() {
		t.Fatalf("%d islands of %d chunks", c.rcv.ooo.spans.len(), c.rcv.ooo.chunks.len())
	}
	for _, sp := range c.rcv.ooo.spanList() {
		sp = c.rcv.ooo.rel(sp)
		if sp.start <= 0 || sp.end <= sp.start || sp.end > c.cfg.ReceiveBufferSize {
			t.Fatalf("bad out-of-order span %+v", sp)
		}
	}
	// Out-of-order data: sorted, disjoint chunks beyond RCV.NXT, within
	// the limit, and the islands SACK reports are exactly theirs.
	cost, prev, held := 0, 0, 0
	for _, ch := range c.rcv.ooo.chunks.nodes() {
		if ch.start <= c.rcv.ooo.base || ch.start < prev || len(ch.data) == 0 || ch.end != ch.start+len(ch.data) {
			t.Fatalf("bad out-of-order chunk at %d (%d bytes, end %d) after %d", ch.start, len(ch.data), ch.end, prev)
		}
		prev = ch.end
		cost += ch.cost
		held += len(ch.data)
	}
	// The islands are the chunks merged where they touch.
	var islands []span
	for _, ch := range c.rcv.ooo.chunks.nodes() {
		if n := len(islands); n > 0 && islands[n-1].end == ch.start {
			islands[n-1].end = ch.end
		} else {
			islands = append(islands, span{ch.start, ch.end})
		}
	}
	spanBytes := 0
	for _, sp := range c.rcv.ooo.spanList() {
		spanBytes += sp.end - sp.start
	}
	if spanBytes != held {
		t.Fatalf("%d bytes in islands, %d in chunks", spanBytes, held)
	}
	if !slices.Equal(islands, c.rcv.ooo.spanList()) {
		t.Fatalf("islands %v, chunks make %v", c.rcv.ooo.spanList(), islands)
	}
	// The limit follows the window, which in-order data narrows after
	// out-of-order data was stored: what is held stays under the limit of
	// the widest window the buffer allows.
	limit := c.cfg.outOfOrderLimit(c.cfg.receiveBufferSize(), c.rcvSegSize())
	if cost != c.rcv.ooo.cost || cost > limit || held != c.rcv.ooo.bytes() {
		t.Fatalf("out-of-order cost %d (counted %d, limit %d), %d bytes in chunks, %d in spans",
			cost, c.rcv.ooo.cost, limit, held, c.rcv.ooo.bytes())
	}
	checkRecoveryInvariants(t, c)
	if dl := c.Deadline(); !dl.IsZero() && dl.Before(tc.now) {
		t.Fatalf("state %v: deadline %v in the past", c.state, tc.now.Sub(dl))
	}
	if c.state == Closed && !c.Deadline().IsZero() {
		t.Fatalf("CLOSED with a timer armed")
	}
	for i, e := range tc.events {
		if !Legal(e.From, e.To) || e.Cause == NoCause || e.Tuple != c.ID() {
			t.Fatalf("transition %v -> %v (%v) of %v", e.From, e.To, e.Cause, e.Tuple)
		}
		if i > 0 && tc.events[i-1].To != e.From {
			t.Fatalf("transitions do not chain: %v then %v -> %v", tc.events[i-1].To, e.From, e.To)
		}
	}
}

// checkRecoveryInvariants checks the sender's loss recovery state: the
// scoreboard's ranges are sorted, disjoint and within SND.UNA..SND.MAX; the
// transmit records tile SND.UNA..SND.MAX; the byte counts add up.
func checkRecoveryInvariants(t *testing.T, c *Conn) {
	t.Helper()
	sb := &c.lr().sb
	if lim := rangeLimit(c.snd.una, c.snd.max, c.mss); len(sb.r) > lim {
		t.Fatalf("%d SACK ranges, over the flight's %d", len(sb.r), lim)
	}
	sum := 0
	for i := range sb.r {
		r := sb.r[i]
		if !r.start.LessThan(r.end) || r.start.LessThan(c.snd.una) || r.end.GreaterThan(c.snd.max) ||
			i > 0 && !sb.r[i-1].end.LessThan(r.start) {
			t.Fatalf("bad SACK range %d %v (SND.UNA %d SND.MAX %d): %v", i, r, c.snd.una, c.snd.max, sb.r)
		}
		sum += int(r.start.Size(r.end))
	}
	if sum != sb.sacked {
		t.Fatalf("SACKed bytes %d, ranges hold %d", sb.sacked, sum)
	}
	q := &c.lr().txq
	if q.n > c.txLimit() || q.n > len(q.s) {
		t.Fatalf("%d transmit records in %d", q.n, len(q.s))
	}
	lost := 0
	for i := 0; i < q.n; i++ {
		s := q.at(i)
		if !s.start.LessThan(s.end) || i > 0 && q.at(i-1).end != s.start {
			t.Fatalf("transmit records do not tile: %d %+v", i, *s)
		}
		if s.has(txLost) {
			lost += int(s.start.Size(s.end))
		}
	}
	if lost != q.lostBytes {
		t.Fatalf("lost bytes %d, records hold %d", q.lostBytes, lost)
	}
	if q.n > 0 && c.state.Synchronized() && c.state != TimeWait && (q.at(0).start != c.snd.una || q.at(q.n-1).end != c.snd.max) {
		t.Fatalf("transmit records %d..%d, flight %d..%d", q.at(0).start, q.at(q.n-1).end, c.snd.una, c.snd.max)
	}
}

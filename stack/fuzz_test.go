package stack

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/synack/synack/link"
	"github.com/synack/synack/link/memlink"
	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/tcp"
	"github.com/synack/synack/wire"
)

// FuzzStack drives a whole stack from the outside: it listens on port 80
// and dials the fuzzer's address, and the fuzz input is a program of
// operations, over IPv4 and IPv6: TCP segments (random flags, sequence and acknowledgment
// numbers near or far from what the stack sent, windows, options,
// payload), ICMP errors quoting what the stack sent, the same segments cut
// into IPv4 or IPv6 fragments, the passing of (virtual) time and user calls
// (accept, dial, read, write, close, CloseWrite, SetLinger(0),
// SetReadBuffer and SetWriteBuffer).
//
// Invariants: no panic; after every operation the CurrEstab gauge equals
// the connections in ESTABLISHED or CLOSE-WAIT (RFC 4022's
// tcpCurrEstab); and once everything is closed and time has run past
// every timer (retransmission give-up, SYN,ACK retries, FIN-WAIT-2,
// 2*MSL) with the fuzzer silent, the stack holds no connection, no
// listener and no established count: every connection ended CLOSED.
//
// Time is virtual (a testing/synctest bubble), so hours of timers take
// no real time.
func FuzzStack(f *testing.F) {
	for _, seed := range fuzzStackSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, prog []byte) {
		if len(prog) > 4096 {
			return
		}
		synctest.Test(t, func(t *testing.T) { runStackProgram(t, prog) })
	})
}

// Operations of a FuzzStack program; each takes its arguments from the
// bytes after it (zero when the input runs out).
const (
	opSYN        = iota // SYN (with options) to the listener from one of a few ports
	opSegment           // a segment on a flow the stack has sent on, near its numbers
	opRandom            // a segment with arbitrary ports and numbers
	opICMP              // an ICMP error quoting the last segment of a flow
	opFragments         // an opSegment cut into IPv4 fragments, some left out or reordered
	opAdvance           // let time pass
	opAccept            // Accept without waiting
	opDial              // dial the fuzzer (in the background), maybe setting its buffer sizes
	opRead              // Read without waiting
	opWrite             // Write without waiting
	opClose             // Close
	opCloseWrite        // CloseWrite
	opAbort             // SetLinger(0), Close: RST
	numOps
)

// fuzzFlow is what the fuzzer knows of one connection from the segments
// the stack sent on it.
type fuzzFlow struct {
	us, them netip.AddrPort // the fuzzer's end and the stack's
	nxt      seqnum.Value   // the stack's next sequence number (what we would ACK)
	ack      seqnum.Value   // what the stack acknowledged (our next sequence number)
	last     []byte         // the last IP packet the stack sent on it
}

type stackFuzzer struct {
	t     *testing.T
	s     *Stack
	ep    *memlink.Endpoint
	l     *Listener
	prog  []byte
	mu    sync.Mutex
	sent  [][]byte // packets from the stack not looked at yet
	flows []*fuzzFlow
	conns []*TCPConn
	dials sync.WaitGroup
}

func (f *stackFuzzer) byte() byte {
	if len(f.prog) == 0 {
		return 0
	}
	b := f.prog[0]
	f.prog = f.prog[1:]
	return b
}

func (f *stackFuzzer) u16() uint16 { return uint16(f.byte())<<8 | uint16(f.byte()) }
func (f *stackFuzzer) u32() uint32 { return uint32(f.u16())<<16 | uint32(f.u16()) }

// runStackProgram runs prog and checks the invariants; it returns the
// stack's counters at the end, for the seed test.
func runStackProgram(t *testing.T, prog []byte) Counters {
	ea, eb := memlink.Pipe(memlink.Config{})
	f := &stackFuzzer{t: t, ep: eb, prog: prog}
	f.s = New(Options{
		Rand:          newSeeded(9),
		SynBacklog:    8, // small queues, so overflows, drops and cookies happen
		ListenBacklog: 4,
		// A small budget, so that a program can reach pressure and the
		// limit (checkMemory).
		MemoryLimit: fuzzMemoryLimit,
		// Two shards whatever the machine: the invariants hold across
		// shards (the budget is one, the demux table is split).
		Shards: 2,
	})
	if _, err := f.s.AddLink(ea, netip.PrefixFrom(addrA, 24), netip.PrefixFrom(addrA6, 64)); err != nil {
		t.Fatal(err)
	}
	eb.Attach(link.DispatcherFunc(func(pkt []byte) {
		f.mu.Lock()
		f.sent = append(f.sent, append([]byte(nil), pkt...))
		f.mu.Unlock()
	}))
	l, err := f.s.ListenTCP(netip.AddrPortFrom(netip.Addr{}, 80), 4) // both families
	if err != nil {
		t.Fatal(err)
	}
	f.l = l
	defer func() {
		f.s.Close()
		eb.Close()
		f.dials.Wait()
	}()

	for ops := 0; len(f.prog) > 0 && ops < 200; ops++ {
		f.step(f.byte() % numOps)
		synctest.Wait()
		f.learn()
		f.checkGauge("after an operation")
		f.checkMemory("after an operation")
	}

	// Close everything, stay silent, and let every timer run out.
	f.mu.Lock()
	conns := f.conns
	f.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
	l.Close()
	for range 6 {
		// In steps, so each timer's successor is armed in turn; 6 hours
		// is beyond any retransmission give-up (15 retries at up to
		// 120 s), the SYN,ACK retries, FIN-WAIT-2 and TIME-WAIT.
		time.Sleep(time.Hour)
		synctest.Wait()
	}
	f.learn()
	if left := f.s.Connections(); len(left) != 0 {
		for _, c := range left {
			t.Errorf("left after 6 silent hours: %v %v age %v released %v info %+v", c.Tuple, c.State, c.Age, c.Released, c.Info)
		}
	}
	if ls := f.s.Listeners(); len(ls) != 0 {
		t.Errorf("listeners left: %+v", ls)
	}
	if n := f.s.Counters().TCP.CurrEstab; n != 0 {
		t.Errorf("CurrEstab %d after 6 silent hours, want 0", n)
	}
	if sc := f.s.StateCounts(); len(sc) != 0 {
		t.Errorf("StateCounts %v after 6 silent hours, want none", sc)
	}
	f.checkMemory("after 6 silent hours")
	if m := f.s.Memory(); m.InUse != 0 || m.State != tcp.MemoryNormal {
		t.Errorf("memory in use %d, state %v after 6 silent hours, want 0, normal (%+v)", m.InUse, m.State, m)
	}
	return f.s.Counters()
}

// fuzzMemoryLimit is FuzzStack's Options.MemoryLimit: 64 KiB, which one
// connection reaches with some 24 segments of unread data, or a Write.
const fuzzMemoryLimit = 64 << 10

// checkMemory checks the memory budget (memory.go) against the
// connections:
//
//   - the accounting is consistent: what the stack counts for each
//     connection is what its buffers hold (tcp.Conn.BufferMemory), and
//     the total is the sum over the connections, so a count that drifts
//     (a leak in the accounting, either way) is caught where it happens;
//   - the memory in use never passes MemoryLimit by more than the slack
//     memory.go documents (memorySlack).
func (f *stackFuzzer) checkMemory(when string) {
	f.t.Helper()
	s := f.s
	s.mu.Lock()
	defer s.mu.Unlock()
	var sum int64
	seen := make(map[*TCPConn]bool)
	check := func(tc *TCPConn) {
		if seen[tc] || tc.tcb == nil {
			return
		}
		seen[tc] = true
		held := int64(tc.tcb.BufferMemory())
		if held != tc.mem {
			f.t.Fatalf("%s: %v in %v holds %d bytes of buffers, the stack counts %d", when, tc.id, tc.tcb.State(), held, tc.mem)
		}
		sum += held
	}
	s.allConns(check)
	f.mu.Lock()
	for _, tc := range f.conns {
		check(tc) // owned connections out of the demux table hold unread data
	}
	f.mu.Unlock()
	if sum != s.mem.tcp.Load() {
		f.t.Fatalf("%s: the connections hold %d bytes of buffers, the stack counts %d", when, sum, s.mem.tcp.Load())
	}
	if used, most := s.memoryInUse(), s.mem.limit+s.memorySlack(); used > most {
		f.t.Fatalf("%s: %d bytes in use, over the limit %d plus the slack %d", when, used, s.mem.limit, most-s.mem.limit)
	}
}

// checkGauge compares CurrEstab with the connection table.
func (f *stackFuzzer) checkGauge(when string) {
	f.t.Helper()
	n := 0
	for _, c := range f.s.Connections() {
		if c.State == tcp.Established || c.State == tcp.CloseWait {
			n++
		}
	}
	if got := f.s.Counters().TCP.CurrEstab; got != uint64(n) {
		f.t.Fatalf("%s: CurrEstab %d, but %d connections in ESTABLISHED or CLOSE-WAIT", when, got, n)
	}
}

// learn reads what the stack sent and updates the flows.
func (f *stackFuzzer) learn() {
	f.mu.Lock()
	sent := f.sent
	f.sent = nil
	f.mu.Unlock()
	for _, pkt := range sent {
		p, err := wire.ParseIP(pkt)
		if err != nil {
			f.t.Fatalf("the stack sent a bad IP packet: %v", err)
		}
		if p.Protocol != wire.ProtocolTCP {
			continue
		}
		h, payload, err := wire.ParseTCP(p.Payload, p.Src, p.Dst, true)
		if err != nil {
			f.t.Fatalf("the stack sent a bad TCP segment: %v", err)
		}
		them, us := netip.AddrPortFrom(p.Src, h.SrcPort), netip.AddrPortFrom(p.Dst, h.DstPort)
		var fl *fuzzFlow
		for _, x := range f.flows {
			if x.us == us && x.them == them {
				fl = x
			}
		}
		if fl == nil {
			if len(f.flows) == 16 {
				f.flows = f.flows[1:]
			}
			fl = &fuzzFlow{us: us, them: them}
			f.flows = append(f.flows, fl)
		}
		n := seqnum.Size(len(payload))
		if h.Flags&wire.SYN != 0 {
			n++
		}
		if h.Flags&wire.FIN != 0 {
			n++
		}
		fl.nxt = h.Seq.Add(n)
		if h.Flags&wire.ACK != 0 {
			fl.ack = h.Ack
		}
		fl.last = pkt
	}
}

func (f *stackFuzzer) send(pkt []byte) {
	if len(pkt) > memlink.DefaultMTU { // the pipe's MTU
		// The link cannot carry it (an IPv6 segment of 1408 octets with
		// 40 of options is 1508): a peer could not send it either.
		return
	}
	if _, err := f.ep.WritePackets([][]byte{pkt}); err != nil {
		f.t.Fatal(err)
	}
}

// options decodes one byte (and more when it asks) into TCP options.
func (f *stackFuzzer) options(ref seqnum.Value) wire.TCPOptions {
	b := f.byte()
	var o wire.TCPOptions
	if b&1 != 0 {
		o.HasMSS, o.MSS = true, f.u16()
	}
	if b&2 != 0 {
		o.HasWindowScale, o.WindowScale = true, f.byte()%16
	}
	if b&4 != 0 {
		o.SACKPermitted = true
	}
	if b&8 != 0 {
		o.HasTimestamps, o.TSVal, o.TSEcr = true, f.u32(), f.u32()
	}
	if k := int(b>>4) % 4; k > 0 && !o.SACKPermitted {
		o.NumSACK = k
		if o.HasTimestamps && k > 3 {
			o.NumSACK = 3
		}
		for i := range o.NumSACK {
			start := ref.Add(seqnum.Size(int8(f.byte())) * 64)
			o.SACKBlocks[i] = wire.SACKBlock{Start: start, End: start.Add(seqnum.Size(f.byte()) * 16)}
		}
	}
	if o.Len() > wire.TCPMaxOptionsLen {
		o.HasMSS = false
	}
	if o.Len() > wire.TCPMaxOptionsLen {
		o.NumSACK = 0
	}
	return o
}

// flowSegment builds a segment on a flow from the next bytes: flags,
// sequence and acknowledgment numbers near what the flow expects, window,
// options and payload.
func (f *stackFuzzer) flowSegment() (from, to netip.AddrPort, h wire.TCPHeader, payload []byte, ok bool) {
	if len(f.flows) == 0 {
		return from, to, h, nil, false
	}
	fl := f.flows[int(f.byte())%len(f.flows)]
	h.Flags = wire.TCPFlags(f.byte()) & (wire.FIN | wire.SYN | wire.RST | wire.PSH | wire.ACK | wire.URG)
	h.Seq = fl.ack.Add(seqnum.Size(int8(f.byte())))
	h.Ack = fl.nxt.Add(seqnum.Size(int8(f.byte())))
	h.Window = f.u16()
	if h.Flags&wire.URG != 0 {
		h.Urgent = uint16(f.byte())
	}
	h.Options = f.options(fl.nxt)
	payload = make([]byte, int(f.byte()%176)*8) // up to 1408 octets: one packet on the 1500-octet link
	return fl.us, fl.them, h, payload, true
}

// ends picks, from the next byte, a source port among 16 and the family:
// the fuzzer's end and the stack's listener.
func (f *stackFuzzer) ends() (from, to netip.AddrPort) {
	b := f.byte()
	port := 4000 + uint16(b%16)
	if b&16 != 0 {
		return netip.AddrPortFrom(addrB6, port), netip.AddrPortFrom(addrA6, 80)
	}
	return netip.AddrPortFrom(addrB, port), netip.AddrPortFrom(addrA, 80)
}

func (f *stackFuzzer) step(op byte) {
	switch op {
	case opSYN:
		from, to := f.ends()
		h := wire.TCPHeader{Seq: seqnum.Value(f.u32()), Flags: wire.SYN, Window: f.u16()}
		h.Options = f.options(h.Seq)
		f.send(tcpPacket(from, to, h, nil))
	case opSegment:
		if from, to, h, payload, ok := f.flowSegment(); ok {
			f.send(tcpPacket(from, to, h, payload))
		}
	case opRandom:
		from, to := f.ends()
		if len(f.flows) > 0 && f.byte()&1 != 0 && f.flows[0].them.Addr().Is4() == to.Addr().Is4() {
			to = f.flows[0].them
		}
		h := wire.TCPHeader{Seq: seqnum.Value(f.u32()), Ack: seqnum.Value(f.u32()), Window: f.u16(),
			Flags: wire.TCPFlags(f.byte()) & (wire.FIN | wire.SYN | wire.RST | wire.PSH | wire.ACK | wire.URG)}
		h.Options = f.options(h.Ack)
		f.send(tcpPacket(from, to, h, make([]byte, int(f.byte())%64)))
	case opICMP:
		if len(f.flows) == 0 {
			return
		}
		fl := f.flows[int(f.byte())%len(f.flows)]
		if fl.us.Addr().Is6() {
			// As much of the packet as fits (RFC 4443 section 2.4).
			var m wire.ICMPv6Message
			switch k := f.byte(); k % 3 {
			case 0:
				m = wire.NewICMPv6PacketTooBig(uint32(f.u16()), fl.last)
			case 1:
				m = wire.ICMPv6Message{Type: wire.ICMPv6ParamProblem, Code: k % 4, Data: fl.last}
			default:
				m = wire.NewICMPv6Unreachable(k%8, fl.last)
			}
			f.send(ipPacket(addrB6, addrA6, wire.ProtocolICMPv6, wire.AppendICMPv6(nil, &m, addrB6, addrA6)))
			return
		}
		// Quote the IP header and the first 8 octets of TCP (RFC 792).
		quote := fl.last[:min(len(fl.last), wire.IPv4MinHeaderLen+8)]
		var m wire.ICMPv4Message
		switch k := f.byte(); k % 4 {
		case 0:
			m = wire.NewICMPv4FragNeeded(f.u16(), quote)
		default:
			m = wire.NewICMPv4Unreachable(k%6, quote) // net, host, protocol, port, frag needed, source route failed
		}
		f.send(ipPacket(addrB, addrA, wire.ProtocolICMP, wire.AppendICMPv4(nil, &m)))
	case opFragments:
		from, to, h, payload, ok := f.flowSegment()
		if !ok {
			return
		}
		h.SrcPort, h.DstPort = from.Port(), to.Port()
		seg := wire.AppendTCP(nil, &h, payload, from.Addr(), to.Addr())
		var cuts []int
		for c := 8 * (1 + int(f.byte()%8)); c < len(seg) && len(cuts) < 4; c += 8 * (1 + int(f.byte()%8)) {
			cuts = append(cuts, c)
		}
		var frags [][]byte
		if from.Addr().Is4() {
			frags = fragments4(from.Addr(), to.Addr(), f.u16(), seg, cuts...)
		} else {
			id := uint32(f.u16())
			bounds := append(append([]int{0}, cuts...), len(seg))
			for i := 0; i+1 < len(bounds); i++ {
				frags = append(frags, fragment6(from.Addr(), to.Addr(), id, bounds[i], i+2 < len(bounds), seg[bounds[i]:bounds[i+1]]))
			}
		}
		mask, rev := f.byte(), f.byte()&1 != 0
		for i := range frags {
			j := i
			if rev {
				j = len(frags) - 1 - i
			}
			if mask&(1<<(j%8)) == 0 { // a clear bit leaves the fragment out
				f.send(frags[j])
			}
		}
	case opAdvance:
		units := [...]time.Duration{time.Millisecond, 100 * time.Millisecond, time.Second, 30 * time.Second}
		b := f.byte()
		time.Sleep(time.Duration(b>>2+1) * units[b&3])
	case opAccept:
		f.l.SetDeadline(time.Now().Add(time.Nanosecond))
		if c, err := f.l.AcceptTCP(); err == nil {
			f.conns = append(f.conns, c)
		}
	case opDial:
		b := f.byte()
		port := 80 + uint16(b%2)
		to := addrB
		if b&2 != 0 {
			to = addrB6
		}
		f.dials.Add(1)
		go func() {
			defer f.dials.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			c, err := f.s.DialTCP(ctx, netip.AddrPortFrom(to, port))
			if err != nil {
				return
			}
			// The byte's other bits set SO_RCVBUF and SO_SNDBUF (0: left
			// auto-tuned), in steps of 3000 bytes.
			if k := int(b>>2) & 7; k != 0 {
				c.SetReadBuffer(k * 3000)
			}
			if k := int(b >> 5); k != 0 {
				c.SetWriteBuffer(k * 3000)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			f.conns = append(f.conns, c) // picked up by the next user call
		}()
	case opRead, opWrite, opClose, opCloseWrite, opAbort:
		f.mu.Lock()
		conns := f.conns
		f.mu.Unlock()
		if len(conns) == 0 {
			return
		}
		c := conns[int(f.byte())%len(conns)]
		switch op {
		case opRead:
			c.SetReadDeadline(time.Now().Add(time.Nanosecond))
			c.Read(make([]byte, int(f.byte())*16+1))
		case opWrite:
			c.SetWriteDeadline(time.Now().Add(time.Nanosecond))
			c.Write(make([]byte, int(f.byte())*64+1))
		case opClose:
			c.Close()
		case opCloseWrite:
			c.CloseWrite()
		case opAbort:
			c.SetLinger(0)
			c.Close()
		}
	}
}

// fuzzStackSeeds are hand-made programs: a handshake with the listener and
// data both ways, a passive close; an active open; ICMP and fragments on
// an open connection; a reset; the same over IPv6; a SYN flood into the
// small queues; unread data and a Write past the memory limit. The
// committed corpus in testdata/fuzz/FuzzStack has the same kind.
func fuzzStackSeeds() [][]byte {
	// seg on flow 0: flags, seq delta, ack delta, window, options, payload/8.
	seg := func(flags wire.TCPFlags, payload8 byte) []byte {
		return []byte{opSegment, 0, byte(flags), 0, 0, 0xff, 0xff, 0, payload8}
	}
	cat := func(parts ...[]byte) []byte {
		var out []byte
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	handshake := cat(
		[]byte{opSYN, 0, 0, 0, 0, 100, 0xff, 0xff, 0x07, 0x05, 0xb4, 7},
		seg(wire.ACK, 0),
		[]byte{opAccept},
	)
	var out [][]byte
	out = append(out, cat(handshake,
		seg(wire.ACK|wire.PSH, 4),
		[]byte{opRead, 0, 4, opWrite, 0, 10},
		seg(wire.ACK, 0),
		seg(wire.ACK|wire.FIN, 0),
		[]byte{opClose, 0},
		seg(wire.ACK, 0),
		[]byte{opAdvance, 0x03},
	))
	out = append(out, cat(
		[]byte{opDial, 3<<2 | 2<<5, opAdvance, 0}, // SO_RCVBUF 9000, SO_SNDBUF 6000
		[]byte{opSegment, 0, byte(wire.SYN | wire.ACK), 0, 0, 0xff, 0xff, 0, 0},
		[]byte{opWrite, 0, 40, opAdvance, 0x01},
		[]byte{opICMP, 0, 0, 0x02, 0x40},
		[]byte{opICMP, 0, 1},
		[]byte{opCloseWrite, 0},
		seg(wire.ACK|wire.FIN, 0),
		[]byte{opAdvance, 0xff},
	))
	out = append(out, cat(handshake,
		// 180 octets cut at 24, 48, 72, 96; all sent, last first.
		[]byte{opFragments, 0, byte(wire.ACK | wire.PSH), 0, 0, 0xff, 0xff, 0, 20, 2, 2, 2, 2, 0, 0, 1, 0, 1},
		// The next 180 cut at 32, 64, 96, 128; the second left out.
		[]byte{opFragments, 0, byte(wire.ACK | wire.PSH), 0, 0, 0xff, 0xff, 0, 20, 3, 3, 3, 3, 0, 0, 2, 0x02, 0},
		[]byte{opRead, 0, 100},
		seg(wire.RST, 0),
		[]byte{opRead, 0, 1, opAbort, 0},
	))
	var flood []byte
	for i := range 12 {
		flood = append(flood, opSYN, byte(i), 0, 0, byte(i), 0, 0xff, 0xff, 0)
	}
	out = append(out, cat(
		[]byte{opSYN, 16, 0, 0, 0, 100, 0xff, 0xff, 0x07, 0x05, 0xa0, 7}, // over IPv6
		seg(wire.ACK, 0),
		[]byte{opAccept, opWrite, 0, 40},
		[]byte{opICMP, 0, 0, 0x05, 0x00}, // packet too big, MTU 1280
		[]byte{opFragments, 0, byte(wire.ACK | wire.PSH), 0, 0, 0xff, 0xff, 0, 20, 2, 2, 2, 2, 0, 0, 1, 0, 1},
		[]byte{opRead, 0, 100, opClose, 0},
	))
	out = append(out, cat(flood, []byte{opAdvance, 0x02, opRandom, 1, 1, 2, 3, 4, 5, 6, 7, 8, 0, 16, 0x12, 0, 0}))
	// Unread data past the memory limit, then a large Write over it,
	// then reading and acknowledging: pressure, drops, and the way out.
	over := cat(handshake)
	for range 40 {
		over = append(over, seg(wire.ACK|wire.PSH, 176)...)
	}
	over = append(over, opWrite, 0, 255, opWrite, 0, 255)
	for range 8 {
		over = append(over, opRead, 0, 255)
	}
	over = append(over, opAdvance, 0x0a)
	over = append(over, seg(wire.ACK, 0)...)
	over = append(over, opAdvance, 0x0e, opWrite, 0, 255)
	out = append(out, over)
	return out
}

// TestFuzzStackSeeds checks that the seeds do what they are meant to (go
// test runs them as FuzzStack's corpus too): open passively, open
// actively, reassemble fragments and take ICMP errors (IPv4, then IPv6),
// fill the queues, reach the memory limit.
func TestFuzzStackSeeds(t *testing.T) {
	seeds := fuzzStackSeeds()
	for i, check := range []func(c Counters) bool{
		func(c Counters) bool { return c.TCP.PassiveOpens >= 1 && c.TCP.InSegs >= 5 },
		func(c Counters) bool { return c.TCP.ActiveOpens >= 1 && c.ICMP.InErrorsMatched >= 1 },
		func(c Counters) bool { return c.TCP.PassiveOpens >= 1 && c.IP.ReasmOKs >= 1 },
		func(c Counters) bool {
			return c.TCP.PassiveOpens >= 1 && c.IP.ReasmOKs >= 1 && c.ICMP.InPktTooBigs >= 1
		},
		func(c Counters) bool { return c.TCP.SyncookiesSent+c.TCP.ListenDrops+c.TCP.ListenOverflows >= 1 },
		func(c Counters) bool { return c.TCP.TCPMemoryPressures >= 1 },
	} {
		synctest.Test(t, func(t *testing.T) {
			c := runStackProgram(t, seeds[i])
			if !check(c) {
				t.Errorf("seed %d did not do what it is for: TCP %+v IP %+v ICMP %+v", i, c.TCP, c.IP, c.ICMP)
			}
		})
	}
}

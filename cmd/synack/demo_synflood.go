package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/synack/synack/link"
	"github.com/synack/synack/link/memlink"
	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/stack"
	"github.com/synack/synack/stacktest"
	"github.com/synack/synack/tcp"
	"github.com/synack/synack/wire"
)

func init() {
	scenarios = append(scenarios, scenario{
		"syn-flood",
		"spoofed SYNs fill the server's SYN queue, SYN cookies take over, a real client still connects",
		demoSynFlood,
	})
}

// The flood of the syn-flood scenario: floodSYNs spoofed SYNs in batches
// of floodBatch, floodGap apart, from addresses in floodNet, at a server
// whose SYN queue holds floodBacklog.
const (
	floodSYNs    = 300
	floodBatch   = 100
	floodGap     = 50 * time.Millisecond
	floodBacklog = 64
)

var (
	floodNet    = netip.MustParsePrefix("198.19.0.0/16") // inside 198.18.0.0/15
	attackerHop = netip.MustParseAddr("198.18.1.2")      // the server's end of the attacker's link
)

// demoSynFlood runs on a network of its own: the client and the server on
// a pipe as in the other scenarios (10 ms each way, no loss), and a second
// link into the server through which an attacker injects raw SYNs with
// spoofed source addresses; the server's answers to them go back down that
// link and are lost. The server's SYN queue is small (64) so the flood
// fills it at once. The ladder shows the client's connection in full and
// the flood in summary: a line per 100 spoofed SYNs, and the counters.
func demoSynFlood(d *demo) error {
	v := d.v
	fl := &floodView{out: d.out}
	tenMs := memlink.Impairments{Delay: 10 * time.Millisecond}
	w, err := stacktest.New(
		stacktest.WithClock(v),
		stacktest.WithImpairments(tenMs, tenMs),
		stacktest.WithStacks(
			stack.Options{Trace: d.out.trace},
			stack.Options{Trace: fl.trace, SynBacklog: floodBacklog, SynCookies: stack.SynCookiesAuto}),
		stacktest.IPv4Only())
	if err != nil {
		return err
	}
	client, server := w.A, w.B
	defer w.Close()
	atk, srvAtk := memlink.Pipe(memlink.Config{Clock: v, Seed: 2,
		AB: memlink.Impairments{Delay: time.Millisecond, QueueLimit: floodSYNs}, BA: memlink.Impairments{Delay: time.Millisecond}})
	atk.Attach(link.DispatcherFunc(func([]byte) {})) // the SYN,ACKs to spoofed addresses: nobody there
	nic, err := server.AddLink(srvAtk, netip.PrefixFrom(attackerHop, 24))
	if err != nil {
		return err
	}
	if err := server.AddRoute(floodNet, netip.Addr{}, nic); err != nil {
		return err
	}
	ln, err := server.ListenTCP(netip.AddrPortFrom(serverAddr, 80), 16)
	if err != nil {
		return err
	}
	defer ln.Close()
	d.note("server", "listens on :80; SYN queue %d, SYN cookies auto (only while the SYN queue is full)", floodBacklog)

	done := newOutcome[struct{}](d)
	v.Go(func() {
		c, err := ln.AcceptTCP()
		if err != nil {
			done.set(struct{}{}, err)
			return
		}
		done.set(struct{}{}, func() error {
			buf := make([]byte, 64)
			n, err := c.Read(buf)
			if err != nil {
				return err
			}
			d.note("server", "accepted %v, read %q, answers and closes", c.RemoteAddr(), buf[:n])
			if _, err := c.Write([]byte("200 OK")); err != nil {
				return err
			}
			if _, err := c.Read(buf); err != io.EOF {
				return fmt.Errorf("server wanted EOF, got %v", err)
			}
			return c.Close()
		}())
	})

	v.Go(func() { flood(d, atk) })
	v.Sleep(floodGap + 10*time.Millisecond)
	d.note("client", "connects to %v while the flood goes on", netip.AddrPortFrom(serverAddr, 80))
	c, err := client.DialTCP(d.ctx, netip.AddrPortFrom(serverAddr, 80))
	if err != nil {
		return fmt.Errorf("the real client could not connect through the flood: %w", err)
	}
	if _, err := c.Write([]byte("GET /")); err != nil {
		return err
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	d.note("client", "read %q, calls Close", buf[:n])
	c.Close()
	if _, err := done.wait(); err != nil {
		return err
	}
	d.waitTimeWait()

	cs := server.Counters().TCP
	for _, li := range server.Listeners() {
		fl.aside(v.Now(), fmt.Sprintf("server listener %v: SYN queue %d now, peak %d of %d; accept queue peak %d of %d",
			li.Addr, li.SynQueue, li.SynQueueMax, li.SynBacklog, li.AcceptQueueMax, li.Backlog))
	}
	fl.aside(v.Now(), fmt.Sprintf("server counters: PassiveOpens %d SyncookiesSent %d SyncookiesRecv %d SyncookiesFailed %d ListenOverflows %d ListenDrops %d RetransSegs %d",
		cs.PassiveOpens, cs.SyncookiesSent, cs.SyncookiesRecv, cs.SyncookiesFailed, cs.ListenOverflows, cs.ListenDrops, cs.RetransSegs))
	if cs.SyncookiesRecv != 1 {
		return fmt.Errorf("the client's connection did not come from a SYN cookie (SyncookiesRecv %d)", cs.SyncookiesRecv)
	}
	return nil
}

// flood injects the spoofed SYNs into the attacker's link.
func flood(d *demo, ep *memlink.Endpoint) {
	rng := rand.New(rand.NewPCG(7, 7))
	dst := netip.AddrPortFrom(serverAddr, 80)
	base := floodNet.Addr().As4()
	for sent := 0; sent < floodSYNs; sent += floodBatch {
		batch := make([][]byte, floodBatch)
		for i := range batch {
			src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{base[0], base[1], byte(rng.Uint32()), byte(rng.Uint32())}), uint16(1024+rng.IntN(60000)))
			batch[i] = spoofedSYN(src, dst, rng.Uint32())
		}
		ep.WritePackets(batch)
		d.v.Sleep(floodGap)
	}
}

// spoofedSYN is a bare IPv4 SYN from src to dst, as hping3 -S sends.
func spoofedSYN(src, dst netip.AddrPort, seq uint32) []byte {
	h := wire.TCPHeader{
		SrcPort: src.Port(), DstPort: dst.Port(), Seq: seqnum.Value(seq), Flags: wire.SYN, Window: 512,
		Options: wire.TCPOptions{HasMSS: true, MSS: 1460},
	}
	seg := wire.AppendTCP(nil, &h, nil, src.Addr(), dst.Addr())
	b := wire.AppendIPv4(nil, &wire.IPv4Header{TTL: 64, Protocol: wire.ProtocolTCP, Src: src.Addr(), Dst: dst.Addr()}, len(seg))
	return append(b, seg...)
}

// floodView is the server's trace: everything about the real client goes
// to the ladder, the flood is summed up.
type floodView struct {
	out                            *view
	syns, queued, cookies, dropped int
	announcedFull                  bool
}

func (f *floodView) trace(ev stack.TraceEvent) {
	r := ev.Tuple.Remote.Addr()
	if !r.IsValid() || r == clientAddr {
		if r.IsValid() && ev.Kind == stack.TraceReceived && ev.To == tcp.Listen && ev.Segment.Flags == wire.SYN {
			f.aside(ev.Time, "server: the SYN queue is full, so its SYN,ACK carries a SYN cookie as ISS and it keeps nothing")
		}
		f.out.trace(ev)
		return
	}
	// Called under the server's lock: count, never call the stack.
	if ev.Kind != stack.TraceReceived || ev.Segment.Flags&(wire.SYN|wire.ACK) != wire.SYN {
		return
	}
	f.syns++
	switch ev.To {
	case tcp.SynReceived:
		f.queued++
	case tcp.Listen:
		f.cookies++
		if !f.announcedFull {
			f.announcedFull = true
			f.aside(ev.Time, fmt.Sprintf("server: SYN queue full (%d of %d half-open): answering SYNs with SYN cookies, keeping no state", f.queued, floodBacklog))
		}
	default:
		f.dropped++
	}
	if f.syns%100 == 0 {
		f.aside(ev.Time, fmt.Sprintf("attacker: %d spoofed SYNs from %v so far: %d took the SYN queue, %d answered with a cookie, %d dropped",
			f.syns, floodNet, f.queued, f.cookies, f.dropped))
	}
}

// aside prints a line about the flood.
func (f *floodView) aside(at time.Time, text string) { f.out.aside(at, text) }

package stack

import (
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/synack/synack/link"
	"github.com/synack/synack/link/memlink"
	"github.com/synack/synack/tcp"
	"github.com/synack/synack/wire"
)

// rawPeer is the far end of a link to one stack, driven packet by packet.
type rawPeer struct {
	t   *testing.T
	s   *Stack
	ep  *memlink.Endpoint
	got chan []byte
}

func newRawPeer(t *testing.T) *rawPeer { return newRawPeerOpts(t, Options{}) }

// newRawPeerOpts is newRawPeer with the stack made from opts (its Rand
// set here).
func newRawPeerOpts(t *testing.T, opts Options) *rawPeer {
	return newRawPeerLink(t, opts, memlink.Config{})
}

// newRawPeerLink is newRawPeerOpts over a link made from lc.
func newRawPeerLink(t *testing.T, opts Options, lc memlink.Config) *rawPeer {
	ea, eb := memlink.Pipe(lc)
	r := &rawPeer{t: t, ep: eb, got: make(chan []byte, 100)}
	opts.Rand = newSeeded(3)
	r.s = New(opts)
	if _, err := r.s.AddLink(ea, netip.PrefixFrom(addrA, 24), netip.PrefixFrom(addrA6, 64)); err != nil {
		t.Fatal(err)
	}
	eb.Attach(link.DispatcherFunc(func(pkt []byte) { r.got <- append([]byte(nil), pkt...) }))
	t.Cleanup(func() {
		r.s.Close()
		eb.Close()
	})
	return r
}

func (r *rawPeer) send(pkt []byte) {
	r.t.Helper()
	if _, err := r.ep.WritePackets([][]byte{pkt}); err != nil {
		r.t.Fatal(err)
	}
}

// recv returns the next packet the stack sent, parsed; nil if none.
func (r *rawPeer) recv() *wire.IPPacket {
	r.t.Helper()
	synctest.Wait()
	select {
	case b := <-r.got:
		p, err := wire.ParseIP(b)
		if err != nil {
			r.t.Fatalf("stack sent a bad packet: %v", err)
		}
		return &p
	default:
		return nil
	}
}

func ipPacket(src, dst netip.Addr, proto uint8, payload []byte) []byte {
	var b []byte
	if src.Is4() {
		b = wire.AppendIPv4(nil, &wire.IPv4Header{TTL: 64, Protocol: proto, Src: src, Dst: dst}, len(payload))
	} else {
		b = wire.AppendIPv6(nil, &wire.IPv6Header{NextHeader: proto, HopLimit: 64, Src: src, Dst: dst}, len(payload))
	}
	return append(b, payload...)
}

func tcpPacket(src, dst netip.AddrPort, h wire.TCPHeader, payload []byte) []byte {
	h.SrcPort, h.DstPort = src.Port(), dst.Port()
	seg := wire.AppendTCP(nil, &h, payload, src.Addr(), dst.Addr())
	return ipPacket(src.Addr(), dst.Addr(), wire.ProtocolTCP, seg)
}

// An ICMP port unreachable quoting our SYN fails the dial with
// ECONNREFUSED.
func TestICMPUnreachableRefuses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRawPeer(t)
		errc := make(chan error, 1)
		go func() {
			_, err := r.s.DialTCP(context.Background(), netip.AddrPortFrom(addrB, 80))
			errc <- err
		}()
		p := r.recv()
		if p == nil {
			t.Fatal("no SYN")
		}
		// Quote the SYN's IP header and first 8 bytes, as RFC 792 says.
		orig := ipPacket(p.Src, p.Dst, wire.ProtocolTCP, p.Payload[:8])
		m := wire.NewICMPv4Unreachable(wire.ICMPv4PortUnreachable, orig)
		// A quote with a sequence number not in flight is ignored.
		bad := append([]byte(nil), orig...)
		bad[wire.IPv4MinHeaderLen+4] ^= 0x80
		mb := wire.NewICMPv4Unreachable(wire.ICMPv4PortUnreachable, bad)
		r.send(ipPacket(addrB, addrA, wire.ProtocolICMP, wire.AppendICMPv4(nil, &mb)))
		synctest.Wait()
		// Nor is one quoting SND.NXT (ISS+1 in SYN-SENT): RFC 5927
		// section 4.1 wants SND.UNA <= SEG.SEQ < SND.NXT.
		next := append([]byte(nil), orig...)
		seq := binary.BigEndian.Uint32(next[wire.IPv4MinHeaderLen+4:])
		binary.BigEndian.PutUint32(next[wire.IPv4MinHeaderLen+4:], seq+1)
		mn := wire.NewICMPv4Unreachable(wire.ICMPv4PortUnreachable, next)
		r.send(ipPacket(addrB, addrA, wire.ProtocolICMP, wire.AppendICMPv4(nil, &mn)))
		synctest.Wait()
		select {
		case err := <-errc:
			t.Fatalf("forged ICMP error ended the dial: %v", err)
		default:
		}
		r.send(ipPacket(addrB, addrA, wire.ProtocolICMP, wire.AppendICMPv4(nil, &m)))
		select {
		case err := <-errc:
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("dial: %v, want ECONNREFUSED", err)
			}
		case <-time.After(500 * time.Millisecond):
			t.Fatal("dial still waiting after ICMP port unreachable")
		}
		if c := r.s.Counters().ICMP; c.InDestUnreachs != 3 || c.InErrorsMatched != 1 {
			t.Errorf("InDestUnreachs %d InErrorsMatched %d, want 3 1", c.InDestUnreachs, c.InErrorsMatched)
		}
	})
}

// handshake answers the stack's SYN (dialed in the background) as a
// server at addrB:80 would, and returns the dial's result channel.
func (r *rawPeer) handshake(mss uint16) (conn chan *TCPConn) {
	r.t.Helper()
	conn = make(chan *TCPConn, 1)
	go func() {
		c, err := r.s.DialTCP(context.Background(), netip.AddrPortFrom(addrB, 80))
		if err != nil {
			r.t.Errorf("dial: %v", err)
		}
		conn <- c
	}()
	p := r.recv()
	h, _, err := wire.ParseTCP(p.Payload, p.Src, p.Dst, true)
	if err != nil || h.Flags != wire.SYN {
		r.t.Fatalf("want a SYN, got %v %v", h, err)
	}
	local := netip.AddrPortFrom(p.Src, h.SrcPort)
	const iss = 5000
	r.send(tcpPacket(netip.AddrPortFrom(addrB, 80), local, wire.TCPHeader{
		Seq: iss, Ack: h.Seq + 1, Flags: wire.SYN | wire.ACK, Window: 65535,
		Options: wire.TCPOptions{HasMSS: true, MSS: mss},
	}, nil))
	if p := r.recv(); p == nil {
		r.t.Fatal("no ACK of the SYN,ACK")
	}
	return conn
}

func TestICMPPacketTooBig(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRawPeer(t)
		conn := r.handshake(1460)
		c := <-conn
		c.Write(make([]byte, 3000))
		p := r.recv()
		if p == nil || len(p.Payload) != 20+1460 {
			t.Fatalf("want a full-sized segment first, got %v", p)
		}
		r.recv() // the second one
		// "Fragmentation needed" for the first one, next-hop MTU 1000.
		orig := ipPacket(p.Src, p.Dst, wire.ProtocolTCP, p.Payload[:8])
		m := wire.NewICMPv4FragNeeded(1000, orig)
		r.send(ipPacket(addrB, addrA, wire.ProtocolICMP, wire.AppendICMPv4(nil, &m)))
		p = r.recv()
		if p == nil {
			t.Fatal("nothing resent after packet too big")
		}
		if n := 20 + len(p.Payload); n > 1000 {
			t.Errorf("resent a %d-byte packet after an MTU of 1000", n)
		}
		if c := r.s.Counters().ICMP; c.InPktTooBigs != 1 || c.InErrorsMatched != 1 {
			t.Errorf("InPktTooBigs %d InErrorsMatched %d, want 1 1", c.InPktTooBigs, c.InErrorsMatched)
		}
	})
}

// A soft ICMP error (host unreachable) during the connect is what the
// dial reports when it times out, as on Linux.
func TestICMPSoftError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRawPeer(t)
		r.s.Close()
		r.s = New(Options{Rand: newSeeded(4), TCP: tcp.Config{SynRetries: 1}})
		ea, eb := memlink.Pipe(memlink.Config{})
		r.ep = eb
		r.s.AddLink(ea, netip.PrefixFrom(addrA, 24))
		eb.Attach(link.DispatcherFunc(func(pkt []byte) { r.got <- append([]byte(nil), pkt...) }))
		errc := make(chan error, 1)
		go func() {
			_, err := r.s.DialTCP(context.Background(), netip.AddrPortFrom(addrB, 80))
			errc <- err
		}()
		p := r.recv()
		orig := ipPacket(p.Src, p.Dst, wire.ProtocolTCP, p.Payload[:8])
		m := wire.NewICMPv4Unreachable(wire.ICMPv4HostUnreachable, orig)
		r.send(ipPacket(addrB, addrA, wire.ProtocolICMP, wire.AppendICMPv4(nil, &m)))
		if err := <-errc; !errors.Is(err, syscall.EHOSTUNREACH) {
			t.Errorf("dial: %v, want EHOSTUNREACH", err)
		}
		eb.Close()
	})
}

// A peer whose MSS is larger than our link's MTU allows gets segments
// that fit the link.
func TestMSSClampedToLink(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRawPeer(t)
		conn := r.handshake(9000)
		c := <-conn
		c.Write(make([]byte, 5000))
		p := r.recv()
		if p == nil {
			t.Fatal("no data")
		}
		if n := 20 + len(p.Payload); n > 1500 {
			t.Errorf("sent a %d-byte packet on a 1500-byte link", n)
		}
		if d := r.s.Counters().IP.OutDiscards; d != 0 {
			t.Errorf("OutDiscards %d", d)
		}
	})
}

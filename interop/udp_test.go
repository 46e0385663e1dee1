//go:build linux

package interop

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"
)

// udpNetwork is "udp4" or "udp6".
func (f family) udpNetwork() string { return "udp" + f.network()[3:] }

// udpPayloads are the sizes exchanged: empty, small, the largest one
// packet of the 1500-byte link carries and, over IPv4, datagrams that
// synack and the kernel send in fragments (synack does not fragment over
// IPv6).
func (f family) udpPayloads() [][]byte {
	sizes := []int{0, 1, 100, 1500 - 20 - 8, 1500 - 20 - 8 + 1, 4000, 65507}
	if !f.stack.Is4() {
		sizes = []int{0, 1, 100, 1500 - 40 - 8}
	}
	var out [][]byte
	for _, n := range sizes {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*7 + n)
		}
		out = append(out, b)
	}
	return out
}

// echoUDP sends each payload on c and checks the same comes back.
func echoUDP(t *testing.T, c net.Conn, payloads [][]byte) {
	t.Helper()
	buf := make([]byte, 65536)
	for _, p := range payloads {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(p); err != nil {
			t.Fatalf("write %d bytes: %v", len(p), err)
		}
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("read the echo of %d bytes: %v", len(p), err)
		}
		if !bytes.Equal(buf[:n], p) {
			t.Fatalf("echo of %d bytes came back as %d different ones", len(p), n)
		}
	}
}

// servePackets echoes what pc receives until it is closed.
func servePackets(pc net.PacketConn) {
	buf := make([]byte, 65536)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if _, err := pc.WriteTo(buf[:n], from); err != nil {
			return
		}
	}
}

// TestUDP: the kernel's UDP and synack's exchange datagrams both ways,
// from connected sockets to unconnected ones, IPv4 and IPv6, and a
// datagram to a closed port makes the sender's next Read fail with
// ECONNREFUSED on either side.
func TestUDP(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.name+"/synack-dials-kernel", func(t *testing.T) {
			e := newEnv(t, fam)
			pc, err := e.ns.ListenPacket(fam.udpNetwork(), fam.kernelAddr(0).String())
			if err != nil {
				t.Fatalf("kernel ListenUDP: %v", err)
			}
			defer pc.Close()
			go servePackets(pc)
			to := pc.LocalAddr().(*net.UDPAddr).AddrPort()
			c, err := e.s.DialUDP(fam.udpNetwork(), netip.AddrPort{}, netip.AddrPortFrom(fam.host.Addr(), to.Port()))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			echoUDP(t, c, fam.udpPayloads())
			if u := e.s.Counters().UDP; u.InErrors != 0 || u.InDatagrams != uint64(len(fam.udpPayloads())) {
				t.Errorf("synack counters %+v", u)
			}
		})
		t.Run(fam.name+"/kernel-dials-synack", func(t *testing.T) {
			e := newEnv(t, fam)
			u, err := e.s.ListenUDP(fam.udpNetwork(), fam.stackAddr(7))
			if err != nil {
				t.Fatal(err)
			}
			defer u.Close()
			go servePackets(u)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := e.ns.DialContext(ctx, fam.udpNetwork(), fam.stackAddr(7).String())
			if err != nil {
				t.Fatalf("kernel DialUDP: %v", err)
			}
			defer c.Close()
			echoUDP(t, c, fam.udpPayloads())
		})
		t.Run(fam.name+"/kernel-refused", func(t *testing.T) {
			e := newEnv(t, fam)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := e.ns.DialContext(ctx, fam.udpNetwork(), fam.stackAddr(9).String())
			if err != nil {
				t.Fatalf("kernel DialUDP: %v", err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write([]byte("anyone?")); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Read(make([]byte, 10)); !errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatalf("kernel Read after a datagram to a closed synack port: %v, want ECONNREFUSED", err)
			}
			if c := e.s.Counters(); c.UDP.NoPorts != 1 || c.ICMP.OutDestUnreachs != 1 {
				t.Errorf("synack NoPorts %d OutDestUnreachs %d, want 1 1", c.UDP.NoPorts, c.ICMP.OutDestUnreachs)
			}
		})
		t.Run(fam.name+"/synack-refused", func(t *testing.T) {
			e := newEnv(t, fam)
			c, err := e.s.DialUDP(fam.udpNetwork(), netip.AddrPort{}, fam.kernelAddr(9))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write([]byte("anyone?")); err != nil {
				t.Fatal(err)
			}
			_, err = c.Read(make([]byte, 10))
			var oe *net.OpError
			if !errors.Is(err, syscall.ECONNREFUSED) || !errors.As(err, &oe) {
				t.Fatalf("synack Read after a datagram to a closed kernel port: %v, want a *net.OpError wrapping ECONNREFUSED", err)
			}
		})
	}
}

package netstack

import (
	"context"
	"io"
	"net"
	"net/netip"
	"testing"

	gvnetstack "golang.zx2c4.com/wireguard/tun/netstack"
)

// The benchmarks run one WireGuard tunnel per case: the local side on
// synack (this package) or on wireguard-go's gVisor netstack, the peer
// always on gVisor's, so the two cases differ only in the local stack.
// They measure, through the tunnel, the local side sending (upload) and
// receiving (download) on one TCP connection, and dialling short
// connections (connect: dial, one byte each way, close). Run:
//
//	cd contrib/wireguard && go test -run '^$' -bench Tunnel -benchtime 3s -count 3 ./netstack
//
// Speed is never asserted; BENCHMARKS.md has the figures.

// localSide makes the local stack of a benchmark's tunnel, holding
// syAddr4 and syAddr6, and returns its DialContext.
type localSide func(b *testing.B) (dial func(ctx context.Context, network, address string) (net.Conn, error), peer *gvnetstack.Net, sy *Net)

var localSides = []struct {
	name string
	make localSide
}{
	{"synack", func(b *testing.B) (func(context.Context, string, string) (net.Conn, error), *gvnetstack.Net, *Net) {
		t, n, err := CreateNetTUN([]netip.Addr{syAddr4, syAddr6}, nil, 1420)
		if err != nil {
			b.Fatal(err)
		}
		return n.DialContext, peerWith(b, t, 0), n
	}},
	{"gvisor", func(b *testing.B) (func(context.Context, string, string) (net.Conn, error), *gvnetstack.Net, *Net) {
		t, n, err := gvnetstack.CreateNetTUN([]netip.Addr{syAddr4, syAddr6}, nil, 1420)
		if err != nil {
			b.Fatal(err)
		}
		return n.DialContext, peerWith(b, t, 0), nil
	}},
}

const benchChunk = 1 << 20

// BenchmarkTunnel: bytes/s each way and connections/s through the same
// kind of tunnel, synack on the local side against gVisor there.
func BenchmarkTunnel(b *testing.B) {
	for _, side := range localSides {
		b.Run(side.name, func(b *testing.B) {
			dial, peerNet, sy := side.make(b)
			discard, err := peerNet.ListenTCPAddrPort(netip.AddrPortFrom(gvAddr4, 9))
			if err != nil {
				b.Fatal(err)
			}
			defer discard.Close()
			go acceptLoop(discard, func(c net.Conn) { io.Copy(io.Discard, c) })
			source, err := peerNet.ListenTCPAddrPort(netip.AddrPortFrom(gvAddr4, 19))
			if err != nil {
				b.Fatal(err)
			}
			defer source.Close()
			go acceptLoop(source, func(c net.Conn) {
				buf := make([]byte, 64<<10)
				for {
					if _, err := c.Write(buf); err != nil {
						return
					}
				}
			})
			echo, err := peerNet.ListenTCPAddrPort(netip.AddrPortFrom(gvAddr4, 7))
			if err != nil {
				b.Fatal(err)
			}
			defer echo.Close()
			go acceptLoop(echo, func(c net.Conn) { io.Copy(c, c) })
			ctx := context.Background()

			b.Run("upload", func(b *testing.B) {
				c, err := dial(ctx, "tcp", netip.AddrPortFrom(gvAddr4, 9).String())
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				buf := make([]byte, benchChunk)
				b.SetBytes(benchChunk)
				defer reportLoss(b, sy)()
				for b.Loop() {
					if _, err := c.Write(buf); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("download", func(b *testing.B) {
				c, err := dial(ctx, "tcp", netip.AddrPortFrom(gvAddr4, 19).String())
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				buf := make([]byte, benchChunk)
				b.SetBytes(benchChunk)
				defer reportLoss(b, sy)()
				for b.Loop() {
					if _, err := io.ReadFull(c, buf); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("connect", func(b *testing.B) {
				one := []byte{1}
				for b.Loop() {
					c, err := dial(ctx, "tcp", netip.AddrPortFrom(gvAddr4, 7).String())
					if err != nil {
						b.Fatal(err)
					}
					if _, err := c.Write(one); err != nil {
						b.Fatal(err)
					}
					if _, err := io.ReadFull(c, one); err != nil {
						b.Fatal(err)
					}
					c.Close()
				}
			})
		})
	}
}

func acceptLoop(l net.Listener, serve func(net.Conn)) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			serve(c)
		}()
	}
}

// reportLoss reports, for synack's side, the segments it retransmitted
// and the packets its device refused (queue full) per op, from now to
// the call of the function it returns.
func reportLoss(b *testing.B, sy *Net) func() {
	if sy == nil {
		return func() {}
	}
	c0, d0 := sy.Stack().Counters(), sy.dev.dropped()
	return func() {
		c1, d1 := sy.Stack().Counters(), sy.dev.dropped()
		b.ReportMetric(float64(c1.TCP.RetransSegs-c0.TCP.RetransSegs)/float64(b.N), "retrans/op")
		b.ReportMetric(float64(d1-d0)/float64(b.N), "devdrops/op")
	}
}

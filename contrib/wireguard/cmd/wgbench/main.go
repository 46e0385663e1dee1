// Command wgbench measures TCP through a WireGuard tunnel with synack on
// the local side (contrib/wireguard/netstack) against wireguard-go's
// gVisor netstack there, the peer being gVisor's netstack in both cases.
// The two tunnels are built once and measured in alternating rounds, so
// both see the same machine; it prints each round and the medians, with
// synack's figure as a ratio of gVisor's.
//
//	cd contrib/wireguard && go run ./cmd/wgbench -rounds 5 -mib 32 -conns 300
//
// upload: the local side sends -mib MiB on one connection, timed until
// the peer has read all of it; download: the peer sends -mib MiB, timed
// until the local side has read all of it; connect: -conns connections
// one after another, each dial, one byte each way, close. For each synack
// download it also prints the TCP segments synack's stack received and
// sent meanwhile: nearly all it sent are ACKs, each one encrypted and
// decrypted by WireGuard.
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/synack/synack/contrib/wireguard/internal/wgpair"
	"github.com/synack/synack/contrib/wireguard/netstack"
	"github.com/synack/synack/stack"
	"golang.zx2c4.com/wireguard/tun"
	gvnetstack "golang.zx2c4.com/wireguard/tun/netstack"
)

type dialFunc func(ctx context.Context, network, address string) (net.Conn, error)

type side struct {
	name string
	dial dialFunc
	// per metric, one figure per round
	up, down, conns []float64
}

func main() {
	rounds := flag.Int("rounds", 5, "rounds, each measuring both sides")
	mib := flag.Int("mib", 32, "MiB per upload and per download")
	conns := flag.Int("conns", 300, "connections per connect measurement")
	var opts stack.Options
	flag.IntVar(&opts.TCP.ReceiveBufferSize, "synack-rcvbuf", 0, "synack's receive buffer bound in bytes (0: the package's default)")
	flag.IntVar(&opts.TCP.SendBufferSize, "synack-sndbuf", 0, "synack's send buffer bound in bytes (0: the package's default)")
	flag.BoolVar(&opts.TCP.NoAutoTune, "synack-noautotune", false, "synack advertises its whole receive buffer from the start")
	flag.Parse()
	log.SetFlags(0)

	syTun, syNet, err := netstack.CreateNetTUNWithOptions([]netip.Addr{wgpair.Local4, wgpair.Local6}, nil, wgpair.MTU, opts)
	if err != nil {
		log.Fatal(err)
	}
	gvTun, gvNet, err := gvnetstack.CreateNetTUN([]netip.Addr{wgpair.Local4, wgpair.Local6}, nil, wgpair.MTU)
	if err != nil {
		log.Fatal(err)
	}
	sides := []*side{{name: "synack", dial: syNet.DialContext}, {name: "gvisor", dial: gvNet.DialContext}}
	for _, local := range []tun.Device{syTun, gvTun} {
		peer, closeBoth, err := wgpair.Pair(local, wgpair.MTU)
		if err != nil {
			log.Fatal(err)
		}
		defer closeBoth()
		if err := serve(peer); err != nil {
			log.Fatal(err)
		}
	}

	n := int64(*mib) << 20
	fmt.Printf("# %d rounds; upload and download %d MiB on one connection, connect = %d sequential connections\n", *rounds, *mib, *conns)
	fmt.Printf("%-6s %-7s %12s %12s %12s\n", "round", "local", "upload MB/s", "download MB/s", "conns/s")
	for r := range *rounds {
		order := sides
		if r%2 == 1 {
			order = []*side{sides[1], sides[0]}
		}
		for _, s := range order {
			up, err := upload(s.dial, n)
			if err != nil {
				log.Fatalf("%s upload: %v", s.name, err)
			}
			c0 := syNet.Stack().Counters().TCP
			down, err := download(s.dial, n)
			if err != nil {
				log.Fatalf("%s download: %v", s.name, err)
			}
			if s.name == "synack" {
				c1 := syNet.Stack().Counters().TCP
				fmt.Printf("#   synack download: %d segments in, %d out (%.1f in per out)\n", c1.InSegs-c0.InSegs, c1.OutSegs-c0.OutSegs, float64(c1.InSegs-c0.InSegs)/float64(c1.OutSegs-c0.OutSegs))
			}
			cps, err := connect(s.dial, *conns)
			if err != nil {
				log.Fatalf("%s connect: %v", s.name, err)
			}
			s.up, s.down, s.conns = append(s.up, up), append(s.down, down), append(s.conns, cps)
			fmt.Printf("%-6d %-7s %12.1f %12.1f %12.0f\n", r+1, s.name, up, down, cps)
		}
	}
	sy, gv := sides[0], sides[1]
	fmt.Printf("\n| metric | synack local (median) | gVisor local (median) | synack / gVisor (median of per-round ratios) |\n|---|---|---|---|\n")
	for _, m := range []struct {
		name   string
		sy, gv []float64
		unit   string
	}{
		{"upload", sy.up, gv.up, "MB/s"},
		{"download", sy.down, gv.down, "MB/s"},
		{"connect", sy.conns, gv.conns, "conns/s"},
	} {
		ratios := make([]float64, len(m.sy))
		for i := range m.sy {
			ratios[i] = m.sy[i] / m.gv[i]
		}
		fmt.Printf("| %s | %.1f %s | %.1f %s | %.2f |\n", m.name, median(m.sy), m.unit, median(m.gv), m.unit, median(ratios))
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// serve starts, on the peer: port 9 reads to EOF then answers one byte
// (the end of an upload); port 19 reads an 8-byte count and sends that
// many bytes then closes (a download); port 7 echoes.
func serve(peer *gvnetstack.Net) error {
	for port, h := range map[uint16]func(net.Conn){
		9: func(c net.Conn) {
			if _, err := io.Copy(io.Discard, c); err == nil {
				c.Write([]byte{1})
			}
		},
		19: func(c net.Conn) {
			var b [8]byte
			if _, err := io.ReadFull(c, b[:]); err != nil {
				return
			}
			buf := make([]byte, 64<<10)
			for left := int64(binary.BigEndian.Uint64(b[:])); left > 0; {
				k := min(left, int64(len(buf)))
				if _, err := c.Write(buf[:k]); err != nil {
					return
				}
				left -= k
			}
		},
		7: func(c net.Conn) { io.Copy(c, c) },
	} {
		l, err := peer.ListenTCPAddrPort(netip.AddrPortFrom(wgpair.Peer4, port))
		if err != nil {
			return err
		}
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					h(c)
				}()
			}
		}()
	}
	return nil
}

func addr(port uint16) string { return netip.AddrPortFrom(wgpair.Peer4, port).String() }

func upload(dial dialFunc, n int64) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	c, err := dial(ctx, "tcp", addr(9))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	buf := make([]byte, 256<<10)
	for left := n; left > 0; {
		k := min(left, int64(len(buf)))
		if _, err := c.Write(buf[:k]); err != nil {
			return 0, err
		}
		left -= k
	}
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok {
		return 0, fmt.Errorf("%T has no CloseWrite", c)
	}
	if err := cw.CloseWrite(); err != nil {
		return 0, err
	}
	var one [1]byte
	if _, err := io.ReadFull(c, one[:]); err != nil {
		return 0, err
	}
	return float64(n) / time.Since(start).Seconds() / 1e6, nil
}

func download(dial dialFunc, n int64) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	c, err := dial(ctx, "tcp", addr(19))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if _, err := c.Write(binary.BigEndian.AppendUint64(nil, uint64(n))); err != nil {
		return 0, err
	}
	got, err := io.Copy(io.Discard, c)
	if err != nil {
		return 0, err
	}
	if got != n {
		return 0, fmt.Errorf("read %d bytes, want %d", got, n)
	}
	return float64(n) / time.Since(start).Seconds() / 1e6, nil
}

func connect(dial dialFunc, k int) (float64, error) {
	start := time.Now()
	one := []byte{1}
	for range k {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		c, err := dial(ctx, "tcp", addr(7))
		cancel()
		if err != nil {
			return 0, err
		}
		if _, err := c.Write(one); err != nil {
			return 0, err
		}
		if _, err := io.ReadFull(c, one); err != nil {
			return 0, err
		}
		c.Close()
	}
	return float64(k) / time.Since(start).Seconds(), nil
}

// Command pathrelay is the impaired path of the pathmatrix benchmark on
// its own, for any tool the kernel runs: it makes two network namespaces,
// each with a TUN device (198.18.0.1/24 in the first, 198.18.0.2/24 in the
// second), and relays packets between them through link/memlink with the
// given impairments, both directions, until interrupted. Then it prints
// what happened to the packets and removes everything. Needs root.
//
//	go run ./cmd/pathrelay -rtt 20ms -rate 100M -loss 0.01 &
//	ip netns exec pm-<pid>-2 iperf3 -s -B 198.18.0.2 &
//	ip netns exec pm-<pid>-1 iperf3 -c 198.18.0.2
//
// (this kernel has no netem, so the relay is the way to impair a path
// between two kernels).
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/synack/synack/bench/pathmatrix"
	"github.com/synack/synack/link/memlink"
)

func main() {
	var c pathmatrix.Cell
	flag.DurationVar(&c.RTT, "rtt", 20*time.Millisecond, "round-trip time (each direction delays by half)")
	c.Rate = 100e6
	flag.Func("rate", "rate, each direction, e.g. 100M or 1G (default 100M); the drop-tail queue holds one BDP", func(s string) (err error) {
		c.Rate, err = pathmatrix.ParseRate(s)
		return err
	})
	flag.Float64Var(&c.Loss, "loss", 0, "loss probability, each direction")
	flag.Float64Var(&c.Reorder, "reorder", 0, "probability a packet is held back one more one-way delay")
	flag.Float64Var(&c.Dup, "dup", 0, "duplication probability")
	seed := flag.Int64("seed", 1, "seed of the packets' fates")
	flag.Parse()

	pathmatrix.RemoveStale()
	r, err := pathmatrix.NewRelay(c, *seed)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pathrelay:", err)
		os.Exit(1)
	}
	na, nb := r.Namespaces()
	aa, ab := r.Addrs()
	fmt.Printf("path: rtt %v, rate %d bit/s, queue %d packets, loss %g, reorder %g, dup %g, seed %d\n",
		c.RTT, c.Rate, c.QueuePackets(), c.Loss, c.Reorder, c.Dup, *seed)
	fmt.Printf("namespace %s: %v\nnamespace %s: %v\ninterrupt to stop\n", na, aa, nb, ab)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	<-sig
	sab, sba := r.Stats()
	r.Close()
	pathmatrix.Cleanup()
	for _, d := range []struct {
		name string
		s    memlink.Stats
	}{{na + " -> " + nb, sab}, {nb + " -> " + na, sba}} {
		fmt.Printf("%s: sent %d, delivered %d, lost %d, queue drops %d, reordered %d, duplicated %d\n",
			d.name, d.s.Sent, d.s.Delivered, d.s.DroppedLoss, d.s.DroppedQueue, d.s.Reordered, d.s.Duplicated)
	}
}

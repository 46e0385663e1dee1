// Package pathmatrix measures bulk transfers over a seeded impaired path
// (issue 10, "How it is measured"): synack, gVisor's netstack and the Linux
// kernel, each on the same impairment model — link/memlink's — so that for
// one seed every stack's packets draw their fates (loss, reordering,
// duplication) from the same per-direction random streams.
//
// A [Cell] is one path: a round-trip time, a rate with a drop-tail queue of
// one bandwidth-delay product, and one impairment (loss, reordering or
// duplication), applied in both directions. An [Impl] is what runs at the
// two ends:
//
//   - synack, synack-dupthresh, synack-bbr, synack-newreno: two synack
//     stacks on a memlink pipe, finding losses by RACK-TLP (the default) or
//     by RFC 6675's duplicate threshold alone, with CUBIC (the default),
//     BBR or NewReno;
//   - gvisor-reno, gvisor-cubic: two gVisor stacks whose channel endpoints
//     are spliced to the two ends of a memlink pipe;
//   - linux-cubic, linux-bbr: two network namespaces, a TUN device in each,
//     and a relay in this process moving packets between the TUNs through a
//     memlink pipe (this kernel has no netem);
//   - synack>linux, linux>synack: the kernel in one namespace behind its TUN,
//     a synack stack on the relay's other end; the arrow is the direction
//     of the bulk data.
//
// Every run is bounded in time; a run that does not finish is a result
// ("not done in N s"), not an error.
package pathmatrix

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/synack/synack/link/memlink"
)

// MTU is the link MTU of every path.
const MTU = 1500

// Cell is one impaired path. Both directions get the same impairments (and
// independent random streams, as memlink gives each direction its own).
type Cell struct {
	RTT     time.Duration // twice the one-way delay
	Rate    int64         // bits per second, each direction
	Loss    float64       // probability a packet is lost
	Reorder float64       // probability a packet is held back by one more one-way delay
	Dup     float64       // probability a packet arrives twice
}

// Impairment names the cell's impairment: "clean", "loss 1%", "reorder 5%",
// "dup 5%".
func (c Cell) Impairment() string {
	switch {
	case c.Loss > 0:
		return "loss " + pct(c.Loss)
	case c.Reorder > 0:
		return "reorder " + pct(c.Reorder)
	case c.Dup > 0:
		return "dup " + pct(c.Dup)
	}
	return "clean"
}

func pct(p float64) string { return strconv.FormatFloat(p*100, 'g', -1, 64) + "%" }

// String is e.g. "20ms 100M loss 1%".
func (c Cell) String() string {
	return fmt.Sprintf("%v %s %s", c.RTT, rateName(c.Rate), c.Impairment())
}

func rateName(r int64) string {
	if r >= 1e9 && r%1e9 == 0 {
		return fmt.Sprintf("%dG", r/1e9)
	}
	return fmt.Sprintf("%dM", r/1e6)
}

// BDP is the path's bandwidth-delay product in bytes.
func (c Cell) BDP() int64 { return c.Rate / 8 * int64(c.RTT) / int64(time.Second) }

// QueuePackets is the drop-tail queue: one BDP of full-size packets.
func (c Cell) QueuePackets() int {
	return max(int(math.Ceil(float64(c.BDP())/MTU)), 4)
}

// Impairments is the memlink model of one direction: serialization at
// Rate through a drop-tail queue of one BDP, then loss, the one-way delay,
// reordering (a held-back packet waits one more one-way delay, memlink's
// default when ReorderDelay is zero), duplication.
func (c Cell) Impairments() memlink.Impairments {
	return memlink.Impairments{
		Loss:       c.Loss,
		Delay:      c.RTT / 2,
		Reorder:    c.Reorder,
		Duplicate:  c.Dup,
		Rate:       c.Rate,
		QueueLimit: c.QueuePackets(),
	}
}

// Link returns the memlink configuration of the cell's path for a seed.
func (c Cell) Link(seed int64) memlink.Config {
	imp := c.Impairments()
	return memlink.Config{MTU: MTU, Seed: seed, AB: imp, BA: imp}
}

// BufferSize is the send and receive buffer every stack gets on this path:
// four BDPs (a window of a BDP fills the pipe, another fills the queue, and
// loss recovery needs room beyond that), at least 1 MiB. Without it the
// default 1 MiB buffers would cap a 100 ms path at 84 Mbit/s and the
// matrix would measure windows, not loss recovery.
func (c Cell) BufferSize() int { return int(max(4*c.BDP(), 1<<20)) }

// Size is the bulk transfer of the cell: what a Reno sender would move in
// about SizeTarget, so each run takes seconds, not minutes, on a 2-core
// machine and the whole matrix stays bounded. The expected rate is the
// link rate, or on a lossy path the Mathis et al. estimate
// MSS/RTT * 1.22/sqrt(p) when lower; a reordering probability counts as a
// loss probability (each reordering past three segments looks like a loss
// to a sender without reordering tolerance, and the reference figures
// bear that out). The size is rounded down to a power of two MiB, between
// 1 MiB and 64 MiB.
func (c Cell) Size() int64 {
	rate := float64(c.Rate)
	if p := c.Loss + c.Reorder; p > 0 {
		const mss = MTU - 40
		rate = min(rate, mss*8/c.RTT.Seconds()*1.22/math.Sqrt(p))
	}
	b := int64(rate / 8 * SizeTarget.Seconds())
	size := int64(1 << 20)
	for size*2 <= b && size < 64<<20 {
		size *= 2
	}
	return size
}

// SizeTarget is roughly how long a bulk transfer should take (see Size).
const SizeTarget = 8 * time.Second

// Impairment sets of the matrix, in table order.
var (
	RTTs        = []time.Duration{20 * time.Millisecond, 100 * time.Millisecond}
	Rates       = []int64{100e6, 1e9}
	impairments = []Cell{
		{},
		{Loss: 0.001}, {Loss: 0.01}, {Loss: 0.05}, {Loss: 0.20},
		{Reorder: 0.01}, {Reorder: 0.05},
		{Dup: 0.05},
	}
)

// Impairments returns the impairment names of the matrix, for flags.
func Impairments() []string {
	var out []string
	for _, c := range impairments {
		out = append(out, c.Impairment())
	}
	return out
}

// Matrix returns the cells whose RTT, rate and impairment are among those
// given; empty lists mean all. Impairments are named as Cell.Impairment
// prints them ("clean", "loss 1%", "reorder 5%", "dup 5%"; spaces may be
// left out).
func Matrix(rtts []time.Duration, rates []int64, imps []string) ([]Cell, error) {
	if len(rtts) == 0 {
		rtts = RTTs
	}
	if len(rates) == 0 {
		rates = Rates
	}
	want := map[string]bool{}
	for _, s := range imps {
		want[norm(s)] = true
	}
	known := map[string]bool{}
	for _, c := range impairments {
		known[norm(c.Impairment())] = true
	}
	for s := range want {
		if !known[s] {
			return nil, fmt.Errorf("unknown impairment %q (have %s)", s, strings.Join(Impairments(), ", "))
		}
	}
	var out []Cell
	for _, rtt := range rtts {
		for _, rate := range rates {
			for _, imp := range impairments {
				if len(want) > 0 && !want[norm(imp.Impairment())] {
					continue
				}
				c := imp
				c.RTT, c.Rate = rtt, rate
				out = append(out, c)
			}
		}
	}
	return out, nil
}

func norm(s string) string { return strings.ToLower(strings.ReplaceAll(s, " ", "")) }

// ParseRate reads a rate in bits per second: "100M", "1G" or a number.
func ParseRate(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "G"):
		mult, s = 1e9, strings.TrimSuffix(s, "G")
	case strings.HasSuffix(s, "M"):
		mult, s = 1e6, strings.TrimSuffix(s, "M")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad rate %q (want e.g. 100M or 1G)", s)
	}
	return n * mult, nil
}

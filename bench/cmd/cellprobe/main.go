// Command cellprobe runs one synack sender over a path-matrix cell on the
// virtual clock and reports where its time went: in recovery, limited by
// cwnd, by the peer's window, or by the send buffer (nothing unsent
// while cwnd had room), with the loss-recovery counters at the end. It is
// for finding why a cell is slow; the figures are the protocol's, not
// the loaded machine's.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/synack/synack/bench/pathmatrix"
	"github.com/synack/synack/clock"
	"github.com/synack/synack/link"
	"github.com/synack/synack/link/memlink"
	"github.com/synack/synack/link/pcap"
	"github.com/synack/synack/stack"
	"github.com/synack/synack/tcp"
)

var (
	sndAddr = netip.MustParsePrefix("198.18.0.1/24")
	rcvAddr = netip.MustParsePrefix("198.18.0.2/24")
)

func main() {
	var (
		rtts  = flag.String("rtt", "", "round-trip times")
		rates = flag.String("rate", "", "rates")
		imps  = flag.String("imp", "", "impairments")
		seeds = flag.String("seeds", "1", "comma-separated seeds")
		cc    = flag.String("cc", "", "congestion control")
		limit = flag.Duration("limit", 60*time.Second, "virtual time limit")
		trace = flag.Duration("trace", 0, "print a line every this long (0: none)")
		real  = flag.Bool("real", false, "real time instead of the virtual clock")
		pcapF = flag.String("pcap", "", "write the sender's packets to this pcap file")
		unb   = flag.Bool("unbatch", false, "deliver packets to the sender one at a time, not in the link's batches")
	)
	noQueue := flag.Bool("noqueue", false, "no drop-tail queue limit")
	sizeF := flag.Int64("size", 0, "bulk bytes (0: the cell's)")
	defBufs := flag.Bool("defbufs", false, "the stack's default buffers, not the cell's")
	rxb := flag.Duration("rxbatch", 0, "the receiver takes its packets in batches: those that arrive within this long of a batch's first (0: as the link delivers them)")
	txb := flag.Duration("ackbatch", 0, "the sender takes its ACKs in batches, as -rxbatch the receiver its data")
	flag.Parse()
	unbatchSender, noQueueLimit, bulkSize, defaultBuffers, rxBatch, ackBatch = *unb, *noQueue, *sizeF, *defBufs, *rxb, *txb
	var rs []time.Duration
	for _, s := range split(*rtts) {
		d, err := time.ParseDuration(s)
		if err != nil {
			fail(err)
		}
		rs = append(rs, d)
	}
	var ra []int64
	for _, s := range split(*rates) {
		r, err := pathmatrix.ParseRate(s)
		if err != nil {
			fail(err)
		}
		ra = append(ra, r)
	}
	cells, err := pathmatrix.Matrix(rs, ra, split(*imps))
	if err != nil {
		fail(err)
	}
	for _, c := range cells {
		for _, s := range split(*seeds) {
			var seed int64
			fmt.Sscan(s, &seed)
			r := run(c, seed, *cc, *limit, *trace, *real, *pcapF)
			fmt.Println(r)
		}
	}
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "cellprobe:", err)
	os.Exit(1)
}

// clk is the virtual clock or the real one, as far as run needs.
type clk interface {
	Go(func())
	Sleep(time.Duration)
	Now() time.Time
	Run(func()) error
}

type realClk struct{}

func (realClk) Go(f func())           { go f() }
func (realClk) Sleep(d time.Duration) { time.Sleep(d) }
func (realClk) Now() time.Time        { return time.Now() }
func (realClk) Run(f func()) error    { f(); return nil }

func run(c pathmatrix.Cell, seed int64, cc string, limit, trace time.Duration, real bool, pcapFile string) string {
	var v clk = realClk{}
	cfg := c.Link(seed)
	if noQueueLimit {
		cfg.AB.QueueLimit, cfg.BA.QueueLimit = 0, 0
	}
	sopt := stack.Options{TCP: tcp.Config{SendBufferSize: c.BufferSize(), ReceiveBufferSize: c.BufferSize(), CongestionControl: cc}}
	if defaultBuffers {
		sopt.TCP = tcp.Config{CongestionControl: cc}
	}
	if !real {
		vc := clock.NewVirtual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		v, cfg.Clock, sopt.Clock = vc, vc, vc
	}
	a, b := memlink.Pipe(cfg)
	snd := stack.New(sopt)
	rcv := stack.New(sopt)
	defer func() { snd.Close(); rcv.Close(); a.Close() }()
	var sep link.Endpoint = a
	if pcapFile != "" {
		f, err := os.Create(pcapFile)
		if err != nil {
			fail(err)
		}
		defer f.Close()
		w, err := pcap.NewWriter(f)
		if err != nil {
			fail(err)
		}
		var ck clock.Clock = clock.Real()
		if vc, ok := v.(*clock.Virtual); ok {
			ck = vc
		}
		sep = pcap.Tap(a, w, ck)
	}
	if unbatchSender {
		sep = unbatched{a}
	}
	if ackBatch > 0 {
		var ck clock.Clock = clock.Real()
		if vc, ok := v.(*clock.Virtual); ok {
			ck = vc
		}
		sep = memlink.Coalesce(a, ck, ackBatch)
	}
	if _, err := snd.AddLink(sep, sndAddr); err != nil {
		fail(err)
	}
	var rep link.Endpoint = b
	if rxBatch > 0 {
		var ck clock.Clock = clock.Real()
		if vc, ok := v.(*clock.Virtual); ok {
			ck = vc
		}
		rep = memlink.Coalesce(b, ck, rxBatch)
	}
	if _, err := rcv.AddLink(rep, rcvAddr); err != nil {
		fail(err)
	}
	size := c.Size()
	if bulkSize > 0 {
		size = bulkSize
	}
	var out string
	err := v.Run(func() {
		ln, err := rcv.ListenTCP(netip.AddrPortFrom(rcvAddr.Addr(), 5201), 0)
		if err != nil {
			fail(err)
		}
		defer ln.Close()
		cn, err := snd.DialTCP(context.Background(), netip.AddrPortFrom(rcvAddr.Addr(), 5201))
		if err != nil {
			fail(err)
		}
		defer cn.Close()
		sv, err := ln.AcceptTCP()
		if err != nil {
			fail(err)
		}
		var got int64
		v.Go(func() {
			buf := make([]byte, 64<<10)
			for {
				n, err := sv.Read(buf)
				got += int64(n)
				if err != nil {
					return
				}
			}
		})
		start := v.Now()
		written := false
		v.Go(func() {
			buf := make([]byte, 64<<10)
			for n := int64(0); n < size; n += int64(len(buf)) {
				if _, err := cn.Write(buf[:min(int64(len(buf)), size-n)]); err != nil {
					return
				}
			}
			written = true
			cn.CloseWrite()
		})
		var n, rec, cwl, rwl, sbl, recStarved, exits, lowExits int
		wasRec := false
		prevCwnd := 0
		var entryRatios []float64 // ssthresh set at recovery entry / (0.7 x cwnd just before)
		var ssExit time.Duration
		var ssCwnd int
		var ssLoss bool
		var cwSum int64
		var lastSegsIn, lastAcked uint64
		const period = 5 * time.Millisecond
		for got < size && v.Now().Sub(start) < limit {
			v.Sleep(period)
			i := cn.Info()
			n++
			cwSum += int64(i.CWnd)
			unsent := i.SendQueue - i.Unacked
			if i.Recovering && unsent < i.MSS && !written {
				recStarved++
			}
			if !wasRec && i.Recovering && prevCwnd > 0 {
				entryRatios = append(entryRatios, float64(i.SSThresh)/(0.7*float64(prevCwnd)))
			}
			prevCwnd = i.CWnd
			if wasRec && !i.Recovering {
				exits++
				if i.CWnd < i.SSThresh*3/4 {
					lowExits++
				}
			}
			wasRec = i.Recovering
			if ssExit == 0 && i.SSThresh < 1<<30 {
				ssExit, ssCwnd, ssLoss = v.Now().Sub(start), i.CWnd/i.MSS, i.Retransmits > 0 || i.Recovering || i.Timeouts > 0
			}
			switch {
			case i.Recovering:
				rec++
			case i.Unacked+i.MSS > i.SndWnd:
				rwl++
			case i.Unacked+i.MSS > i.CWnd:
				cwl++
			case unsent < i.MSS && !written:
				sbl++
			}
			if trace > 0 && n%int(trace/period) == 0 {
				// acks: segments the sender took in since the last line
				// (nearly all pure ACKs), and the segments each covered.
				acks, acked := i.SegsIn-lastSegsIn, i.BytesAcked-lastAcked
				lastSegsIn, lastAcked = i.SegsIn, i.BytesAcked
				fmt.Printf("  %6.2fs got %6.1f MiB cwnd %5d ssth %6d unacked %6d unsent %7d sndq %7d wnd %7d srtt %v rto %v rec %v sacked %d lost %d to %d rtx %d acks %d seg/ack %.1f\n",
					v.Now().Sub(start).Seconds(), float64(got)/(1<<20), i.CWnd/i.MSS, min(i.SSThresh/i.MSS, 999999), i.Unacked/i.MSS, unsent, i.SendQueue, i.SndWnd/i.MSS, i.RTT.Round(time.Millisecond), i.RTO.Round(time.Millisecond), i.Recovering, i.SACKedBytes/i.MSS, i.LostBytes/i.MSS, i.Timeouts, i.Retransmits, acks, float64(acked)/float64(max(acks, 1))/float64(i.MSS))
			}
		}
		el := v.Now().Sub(start)
		i := cn.Info()
		pc := func(k int) string { return fmt.Sprintf("%3.0f%%", 100*float64(k)/float64(max(n, 1))) }
		out = fmt.Sprintf("%-28s seed %d %s %5.1f Mbit/s (%4.1f%% link) in %5.2fs | rec %s cwnd-lim %s rwnd-lim %s sndbuf-lim %s rec-starved %s exits %d low %d | avg cwnd %d seg | rtx %d TO %d spur %d undo %d sackrec %d tlp %d/%d rack %d dsackin %d | srtt %v rto %v | ss exit %v cwnd %d loss %v | ssthresh/(0.7 cwnd) at entry %s",
			c.String(), seed, mib(size), float64(got)*8/el.Seconds()/1e6, 100*float64(got)*8/el.Seconds()/float64(c.Rate), el.Seconds(),
			pc(rec), pc(cwl), pc(rwl), pc(sbl), pc(recStarved), exits, lowExits, cwSum/int64(max(n, 1))/int64(i.MSS),
			i.Retransmits, i.Timeouts, i.SpuriousRetrans, i.Undos, i.SACKRecoveries, i.TLPProbes, i.TLPRecoveries, i.RACKLosses, i.DSACKsIn, i.RTT.Round(time.Millisecond), i.RTO.Round(time.Millisecond), ssExit.Round(time.Millisecond), ssCwnd, ssLoss, ratios(entryRatios))
	})
	if err != nil {
		fail(err)
	}
	return out
}

func mib(n int64) string { return fmt.Sprintf("%d MiB", n>>20) }

var (
	unbatchSender, noQueueLimit, defaultBuffers bool
	bulkSize                                    int64
	rxBatch, ackBatch                           time.Duration
)

// unbatched is the memlink endpoint with every method but Attach, whose
// dispatcher gets one packet at a time.
type unbatched struct{ *memlink.Endpoint }

func (u unbatched) Attach(d link.Dispatcher) {
	u.Endpoint.Attach(link.DispatcherFunc(d.DeliverPacket))
}

// ratios prints the least, median and largest of rs.
func ratios(rs []float64) string {
	if len(rs) == 0 {
		return "-"
	}
	slices.Sort(rs)
	return fmt.Sprintf("%.2f/%.2f/%.2f (n %d)", rs[0], rs[len(rs)/2], rs[len(rs)-1], len(rs))
}

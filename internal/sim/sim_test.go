package sim

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"testing/synctest"

	"github.com/synack/synack/clock"
	"github.com/synack/synack/tcp"
)

var (
	count   = flag.Int("sim.count", 1000, "number of seeded lifetimes")
	first   = flag.Uint64("sim.seed", 1, "first seed")
	pcapDir = flag.String("sim.pcap", "", "write a pcap of each failing lifetime into this directory")
)

// TestLifetimes plays -sim.count seeded lifetimes under the virtual time
// of testing/synctest. A failure names the seed and how to replay it.
func TestLifetimes(t *testing.T) {
	n := *count
	if testing.Short() {
		n = min(n, 200)
	}
	shards := runtime.GOMAXPROCS(0) * 2
	for shard := range shards {
		t.Run(fmt.Sprintf("shard%d", shard), func(t *testing.T) {
			t.Parallel()
			for i := shard; i < n; i += shards {
				seed := *first + uint64(i)
				p := NewPlan(seed)
				var err error
				var res Result
				synctest.Test(t, func(t *testing.T) {
					res, err = Run(p, clock.Real(), nil)
				})
				if err != nil {
					t.Errorf("%v\n  failed: %v\n  client path %v\n  server path %v\n  replay: go test ./internal/sim -run TestLifetimes -sim.seed=%d -sim.count=1 -v -sim.pcap=/tmp",
						p, err, res.ClientPath, res.ServerPath, seed)
					if *pcapDir != "" {
						writePcap(t, p)
					}
				}
			}
		})
	}
}

// TestReorderDuplicate plays lifetimes on links that reorder or duplicate
// but do not lose (issue 10: reordering made every retransmission
// spurious): the byte streams must arrive intact, with RACK-TLP and with
// RFC 6675's DupThresh alone.
func TestReorderDuplicate(t *testing.T) {
	seeds := uint64(24)
	if testing.Short() {
		seeds = 8
	}
	for _, c := range []struct {
		name         string
		reorder, dup float64
	}{
		{"reorder1", 0.01, 0},
		{"reorder5", 0.05, 0},
		{"dup5", 0, 0.05},
	} {
		for _, ld := range []tcp.LossDetection{tcp.LossRACK, tcp.LossDupThresh} {
			t.Run(c.name+"/"+string(ld), func(t *testing.T) {
				t.Parallel()
				for seed := uint64(1); seed <= seeds; seed++ {
					p := NewPlan(seed)
					p.Loss, p.Corrupt = 0, 0
					p.Reorder, p.Duplicate = c.reorder, c.dup
					p.LossDetection = ld
					if p.Up < 40_000 {
						p.Up = 200_000 // enough data for reordering to matter
					}
					var err error
					var res Result
					synctest.Test(t, func(t *testing.T) {
						res, err = Run(p, clock.Real(), nil)
					})
					if err != nil {
						t.Errorf("%v (%s)\n  failed: %v\n  client path %v\n  server path %v", p, ld, err, res.ClientPath, res.ServerPath)
					}
				}
			})
		}
	}
}

// TestECNLifetimes plays seeded lifetimes, with their loss, reordering,
// duplication and corruption, on connections that use ECN (RFC 3168) over
// a link that also marks every 7th ECN-capable packet CE: the streams
// must arrive intact and every connection end as TIME-WAIT and CLOSED
// say, whatever ECE and CWR do to the windows.
func TestECNLifetimes(t *testing.T) {
	seeds := uint64(48)
	if testing.Short() {
		seeds = 12
	}
	for seed := uint64(1); seed <= seeds; seed++ {
		p := NewPlan(seed)
		p.MarkEvery = 7
		if p.Up < 40_000 {
			p.Up = 200_000 // enough data for marks to matter
		}
		var err error
		var res Result
		synctest.Test(t, func(t *testing.T) {
			res, err = Run(p, clock.Real(), nil)
		})
		if err != nil {
			t.Errorf("%v (ECN, every 7th marked)\n  failed: %v\n  client path %v\n  server path %v", p, err, res.ClientPath, res.ServerPath)
		}
	}
}

func writePcap(t *testing.T, p Plan) {
	path := filepath.Join(*pcapDir, fmt.Sprintf("synack-sim-seed%d.pcap", p.Seed))
	f, err := os.Create(path)
	if err != nil {
		t.Log(err)
		return
	}
	defer f.Close()
	synctest.Test(t, func(t *testing.T) { Run(p, clock.Real(), f) })
	t.Logf("pcap of the client's link: %s", path)
}

// A lifetime is a function of its seed: the same seed under the virtual
// clock gives the same outcome.
func TestVirtualClockLifetime(t *testing.T) {
	p := NewPlan(42)
	p.Ending = ClientCloses
	v := clock.NewVirtual(p0)
	var res Result
	var err error
	if rerr := v.Run(func() { res, err = Run(p, v, nil) }); rerr != nil {
		t.Fatal(rerr)
	}
	if err != nil {
		t.Fatalf("%v: %v", p, err)
	}
	if res.Elapsed < 60e9 {
		t.Errorf("both ends closed after %v, before the client's 2MSL TIME-WAIT could pass", res.Elapsed)
	}
}

var p0 = mustTime("2026-01-01T00:00:00Z")

//go:build linux

package interop

import (
	"testing"
	"time"

	"github.com/synack/synack/tunstack"
)

// withTSOOut opens the device with offloads as withOffload does, in a
// namespace and with a device named with this file's prefix "ts", with
// the stack's super-segments on (TSO out) or forced off.
func withTSOOut(on bool) []envOption {
	return []envOption{withNSPrefix("ts-"), withTun(func(c *tunstack.Config) {
		c.Name = "ts%d"
		c.Offload = true
		c.Queues = 2
		c.NoTSOOut = !on
	})}
}

// TestTSOOut moves 32 MiB each way between the kernel's TCP and synack
// with the stack handing the device super-segments of up to 64 KiB with
// the checksum left partial (tcp/gso.go, link.SegmentOffloader), which the
// kernel cuts into MSS-sized segments and checksums: the kernel's TCP
// must read every byte synack sent (hash-checked). With TSO out forced
// off the stack sends segments of one MSS, which the device joins into
// GSO packets as before: the same bytes arrive, and no super-segment
// comes from the stack.
func TestTSOOut(t *testing.T) {
	for _, fam := range families {
		for _, on := range []bool{true, false} {
			name := fam.name + "/tso-out"
			if !on {
				name = fam.name + "/forced-off"
			}
			t.Run(name, func(t *testing.T) {
				e := newEnv(t, fam, withTSOOut(on)...)
				f := requireTSO(t, e)
				so := e.dev.SegmentOffload()
				if f.TSOOut != on || (so.MaxSize > 0) != on || so.Checksum != on {
					t.Fatalf("TSOOut %v, SegmentOffload %+v; want TSO out %v", f.TSOOut, so, on)
				}
				before := e.s.Counters().TCP
				d := e.exchange(32<<20, 60*time.Second)
				after := e.dev.Stats()
				c := e.s.Counters().TCP
				t.Logf("counters: %+v, TxTSO %d; stack OutSegs %d, RetransSegs %d", d, after.TxTSO, c.OutSegs-before.OutSegs, c.RetransSegs-before.RetransSegs)
				switch {
				case on && after.TxTSO == 0:
					t.Errorf("no super-segment from the stack")
				case on && d.TxGSOSegs < 2*d.TxGSO:
					t.Errorf("%d GSO packets carrying %d segments: want each of several", d.TxGSO, d.TxGSOSegs)
				case !on && after.TxTSO != 0:
					t.Errorf("%d super-segments from the stack with TSO out forced off", after.TxTSO)
				case !on && d.TxGSO == 0:
					t.Errorf("no GSO packet joined from the stack's segments with TSO out off")
				}
				if c.InCsumErrors != 0 || c.InErrs != 0 {
					t.Errorf("stack counted %d checksum errors, %d bad segments", c.InCsumErrors, c.InErrs)
				}
			})
		}
	}
}

package bench

import (
	"bytes"
	"os"
	"strconv"
	"time"
)

// The benchmark machine is shared: other processes (test runs, builds) take
// CPU and skew the numbers. The harness measures how many cores the rest of
// the machine used during each measured window, waits for a quiet machine
// before each run, and redoes runs that were disturbed.

// machineBusy returns the CPU time all processes have used since boot, from
// the first line of /proc/stat (user nice system idle iowait irq softirq
// steal ...), and false where that is unavailable.
func machineBusy() (time.Duration, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 8 || string(f[0]) != "cpu" {
		return 0, false
	}
	var busy int64
	for i, v := range f[1:8] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return 0, false
		}
		busy += n
	}
	// USER_HZ is 100 on every Linux architecture Go supports.
	return time.Duration(busy) * 10 * time.Millisecond, true
}

// loadMeter measures the cores used by other processes over a window.
type loadMeter struct {
	wall      time.Time
	busy, own time.Duration
	ok        bool
}

func startLoad() loadMeter {
	b, ok := machineBusy()
	return loadMeter{wall: time.Now(), busy: b, own: cpuTime(), ok: ok}
}

// other returns the cores used by other processes since start (-1 if unknown).
func (m loadMeter) other() float64 {
	b, ok := machineBusy()
	if !ok || !m.ok {
		return -1
	}
	wall := time.Since(m.wall).Seconds()
	o := (b - m.busy - (cpuTime() - m.own)).Seconds() / wall
	return max(o, 0)
}

// WaitQuiet waits until the rest of the machine uses under maxCores for a
// 500 ms sample, or until timeout. It returns the last sample.
func WaitQuiet(maxCores float64, timeout time.Duration) float64 {
	end := time.Now().Add(timeout)
	for {
		m := startLoad()
		time.Sleep(500 * time.Millisecond)
		o := m.other()
		if o < maxCores || time.Now().After(end) {
			return o
		}
	}
}

// LoadMeter measures the cores other processes use over a window, for
// harnesses outside this package (pathmatrix).
type LoadMeter struct{ m loadMeter }

// StartLoadMeter starts a window now.
func StartLoadMeter() LoadMeter { return LoadMeter{startLoad()} }

// Other returns the cores other processes used since the start (-1 if
// unknown).
func (l LoadMeter) Other() float64 { return l.m.other() }

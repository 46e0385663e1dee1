package stack

import (
	"io"
	"testing"
)

// BenchmarkBulk sends 1 MiB per op one way over a memlink pipe (real
// clock).
func BenchmarkBulk(b *testing.B) {
	p := newPair(b, pairOpts{})
	c, s := p.connect(b, 80)
	done := make(chan int64)
	go func() {
		n, _ := io.Copy(io.Discard, s)
		done <- n
	}()
	buf := make([]byte, 1<<20)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	c.CloseWrite()
	<-done
	segs := p.a.Counters().TCP.OutSegs + p.b.Counters().TCP.OutSegs
	b.ReportMetric(float64(segs)/float64(b.N), "segs/op")
}

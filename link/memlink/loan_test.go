package memlink

import (
	"bytes"
	"encoding/binary"
	"testing"
	"testing/synctest"

	"github.com/synack/synack/link"
)

// loanSink keeps the even packets' buffers (a LoanDispatcher) and lets the
// link take the others back.
type loanSink struct {
	batchSink
	kept    [][]byte
	loans   []link.Loan
	vouched []bool
}

func (s *loanSink) DeliverLoanedPackets(pkts [][]byte, loans []link.Loan, vouched bool) {
	s.DeliverPackets(pkts)
	for i, p := range pkts {
		if binary.BigEndian.Uint32(p)%2 == 0 {
			s.kept = append(s.kept, p)
			s.loans = append(s.loans, loans[i])
			loans[i] = nil
		}
	}
	s.vouched = append(s.vouched, vouched)
}

var _ link.LoanDispatcher = (*loanSink)(nil)

// A receiver that keeps a packet's buffer keeps its bytes: the link does
// not reuse that memory for later packets until the loan is released,
// while the buffers it got back carry later packets. A loan's size is
// the buffer's, the MTU.
func TestLoanedPacketsStay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b := Pipe(Config{MTU: 9000, ChecksumOffload: true})
		defer a.Close()
		sink := &loanSink{}
		b.Attach(sink)
		pkt := func(i int) []byte {
			p := binary.BigEndian.AppendUint32(nil, uint32(i))
			return append(p, bytes.Repeat([]byte{byte(i)}, 5000)...)
		}
		for round := range 3 {
			pkts := make([][]byte, 200)
			for i := range pkts {
				pkts[i] = pkt(round*200 + i)
			}
			if _, err := a.WritePackets(pkts); err != nil {
				t.Fatal(err)
			}
			synctest.Wait()
		}
		if len(sink.got) != 600 || len(sink.kept) != 300 {
			t.Fatalf("delivered %d, kept %d; want 600, 300", len(sink.got), len(sink.kept))
		}
		for _, p := range sink.kept {
			i := int(binary.BigEndian.Uint32(p))
			if !bytes.Equal(p, pkt(i)) {
				t.Fatalf("kept packet %d was overwritten while on loan", i)
			}
		}
		for _, v := range sink.vouched {
			if !v {
				t.Fatal("a batch of a vouching link came as not vouched")
			}
		}
		for _, l := range sink.loans {
			if l.Size() != 9000 {
				t.Fatalf("loan size %d, want the MTU, 9000", l.Size())
			}
			l.Release()
		}
	})
}

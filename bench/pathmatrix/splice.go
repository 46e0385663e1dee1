package pathmatrix

import "github.com/synack/synack/link"

// forwarder writes every packet it is given into another endpoint: the
// relay's one job, for TUN devices, gVisor's links and memlink alike.
type forwarder struct {
	to  link.Endpoint
	one [1][]byte // DeliverPacket's batch: calls come one at a time (link.Dispatcher)
}

func (f *forwarder) DeliverPacket(pkt []byte) {
	f.one[0] = pkt
	f.DeliverPackets(f.one[:])
	f.one[0] = nil
}

// DeliverPackets passes a batch on. A packet the endpoint refuses (too
// big, or the link closing) is dropped, as a wire would, and the rest go
// on.
func (f *forwarder) DeliverPackets(pkts [][]byte) {
	for len(pkts) > 0 {
		n, err := f.to.WritePackets(pkts)
		if err == nil {
			return
		}
		pkts = pkts[min(n+1, len(pkts)):]
	}
}

// splice joins two endpoints back to back: what x delivers is written to
// y and the other way round.
func splice(x, y link.Endpoint) {
	x.Attach(&forwarder{to: y})
	y.Attach(&forwarder{to: x})
}

// Splice joins two endpoints back to back, for callers building their own
// topology around the matrix's pieces (bench/fairness).
func Splice(x, y link.Endpoint) { splice(x, y) }

package memlink

import (
	"sync"
	"time"

	"github.com/synack/synack/clock"
	"github.com/synack/synack/link"
)

// Coalesce returns ep with every method but Attach: its dispatcher, if it
// takes batches (link.BatchDispatcher), gets in one DeliverPackets call
// the packets that arrive within wait of a batch's first, as a receiver
// whose NIC moderates its interrupts, or whose runtime is busy elsewhere
// and reads the clock once for all that queued, takes them. On a virtual
// clock it gives the receive (or ACK) batches a loaded machine gives in
// real time (bench/cmd/cellprobe -rxbatch and -ackbatch, the HyStart tests
// of internal/sim). clk is the clock the link runs on. Each packet is
// copied, and the link lends nothing through it: a tool, not a data path.
func Coalesce(ep *Endpoint, clk clock.Clock, wait time.Duration) link.Endpoint {
	return &coalesced{Endpoint: ep, clk: clk, wait: wait}
}

type coalesced struct {
	*Endpoint
	clk  clock.Clock
	wait time.Duration

	mu      sync.Mutex
	pending [][]byte
	armed   bool
}

func (c *coalesced) Attach(d link.Dispatcher) {
	bd, ok := d.(link.BatchDispatcher)
	if !ok {
		c.Endpoint.Attach(d)
		return
	}
	flush := func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.armed = false
		if len(c.pending) > 0 {
			bd.DeliverPackets(c.pending)
		}
		clear(c.pending)
		c.pending = c.pending[:0]
	}
	c.Endpoint.Attach(batchFunc(func(pkts [][]byte) {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, p := range pkts {
			c.pending = append(c.pending, append([]byte(nil), p...))
		}
		if !c.armed {
			c.armed = true
			c.clk.AfterFunc(c.wait, flush)
		}
	}))
}

// batchFunc is a link.BatchDispatcher made of one function.
type batchFunc func(pkts [][]byte)

func (f batchFunc) DeliverPacket(pkt []byte)     { f([][]byte{pkt}) }
func (f batchFunc) DeliverPackets(pkts [][]byte) { f(pkts) }

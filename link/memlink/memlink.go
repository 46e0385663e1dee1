// Package memlink is an in-memory network for tests, simulations and
// benchmarks: a point-to-point [Pipe] and a [Switch] joining many stacks,
// with seeded, deterministic impairments (loss, delay, jitter, reordering,
// duplication, corruption, rate limit with a drop-tail queue) and ECN
// marking (Impairments.MarkCE).
//
// Packets are copied on write and delivered later, never inside
// WritePackets: with the real clock by one goroutine per direction, with a
// [clock.Virtual] clock by virtual timers (even with zero delay), so the
// receiver always runs in a goroutine of the link's or the clock's, never in
// the sender's. At an MTU of 8 KiB or more, a receiver that is a
// link.LoanDispatcher may keep a delivered packet's buffer (a loan) instead
// of copying what it holds; the buffer comes back to the link when the
// receiver releases it.
package memlink

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/synack/synack/clock"
	"github.com/synack/synack/link"
	"github.com/synack/synack/wire" // the IP header's ECN field (MarkCE), as a router sees it, and TSO (Config.GSO)
)

// Defaults for zero Config fields.
const (
	DefaultMTU        = 1500
	DefaultQueueLimit = 1000
	// DefaultReorderDelay is how long a reordered packet is held back when
	// Impairments.ReorderDelay is zero and the link has no Delay.
	DefaultReorderDelay = time.Millisecond
)

// maxInFlight bounds the packets queued in one direction whatever the
// Config says, so a stalled receiver cannot eat all memory.
const maxInFlight = 1 << 16

// maxBatch is how many packets a delivery pass takes under one lock.
const maxBatch = 64

// lendMTU is the least MTU at which the link lends its packet buffers to
// a receiver that takes loans (link.LoanDispatcher): the receiver keeps
// large segments where they are instead of copying them (bulk at MTU
// 65535: 0.16 -> 0.14 CPU s/GiB). Below it no segment is large enough for
// a loan to pay (synack's connections take none under 4 KiB of text), and
// the loan path measured 5-7 % more CPU per GiB at MTU 1500.
const lendMTU = 8192

// ErrTooBig is returned by WritePackets for a packet longer than the MTU.
var ErrTooBig = errors.New("memlink: packet larger than MTU")

// Dir names a direction of a Pipe: AtoB carries what a writes to b.
type Dir uint8

const (
	AtoB Dir = iota
	BtoA
)

func (d Dir) String() string {
	if d == AtoB {
		return "a->b"
	}
	return "b->a"
}

// Config describes a link. The zero value is a perfect 1500-byte link on the
// real clock.
type Config struct {
	Clock clock.Clock // nil means clock.Real()
	MTU   int         // 0 means DefaultMTU
	// Seed seeds one PCG generator per direction: the same Seed and the same
	// sequence of WritePackets calls give every packet the same fate.
	Seed int64
	// AB and BA impair each direction separately.
	AB, BA Impairments
	// Tap, if set, sees every packet as it is delivered, after impairments
	// (so it records duplicates, corruption and the delivered order, not the
	// lost packets), in the delivering goroutine, with the link's clock at
	// the delivery time. pkt is valid only during the call.
	Tap func(d Dir, pkt []byte)
	// ChecksumOffload has the link vouch for the packets it delivers: a
	// receiver that is a link.ChecksumVouching is told the packets need no
	// transport checksum verification (as a NIC with receive checksum
	// offload tells its driver). A direction that corrupts packets
	// (Impairments.Corrupt) never vouches.
	ChecksumOffload bool
	// GSO, when not zero, has the link take TCP super-segments of up to
	// GSO bytes (at most 65535) written as parts with a GSO size
	// (link.SegmentOffloader: segmentation offload on transmit, with the
	// checksum left partial), and cut them into segments of the GSO size
	// itself, as a NIC's TSO does, each with a full checksum. Each segment
	// then meets the impairments on its own: a loss takes one MSS, not
	// the whole super-segment.
	GSO int
}

// Impairments of one direction. Probabilities are in [0, 1]; out-of-range
// values are clamped, negative durations count as zero.
type Impairments struct {
	Loss float64 // probability a packet is lost on the wire
	// Delay is the one-way propagation delay. Jitter adds a uniform random
	// extra in [0, Jitter] per packet, but never lets a packet overtake the
	// one before it (reordering is Reorder's job).
	Delay, Jitter time.Duration
	// Reorder is the probability a packet is held back by ReorderDelay
	// (0: the Delay, or DefaultReorderDelay if that is 0 too), letting the
	// packets behind it pass.
	Reorder      float64
	ReorderDelay time.Duration
	Duplicate    float64 // probability a packet arrives twice
	Corrupt      float64 // probability one random bit of the packet is flipped
	// Rate is the link's speed in bits per second (0: unlimited). Packets
	// wait their turn to be serialized, in a drop-tail queue of QueueLimit
	// packets.
	Rate int64
	// QueueLimit bounds, in packets, the serialization queue when Rate is
	// set, and otherwise the packets written but not yet delivered (a
	// receiver that falls behind loses packets, as from a full NIC ring).
	// 0 means DefaultQueueLimit.
	QueueLimit int
	// Drop, if set, is asked about every packet before anything else; true
	// drops it (counted as DroppedHook). It lets a test lose one chosen
	// packet, e.g. the ACK of the FIN. It runs inside WritePackets under the
	// link's lock: it must not call into the link.
	Drop func(pkt []byte) bool
	// MarkCE, if set, is asked about every packet that is not dropped:
	// true marks it Congestion Experienced as an ECN router would instead
	// of dropping it (RFC 3168 section 5): if the packet is ECN-capable
	// (ECT(0) or ECT(1)), its ECN field becomes CE, with the IPv4 header
	// checksum fixed up, and it counts as MarkedCE; a Not-ECT packet is
	// left alone (a router would have to drop it; use Drop for that). It
	// sees the packet as written, runs under the link's lock and must not
	// call into the link.
	MarkCE func(pkt []byte) bool
}

// Stats counts what happened to the packets of one direction.
type Stats struct {
	Sent         uint64 // packets taken by WritePackets
	Delivered    uint64 // DeliverPacket calls, duplicates included
	DroppedHook  uint64 // dropped by Impairments.Drop
	DroppedLoss  uint64 // lost by Impairments.Loss
	DroppedQueue uint64 // dropped at a full queue
	Duplicated   uint64
	Corrupted    uint64
	Reordered    uint64
	MarkedCE     uint64 // ECN-capable packets marked CE by Impairments.MarkCE
	GSOSplit     uint64 // super-segments taken (Config.GSO); Sent counts their segments
}

// Endpoint is one end of a Pipe. It implements link.Endpoint.
type Endpoint struct {
	tx, rx *direction
	mtu    int
	gso    int // Config.GSO
}

var (
	_ link.Endpoint         = (*Endpoint)(nil)
	_ link.SegmentOffloader = (*Endpoint)(nil)
)

// Pipe returns the two ends of a new link.
func Pipe(cfg Config) (a, b *Endpoint) {
	clk := cfg.Clock
	if clk == nil {
		clk = clock.Real()
	}
	mtu := cfg.MTU
	if mtu <= 0 {
		mtu = DefaultMTU
	}
	pool := &sync.Pool{}
	pool.New = func() any { return &pbuf{b: make([]byte, mtu), pool: pool} }
	ab := newDirection(AtoB, clk, mtu, cfg.Seed, cfg.AB, cfg.Tap, pool)
	ba := newDirection(BtoA, clk, mtu, cfg.Seed, cfg.BA, cfg.Tap, pool)
	ab.vouch = cfg.ChecksumOffload && ab.imp.Corrupt == 0
	ba.vouch = cfg.ChecksumOffload && ba.imp.Corrupt == 0
	gso := min(max(cfg.GSO, 0), 65535)
	ab.gso, ba.gso = gso, gso
	return &Endpoint{tx: ab, rx: ba, mtu: mtu, gso: gso}, &Endpoint{tx: ba, rx: ab, mtu: mtu, gso: gso}
}

// MTU returns the largest packet the link carries.
func (e *Endpoint) MTU() int { return e.mtu }

// WritePackets queues copies of pkts for delivery to the other end.
func (e *Endpoint) WritePackets(pkts [][]byte) (int, error) { return e.tx.write(pkts) }

// WritePacketParts is WritePackets for packets in two pieces
// (link.PartsWriter): each byte is copied once, into the link's buffer.
func (e *Endpoint) WritePacketParts(pkts []link.Packet) (int, error) { return e.tx.writeParts(pkts) }

// SegmentOffload says what the link does for TCP segments written as
// parts (link.SegmentOffloader): with Config.GSO, it cuts super-segments
// and completes their checksums; otherwise nothing.
func (e *Endpoint) SegmentOffload() link.SegmentOffload {
	if e.gso == 0 {
		return link.SegmentOffload{}
	}
	return link.SegmentOffload{MaxSize: e.gso, Checksum: true}
}

// Attach starts delivering the packets sent to this end to d.
func (e *Endpoint) Attach(d link.Dispatcher) { e.rx.attach(d) }

// Close takes the whole link down, as if the cable were cut: packets in
// flight are discarded, delivery goroutines and timers stop, and WritePackets
// on either end returns net.ErrClosed. It does not wait for a delivery in
// progress, so it is safe inside DeliverPacket.
func (e *Endpoint) Close() error {
	e.tx.close()
	e.rx.close()
	return nil
}

// Stats returns the counters of the direction this end sends into.
func (e *Endpoint) Stats() Stats { return e.tx.stats() }

// direction is one way of a link: the fate of packets, the queue and the
// delivery machinery.
type direction struct {
	dir    Dir
	clk    clock.Clock
	virt   *clock.Virtual // non-nil: deliver through virtual timers
	origin time.Time      // packet times are offsets from here
	mtu    int
	imp    Impairments
	// timed is false for a link with no delay, jitter, reorder or rate: then
	// no packet needs a time at all, and the write path never reads a clock.
	timed  bool
	reord  int64 // reorder hold-back, ns
	tap    func(Dir, []byte)
	pool   *sync.Pool
	vouch  bool        // Config.ChecksumOffload, and nothing is corrupted
	gso    int         // Config.GSO
	gsoBuf []byte      // a super-segment's payload when it comes in two pieces
	closed atomic.Bool // also under mu; read lock-free between deliveries

	mu        sync.Mutex
	rng       *rand.Rand
	disp      link.Dispatcher
	fifo      ring[packet] // delivery times never decrease along it
	held      held         // reordered packets
	seq       uint64
	lastAt    int64       // delivery time of the newest FIFO packet
	busyUntil int64       // end of the serialization of the last packet
	txEnds    ring[int64] // serialization end times of queued packets (Rate)
	st        Stats       // all but Delivered
	delivered atomic.Uint64

	// Real clock: one goroutine, woken by kick.
	started  bool
	sleeping bool // the goroutine is (about to be) parked on kick
	kick     chan struct{}
	done     chan struct{}
	timer    clock.Timer // wakes the goroutine for the next delivery time

	// Virtual clock: one timer, armed at the earliest packet.
	armed   bool
	armedAt int64

	batch []packet    // scratch for one delivery pass; one pass at a time
	pkts  [][]byte    // the same pass's packets for a BatchDispatcher
	loans []link.Loan // and their buffers for a LoanDispatcher
}

func newDirection(dir Dir, clk clock.Clock, mtu int, seed int64, imp Impairments, tap func(Dir, []byte), pool *sync.Pool) *direction {
	clampP := func(p *float64) { *p = min(max(*p, 0), 1) }
	clampP(&imp.Loss)
	clampP(&imp.Reorder)
	clampP(&imp.Duplicate)
	clampP(&imp.Corrupt)
	imp.Delay = max(imp.Delay, 0)
	imp.Jitter = max(imp.Jitter, 0)
	imp.ReorderDelay = max(imp.ReorderDelay, 0)
	imp.Rate = max(imp.Rate, 0)
	if imp.QueueLimit <= 0 {
		imp.QueueLimit = DefaultQueueLimit
	}
	d := &direction{
		dir:    dir,
		clk:    clk,
		origin: clk.Now(),
		mtu:    mtu,
		imp:    imp,
		tap:    tap,
		pool:   pool,
		// The stream selects an independent sequence per direction.
		rng:   rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15+uint64(dir))),
		kick:  make(chan struct{}, 1),
		done:  make(chan struct{}),
		batch: make([]packet, 0, maxBatch),
		pkts:  make([][]byte, 0, maxBatch),
		loans: make([]link.Loan, 0, maxBatch),
	}
	d.virt, _ = clk.(*clock.Virtual)
	d.timed = imp.Delay > 0 || imp.Jitter > 0 || imp.Reorder > 0 || imp.Rate > 0
	if imp.Reorder > 0 {
		switch {
		case imp.ReorderDelay > 0:
			d.reord = int64(imp.ReorderDelay)
		case imp.Delay > 0:
			d.reord = int64(imp.Delay)
		default:
			d.reord = int64(DefaultReorderDelay)
		}
	}
	return d
}

func (d *direction) now() int64 { return int64(d.clk.Now().Sub(d.origin)) }

func (d *direction) chance(p float64) bool { return p > 0 && d.rng.Float64() < p }

func (d *direction) write(pkts [][]byte) (int, error) {
	return d.writeN(len(pkts), func(i int) link.Packet { return link.Packet{Head: pkts[i]} })
}

// writeParts is write for packets in pieces (link.PartsWriter): each is
// gathered straight into the link's own buffer.
func (d *direction) writeParts(pkts []link.Packet) (int, error) {
	return d.writeN(len(pkts), func(i int) link.Packet { return pkts[i] })
}

// writeN sends n packets, packet i being the bytes of its head then its
// payload.
func (d *direction) writeN(n int, pkt func(i int) link.Packet) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed.Load() {
		return 0, net.ErrClosed
	}
	var now int64
	if d.timed || d.virt != nil {
		now = d.now() // once per batch: the whole batch leaves at one instant
	}
	queued := false
	for i := range n {
		p := pkt(i)
		if p.GSOSize > 0 && d.gso > 0 {
			q, err := d.enqueueSuper(p, now)
			queued = queued || q
			if err != nil {
				d.schedule(queued)
				return i, err
			}
			continue
		}
		head, tail := p.Head, p.Payload
		if size := len(head) + len(tail); size > d.mtu {
			d.schedule(queued)
			return i, fmt.Errorf("%w: %d bytes, MTU %d", ErrTooBig, size, d.mtu)
		}
		if d.enqueue(d.copyOf(head, tail), now) {
			queued = true
		}
	}
	d.schedule(queued)
	return n, nil
}

// enqueueSuper cuts the TCP super-segment p into segments of p.GSOSize
// bytes of payload (Config.GSO), as a NIC's TSO does, and enqueues each:
// every one meets its own fate. It reports whether any was queued.
func (d *direction) enqueueSuper(p link.Packet, now int64) (bool, error) {
	size := p.Len()
	hl, err := wire.GSOHeaderLen(p.Head)
	if err != nil {
		return false, fmt.Errorf("memlink: super-segment: %w", err)
	}
	if size > d.gso || hl+int(p.GSOSize) > d.mtu {
		return false, fmt.Errorf("%w: super-segment of %d bytes in segments of %d, GSO %d, MTU %d", ErrTooBig, size, p.GSOSize, d.gso, d.mtu)
	}
	payload := p.Payload
	switch {
	case len(p.Payload) == 0:
		payload = p.Head[hl:]
	case len(p.Head) > hl:
		d.gsoBuf = append(append(d.gsoBuf[:0], p.Head[hl:]...), p.Payload...)
		payload = d.gsoBuf
	}
	d.st.GSOSplit++
	queued := false
	mss := int(p.GSOSize)
	for i, off := 0, 0; off < len(payload); i, off = i+1, off+mss {
		end := min(off+mss, len(payload))
		q := d.copyOf(p.Head[:hl], payload[off:end])
		wire.FinishGSOSegment(q.buf.b[:q.n], hl, i, off, end == len(payload))
		if d.enqueue(q, now) {
			queued = true
		}
	}
	return queued, nil
}

// enqueue decides the fate of one packet, already copied into p, and
// queues it (and a duplicate), or gives its buffer back. The random draws
// happen in a fixed order, and only for impairments that are set, so a
// given Config and write sequence always give the same fates.
func (d *direction) enqueue(p packet, now int64) bool {
	if !d.fate(p, now) {
		d.pool.Put(p.buf)
		return false
	}
	return true
}

// fate is enqueue's decision; false: p is dropped.
func (d *direction) fate(p packet, now int64) bool {
	pkt := p.buf.b[:p.n]
	imp := &d.imp
	d.st.Sent++
	if imp.Drop != nil && imp.Drop(pkt) {
		d.st.DroppedHook++
		return false
	}
	at := now
	if imp.Rate > 0 {
		// Drop-tail: the queue holds the packets still being serialized.
		for d.txEnds.len() > 0 && *d.txEnds.peek() <= now {
			d.txEnds.pop()
		}
		if d.txEnds.len() >= imp.QueueLimit {
			d.st.DroppedQueue++
			return false
		}
		start := max(now, d.busyUntil)
		d.busyUntil = start + int64(len(pkt))*8*int64(time.Second)/imp.Rate
		d.txEnds.push(d.busyUntil)
		at = d.busyUntil
	} else if d.fifo.len()+len(d.held) >= imp.QueueLimit {
		d.st.DroppedQueue++
		return false
	}
	if d.fifo.len()+len(d.held) >= maxInFlight {
		// Only a rate-limited link can get here (a long fat pipe, or a
		// receiver that never attached): bound the memory anyway.
		d.st.DroppedQueue++
		return false
	}
	if d.chance(imp.Loss) {
		d.st.DroppedLoss++
		return false
	}
	at += int64(imp.Delay)
	if imp.Jitter > 0 {
		at += d.rng.Int64N(int64(imp.Jitter) + 1)
	}
	reorder := d.chance(imp.Reorder)
	corrupt := d.chance(imp.Corrupt)
	var bytePos, bit int
	if corrupt && len(pkt) > 0 {
		bytePos, bit = d.rng.IntN(len(pkt)), d.rng.IntN(8)
	}
	dup := d.chance(imp.Duplicate)

	markCE := imp.MarkCE != nil && imp.MarkCE(pkt)
	if markCE {
		e, ok := wire.PacketECN(pkt)
		markCE = ok && (e == wire.ECT0 || e == wire.ECT1)
	}
	if markCE {
		// pkt is the link's own copy: mark it in place, and the
		// duplicate below is a copy of the marked packet.
		wire.SetPacketECN(pkt, wire.CE)
		d.st.MarkedCE++
	}
	var q packet
	if dup {
		q = d.copyOf(pkt, nil) // the duplicate is not corrupted
	}
	if corrupt && len(pkt) > 0 {
		p.buf.b[bytePos] ^= 1 << bit
		d.st.Corrupted++
	}
	if reorder {
		p.at = at + d.reord
		d.held.push(p)
		d.st.Reordered++
	} else {
		at = max(at, d.lastAt)
		d.lastAt = at
		p.at = at
		d.fifo.push(p)
	}
	if dup {
		q.at = max(at, d.lastAt)
		d.lastAt = q.at
		d.fifo.push(q)
		d.st.Duplicated++
	}
	return true
}

// copyOf copies head and then tail into a buffer of the pool.
func (d *direction) copyOf(head, tail []byte) packet {
	b := d.pool.Get().(*pbuf)
	n := copy(b.b, head)
	n += copy(b.b[n:], tail)
	d.seq++
	return packet{seq: d.seq, buf: b, n: n}
}

// schedule makes sure the delivery machinery will look at the queue.
func (d *direction) schedule(queued bool) {
	if !queued || d.disp == nil {
		return // Attach will schedule
	}
	if d.virt != nil {
		d.armLocked()
		return
	}
	if d.sleeping {
		d.sleeping = false
		d.wake()
	}
}

func (d *direction) wake() {
	select {
	case d.kick <- struct{}{}:
	default: // a kick is already pending
	}
}

// next returns the delivery time of the earliest queued packet.
func (d *direction) next() (int64, bool) {
	switch {
	case d.fifo.len() > 0 && len(d.held) > 0:
		return min(d.fifo.peek().at, d.held[0].at), true
	case d.fifo.len() > 0:
		return d.fifo.peek().at, true
	case len(d.held) > 0:
		return d.held[0].at, true
	}
	return 0, false
}

// popDue appends to batch, in delivery order, up to maxBatch packets due at
// now.
func (d *direction) popDue(now int64, batch []packet) []packet {
	for len(batch) < maxBatch {
		fromFIFO := d.fifo.len() > 0
		if fromFIFO && len(d.held) > 0 && d.held[0].before(d.fifo.peek()) {
			fromFIFO = false
		}
		switch {
		case fromFIFO && d.fifo.peek().at <= now:
			batch = append(batch, d.fifo.pop())
		case !fromFIFO && len(d.held) > 0 && d.held[0].at <= now:
			batch = append(batch, d.held.pop())
		default:
			return batch
		}
	}
	return batch
}

// deliver hands a batch to the receiver, without the lock, and recycles the
// buffers. It stops at Close.
func (d *direction) deliver(disp link.Dispatcher, batch []packet) {
	if ld, ok := disp.(link.LoanDispatcher); ok && d.mtu >= lendMTU {
		d.deliverLoaned(ld, batch)
		return
	}
	if vd, ok := disp.(link.ChecksumVouching); ok && d.vouch {
		d.deliverBatch(vd.DeliverVouchedPackets, batch)
		return
	}
	if bd, ok := disp.(link.BatchDispatcher); ok && len(batch) > 1 {
		d.deliverBatch(bd.DeliverPackets, batch)
		return
	}
	for i := range batch {
		p := &batch[i]
		if !d.closed.Load() {
			pkt := p.buf.b[:p.n]
			if d.tap != nil {
				d.tap(d.dir, pkt)
			}
			disp.DeliverPacket(pkt)
			d.delivered.Add(1)
		}
		d.pool.Put(p.buf)
		p.buf = nil
	}
}

// deliverBatch hands the whole batch over in one call. pkts is scratch
// owned by the one delivery pass running at a time.
func (d *direction) deliverBatch(deliver func([][]byte), batch []packet) {
	pkts := d.pkts[:0]
	if !d.closed.Load() {
		pkts = d.gather(pkts, batch)
		deliver(pkts)
		d.delivered.Add(uint64(len(pkts)))
	}
	clear(pkts)
	d.pkts = pkts[:0]
	for i := range batch {
		d.pool.Put(batch[i].buf)
		batch[i].buf = nil
	}
}

// gather appends the packets of batch to pkts, showing each to the tap.
func (d *direction) gather(pkts [][]byte, batch []packet) [][]byte {
	for i := range batch {
		p := &batch[i]
		pkt := p.buf.b[:p.n]
		if d.tap != nil {
			d.tap(d.dir, pkt)
		}
		pkts = append(pkts, pkt)
	}
	return pkts
}

// deliverLoaned hands the whole batch over with the packets' buffers as
// loans: the receiver keeps those it wants (and releases them later), the
// rest come back to the pool here.
func (d *direction) deliverLoaned(ld link.LoanDispatcher, batch []packet) {
	pkts, loans := d.pkts[:0], d.loans[:0]
	if !d.closed.Load() {
		pkts = d.gather(pkts, batch)
		for i := range batch {
			loans = append(loans, batch[i].buf)
		}
		ld.DeliverLoanedPackets(pkts, loans, d.vouch)
		d.delivered.Add(uint64(len(pkts)))
		for i, l := range loans {
			if l == nil {
				batch[i].buf = nil // kept: the receiver releases it
			}
		}
	}
	clear(pkts)
	clear(loans)
	d.pkts, d.loans = pkts[:0], loans[:0]
	for i := range batch {
		if batch[i].buf != nil {
			d.pool.Put(batch[i].buf)
			batch[i].buf = nil
		}
	}
}

func (d *direction) attach(disp link.Dispatcher) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed.Load() {
		return
	}
	d.disp = disp
	if d.virt != nil {
		if _, ok := d.next(); ok {
			d.armLocked()
		}
		return
	}
	if !d.started {
		d.started = true
		if d.timed {
			// Created stopped; run re-arms it for the next delivery time.
			// (A far-future timer left pending would make a synctest
			// bubble jump there when idle.)
			d.timer = d.clk.AfterFunc(math.MaxInt64, d.wake)
			d.timer.Stop()
		}
		d.clk.Go(d.run)
	}
}

// run is the delivery goroutine of the real clock. It blocks only on
// channels (woken by writers and by its timer), so inside a synctest bubble
// it is durably blocked when idle.
func (d *direction) run() {
	batch := make([]packet, 0, maxBatch)
	for {
		d.mu.Lock()
		if d.closed.Load() {
			d.mu.Unlock()
			return
		}
		now := int64(math.MaxInt64) // untimed: everything queued is due
		if d.timed {
			now = d.now()
		}
		batch = d.popDue(now, batch[:0])
		if len(batch) == 0 {
			if at, ok := d.next(); ok {
				d.timer.Reset(time.Duration(at - now))
			}
			d.sleeping = true
			d.mu.Unlock()
			select {
			case <-d.kick:
			case <-d.done:
				return
			}
			continue
		}
		disp := d.disp
		d.mu.Unlock()
		d.deliver(disp, batch)
	}
}

// armLocked points the virtual timer at the earliest queued packet.
func (d *direction) armLocked() {
	at, ok := d.next()
	if !ok || (d.armed && d.armedAt <= at) {
		return
	}
	delay := time.Duration(at - d.now())
	if d.timer == nil {
		d.timer = d.clk.AfterFunc(delay, d.fire)
	} else {
		d.timer.Reset(delay)
	}
	d.armed, d.armedAt = true, at
}

// fire is the virtual timer: deliver everything due now, then re-arm.
func (d *direction) fire() {
	for {
		d.mu.Lock()
		d.armed = false
		if d.closed.Load() {
			d.mu.Unlock()
			return
		}
		d.batch = d.popDue(d.now(), d.batch[:0])
		disp := d.disp
		if len(d.batch) < maxBatch {
			d.armLocked() // the rest is in the future
		}
		d.mu.Unlock()
		if len(d.batch) == 0 {
			return
		}
		d.deliver(disp, d.batch)
		if len(d.batch) < maxBatch {
			return
		}
	}
}

func (d *direction) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed.Swap(true) {
		return
	}
	close(d.done)
	if d.timer != nil {
		d.timer.Stop()
	}
	for d.fifo.len() > 0 {
		d.pool.Put(d.fifo.pop().buf)
	}
	for len(d.held) > 0 {
		d.pool.Put(d.held.pop().buf)
	}
}

func (d *direction) stats() Stats {
	d.mu.Lock()
	s := d.st
	d.mu.Unlock()
	s.Delivered = d.delivered.Load()
	return s
}

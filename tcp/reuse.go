package tcp

import "time"

// Reusing a Conn (issue 13 item 6). A short connection used to allocate its
// Conn, its congestion controller, its loss-recovery and rate state and
// the record of what TakeCounts handed out: some 4 KB a side. A runtime
// that knows a Conn can no longer be reached (its owner closed it and it
// has ended, or it became a TIME-WAIT record) may Reset it and start the
// next connection on it with Reinit or ReinitSynReceived instead of
// NewConn or ResumeSynReceived. Everything of the old connection goes:
// state, sequence numbers, options, timers, buffers, counters, the owner's
// settings. What stays is memory alone, in spare, cleared: the parts made
// on first use are taken from it when the new connection first needs them,
// just as they would otherwise be allocated, so a reused Conn behaves
// exactly like a new one (TestReuseIsFresh).

// connSpare holds the cleared parts a Reset kept.
type connSpare struct {
	loss     *lossState
	rt       *rateState
	reported *StackCounts
	more     *Stats   // the cold counters (stats.go)
	cc       reiniter // a built-in controller, remade in place by makeCongestion
	// snd and rcv are the smallest ring arrays (ringMin bytes) of the
	// send and receive buffers, given back when the connection ended
	// (releaseRing) and zeroed by Reset.
	snd, rcv []byte
}

// Reset clears c of everything its connection left, as if it were the
// zero Conn, keeping only the memory of the parts made on first use (loss
// recovery, rate estimation, the congestion controller, the counts record)
// to spare the next connection's allocations. The caller must be sure
// nothing will call into c for the old connection again: after Reset the
// next call is Reinit or ReinitSynReceived.
func (c *Conn) Reset() {
	sp := c.spare
	if sp == nil {
		// Once in the life of a Conn: the next Resets find it.
		sp = new(connSpare)
	}
	if l := c.snd.loss; l != nil {
		sp.loss = l
	}
	if sp.loss != nil {
		sp.loss.clear()
	}
	if r := c.rt; r != nil {
		sp.rt = r
	}
	if sp.rt != nil {
		*sp.rt = rateState{}
	}
	if r := c.reported; r != nil {
		sp.reported = r
	}
	if sp.reported != nil {
		*sp.reported = StackCounts{}
	}
	if m := c.more; m != nil {
		sp.more = m
	}
	if sp.more != nil {
		*sp.more = Stats{}
	}
	clear(sp.snd) // no byte of the old connection stays
	clear(sp.rcv)
	if r, ok := c.cc.(reiniter); ok {
		// A custom controller (Config.NewCongestion) is the owner's,
		// never kept; a built-in one is remade whole before use.
		sp.cc = r
	}
	*c = Conn{spare: sp}
}

// Reinit resets c (Reset) and makes it what NewConn(cfg, id, sink)
// returns: a connection in state CLOSED for id.
func (c *Conn) Reinit(cfg *Config, id Tuple, sink Sink) {
	c.Reset()
	c.init(cfg, id, sink)
}

// ReinitSynReceived resets c (Reset) and makes it what
// ResumeSynReceived(cfg, id, sink, h, now) returns.
func (c *Conn) ReinitSynReceived(cfg *Config, id Tuple, sink Sink, h *Handshake, now time.Time) {
	c.Reinit(cfg, id, sink)
	c.resumeSynReceived(h, now)
}

// clear empties l as new(lossState) is, keeping the arrays of its transmit
// queue and scoreboard (zeroed: no sequence number of the old connection
// survives in them).
func (l *lossState) clear() {
	txq, sb := l.txq.s, l.sb.r[:0]
	clear(txq)
	clear(sb[:cap(sb)])
	*l = lossState{}
	l.txq.s, l.sb.r = txq, sb
}

// takeLoss returns a cleared loss state: the spare one, else a new one.
// Like the other takes it works on a nil sp (a Conn never Reset).
func (sp *connSpare) takeLoss() *lossState {
	if sp == nil {
		return new(lossState)
	}
	if l := sp.loss; l != nil {
		sp.loss = nil
		return l
	}
	return new(lossState)
}

// takeRates returns a zero rate state: the spare one, else a new one.
func (sp *connSpare) takeRates() *rateState {
	if sp == nil {
		return new(rateState)
	}
	if r := sp.rt; r != nil {
		sp.rt = nil
		return r
	}
	return new(rateState)
}

// takeCounts returns a zero counts record: the spare one, else a new one.
func (sp *connSpare) takeCounts() *StackCounts {
	if sp == nil {
		return new(StackCounts)
	}
	if r := sp.reported; r != nil {
		sp.reported = nil
		return r
	}
	return new(StackCounts)
}

// takeStats returns zero cold counters: the spare ones, else new ones.
func (sp *connSpare) takeStats() *Stats {
	if sp == nil {
		return new(Stats)
	}
	if m := sp.more; m != nil {
		sp.more = nil
		return m
	}
	return new(Stats)
}

// ringSlot is where c's spare keeps the array of r, one of c's two rings.
func (c *Conn) ringSlot(r *ring) *[]byte {
	if r == &c.snd.buf {
		return &c.spare.snd
	}
	return &c.spare.rcv
}

// releaseRing frees the memory of the empty ring r (ring.release) at the
// end of the connection. On a Conn that has been Reset (a runtime reuses
// it) the smallest array, the one a short connection has, goes to the
// spare for the next connection instead of to the collector.
//
// The send ring's array may have been lent out as the payload of a
// segment (PayloadInSendBuffer); the loan ends when the runtime next
// calls Write, which on the next connection comes after this one's
// segments have gone.
func (c *Conn) releaseRing(r *ring) {
	if c.spare != nil && len(r.buf) == ringMin {
		if slot := c.ringSlot(r); *slot == nil {
			*slot = r.buf
		}
	}
	r.release()
}

// adoptRing gives r, about to take need bytes, the spare array when r has
// none and would make one just like it: need fits in ringMin bytes and r
// may hold that many (ring.grow makes the ringMin array then). So the ring
// ends up as it would have anyway, without allocating.
func (c *Conn) adoptRing(r *ring, need int) {
	if r.buf != nil || c.spare == nil || need <= 0 || need > ringMin || r.limit < ringMin {
		return
	}
	slot := c.ringSlot(r)
	if len(*slot) != ringMin {
		return
	}
	r.buf, r.head = *slot, 0
	*slot = nil
}

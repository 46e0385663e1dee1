package tcp

// This file is the core's side of the stack-wide memory budget (issue 12,
// like Linux's tcp_mem): the stack accounts the memory of all its
// connections (BufferMemory) and tells each connection, before each call
// into it, which of three states the stack is in. The core never sees the
// total; it only obeys the state:
//
//   - MemoryNormal: nothing changes.
//   - MemoryPressure: the receive window stops opening beyond a few
//     segments past RCV.NXT, but the right edge already advertised is
//     never moved back (RFC 9293 3.8.6: shrinking the window is strongly
//     discouraged; RFC 7323 section 2.4), and rings that empty give their
//     arrays back at once instead of after reclaimIdle.
//   - MemoryOverLimit: as MemoryPressure, and text that would take memory
//     (out-of-order data, which needs a chunk of its own, and in-order
//     data that needs the receive ring to grow) is not accepted. The rest
//     of the segment (its ACK, window, SACK blocks) is processed as usual;
//     the text is ignored as data beyond the window is, answered with an
//     ACK, and the peer sends it again (RFC 9293 3.10.7.4, "seventh":
//     what is not accepted is not acknowledged). Linux does the same when
//     tcp_try_rmem_schedule fails (TCPRcvQDrop, TCPOFODrop).

// MemoryState is the stack's memory state as a connection sees it.
type MemoryState uint8

const (
	MemoryNormal    MemoryState = iota // under the pressure threshold (or back under the low one)
	MemoryPressure                     // over the pressure threshold: windows stop opening
	MemoryOverLimit                    // at the limit: new data that would take memory is dropped
)

var memoryStateNames = [...]string{"normal", "pressure", "over_limit"}

func (m MemoryState) String() string {
	if int(m) < len(memoryStateNames) {
		return memoryStateNames[m]
	}
	return "MemoryState(?)"
}

// pressureWindowSegs is how many segments past RCV.NXT the window may
// still open to under memory pressure: enough to keep a connection moving
// (and its ACK clock running) while the stack is short of memory, as
// Linux clamps rcv_ssthresh to a few advertised MSS (tcp_clamp_window).
const pressureWindowSegs = 4

// SetMemoryState tells the connection the stack's memory state (see the
// top of this file). The stack calls it before any call into the
// connection whenever the state changed since the last one.
func (c *Conn) SetMemoryState(m MemoryState) { c.memState = m }

// clampWindow is the window the connection may open to in the current
// memory state, given wnd, what the buffer has room for. The caller
// (windowField) keeps the edge already advertised.
func (c *Conn) clampWindow(wnd uint32) uint32 {
	if c.memState == MemoryNormal {
		return wnd
	}
	return min(wnd, uint32(pressureWindowSegs*c.mss))
}

// memoryRefuses reports whether, over the memory limit, the n bytes of
// text at offset off from RCV.NXT would take memory the stack does not
// have, and counts them if so. Out-of-order text always would (a chunk of
// its own, ooo.go); in-order text would when it does not fit the receive
// ring's current array. In-order text that fits is taken: it costs
// nothing, and refusing it would only stall the connection.
func (c *Conn) memoryRefuses(off, n int) bool {
	if c.memState != MemoryOverLimit {
		return false
	}
	if off == 0 && c.rcv.buf.len()+n <= c.rcv.buf.size() {
		return false
	}
	c.cold().MemoryDropped++
	return true
}

// ClampSYN applies the memory state to a SYN,ACK built without a
// connection (Handshake.SynAck, SynCookies.Make): under pressure it
// offers a few segments of its MSS, as a connection's would (clampWindow).
func (m MemoryState) ClampSYN(s *Segment) {
	if m != MemoryNormal && s.Options.HasMSS {
		s.Window = uint16(min(int(s.Window), pressureWindowSegs*int(s.Options.MSS)))
	}
}

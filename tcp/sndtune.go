package tcp

import "syscall"

// This file is send-buffer auto-tuning and the per-connection buffer sizes
// (issue 12: "receive and send buffers that grow with use"; issue 14 item
// 8: SO_SNDBUF and SO_RCVBUF).
//
// Send auto-tuning, after Linux's tcp_sndbuf_expand: the send buffer holds
// what is in flight (unacknowledged) plus what the application has queued
// behind it, so a buffer of about two congestion windows lets the sender
// keep a window in flight with another one queued to follow. A fixed
// buffer caps a long fat path at buffer/RTT whatever the windows allow;
// a fixed large one makes every connection able to hold it. So the limit
// of what Write takes starts at InitialSendBuffer and, on each ACK that
// moves SND.UNA, grows to twice cwnd, up to Config.SendBufferSize (the
// maximum, as the third value of Linux's tcp_wmem). It follows cwnd down
// too (after a loss), but never below the bytes already queued: nothing
// written is ever dropped.
//
// Memory (memory.go): under the stack's memory pressure the limit does
// not grow; over the limit, Write takes only what fits in the send
// ring's present array, or in ringKeep bytes when the array is smaller,
// so every connection can still make progress a little at a time (Linux
// guarantees each socket tcp_wmem[0] even under pressure for the same
// reason), while the stack takes no new memory for sending beyond that.
//
// Drained and idle: the ring gives its array back after reclaimIdle
// (timers.go), and the limit goes back to InitialSendBuffer with it, so an
// idle connection neither holds memory nor a claim to a large buffer; the
// next burst grows it again within a round trip or two, as ACKs come.
//
// Config.NoAutoTune turns this off with receive auto-tuning: the send
// buffer is SendBufferSize from the start, as before.
//
// SetSendBuffer and SetReceiveBuffer are setsockopt's SO_SNDBUF and
// SO_RCVBUF: as Linux does, the size given is doubled (Linux counts its
// bookkeeping in the buffer and doubles to leave room for it; we keep the
// doubling so that programs and scripts written for Linux see the sizes
// they expect) and locks auto-tuning off for that direction
// (SOCK_SNDBUF_LOCK, SOCK_RCVBUF_LOCK).

// InitialSendBuffer is the send buffer a connection starts with (unless
// Config.SendBufferSize is smaller, or NoAutoTune): 64 KiB,
// the receive side's initial window (initialRcvWindow). It is more than
// twice an initial window of 10 segments (RFC 6928), so the first round
// trips are not limited by it, and about what Linux allows a new
// connection (tcp_wmem's default of 16 KiB, expanded at establishment to
// twice its initial window with overhead).
const InitialSendBuffer = 64 << 10

// minSockBuffer is the least a SetSendBuffer or SetReceiveBuffer leaves:
// Linux's SOCK_MIN_SNDBUF and SOCK_MIN_RCVBUF are a few KiB; a buffer
// below two segments would leave the connection unable to send or
// receive a full one while another waits for its ACK.
const minSockBuffer = 4096

// sockBufs is what the owner set with SetSendBuffer and SetReceiveBuffer
// (already doubled); zero: not set, auto-tuned.
type sockBufs struct {
	snd, rcv int
}

// sndAutoTuned reports whether the send buffer follows cwnd.
func (c *Conn) sndAutoTuned() bool { return !c.cfg.NoAutoTune && c.bufs.snd == 0 }

// initSndLimit sets the send ring's limit for a new connection.
func (c *Conn) initSndLimit() {
	switch {
	case c.bufs.snd > 0:
		c.snd.buf.limit = c.bufs.snd
	case c.cfg.NoAutoTune:
		c.snd.buf.limit = c.cfg.sendBufferSize()
	default:
		c.snd.buf.limit = min(InitialSendBuffer, c.cfg.sendBufferSize())
	}
}

// sndExpand moves the send buffer's limit to twice cwnd (see the top of
// this file), or to the unacknowledged bytes and a cwnd beyond them when
// that is more, after every ACK.
//
// Twice cwnd is a window in flight and one queued only while every byte
// sent is delivered in order. In SACK recovery (RFC 6675) the bytes
// SACKed above a hole stay in the buffer until the hole is repaired, a
// round trip or two, and a controller that does not cut its window for a
// random loss (BBR, draft-ietf-ccwg-bbr section 5.6.4.4) keeps sending
// a window a round meanwhile: SND.UNA to SND.MAX grows to two windows
// and more, and a buffer of two leaves nothing to send. At 1 Gbit/s x
// 20 ms with 1 % loss, where every round has a hole, BBR found the
// buffer full and nothing unsent in most rounds; what it delivered then
// fell short of its pacing rate and bw_lo and inflight_lo learned the
// shortfall (issue 11; BENCHMARKS.md, "BBR at 1 Gbit/s with 1 % loss").
// Linux has the same need and gives BBR three windows
// (bbr_sndbuf_expand), counted in buffer truesize, well over twice the
// payload. The unacknowledged bytes are bounded by the peer's window, and
// the whole by SendBufferSize. So the limit moves on ACKs that only SACK
// too: those are the ones that find the hole.
func (c *Conn) sndExpand() {
	if !c.sndAutoTuned() || c.cc == nil {
		return
	}
	cwnd := c.cc.Window()
	unacked := c.snd.buf.len() - c.unsent()
	want := min(max(2*cwnd, unacked+cwnd, InitialSendBuffer), c.cfg.sendBufferSize())
	if c.memState != MemoryNormal {
		want = min(want, c.snd.buf.limit) // no growth under pressure
	}
	c.snd.buf.limit = max(want, c.snd.buf.len())
}

// sndIdle is the send ring's array going back after it stayed empty:
// the limit starts over too.
func (c *Conn) sndIdle() {
	if c.sndAutoTuned() {
		c.snd.buf.limit = min(InitialSendBuffer, c.cfg.sendBufferSize())
	}
}

// sndRoom is how many bytes Write may take now: the room under the
// limit, and over the stack's memory limit only what needs no new memory
// (see the top of this file).
func (c *Conn) sndRoom() int {
	r := &c.snd.buf
	room := r.free()
	if c.memState == MemoryOverLimit {
		room = min(room, max(r.size(), ringKeep)-r.len())
	}
	// The auto-tuned limit creeps up with every ACK (sndExpand), and
	// growing the ring to each new limit copied the whole array each time:
	// 64 MiB over a simulated 1 Gbit/s, 100 ms path spent 28 of its 30 s
	// in memmove and memclr. So the ring in hand grows only once the limit
	// allows a quarter more than it (or the limit is final): growth stays
	// geometric, at the cost of using up to a fifth less than the limit
	// for a while.
	if sz := r.size(); c.sndAutoTuned() && sz > 0 && r.limit < sz+sz/4 && r.limit < c.cfg.sendBufferSize() {
		room = min(room, sz-r.len())
	}
	return max(room, 0)
}

// SetSendBuffer is setsockopt(SO_SNDBUF): the send buffer becomes twice
// n bytes (at least minSockBuffer) and stops auto-tuning. A smaller buffer
// than what is queued drops nothing: Write waits until it drains below.
// n must not be negative.
func (c *Conn) SetSendBuffer(n int) error {
	if n < 0 {
		return syscall.EINVAL
	}
	c.bufs.snd = sockBufSize(n)
	c.snd.buf.limit = max(c.bufs.snd, c.snd.buf.len())
	return nil
}

// SetReceiveBuffer is setsockopt(SO_RCVBUF): the receive buffer becomes
// twice n bytes (at least minSockBuffer), and the window is no longer
// auto-tuned but offers the whole buffer. Set before the connection opens
// (Connect, or on the listener for passive opens), it also chooses the
// window scale our SYN or SYN,ACK announces (RFC 7323 section 2.2).
// After that the scale is fixed: the window can name at most 65,535 <<
// scale bytes, so a larger buffer set later is only as useful as that
// (Linux has the same limit, and the same advice: set SO_RCVBUF before
// connect or listen). A buffer smaller than the window already offered
// does not take the offer back (RFC 9293 3.8.6: the right edge is not
// moved back); data beyond the new size is dropped unacknowledged until
// the application reads, and the peer sends it again. n must not be
// negative.
func (c *Conn) SetReceiveBuffer(n int) error {
	if n < 0 {
		return syscall.EINVAL
	}
	c.bufs.rcv = sockBufSize(n)
	c.rcv.buf.limit = max(c.bufs.rcv, c.rcv.buf.len())
	if c.state == Closed || c.state == Listen {
		// Not yet announced: the scale follows the buffer (openCommon
		// sets it again at Connect).
		c.rcv.wscale = c.ourWindowShift()
	}
	return nil
}

// sockBufSize is what SO_SNDBUF and SO_RCVBUF make of n: twice it, at
// least minSockBuffer, at most 1 GiB: the most a window can name (65,535
// << 14, RFC 7323 section 2.3), and no overflow where int has 32 bits.
func sockBufSize(n int) int {
	n = min(n, 1<<29)
	return max(2*n, minSockBuffer)
}

// SendBufferSize returns the send buffer's present size: what Write may
// hold, auto-tuned or set (getsockopt(SO_SNDBUF)).
func (c *Conn) SendBufferSize() int { return c.snd.buf.limit }

// ReceiveBufferSize returns the receive buffer's size: what SetReceiveBuffer
// set, or the configured maximum auto-tuning grows the window towards
// (getsockopt(SO_RCVBUF)).
func (c *Conn) ReceiveBufferSize() int { return c.rcvBufSize() }

// rcvBufSize is the receive buffer's size: set by the owner, or Config's.
func (c *Conn) rcvBufSize() int {
	if c.bufs.rcv > 0 {
		return c.bufs.rcv
	}
	return c.cfg.receiveBufferSize()
}

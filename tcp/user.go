package tcp

import (
	"io"
	"time"

	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/wire"
)

// This file holds the user calls of RFC 9293 section 3.10.1 to 3.10.6.

// Connect is an active OPEN (RFC 9293 section 3.10.1, CLOSED state): choose
// the ISS, send a SYN, enter SYN-SENT.
func (c *Conn) Connect(now time.Time) error {
	if c.state != Closed || c.err != nil {
		return ErrAlreadyOpen
	}
	if err := c.cfg.Validate(); err != nil {
		return err
	}
	c.openCommon(now)
	// The state changes first so that whoever watches sees the SYN leave
	// from SYN-SENT; nothing else happens in between.
	c.setState(now, SynSent, UserOpen)
	c.sendSYN(now)
	return nil
}

// Listen is a passive OPEN: enter LISTEN and wait for a SYN.
func (c *Conn) Listen(now time.Time) error {
	if c.state != Closed || c.err != nil {
		return ErrAlreadyOpen
	}
	if err := c.cfg.Validate(); err != nil {
		return err
	}
	c.passive = true
	c.setState(now, Listen, UserListen)
	return nil
}

func (c *Conn) openCommon(now time.Time) {
	c.snd.iss = c.cfg.isn().ISN(c.id, now)
	c.snd.una = c.snd.iss
	c.snd.nxt = c.snd.iss
	c.snd.max = c.snd.iss
	// RFC 6582 3.2 step 1: recover starts at the ISS. (recover here is
	// one past the highest sequence number sent, so "SEG.ACK covers more
	// than recover" reads SEG.ACK-1 >= recover.)
	c.snd.recover = c.snd.iss
	c.snd.bufStart = c.snd.iss + 1
	c.tsEpoch = tsClockEpoch
	c.tsOffset = c.cfg.isn().TimestampOffset(c.id)
	c.lastRecv = now
	c.rcv.wscale = c.ourWindowShift()
	c.mss = c.defaultPeerMSS()
	c.peerMSS = c.mss
	c.cc = c.makeCongestion(c.mss)
}

// ourWindowShift is the smallest shift that lets the receive buffer be
// advertised whole (RFC 7323 section 2.3: at most 14).
func (c *Conn) ourWindowShift() uint8 {
	if c.cfg.NoWindowScale {
		return 0
	}
	var s uint8
	for s < maxWindowShift && c.rcvBufSize()>>s > maxWindowField {
		s++
	}
	return s
}

// defaultPeerMSS is what we assume when the peer sends no MSS option: 536
// for IPv4 (RFC 9293 section 3.7.1), 1220 for IPv6 (RFC 8200 section 8.3).
func (c *Conn) defaultPeerMSS() int {
	if c.id.Remote.Addr().Is4() || c.id.Remote.Addr().Is4In6() {
		return defaultMSS4
	}
	return defaultMSS6
}

// ourMSS is the MSS option we send.
func (c *Conn) ourMSS() uint16 { return c.cfg.mss(c.id.Remote.Addr()) }

// Write is SEND (RFC 9293 section 3.10.2): queue p for transmission and
// send what the windows allow. It takes what fits in the send buffer and
// returns ErrWouldBlock when nothing fits.
func (c *Conn) Write(now time.Time, p []byte) (int, error) {
	switch c.state {
	case Closed:
		if c.err != nil {
			return 0, c.err
		}
		return 0, ErrNotConnected
	case Listen:
		// RFC 9293 3.10.2 lets SEND turn a LISTEN into an active open; no
		// sockets API does that, and we do not either.
		return 0, ErrNotConnected
	case SynSent, SynReceived, Established, CloseWait:
		// Data sent before the handshake completes is queued (3.10.2).
	default:
		return 0, ErrClosing // "connection closing"
	}
	if c.snd.finQueued {
		return 0, ErrClosing
	}
	if len(p) == 0 {
		return 0, nil
	}
	k := min(len(p), c.sndRoom())
	c.adoptRing(&c.snd.buf, k) // reuse.go
	n := c.snd.buf.write(p[:k])
	if n == 0 {
		return 0, ErrWouldBlock
	}
	c.output(now)
	return n, nil
}

// Read is RECEIVE (RFC 9293 section 3.10.3): copy received bytes into p.
// It returns io.EOF once the peer's FIN has been reached, ErrWouldBlock
// when nothing is there yet, and the connection's error after a reset.
func (c *Conn) Read(now time.Time, p []byte) (int, error) {
	if c.rcvBuffered() > 0 {
		n := c.readBuffered(p, false) // lend.go
		if c.rcvBuffered() == 0 && (c.state == TimeWait || c.state == Closed) {
			c.releaseRing(&c.rcv.buf) // kept only for this read (see setState)
		}
		c.armReclaim(now)
		c.rcvSpaceAdjust(now, n)
		c.afterRead(now)
		return n, nil
	}
	return 0, c.readEmpty(len(p))
}

// PostRead offers p, the buffer of a reader now waiting in RECEIVE (Read
// returned ErrWouldBlock), as the place for in-order data: what arrives
// while nothing is buffered before it and no hole waits to be filled is
// copied straight into p instead of into the receive buffer and out again
// (issue 13 item 1), as if read at once. p stays in use until TakeRead,
// which the caller must call before p goes back to the reader. One buffer
// at a time; an empty p offers nothing.
func (c *Conn) PostRead(p []byte) {
	c.rcv.post, c.rcv.placed = p, 0
}

// TakeRead ends the offer of PostRead and returns how many bytes went
// into its buffer, which count as read then (RECEIVE returned them).
func (c *Conn) TakeRead(now time.Time) int {
	n := c.rcv.placed
	c.rcv.post, c.rcv.placed = nil, 0
	if n > 0 {
		c.rcvSpaceAdjust(now, n)
		c.afterRead(now)
	}
	return n
}

// Placed returns how many bytes have gone into the PostRead buffer so far.
func (c *Conn) Placed() int { return c.rcv.placed }

// placeDirect copies the head of in-order data into the buffer a waiting
// reader posted, when that keeps the byte order: nothing buffered ahead
// of it, no out-of-order data to join behind it, reading not shut down.
// It returns how much it took.
func (c *Conn) placeDirect(data []byte) int {
	if c.rcv.post == nil || c.rcvBuffered() > 0 || !c.rcv.ooo.empty() || c.readShut {
		return 0
	}
	k := copy(c.rcv.post[c.rcv.placed:], data)
	c.rcv.placed += k
	return k
}

// Peek is RECEIVE without consuming, recv(2)'s MSG_PEEK: it copies into p
// the in-order bytes Read would return and leaves them in the receive
// buffer, so the next Read or Peek gets them again. Nothing else changes:
// the window does not open (no window update is sent, RFC 9293 3.8.6.2.2
// moves the right edge only as the user consumes data), no timer moves.
// With nothing buffered it answers as Read does: io.EOF after the peer's
// FIN, the connection's error after a reset, ErrWouldBlock while data may
// still come.
func (c *Conn) Peek(now time.Time, p []byte) (int, error) {
	if c.rcvBuffered() > 0 {
		return c.readBuffered(p, true), nil // lend.go
	}
	return 0, c.readEmpty(len(p))
}

// readEmpty is what Read and Peek of an n-byte buffer return when nothing
// is buffered to read.
func (c *Conn) readEmpty(n int) error {
	switch {
	case c.err != nil:
		return c.err
	case c.haveFIN:
		return io.EOF
	case c.state == Closed || c.state == Listen:
		return ErrNotConnected
	case n == 0:
		return nil
	}
	return ErrWouldBlock
}

// afterRead sends a window update when reading opened the window enough
// to matter. windowField already holds the right edge back until it can
// move by min(half the buffer, one MSS) (RFC 9293 3.8.6.2.2, receiver-side
// silly window avoidance); the update goes out when the window it would
// now offer is at least twice the one the peer has, which covers a window
// reopening from zero (RFC 1122 4.2.3.3; Linux's rule too). Smaller gains
// ride on the next ACK.
func (c *Conn) afterRead(now time.Time) {
	if !c.state.Synchronized() || c.state.recvClosed() {
		return
	}
	var have uint32 // the window the peer has now
	if c.rcv.advEdge.GreaterThan(c.rcv.nxt) {
		have = uint32(c.rcv.nxt.Size(c.rcv.advEdge))
	}
	offer := uint32(c.windowField()) << c.rcv.wscale
	if offer > have && offer >= 2*have {
		c.stats.WindowUpdates++
		c.rcv.ackNow = true
		c.rcv.ackPending = true
		c.output(now)
	}
}

// Readable returns how many bytes Read can return now.
func (c *Conn) Readable() int { return c.rcvBuffered() }

// Writable returns how many bytes Write can take now.
func (c *Conn) Writable() int { return c.sndRoom() }

// Unsent returns the bytes queued but not yet acknowledged.
func (c *Conn) Unacked() int { return c.snd.buf.len() }

// EOF reports whether the peer's FIN has been received.
func (c *Conn) EOF() bool { return c.haveFIN }

// Close is CLOSE (RFC 9293 section 3.10.4): no more data will be sent; a
// FIN follows the data already queued. The other direction stays open, so
// this is also the half-close of shutdown(SHUT_WR).
func (c *Conn) Close(now time.Time) error {
	switch c.state {
	case Closed:
		if c.err != nil {
			return c.err
		}
		return ErrNotConnected
	case Listen, SynSent:
		// "Delete the TCB": nothing was synchronized.
		c.setState(now, Closed, UserClose)
		return nil
	case SynReceived, Established, CloseWait:
		if c.snd.finQueued {
			return nil
		}
		c.snd.finQueued = true
		switch c.state {
		case SynReceived:
			// 3.10.4: with no SENDs pending, form a FIN and go to
			// FIN-WAIT-1; the FIN leaves once the handshake has a
			// window to send it into (our output waits for ESTABLISHED
			// rules only for data, a FIN may go now).
			c.setState(now, FinWait1, UserClose)
		case Established:
			c.setState(now, FinWait1, UserClose)
		case CloseWait:
			c.setState(now, LastAck, UserClose)
		}
		c.output(now)
		return nil
	default:
		// FIN-WAIT-1, FIN-WAIT-2, CLOSING, LAST-ACK, TIME-WAIT: "error:
		// connection closing". Closing twice is harmless for a socket.
		return nil
	}
}

// Abort is ABORT (RFC 9293 section 3.10.5): send a RST if the connection is
// synchronized or in SYN-RECEIVED, drop everything, enter CLOSED.
func (c *Conn) Abort(now time.Time) {
	switch c.state {
	case Closed:
		return
	case SynReceived, Established, FinWait1, FinWait2, CloseWait:
		// <SEQ=SND.NXT><CTL=RST>, with the RFC's SND.NXT: the highest
		// sequence number sent (ours moves back to SND.UNA after a
		// timeout, and a RST there could fall left of the peer's window),
		// but no further than the peer's window reaches, so that a RST
		// after a zero-window probe is still acceptable (acceptableSeq).
		c.sendRST(now, c.acceptableSeq())
	}
	c.abort(now, ErrConnectionAbort, UserAbort)
}

// Release is what closing a socket means: the owner will neither read
// nor write again. Unread data, or linger set to zero (abort true), turn it
// into an ABORT with RST (RFC 9293 section 3.6, RFC 2525 section 2.17);
// otherwise it is a CLOSE, and afterwards data that still arrives is
// answered with RST and a FIN-WAIT-2 that lasts too long is ended.
func (c *Conn) Release(now time.Time, abort bool) {
	c.released = true
	if c.state == Closed {
		// Received data nobody will read now: its memory goes (setState
		// kept it for the owner to read).
		c.discardBuffered()
		c.releaseRing(&c.rcv.buf)
		return
	}
	if abort || c.rcvBuffered() > 0 || (c.state == Listen) {
		if c.state == Listen {
			c.setState(now, Closed, UserClose)
			return
		}
		c.Abort(now)
		return
	}
	c.Close(now)
	if c.state == FinWait2 {
		c.tm.timewait = now.Add(c.cfg.finWait2Timeout())
	}
}

// CloseRead is shutdown(SHUT_RD): data already buffered is dropped and
// what arrives later is acknowledged and discarded. Data still arrives
// and is acknowledged as before: RFC 9293 has no half-close of the
// receiving side, and an unacknowledged segment would only come back
// (Linux acknowledges it too; FreeBSD also drops it). Nothing is sent
// unless buffered data was dropped, which opens the window as reading
// it would (a window update, afterRead); with nothing buffered the
// window the peer has is still right (Linux sends nothing either).
func (c *Conn) CloseRead(now time.Time) {
	c.readShut = true
	n := c.rcvBuffered()
	c.discardBuffered()
	c.armReclaim(now)
	if n > 0 {
		c.afterRead(now)
	}
}

// SetNoDelay turns Nagle's algorithm off (true) or on.
func (c *Conn) SetNoDelay(now time.Time, noDelay bool) {
	c.nodelay = noDelay
	c.output(now)
}

// SetKeepAlive turns keep-alive probes on or off (RFC 9293 3.8.4).
func (c *Conn) SetKeepAlive(now time.Time, on bool) {
	c.keepAlive = on
	c.armKeepAlive(now)
}

// SetKeepAliveParams sets this connection's keep-alive timing: the idle
// time before the first probe, the interval between probes and how many
// unanswered probes end the connection (like TCP_KEEPIDLE, TCP_KEEPINTVL
// and TCP_KEEPCNT). A zero or negative value leaves that setting as it is
// (at first, the Config's).
func (c *Conn) SetKeepAliveParams(now time.Time, idle, interval time.Duration, count int) {
	if idle > 0 {
		c.kaIdle = idle
	}
	if interval > 0 {
		c.kaInterval = interval
	}
	if count > 0 {
		c.kaCount = count
	}
	if c.keepAlive {
		c.armKeepAlive(now)
	}
}

// Info is STATUS (RFC 9293 section 3.10.6), shaped like Linux's tcp_info.
type Info struct {
	State       State
	RTT, RTTVar time.Duration // smoothed RTT and its variation (RFC 6298)
	RTO         time.Duration
	MSS         int // bytes of payload per segment we send
	PeerMSS     int
	SndWnd      int // the peer's window, scaled
	RcvWnd      int // our advertised window, scaled
	RcvSpace    int // the most receive window we advertise now: auto-tuned (autotune.go), or ReceiveBufferSize with NoAutoTune
	SndWScale   uint8
	RcvWScale   uint8
	Timestamps  bool
	SACK        bool
	ECN         bool // ECN negotiated (RFC 3168): tcp_info's TCPI_OPT_ECN
	Unacked     int  // bytes sent and not acknowledged
	SendQueue   int  // bytes in the send buffer
	RecvQueue   int  // bytes waiting to be read
	ISS, IRS    seqnum.Value
	SndUna      seqnum.Value
	SndNxt      seqnum.Value
	RcvNxt      seqnum.Value
	Backoff     int // consecutive retransmission timeouts
	OutOfOrder  int // bytes held that arrived out of order
	Memory      int // bytes the buffers hold: both rings' arrays and the out-of-order data (BufferMemory)
	// Congestion control: the controller's name ("cubic", "newreno"),
	// cwnd and ssthresh in bytes, the least RTT sample, and the delivery
	// rate (bytes per second: the latest sample, rate.go; without SACK,
	// over the last round trip). PacingRate is the rate segments are
	// paced at (pacing.go), 0 when they are not.
	CongestionControl string
	CWnd              int
	SSThresh          int
	MinRTT            time.Duration
	PacingRate        int64
	DeliveryRate      int64

	// Loss recovery (recovery.go, rack.go).
	LossDetection LossDetection // in use: rack or dupthresh; empty without SACK
	Recovering    bool          // in fast recovery (RFC 6675 / RFC 6582)
	SACKedBytes   int           // bytes above SND.UNA the peer has SACKed
	LostBytes     int           // bytes marked lost and not yet resent
	ReorderWindow time.Duration // RACK's reo_wnd now (RFC 8985 section 6.2)
	Stats
}

// Info returns the connection's status.
func (c *Conn) Info() Info {
	i := Info{
		State:      c.state,
		RTT:        c.rtt.srtt,
		RTTVar:     c.rtt.rttvar,
		RTO:        c.rtt.current(),
		MSS:        c.mss,
		PeerMSS:    c.peerMSS,
		SndWnd:     int(c.snd.wnd),
		RcvWnd:     int(c.rcvWindow()),
		RcvSpace:   c.rcvLimit(),
		SndWScale:  c.snd.wscale,
		RcvWScale:  c.rcv.wscale,
		Timestamps: c.tsOK,
		SACK:       c.sackOK,
		ECN:        c.ecn.ok,
		Unacked:    int(c.snd.una.Size(c.snd.max)),
		SendQueue:  c.snd.buf.len(),
		RecvQueue:  c.rcvBuffered(),
		ISS:        c.snd.iss,
		IRS:        c.rcv.irs,
		SndUna:     c.snd.una,
		SndNxt:     c.snd.nxt,
		RcvNxt:     c.rcv.nxt,
		Backoff:    c.snd.retransmits,
		OutOfOrder: c.rcv.ooo.bytes(),
		Memory:     c.BufferMemory(),
		Recovering: c.snd.inRecovery,
		Stats:      c.Stats(),
	}
	if c.sackOK {
		i.LossDetection = c.cfg.lossDetection()
	}
	if c.sackOK && c.snd.loss != nil { // none made yet: all of these are zero
		i.SACKedBytes = c.lr().sb.sacked
		if c.rackOn() {
			i.LostBytes = c.lr().txq.lostBytes
			i.ReorderWindow = c.rackReoWnd()
		} else if c.snd.una != c.snd.max {
			i.LostBytes = c.lr().sb.unsackedIn(c.snd.una, c.lostBelow())
		}
	}
	i.MinRTT, i.DeliveryRate, i.PacingRate = c.rtt.min, c.deliveryRate(), c.pacingRate()
	if c.cc != nil {
		i.CongestionControl = c.cc.Name()
		i.CWnd = c.cc.Window()
		i.SSThresh = c.cc.SlowStartThreshold()
	}
	return i
}

// sendSYN sends our SYN (in SYN-SENT) or SYN,ACK (in SYN-RECEIVED, after a
// passive or simultaneous open), with the options of RFC 9293 3.7.1,
// RFC 7323 and RFC 2018. It is also the retransmission of either.
func (c *Conn) sendSYN(now time.Time) {
	s := &c.out
	*s = Segment{Seq: c.snd.iss, Flags: wire.SYN}
	answer := c.haveSYN
	if answer {
		s.Flags |= wire.ACK
		s.Ack = c.rcv.nxt
	}
	// RFC 7323 section 2.2: the window in a SYN is never scaled.
	s.Window = uint16(min(c.clampWindow(c.rcvWindow()), 0xFFFF))
	o := &s.Options
	o.HasMSS, o.MSS = true, c.ourMSS()
	// A first SYN offers what the config allows; a SYN,ACK only echoes
	// what the peer's SYN offered (RFC 7323 sections 2.2 and 3.2, RFC 2018
	// section 2).
	if !c.cfg.NoWindowScale && (!answer || c.synWS) {
		o.HasWindowScale, o.WindowScale = true, c.rcv.wscale
	}
	if !c.cfg.NoSACK && (!answer || c.synSACK) {
		o.SACKPermitted = true
	}
	if !c.cfg.NoTimestamps && (!answer || c.synTS) {
		o.HasTimestamps = true
		o.TSVal = c.tsNow(now)
		if answer {
			o.TSEcr = c.tsRecent
		}
	}
	c.ecnSYNFlags(s)
	if c.snd.max != c.snd.iss {
		c.stampRetransmission(s) // the SYN went out before
	}
	c.snd.nxt = c.snd.iss + 1
	if c.snd.max.LessThan(c.snd.nxt) {
		c.snd.max = c.snd.nxt
	}
	if c.snd.stalled.IsZero() {
		c.snd.stalled = now // USER TIMEOUT counts from the first SYN
	}
	if c.tm.rtx.IsZero() {
		c.armRTX(now)
	}
	if c.snd.retransmits == 0 {
		c.snd.rttTiming, c.snd.rttSeq, c.snd.rttTime = true, c.snd.iss, now
	}
	if answer {
		c.noteAckSent(s)
	}
	c.emit(s)
}

// tsNow is our TSval clock: milliseconds since tsEpoch (tsClockEpoch),
// plus a per-connection offset (RFC 7323 section 5.4).
func (c *Conn) tsNow(now time.Time) uint32 {
	return uint32(now.Sub(c.tsEpoch)/time.Millisecond) + c.tsOffset
}

func (c *Conn) emit(s *Segment) {
	c.stats.SegsOut += uint64(s.Pieces()) // what the wire carries, as Linux counts a TSO segment's gso_segs
	c.paceSent(len(s.Payload))
	if c.sink != nil {
		c.sink.SendSegment(c, s)
	}
}

package stack

import (
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/synack/synack/clock"
	"github.com/synack/synack/tcp"
)

// dgramSock is what a UDP socket and a ping socket share: the queue of
// datagrams received and not yet read, charged against rcvbuf, and the
// blocking of readers on it, with deadlines. Its fields are under s.mu.
type dgramSock struct {
	q      []datagram
	qbytes int // charged to the queue (udpCharge)
	rcvbuf int
	closed bool
	gate   *clock.Gate // made by the first wait
	rwait  int32
	rdl    time.Time // read deadline; zero: none
	wdl    time.Time // write deadline
}

// datagram is one received datagram, its sender (port 0 for ICMP) and,
// for the UDP forwarder, its original destination.
type datagram struct {
	from, to netip.AddrPort
	data     []byte
}

// wake wakes the calls blocked on the socket, which re-check their
// conditions. The lock is held.
func (d *dgramSock) wake() {
	if d.rwait > 0 {
		d.gate.Broadcast()
	}
}

// setDeadline sets the read deadline (r) and the write deadline (w) under
// the lock, and wakes readers to look at it; net.ErrClosed once closed.
func (d *dgramSock) setDeadline(s *Stack, t time.Time, r, w bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d.closed || s.closed {
		return net.ErrClosed
	}
	if r {
		d.rdl = t
	}
	if w {
		d.wdl = t
	}
	d.wake()
	return nil
}

// read takes the first datagram into p (cut to it) and returns its
// length and addresses (g without its data), blocking until one is queued, the read deadline
// passes (os.ErrDeadlineExceeded) or the socket closes (net.ErrClosed).
// pending, if not nil, reports an error to return before the queue (UDP's
// ICMP errors).
func (d *dgramSock) read(s *Stack, p []byte, pending func() error) (n int, g datagram, err error) {
	err = s.block(stackLocker{s}, &d.gate, &d.rwait, &d.rdl, nil, func() error {
		if d.closed || s.closed {
			return net.ErrClosed
		}
		if !d.rdl.IsZero() && expired(s.clock.Now(), &d.rdl) {
			return os.ErrDeadlineExceeded
		}
		if pending != nil {
			if err := pending(); err != nil {
				return err
			}
		}
		if len(d.q) == 0 {
			return tcp.ErrWouldBlock
		}
		g = d.q[0]
		d.q[0] = datagram{}
		d.q = d.q[1:]
		if len(d.q) == 0 {
			d.q = nil // let the backing array go
		}
		d.qbytes -= udpCharge(len(g.data))
		n = copy(p, g.data)
		g.data = nil
		return nil
	})
	return n, g, err
}

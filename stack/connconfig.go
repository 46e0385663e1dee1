package stack

import (
	"net"
	"syscall"

	"github.com/synack/synack/tcp"
)

// ConnConfig sets, for the connections of one dial (DialTCPWith) or of one
// listener (ListenTCPWith, ForwarderOptions.Conn), what Options.TCP sets
// for the whole stack and what must be known before the handshake: the
// SYN or SYN,ACK already offers the window scale the receive buffer
// decides (RFC 7323 section 2.2), which no later SetReadBuffer can
// change. It is what setting SO_RCVBUF, TCP_CONGESTION or SO_KEEPALIVE on
// a socket before connect(2), or on a listening socket for the
// connections it accepts, does on Linux. The zero value changes nothing:
// a field left zero keeps Options.TCP's value.
type ConnConfig struct {
	// ReceiveBufferSize and SendBufferSize bound the connection's
	// buffers as Options.TCP's fields of the same names do (auto-tuning
	// grows the window and the send buffer towards them). Negative is
	// EINVAL.
	ReceiveBufferSize, SendBufferSize int
	// CongestionControl names the controller ("cubic", "bbr",
	// "newreno"); an unknown name fails the dial or the listen.
	CongestionControl string
	// KeepAlive, when Enable is set, turns keep-alive on from the start,
	// as net.Dialer's and net.ListenConfig's KeepAliveConfig do: a zero
	// Idle, Interval or Count takes Go's default (15 s, 15 s, 9), a
	// negative one Options.TCP's. Enable unset leaves Options.TCP's
	// keep-alive as it is.
	KeepAlive net.KeepAliveConfig
}

// apply writes cc's fields over c, a copy of the stack's Config.
func (cc ConnConfig) apply(c *tcp.Config) {
	if cc.ReceiveBufferSize > 0 {
		c.ReceiveBufferSize = cc.ReceiveBufferSize
	}
	if cc.SendBufferSize > 0 {
		c.SendBufferSize = cc.SendBufferSize
	}
	if cc.CongestionControl != "" {
		c.CongestionControl = cc.CongestionControl
		c.NewCongestion = nil // a name given here wins over the stack's factory
	}
	if ka := cc.KeepAlive; ka.Enable {
		c.KeepAlive = true
		switch {
		case ka.Idle == 0:
			c.KeepAliveIdle = netKeepAliveIdle
		case ka.Idle > 0:
			c.KeepAliveIdle = ka.Idle
		}
		switch {
		case ka.Interval == 0:
			c.KeepAliveInterval = netKeepAliveInterval
		case ka.Interval > 0:
			c.KeepAliveInterval = ka.Interval
		}
		switch {
		case ka.Count == 0:
			c.KeepAliveCount = netKeepAliveCount
		case ka.Count > 0:
			c.KeepAliveCount = ka.Count
		}
	}
}

// checkConnConfig reports why connections cannot be made with cc: a
// negative buffer size (EINVAL), or a congestion control name no
// controller is registered under (tcp.ErrUnknownCongestionControl).
func (s *Stack) checkConnConfig(cc ConnConfig) error {
	if cc == (ConnConfig{}) {
		return nil
	}
	if cc.ReceiveBufferSize < 0 || cc.SendBufferSize < 0 {
		return syscall.EINVAL
	}
	c := s.cfg
	cc.apply(&c)
	return c.Validate()
}

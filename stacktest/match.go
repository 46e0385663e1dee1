package stacktest

import (
	"bytes"
	"fmt"

	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/wire"
)

// Match checks one property of a segment for [Peer.Expect]: nil when the
// segment has it, otherwise an error that says what was wanted.
type Match func(Segment) error

// Flags wants exactly the flags f.
func Flags(f wire.TCPFlags) Match {
	return func(s Segment) error {
		if s.Flags != f {
			return fmt.Errorf("flags %v, want %v", s.Flags, f)
		}
		return nil
	}
}

// Seq wants sequence number v.
func Seq(v seqnum.Value) Match {
	return func(s Segment) error {
		if s.Seq != v {
			return fmt.Errorf("seq %d, want %d", s.Seq, v)
		}
		return nil
	}
}

// Ack wants acknowledgment number v.
func Ack(v seqnum.Value) Match {
	return func(s Segment) error {
		if s.Ack != v {
			return fmt.Errorf("ack %d, want %d", s.Ack, v)
		}
		return nil
	}
}

// Window wants the (unscaled) window field w.
func Window(w uint16) Match {
	return func(s Segment) error {
		if s.Window != w {
			return fmt.Errorf("win %d, want %d", s.Window, w)
		}
		return nil
	}
}

// PayloadLen wants n bytes of payload.
func PayloadLen(n int) Match {
	return func(s Segment) error {
		if len(s.Payload) != n {
			return fmt.Errorf("%d bytes of payload, want %d", len(s.Payload), n)
		}
		return nil
	}
}

// Payload wants exactly the payload b.
func Payload(b []byte) Match {
	return func(s Segment) error {
		if !bytes.Equal(s.Payload, b) {
			return fmt.Errorf("payload %q, want %q", s.Payload, b)
		}
		return nil
	}
}

// From wants the segment to come from port (the stack's side).
func From(port uint16) Match {
	return func(s Segment) error {
		if s.Src.Port() != port {
			return fmt.Errorf("from port %d, want %d", s.Src.Port(), port)
		}
		return nil
	}
}

// To wants the segment to go to port (the peer's side).
func To(port uint16) Match {
	return func(s Segment) error {
		if s.Dst.Port() != port {
			return fmt.Errorf("to port %d, want %d", s.Dst.Port(), port)
		}
		return nil
	}
}

// MSS wants an MSS option of m (RFC 9293 section 3.7.1).
func MSS(m uint16) Match {
	return func(s Segment) error {
		if !s.Options.HasMSS || s.Options.MSS != m {
			return fmt.Errorf("options %+v, want mss %d", s.Options, m)
		}
		return nil
	}
}

// WindowScale wants a window-scale option of shift (RFC 7323 section 2).
func WindowScale(shift uint8) Match {
	return func(s Segment) error {
		if !s.Options.HasWindowScale || s.Options.WindowScale != shift {
			return fmt.Errorf("options %+v, want wscale %d", s.Options, shift)
		}
		return nil
	}
}

// TCPOptions wants f to accept the segment's options, for anything the other
// matchers do not cover (timestamps, SACK blocks).
func TCPOptions(f func(wire.TCPOptions) error) Match {
	return func(s Segment) error { return f(s.Options) }
}

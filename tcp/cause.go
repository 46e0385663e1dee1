package tcp

import "fmt"

// Cause says why a connection changed state: a user call, an arriving
// segment, or a timeout (RFC 9293 section 3.10 sorts the events the same
// way). String gives the words the ladder and the trace print; the zero
// Cause is "no transition" (a segment's trace entry).
type Cause uint8

const (
	NoCause Cause = iota

	// User calls (RFC 9293 3.10.1-3.10.5).
	UserOpen   // active OPEN: "user CONNECT"
	UserListen // passive OPEN: "user LISTEN"
	UserClose  // CLOSE
	UserAbort  // ABORT

	// SEGMENT ARRIVES (RFC 9293 3.10.7).
	RcvSYN             // a SYN in LISTEN, a SYN that ends SYN-RECEIVED or TIME-WAIT
	RcvSYNACK          // the SYN,ACK that completes an active open
	RcvSYNSimultaneous // a SYN in SYN-SENT: simultaneous open (3.10.7.3)
	RcvACKOfSYN        // the ACK that ends SYN-RECEIVED
	RcvACKOfFIN        // the ACK of our FIN
	RcvFIN             // the peer's FIN
	RcvRST             // a RST in the window
	RcvSYNCookie       // an ACK carrying a valid SYN cookie (RFC 4987 3.6)
	RcvICMPUnreachable // a hard ICMP error (RFC 5461, RFC 9293 3.9.1.4)
	DataAfterClose     // data for a socket its owner closed: RST (RFC 2525 2.17)

	// Timeouts (RFC 9293 3.10.8) and the stack's own reasons.
	Timeout2MSL       // TIME-WAIT's 2MSL ran out
	FinWait2Timeout   // the orphaned FIN-WAIT-2 timeout (Linux's tcp_fin_timeout)
	RetransmitTimeout // retransmissions (or zero-window probes) gave up (R2, RFC 9293 3.8.3)
	UserTimeout       // USER TIMEOUT (RFC 9293 3.8.3, RFC 5482)
	KeepAliveTimeout  // keep-alive probes unanswered (RFC 9293 3.8.4)
	ReusedByConnect   // a TIME-WAIT entry taken over by a new CONNECT on the same tuple
	OrphanRetries     // a closed connection's retries ran out (Config.OrphanRetries, Linux's tcp_orphan_retries)

	numCauses
)

var causeText = [numCauses]string{
	NoCause:            "",
	UserOpen:           "user CONNECT",
	UserListen:         "user LISTEN",
	UserClose:          "user CLOSE",
	UserAbort:          "user ABORT",
	RcvSYN:             "rcv SYN",
	RcvSYNACK:          "rcv SYN,ACK",
	RcvSYNSimultaneous: "rcv SYN (simultaneous open)",
	RcvACKOfSYN:        "rcv ACK of SYN",
	RcvACKOfFIN:        "rcv ACK of FIN",
	RcvFIN:             "rcv FIN",
	RcvRST:             "rcv RST",
	RcvSYNCookie:       "rcv ACK with valid SYN cookie",
	RcvICMPUnreachable: "rcv ICMP unreachable",
	DataAfterClose:     "data after close",
	Timeout2MSL:        "2MSL timeout",
	FinWait2Timeout:    "FIN-WAIT-2 timeout",
	RetransmitTimeout:  "retransmission limit",
	UserTimeout:        "user timeout",
	KeepAliveTimeout:   "keep-alive timeout",
	ReusedByConnect:    "reused by CONNECT",
	OrphanRetries:      "orphan retries",
}

// String returns the cause in the words a person reads: "rcv SYN,ACK",
// "user CLOSE", "2MSL timeout".
func (c Cause) String() string {
	if c < numCauses {
		return causeText[c]
	}
	return fmt.Sprintf("Cause(%d)", uint8(c))
}

// MarshalText writes String, so JSON carries the words.
func (c Cause) MarshalText() ([]byte, error) {
	if c >= numCauses {
		return nil, fmt.Errorf("tcp: unknown cause %d", uint8(c))
	}
	return []byte(causeText[c]), nil
}

// UnmarshalText reads what MarshalText writes.
func (c *Cause) UnmarshalText(b []byte) error {
	for i, s := range causeText {
		if s == string(b) {
			*c = Cause(i)
			return nil
		}
	}
	return fmt.Errorf("tcp: unknown cause %q", b)
}

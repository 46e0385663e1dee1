package tcp

// State is a connection state of RFC 9293 section 3.3.2.
type State uint8

// The eleven states of RFC 9293 Figure 5, in the figure's order.
const (
	Closed State = iota
	Listen
	SynSent
	SynReceived
	Established
	FinWait1
	FinWait2
	CloseWait
	Closing
	LastAck
	TimeWait
	numStates
)

var stateNames = [numStates]string{
	Closed:      "CLOSED",
	Listen:      "LISTEN",
	SynSent:     "SYN-SENT",
	SynReceived: "SYN-RECEIVED",
	Established: "ESTABLISHED",
	FinWait1:    "FIN-WAIT-1",
	FinWait2:    "FIN-WAIT-2",
	CloseWait:   "CLOSE-WAIT",
	Closing:     "CLOSING",
	LastAck:     "LAST-ACK",
	TimeWait:    "TIME-WAIT",
}

// String gives the RFC's name: "SYN-SENT", "TIME-WAIT", ...
func (s State) String() string {
	if s < numStates {
		return stateNames[s]
	}
	return "UNKNOWN"
}

// States lists every state in the order of RFC 9293 Figure 5.
func States() []State {
	out := make([]State, numStates)
	for i := range out {
		out[i] = State(i)
	}
	return out
}

// Synchronized reports whether the state is one of those after the
// handshake has completed (RFC 9293 section 3.5.2, reset processing groups
// "ESTABLISHED ... TIME-WAIT" as the synchronized states).
func (s State) Synchronized() bool { return s >= Established && s <= TimeWait }

// recvClosed reports whether the peer's FIN has been received.
func (s State) recvClosed() bool {
	switch s {
	case CloseWait, Closing, LastAck, TimeWait:
		return true
	}
	return false
}

// legal lists every transition RFC 9293 Figure 5 draws, plus the ones the
// text adds: any state may go to CLOSED on ABORT or an accepted RST, and
// SYN-RECEIVED returns to LISTEN on an RST for a passive open
// (section 3.10.7.4), TIME-WAIT may be reopened by a new SYN (RFC 9293
// section 3.10.7.4 "fourth", RFC 6191) which the stack does by creating a
// new connection, so it is not a transition of this TCB.
var legal = map[[2]State]bool{
	{Closed, Listen}:           true, // passive OPEN
	{Closed, SynSent}:          true, // active OPEN
	{Listen, SynReceived}:      true, // rcv SYN
	{Listen, SynSent}:          true, // SEND on a listening socket (RFC 9293 3.10.2)
	{SynSent, SynReceived}:     true, // simultaneous open: rcv SYN
	{SynSent, Established}:     true, // rcv SYN,ACK
	{SynReceived, Established}: true, // rcv ACK of SYN
	{SynReceived, FinWait1}:    true, // CLOSE
	{SynReceived, Listen}:      true, // rcv RST (passive open)
	{SynReceived, CloseWait}:   true, // rcv ACK of SYN together with FIN
	{Established, FinWait1}:    true, // CLOSE
	{Established, CloseWait}:   true, // rcv FIN
	{FinWait1, FinWait2}:       true, // rcv ACK of FIN
	{FinWait1, Closing}:        true, // rcv FIN (simultaneous close)
	{FinWait1, TimeWait}:       true, // rcv FIN with the ACK of our FIN
	{FinWait2, TimeWait}:       true, // rcv FIN
	{CloseWait, LastAck}:       true, // CLOSE
	{Closing, TimeWait}:        true, // rcv ACK of FIN
	{LastAck, Closed}:          true, // rcv ACK of FIN
	{TimeWait, Closed}:         true, // 2MSL timeout
}

// Legal reports whether from -> to is a transition the RFC allows. Every
// state may move to CLOSED (ABORT, RST, timeouts).
func Legal(from, to State) bool {
	return to == Closed || legal[[2]State{from, to}]
}

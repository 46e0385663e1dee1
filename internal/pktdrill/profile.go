package pktdrill

import (
	"strings"

	"github.com/synack/synack/internal/pktdrill/sock"
)

// Profile lists where the runner accepts another system's choices
// (FreeBSD's or Linux's) as equivalent to synack's. The FreeBSD suite asserts a few values that are
// FreeBSD's choices, not RFC requirements; rather than bend synack's core,
// or edit a script, the runner relaxes exactly these comparisons, the same
// way for every script. Scripts written for Linux get the Linux profile;
// Strict turns every relaxation off (useful to see what is being relaxed).
type Profile struct {
	Name string

	// OptionsAsSet compares the options of the segments we send as a set
	// of (kind, value): order, NOP and EOL padding are not compared.
	// FreeBSD lays out its SYN as <mss,nop,wscale,sackOK,TS> and pads
	// echoed options with EOLs; RFC 9293 section 3.2 and RFC 7323
	// appendix A leave the layout to the sender. Values are compared.
	OptionsAsSet bool

	// AnyOwnWindowScale does not compare the shift of our window scale
	// option. RFC 7323 section 2.3 lets a receiver choose any shift up to
	// 14; FreeBSD derives its from kern.ipc.maxsockbuf (so 6 for 2 MiB),
	// synack from its receive buffer. The option must still be present
	// exactly when the script expects it.
	AnyOwnWindowScale bool

	// RoundReceiveBuffer makes the stack's receive buffer the
	// net.inet.tcp.recvspace value rounded up to a multiple of the MSS
	// of the script's link (65536 -> 65700 for IPv4, 66240 for IPv6), as
	// FreeBSD rounds a socket buffer once the MSS is known (tcp_mss). The
	// window edges the scripts probe ("right edge", "outside right") are
	// computed from that buffer. With window values capped at 65535 and
	// no scaling on these connections, what goes on the wire is the same.
	RoundReceiveBuffer bool

	// ReceiverSWS accepts a window in our non-SYN segments that is
	// smaller than the script's by less than min(MSS, half the receive
	// buffer). RFC 9293 section 3.8.6.2.2 (RFC 1122 4.2.3.3) has the
	// receiver keep RCV.NXT+RCV.WND fixed until it can move by that much,
	// and synack does so in every segment: after a FIN (one sequence
	// number, no buffer) its ACK offers 65534, not 65535. FreeBSD applies
	// the rule only to deciding when a pure window update is worth
	// sending, and puts all its free space in every ACK.
	ReceiverSWS bool

	// FINRepeat accepts our pure ACK <SEQ=SND.NXT><ACK=RCV.NXT> where the
	// script expects FreeBSD's FIN,ACK one sequence number earlier with
	// the same ACK: while its FIN is unacknowledged, FreeBSD sets FIN on
	// every segment it sends and backs SND.NXT up over it (tcp_output), so
	// each ACK repeats the FIN. RFC 9293 3.10.7.4 has the ACK sent in
	// FIN-WAIT-1 and CLOSING be <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>; the
	// FIN itself is retransmitted by the retransmission timer.
	FINRepeat bool

	// ResetWithoutACK accepts our bare <SEQ=S><CTL=RST> where the script
	// expects <SEQ=S><ACK=A><CTL=RST,ACK> with the same sequence number,
	// for the reset RFC 793 (insecure_syn) sends on a SYN in the window.
	// RFC 793 does not give that reset's form; its ACK field is not
	// examined by a receiver in a synchronized state (RFC 9293 3.5.3: "all
	// reset segments are validated by checking their SEQ fields").
	ResetWithoutACK bool

	// AnySORCVBUF accepts getsockopt(SO_RCVBUF) results as written:
	// FreeBSD reports 65536 before the handshake and the rounded 65700 /
	// 66240 after it; synack has one buffer size per stack and no
	// per-socket SO_RCVBUF.
	AnySORCVBUF bool

	// ProtoUnreachRefused accepts ENOPROTOOPT where the script expects
	// ECONNREFUSED. FreeBSD reports every hard ICMP unreachable (port and
	// protocol, and ICMPv6's unrecognized next header) as ECONNREFUSED
	// (inetctlerrmap); synack, like Linux, reports protocol unreachable
	// as ENOPROTOOPT. The behaviour compared is the same: the quoted
	// segment is checked, the connect is aborted (RFC 1122 4.2.3.9, codes
	// 2-4 are hard errors) and the error is reported once; RFCs name no
	// errno.
	ProtoUnreachRefused bool

	// JoinSegments accepts several of our data segments, sent back to
	// back, where the script expects one larger segment covering exactly
	// their range with the same flags (PSH on any), ACK and options. Linux
	// hands its NIC one TSO/GSO super-segment of several MSS and
	// packetdrill sees it before segmentation; synack sends MSS-sized
	// segments (RFC 9293 section 3.7.1: SMSS is what a segment may carry).
	// What goes on the wire is the same bytes at the same moment.
	JoinSegments bool

	// AnyPSH does not compare PSH on our data segments. RFC 9293 section
	// 3.9.1 leaves it to the sender when to push, and a receiver cannot
	// rely on it; Linux sets it by heuristics of its own (at the end of
	// a write, and on a TSO burst sent after half a window went unpushed),
	// synack on the segment that empties its send queue. The other flags
	// are compared.
	AnyPSH bool

	// Sysctls are the settings a script starts from, before its own
	// sysctls: the defaults of the system it was written for.
	Sysctls sock.Settings

	// FGETFL is what fcntl(F_GETFL) returns for a fresh socket: O_RDWR,
	// which is 0x02 on FreeBSD (and Linux); O_NONBLOCK is added once set
	// (FreeBSD's 0x04).
	FGETFL, ONONBLOCK int64
}

// FreeBSD is the compatibility profile the suite runs with.
var FreeBSD = Profile{
	Name:                "freebsd",
	OptionsAsSet:        true,
	AnyOwnWindowScale:   true,
	RoundReceiveBuffer:  true,
	AnySORCVBUF:         true,
	ReceiverSWS:         true,
	FINRepeat:           true,
	ResetWithoutACK:     true,
	ProtoUnreachRefused: true,
	Sysctls:             sock.FreeBSDDefaults(),
	FGETFL:              0x02,
	ONONBLOCK:           0x04,
}

// Linux is the profile for scripts written for Linux, packetdrill's own
// gtests/net/tcp: they start from Linux's defaults (the defaults.sh they
// run, and what a script without it runs with), compare options in order
// (synack lays out its options as Linux does: <mss,sackOK,TS,nop,wscale>
// on a SYN, RFC 7323 appendix A's <nop,nop,TS> after it), and expect
// TSO-sized segments, which JoinSegments matches. The window scale shift
// is Linux's own choice from tcp_rmem (RFC 7323 section 2.3), not
// compared. F_GETFL's O_NONBLOCK is Linux's 0x800.
var Linux = Profile{
	Name:              "linux",
	AnyOwnWindowScale: true,
	JoinSegments:      true,
	AnyPSH:            true,
	Sysctls:           sock.LinuxDefaults(),
	FGETFL:            0x02,
	ONONBLOCK:         0x800,
}

// Strict relaxes nothing.
var Strict = Profile{Name: "strict", Sysctls: sock.FreeBSDDefaults(), FGETFL: 0x02, ONONBLOCK: 0x04}

// ProfileFor is the profile a script is written for: Linux if it runs
// packetdrill's common/defaults.sh (every script of gtests/net does),
// FreeBSD otherwise.
func ProfileFor(s *Script) Profile {
	for _, ev := range s.Events {
		if ev.Kind == ShellEvent && strings.Contains(ev.Command, "common/defaults.sh") {
			return Linux
		}
	}
	return FreeBSD
}

// ProfileByName returns the profile called name: "freebsd", "linux" or
// "strict".
func ProfileByName(name string) (Profile, bool) {
	for _, p := range []Profile{FreeBSD, Linux, Strict} {
		if p.Name == name {
			return p, true
		}
	}
	return Profile{}, false
}

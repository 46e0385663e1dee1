// Package link defines how the stack meets the network below it: an
// [Endpoint] that sends batches of bare IP packets and pushes the packets it
// receives to a [Dispatcher].
//
// The stack handles a received packet in the delivering goroutine, under its
// own lock, and may send replies from there. So the contract is one-way on
// purpose: WritePackets never calls a Dispatcher (of this link or any other)
// before it returns, and never waits for a receiver. Implementations:
// link/memlink (in-memory links and a switch), link/pcap (a recording
// wrapper), link/tun.
package link

// Dispatcher receives packets from a link.
type Dispatcher interface {
	// DeliverPacket hands over one bare IPv4 or IPv6 packet. pkt is valid
	// only during the call: the link reuses its memory afterwards, so a
	// receiver that keeps bytes must copy them. Calls for one Endpoint come
	// from one goroutine at a time.
	DeliverPacket(pkt []byte)
}

// BatchDispatcher is a Dispatcher that also takes several packets at
// once. A link that has a batch in hand (memlink delivers up to 64 packets
// per pass) hands it over in one call, so the receiver takes its lock,
// reads the clock and writes its replies once per batch instead of once per
// packet. The packets are valid only during the call, and arrived together:
// a receiver may give them one arrival time.
type BatchDispatcher interface {
	Dispatcher
	DeliverPackets(pkts [][]byte)
}

// ChecksumVouching is a BatchDispatcher that a link may hand packets
// whose transport checksums (TCP, UDP) it vouches for: packets the link
// knows were not damaged since their checksum was (or would have been)
// computed, such as what the local kernel writes to a TUN device with
// checksum offload (VIRTIO_NET_HDR_F_NEEDS_CSUM: the checksum field holds
// only the pseudo-header's sum), what it already verified
// (VIRTIO_NET_HDR_F_DATA_VALID), or what an in-memory link that cannot
// corrupt carries (memlink's Config.ChecksumOffload). The receiver skips
// verifying those checksums; the IPv4 header checksum is still checked: it
// is cheap, and no offload covers it. A link that cannot vouch for every
// packet of a batch splits it or delivers it with DeliverPackets, and a
// link whose dispatcher lacks this method completes such checksums
// itself. The rules of DeliverPackets apply.
type ChecksumVouching interface {
	BatchDispatcher
	DeliverVouchedPackets(pkts [][]byte)
}

// Loan is the memory of a delivered packet, lent to a receiver that keeps
// the packet's bytes past the delivery (LoanDispatcher). The receiver calls
// Release once, after its last use of them; until then the link does not
// reuse the memory.
type Loan interface {
	Release()
	// Size is the memory the loan holds, in bytes (the whole buffer, not
	// only the packet), for the receiver's memory accounting.
	Size() int
}

// LoanDispatcher is a BatchDispatcher that may keep the bytes of some
// packets instead of copying them (issue 13: one copy of every received
// byte fewer). DeliverLoanedPackets is DeliverPackets, or
// DeliverVouchedPackets when vouched is set (ChecksumVouching), for
// packets that each come with a Loan of their memory (loans[i] is
// pkts[i]'s): to keep a packet's bytes the receiver sets loans[i] to nil
// and owes that loan one Release; the link takes the others back when
// the call returns. A loans[i] that is nil already is no offer: pkts[i]
// is valid only during the call, as with DeliverPackets (link/tun lends
// only large packets read whole into a buffer of their own).
type LoanDispatcher interface {
	BatchDispatcher
	DeliverLoanedPackets(pkts [][]byte, loans []Loan, vouched bool)
}

// Packet is one IP packet in two pieces, sent as if concatenated: Head
// (the IP and transport headers) and Payload (maybe empty), which a
// sender can leave where it is, in its send buffer, instead of copying it
// next to the header first.
type Packet struct {
	Head, Payload []byte
	// GSOSize, when not zero, marks a TCP super-segment for a link that
	// segments (SegmentOffloader, MaxSize set): its payload is to go out
	// as segments of GSOSize bytes (the last may be shorter), each with a
	// copy of the IP and TCP headers whose lengths, IPv4 identification
	// (incremented per segment), sequence number and checksums the link
	// fixes up, PSH and FIN on the last segment only and CWR on the first
	// only, as a NIC's TCP segmentation offload does. Its IP length field
	// covers the whole super-segment.
	GSOSize uint16
	// PartialChecksum: the TCP checksum field holds only the sum of the
	// pseudo-header (over the packet's whole TCP length, not
	// complemented), and the link completes it, per segment for a
	// super-segment: the kernel's CHECKSUM_PARTIAL convention, which a
	// virtio-net header's VIRTIO_NET_HDR_F_NEEDS_CSUM carries. Only for a
	// link whose SegmentOffload says Checksum.
	PartialChecksum bool
}

// Len is the packet's length.
func (p Packet) Len() int { return len(p.Head) + len(p.Payload) }

// PartsWriter is an Endpoint that also takes packets in pieces. A link
// that copies what it keeps (memlink) then copies each byte once, from
// where the sender has it, instead of the sender gathering the packet
// first. The rules are WritePackets': the link copies what it keeps, so
// the caller may reuse all the pieces when the call returns.
type PartsWriter interface {
	WritePacketParts(pkts []Packet) (int, error)
}

// SegmentOffload is what a link does for the TCP segments a sender writes
// to it as parts (TSO and checksum offload on transmit). The zero value is
// nothing: the sender writes complete packets within the MTU.
type SegmentOffload struct {
	// MaxSize is the largest TCP super-segment (Packet.GSOSize), IP header
	// included, the link takes and cuts into MSS-sized segments itself;
	// 0: none.
	MaxSize int
	// Checksum: the link completes TCP checksums the sender left partial
	// (Packet.PartialChecksum).
	Checksum bool
}

// SegmentOffloader is a PartsWriter that may segment and checksum for the
// sender: a TUN device whose kernel takes GSO packets with a virtio-net
// header, or an in-memory link told to (memlink's Config.GSO). What it
// offers may depend on what the kernel accepted, so the sender asks once,
// when it adds the link.
type SegmentOffloader interface {
	PartsWriter
	SegmentOffload() SegmentOffload
}

// DispatcherFunc adapts a function to a Dispatcher.
type DispatcherFunc func(pkt []byte)

// DeliverPacket calls f(pkt).
func (f DispatcherFunc) DeliverPacket(pkt []byte) { f(pkt) }

// Endpoint is one end of a link.
type Endpoint interface {
	// MTU is the largest IP packet, in bytes, the link carries.
	MTU() int
	// WritePackets sends bare IPv4/IPv6 packets (no link header) and
	// returns how many it took; it stops at the first packet it refuses and
	// says why. A packet taken may still be lost on the way, as on a wire.
	// The link copies what it keeps, so the caller may reuse pkts at once.
	// It never blocks on the receiver and never calls a Dispatcher
	// synchronously. It may be called from several goroutines at once:
	// the stack's shards write without a common lock (stack/shard.go).
	WritePackets(pkts [][]byte) (int, error)
	// Attach sets the receiver and starts delivery. Call it once, before
	// expecting packets.
	Attach(d Dispatcher)
	// Close stops delivery and releases the link's goroutines. After Close
	// returns no new DeliverPacket call starts (one already running may
	// finish), so Close may be called from inside DeliverPacket.
	Close() error
}

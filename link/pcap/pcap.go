// Package pcap writes packet captures in the classic libpcap file format
// that tcpdump, tshark and Wireshark read, with link type LINKTYPE_RAW: each
// record is a bare IPv4 or IPv6 packet, which is exactly what a link.Endpoint
// carries.
package pcap

import (
	"encoding/binary"
	"io"
	"sync"
	"time"

	"github.com/synack/synack/clock"
	"github.com/synack/synack/link"
)

// File format constants (https://www.tcpdump.org/manpages/pcap-savefile.5.html,
// https://www.tcpdump.org/linktypes.html).
const (
	magicMicroseconds = 0xa1b2c3d4
	versionMajor      = 2
	versionMinor      = 4
	// SnapLen is the largest number of bytes kept per packet; longer packets
	// are truncated in the file and keep their original length.
	SnapLen = 65535
	// LinkTypeRaw says each packet starts with an IPv4 or IPv6 header.
	LinkTypeRaw = 101

	fileHeaderLen   = 24
	recordHeaderLen = 16
)

// Writer writes a pcap stream. It is safe for concurrent use; records are
// written whole, one at a time. Wrap a file in a bufio.Writer for speed (and
// flush it at the end).
type Writer struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte // record header + packet, so each record is one Write
	err error  // first write error; later writes return it
}

// NewWriter writes the file header to w and returns a Writer for records.
func NewWriter(w io.Writer) (*Writer, error) {
	// Little-endian, as written by most capture tools; readers recognise
	// the byte order from the magic number.
	var h [fileHeaderLen]byte
	le := binary.LittleEndian
	le.PutUint32(h[0:], magicMicroseconds)
	le.PutUint16(h[4:], versionMajor)
	le.PutUint16(h[6:], versionMinor)
	// h[8:16]: thiszone and sigfigs, both 0 as the format asks.
	le.PutUint32(h[16:], SnapLen)
	le.PutUint32(h[20:], LinkTypeRaw)
	if _, err := w.Write(h[:]); err != nil {
		return nil, err
	}
	return &Writer{w: w}, nil
}

// WritePacket appends a record of pkt captured at t. Times before 1970
// (such as a virtual clock started at the zero time) are written as 1970;
// start virtual clocks at a real date to keep their spacing.
func (w *Writer) WritePacket(t time.Time, pkt []byte) error {
	var sec, usec uint32
	if t.Unix() >= 0 {
		sec, usec = uint32(t.Unix()), uint32(t.Nanosecond()/1000)
	}
	incl := min(len(pkt), SnapLen)

	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	b := w.buf[:0]
	b = binary.LittleEndian.AppendUint32(b, sec)
	b = binary.LittleEndian.AppendUint32(b, usec)
	b = binary.LittleEndian.AppendUint32(b, uint32(incl))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(pkt)))
	b = append(b, pkt[:incl]...)
	w.buf = b
	if _, err := w.w.Write(b); err != nil {
		w.err = err
	}
	return w.err
}

// Err returns the first error met writing records, if any. A Tap cannot
// report write errors through the link, so check this at the end.
func (w *Writer) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Tap wraps ep so that every packet written to it and every packet it
// delivers is also recorded in w, stamped with clk's time (nil: the real
// clock). Recording happens in the goroutine that sends or delivers, before
// the packet goes on. Two Taps (one per end of a pipe) may share a Writer,
// but then each packet appears twice, as sent and as received.
func Tap(ep link.Endpoint, w *Writer, clk clock.Clock) link.Endpoint {
	if clk == nil {
		clk = clock.Real()
	}
	return &tap{Endpoint: ep, w: w, clk: clk}
}

type tap struct {
	link.Endpoint
	w   *Writer
	clk clock.Clock
}

func (t *tap) WritePackets(pkts [][]byte) (int, error) {
	// Record first: once the link has the packets, the peer may receive them
	// and answer (recorded through its own tap) before WritePackets returns,
	// and the file should keep cause before effect. A packet the link then
	// refuses (oversize, closed) stays in the file.
	now := t.clk.Now()
	for _, p := range pkts {
		t.w.WritePacket(now, p)
	}
	return t.Endpoint.WritePackets(pkts)
}

func (t *tap) Attach(d link.Dispatcher) {
	t.Endpoint.Attach(link.DispatcherFunc(func(pkt []byte) {
		t.w.WritePacket(t.clk.Now(), pkt)
		d.DeliverPacket(pkt)
	}))
}

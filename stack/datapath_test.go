package stack

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/netip"
	"os"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/synack/synack/link"
	"github.com/synack/synack/link/memlink"
	"github.com/synack/synack/tcp"
	"github.com/synack/synack/wire"
)

// A link that vouches for its packets (link.ChecksumVouching, memlink's
// ChecksumOffload) spares the TCP checksum check: a segment whose checksum
// is wrong is taken as the link handed it over. Without the offload it is
// dropped and counted (RFC 9293 3.1).
func TestChecksumOffloadSkipsVerification(t *testing.T) {
	for _, offload := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			r := newRawPeerLink(t, Options{}, memlink.Config{ChecksumOffload: offload})
			from, to := netip.AddrPortFrom(addrB, 4000), netip.AddrPortFrom(addrA, 80)
			pkt := tcpPacket(from, to, wire.TCPHeader{Seq: 1, Flags: wire.SYN}, nil)
			pkt[len(pkt)-1] ^= 0xff // the TCP checksum's low byte
			r.send(pkt)
			p := r.recv()
			c := r.s.Counters().TCP
			if offload {
				// Closed port: the SYN gets a RST, so it was taken.
				if p == nil || c.InCsumErrors != 0 || c.OutRsts != 1 {
					t.Errorf("offload: answer %v, InCsumErrors %d OutRsts %d; want a RST, 0, 1", p != nil, c.InCsumErrors, c.OutRsts)
				}
				return
			}
			if p != nil || c.InCsumErrors != 1 {
				t.Errorf("no offload: answer %v, InCsumErrors %d; want none, 1", p != nil, c.InCsumErrors)
			}
		})
	}
}

// partsCounter is a memlink endpoint that counts how the stack hands it
// data segments: payload left in the send buffer (a part of its own) or
// gathered next to the header.
type partsCounter struct {
	*memlink.Endpoint
	mu               sync.Mutex
	borrowed, copied int
}

func (p *partsCounter) WritePacketParts(pkts []link.Packet) (int, error) {
	p.mu.Lock()
	for _, pk := range pkts {
		if len(pk.Payload) > 0 {
			p.borrowed++
			continue
		}
		ip, err := wire.ParseIP(pk.Head)
		if err != nil {
			continue
		}
		if _, data, err := wire.ParseTCP(ip.Payload, ip.Src, ip.Dst, true); err == nil && len(data) > 0 {
			p.copied++
		}
	}
	p.mu.Unlock()
	return p.Endpoint.WritePacketParts(pkts)
}

var _ link.PartsWriter = (*partsCounter)(nil)

// Over a link that takes packets in pieces, data segments go out as a
// header and a slice of the send buffer, except the ones whose data
// wraps around the buffer's end (gathered, tcp.Conn.PayloadInSendBuffer);
// the byte stream arrives intact either way, through a send buffer small
// enough to wrap often.
func TestPartsWriterCarriesData(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ea, eb := memlink.Pipe(memlink.Config{})
		pc := &partsCounter{Endpoint: ea}
		a := New(Options{Rand: newSeeded(1), TCP: tcp.Config{SendBufferSize: 16 << 10}})
		// A receive buffer smaller than the send buffer, so that the
		// window, not the pace of Write, decides where in the send ring
		// each segment starts.
		b := New(Options{Rand: newSeeded(2), TCP: tcp.Config{ReceiveBufferSize: 6000}})
		defer a.Close()
		defer b.Close()
		if _, err := a.AddLink(pc, netip.PrefixFrom(addrA, 24)); err != nil {
			t.Fatal(err)
		}
		if _, err := b.AddLink(eb, netip.PrefixFrom(addrB, 24)); err != nil {
			t.Fatal(err)
		}
		l, err := b.ListenTCP(netip.AddrPortFrom(addrB, 80), 0)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]byte, 1<<20)
		for i := range want {
			want[i] = byte(i*2654435761>>13) ^ byte(i>>11)
		}
		got := make(chan []byte, 1)
		go func() {
			s, err := l.Accept()
			if err != nil {
				got <- nil
				return
			}
			defer s.Close()
			// A reader that starts late lets the sender's ring fill, so
			// that segments straddle its end whatever the scheduling
			// (a ring the peer drains at once restarts at its front).
			time.Sleep(time.Second)
			buf, _ := io.ReadAll(s)
			got <- buf
		}()
		c, err := a.DialTCP(context.Background(), netip.AddrPortFrom(addrB, 80))
		if err != nil {
			t.Fatal(err)
		}
		for p := want; len(p) > 0; {
			k := min(len(p), 1000) // odd sizes, so segments straddle the buffer's end
			if _, err := c.Write(p[:k]); err != nil {
				t.Fatal(err)
			}
			p = p[k:]
		}
		c.Close()
		if buf := <-got; !bytes.Equal(buf, want) {
			t.Fatalf("received %d bytes, not the %d sent", len(buf), len(want))
		}
		pc.mu.Lock()
		defer pc.mu.Unlock()
		t.Logf("data segments: %d from the send buffer, %d gathered", pc.borrowed, pc.copied)
		if pc.borrowed == 0 || pc.copied == 0 {
			t.Errorf("data segments: %d from the send buffer, %d gathered; want some of each", pc.borrowed, pc.copied)
		}
	})
}

// A Read waiting for data gets it straight from the segment: the receive
// buffer never takes it, so it never needs memory (tcp.Conn.PostRead).
func TestBlockedReadTakesDataDirectly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{})
		client, server := p.connect(t, 80)
		got := make(chan []byte, 1)
		go func() {
			buf := make([]byte, 4096)
			n, err := server.Read(buf)
			if err != nil {
				t.Errorf("Read: %v", err)
			}
			got <- buf[:n]
		}()
		synctest.Wait() // the Read waits, its buffer posted
		msg := []byte("straight into the reader's buffer")
		if _, err := client.Write(msg); err != nil {
			t.Fatal(err)
		}
		if b := <-got; !bytes.Equal(b, msg) {
			t.Fatalf("Read got %q, want %q", b, msg)
		}
		p.b.mu.Lock()
		mem := server.tcb.BufferMemory()
		p.b.mu.Unlock()
		if mem != 0 {
			t.Errorf("receive buffer memory %d after a direct read, want 0", mem)
		}
	})
}

// A Read that gives up at its deadline takes its buffer back: data that
// comes later waits in the receive buffer for the next Read.
func TestBlockedReadDeadlineTakesPostBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{})
		client, server := p.connect(t, 80)
		server.SetReadDeadline(time.Now().Add(time.Second))
		buf := make([]byte, 64)
		if n, err := server.Read(buf); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read = %d, %v; want 0, deadline exceeded", n, err)
		}
		clear(buf)
		if _, err := client.Write([]byte("later")); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if string(buf[:5]) != "\x00\x00\x00\x00\x00" {
			t.Fatalf("data went into the buffer of a Read that had returned: %q", buf[:5])
		}
		server.SetReadDeadline(time.Time{})
		n, err := server.Read(buf)
		if err != nil || string(buf[:n]) != "later" {
			t.Fatalf("next Read = %q, %v; want \"later\"", buf[:n], err)
		}
	})
}

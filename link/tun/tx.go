//go:build linux

package tun

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"

	"github.com/synack/synack/link"
	"github.com/synack/synack/wire"
)

var _ link.SegmentOffloader = (*Device)(nil)

// The transmit side: packets, or GSO super-packets, written to the kernel.

// WritePackets writes each packet to the kernel and returns how many were
// taken. It stops at the first packet refused (larger than the MTU, or
// rejected by the kernel) and says why; after Close it returns
// net.ErrClosed. On a device with a virtio-net header, consecutive
// segments of one TCP flow (same headers, consecutive sequence numbers,
// equal sizes but the last) go out as one GSO super-packet that the
// kernel cuts back into the same segments; everything else is one
// write(2) per packet. The kernel copies during the write, so pkts may be
// reused at once; the write never waits for the stack's reader.
func (d *Device) WritePackets(pkts [][]byte) (int, error) {
	var tooBig error
	for i, p := range pkts {
		if len(p) > d.mtu {
			tooBig = fmt.Errorf("tun: %s: packet of %d bytes exceeds MTU %d", d.name, len(p), d.mtu)
			pkts = pkts[:i]
			break
		}
	}
	if d.state.Load() == stateClosed {
		return 0, net.ErrClosed
	}
	rc, err := d.files[0].SyscallConn()
	if err != nil {
		return 0, net.ErrClosed
	}
	d.txMu.Lock()
	defer d.txMu.Unlock()
	done := 0
	defer func() {
		if tooBig != nil && done == len(pkts) {
			d.txErrors.Add(1)
		}
	}()
	if d.tx.ring != nil {
		// Batched (uring.go); it leaves to the loop below only what a
		// broken ring, or a full device, did not take.
		if done, err = d.writeRing(rc, pkts); err != nil {
			return done, err
		}
	}
	for done < len(pkts) {
		n, buf := 1, pkts[done]
		if d.vnet > 0 {
			n, buf = d.nextWrite(pkts[done:])
		}
		var werr error
		err := rc.Write(func(fd uintptr) bool {
			for {
				_, werr = unix.Write(int(fd), buf)
				switch werr {
				case unix.EINTR:
					continue
				case unix.EAGAIN:
					return false
				}
				return true
			}
		})
		if err == nil {
			err = werr
		}
		if err != nil {
			if errors.Is(err, os.ErrClosed) || d.state.Load() == stateClosed {
				return done, net.ErrClosed
			}
			d.txErrors.Add(uint64(n))
			return done, &Error{Op: "writing", Name: d.name, Err: err}
		}
		d.wrote(pkts[done : done+n])
		done += n
	}
	return done, tooBig
}

// wrote counts one write that carried pkts (more than one: joined into a
// super-packet).
func (d *Device) wrote(pkts [][]byte) {
	d.txWrites.Add(1)
	if len(pkts) > 1 {
		d.txGSO.Add(1)
		d.txGSOSegs.Add(uint64(len(pkts)))
	}
	for _, p := range pkts {
		d.txBytes.Add(uint64(len(p)))
	}
	d.txPackets.Add(uint64(len(pkts)))
}

// nextWrite builds in d.txBuf the next write of pkts: a run of joinable
// TCP segments as one super-packet, or the first packet alone behind a
// header that asks nothing of the kernel (its checksums are complete). It
// returns how many packets the write carries.
func (d *Device) nextWrite(pkts [][]byte) (int, []byte) {
	buf := d.txBuf[:0]
	if n, r := joinable(pkts); n > 1 {
		buf = joinTCP(buf, d.vnet, pkts[:n], r)
		d.txBuf = buf
		return n, buf
	}
	var zero [16]byte
	buf = append(buf, zero[:d.vnet]...)
	buf = append(buf, pkts[0]...)
	d.txBuf = buf
	return 1, buf
}

// SegmentOffload says what the device does for the stack's TCP segments
// (link.SegmentOffloader): where the kernel accepted TSO (Features.TSOOut)
// it takes super-segments of up to 64 KiB with the checksum left partial,
// and the kernel cuts them into segments and completes their checksums as
// it would for a virtio NIC's guest (VIRTIO_NET_HDR_GSO_TCPV4/6 with
// VIRTIO_NET_HDR_F_NEEDS_CSUM). Otherwise nothing: the stack sends
// complete segments, as it did before.
func (d *Device) SegmentOffload() link.SegmentOffload {
	if !d.feat.TSOOut || d.vnet == 0 {
		return link.SegmentOffload{}
	}
	return link.SegmentOffload{MaxSize: maxGSO, Checksum: true}
}

// WritePacketParts is WritePackets for packets in pieces (link.PartsWriter).
// A super-segment (Packet.GSOSize, on a device with TSOOut) goes to the
// kernel as one GSO packet written straight from its pieces (writev(2):
// the virtio-net header with the IP and TCP headers, then the payload
// where the stack has it), which the kernel cuts into segments of GSOSize
// bytes; other packets are gathered and written as WritePackets writes
// them (joined into super-packets where they can be). It returns how many
// packets were taken and stops at the first refused, as WritePackets does.
func (d *Device) WritePacketParts(pkts []link.Packet) (int, error) {
	d.partsMu.Lock()
	defer d.partsMu.Unlock()
	done := 0
	for done < len(pkts) {
		if pkts[done].GSOSize > 0 {
			if err := d.writeSuper(pkts[done]); err != nil {
				return done, err
			}
			done++
			continue
		}
		// A run of complete packets, gathered.
		end := done
		d.gatherBuf, d.gathered = d.gatherBuf[:0], d.gathered[:0]
		for ; end < len(pkts) && pkts[end].GSOSize == 0; end++ {
			d.gatherBuf = append(d.gatherBuf, pkts[end].Head...)
			d.gatherBuf = append(d.gatherBuf, pkts[end].Payload...)
		}
		off := 0
		for _, p := range pkts[done:end] {
			d.gathered = append(d.gathered, d.gatherBuf[off:off+p.Len()])
			off += p.Len()
		}
		n, err := d.WritePackets(d.gathered)
		done += n
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// writeSuper writes the TCP super-segment p as one GSO packet.
func (d *Device) writeSuper(p link.Packet) error {
	if d.state.Load() == stateClosed {
		return net.ErrClosed
	}
	if d.SegmentOffload().MaxSize == 0 {
		return fmt.Errorf("tun: %s: a super-segment, but the device does not take them (TSOOut off)", d.name)
	}
	hl, err := wire.GSOHeaderLen(p.Head)
	if err != nil {
		return fmt.Errorf("tun: %s: %w", d.name, err)
	}
	ipl, v4 := wire.IPv6HeaderLen, p.Head[0]>>4 == 4
	if v4 {
		ipl = wire.IPv4MinHeaderLen
	}
	size, seg := p.Len(), hl+int(p.GSOSize)
	if size > maxGSO || seg > d.mtu {
		d.txErrors.Add(1)
		return fmt.Errorf("tun: %s: super-segment of %d bytes in segments of %d exceeds %d or MTU %d", d.name, size, seg, maxGSO, d.mtu)
	}
	h := vnetHdr{
		Flags: vnetNeedsCsum, GSOType: gsoTCPv4,
		HdrLen: uint16(hl), GSOSize: p.GSOSize,
		CsumStart: uint16(ipl), CsumOffset: 16,
	}
	if !v4 {
		h.GSOType = gsoTCPv6
	}
	if p.Head[ipl+13]&tcpCWR != 0 {
		h.GSOType |= gsoECN // the kernel sets CWR on the first segment only
	}
	pieces := (size - hl + int(p.GSOSize) - 1) / int(p.GSOSize)
	if pieces < 2 {
		h.GSOType, h.GSOSize = gsoNone, 0 // one segment: the checksum alone
	}
	// The headers are copied (a hundred bytes or so) so that a checksum
	// the stack completed can be made partial without touching its
	// buffer; the payload is written from where it is.
	var zero [16]byte
	buf := append(append(d.superHdr[:0], zero[:d.vnet]...), p.Head...)
	h.encode(buf)
	if !p.PartialChecksum {
		ip, _ := parseIPHeader(p.Head, 0)
		binary.BigEndian.PutUint16(buf[d.vnet+ipl+16:], ^wire.Checksum(nil, wire.PseudoHeaderChecksum(wire.ProtocolTCP, ip.src, ip.dst, size-ipl)))
	}
	d.superHdr = buf
	d.superIov = append(d.superIov[:0], buf, p.Payload)
	rc, err := d.files[0].SyscallConn()
	if err != nil {
		return net.ErrClosed
	}
	var werr error
	err = rc.Write(func(fd uintptr) bool {
		for {
			_, werr = unix.Writev(int(fd), d.superIov)
			switch werr {
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return false
			}
			return true
		}
	})
	clear(d.superIov) // no reference to the stack's send buffer stays
	if err == nil {
		err = werr
	}
	if err != nil {
		if errors.Is(err, os.ErrClosed) || d.state.Load() == stateClosed {
			return net.ErrClosed
		}
		d.txErrors.Add(uint64(pieces))
		return &Error{Op: "writing", Name: d.name, Err: err}
	}
	d.txWrites.Add(1)
	d.txGSO.Add(1)
	d.txTSO.Add(1)
	d.txGSOSegs.Add(uint64(pieces))
	d.txPackets.Add(uint64(pieces))
	d.txBytes.Add(uint64(size + (pieces-1)*hl))
	return nil
}

// joinable returns how many of pkts, from the first, make one
// super-packet (1: the first goes alone), and their run.
func joinable(pkts [][]byte) (int, tcpRun) {
	n := 1
	r, ok := startRun(pkts[0])
	if !ok {
		return 1, r
	}
	for n < len(pkts) {
		last, ok := r.extend(pkts[0], pkts[n])
		if !ok {
			break
		}
		n++
		if last {
			break
		}
	}
	return n, r
}

//go:build linux

package tun

import (
	"errors"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

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

//go:build linux

package interop

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/synack/synack/link/pcap"
	"github.com/synack/synack/wire"
)

// TestPcap records one interop run (a bulk exchange, a refused connection
// and a reset) and checks the capture: every packet parses with the wire
// package and has correct IP, TCP and ICMP checksums; and, when tshark is
// installed, tshark reads it with no malformed packet and no checksum
// error.
func TestPcap(t *testing.T) {
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			e := newEnv(t, fam, withPcap())
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()

			// A clean exchange: 1 MiB each way, both FINs.
			kc, sc := e.connect(ctx, true)
			deadline := time.Now().Add(10 * time.Second)
			kc.SetDeadline(deadline)
			sc.SetDeadline(deadline)
			done := make(chan result, 1)
			go func() { _, r := duplex(kc, 5, 1<<20); done <- r }()
			_, sr := duplex(sc, 6, 1<<20)
			kr := <-done
			if sr.err != nil || kr.err != nil || sr.n != 1<<20 || kr.n != 1<<20 {
				t.Fatalf("exchange: synack got %d, %v; kernel got %d, %v; synack's end: %+v", sr.n, sr.err, kr.n, kr.err, sc.Info())
			}
			kc.Close()
			sc.Close()

			// Refused, both ways.
			if _, err := e.kernelDial(ctx, fam.stackAddr(9)); !errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatalf("kernel dial to closed port: %v", err)
			}
			if _, err := e.s.DialTCP(ctx, fam.kernelAddr(9)); !errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatalf("synack dial to closed port: %v", err)
			}

			// A reset from synack.
			kc, sc = e.connect(ctx, false)
			sc.SetLinger(0)
			sc.Close()
			kc.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := kc.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("kernel read after RST: %v", err)
			}
			kc.Close()

			e.close() // flushes the capture
			stats, err := checkPcap(e.pcapPath)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("capture %s: %s", e.pcapPath, stats)
			if stats.syn < 4 || stats.fin < 2 || stats.rst < 3 {
				t.Errorf("capture has %d SYN, %d FIN, %d RST segments; want >= 4, 2, 3", stats.syn, stats.fin, stats.rst)
			}

			checkTshark(t, fam, e.pcapPath, stats.packets)
		})
	}
}

// checkTshark has tshark, when installed, read the capture at path: no
// malformed packet, no checksum error in what synack wrote, and all
// packets read.
func checkTshark(t *testing.T, fam family, path string, packets int) {
	t.Helper()
	tshark, err := exec.LookPath("tshark")
	if err != nil {
		t.Logf("tshark not installed: checked with the wire package only")
		return
	}
	// Linux writes a computed TCP checksum of 0 as 0xffff
	// (CSUM_MANGLED_0) when it completes checksums for a TUN
	// device; receivers accept both forms of one's-complement
	// zero, but tshark flags it (RFC 1624). It is allowed only in
	// what the kernel sent: synack must never write it.
	srcField := "ip.src"
	if !fam.stackAddr(0).Addr().Is4() {
		srcField = "ipv6.src"
	}
	synackSent := fmt.Sprintf("%s == %s", srcField, fam.stackAddr(0).Addr())
	kernelFFFF := fmt.Sprintf("(tcp.checksum.ffff && !(%s))", synackSent)
	filter := `_ws.malformed || _ws.expert.group == "Malformed" || ` +
		`((_ws.expert.group == "Checksum" || tcp.checksum.status == "Bad") && !` + kernelFFFF + `) || ` +
		`ip.checksum.status == "Bad" || icmp.checksum.status == "Bad" || icmpv6.checksum.status == "Bad"`
	out, err := exec.Command(tshark, "-n", "-r", path,
		"-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
		"-Y", filter).Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		t.Errorf("tshark finds malformed packets or checksum errors:\n%s", s)
	}
	out, err = exec.Command(tshark, "-n", "-r", path, "-T", "fields", "-e", "frame.number").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	if n := len(strings.Fields(string(out))); n != packets {
		t.Errorf("tshark reads %d packets, want %d", n, packets)
	}
	t.Logf("tshark reads %d packets: none malformed, no checksum errors", packets)
}

type pcapStats struct {
	packets, tcp, icmp, syn, fin, rst int
}

func (s pcapStats) String() string {
	return fmt.Sprintf("%d packets (%d TCP: %d SYN, %d FIN, %d RST; %d ICMP), all checksums good",
		s.packets, s.tcp, s.syn, s.fin, s.rst, s.icmp)
}

// checkPcap reads a LINKTYPE_RAW capture and verifies every packet.
func checkPcap(path string) (pcapStats, error) {
	var st pcapStats
	f, err := os.Open(path)
	if err != nil {
		return st, err
	}
	defer f.Close()
	var fh [24]byte
	if _, err := io.ReadFull(f, fh[:]); err != nil {
		return st, fmt.Errorf("file header: %w", err)
	}
	le := binary.LittleEndian
	if le.Uint32(fh[0:]) != 0xa1b2c3d4 || le.Uint32(fh[20:]) != pcap.LinkTypeRaw {
		return st, fmt.Errorf("file header %x: want little-endian microsecond pcap, LINKTYPE_RAW", fh)
	}
	for {
		var rh [16]byte
		if _, err := io.ReadFull(f, rh[:]); err == io.EOF {
			return st, nil
		} else if err != nil {
			return st, fmt.Errorf("record %d header: %w", st.packets+1, err)
		}
		incl, orig := le.Uint32(rh[8:]), le.Uint32(rh[12:])
		if incl != orig {
			return st, fmt.Errorf("record %d truncated: %d of %d bytes", st.packets+1, incl, orig)
		}
		pkt := make([]byte, incl)
		if _, err := io.ReadFull(f, pkt); err != nil {
			return st, fmt.Errorf("record %d: %w", st.packets+1, err)
		}
		st.packets++
		if err := checkPacket(pkt, &st); err != nil {
			return st, fmt.Errorf("packet %d: %w", st.packets, err)
		}
	}
}

func checkPacket(pkt []byte, st *pcapStats) error {
	ip, err := wire.ParseIP(pkt)
	if err != nil {
		return err
	}
	switch ip.Protocol {
	case wire.ProtocolTCP:
		h, _, err := wire.ParseTCP(ip.Payload, ip.Src, ip.Dst, true)
		if err != nil {
			return err
		}
		st.tcp++
		if h.Flags&wire.SYN != 0 {
			st.syn++
		}
		if h.Flags&wire.FIN != 0 {
			st.fin++
		}
		if h.Flags&wire.RST != 0 {
			st.rst++
		}
	case wire.ProtocolICMP:
		if _, err := wire.ParseICMPv4(ip.Payload, true); err != nil {
			return err
		}
		st.icmp++
	case wire.ProtocolICMPv6:
		if _, err := wire.ParseICMPv6(ip.Payload, ip.Src, ip.Dst, true); err != nil {
			return err
		}
		st.icmp++
	default:
		return fmt.Errorf("unexpected protocol %d", ip.Protocol)
	}
	return nil
}

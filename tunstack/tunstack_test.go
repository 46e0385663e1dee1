//go:build linux

package tunstack_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/synack/synack/link"
	"github.com/synack/synack/link/tun/nstest"
	"github.com/synack/synack/tunstack"
)

func TestCheck(t *testing.T) {
	p4 := netip.MustParsePrefix("198.18.0.1/24")
	a4 := netip.MustParseAddr("198.18.0.2")
	p6 := netip.MustParsePrefix("fd00::1/64")
	a6 := netip.MustParseAddr("fd00::2")
	for _, tc := range []struct {
		name  string
		addrs []tunstack.Pair
		want  string // "" for no error, else a part of the reason
	}{
		{"IPv4", []tunstack.Pair{{p4, a4}}, ""},
		{"both families", []tunstack.Pair{{p4, a4}, {p6, a6}}, ""},
		{"outside the prefix", []tunstack.Pair{{netip.MustParsePrefix("198.18.0.1/32"), netip.MustParseAddr("198.18.1.2")}}, ""},
		{"mapped", []tunstack.Pair{{netip.MustParsePrefix("::ffff:198.18.0.1/120"), netip.MustParseAddr("::ffff:198.18.0.2")}}, ""},
		{"none", nil, "no address pairs"},
		{"no host", []tunstack.Pair{{Stack: a4}}, "no host address"},
		{"no stack", []tunstack.Pair{{Host: p4}}, "no stack address"},
		{"families", []tunstack.Pair{{p4, a6}}, "different families"},
		{"host's own", []tunstack.Pair{{p4, p4.Addr()}}, "the host's own"},
		{"multicast", []tunstack.Pair{{p4, netip.MustParseAddr("224.0.0.1")}}, "not a unicast"},
		{"unspecified", []tunstack.Pair{{p6, netip.IPv6Unspecified()}}, "not a unicast"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tunstack.Config{Addrs: tc.addrs}
			err := cfg.Check()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Check() = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Check() = %v, want an error saying %q", err, tc.want)
			case tc.want != "" && len(tc.addrs) > 0:
				var ae *tunstack.AddrError
				if !errors.As(err, &ae) || ae.Pair != tc.addrs[0] {
					t.Errorf("Check() = %#v, want an *AddrError for %v", err, tc.addrs[0])
				}
			case tc.want != "" && !errors.Is(err, tunstack.ErrNoAddrs):
				t.Errorf("Check() = %v, want ErrNoAddrs", err)
			}
			if tc.want != "" {
				// New checks first, and so fails without root or a device.
				if n, err := tunstack.New(cfg); err == nil {
					n.Close()
					t.Errorf("New with a bad Config succeeded")
				}
			}
		})
	}
}

// counter is a link wrapper that counts the packets the stack sends.
type counter struct {
	link.Endpoint
	sent atomic.Uint64
}

func (c *counter) WritePackets(pkts [][]byte) (int, error) {
	n, err := c.Endpoint.WritePackets(pkts)
	c.sent.Add(uint64(n))
	return n, err
}

// TestNew builds a stack on a TUN device inside a fresh namespace, for
// both families at once and for a stack address outside the host's
// prefix; the kernel dials the stack and the stack dials the kernel, over
// every pair. Then Close must remove the interface, finish the capture,
// and leave nothing that keeps the namespace alive.
func TestNew(t *testing.T) {
	for _, tc := range []struct {
		name  string
		addrs []tunstack.Pair
	}{
		{"dual-stack", []tunstack.Pair{
			{netip.MustParsePrefix("198.18.9.1/24"), netip.MustParseAddr("198.18.9.2")},
			{netip.MustParsePrefix("fd00:9::1/64"), netip.MustParseAddr("fd00:9::2")},
		}},
		{"outside-prefix", []tunstack.Pair{
			{netip.MustParsePrefix("198.18.10.1/32"), netip.MustParseAddr("198.18.11.2")},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := nstest.New(t)
			var capture bytes.Buffer
			wrap := &counter{}
			var n *tunstack.Net
			var err error
			ns.Do(func() {
				n, err = tunstack.New(tunstack.Config{
					Name:  "ts%d",
					MTU:   1400,
					Addrs: tc.addrs,
					Link:  func(ep link.Endpoint) link.Endpoint { wrap.Endpoint = ep; return wrap },
					Pcap:  &capture,
				})
			})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer n.Close()
			if !strings.HasPrefix(n.Dev.Name(), "ts") || n.Dev.MTU() != 1400 {
				t.Errorf("device %s, MTU %d; want ts0-like, 1400", n.Dev.Name(), n.Dev.MTU())
			}
			t.Logf("%v", n)

			for _, p := range tc.addrs {
				network := "tcp4"
				if p.Stack.Is6() {
					network = "tcp6"
				}
				// The kernel dials the stack.
				ln, err := n.Stack.ListenTCP(netip.AddrPortFrom(p.Stack, 7), 0)
				if err != nil {
					t.Fatal(err)
				}
				acceptOnce(ln, func(c net.Conn) { io.Copy(c, c) })
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				kc, err := ns.DialContext(ctx, network, netip.AddrPortFrom(p.Stack, 7).String())
				if err != nil {
					t.Fatalf("%v: kernel dialing the stack: %v", p, err)
				}
				kc.SetDeadline(time.Now().Add(10 * time.Second))
				io.WriteString(kc, "from the kernel")
				kc.(*net.TCPConn).CloseWrite()
				if got, err := io.ReadAll(kc); err != nil || string(got) != "from the kernel" {
					t.Errorf("%v: echo from the stack: %q, %v", p, got, err)
				}
				kc.Close()
				ln.Close()

				// The stack dials the kernel.
				kl, err := ns.Listen(network, netip.AddrPortFrom(p.Host.Addr(), 0).String())
				if err != nil {
					t.Fatal(err)
				}
				acceptOnce(kl, func(c net.Conn) { io.WriteString(c, "from the kernel's listener") })
				sc, err := n.Stack.DialTCP(ctx, kl.Addr().(*net.TCPAddr).AddrPort())
				if err != nil {
					t.Fatalf("%v: stack dialing the kernel: %v", p, err)
				}
				sc.SetDeadline(time.Now().Add(10 * time.Second))
				if got, err := io.ReadAll(sc); err != nil || string(got) != "from the kernel's listener" {
					t.Errorf("%v: read from the kernel: %q, %v", p, got, err)
				}
				sc.Close()
				kl.Close()
			}

			name := n.Dev.Name()
			if err := n.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if err := n.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			var ifErr error
			ns.Do(func() { _, ifErr = net.InterfaceByName(name) })
			if ifErr == nil {
				t.Errorf("interface %s still exists after Close", name)
			}
			if wrap.sent.Load() == 0 {
				t.Errorf("the Link wrapper saw no packet")
			}
			// A pcap file header, then records: the last one complete.
			if recs, err := pcapRecords(capture.Bytes()); err != nil || recs < 10 {
				t.Errorf("capture: %d records, %v; want at least a handshake, data and teardown per connection", recs, err)
			}

			// The namespace: once nstest has closed it, its name is gone
			// and no thread of ours is left in it.
			var nsID string
			ns.Do(func() { nsID, err = os.Readlink("/proc/thread-self/ns/net") })
			if err != nil {
				t.Fatal(err)
			}
			ns.Close()
			if _, err := os.Stat(filepath.Join("/run/netns", ns.Name)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("namespace %s still named after Close: %v", ns.Name, err)
			}
			// The namespace's thread ends when its goroutine has returned,
			// a moment after Close. Under CI's load (every package's tests
			// at once, the race detector) a thread has been seen still
			// there after 5 s, twice in a day, on branches with and
			// without the TUN offload work: wait 20 s, and say what the
			// thread is doing if one stays.
			var left []string
			for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(time.Millisecond) {
				left = threadsIn(nsID)
				if len(left) == 0 || time.Now().After(deadline) {
					break
				}
			}
			for _, task := range left {
				dir := filepath.Dir(filepath.Dir(task))
				stat, _ := os.ReadFile(filepath.Join(dir, "stat"))
				wchan, _ := os.ReadFile(filepath.Join(dir, "wchan"))
				syscall, _ := os.ReadFile(filepath.Join(dir, "syscall"))
				t.Errorf("thread %s still in the test's namespace %s 20s after it was closed: stat %q, wchan %q, syscall %q",
					dir, nsID, stat, wchan, syscall)
			}
		})
	}
}

// threadsIn lists this process's threads in the network namespace nsID
// (as /proc/PID/ns/net names it: "net:[4026532369]").
func threadsIn(nsID string) []string {
	var out []string
	tasks, _ := filepath.Glob("/proc/self/task/*/ns/net")
	for _, task := range tasks {
		if id, _ := os.Readlink(task); id == nsID {
			out = append(out, task)
		}
	}
	return out
}

// acceptOnce accepts one connection on l in a goroutine, hands it to
// serve, and closes it.
func acceptOnce(l net.Listener, serve func(net.Conn)) {
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		serve(c)
		c.Close()
	}()
}

// pcapRecords counts the records of a pcap stream and checks that it ends
// at a record's end.
func pcapRecords(b []byte) (int, error) {
	if len(b) < 24 {
		return 0, errors.New("no file header")
	}
	n := 0
	for b = b[24:]; len(b) > 0; n++ {
		if len(b) < 16 {
			return n, errors.New("truncated record header")
		}
		caplen := int(binary.LittleEndian.Uint32(b[8:]))
		if len(b) < 16+caplen {
			return n, errors.New("truncated record")
		}
		b = b[16+caplen:]
	}
	return n, nil
}

//go:build linux

package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/synack/synack/link/tun/nstest"
)

// TestForwardHelp: -h and --help print the usage on stdout; bad flags and
// combinations fail with status 2 and one line on stderr.
func TestForwardHelp(t *testing.T) {
	for _, h := range []string{"-h", "--help"} {
		var out, errb bytes.Buffer
		cmd := synackCmd(os.Args[0], "forward", h)
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Errorf("synack forward %s: %v", h, err)
		}
		if !strings.HasPrefix(out.String(), "usage: synack forward") || !strings.Contains(out.String(), "--out-netns") || errb.Len() != 0 {
			t.Errorf("synack forward %s: stdout %q, stderr %q; want the usage on stdout only", h, first(out.String()), errb.String())
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--no-such-flag"}, "no-such-flag"},
		{[]string{"--out-netns", "x", "--out-iface", "y"}, "give one of them"},
		{[]string{"--route", "0.0.0.0/0"}, "back into the TUN"},
		{[]string{"--route", "nonsense", "--out-iface", "lo"}, "--route"},
		{[]string{"--via", "http://proxy:3128"}, "socks5://"},
		{[]string{"--max-conns", "0"}, "--max-conns"},
		{[]string{"extra"}, "unexpected argument"},
	} {
		var out, errb bytes.Buffer
		cmd := synackCmd(os.Args[0], append([]string{"forward"}, tc.args...)...)
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || out.Len() != 0 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("synack forward %v: %v, stdout %q, stderr %q; want status 2 and %q on stderr", tc.args, err, out.String(), errb.String(), tc.want)
		}
	}
}

// fwdNS is a network namespace made with `ip netns add` for the forward
// test; its name starts with "fwd" (this helper's prefix, so parallel
// tests never collide) and carries the process id.
type fwdNS string

func newFwdNS(t *testing.T, role string) fwdNS {
	t.Helper()
	name := fwdNS(fmt.Sprintf("fwd%d%s", os.Getpid(), role))
	exec.Command("ip", "netns", "del", string(name)).Run() // a leftover of a killed run
	mustRun(t, "ip", "netns", "add", string(name))
	t.Cleanup(func() { exec.Command("ip", "netns", "del", string(name)).Run() })
	name.ip(t, "link", "set", "lo", "up")
	return name
}

func (ns fwdNS) ip(t *testing.T, args ...string) {
	t.Helper()
	mustRun(t, "ip", append([]string{"-n", string(ns)}, args...)...)
}

// command runs name inside the namespace.
func (ns fwdNS) command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", string(ns), name}, args...)...)
}

// do runs f on an OS thread inside the namespace; sockets f creates stay
// in it. The thread is never handed back to the runtime.
func (ns fwdNS) do(f func()) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		h, err := netns.GetFromName(string(ns))
		if err == nil {
			err = netns.Set(h)
			h.Close()
		}
		if err == nil {
			f()
		}
		errc <- err
	}()
	if err := <-errc; err != nil {
		return fmt.Errorf("entering %s: %w", ns, err)
	}
	return nil
}

func mustRun(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// TestForwardInterop: namespace A's default route points into the TUN
// device that `synack forward` (running in A) serves; the forwarder
// dials from namespace R, joined by a veth pair to namespace B, where a
// kernel HTTP server listens. curl in A fetches a file from B's address
// and uploads one (both hashes checked), a closed port gets curl a reset
// quickly, and the same runs again through a SOCKS5 proxy in R.
//
//	A: curl, fwd0 (TUN) <-> synack forward --out-netns R
//	R: fwdr0 198.19.1.1/24, SOCKS5 on :1080  <-veth->  B: fwdb0 198.19.1.2/24, HTTP :8080
func TestForwardInterop(t *testing.T) {
	nstest.Require(t)
	curl, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("curl is not installed; .ci/run installs it")
		}
		t.Skip("needs curl")
	}
	a, r, b := newFwdNS(t, "a"), newFwdNS(t, "r"), newFwdNS(t, "b")
	r.ip(t, "link", "add", "fwdr0", "type", "veth", "peer", "name", "fwdb0", "netns", string(b))
	r.ip(t, "addr", "add", "198.19.1.1/24", "dev", "fwdr0")
	r.ip(t, "addr", "add", "fd00:f1::1/64", "dev", "fwdr0", "nodad")
	r.ip(t, "link", "set", "fwdr0", "up")
	b.ip(t, "addr", "add", "198.19.1.2/24", "dev", "fwdb0")
	b.ip(t, "addr", "add", "fd00:f1::2/64", "dev", "fwdb0", "nodad")
	b.ip(t, "link", "set", "fwdb0", "up")
	// A second way from A to B, for --out-iface: a veth pair whose
	// route to B's first network the test adds only while it runs.
	a.ip(t, "link", "add", "fwda0", "type", "veth", "peer", "name", "fwdb1", "netns", string(b))
	a.ip(t, "addr", "add", "198.19.2.1/24", "dev", "fwda0")
	a.ip(t, "link", "set", "fwda0", "up")
	b.ip(t, "addr", "add", "198.19.2.2/24", "dev", "fwdb1")
	b.ip(t, "link", "set", "fwdb1", "up")

	file := make([]byte, 8<<20)
	rand.NewChaCha8([32]byte{'f', 'w', 'd'}).Read(file)
	var hl net.Listener
	if e := b.do(func() { hl, err = net.Listen("tcp", ":8080") }); e != nil || err != nil {
		t.Fatal(e, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	var httpConns atomic.Int64
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if req.Method == http.MethodPost {
				h := sha256.New()
				n, _ := io.Copy(h, req.Body)
				fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
				return
			}
			w.Write(file)
		}),
		ConnState: func(c net.Conn, s http.ConnState) {
			if s == http.StateNew {
				httpConns.Add(1)
			}
		},
	}
	go srv.Serve(hl)
	defer srv.Close()
	// The UDP echo server binds each address: an unbound one would answer
	// the --out-iface case (which reaches B over its second veth) from
	// the address of that veth, which the relay's connected socket rejects.
	for _, addr := range []string{"198.19.1.2:7", "[fd00:f1::2]:7"} {
		var echo net.PacketConn
		if e := b.do(func() { echo, err = net.ListenPacket("udp", addr) }); e != nil || err != nil {
			t.Fatal(e, err)
		}
		defer echo.Close()
		go func() {
			buf := make([]byte, 2000)
			for {
				n, from, err := echo.ReadFrom(buf)
				if err != nil {
					return
				}
				echo.WriteTo(buf[:n], from)
			}
		}()
	}

	var sl net.Listener
	if e := r.do(func() { sl, err = net.Listen("tcp4", "198.19.1.1:1080") }); e != nil || err != nil {
		t.Fatal(e, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer sl.Close()
	var socksConnects atomic.Int64
	go serveSOCKS5(sl, func(addr string) (net.Conn, error) {
		socksConnects.Add(1)
		var c net.Conn
		var err error
		if e := r.do(func() { c, err = net.DialTimeout("tcp", addr, 5*time.Second) }); e != nil {
			return nil, e
		}
		return c, err
	})

	netnsOut := []string{"--route", "0.0.0.0/0,::/0", "--out-netns", string(r)}
	for _, tc := range []struct {
		name  string
		extra []string
		ipv6  bool   // also fetch over IPv6
		route string // in A while the case runs, via the second veth
	}{
		{"direct", netnsOut, true, ""},
		{"socks5", append([]string{"--via", "socks5://198.19.1.1:1080"}, netnsOut...), false, ""},
		// The TUN device gets B's network, the veth a route to it with a
		// higher metric: curl goes into the TUN device, the relay's
		// connections (bound to fwda0) over the veth.
		{"out-iface", []string{"--route", "198.19.1.0/24", "--out-iface", "fwda0"}, false, "198.19.1.0/24 via 198.19.2.2 dev fwda0 metric 100"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := socksConnects.Load()
			if tc.route != "" {
				a.ip(t, append([]string{"route", "add"}, strings.Fields(tc.route)...)...)
				defer exec.Command("ip", append([]string{"-n", string(a), "route", "del"}, strings.Fields(tc.route)...)...).Run()
			}
			args := append([]string{"forward", "--tun", "fwd0", "--host-addr", "198.18.0.1/24,fd00:f0::1/64", "--stack-addr", "198.18.0.2,fd00:f0::2", "-v"}, tc.extra...)
			cmd := a.command(os.Args[0], append([]string{"-test.run=^TestHelperProcess$", "--"}, args...)...)
			cmd.Env = append(os.Environ(), "SYNACK_CMD_CHILD=1")
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill()
			lines := make(chan string, 4)
			go func() {
				sc := bufio.NewScanner(stdout)
				for sc.Scan() {
					lines <- sc.Text()
				}
				close(lines)
			}()
			select {
			case l, ok := <-lines:
				if !ok {
					cmd.Wait()
					t.Fatalf("synack forward exited before it was ready: %s", stderr.String())
				}
				if !strings.Contains(l, "ready") || !strings.Contains(l, "fwd0") {
					t.Errorf("ready line %q", l)
				}
				t.Logf("ready line: %s", l)
			case <-time.After(10 * time.Second):
				t.Fatalf("no ready line within 10s; stderr: %s", stderr.String())
			}

			// GET: B's file through synack.
			out, err := a.command(curl, "-sS", "--fail", "--max-time", "30", "http://198.19.1.2:8080/file").Output()
			if err != nil || sha256.Sum256(out) != sha256.Sum256(file) {
				t.Errorf("curl GET through synack forward: %d bytes (want %d, hash %s), %v; forward's stderr: %s",
					len(out), len(file), map[bool]string{true: "matches", false: "differs"}[sha256.Sum256(out) == sha256.Sum256(file)], err, stderr.String())
			}
			if tc.ipv6 {
				out, err := a.command(curl, "-sS", "--fail", "--max-time", "30", "-g", "http://[fd00:f1::2]:8080/file").Output()
				if err != nil || sha256.Sum256(out) != sha256.Sum256(file) {
					t.Errorf("curl GET over IPv6 through synack forward: %d bytes (want %d), %v; forward's stderr: %s", len(out), len(file), err, stderr.String())
				}
			}
			// UDP, except through SOCKS5: a datagram to B's echo server
			// and its answer, from B's address (the socket is connected).
			udpTo := []string{"198.19.1.2:7"}
			if tc.ipv6 {
				udpTo = append(udpTo, "[fd00:f1::2]:7")
			}
			for _, addr := range udpTo {
				if tc.name == "socks5" {
					break
				}
				var uc net.Conn
				if e := a.do(func() { uc, err = net.Dial("udp", addr) }); e != nil || err != nil {
					t.Fatal(e, err)
				}
				uc.SetDeadline(time.Now().Add(10 * time.Second))
				msg := "datagram to " + addr
				uc.Write([]byte(msg))
				buf := make([]byte, 100)
				n, err := uc.Read(buf)
				if err != nil || string(buf[:n]) != msg {
					t.Errorf("UDP to %s through synack forward: %q, %v; want the echo", addr, buf[:n], err)
				}
				uc.Close()
			}
			// POST: the other direction, and the request's end is the
			// upload's end (Content-Length) while the response comes back.
			up := a.command(curl, "-sS", "--fail", "--max-time", "30", "--data-binary", "@-", "http://198.19.1.2:8080/upload")
			up.Stdin = bytes.NewReader(file[:3<<20])
			out, err = up.Output()
			if want := fmt.Sprintf("%d %x", 3<<20, sha256.Sum256(file[:3<<20])); err != nil || string(out) != want {
				t.Errorf("curl POST through synack forward: %q, %v; want %q", out, err, want)
			}
			// A closed port: the destination refuses, the client gets a
			// reset at once (curl: "Recv failure" or "reset"), not a
			// timeout (exit 28).
			start := time.Now()
			err = a.command(curl, "-sS", "--max-time", "20", "http://198.19.1.2:9/").Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() == 28 || time.Since(start) > 15*time.Second {
				t.Errorf("curl to a closed port through synack forward: %v after %v; want a quick failure", err, time.Since(start))
			}
			t.Logf("curl to a closed port: %v after %v", err, time.Since(start).Round(time.Millisecond))
			if tc.name == "socks5" && socksConnects.Load()-before < 3 {
				t.Errorf("the SOCKS5 proxy saw %d CONNECTs, want 3", socksConnects.Load()-before)
			}
			if tc.name != "socks5" && socksConnects.Load() != before {
				t.Errorf("the SOCKS5 proxy saw %d CONNECTs without --via", socksConnects.Load()-before)
			}

			cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("synack forward after SIGTERM: %v; stderr: %s", err, stderr.String())
				}
			case <-time.After(10 * time.Second):
				t.Fatal("synack forward still running 10s after SIGTERM")
			}
			if err := a.command("ip", "link", "show", "fwd0").Run(); err == nil {
				t.Error("fwd0 still exists after synack forward exited")
			}
			// -v: one line per connection relayed; they show curl's
			// connections went through synack, not around it.
			if n := strings.Count(stderr.String(), "-> 198.19.1.2:8080: relaying"); n != 2 {
				t.Errorf("synack forward -v logged %d relays to 198.19.1.2:8080, want 2 (GET, POST):\n%s", n, stderr.String())
			}
		})
	}
	if httpConns.Load() < 7 {
		t.Errorf("the HTTP server in B saw %d connections, want 7", httpConns.Load())
	}
}

// serveSOCKS5 is a SOCKS5 server (RFC 1928) of the least kind: no
// authentication, CONNECT to an IPv4 or IPv6 address only, dialing with
// dial; a failed dial is answered "connection refused" (reply 5).
func serveSOCKS5(l net.Listener, dial func(addr string) (net.Conn, error)) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(c)
			var hdr [2]byte
			if _, err := io.ReadFull(br, hdr[:]); err != nil || hdr[0] != 5 {
				return
			}
			if _, err := io.ReadFull(br, make([]byte, hdr[1])); err != nil {
				return
			}
			c.Write([]byte{5, 0}) // no authentication
			var req [4]byte
			if _, err := io.ReadFull(br, req[:]); err != nil || req[1] != 1 {
				return
			}
			var ab []byte
			switch req[3] {
			case 1:
				ab = make([]byte, 4)
			case 4:
				ab = make([]byte, 16)
			default:
				c.Write([]byte{5, 8, 0, 1, 0, 0, 0, 0, 0, 0}) // address type not supported
				return
			}
			var pb [2]byte
			if _, err := io.ReadFull(br, ab); err != nil {
				return
			}
			if _, err := io.ReadFull(br, pb[:]); err != nil {
				return
			}
			ip, _ := netip.AddrFromSlice(ab)
			target := netip.AddrPortFrom(ip, binary.BigEndian.Uint16(pb[:]))
			up, err := dial(target.String())
			if err != nil {
				c.Write([]byte{5, 5, 0, 1, 0, 0, 0, 0, 0, 0})
				return
			}
			defer up.Close()
			c.Write([]byte{5, 0, 0, 1, 0, 0, 0, 0, 0, 0})
			c.SetDeadline(time.Time{})
			done := make(chan struct{})
			go func() {
				io.Copy(up, br)
				up.(*net.TCPConn).CloseWrite()
				close(done)
			}()
			io.Copy(c, up)
			c.(*net.TCPConn).CloseWrite()
			<-done
		}()
	}
}

//go:build linux

package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/synack/synack/link/tun/nstest"
)

// TestHelperProcess is not a test: the tests below run the test binary
// again with SYNACK_CMD_CHILD=1 and a synack command line after "--", to
// get a real synack process (in a namespace of their making) without
// building one.
func TestHelperProcess(t *testing.T) {
	if os.Getenv("SYNACK_CMD_CHILD") != "1" {
		return
	}
	args := os.Args
	for i, a := range args {
		if a == "--" {
			args = args[i+1:]
			break
		}
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "no command %q\n", args[0])
		os.Exit(2)
	}
	os.Exit(c.run(args[1:]))
}

func synackCmd(exe string, args ...string) *exec.Cmd {
	cmd := exec.Command(exe, append([]string{"-test.run=^TestHelperProcess$", "--"}, args...)...)
	cmd.Env = append(os.Environ(), "SYNACK_CMD_CHILD=1")
	return cmd
}

// TestServe runs `synack serve --http 80 --echo 7` in a namespace, then
// from the kernel's side: GET / shows the page, echo echoes, another port
// is refused; SIGTERM ends it with status 0 and removes the interface.
// Then the same over IPv6 with --discard.
func TestServe(t *testing.T) {
	for _, tc := range []struct {
		name, host, stack string
	}{
		{"IPv4", "198.18.0.1/24", "198.18.0.2"},
		{"IPv6", "fd00:5e7e::1/64", "fd00:5e7e::2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := nstest.New(t)
			pcapPath := filepath.Join(t.TempDir(), "serve.pcap")
			cmd := synackCmd(os.Args[0], "serve", "--tun", "tun0", "--host-addr", tc.host, "--stack-addr", tc.stack,
				"--http", "80", "--echo", "7", "--discard", "9", "--pcap", pcapPath)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := ns.Start(cmd); err != nil {
				t.Fatalf("starting synack serve: %v", err)
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
					t.Fatalf("synack serve exited before it was ready: %s", stderr.String())
				}
				for _, want := range []string{"ready", "tun0", tc.stack, "echo on port 7", "discard on port 9", "HTTP on port 80"} {
					if !strings.Contains(l, want) {
						t.Errorf("ready line %q does not mention %q", l, want)
					}
				}
				t.Logf("ready line: %s", l)
			case <-time.After(10 * time.Second):
				t.Fatalf("no ready line within 10s; stderr: %s", stderr.String())
			}

			stackAt := func(port string) string { return net.JoinHostPort(tc.stack, port) }

			// curl http://STACK/
			hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: ns.DialContext}}
			resp, err := hc.Get("http://" + stackAt("80") + "/")
			if err != nil {
				t.Fatalf("GET /: %v", err)
			}
			page, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(page), "synack") || !strings.Contains(string(page), "ESTABLISHED") {
				t.Errorf("GET / = %d:\n%s\nwant 200 and a page showing the connection ESTABLISHED", resp.StatusCode, page)
			}
			hc.CloseIdleConnections()

			// nc STACK 7
			c, err := ns.Dial("tcp", stackAt("7"))
			if err != nil {
				t.Fatalf("dial echo: %v", err)
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			msg := "echo this, please\n"
			io.WriteString(c, msg)
			c.(*net.TCPConn).CloseWrite()
			got, err := io.ReadAll(c)
			c.Close()
			if err != nil || string(got) != msg {
				t.Errorf("echo: got %q, %v; want %q then EOF", got, err, msg)
			}

			// discard
			c, err = ns.Dial("tcp", stackAt("9"))
			if err != nil {
				t.Fatalf("dial discard: %v", err)
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			c.Write(make([]byte, 100000))
			c.(*net.TCPConn).CloseWrite()
			if got, err := io.ReadAll(c); err != nil || len(got) != 0 {
				t.Errorf("discard answered %d bytes, %v; want nothing, then EOF", len(got), err)
			}
			c.Close()

			// Any other port: refused.
			if _, err := ns.Dial("tcp", stackAt("8080")); !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("dial port 8080: %v, want connection refused", err)
			}

			cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("synack serve after SIGTERM: %v; stderr: %s", err, stderr.String())
				}
			case <-time.After(10 * time.Second):
				t.Fatal("synack serve still running 10s after SIGTERM")
			}
			if _, more := <-lines; more {
				t.Errorf("synack serve printed more than its ready line")
			}
			var ifErr error
			ns.Do(func() { _, ifErr = net.InterfaceByName("tun0") })
			if ifErr == nil {
				t.Errorf("tun0 still exists after synack serve exited")
			}
			if st, err := os.Stat(pcapPath); err != nil || st.Size() <= 24 {
				t.Errorf("--pcap file: %v, %v; want packets in it", st, err)
			}
		})
	}
}

// TestNC runs `synack nc` against kernel listeners in a namespace: an echo
// server (stdin arrives, the answer comes back, exit 0 after the FINs), a
// refused port (exit 1, "connection refused"), and a server that resets
// (exit 1, "connection reset").
func TestNC(t *testing.T) {
	ns := nstest.New(t)
	l, err := ns.Listen("tcp4", "0.0.0.0:7")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				io.Copy(c, c) // until nc's FIN
				c.Close()
			}()
		}
	}()
	rl, err := ns.Listen("tcp4", "0.0.0.0:13")
	if err != nil {
		t.Fatal(err)
	}
	defer rl.Close()
	go func() {
		for {
			c, err := rl.Accept()
			if err != nil {
				return
			}
			c.(*net.TCPConn).SetLinger(0)
			c.Close() // RST
		}
	}()

	run := func(stdin string, args ...string) (string, string, int) {
		t.Helper()
		cmd := synackCmd(os.Args[0], append([]string{"nc", "--tun", "nc0", "--host-addr", "198.18.1.1/24", "--stack-addr", "198.18.1.2"}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := ns.Start(cmd); err != nil {
			t.Fatal(err)
		}
		timer := time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() })
		defer timer.Stop()
		err := cmd.Wait()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), errb.String(), code
	}

	in := strings.Repeat("a line for the echo server\n", 5000)
	out, errs, code := run(in, "198.18.1.1", "7")
	if code != 0 || out != in {
		t.Errorf("nc to echo: exit %d, %d bytes back (want %d); stderr: %s", code, len(out), len(in), errs)
	}

	_, errs, code = run("hello", "198.18.1.1", "9")
	if code != 1 || !strings.Contains(errs, "connection refused") || strings.Count(strings.TrimSpace(errs), "\n") != 0 {
		t.Errorf("nc to a closed port: exit %d, stderr %q; want 1 and one line saying connection refused", code, errs)
	}
	t.Logf("refused: %s", strings.TrimSpace(errs))

	// The reset may come before or after our data: either way it is reported.
	_, errs, code = run("", "198.18.1.1", "13")
	if code != 1 || !strings.Contains(errs, "reset") {
		t.Errorf("nc to a resetting server: exit %d, stderr %q; want 1 and connection reset", code, errs)
	}
	t.Logf("reset: %s", strings.TrimSpace(errs))
}

// TestTUNCommandsWithoutRoot runs serve and nc as user nobody: one clear
// line, non-zero exit.
func TestTUNCommandsWithoutRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch to user nobody")
	}
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		os.Chmod(d, 0o755)
	}
	exe, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "synack.test")
	if err := os.WriteFile(bin, exe, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"serve", "--tun", "noroot0", "--echo", "7"},
		{"nc", "--tun", "noroot0", "198.18.0.1", "7"},
	} {
		cmd := synackCmd(bin, args...)
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() == 0 {
			t.Errorf("synack %s as nobody: %v, want a non-zero exit", args[0], err)
		}
		msg := errb.String()
		if strings.Count(msg, "\n") != 1 || !strings.Contains(msg, "root") || out.Len() != 0 {
			t.Errorf("synack %s as nobody: stdout %q, stderr %q; want one line on stderr that mentions root", args[0], out.String(), msg)
		}
		t.Logf("synack %s as nobody: %s", args[0], strings.TrimSpace(msg))
	}
}

// TestTUNFlagErrors: address flags that cannot work are a usage error
// (exit 2) with one line naming the flag, before any device is made; the
// values are checked by tunstack, the flags named here. So are serve's
// --idle-timeout and --buffer out of range.
func TestTUNFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--echo", "7", "--host-addr", "198.18.0.1"}, "--host-addr \"198.18.0.1\": want an address with a prefix length"},
		{[]string{"serve", "--echo", "7", "--stack-addr", "198.18.0.1"}, "--stack-addr 198.18.0.1: the stack's address is the host's own"},
		{[]string{"serve", "--echo", "7", "--stack-addr", "224.0.0.1"}, "not a unicast address"},
		{[]string{"serve", "--echo", "7", "--idle-timeout", "-1s"}, "--idle-timeout -1s: negative"},
		{[]string{"serve", "--echo", "7", "--buffer", "100"}, "--buffer 100: less than 4096 bytes"},
		{[]string{"nc", "--host-addr", "198.18.0.1/24,fd00::1/64", "198.18.0.1", "7"}, "--host-addr fd00::1/64 has no --stack-addr of the same family"},
		{[]string{"nc", "--stack-addr", "fd00::2", "198.18.0.1", "7"}, "has no --stack-addr of the same family"},
		{[]string{"serve", "--echo", "7", "--queues", "0"}, "--queues 0: want 1 to 256"},
	} {
		cmd := synackCmd(os.Args[0], tc.args...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 2 {
			t.Errorf("synack %s: %v, want exit status 2", strings.Join(tc.args, " "), err)
		}
		if msg := errb.String(); strings.Count(msg, "\n") != 1 || !strings.Contains(msg, tc.want) || out.Len() != 0 {
			t.Errorf("synack %s: stdout %q, stderr %q; want one line saying %q", strings.Join(tc.args, " "), out.String(), msg, tc.want)
		}
	}
}

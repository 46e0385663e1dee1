package pktdrill

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/expected-pass.txt from this run")

// suiteDir finds the FreeBSD TCP test suite: $SYNACK_PACKETDRILL, or a
// directory shared/packetdrill/freebsd-tcp-testsuite beside the module
// root or beside any directory above it (the checkout may be /work/main
// with the suite in /work/shared, or a fresh clone somewhere below /work).
func suiteDir(t *testing.T) string {
	if d := os.Getenv("SYNACK_PACKETDRILL"); d != "" {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			fail, msg := missingSuite(os.Getenv("CI"), true)
			if fail {
				t.Fatalf("%s (%v)", msg, err)
			}
		}
		return d
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		c := filepath.Join(dir, "shared", "packetdrill", "freebsd-tcp-testsuite")
		if st, err := os.Stat(c); err == nil && st.IsDir() {
			return c
		}
		c = filepath.Join(dir, "..", "shared", "packetdrill", "freebsd-tcp-testsuite")
		if st, err := os.Stat(c); err == nil && st.IsDir() {
			return filepath.Clean(c)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// missingSuite tells what to do when the suite is not found: skip with the
// reason (a fresh clone has no ../shared; `go test -v` shows why), or fail
// when the environment says CI (CI=true, as CI systems set it), where a
// skipped conformance run would read as a pass, or when SYNACK_PACKETDRILL
// names a directory that is not there (explicit).
func missingSuite(ci string, explicit bool) (fail bool, msg string) {
	msg = "FreeBSD TCP test suite not found, so the packetdrill conformance run did not happen: " +
		"looked for shared/packetdrill/freebsd-tcp-testsuite beside the module and each directory above it; " +
		"set SYNACK_PACKETDRILL to the suite's directory"
	if explicit {
		return true, "SYNACK_PACKETDRILL does not name a directory"
	}
	if on, err := strconv.ParseBool(ci); err == nil && on {
		return true, msg + " (CI is set: a missing suite fails)"
	}
	return false, msg
}

func TestMissingSuite(t *testing.T) {
	for _, c := range []struct {
		ci       string
		explicit bool
		fail     bool
	}{{"", false, false}, {"false", false, false}, {"true", false, true}, {"1", false, true}, {"", true, true}} {
		fail, msg := missingSuite(c.ci, c.explicit)
		if fail != c.fail || msg == "" {
			t.Errorf("CI=%q explicit %v: fail %v (%q), want %v", c.ci, c.explicit, fail, msg, c.fail)
		}
	}
}

// TestFreeBSDSuite runs every script of the suite, reports pass / fail /
// skip per folder, and fails when a script listed in
// testdata/expected-pass.txt does not pass.
func TestFreeBSDSuite(t *testing.T) {
	root := suiteDir(t)
	if root == "" {
		fail, msg := missingSuite(os.Getenv("CI"), false)
		if fail {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	files, results, all := runSuite(t, root, FreeBSD)
	if len(files) == 0 {
		t.Fatalf("no .pkt scripts under %s", root)
	}

	const passFile = "testdata/expected-pass.txt"
	if *update {
		var b strings.Builder
		b.WriteString("# Scripts of ../shared/packetdrill/freebsd-tcp-testsuite that pass, one path a line\n")
		b.WriteString("# relative to the suite. TestFreeBSDSuite fails if one of them stops passing.\n")
		b.WriteString("# Regenerate with: go test ./internal/pktdrill -run FreeBSDSuite -update\n")
		for _, f := range files {
			if results[f].Status == Pass {
				b.WriteString(f + "\n")
			}
		}
		if err := os.WriteFile(passFile, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d scripts)", passFile, all.pass)
		return
	}
	want, err := readList(passFile)
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, f := range want {
		listed[f] = true
		r, ok := results[f]
		switch {
		case !ok:
			t.Errorf("%s is listed in %s but not in the suite", f, passFile)
		case r.Status != Pass:
			t.Errorf("%s passed before and does not now:\n%s", f, r)
		}
	}
	var newPass []string
	for _, f := range files {
		if results[f].Status == Pass && !listed[f] {
			newPass = append(newPass, f)
		}
	}
	if len(newPass) > 0 {
		t.Logf("%d script(s) pass and are not in %s yet (run with -update to add them): %s",
			len(newPass), passFile, strings.Join(newPass, " "))
	}
}

type tally struct{ pass, fail, skip int }

// runSuite runs every .pkt script below root with the profile, logs
// pass / fail / skip per folder (and, with -v, why each script did not
// pass), and returns the scripts (relative to root), their results and
// the totals.
func runSuite(t *testing.T, root string, prof Profile) ([]string, map[string]Result, tally) {
	var files []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".pkt") {
			rel, _ := filepath.Rel(root, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(files)
	results := map[string]Result{}
	folders := map[string]*tally{}
	var order []string
	for _, f := range files {
		res := RunFile(filepath.Join(root, filepath.FromSlash(f)), Options{Profile: prof})
		results[f] = res
		folder := "."
		if i := strings.IndexByte(f, '/'); i >= 0 {
			folder = f[:i]
		}
		if folders[folder] == nil {
			folders[folder] = &tally{}
			order = append(order, folder)
		}
		switch res.Status {
		case Pass:
			folders[folder].pass++
		case Fail:
			folders[folder].fail++
		case Skip:
			folders[folder].skip++
			if res.Msg == "" {
				t.Errorf("%s: skipped without a reason", f)
			}
		}
	}
	// Failures and skips by reason, for the log; the table after them,
	// so that the end of a -v run shows it.
	if testing.Verbose() {
		for _, f := range files {
			if r := results[f]; r.Status != Pass {
				t.Logf("%s %s: %s", r.Status, f, firstLine(r.Msg))
			}
		}
	}
	var tab strings.Builder
	fmt.Fprintf(&tab, "%s, profile %s\n", root, prof.Name)
	fmt.Fprintf(&tab, "%-20s %6s %6s %6s %6s\n", "folder", "pass", "fail", "skip", "total")
	var all tally
	for _, f := range order {
		c := folders[f]
		fmt.Fprintf(&tab, "%-20s %6d %6d %6d %6d\n", f, c.pass, c.fail, c.skip, c.pass+c.fail+c.skip)
		all.pass += c.pass
		all.fail += c.fail
		all.skip += c.skip
	}
	fmt.Fprintf(&tab, "%-20s %6d %6d %6d %6d", "all", all.pass, all.fail, all.skip, all.pass+all.fail+all.skip)
	t.Log("\n" + tab.String())

	return files, results, all
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func readList(name string) ([]string, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		out = append(out, path.Clean(l))
	}
	return out, sc.Err()
}

// The runner itself, on small scripts that need no suite.

func TestParse(t *testing.T) {
	s, err := Parse(`--ip_version=ipv4
--tolerance_usecs=50000
 0.00 ` + "`sysctl -w net.inet.tcp.insecure_rst=1\n   sysctl -w net.inet.tcp.sack.enable=0`" + `
+0.00 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3 // comment
+.1 connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)
*   > S  0:0(0) win 65535 <mss 1460,nop,wscale 6,sackOK,TS val 100 ecr 0>
1.0...2.5 accept(3, ..., ...) = 4
+0 < S. 0:0(0) ack 1 win 32767 <mss 1460,sackOK,eol,eol>
#ifdef FreeBSD
+0 > R 1:1(0)
#endif
#ifdef STANDARD
+0 > . 1:1(0) ack 1
#endif
+0.00 %{ assert tcpi_state == TCPI_ESTABLISHED }%
`)
	if err != nil {
		t.Fatal(err)
	}
	if s.Opts["tolerance_usecs"] != "50000" || len(s.Events) != 8 {
		t.Fatalf("opts %v, %d events", s.Opts, len(s.Events))
	}
	if e := s.Events[0]; e.Kind != ShellEvent || !strings.Contains(e.Command, "sack.enable=0") {
		t.Errorf("multi-line backtick: %+v", e)
	}
	if e := s.Events[2]; e.TimeKind != Relative || e.Time.Milliseconds() != 100 || e.Syscall.Errno != "EINPROGRESS" || e.Syscall.Result != -1 {
		t.Errorf("relative syscall: %+v %+v", e, e.Syscall)
	}
	if e := s.Events[3]; e.TimeKind != AnyTime || e.Packet.Dir != '>' || len(e.Packet.Opts) != 5 {
		t.Errorf("any-time packet: %+v %+v", e, e.Packet)
	}
	if e := s.Events[4]; !e.HasEnd || e.End.Milliseconds() != 2500 {
		t.Errorf("range: %+v", e)
	}
	if e := s.Events[6]; e.Packet.Flags.String() != "." {
		t.Errorf("#ifdef STANDARD branch not taken: %s", e.Text)
	}
	if e := s.Events[7]; e.Kind != CodeEvent || e.Command != "assert tcpi_state == TCPI_ESTABLISHED" {
		t.Errorf("code: %+v", e)
	}
}

// A handshake, data both ways and a close, run against the stack.
func TestRunSmall(t *testing.T) {
	s, err := Parse(`--tolerance_usecs=10000
0.000 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 32767 <mss 1000,sackOK,nop,nop>
+0 > S. 0:0(0) ack 1 win 65535 <mss 1460,nop,nop,sackOK>
+.1 < . 1:1(0) ack 1 win 32767
+0 accept(3, ..., ...) = 4
+0 %{ assert tcpi_state == TCPI_ESTABLISHED }%
+0 < P. 1:11(10) ack 1 win 32767
+0 read(4, ..., 100) = 10
+0 write(4, ..., 5) = 5
+0 > P. 1:6(5) ack 11
+.1 < . 11:11(0) ack 6 win 32767
+0 close(4) = 0
+0 > F. 6:6(0) ack 11
+.1 < F. 11:11(0) ack 7 win 32767
+0 > . 7:7(0) ack 12
`)
	if err != nil {
		t.Fatal(err)
	}
	if res := Run(s, Options{}); res.Status != Pass {
		t.Fatal(res)
	}
}

// A wrong expectation fails with the line, both packets and the state.
func TestRunReportsMismatch(t *testing.T) {
	s, err := Parse(`0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 32767 <mss 1000>
+0 > S. 0:0(0) ack 2 win 65535 <mss 1460>
`)
	if err != nil {
		t.Fatal(err)
	}
	res := Run(s, Options{})
	if res.Status != Fail || res.Line != 5 || !strings.Contains(res.Msg, "want: > S. 0:0(0) ack 2") ||
		!strings.Contains(res.Msg, "got:  S. 0:0(0) ack 1") || !strings.Contains(res.Msg, "SYN-RECEIVED") {
		t.Fatalf("got %v", res)
	}
}

// The keep-alive defaults a socket takes from the sysctls when it is made,
// and the TCP_KEEP* options, reach synack's connection: the probes come
// when they say.
func TestKeepAliveOptions(t *testing.T) {
	s, err := Parse(`--tolerance_usecs=10000
0 ` + "`sysctl -w net.inet.tcp.keepidle=7200000`" + `
+0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 getsockopt(3, IPPROTO_TCP, TCP_KEEPIDLE, [7200], [4]) = 0
+0 close(3) = 0
+0 ` + "`sysctl -w net.inet.tcp.keepidle=3000`" + `
+0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 getsockopt(3, IPPROTO_TCP, TCP_KEEPIDLE, [3], [4]) = 0
+0 setsockopt(3, IPPROTO_TCP, TCP_KEEPINTVL, [0], 4) = -1 EINVAL
+0 setsockopt(3, SOL_SOCKET, SO_KEEPALIVE, [1], 4) = 0
+0 setsockopt(3, IPPROTO_TCP, TCP_KEEPINTVL, [1], 4) = 0
+0 setsockopt(3, IPPROTO_TCP, TCP_KEEPCNT, [2], 4) = 0
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 32767 <mss 1000>
+0 > S. 0:0(0) ack 1 <...>
+0 < . 1:1(0) ack 1 win 32767
+0 accept(3, ..., ...) = 4
+0 getsockopt(4, IPPROTO_TCP, TCP_KEEPIDLE, [3], [4]) = 0
+0 getsockopt(4, IPPROTO_TCP, TCP_KEEPINTVL, [1], [4]) = 0
+0 getsockopt(4, IPPROTO_TCP, TCP_KEEPCNT, [2], [4]) = 0
+3 > . 0:0(0) ack 1
+1 > . 0:0(0) ack 1
`)
	if err != nil {
		t.Fatal(err)
	}
	if res := Run(s, Options{}); res.Status != Pass {
		t.Fatal(res)
	}
}

// TestLinuxProfile runs our own Linux-style scripts (testdata/linux: the
// defaults.sh line, a~b time ranges, a TSO-sized expected segment) with
// the Linux profile; each must pass. With SYNACK_PACKETDRILL_LINUX set to
// a directory of Linux-written scripts (packetdrill's gtests/net/tcp), it
// also runs those and reports pass / fail / skip per folder, without
// failing on them: they are not ours to commit.
func TestLinuxProfile(t *testing.T) {
	files, results, all := runSuite(t, filepath.Join("testdata", "linux"), Linux)
	if len(files) == 0 {
		t.Fatal("no scripts in testdata/linux")
	}
	for _, f := range files {
		if r := results[f]; r.Status != Pass {
			t.Errorf("%s", r)
		}
	}
	if all.pass != len(files) {
		t.Errorf("%d of %d Linux-style scripts pass", all.pass, len(files))
	}
	if dir := os.Getenv("SYNACK_PACKETDRILL_LINUX"); dir != "" {
		runSuite(t, dir, Linux)
	}
}

// TestBufferOptions: setsockopt SO_SNDBUF and SO_RCVBUF map onto the
// stack's SetWriteBuffer and SetReadBuffer (doubled, as on Linux),
// getsockopt reads them back, and an accepted socket inherits them from
// the listening one.
func TestBufferOptions(t *testing.T) {
	s, err := Parse(`--tolerance_usecs=10000
0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0 setsockopt(3, SOL_SOCKET, SO_SNDBUF, [-1], 4) = -1 EINVAL
+0 setsockopt(3, SOL_SOCKET, SO_SNDBUF, [10000], 4) = 0
+0 getsockopt(3, SOL_SOCKET, SO_SNDBUF, [20000], [4]) = 0
+0 setsockopt(3, SOL_SOCKET, SO_RCVBUF, [30000], 4) = 0
+0 bind(3, ..., ...) = 0
+0 listen(3, 1) = 0
+0 < S 0:0(0) win 32767 <mss 1000>
+0 > S. 0:0(0) ack 1 <...>
+0 < . 1:1(0) ack 1 win 32767
+0 accept(3, ..., ...) = 4
+0 getsockopt(4, SOL_SOCKET, SO_SNDBUF, [20000], [4]) = 0
+0 setsockopt(4, SOL_SOCKET, SO_SNDBUF, [3000], 4) = 0
+0 getsockopt(4, SOL_SOCKET, SO_SNDBUF, [6000], [4]) = 0
`)
	if err != nil {
		t.Fatal(err)
	}
	if res := Run(s, Options{}); res.Status != Pass {
		t.Fatal(res)
	}
}

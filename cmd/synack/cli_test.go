package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"github.com/synack/synack/diag/ladder"
)

// Issue 15: help went to stderr and there was no --version.
func TestHelpTopLevel(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		status   int
		out, err string // what stdout and stderr must contain; "" must be empty
	}{
		{args: []string{"-h"}, status: 0, out: "usage: synack COMMAND"},
		{args: []string{"--help"}, status: 0, out: "usage: synack COMMAND"},
		{args: []string{"help"}, status: 0, out: "usage: synack COMMAND"},
		{args: []string{"--version"}, status: 0, out: "synack "},
		{args: []string{"version"}, status: 0, out: "synack "},
		{args: nil, status: 2, err: "usage: synack COMMAND"},
		{args: []string{"nope"}, status: 2, err: `unknown command "nope"`},
	} {
		var out, errb bytes.Buffer
		st := run(tc.args, &out, &errb)
		if st != tc.status {
			t.Errorf("synack %q: status %d, want %d", tc.args, st, tc.status)
		}
		for _, c := range []struct {
			name, got, want string
		}{{"stdout", out.String(), tc.out}, {"stderr", errb.String(), tc.err}} {
			if c.want == "" && c.got != "" || !strings.Contains(c.got, c.want) {
				t.Errorf("synack %q: %s %q, want it to contain %q (and be empty if that is empty)", tc.args, c.name, c.got, c.want)
			}
		}
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if st := run([]string{"--version"}, &out, &out); st != 0 {
		t.Fatalf("status %d", st)
	}
	line := strings.TrimSpace(out.String())
	if !strings.HasPrefix(line, "synack ") || !strings.HasSuffix(line, runtime.Version()) || strings.Count(out.String(), "\n") != 1 {
		t.Errorf("--version: %q, want one line \"synack VERSION ... %s\"", out.String(), runtime.Version())
	}
}

// Each command's -h and --help go to stdout with status 0; a bad flag goes
// to stderr with the command's usage status.
func TestHelpSubcommands(t *testing.T) {
	for _, tc := range []struct {
		cmd    string
		status int // for a bad flag
	}{{"demo", 2}, {"ss", 2}, {"diagnose", diagStatusError}, {"trace", 2}, {"nc", 2}, {"drill", 2}, {"exporter", 2}, {"watch", 2}} {
		for _, h := range []string{"-h", "--help"} {
			var out, errb bytes.Buffer
			cmd := synackCmd(os.Args[0], tc.cmd, h)
			cmd.Stdout, cmd.Stderr = &out, &errb
			if err := cmd.Run(); err != nil {
				t.Errorf("synack %s %s: %v\nstderr: %s", tc.cmd, h, err, errb.String())
			}
			if !strings.HasPrefix(out.String(), "usage: synack "+tc.cmd) || errb.Len() != 0 {
				t.Errorf("synack %s %s: stdout %q, stderr %q; want the usage on stdout only", tc.cmd, h, first(out.String()), errb.String())
			}
		}
		var out, errb bytes.Buffer
		cmd := synackCmd(os.Args[0], tc.cmd, "--no-such-flag")
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != tc.status {
			t.Errorf("synack %s --no-such-flag: %v, want status %d", tc.cmd, err, tc.status)
		}
		if out.Len() != 0 || !strings.Contains(errb.String(), "no-such-flag") || !strings.Contains(errb.String(), "usage: synack "+tc.cmd) {
			t.Errorf("synack %s --no-such-flag: stdout %q, stderr %q", tc.cmd, first(out.String()), first(errb.String()))
		}
	}
}

func first(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// https://no-color.org: a non-empty NO_COLOR turns colour off; an empty
// one does not.
func TestColorNoColor(t *testing.T) {
	t.Setenv("NO_COLOR", "")
	if !colorWanted(false, true) || colorWanted(true, true) || colorWanted(false, false) {
		t.Error("without NO_COLOR: colour on a terminal unless --no-color")
	}
	t.Setenv("NO_COLOR", "1")
	if colorWanted(false, true) {
		t.Error("NO_COLOR=1 and still colour")
	}
}

// openPTY opens a pseudo-terminal cols columns wide and returns its
// terminal end, as a shell's stdout would be.
func openPTY(t *testing.T, cols int) *os.File {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Skipf("ptsname: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("open the terminal end: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if err := unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: uint16(cols)}); err != nil {
		t.Fatalf("set the terminal's size: %v", err)
	}
	return s
}

// On a terminal the ladder takes its width, colour follows NO_COLOR; a pipe
// gets the default width and no colour.
func TestColorAndWidthOnATerminal(t *testing.T) {
	t.Setenv("TERM", "xterm")
	t.Setenv("NO_COLOR", "")
	tty := openPTY(t, 132)
	if w := termWidth(tty); w != 132 {
		t.Errorf("termWidth of a 132-column terminal: %d", w)
	}
	if !colorOn(tty, false) {
		t.Error("no colour on a terminal")
	}
	t.Setenv("NO_COLOR", "yes")
	if colorOn(tty, false) {
		t.Error("colour with NO_COLOR set")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if termWidth(w) != 0 || colorOn(w, false) {
		t.Error("a pipe is not a terminal")
	}
}

// Issue 15: the demo ladder was 109-150 columns wide. Every scenario now
// fits the default 80 columns, what a pipe gets, and a 132-column terminal
// gets the full-width middle column.
func TestDemoLadderFits80Columns(t *testing.T) {
	for _, sc := range scenarios {
		for _, width := range []int{0, 132} {
			var out bytes.Buffer
			v := newView(&out, false)
			v.l.Width = width
			if err := playScenario(&sc, v, 1, 0, 10*time.Millisecond); err != nil {
				t.Fatalf("%s: %v", sc.name, err)
			}
			limit := width
			if limit == 0 {
				limit = ladder.DefaultWidth
			}
			for _, line := range strings.Split(out.String(), "\n") {
				if n := utf8.RuneCountInString(line); n > limit {
					t.Errorf("%s at width %d: a line of %d columns: %q", sc.name, width, n, line)
				}
			}
		}
	}
}

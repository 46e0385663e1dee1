package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// exporter and watch serve only the host for now: without --host (or
// with a stray argument, or a bad port) they say so on stderr with
// status 2, before touching the kernel.
func TestExporterWatchNeedHost(t *testing.T) {
	for _, args := range [][]string{{"exporter"}, {"watch"}, {"exporter", "--host", "extra"}, {"watch", "--host", "--ports", "80,x"}} {
		var out, errb bytes.Buffer
		cmd := synackCmd(os.Args[0], args...)
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || out.Len() != 0 || !strings.Contains(errb.String(), args[0]) {
			t.Errorf("synack %v: %v, stdout %q, stderr %q; want status 2 and a message on stderr", args, err, out.String(), errb.String())
		}
	}
}

func TestParsePorts(t *testing.T) {
	ps, err := parsePorts("80,443 8080")
	if err != nil || len(ps) != 3 || ps[0] != 80 || ps[1] != 443 || ps[2] != 8080 {
		t.Errorf("parsePorts: %v, %v", ps, err)
	}
	for _, bad := range []string{"0", "65536", "http"} {
		if _, err := parsePorts(bad); err == nil {
			t.Errorf("parsePorts(%q): no error", bad)
		}
	}
}

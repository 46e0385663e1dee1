//go:build linux

package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSharedObject builds this package with -buildmode=c-shared and drives
// it from testdata/harness.c the way packetdrill does: dlopen with
// packetdrill's flags, packetdrill_interface_init fills the table, then
// socket / bind / listen / accept / connect / read / write / poll / close
// through injected and sniffed bare IPv4 packets, errno, a blocking read
// released by another thread, gettimeofday and usleep on the virtual
// clock, SYN retransmission while netdev_receive waits, and a second run
// configured by a sysctl file through the one sysctl table. It needs gcc, not
// packetdrill (run-real.sh runs the real binary; see README.md).
func TestSharedObject(t *testing.T) {
	need := func(what string, err error) {
		if err == nil {
			return
		}
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s: %v (CI=true: the shared-object test must run)", what, err)
		}
		t.Skipf("skipping: %s: %v", what, err)
	}
	gcc, err := exec.LookPath("gcc")
	need("gcc is needed to build the C harness", err)
	// go test puts its own GOROOT/bin first on PATH (Go 1.19 and later).
	goTool, err := exec.LookPath("go")
	need("the go command is needed to build the shared object", err)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	so := filepath.Join(dir, "synack.so")
	build := exec.CommandContext(ctx, goTool, "build", "-buildvcs=false", "-buildmode=c-shared", "-o", so, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := build.CombinedOutput(); err != nil {
		if strings.Contains(string(out), "cgo") && strings.Contains(string(out), "not") {
			need("cgo is needed for -buildmode=c-shared", err)
		}
		t.Fatalf("go build -buildmode=c-shared: %v\n%s", err, out)
	}
	harness := filepath.Join(dir, "harness")
	if out, err := exec.CommandContext(ctx, gcc, "-Wall", "-Werror", "-O1", "-o", harness,
		filepath.Join("testdata", "harness.c"), "-ldl", "-lpthread").CombinedOutput(); err != nil {
		t.Fatalf("gcc harness.c: %v\n%s", err, out)
	}

	run, cancelRun := context.WithTimeout(ctx, 20*time.Second)
	defer cancelRun()
	out, err := exec.CommandContext(run, harness, so).CombinedOutput()
	t.Logf("harness:\n%s", out)
	if err != nil {
		t.Fatalf("harness failed: %v", err)
	}
	if !strings.Contains(string(out), "ok sysctl file") {
		t.Fatalf("harness did not finish")
	}
}

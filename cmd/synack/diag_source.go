package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/synack/synack/diag"
	"github.com/synack/synack/diag/host"
)

// diagSource holds the flags that choose where connection rows come from,
// shared by ss and diagnose.
type diagSource struct {
	host        bool
	admin       string
	noProcesses bool
}

func (d *diagSource) addFlags(fs *flag.FlagSet) {
	fs.BoolVar(&d.host, "host", false, "the host kernel's sockets (the default)")
	fs.StringVar(&d.admin, "admin", "", "a running synack's admin `URL` (not yet available)")
	fs.BoolVar(&d.noProcesses, "no-processes", false, "do not look up owning processes (skips scanning /proc/*/fd)")
}

// errAdminNotYet is what --admin answers until `synack serve --admin` exists.
var errAdminNotYet = errors.New("--admin is not yet available: reading a running synack's connections " +
	"comes with `synack serve --admin`; for now use --host (the host kernel's sockets)")

// snapshot takes one look at the chosen source.
func (d *diagSource) snapshot() (diag.Snapshot, error) {
	if d.admin != "" {
		if d.host {
			return diag.Snapshot{}, errors.New("choose one of --host and --admin")
		}
		return diag.Snapshot{}, errAdminNotYet
	}
	return host.Read(host.Options{NoProcesses: d.noProcesses})
}

// diagIsTerminal reports whether f is a terminal.
func diagIsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// diagFail prints an error in the commands' style and returns status.
func diagFail(name string, status int, err error) int {
	fmt.Fprintf(os.Stderr, "synack %s: %v\n", name, err)
	return status
}

// diagStatusError is diagnose's exit status for errors and bad usage: 0, 1
// and 2 report findings.
const diagStatusError = 3

package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

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
	fs.StringVar(&d.admin, "admin", "", "a running synack's admin `URL` (synack serve --admin ADDR), e.g. http://127.0.0.1:9090")
	fs.BoolVar(&d.noProcesses, "no-processes", false, "do not look up owning processes (skips scanning /proc/*/fd)")
}

// snapshot takes one look at the chosen source.
func (d *diagSource) snapshot() (diag.Snapshot, error) {
	if d.admin != "" {
		if d.host {
			return diag.Snapshot{}, errors.New("choose one of --host and --admin")
		}
		return fetchSnapshot(adminBase(d.admin))
	}
	return host.Read(host.Options{NoProcesses: d.noProcesses})
}

// fetchSnapshot reads a running synack's connections from its admin
// server's /api/connections.
func fetchSnapshot(base string) (diag.Snapshot, error) {
	var snap diag.Snapshot
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(base + "/api/connections")
	if err != nil {
		return snap, fmt.Errorf("--admin: %w (is `synack serve --admin ADDR` running there?)", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return snap, fmt.Errorf("--admin: %s/api/connections: %s: %s", base, resp.Status, strings.TrimSpace(string(b)))
	}
	if err := json.NewDecoder(resp.Body).Decode(&snap); err != nil {
		return snap, fmt.Errorf("--admin: %s/api/connections: %w", base, err)
	}
	return snap, nil
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

//go:build linux

package host

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/synack/synack/diag"
)

// readCounters reads a /proc/net/snmp or /proc/net/netstat file: pairs of
// lines, a header "Tcp: ActiveOpens PassiveOpens ..." then the values
// "Tcp: 12 34 ...". The Tcp and TcpExt groups go into m under their plain
// names (ActiveOpens, ListenOverflows), as DESIGN.md names counters; other
// groups are left out. Negative values (Tcp MaxConn is -1) are skipped.
func readCounters(path string, m map[string]uint64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return parseCounters(bufio.NewScanner(f), m)
}

func parseCounters(sc *bufio.Scanner, m map[string]uint64) error {
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var header []string
	for sc.Scan() {
		group, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if header == nil || header[0] != group {
			header = append([]string{group}, fields...)
			continue
		}
		names := header[1:]
		header = nil
		if group != "Tcp" && group != "TcpExt" {
			continue
		}
		if len(names) != len(fields) {
			return fmt.Errorf("group %s: %d names but %d values", group, len(names), len(fields))
		}
		for i, n := range names {
			v, err := strconv.ParseInt(fields[i], 10, 64)
			if err != nil {
				u, uerr := strconv.ParseUint(fields[i], 10, 64)
				if uerr != nil {
					return fmt.Errorf("group %s: %s: %w", group, n, err)
				}
				m[n] = u
				continue
			}
			if v >= 0 {
				m[n] = uint64(v)
			}
		}
	}
	return sc.Err()
}

// fillProcesses sets PID and Process on rows whose socket inode some
// process holds open, scanning /proc/PID/fd. When a socket is shared
// (inherited across fork) the lowest pid wins. It returns a note when some
// processes could not be inspected.
func fillProcesses(proc string, rows []diag.Row) string {
	want := make(map[uint64]bool)
	for _, r := range rows {
		if r.Inode != 0 {
			want[r.Inode] = true
		}
	}
	if len(want) == 0 {
		return ""
	}
	ents, err := os.ReadDir(proc)
	if err != nil {
		return "process owners unknown: " + err.Error()
	}
	type owner struct {
		pid  int
		name string
	}
	found := make(map[uint64]owner)
	denied := 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		dir := filepath.Join(proc, e.Name(), "fd")
		fds, err := os.ReadDir(dir)
		if err != nil {
			if errors.Is(err, fs.ErrPermission) {
				denied++
			}
			continue // also: the process exited meanwhile
		}
		name := ""
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(dir, fd.Name()))
			if err != nil || !strings.HasPrefix(link, "socket:[") {
				continue
			}
			ino, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]"), 10, 64)
			if err != nil || !want[ino] {
				continue
			}
			if o, ok := found[ino]; ok && o.pid < pid {
				continue
			}
			if name == "" {
				name = comm(proc, pid)
			}
			found[ino] = owner{pid, name}
		}
	}
	for i := range rows {
		if o, ok := found[rows[i].Inode]; ok {
			rows[i].PID, rows[i].Process = o.pid, o.name
		}
	}
	if denied > 0 {
		return fmt.Sprintf("the file descriptors of %d processes could not be read: their sockets show no owner (run as root to see them)", denied)
	}
	return ""
}

// comm is a process's name as /proc/PID/comm gives it.
func comm(proc string, pid int) string {
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "comm"))
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

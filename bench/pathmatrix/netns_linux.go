package pathmatrix

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/synack/synack/link/tun/nstest"
	"github.com/vishvananda/netns"
)

// netNS is a named network namespace with one locked OS thread inside it
// (nstest.NS), which runs the functions given to Do. Sockets and TUN
// devices made there belong to the namespace; their file descriptors work
// from any goroutine. The package keeps the live ones for Cleanup.
type netNS struct {
	*nstest.NS
}

var (
	nsMu   sync.Mutex
	nsLive = map[*netNS]bool{}
)

func newNS() (*netNS, error) {
	n, err := nstest.CreatePrefixed(NSPrefix)
	if err != nil {
		return nil, fmt.Errorf("creating network namespace: %w", err)
	}
	ns := &netNS{n}
	nsMu.Lock()
	nsLive[ns] = true
	nsMu.Unlock()
	return ns, nil
}

// close ends the thread and removes the name; the namespace goes away with
// the last socket and device in it.
func (ns *netNS) close() {
	ns.NS.Close()
	nsMu.Lock()
	delete(nsLive, ns)
	nsMu.Unlock()
}

// sysctl writes a /proc/sys/net value inside the namespace (the net
// sysctls are those of the opening thread's namespace).
func (ns *netNS) sysctl(name, value string) error {
	var err error
	ns.Do(func() {
		err = os.WriteFile(filepath.Join("/proc/sys", strings.ReplaceAll(name, ".", "/")), []byte(value), 0)
	})
	return err
}

// Cleanup removes every namespace this process still has (their TUN
// devices and sockets die with them once closed), for a signal handler: a
// run that ends normally has removed its own already.
func Cleanup() {
	nsMu.Lock()
	var all []*netNS
	for ns := range nsLive {
		all = append(all, ns)
	}
	nsMu.Unlock()
	for _, ns := range all {
		// Not ns.close: its thread may be stuck in a dial; the name is
		// what outlives the process.
		netns.DeleteNamed(ns.Name)
	}
}

// RemoveStale removes namespaces named by this package for processes that
// no longer run (a run killed before it could clean up).
func RemoveStale() { nstest.RemoveStale(NSPrefix) }

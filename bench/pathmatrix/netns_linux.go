package pathmatrix

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/vishvananda/netns"
)

const netnsDir = "/run/netns"

// netNS is a named network namespace with one locked OS thread inside it,
// which runs the functions given to do. Sockets and TUN devices made there
// belong to the namespace; their file descriptors work from any goroutine.
type netNS struct {
	name   string
	jobs   chan func()
	exited chan struct{}
	once   sync.Once
}

var (
	nsSeq  atomic.Uint64
	nsMu   sync.Mutex
	nsLive = map[*netNS]bool{}
)

func newNS() (*netNS, error) {
	ns := &netNS{
		name:   fmt.Sprintf("%s%d-%d", NSPrefix, os.Getpid(), nsSeq.Add(1)),
		jobs:   make(chan func()),
		exited: make(chan struct{}),
	}
	ready := make(chan error, 1)
	go ns.thread(ready)
	if err := <-ready; err != nil {
		return nil, fmt.Errorf("creating network namespace %s: %w", ns.name, err)
	}
	nsMu.Lock()
	nsLive[ns] = true
	nsMu.Unlock()
	return ns, nil
}

func (ns *netNS) thread(ready chan<- error) {
	// Never unlocked: when the goroutine returns, the runtime ends the
	// thread rather than reuse one that sits in a foreign namespace.
	runtime.LockOSThread()
	defer close(ns.exited)
	h, err := netns.NewNamed(ns.name)
	if err != nil {
		ready <- err
		return
	}
	h.Close() // the thread stays in it; the name keeps it alive
	ready <- nil
	for f := range ns.jobs {
		f()
	}
}

// do runs f on the namespace's thread and waits for it.
func (ns *netNS) do(f func()) {
	done := make(chan struct{})
	ns.jobs <- func() { defer close(done); f() }
	<-done
}

// close ends the thread and removes the name; the namespace goes away with
// the last socket and device in it.
func (ns *netNS) close() {
	ns.once.Do(func() {
		close(ns.jobs)
		<-ns.exited
		netns.DeleteNamed(ns.name)
		nsMu.Lock()
		delete(nsLive, ns)
		nsMu.Unlock()
	})
}

// sysctl writes a /proc/sys/net value inside the namespace (the net
// sysctls are those of the opening thread's namespace).
func (ns *netNS) sysctl(name, value string) error {
	var err error
	ns.do(func() {
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
		netns.DeleteNamed(ns.name)
	}
}

// RemoveStale removes namespaces named by this package for processes that
// no longer run (a run killed before it could clean up).
func RemoveStale() {
	ents, err := os.ReadDir(netnsDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), NSPrefix)
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(filepath.Join("/proc", pidStr)); err == nil {
			continue
		}
		netns.DeleteNamed(e.Name())
	}
}

//go:build linux

package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/synack/synack/ipreasm"
	"github.com/synack/synack/link/tun/nstest"
	"github.com/synack/synack/stack"
	"github.com/synack/synack/tcp"
	"github.com/synack/synack/tunstack"
)

// The hostile-packet test: synack on a TUN device in a namespace of its
// own, attacked from the namespace's side by a scapy script
// (testdata/hostile.py) with a bounded, seeded corpus of malformed and
// hostile packets, group by group: broken IPv4, IPv6 and TCP headers,
// every flag combination, lying options, blind injection (RFC 5961),
// fragments (RFC 5722, RFC 3128, RFC 7112), ICMP errors quoting our
// connections (RFC 5927), zero windows, lying ACKs and SACKs, urgent
// pointers, and scapy's fuzz(). After each group:
//
//   - the script's own checks (answers the RFCs ask for, or their absence)
//     hold;
//   - the counters the script names moved at least as much as it says:
//     every packet it sent to be discarded is counted under a name
//     (IPv4/IPv6 header errors, TCP errors, tcp.DropReason...);
//   - a legitimate client, the kernel's TCP through Go's net package in
//     the namespace, still gets its bytes echoed byte for byte, over IPv4
//     and IPv6;
//   - every connection the attacker made ends (to CLOSED, through
//     TIME-WAIT where it goes there) within hostileEnd, by the stack's own
//     timers, short here: nobody closes them for it;
//   - the stack's memory in use returns to what it was before the group,
//     IP reassembly included, and the Go heap stays within hostileHeap.

const (
	// hostileEnd bounds how long the attacker's connections may outlive
	// their group. The timers of hostileOptions end an idle one in about
	// 4.5 s (keep-alive), one with data unacknowledged in about 3 s (user
	// timeout), a half-open one in about 2 s (SYN,ACK retries).
	hostileEnd = 20 * time.Second
	// hostileHeap bounds the Go heap's growth over a group, measured
	// after every connection the group made has ended.
	hostileHeap = 16 << 20
	// hostileMemory bounds the stack's memory in use at a group's end,
	// the attacker's connections still there.
	hostileMemory = 8 << 20
	// hostileReasmBudget is the reassembly budget, small so that a
	// fragment flood reaches it.
	hostileReasmBudget = 1 << 20
)

var (
	hostileAttacker4 = netip.MustParseAddr("198.18.0.66") // in the TUN's subnet, owned by no one
	hostileAttacker6 = netip.MustParseAddr("fd00:5afe::66")
)

// hostileOptions are the stack's options for the attack: short timers, so
// that every connection ends within seconds of the attacker going quiet.
func hostileOptions() stack.Options {
	return stack.Options{
		TCP: tcp.Config{
			MSL:               250 * time.Millisecond, // TIME-WAIT 500 ms
			InitialRTO:        300 * time.Millisecond,
			MaxRTO:            time.Second,
			MaxRetransmits:    5,
			SynAckRetries:     2,
			UserTimeout:       3 * time.Second,
			OrphanRetries:     3,
			FinWait2Timeout:   time.Second,
			KeepAlive:         true,
			KeepAliveIdle:     3 * time.Second,
			KeepAliveInterval: 500 * time.Millisecond,
			KeepAliveCount:    3,
		},
		Reassembly: ipreasm.Config{Budget: hostileReasmBudget, TimeoutV4: 2 * time.Second, TimeoutV6: 2 * time.Second},
	}
}

var (
	hostileOnly  = flag.String("hostile.groups", "", "comma-separated groups of TestHostilePacketsOverTUN to run (default: all)")
	hostileTrace = flag.Bool("hostile.trace", false, "log every segment to and from the attacker in TestHostilePacketsOverTUN")
)

// hostileGroups are the script's groups, in the order they run.
var hostileGroups = []string{
	"ipv4_header", "ipv6_header", "tcp_header", "flags", "options", "blind",
	"states", "syn_sent", "fragments", "icmp", "zero_window", "lying_acks", "islands", "wrap", "urgent", "syn_flood", "fuzz",
}

// hostileResult is what the script reports for one group.
type hostileResult struct {
	Group string `json:"group"`
	Sent  int    `json:"sent"`
	// Expect maps a counter ("IP.InHdrErrors", "Drops.out_of_window";
	// "A|B" for either) to the least it must have grown by.
	Expect map[string]int `json:"expect"`
	// AtMost maps a counter to the most it may have grown by.
	AtMost   map[string]int `json:"at_most"`
	Failures []string       `json:"failures"`
	Notes    []string       `json:"notes"`
}

// scapyPython finds a python3 that imports scapy: Debian's python3-scapy
// goes with /usr/bin/python3, which may not be the first on PATH.
func scapyPython(t *testing.T) string {
	t.Helper()
	cands := []string{"/usr/bin/python3"}
	if p, err := exec.LookPath("python3"); err == nil {
		cands = append(cands, p)
	}
	for _, p := range cands {
		if exec.Command(p, "-c", "import scapy.all").Run() == nil {
			return p
		}
	}
	why := "needs python3 with scapy (Debian: apt-get install python3-scapy)"
	if os.Getenv("CI") == "true" {
		t.Fatalf("hostile test %s; CI=true, so this is a failure, not a skip", why)
	}
	t.Skipf("hostile test %s", why)
	return ""
}

// attacker is the scapy script, running in the namespace, one group per
// request.
type attacker struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
	log bytes.Buffer
}

func startAttacker(t *testing.T, e *env, python string, seed int) *attacker {
	t.Helper()
	a := &attacker{}
	a.cmd = exec.Command(python, "testdata/hostile.py",
		"--iface", e.dev.Name(), "--seed", fmt.Sprint(seed),
		"--stack4", e.net.Addrs[0].Stack.String(), "--attacker4", hostileAttacker4.String(),
		"--stack6", e.net.Addrs[1].Stack.String(), "--attacker6", hostileAttacker6.String())
	a.cmd.Stderr = &a.log
	var err error
	if a.in, err = a.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := a.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	a.out = bufio.NewScanner(out)
	a.out.Buffer(nil, 1<<20)
	// The child is forked from the namespace's thread, so it lives in the
	// namespace: its packet sockets see the TUN device.
	e.ns.Do(func() { err = a.cmd.Start() })
	if err != nil {
		t.Fatalf("starting the scapy script: %v", err)
	}
	t.Cleanup(func() {
		a.in.Close()
		done := make(chan error, 1)
		go func() { done <- a.cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			a.cmd.Process.Kill()
			<-done
		}
		if t.Failed() && a.log.Len() > 0 {
			t.Logf("scapy script's stderr:\n%s", a.log.String())
		}
	})
	return a
}

// run runs one group and returns its report.
func (a *attacker) run(t *testing.T, group string) hostileResult {
	t.Helper()
	if _, err := fmt.Fprintln(a.in, group); err != nil {
		t.Fatalf("asking the script for %s: %v (stderr: %s)", group, err, a.log.String())
	}
	if !a.out.Scan() {
		t.Fatalf("the script ended during %s: %v; stderr:\n%s", group, a.out.Err(), a.log.String())
	}
	var r hostileResult
	if err := json.Unmarshal(a.out.Bytes(), &r); err != nil {
		t.Fatalf("the script's report of %s: %v: %s", group, err, a.out.Bytes())
	}
	return r
}

// counterValue reads a counter of c by name: "IP.InHdrErrors",
// "TCP.InErrs", "Drops.out_of_window" (tcp.DropReason's names).
func counterValue(c *stack.Counters, name string) (uint64, error) {
	group, field, ok := strings.Cut(name, ".")
	if !ok {
		return 0, fmt.Errorf("counter %q: want Group.Name", name)
	}
	if group == "Drops" {
		r, ok := tcp.ParseDropReason(field)
		if !ok {
			return 0, fmt.Errorf("no drop reason %q", field)
		}
		return c.Drops[r], nil
	}
	g := reflect.ValueOf(c).Elem().FieldByName(group)
	if !g.IsValid() || g.Kind() != reflect.Struct {
		return 0, fmt.Errorf("no counter group %q", group)
	}
	f := g.FieldByName(field)
	if !f.IsValid() || f.Kind() != reflect.Uint64 {
		return 0, fmt.Errorf("no counter %q", name)
	}
	return f.Uint(), nil
}

// delta is how much the counters named by spec ("A" or "A|B|...") grew
// from before to after, together.
func delta(before, after *stack.Counters, spec string) (uint64, error) {
	var d uint64
	for _, name := range strings.Split(spec, "|") {
		b, err := counterValue(before, name)
		if err != nil {
			return 0, err
		}
		a, _ := counterValue(after, name)
		d += a - b
	}
	return d, nil
}

// echoServe echoes every connection l accepts until it ends.
func echoServe(l *stack.Listener) {
	for {
		c, err := l.AcceptTCP()
		if err != nil {
			return
		}
		go func() {
			io.Copy(c, c)
			c.Close()
		}()
	}
}

// closerServe writes "bye\n" to every connection l accepts and closes it
// first, so the attacker can find the stack in FIN-WAIT and TIME-WAIT.
func closerServe(l *stack.Listener) {
	for {
		c, err := l.AcceptTCP()
		if err != nil {
			return
		}
		c.Write([]byte("bye\n"))
		c.Close()
	}
}

// legitimate checks that the kernel's TCP, a client that plays by the
// rules, gets n bytes echoed byte for byte from port 80 over both
// families.
func legitimate(t *testing.T, e *env, seed uint64, n int64) {
	t.Helper()
	for i, p := range e.net.Addrs {
		network := map[bool]string{true: "tcp4", false: "tcp6"}[p.Stack.Is4()]
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		c, err := e.ns.DialContext(ctx, network, netip.AddrPortFrom(p.Stack, 80).String())
		if err != nil {
			cancel()
			t.Errorf("legitimate client (%s): dial: %v", network, err)
			continue
		}
		c.SetDeadline(time.Now().Add(15 * time.Second))
		sent, recvd := duplex(c.(*net.TCPConn), seed+uint64(i), n)
		c.Close()
		cancel()
		if sent.err != nil || recvd.err != nil || recvd.n != n || recvd.sum != sent.sum {
			t.Errorf("legitimate client (%s): sent %d bytes (%v), got %d back (%v), same bytes: %v",
				network, sent.n, sent.err, recvd.n, recvd.err, recvd.sum == sent.sum)
		}
	}
}

// fromAttacker reports whether a is one of the addresses the attack comes
// from: any but the kernel's (the legitimate client's).
func fromAttacker(a netip.Addr) bool {
	return a.IsValid() && !a.IsUnspecified() && a != families[0].host.Addr() && a != families[1].host.Addr()
}

// attackerConns lists the connections (TIME-WAIT records and SYN-queue
// entries included) whose remote end is one of the attacker's addresses.
func attackerConns(s *stack.Stack) []string {
	var out []string
	for _, ci := range s.Connections() {
		if ci.State != tcp.Listen && fromAttacker(ci.Tuple.Remote.Addr()) {
			out = append(out, fmt.Sprintf("%v %v", ci.Tuple.Remote, ci.State))
		}
	}
	return out
}

// dropLog records, from the trace, the drop reasons of the segments the
// attacker sent that the TCP core discarded.
type dropLog struct {
	mu    sync.Mutex
	got   map[string]int
	lines []string // with -hostile.trace
}

func (d *dropLog) trace(ev stack.TraceEvent) {
	if *hostileTrace && ev.Segment != nil {
		if fromAttacker(ev.Tuple.Remote.Addr()) {
			d.mu.Lock()
			d.lines = append(d.lines, fmt.Sprintf("%v %v %v->%v drop=%v", ev.Kind, ev.Tuple.Remote.Port(), ev.From, ev.To, ev.Drop)+" "+segString(ev.Segment))
			d.mu.Unlock()
		}
	}
	if ev.Kind != stack.TraceReceived || ev.Drop == tcp.DropNone {
		return
	}
	if !fromAttacker(ev.Tuple.Remote.Addr()) {
		return
	}
	d.mu.Lock()
	d.got[ev.Drop.String()]++
	d.mu.Unlock()
}

func (d *dropLog) take() map[string]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	g := d.got
	d.got = map[string]int{}
	if len(d.lines) > 0 {
		fmt.Fprintln(os.Stderr, strings.Join(d.lines, "\n"))
		d.lines = nil
	}
	return g
}

func TestHostilePacketsOverTUN(t *testing.T) {
	nstest.Require(t)
	python := scapyPython(t)
	drops := &dropLog{got: map[string]int{}}
	opts := hostileOptions()
	opts.Trace = drops.trace
	e := newEnv(t, families[0],
		withNSPrefix("hons"), func(c *envConfig) { c.opts = opts },
		withTun(func(c *tunstack.Config) {
			c.Name = "hotun0"
			c.Addrs = []tunstack.Pair{{Host: families[0].host, Stack: families[0].stack}, {Host: families[1].host, Stack: families[1].stack}}
		}))
	for _, p := range e.net.Addrs {
		l, err := e.s.ListenTCP(netip.AddrPortFrom(p.Stack, 80), 1024)
		if err != nil {
			t.Fatal(err)
		}
		go echoServe(l)
		lc, err := e.s.ListenTCP(netip.AddrPortFrom(p.Stack, 82), 1024)
		if err != nil {
			t.Fatal(err)
		}
		go closerServe(lc)
		t.Cleanup(func() { l.Close(); lc.Close() })
	}
	a := startAttacker(t, e, python, 1)

	// The stack's memory is its connections' buffers and the reassembly
	// queue: none yet, and none again once every connection has ended.
	baseMem := e.s.Memory().InUse
	legitimate(t, e, 100, 256<<10)
	for gi, group := range hostileGroups {
		if *hostileOnly != "" && !slices.Contains(strings.Split(*hostileOnly, ","), group) {
			continue
		}
		ok := t.Run(group, func(t *testing.T) {
			heap0 := heapNow()
			before := e.s.Counters()
			var dialed chan error
			if group == "syn_sent" {
				// The script answers this dial's SYN.
				dialed = make(chan error, 1)
				go func() {
					ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
					defer cancel()
					c, err := e.s.DialTCP(ctx, netip.AddrPortFrom(hostileAttacker4, 9))
					if err == nil {
						c.Close()
					}
					dialed <- err
				}()
			}
			start := time.Now()
			r := a.run(t, group)
			if dialed != nil {
				// RFC 1122 4.2.3.9: a port unreachable quoting our SYN
				// is a hard error for a connection still opening.
				if err := <-dialed; !errors.Is(err, syscall.ECONNREFUSED) {
					t.Errorf("dial answered with forged segments, then a port unreachable: %v, want ECONNREFUSED", err)
				}
			}
			took := time.Since(start)
			after := e.s.Counters()
			mem := e.s.Memory()
			left0 := len(attackerConns(e.s))
			heapAttacked := int64(heapNow()) - int64(heap0)
			if mem.InUse > hostileMemory {
				t.Errorf("memory in use %d bytes at the group's end, want at most %d", mem.InUse, hostileMemory)
			}
			for _, f := range r.Failures {
				t.Errorf("%s", f)
			}
			for _, spec := range slices.Sorted(maps.Keys(r.Expect)) {
				d, err := delta(&before, &after, spec)
				if err != nil {
					t.Errorf("%v", err)
				} else if d < uint64(r.Expect[spec]) {
					t.Errorf("%s grew by %d, want at least %d: packets discarded without their name", spec, d, r.Expect[spec])
				}
			}
			for _, spec := range slices.Sorted(maps.Keys(r.AtMost)) {
				d, err := delta(&before, &after, spec)
				if err != nil {
					t.Errorf("%v", err)
				} else if d > uint64(r.AtMost[spec]) {
					t.Errorf("%s grew by %d, want at most %d", spec, d, r.AtMost[spec])
				}
			}
			if mem.Reassembly > hostileReasmBudget {
				t.Errorf("reassembly holds %d bytes, over its budget of %d", mem.Reassembly, hostileReasmBudget)
			}
			t.Logf("%d packets in %v; notes: %s; core drops (trace): %v; IP: %+v",
				r.Sent, took.Round(time.Millisecond), strings.Join(r.Notes, "; "), drops.take(), diffIP(&before.IP, &after.IP))

			legitimate(t, e, uint64(1000*(gi+1)), 64<<10)

			// Every connection the attacker made ends by itself.
			ended := time.Now()
			deadline := ended.Add(hostileEnd)
			for {
				left := attackerConns(e.s)
				if len(left) == 0 {
					t.Logf("at the group's end: %d connections of the attacker's, memory in use %d bytes (reassembly %d; %d before the attack), Go heap %+d bytes; all ended %v later",
						left0, mem.InUse, mem.Reassembly, baseMem, heapAttacked, time.Since(ended).Round(10*time.Millisecond))
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("%d of the attacker's connections still there %v after the group: %v", len(left), hostileEnd, left[:min(len(left), 20)])
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			// And their memory, and the reassembly queue's, comes back.
			for {
				m := e.s.Memory()
				if m.InUse <= baseMem && m.Reassembly == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("memory in use %d bytes (reassembly %d), was %d before the attack", m.InUse, m.Reassembly, baseMem)
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			grew := int64(heapNow()) - int64(heap0)
			if grew > hostileHeap {
				t.Errorf("Go heap grew by %d bytes over the group, want at most %d", grew, hostileHeap)
			}
			t.Logf("Go heap %+d bytes over the group", grew)
		})
		if !ok && strings.Contains(a.log.String(), "Traceback") {
			t.Fatalf("the scapy script failed:\n%s", a.log.String())
		}
	}
}

// diffIP is the IP counters that moved from a to b, for the log.
func diffIP(a, b *stack.IPCounters) string {
	var out []string
	va, vb := reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem()
	for i := range va.NumField() {
		if d := vb.Field(i).Uint() - va.Field(i).Uint(); d != 0 {
			out = append(out, fmt.Sprintf("%s+%d", va.Type().Field(i).Name, d))
		}
	}
	return strings.Join(out, " ")
}

func segString(s *tcp.Segment) string {
	return fmt.Sprintf("[%v] seq %d ack %d win %d len %d", s.Flags, s.Seq, s.Ack, s.Window, len(s.Payload))
}

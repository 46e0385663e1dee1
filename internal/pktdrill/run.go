package pktdrill

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/synack/synack/clock"
	"github.com/synack/synack/internal/pktdrill/sock"
	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/stack"
	"github.com/synack/synack/tcp"
	"github.com/synack/synack/wire"
)

// Status is the outcome of a script.
type Status int

const (
	Pass Status = iota
	Fail
	Skip
)

func (s Status) String() string { return [...]string{"PASS", "FAIL", "SKIP"}[s] }

// Result is what running one script gave.
type Result struct {
	Path   string
	Status Status
	Line   int    // the failing line, 0 for a skip or a pass
	Msg    string // why it failed or was skipped
}

func (r Result) String() string {
	switch r.Status {
	case Pass:
		return "PASS " + r.Path
	case Skip:
		return "SKIP " + r.Path + ": " + r.Msg
	}
	return fmt.Sprintf("FAIL %s:%d: %s", r.Path, r.Line, r.Msg)
}

// Options control a run.
type Options struct {
	Profile Profile   // zero value: the script's own (ProfileFor)
	Log     io.Writer // if set, every packet and call is logged here
}

// RunFile parses and runs the script at path.
func RunFile(path string, o Options) Result {
	s, err := ParseFile(path)
	if err != nil {
		if strings.Contains(err.Error(), "not supported") {
			return Result{Path: path, Status: Skip, Msg: err.Error()}
		}
		return Result{Path: path, Status: Fail, Msg: "parse: " + err.Error()}
	}
	return Run(s, o)
}

// Addresses of the test: the stack is "local", the script's peer "remote".
var (
	local4  = netip.MustParseAddr("192.168.0.1")
	remote4 = netip.MustParseAddr("192.0.2.1")
	local6  = netip.MustParseAddr("fd3d:fa7b:d17d::1")
	remote6 = netip.MustParseAddr("fd3d:fa7b:d17d:8888::1")
)

const (
	boundPort  = 8080  // what bind(fd, ..., ...) binds (packetdrill's default)
	remotePort = 49152 // the script peer's port
	remoteISN  = 0x10000000
	maxAnyWait = 30 * time.Minute // how far `*` and blocking calls may wait
)

var epoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// failure is a script failure at a line.
type failure struct {
	line int
	msg  string
}

func (f *failure) Error() string { return f.msg }

type skipError string

func (s skipError) Error() string { return string(s) }

// Run runs a parsed script on a fresh stack.
func Run(s *Script, o Options) (res Result) {
	res = Result{Path: s.Path}
	if o.Profile.Name == "" {
		o.Profile = ProfileFor(s)
	}
	r := &runner{s: s, o: o, prof: o.Profile, set: o.Profile.Sysctls}
	if reason := r.prescan(); reason != "" {
		res.Status, res.Msg = Skip, reason
		return res
	}
	defer r.shutdown()
	err := r.run()
	switch e := err.(type) {
	case nil:
		res.Status = Pass
	case skipError:
		res.Status, res.Msg = Skip, string(e)
	case *failure:
		res.Status, res.Line, res.Msg = Fail, e.line, e.msg
	default:
		res.Status, res.Msg = Fail, err.Error()
	}
	return res
}

type runner struct {
	s    *Script
	o    Options
	prof Profile
	set  sock.Settings // the sysctls before the first other line: the stack's configuration

	tol       time.Duration
	ipv6      bool
	mtu       int
	local     netip.Addr
	remote    netip.Addr
	v         *clock.Virtual
	st        *stack.Stack
	ep        *endpoint
	started   bool
	last      time.Duration // time of the previous event, as it happened
	cur       *Event
	lastFD    int
	tab       *sock.Table
	pending   *sock.Call // a blocking call started and not yet returned
	pendingEv *Event
	pendingT  time.Duration
	localISN  uint32
	haveTS    bool // the TS mapping below is set
	scriptTS0 uint32
	actualTS0 uint32
	livePort  uint16 // our port on the connection the script talks to
	rcvbuf    int
}

// prescan applies the sysctls written before the first other line,
// checks every line for features synack does not have, and returns a skip
// reason or "".
func (r *runner) prescan() string {
	r.tol = 4 * time.Millisecond // packetdrill's default tolerance
	if v, ok := r.s.Opts["tolerance_usecs"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return "bad --tolerance_usecs"
		}
		r.tol = time.Duration(n) * time.Microsecond
	}
	switch r.s.Opts["ip_version"] {
	case "", "ipv4":
	case "ipv6":
		r.ipv6 = true
	default:
		return "--ip_version=" + r.s.Opts["ip_version"] + " (IPv4-mapped IPv6 sockets) is not supported"
	}
	r.mtu = 1500
	if v, ok := r.s.Opts["mtu"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return "bad --mtu"
		}
		r.mtu = n
	}
	// The feature a header option stands for comes first in the reason,
	// whatever the map's order.
	for _, k := range []string{"tcp_md5_secret", "udp_encapsulation"} {
		if _, ok := r.s.Opts[k]; ok {
			return headerSkips[k]
		}
	}
	keys := make([]string, 0, len(r.s.Opts))
	for k := range r.s.Opts {
		keys = append(keys, k)
	}
	sort.Strings(keys) // the same reason on every run
	for _, k := range keys {
		switch k {
		case "ip_version", "tolerance_usecs", "mtu", "tcp_ts_tick_usecs":
		default:
			if why, ok := headerSkips[k]; ok {
				return why
			}
			return "header option --" + k + " is not supported"
		}
	}
	early := true
	late := r.set    // the settings as sysctls after the start leave them
	changed := false // a sysctl after the start changed a setting
	for _, ev := range r.s.Events {
		switch ev.Kind {
		case ShellEvent:
			st := late
			if reason := applyShell(&st, ev.Command); reason != "" {
				return reason
			}
			if early {
				r.set = st
			} else if st.PerStack() != late.PerStack() {
				changed = true
			}
			late = st
			continue
		case PacketEvent:
			p := ev.Packet
			if _, ok := ecnCodepoints[p.ECN]; !ok {
				return "ECN attribute [" + p.ECN + "] is not known"
			}
			if p.UDPEncap {
				return "TCP over UDP encapsulation is not implemented"
			}
			for _, o := range p.Opts {
				if o.Kind == "md5" {
					return "TCP-MD5 signatures (RFC 2385) are not implemented"
				}
				if o.Kind == "FO" || o.Kind == "FOEXP" {
					return "TCP Fast Open (RFC 7413) is not implemented"
				}
			}
			if p.HasUrg || p.Flags&wire.URG != 0 {
				return "urgent data is not checked"
			}
		case SyscallEvent:
			if reason := unsupportedCall(ev.Syscall); reason != "" {
				return reason
			}
			if changed && ev.Syscall.Name == "socket" {
				return "a sysctl changes the TCP configuration between sockets; synack's configuration is per stack, fixed when the script starts (only the keep-alive defaults are per socket)"
			}
		case CodeEvent:
			if reason := unsupportedCode(ev.Command); reason != "" {
				return reason
			}
		}
		early = false
	}
	return ""
}

var headerSkips = map[string]string{
	"udp_encapsulation": "--udp_encapsulation: TCP over UDP encapsulation is not implemented",
	"tcp_md5_secret":    "--tcp_md5_secret: TCP-MD5 signatures (RFC 2385) are not implemented",
	"non_fatal":         "--non_fatal: the runner stops at the first failure; it has no non-fatal mode",
}

// optionSkips says why a socket option the suite uses is not run.
var optionSkips = map[string]string{
	"IP_TTL":                "IP_TTL: synack's TTL is per stack (stack.Options.TTL), not per socket",
	"IPV6_UNICAST_HOPS":     "IPV6_UNICAST_HOPS: synack's hop limit is per stack (stack.Options.TTL), not per socket",
	"IP_TOS":                "IP_TOS: synack sets no TOS / DSCP on what it sends",
	"IPV6_TCLASS":           "IPV6_TCLASS: synack sets no traffic class on what it sends",
	"TCP_NOOPT":             "TCP_NOOPT: synack has no per-socket switch to send a SYN without options",
	"TCP_KEEPINIT":          "TCP_KEEPINIT: synack bounds connection setup by SYN retries (Config.SynRetries), not by a timer",
	"TCP_MD5SIG":            "TCP_MD5SIG: TCP-MD5 signatures (RFC 2385) are not implemented",
	"TCP_RACK_PACE_MAX_SEG": "TCP_RACK_*: options of FreeBSD's RACK stack",
	"TCP_RACK_PACE_RATE_SS": "TCP_RACK_*: options of FreeBSD's RACK stack",
	"TCP_RACK_PACE_ALWAYS":  "TCP_RACK_*: options of FreeBSD's RACK stack",
}

// unsupportedCall says why a system call cannot be run, or "".
func unsupportedCall(c *Syscall) string {
	switch c.Name {
	case "socket", "bind", "listen", "accept", "connect", "close", "shutdown",
		"read", "write", "send", "recv", "fcntl":
	case "getsockopt", "setsockopt":
		if len(c.Args) < 3 {
			return c.Name + " with too few arguments"
		}
		opt := c.Args[2]
		get := c.Name == "getsockopt"
		switch opt {
		case "TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT", "TCP_CONGESTION":
			return ""
		case "SO_ERROR":
			if get {
				return ""
			}
		case "SO_RCVBUF", "SO_SNDBUF":
			return ""
		case "SO_REUSEADDR", "SO_LINGER", "TCP_NODELAY", "SO_KEEPALIVE":
			if !get {
				return ""
			}
		}
		if why, ok := optionSkips[opt]; ok {
			return c.Name + ": " + why
		}
		return c.Name + "(" + opt + ") is not supported by synack's socket layer"
	default:
		return "system call " + c.Name + " is not supported"
	}
	if c.Name == "recv" && len(c.Args) >= 4 {
		if _, ok := recvFlags(c.Args[3]); !ok {
			return "recv flags " + c.Args[3] + " are not supported: only MSG_PEEK (no out-of-band data, MSG_WAITALL or MSG_TRUNC)"
		}
	}
	if c.Name == "send" && len(c.Args) >= 4 && c.Args[3] != "0" {
		return "send flags " + c.Args[3] + " are not supported: synack's stream has no record boundaries (MSG_EOR) and no out-of-band data"
	}
	return ""
}

func unsupportedCode(code string) string {
	for _, l := range strings.Split(code, "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		if _, _, ok := parseAssert(l); !ok {
			return "Python code other than `assert tcpi_state/tcpi_options == ...` cannot be run: " + l
		}
	}
	return ""
}

// parseAssert reads "assert tcpi_X == VALUE".
func parseAssert(l string) (field, value string, ok bool) {
	if !strings.HasPrefix(l, "assert ") {
		return "", "", false
	}
	a, b, found := strings.Cut(strings.TrimPrefix(l, "assert "), "==")
	if !found {
		return "", "", false
	}
	field, value = strings.TrimSpace(a), strings.TrimSpace(b)
	switch field {
	case "tcpi_state", "tcpi_options":
		return field, value, true
	}
	return "", "", false
}

// start builds the stack: a virtual clock, one link to the script's peer,
// and the configuration the sysctls and the profile give.
func (r *runner) start() {
	r.started = true
	r.v = clock.NewVirtual(epoch)
	r.ep = r.newEndpoint()
	mss := r.mtu - 40
	r.local, r.remote = local4, remote4
	if r.ipv6 {
		mss = r.mtu - 60
		r.local, r.remote = local6, remote6
	}
	r.rcvbuf = r.set.RecvSpace()
	if r.prof.RoundReceiveBuffer && mss > 0 && r.rcvbuf%mss != 0 {
		r.rcvbuf = (r.rcvbuf/mss + 1) * mss
	}
	cfg := r.set.Config()
	cfg.ReceiveBufferSize = r.rcvbuf
	cfg.Nagle = true // a socket's default: TCP_NODELAY off
	r.st = stack.New(stack.Options{
		Clock: r.v,
		TCP:   cfg,
		Rand:  rand.NewChaCha8([32]byte{'p', 'k', 't', 'd', 'r', 'i', 'l', 'l'}),
	})
	bits := 24
	def := netip.MustParsePrefix("0.0.0.0/0")
	if r.ipv6 {
		bits, def = 64, netip.MustParsePrefix("::/0")
	}
	id, err := r.st.AddLink(r.ep, netip.PrefixFrom(r.local, bits))
	if err != nil {
		panic(err)
	}
	if err := r.st.AddRoute(def, netip.Addr{}, id); err != nil {
		panic(err)
	}
	r.tab = &sock.Table{Clock: r.v, Stack: r.st, Local4: local4, Local6: local6,
		Base: r.set, Live: r.set, RcvBuf: r.rcvbuf}
}

func (r *runner) shutdown() {
	if !r.started {
		return
	}
	for _, s := range r.tab.Forget() {
		s.Cancel()
	}
	r.st.Close()
	r.v.WaitIdle()
}

func (r *runner) now() time.Duration { return r.v.Now().Sub(epoch) }

// advance moves the virtual clock to script time t, running every timer
// on the way; it never goes back.
func (r *runner) advance(t time.Duration) {
	r.v.AdvanceTo(epoch.Add(t))
	r.v.WaitIdle()
}

func (r *runner) fail(format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	msg = fmt.Sprintf("%s\n  line %d: %s\n  connections: %s", msg, r.cur.Line, r.cur.Text, r.connections())
	return &failure{line: r.cur.Line, msg: msg}
}

func (r *runner) logf(format string, args ...any) {
	if r.o.Log != nil {
		fmt.Fprintf(r.o.Log, "%9.6f ", r.now().Seconds())
		fmt.Fprintf(r.o.Log, format, args...)
		fmt.Fprintln(r.o.Log)
	}
}

// connections describes every connection of the stack and its state.
func (r *runner) connections() string {
	if !r.started {
		return "(no stack yet)"
	}
	cs := r.st.Connections()
	if len(cs) == 0 {
		return "none"
	}
	var out []string
	for _, c := range cs {
		s := fmt.Sprintf("%v %v", c.Tuple, c.State)
		if c.Released {
			s += " (closed by the owner)"
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}

func (r *runner) run() error {
	for _, ev := range r.s.Events {
		r.cur = ev
		if ev.Kind == ShellEvent && !r.started {
			continue // applied by prescan
		}
		if !r.started {
			r.start()
		}
		var t time.Duration
		switch ev.TimeKind {
		case Absolute:
			t = ev.Time
		case Relative:
			t = r.last + ev.Time
		case AnyTime:
			t = r.last
		}
		var err error
		if ev.Kind == PacketEvent && ev.Packet.Dir == '>' {
			err = r.expect(ev, t)
		} else {
			r.advance(t)
			if err = r.unexpected(t); err == nil {
				err = r.do(ev, t)
			}
			r.last = t
		}
		if err != nil {
			return err
		}
		if err := r.checkPending(false); err != nil {
			return err
		}
	}
	if r.pending != nil {
		return r.checkPending(true)
	}
	return nil
}

// unexpected fails when the stack sent a packet the script did not expect
// before time t (less the tolerance).
func (r *runner) unexpected(t time.Duration) error {
	if p := r.ep.peek(); p != nil && p.at.Sub(epoch) < t-r.tol {
		return r.fail("unexpected packet sent at %.6f: %s", p.at.Sub(epoch).Seconds(), r.describe(p))
	}
	return nil
}

func (r *runner) do(ev *Event, t time.Duration) error {
	switch ev.Kind {
	case ShellEvent:
		return r.shell(ev.Command)
	case CodeEvent:
		return r.code(ev.Command)
	case PacketEvent:
		return r.inject(ev.Packet)
	case SyscallEvent:
		if r.pending != nil {
			if err := r.checkPending(false); err != nil {
				return err
			}
			if r.pending != nil {
				return r.fail("system call started while %q is still blocked", r.pendingEv.Text)
			}
		}
		return r.syscall(ev, t)
	}
	return nil
}

// shell evaluates what a backtick line can mean to us: sockstat state
// counts. sysctls after the first line are read by prescan for skips only;
// they come at the end of scripts, to restore defaults.
func (r *runner) shell(cmd string) error {
	if !strings.HasPrefix(strings.TrimSpace(cmd), "sockstat") {
		// A sysctl later in the script: only what a new socket
		// inherits (the keep-alive defaults) can still take effect;
		// prescan made any other change before a socket() a skip.
		st := r.tab.Live
		applyShell(&st, cmd)
		r.tab.Live = st
		return nil
	}
	return r.sockstat(cmd)
}

// sockstat evaluates "sockstat -4 -P tcp [-p PORT] -s | [grep packetdril |]
// grep -c STATE | grep N" against the stack's connections.
func (r *runner) sockstat(cmd string) error {
	parts := strings.Split(cmd, "|")
	f := strings.Fields(parts[0])
	port := -1
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "-p" {
			port, _ = strconv.Atoi(f[i+1])
		}
	}
	owned := false
	var state string
	want := -1
	for _, p := range parts[1:] {
		g := strings.Fields(p)
		switch {
		case len(g) == 2 && g[0] == "grep" && g[1] == "packetdril":
			owned = true
		case len(g) == 3 && g[0] == "grep" && g[1] == "-c":
			state = g[2]
		case len(g) == 2 && g[0] == "grep" && state != "":
			want, _ = strconv.Atoi(g[1])
		default:
			return skipError("cannot evaluate shell pipeline: " + cmd)
		}
	}
	if state == "" || want < 0 {
		return skipError("cannot evaluate shell pipeline: " + cmd)
	}
	n := 0
	if owned && state == "CLOSED" {
		// A socket whose connection has ended stays the process's
		// until it is closed; the stack no longer lists it.
		for _, s := range r.tab.Sockets() {
			if s.Conn() != nil && s.Conn().State() == tcp.Closed {
				n++
			}
		}
	}
	for _, c := range r.st.Connections() {
		if port >= 0 && int(c.Tuple.Local.Port()) != port && int(c.Tuple.Remote.Port()) != port {
			continue
		}
		if owned && c.Released {
			continue
		}
		if bsdStateName(c.State) == state {
			n++
		}
	}
	if n != want {
		return r.fail("sockstat: %d connection(s) in %s, want %d", n, state, want)
	}
	return nil
}

// bsdStateName is the name FreeBSD's sockstat and netstat print.
func bsdStateName(s tcp.State) string {
	if s == tcp.SynReceived {
		return "SYN_RCVD"
	}
	return strings.ReplaceAll(s.String(), "-", "_")
}

// code runs the %{ }% asserts.
func (r *runner) code(code string) error {
	for _, l := range strings.Split(code, "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		field, value, _ := parseAssert(l)
		switch field {
		case "tcpi_state":
			got := "TCPI_" + strings.ReplaceAll(r.liveState().String(), "-", "_")
			if got != value {
				return r.fail("tcpi_state is %s, want %s", got, value)
			}
		case "tcpi_options":
			want, err := tcpiOptions(value)
			if err != nil {
				return skipError(err.Error())
			}
			info, ok := r.fdInfo(r.lastFD)
			if !ok {
				return r.fail("no connection on fd %d for tcpi_options", r.lastFD)
			}
			got := 0
			if info.Timestamps {
				got |= 1
			}
			if info.SACK {
				got |= 2
			}
			if info.SndWScale != 0 || info.RcvWScale != 0 {
				got |= 4
			}
			if info.ECN {
				got |= tcpiOptECN
			}
			if got != want {
				return r.fail("tcpi_options is %#x, want %#x", got, want)
			}
		}
	}
	return nil
}

// tcpiOptECN is tcp_info's TCPI_OPT_ECN: ECN negotiated (RFC 3168), on
// Linux and FreeBSD alike.
const tcpiOptECN = 8

func tcpiOptions(v string) (int, error) {
	v = strings.Trim(v, "() ")
	n := 0
	for _, f := range strings.Split(v, "|") {
		switch strings.TrimSpace(f) {
		case "0":
		case "TCPI_OPT_TIMESTAMPS":
			n |= 1
		case "TCPI_OPT_SACK":
			n |= 2
		case "TCPI_OPT_WSCALE":
			n |= 4
		case "TCPI_OPT_ECN":
			n |= tcpiOptECN
		default:
			return 0, fmt.Errorf("unknown tcpi_options value %q", f)
		}
	}
	return n, nil
}

// liveState is the state of the connection the script's packets talk to
// (the socket under test), or else of the last file descriptor used.
func (r *runner) liveState() tcp.State {
	live := tcp.Tuple{
		Local:  netip.AddrPortFrom(r.local, r.dstPort()),
		Remote: netip.AddrPortFrom(r.remote, remotePort),
	}
	for _, c := range r.st.Connections() {
		if c.Tuple == live {
			return c.State
		}
	}
	return r.fdState(r.lastFD)
}

// fdState is the state of the connection behind fd, as TCP_INFO would
// report it.
func (r *runner) fdState(fd int) tcp.State {
	s := r.tab.Get(fd)
	switch {
	case s == nil:
		return tcp.Closed
	case s.Listener() != nil:
		return tcp.Listen
	case s.Conn() != nil:
		return s.Conn().State()
	case s.HaveTuple:
		for _, c := range r.st.Connections() {
			if c.Tuple == s.Tuple {
				return c.State
			}
		}
	}
	return tcp.Closed
}

func (r *runner) fdInfo(fd int) (tcp.Info, bool) {
	s := r.tab.Get(fd)
	if s == nil {
		return tcp.Info{}, false
	}
	if s.Conn() != nil {
		return s.Conn().Info(), true
	}
	if s.HaveTuple {
		for _, c := range r.st.Connections() {
			if c.Tuple == s.Tuple {
				return c.Info, true
			}
		}
	}
	return tcp.Info{}, false
}

// endpoint is the stack's link (sock.Link), with each packet the stack
// sends parsed as it is sent.
type endpoint struct {
	*sock.Link
}

type captured struct {
	at   time.Time
	raw  []byte
	ip   wire.IPPacket
	tcp  wire.TCPHeader
	opts []Opt
	data []byte
	bad  string // why it could not be parsed
}

func (r *runner) newEndpoint() *endpoint {
	l := sock.NewLink(r.mtu, r.v.Now)
	l.Meta = func(b []byte, at time.Time) any {
		c := &captured{at: at, raw: b}
		c.parse()
		if c.bad == "" && c.ip.Protocol == wire.ProtocolTCP && c.tcp.Flags&wire.SYN != 0 {
			// Sequence numbers in the script are relative to our ISN,
			// which our SYN or SYN,ACK tells.
			r.localISN = uint32(c.tcp.Seq)
			if c.tcp.Flags&wire.ACK == 0 {
				r.livePort = c.tcp.SrcPort
			}
		}
		return c
	}
	return &endpoint{l}
}

func (c *captured) parse() {
	ip, err := wire.ParseIP(c.raw)
	if err != nil {
		c.bad = err.Error()
		return
	}
	c.ip = ip
	if ip.Protocol != wire.ProtocolTCP {
		c.bad = fmt.Sprintf("IP protocol %d", ip.Protocol)
		return
	}
	h, payload, err := wire.ParseTCP(ip.Payload, ip.Src, ip.Dst, true)
	if err != nil {
		c.bad = err.Error()
		return
	}
	c.tcp = h
	c.data = payload
	hl := int(ip.Payload[12]>>4) * 4
	c.opts = decodeOptions(ip.Payload[20:hl])
}

// peek is the first packet sent and not yet checked, or nil.
func (e *endpoint) peek() *captured { return e.peekAt(0) }

// peekAt is the packet n places from the head of the queue, or nil.
func (e *endpoint) peekAt(n int) *captured {
	p, ok := e.Peek(n)
	if !ok {
		return nil
	}
	return p.Meta.(*captured)
}

func (e *endpoint) pop() *captured {
	p, ok := e.Pop()
	if !ok {
		return nil
	}
	return p.Meta.(*captured)
}

// describe prints a captured packet in script terms (relative numbers).
func (r *runner) describe(c *captured) string {
	if c.bad != "" {
		return "unparsable packet: " + c.bad
	}
	h := &c.tcp
	fl := h.Flags.String()
	if h.Flags == 0 {
		fl = "-"
	}
	seq := uint32(h.Seq) - r.localISN
	s := fmt.Sprintf("%s %d:%d(%d)", fl, seq, seq+uint32(len(c.data)), len(c.data))
	if e := c.ip.ECN(); e != wire.NotECT {
		s = "[" + e.String() + "] " + s
	}
	if h.Flags&wire.ACK != 0 {
		s += fmt.Sprintf(" ack %d", uint32(h.Ack)-remoteISN)
	}
	s += fmt.Sprintf(" win %d", h.Window)
	if len(c.opts) > 0 {
		s += " " + optsString(c.opts)
	}
	return s
}

// expect waits for the stack's next packet and compares it with the
// expected one due at t.
func (r *runner) expect(ev *Event, t time.Duration) error {
	p := ev.Packet
	// The packet is due at t, or anywhere from t to upto for a range
	// a~b; the tolerance applies at both ends.
	upto := t
	if ev.HasUpto {
		upto = ev.Upto
		if ev.UptoRel {
			upto = r.last + ev.Upto
		}
	}
	deadline := upto + r.tol
	if ev.TimeKind == AnyTime {
		deadline = r.last + maxAnyWait
	}
	for r.ep.peek() == nil {
		now := r.now()
		if now >= deadline {
			return r.fail("expected %s at %s, nothing sent by %.6f", p, r.when(t, upto), now.Seconds())
		}
		target := deadline
		if nt, ok := r.v.NextTimer(); ok && nt.Sub(epoch) < target {
			target = nt.Sub(epoch)
			if target <= now {
				target = now + time.Microsecond
			}
		}
		r.advance(target)
	}
	c := r.ep.pop()
	at := c.at.Sub(epoch)
	r.logf("> %s", r.describe(c))
	if ev.TimeKind != AnyTime && (at < t-r.tol || at > upto+r.tol) {
		return r.fail("packet sent at %.6f, expected at %s (tolerance %v):\n  want: %s\n  got:  %s",
			at.Seconds(), r.when(t, upto), r.tol, p, r.describe(c))
	}
	if r.prof.JoinSegments {
		c = r.join(p, c)
	}
	if diffs := r.match(p, c); len(diffs) > 0 {
		return r.fail("packet differs (%s):\n  want: %s\n  got:  %s", strings.Join(diffs, ", "), p, r.describe(c))
	}
	r.last = at
	return nil
}

// when prints the time an expected packet is due: a moment, or a range.
func (r *runner) when(t, upto time.Duration) string {
	if upto != t {
		return fmt.Sprintf("%.6f~%.6f", t.Seconds(), upto.Seconds())
	}
	return fmt.Sprintf("%.6f", t.Seconds())
}

// join stands several of our data segments sent back to back for the one
// TSO-sized segment a Linux script expects (Profile.JoinSegments). The
// segments already sent at the time of the first are taken while each
// starts where the one before ended and has the same flags, ACK and
// options apart from PSH, which may be on any (Linux puts it on the last
// piece of a TSO burst); a FIN may only end the run. If they cover
// exactly the expected length, the joined segment is returned and they
// leave the queue; otherwise c is returned as it is and nothing else
// moves.
func (r *runner) join(p *PacketSpec, c *captured) *captured {
	if c.bad != "" || len(c.data) == 0 || len(c.data) >= p.Len || c.tcp.Flags&(wire.SYN|wire.RST|wire.FIN) != 0 {
		return c
	}
	const same = ^(wire.PSH | wire.FIN)
	j := *c
	j.data = append([]byte(nil), c.data...)
	n := 0 // segments taken from the queue
	for len(j.data) < p.Len {
		next := r.ep.peekAt(n)
		if next == nil || next.bad != "" || !next.at.Equal(c.at) ||
			next.tcp.Flags&same != c.tcp.Flags&same || next.tcp.Ack != c.tcp.Ack ||
			next.tcp.Seq != j.tcp.Seq.Add(seqnum.Size(len(j.data))) || len(next.data) == 0 ||
			len(r.matchOptionsSame(c.opts, next.opts)) != 0 {
			return c
		}
		j.data = append(j.data, next.data...)
		j.tcp.Flags |= next.tcp.Flags
		j.tcp.Window = next.tcp.Window
		n++
		if next.tcp.Flags&wire.FIN != 0 {
			break
		}
	}
	if len(j.data) != p.Len {
		return c
	}
	for range n {
		r.logf("> %s (joined)", r.describe(r.ep.pop()))
	}
	return &j
}

// matchOptionsSame compares the options of two of our segments: the same
// kinds in the same order, TS ecr and SACK blocks equal (TS val may tick).
func (r *runner) matchOptionsSame(a, b []Opt) string {
	if len(a) != len(b) {
		return "options"
	}
	for i := range a {
		if a[i].Kind != b[i].Kind || a[i].Kind == "TS" && a[i].V2 != b[i].V2 ||
			a[i].Kind == "sack" && fmt.Sprint(a[i].Blocks) != fmt.Sprint(b[i].Blocks) {
			return "options"
		}
	}
	return ""
}

// match compares a captured packet with the expectation.
func (r *runner) match(p *PacketSpec, c *captured) []string {
	if c.bad != "" {
		return []string{"not a TCP segment: " + c.bad}
	}
	h := &c.tcp
	seq := uint32(h.Seq) - r.localISN
	if r.prof.FINRepeat && !p.AnySeq && !p.AbsSeq && p.Flags == wire.FIN|wire.ACK && h.Flags == wire.ACK &&
		p.Len == 0 && len(c.data) == 0 && seq == p.Start+1 {
		q := *p
		q.Flags, q.Start, q.End = wire.ACK, p.Start+1, p.End+1
		if len(r.match(&q, c)) == 0 {
			return nil
		}
	}
	if r.prof.ResetWithoutACK && p.Flags == wire.RST|wire.ACK && h.Flags == wire.RST &&
		r.seqMatches(p, h) {
		q := *p
		q.Flags, q.HasAck = wire.RST, false
		if len(r.match(&q, c)) == 0 {
			return nil
		}
	}
	var d []string
	if flags := h.Flags; flags != p.Flags {
		if !r.prof.AnyPSH || len(c.data) == 0 || flags&^wire.PSH != p.Flags&^wire.PSH {
			d = append(d, "flags")
		}
	}
	if !r.seqMatches(p, h) {
		d = append(d, "seq")
	}
	if len(c.data) != p.Len {
		d = append(d, "length")
	}
	if p.HasAck && uint32(h.Ack)-remoteISN != p.Ack {
		d = append(d, "ack")
	}
	if p.HasWin && h.Window != p.Win && !r.heldWindow(h, p.Win) {
		d = append(d, "win")
	}
	if !p.AnyOpts {
		if why := r.matchOptions(p.Opts, c.opts); why != "" {
			d = append(d, why)
		}
	}
	if e := ecnCodepoints[p.ECN]; e.set && !e.matches(c.ip.ECN()) {
		d = append(d, "ECN field "+c.ip.ECN().String())
	}
	return d
}

// ecnCodepoint is what an ECN attribute ([noecn], [ect0], ...) of a
// packet line asks for: the codepoint to inject, and the ones an outbound
// packet may have. A line without one ("") injects Not-ECT and checks
// nothing, as packetdrill does.
type ecnCodepoint struct {
	set    bool
	ecn    wire.ECN
	either bool // [ect01]: ECT(0) or ECT(1)
}

func (e ecnCodepoint) matches(got wire.ECN) bool {
	if e.either {
		return got == wire.ECT0 || got == wire.ECT1
	}
	return got == e.ecn
}

var ecnCodepoints = map[string]ecnCodepoint{
	"":      {},
	"noecn": {set: true, ecn: wire.NotECT},
	"ect0":  {set: true, ecn: wire.ECT0},
	"ect1":  {set: true, ecn: wire.ECT1},
	"ect01": {set: true, ecn: wire.ECT0, either: true},
	"ce":    {set: true, ecn: wire.CE},
}

// seqMatches compares the sequence number of a segment we sent with the
// script's: relative to our ISN, absolute ("!"), or any ("...").
func (r *runner) seqMatches(p *PacketSpec, h *wire.TCPHeader) bool {
	switch {
	case p.AnySeq:
		return true
	case p.AbsSeq:
		return uint32(h.Seq) == p.Start
	}
	return uint32(h.Seq)-r.localISN == p.Start
}

// heldWindow reports whether our window is smaller than the script's
// only because receiver-side silly window avoidance holds the right edge
// (see Profile.ReceiverSWS).
func (r *runner) heldWindow(h *wire.TCPHeader, want uint16) bool {
	if !r.prof.ReceiverSWS || h.Flags&wire.SYN != 0 || h.Window > want {
		return false
	}
	mss := r.mtu - 40
	if r.ipv6 {
		mss = r.mtu - 60
	}
	return int(want-h.Window) < min(mss, r.rcvbuf/2)
}

func (r *runner) matchOptions(want, got []Opt) string {
	if r.prof.OptionsAsSet {
		want, got = meaningful(want), meaningful(got)
		sort.SliceStable(want, func(i, j int) bool { return want[i].Kind < want[j].Kind })
		sort.SliceStable(got, func(i, j int) bool { return got[i].Kind < got[j].Kind })
	}
	if len(want) != len(got) {
		return "options"
	}
	for i := range want {
		w, g := want[i], got[i]
		if w.Kind != g.Kind {
			return "options"
		}
		switch w.Kind {
		case "mss":
			if w.V1 != g.V1 {
				return "mss"
			}
		case "wscale":
			if w.V1 != g.V1 && !r.prof.AnyOwnWindowScale {
				return "wscale"
			}
		case "TS":
			// TS val: the script's numbers are relative to our first
			// one; the value itself is only checked with
			// --tcp_ts_tick_usecs.
			if !r.haveTS {
				r.haveTS, r.scriptTS0, r.actualTS0 = true, w.V1, g.V1
			} else if tick, ok := r.s.Opts["tcp_ts_tick_usecs"]; ok {
				us, _ := strconv.Atoi(tick)
				if us > 0 {
					wantMS := int64(w.V1-r.scriptTS0) * int64(us) / 1000
					gotMS := int64(g.V1 - r.actualTS0)
					slack := r.tol.Milliseconds() + 1
					if gotMS < wantMS-slack || gotMS > wantMS+slack {
						return "TS val"
					}
				}
			}
			if w.V2 != g.V2 {
				return "TS ecr"
			}
		case "sack":
			if len(w.Blocks) != len(g.Blocks) {
				return "sack"
			}
			for k := range w.Blocks {
				if w.Blocks[k][0] != g.Blocks[k][0]-remoteISN || w.Blocks[k][1] != g.Blocks[k][1]-remoteISN {
					return "sack"
				}
			}
		}
	}
	return ""
}

func meaningful(o []Opt) []Opt {
	var out []Opt
	for _, x := range o {
		if x.Kind != "nop" && x.Kind != "eol" {
			out = append(out, x)
		}
	}
	return out
}

// inject builds the packet of a < line and delivers it to the stack.
func (r *runner) inject(p *PacketSpec) error {
	src, dst := r.remote, r.local
	var pkt []byte
	if p.ICMP != nil {
		b, err := r.buildICMP(p.ICMP)
		if err != nil {
			return r.fail("%v", err)
		}
		pkt = b
	} else {
		mapEcr := func(v uint32) uint32 {
			if r.haveTS {
				return v - r.scriptTS0 + r.actualTS0
			}
			return v
		}
		mapSeq := func(v uint32) uint32 { return v + r.localISN }
		opts, err := encodeOptions(p.Opts, mapEcr, mapSeq)
		if err != nil {
			return r.fail("%v", err)
		}
		seq := p.Start + remoteISN
		if p.AbsSeq {
			seq = p.Start
		}
		var ack uint32
		if p.HasAck {
			ack = p.Ack + r.localISN
		}
		win := uint16(32767)
		if p.HasWin {
			win = p.Win
		}
		tcpb := make([]byte, 20+len(opts)+p.Len)
		put16(tcpb[0:], remotePort)
		put16(tcpb[2:], r.dstPort())
		put32(tcpb[4:], seq)
		put32(tcpb[8:], ack)
		tcpb[12] = byte((20+len(opts))/4) << 4
		tcpb[13] = byte(p.Flags)
		put16(tcpb[14:], win)
		copy(tcpb[20:], opts)
		put16(tcpb[16:], wire.Checksum(tcpb, wire.PseudoHeaderChecksum(wire.ProtocolTCP, src, dst, len(tcpb))))
		pkt = r.appendIP(nil, src, dst, wire.ProtocolTCP, len(tcpb))
		pkt = append(pkt, tcpb...)
		if e := ecnCodepoints[p.ECN]; e.set {
			wire.SetPacketECN(pkt, e.ecn) // [ect0], [ce], ...: the IP ECN field (RFC 3168 section 5)
		}
		r.logf("< %s", p)
	}
	r.ep.Deliver(pkt)
	r.v.WaitIdle()
	return nil
}

// dstPort is our port for injected segments: the port our last SYN came
// from, or the bound port.
func (r *runner) dstPort() uint16 {
	if r.livePort != 0 {
		return r.livePort
	}
	return boundPort
}

func (r *runner) appendIP(b []byte, src, dst netip.Addr, proto uint8, l4 int) []byte {
	if src.Is4() {
		return wire.AppendIPv4(b, &wire.IPv4Header{TTL: 64, Protocol: proto, Src: src, Dst: dst}, l4)
	}
	return wire.AppendIPv6(b, &wire.IPv6Header{NextHeader: proto, HopLimit: 64, Src: src, Dst: dst}, l4)
}

func put16(b []byte, v uint16) { b[0], b[1] = byte(v>>8), byte(v) }
func put32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
}

// ICMP types and codes by the names scripts use.
var icmp4Codes = map[string][2]uint8{
	"unreachable/net_unreachable":           {3, 0},
	"unreachable/host_unreachable":          {3, 1},
	"unreachable/protocol_unreachable":      {3, 2},
	"unreachable/port_unreachable":          {3, 3},
	"unreachable/frag_needed":               {3, 4},
	"unreachable/source_route_failed":       {3, 5},
	"unreachable/net_unknown":               {3, 6},
	"unreachable/host_unknown":              {3, 7},
	"unreachable/source_host_isolated":      {3, 8},
	"unreachable/net_prohibited":            {3, 9},
	"unreachable/host_prohibited":           {3, 10},
	"unreachable/net_unreachable_for_tos":   {3, 11},
	"unreachable/host_unreachable_for_tos":  {3, 12},
	"unreachable/packet_filtered":           {3, 13},
	"unreachable/precedence_violation":      {3, 14},
	"unreachable/precedence_cutoff":         {3, 15},
	"source_quench/":                        {4, 0},
	"redirect/":                             {5, 0},
	"time_exceeded/ttl_exceeded_in_transit": {11, 0},
	"time_exceeded/frag_reass_exceeded":     {11, 1},
	"parameter_problem/code_0":              {12, 0},
	"parameter_problem/code_1":              {12, 1},
	"parameter_problem/code_2":              {12, 2},
}

var icmp6Codes = map[string][2]uint8{
	"unreachable/no_route":                  {1, 0},
	"unreachable/admin_prohibited":          {1, 1},
	"unreachable/beyond_scope":              {1, 2},
	"unreachable/address_unreachable":       {1, 3},
	"unreachable/port_unreachable":          {1, 4},
	"unreachable/source_address_failed":     {1, 5},
	"unreachable/reject_route":              {1, 6},
	"packet_too_big/":                       {2, 0},
	"time_exceeded/exceeded_hop_limit":      {3, 0},
	"time_exceeded/exceeded_frag_time":      {3, 1},
	"parameter_problem/header_field":        {4, 0},
	"parameter_problem/unknown_next_header": {4, 1},
	"parameter_problem/unknown_option":      {4, 2},
}

// buildICMP makes an ICMP error from the peer quoting a segment of ours
// with the given relative sequence number.
func (r *runner) buildICMP(ic *ICMPSpec) ([]byte, error) {
	key := ic.Type + "/" + ic.Code
	codes := icmp4Codes
	if r.ipv6 {
		codes = icmp6Codes
	}
	tc, ok := codes[key]
	if !ok {
		return nil, fmt.Errorf("ICMP %s %s is not known for this IP version", ic.Type, ic.Code)
	}
	// The quoted segment: our IP header and the first 8 bytes of TCP.
	q := make([]byte, 8)
	put16(q[0:], r.dstPort())
	put16(q[2:], remotePort)
	put32(q[4:], ic.Start+r.localISN)
	orig := r.appendIP(nil, r.local, r.remote, wire.ProtocolTCP, 20)
	orig = append(orig, q...)
	src, dst := r.remote, r.local
	r.logf("< icmp %s %s [%d]", ic.Type, ic.Code, ic.Start)
	if !r.ipv6 {
		m := wire.ICMPv4Message{Type: tc[0], Code: tc[1], Data: orig}
		if ic.MTU > 0 {
			m.Rest = uint32(ic.MTU)
		}
		body := wire.AppendICMPv4(nil, &m)
		pkt := r.appendIP(nil, src, dst, wire.ProtocolICMP, len(body))
		return append(pkt, body...), nil
	}
	m := wire.ICMPv6Message{Type: tc[0], Code: tc[1], Data: orig}
	if ic.MTU > 0 {
		m.Rest = uint32(ic.MTU)
	}
	body := wire.AppendICMPv6(nil, &m, src, dst)
	pkt := r.appendIP(nil, src, dst, wire.ProtocolICMPv6, len(body))
	return append(pkt, body...), nil
}

var errnoNames = map[string]syscall.Errno{
	"EINPROGRESS": syscall.EINPROGRESS, "EAGAIN": syscall.EAGAIN, "EWOULDBLOCK": syscall.EWOULDBLOCK,
	"ECONNRESET": syscall.ECONNRESET, "ECONNREFUSED": syscall.ECONNREFUSED, "ETIMEDOUT": syscall.ETIMEDOUT,
	"EHOSTUNREACH": syscall.EHOSTUNREACH, "ENETUNREACH": syscall.ENETUNREACH, "ENOTCONN": syscall.ENOTCONN,
	"EPIPE": syscall.EPIPE, "EBADF": syscall.EBADF, "EINVAL": syscall.EINVAL, "EADDRINUSE": syscall.EADDRINUSE,
	"EISCONN": syscall.EISCONN, "EALREADY": syscall.EALREADY, "ECONNABORTED": syscall.ECONNABORTED,
	"ENOPROTOOPT": syscall.ENOPROTOOPT, "EACCES": syscall.EACCES, "EOPNOTSUPP": syscall.EOPNOTSUPP,
	"EINTR": syscall.EINTR, "EIO": syscall.EIO, "EADDRNOTAVAIL": syscall.EADDRNOTAVAIL,
	"EPROTO": syscall.EPROTO, "ENOENT": syscall.ENOENT,
}

func errnoName(e syscall.Errno) string {
	if e == 0 {
		return "0"
	}
	for n, v := range errnoNames {
		if v == e && n != "EWOULDBLOCK" {
			return n
		}
	}
	return fmt.Sprintf("errno %d", int(e))
}

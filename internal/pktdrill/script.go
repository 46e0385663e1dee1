// Package pktdrill runs packetdrill scripts against synack.
//
// It reads the script language packetdrill (github.com/google/packetdrill)
// defines, as documented in ../shared/packetdrill/README.md and as the
// FreeBSD TCP test suite uses it: header options, timed lines that are
// system calls, injected (<) and expected (>) packets, backtick shell lines
// (never executed: the sysctls among them map onto synack's configuration,
// see sysctl.go) and %{ assert tcpi_state == ... }% blocks. Each script
// runs against a fresh stack.Stack on a virtual clock, so a script with
// seconds of timeouts runs in microseconds of real time.
//
// The runner was written from the language's documentation and the
// scripts, not from packetdrill's code.
package pktdrill

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Script is a parsed packetdrill script.
type Script struct {
	Path   string
	Opts   map[string]string // header options: "ip_version" -> "ipv4"
	Events []*Event
}

// EventKind says what a script line does.
type EventKind int

const (
	PacketEvent  EventKind = iota // < injected or > expected packet
	SyscallEvent                  // a system call and its expected result
	ShellEvent                    // `command` (never executed)
	CodeEvent                     // %{ python }%
)

// TimeKind says how an event's time is written.
type TimeKind int

const (
	Absolute TimeKind = iota // 0.100
	Relative                 // +0.100: after the previous event
	AnyTime                  // *: whenever it happens
)

// Event is one timed line of a script.
type Event struct {
	Line int
	Text string // the line as written, for messages
	Kind EventKind

	TimeKind TimeKind
	Time     time.Duration // start (or only) time as written
	HasEnd   bool          // a range a...b: a blocking call returns within it
	End      time.Duration
	EndRel   bool

	// A range a~b (packetdrill's Linux scripts: "+.01~+.015 > ..."):
	// the event happens at some time within it, not at one moment. Upto
	// is b; UptoRel says it is written relative to the previous event.
	HasUpto bool
	Upto    time.Duration
	UptoRel bool

	Packet  *PacketSpec
	Syscall *Syscall
	Command string // shell command or code
}

// ParseFile reads and parses the script at path.
func ParseFile(path string) (*Script, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := Parse(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s.Path = path
	return s, nil
}

// Parse parses a script. #ifdef blocks keep the STANDARD branch (the RFC
// behaviour), as the FreeBSD suite's time-wait scripts ask.
func Parse(src string) (*Script, error) {
	s := &Script{Opts: map[string]string{}}
	lines := strings.Split(src, "\n")
	// Preprocess: #ifdef/#else/#endif, then comments. Keep line numbers.
	var stack []bool // per open #ifdef: whether its current branch is kept
	keep := func() bool {
		for _, k := range stack {
			if !k {
				return false
			}
		}
		return true
	}
	text := make([]string, len(lines))
	for i, l := range lines {
		t := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(t, "#ifdef"):
			sym := strings.TrimSpace(strings.TrimPrefix(t, "#ifdef"))
			stack = append(stack, sym == "STANDARD")
			continue
		case strings.HasPrefix(t, "#ifndef"):
			sym := strings.TrimSpace(strings.TrimPrefix(t, "#ifndef"))
			stack = append(stack, sym != "STANDARD")
			continue
		case strings.HasPrefix(t, "#else"):
			if len(stack) == 0 {
				return nil, fmt.Errorf("line %d: #else without #ifdef", i+1)
			}
			stack[len(stack)-1] = !stack[len(stack)-1]
			continue
		case strings.HasPrefix(t, "#endif"):
			if len(stack) == 0 {
				return nil, fmt.Errorf("line %d: #endif without #ifdef", i+1)
			}
			stack = stack[:len(stack)-1]
			continue
		}
		if !keep() {
			continue
		}
		text[i] = l
	}
	// Join multi-line backtick and %{ }% blocks; strip // comments
	// outside them.
	for i := 0; i < len(text); i++ {
		l := stripComment(text[i])
		t := strings.TrimSpace(l)
		if t == "" {
			continue
		}
		if strings.HasPrefix(t, "--") {
			name, val, _ := strings.Cut(strings.TrimPrefix(t, "--"), "=")
			s.Opts[strings.TrimSpace(name)] = strings.TrimSpace(val)
			continue
		}
		start := i
		// Multi-line blocks.
		if strings.Count(t, "`")%2 == 1 {
			for i+1 < len(text) {
				i++
				t += "\n" + text[i]
				if strings.Count(text[i], "`")%2 == 1 {
					break
				}
			}
		} else if strings.Contains(t, "%{") && !strings.Contains(t, "}%") {
			for i+1 < len(text) {
				i++
				t += "\n" + text[i]
				if strings.Contains(text[i], "}%") {
					break
				}
			}
		} else {
			// A system call written over several lines (Linux scripts'
			// poll([{fd=4,\n events=POLLIN, ...}], 1, 0) = 1).
			for depth(t) > 0 && i+1 < len(text) {
				i++
				t += " " + strings.TrimSpace(stripComment(text[i]))
			}
		}
		ev, err := parseEvent(t)
		if err != nil {
			return nil, fmt.Errorf("line %d: %v: %q", start+1, err, strings.TrimSpace(lines[start]))
		}
		ev.Line = start + 1
		ev.Text = strings.TrimSpace(t)
		s.Events = append(s.Events, ev)
	}
	if len(stack) != 0 {
		return nil, fmt.Errorf("unterminated #ifdef")
	}
	return s, nil
}

// depth is how many brackets of t are open at its end.
func depth(t string) int {
	d := 0
	for _, c := range t {
		switch c {
		case '(', '[', '{':
			d++
		case ')', ']', '}':
			d--
		}
	}
	return d
}

// stripComment removes a // comment that is not inside backticks or a
// %{ }% block.
func stripComment(l string) string {
	inTick := false
	for i := 0; i+1 < len(l); i++ {
		switch {
		case l[i] == '`':
			inTick = !inTick
		case !inTick && l[i] == '/' && l[i+1] == '/':
			if strings.Contains(l[:i], "%{") && !strings.Contains(l[:i], "}%") {
				continue
			}
			return l[:i]
		}
	}
	return l
}

func parseEvent(t string) (*Event, error) {
	ev := &Event{}
	rest, err := parseTime(ev, t)
	if err != nil {
		return nil, err
	}
	rest = strings.TrimSpace(rest)
	switch {
	case strings.HasPrefix(rest, "`"):
		ev.Kind = ShellEvent
		ev.Command = strings.Trim(rest, "` \n")
	case strings.HasPrefix(rest, "%{"):
		ev.Kind = CodeEvent
		c := strings.TrimPrefix(rest, "%{")
		c, _, _ = strings.Cut(c, "}%")
		ev.Command = strings.TrimSpace(c)
	case strings.HasPrefix(rest, "<") || strings.HasPrefix(rest, ">"):
		ev.Kind = PacketEvent
		p, err := parsePacket(rest)
		if err != nil {
			return nil, err
		}
		ev.Packet = p
	default:
		ev.Kind = SyscallEvent
		c, err := parseSyscall(rest)
		if err != nil {
			return nil, err
		}
		ev.Syscall = c
	}
	return ev, nil
}

// parseTime reads the time at the start of a line: "0.1", "+0.1", "+.1",
// "+ 0.00", "*", "1.0...6.0", "+0...0.2", "+.01~+.015".
func parseTime(ev *Event, t string) (string, error) {
	t = strings.TrimSpace(t)
	if strings.HasPrefix(t, "`") {
		ev.TimeKind = Relative // an untimed shell line: right after the previous one
		return t, nil
	}
	if strings.HasPrefix(t, "*") {
		ev.TimeKind = AnyTime
		return t[1:], nil
	}
	rel := false
	if strings.HasPrefix(t, "+") {
		rel = true
		t = strings.TrimSpace(t[1:])
	}
	num, rest := splitNumber(t)
	if num == "" {
		return "", fmt.Errorf("missing time")
	}
	d, err := parseSeconds(num)
	if err != nil {
		return "", err
	}
	ev.Time = d
	if rel {
		ev.TimeKind = Relative
	}
	switch {
	case strings.HasPrefix(rest, "..."):
		ev.End, ev.EndRel, rest, err = parseRangeEnd(rest[3:], rel)
		if err != nil {
			return "", err
		}
		ev.HasEnd = true
	case strings.HasPrefix(rest, "~"):
		ev.Upto, ev.UptoRel, rest, err = parseRangeEnd(rest[1:], rel)
		if err != nil {
			return "", err
		}
		if ev.UptoRel != rel || ev.Upto < d {
			return "", fmt.Errorf("time range ~%v ends before it starts, or mixes relative and absolute times", ev.Upto)
		}
		ev.HasUpto = true
	}
	return rest, nil
}

// parseRangeEnd reads the end of a time range after "..." or "~": a time,
// relative if written with "+" or if the start was.
func parseRangeEnd(t string, rel bool) (end time.Duration, endRel bool, rest string, err error) {
	endRel = rel
	if strings.HasPrefix(t, "+") {
		endRel = true
		t = t[1:]
	}
	num, rest := splitNumber(t)
	if num == "" {
		return 0, false, "", fmt.Errorf("bad time range")
	}
	end, err = parseSeconds(num)
	return end, endRel, rest, err
}

func splitNumber(t string) (string, string) {
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		if t[i] == '.' && strings.HasPrefix(t[i:], "...") {
			break
		}
		i++
	}
	return t[:i], t[i:]
}

func parseSeconds(s string) (time.Duration, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("bad time %q", s)
	}
	return time.Duration(f*1e6+0.5) * time.Microsecond, nil
}

// Syscall is a system call line: name(args) = result [errno].
type Syscall struct {
	Name   string
	Args   []string // as written, trimmed
	Result int64
	Errno  string // "EINPROGRESS", or "" when none is expected
}

func parseSyscall(t string) (*Syscall, error) {
	open := strings.IndexByte(t, '(')
	if open < 0 {
		return nil, fmt.Errorf("not a system call")
	}
	c := &Syscall{Name: strings.TrimSpace(t[:open])}
	depth := 0
	end := -1
	for i := open; i < len(t); i++ {
		switch t[i] {
		case '(', '[', '{':
			depth++
		case ')', ']', '}':
			depth--
		}
		if depth == 0 {
			end = i
			break
		}
	}
	if end < 0 {
		return nil, fmt.Errorf("unbalanced parentheses")
	}
	c.Args = splitArgs(t[open+1 : end])
	rest := strings.TrimSpace(t[end+1:])
	if !strings.HasPrefix(rest, "=") {
		return nil, fmt.Errorf("missing result")
	}
	f := strings.Fields(strings.TrimSpace(rest[1:]))
	if len(f) == 0 {
		return nil, fmt.Errorf("missing result")
	}
	v, err := strconv.ParseInt(f[0], 0, 64)
	if err != nil {
		return nil, fmt.Errorf("bad result %q", f[0])
	}
	c.Result = v
	if len(f) > 1 && !strings.HasPrefix(f[1], "(") {
		c.Errno = f[1]
	}
	return c, nil
}

// splitArgs splits at top-level commas.
func splitArgs(s string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(', '[', '{':
			depth++
		case ')', ']', '}':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	if last := strings.TrimSpace(s[start:]); last != "" || len(out) > 0 {
		out = append(out, last)
	}
	return out
}

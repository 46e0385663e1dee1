package admin

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"time"

	"github.com/synack/synack/diag"
	"github.com/synack/synack/stack"
	"github.com/synack/synack/tcp"
)

// Snapshot is one look at a stack as diag sees it: a row per connection and
// listener (state, queues, RTT and RTO, retransmissions, age, the 4-tuple),
// the counters under their netstat names, the listeners' queues, and the
// stack's knobs as Settings, so that the advice in diag's findings names
// synack's own settings (MSL, FinWait2Timeout, SynBacklog, ...).
//
// Rows of connections their owner still holds are owned by this process
// (PID os.Getpid()); connections closed by their owner and finished by the
// stack alone (FIN-WAIT-*, LAST-ACK, TIME-WAIT after Close) are orphans
// with PID 0, as the kernel shows them.
func Snapshot(s *stack.Stack) diag.Snapshot {
	return snapshot(s, defaultProcess(), nil)
}

func defaultProcess() string { return filepath.Base(os.Args[0]) }

// netipAny is port on every address, written "[::]:port": a listener on
// the zero address takes both families.
func netipAny(port uint16) netip.AddrPort { return netip.AddrPortFrom(netip.IPv6Unspecified(), port) }

// snapshot builds the Snapshot; inState, when not nil, tells since when a
// connection has been in its current state (learned from events), which
// gives TIME-WAIT rows their age and time left.
func snapshot(s *stack.Stack, process string, inState func(id uint64) (time.Time, bool)) diag.Snapshot {
	now := s.Clock().Now()
	opts := s.Options()
	conns := s.Connections()
	ls := s.Listeners()
	byID := make(map[uint64]stack.ListenerInfo, len(ls))
	for _, l := range ls {
		byID[l.ID] = l
	}
	pid := os.Getpid()
	snap := diag.Snapshot{
		Source:         diag.SourceSynack,
		Time:           now,
		Rows:           make([]diag.Row, 0, len(conns)),
		Counters:       FlatCounters(s.Counters()),
		Settings:       Settings(opts),
		EphemeralRange: [2]int{int(opts.FirstEphemeral), int(opts.LastEphemeral)},
	}
	twLen := 2 * opts.TCP.MSL
	for _, c := range conns {
		r := diag.Row{
			Source: diag.SourceSynack, Local: c.Tuple.Local, Remote: c.Tuple.Remote, State: c.State,
			RecvQ: c.Info.RecvQueue, SendQ: c.Info.SendQueue,
			RTT: c.Info.RTT, RTO: c.Info.RTO, Retransmits: c.Info.Backoff,
			Age: c.Age, UID: -1,
		}
		if !c.Released {
			r.PID, r.Process = pid, process
		}
		if l, ok := byID[c.ID]; ok && c.State == tcp.Listen {
			r.RecvQ, r.SendQ = l.AcceptQueue, l.Backlog
			r.RTT, r.RTO, r.Retransmits = 0, 0, 0
			if !r.Local.Addr().IsValid() {
				// Every address of both families, as ss writes it.
				r.Local = netipAny(r.Local.Port())
			}
		} else {
			r.Timer = timerName(c)
		}
		if c.State == tcp.TimeWait && inState != nil {
			if since, ok := inState(c.ID); ok {
				r.Age = now.Sub(since)
				r.TimerLeft = max(twLen-r.Age, 0)
			}
		}
		snap.Rows = append(snap.Rows, r)
	}
	// Listeners by port, with the SYN backlog the stack enforces.
	snap.FillListeners(func(diag.Listener) int { return opts.SynBacklog })
	for p, l := range snap.Listeners {
		syn := 0
		for _, x := range ls {
			if x.Addr.Port() == p {
				syn += x.SynQueue
			}
		}
		l.SynQueue = syn // the stack's own count of its SYN queues
		l.SynBacklog = opts.SynBacklog * max(l.Sockets, 1)
		snap.Listeners[p] = l
	}
	return snap
}

// timerName tells which timer a connection most likely runs, as ss names
// them; "" when none is known to run.
func timerName(c stack.ConnInfo) string {
	switch c.State {
	case tcp.TimeWait:
		return "time-wait"
	case tcp.SynSent, tcp.SynReceived, tcp.FinWait1, tcp.Closing, tcp.LastAck:
		return "retransmit"
	case tcp.FinWait2:
		if c.Released {
			return "fin-wait-2"
		}
	}
	if c.Info.Unacked > 0 {
		return "retransmit"
	}
	return ""
}

// FlatCounters names a stack's counters as Snapshot.Counters does: TCP's
// under their plain RFC 4022 and TcpExt names (ActiveOpens,
// ListenOverflows), IP's and ICMP's with nstat's prefixes (IpInReceives,
// IcmpInMsgs), and EventsDropped; not the byte counters, which netstat
// does not have.
func FlatCounters(c stack.Counters) map[string]uint64 {
	m := make(map[string]uint64)
	for _, f := range counterFields() {
		if _, own := ownCounters[f.name]; own && f.group == "TcpExt" {
			continue // no netstat name: /metrics has them under their own
		}
		m[f.flat] = f.get(c)
	}
	return m
}

// counterField is one field of stack.Counters with its names.
type counterField struct {
	group string // netstat group: Ip, Icmp, Tcp, TcpExt; "" for the stack's own
	name  string // the field's name: ActiveOpens
	flat  string // Snapshot.Counters key
	gauge bool   // CurrEstab
	index []int
}

func (f counterField) get(c stack.Counters) uint64 {
	return reflect.ValueOf(c).FieldByIndex(f.index).Uint()
}

// rfc4022 are the counters of RFC 4022's tcp group (netstat's Tcp); the
// other TCP counters are Linux's TcpExt.
var rfc4022 = map[string]bool{
	"ActiveOpens": true, "PassiveOpens": true, "AttemptFails": true, "EstabResets": true,
	"CurrEstab": true, "InSegs": true, "OutSegs": true, "RetransSegs": true, "InErrs": true,
	"InCsumErrors": true, "OutRsts": true,
}

var counterFieldsCache []counterField

// counterFields lists every counter of stack.Counters by reflection, so
// that counters added to the stack show up here without a change.
func counterFields() []counterField {
	if counterFieldsCache != nil {
		return counterFieldsCache
	}
	var out []counterField
	ty := reflect.TypeFor[stack.Counters]()
	for i := range ty.NumField() {
		f := ty.Field(i)
		if f.Type.Kind() == reflect.Uint64 {
			out = append(out, counterField{name: f.Name, flat: f.Name, index: f.Index})
			continue
		}
		if f.Type.Kind() != reflect.Struct {
			continue
		}
		for j := range f.Type.NumField() {
			g := f.Type.Field(j)
			if g.Type.Kind() != reflect.Uint64 {
				continue
			}
			cf := counterField{name: g.Name, index: []int{i, j}}
			switch f.Name {
			case "IP":
				cf.group, cf.flat = "Ip", "Ip"+g.Name
			case "ICMP":
				cf.group, cf.flat = "Icmp", "Icmp"+g.Name
			case "UDP":
				cf.group, cf.flat = "Udp", "Udp"+g.Name
			case "TCP":
				cf.group, cf.flat = "TcpExt", g.Name
				if rfc4022[g.Name] {
					cf.group = "Tcp"
				}
				cf.gauge = g.Name == "CurrEstab" || g.Name == "TCPMemoryBytes" || g.Name == "TCPMemoryState"
			default:
				cf.group, cf.flat = f.Name, f.Name+g.Name
			}
			out = append(out, cf)
		}
	}
	counterFieldsCache = out
	return out
}

func init() { counterFields() }

// Settings are a stack's knobs under diag's Knob names, written as Go
// writes them ("30s", "true", "32768-60999").
func Settings(o stack.Options) map[string]string {
	m := map[string]string{
		diag.KnobMSL:             o.TCP.MSL.String(),
		diag.KnobFinWait2Timeout: o.TCP.FinWait2Timeout.String(),
		diag.KnobSynBacklog:      strconv.Itoa(o.SynBacklog),
		diag.KnobAcceptBacklog:   strconv.Itoa(o.ListenBacklog),
		diag.KnobSynAckRetries:   strconv.Itoa(o.TCP.SynAckRetries),
		diag.KnobMaxRetransmits:  strconv.Itoa(o.TCP.MaxRetransmits),
		diag.KnobUserTimeout:     o.TCP.UserTimeout.String(),
		diag.KnobEphemeralPorts:  fmt.Sprintf("%d-%d", o.FirstEphemeral, o.LastEphemeral),
		diag.KnobMemoryLimit:     strconv.FormatInt(max(o.MemoryLimit, 0), 10),
	}
	// SYN cookies are a stack option once they exist; read it by name so
	// this keeps up without a change.
	v := reflect.ValueOf(o)
	for _, name := range []string{"Syncookies", "SynCookies"} {
		if f := v.FieldByName(name); f.IsValid() {
			m[diag.KnobSyncookies] = fmt.Sprint(f.Interface())
			break
		}
	}
	if _, ok := m[diag.KnobSyncookies]; !ok {
		m[diag.KnobSyncookies] = "false"
	}
	return m
}

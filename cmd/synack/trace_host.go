package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"time"

	"github.com/synack/synack/admin"
	"github.com/synack/synack/diag/hosttrace"
	"github.com/synack/synack/diag/ladder"
	"github.com/synack/synack/stack"
	"github.com/synack/synack/tcp"
)

// hostRecord is a kernel event on the wire of `synack trace --host
// --json`: the field names of the stack's trace records (admin's
// traceJSON) where they apply, plus the kernel's socket key and state
// names.
type hostRecord struct {
	Kind      string    `json:"kind"` // "state", "rst_snd", "rst_rcv", "retransmit", "lost"
	Time      time.Time `json:"time"`
	Sock      string    `json:"sock,omitempty"` // skaddr: which incarnation of the tuple
	Local     string    `json:"local,omitempty"`
	Remote    string    `json:"remote,omitempty"`
	From      string    `json:"from,omitempty"`
	To        string    `json:"to,omitempty"`
	LinuxFrom string    `json:"linux_from,omitempty"` // the kernel's TCP_* name: NEW_SYN_RECV stays visible
	LinuxTo   string    `json:"linux_to,omitempty"`
	Reason    int       `json:"reason,omitempty"` // a sent RST's sk_rst_reason
	Dropped   uint64    `json:"dropped,omitempty"`
}

// hostMatch applies a `trace` filter to a kernel event: a state change
// as a transition, the other kinds in the socket's state.
func hostMatch(f *admin.TraceFilter, ev *hosttrace.Event) bool {
	if ev.Kind == hosttrace.KindLost {
		return true
	}
	rec := admin.TraceRecord{Kind: stack.TraceState, Transition: tcp.Transition{
		Tuple: tcp.Tuple{Local: ev.Local, Remote: ev.Remote}, From: ev.From, To: ev.To}}
	if ev.Kind != hosttrace.KindState {
		rec.From = ev.To
	}
	return f.Match(&rec)
}

func apText(ap netip.AddrPort) string {
	if !ap.Addr().IsValid() {
		return ""
	}
	return ap.String()
}

func hostJSON(ev *hosttrace.Event) hostRecord {
	r := hostRecord{Kind: ev.Kind.String(), Time: ev.Time}
	if ev.Kind == hosttrace.KindLost {
		r.Dropped = ev.Lost
		return r
	}
	if ev.Sock != 0 {
		r.Sock = "0x" + strconv.FormatUint(ev.Sock, 16)
	}
	r.Local, r.Remote = apText(ev.Local), apText(ev.Remote)
	if ev.Kind == hosttrace.KindState {
		r.From, r.LinuxFrom = ev.From.String(), hosttrace.LinuxStateName(ev.LinuxFrom)
	}
	if ev.Kind == hosttrace.KindState || ev.LinuxTo != 0 { // 0: a RST's event without a socket state
		r.To, r.LinuxTo = ev.To.String(), hosttrace.LinuxStateName(ev.LinuxTo)
	}
	r.Reason = ev.Reason
	return r
}

// hostLine is one event as a line: time, local ↔ remote, what happened.
func hostLine(ev *hosttrace.Event) string {
	ts := ev.Time.Format("15:04:05.000000")
	ends := fmt.Sprintf("%s ↔ %s", apText(ev.Local), apText(ev.Remote))
	switch ev.Kind {
	case hosttrace.KindLost:
		if ev.Lost == 0 {
			return ts + "  (events lost here: the reader fell behind)"
		}
		return fmt.Sprintf("%s  (%d events lost here: the reader fell behind)", ts, ev.Lost)
	case hosttrace.KindState:
		what := ev.From.String() + " → " + ev.To.String()
		if ev.LinuxFrom == 12 || ev.LinuxTo == 12 { // TCP_NEW_SYN_RECV: a request sock
			what += " (request sock)"
		}
		return fmt.Sprintf("%s  %s  %s", ts, ends, what)
	case hosttrace.KindSendReset:
		if ev.LinuxTo == 0 { // no socket: an answer to a segment for none (RFC 9293 3.10.7.1)
			return fmt.Sprintf("%s  %s  RST sent without a socket (reason %d)", ts, ends, ev.Reason)
		}
		return fmt.Sprintf("%s  %s  RST sent in %s (reason %d)", ts, ends, ev.To, ev.Reason)
	case hosttrace.KindReceiveReset:
		return fmt.Sprintf("%s  %s  RST received", ts, ends)
	case hosttrace.KindSynAckRetransmit:
		return fmt.Sprintf("%s  %s  SYN-ACK retransmitted (request sock)", ts, ends)
	case hosttrace.KindDestroy:
		return fmt.Sprintf("%s  %s  socket freed", ts, ends)
	default:
		return fmt.Sprintf("%s  %s  retransmit in %s", ts, ends, ev.To)
	}
}

// followHost prints the kernel's own TCP events (tracepoints, see
// diag/hosttrace) matching o.filter until ctx ends or o.count were
// printed, then how many events the kernel could not record.
func followHost(ctx context.Context, o traceOpts, w, errw io.Writer) error {
	tr, err := hosttrace.Open(hosttrace.Options{Resets: true, Retransmits: true, Ports: o.filter.Ports})
	if err != nil {
		return fmt.Errorf("%w (tracing the kernel needs root)", err)
	}
	defer tr.Close()
	if o.ready != nil {
		close(o.ready)
	}
	enc := json.NewEncoder(w)
	var ll *ladder.Ladder
	var ids *connIDs
	if o.ladder {
		ll = ladder.NewLive(w)
		ll.Color, ll.Width = o.color, o.width
		ll.Header()
		ids = &connIDs{ids: map[uint64]uint64{}}
	}
	var buf []hosttrace.Event
	n := 0
	defer func() {
		if lost, err := tr.Lost(); err == nil && lost > 0 {
			fmt.Fprintf(errw, "synack trace: the kernel lost %d events (the reader fell behind)\n", lost)
		}
	}()
	for {
		buf, err = tr.Next(ctx, buf[:0])
		for i := range buf {
			ev := &buf[i]
			if !hostMatch(&o.filter, ev) {
				continue
			}
			switch {
			case o.json:
				if err := enc.Encode(hostJSON(ev)); err != nil {
					return err
				}
			case ll != nil:
				hostLadder(ll, ids, ev)
			default:
				fmt.Fprintln(w, hostLine(ev))
			}
			if n++; o.count > 0 && n >= o.count {
				return nil
			}
		}
		if err != nil {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return nil
			}
			return err
		}
	}
}

// connIDs numbers the kernel's sockets for the ladder, #1, #2, ...: an
// address is reused once its socket is freed, so a socket that reached
// CLOSED gets a new number next time.
type connIDs struct {
	ids  map[uint64]uint64
	next uint64
}

func (c *connIDs) id(sock uint64, closed bool) uint64 {
	id, ok := c.ids[sock]
	if !ok {
		c.next++
		id = c.next
		c.ids[sock] = id
	}
	if closed {
		delete(c.ids, sock)
	}
	return id
}

// hostLadder draws a kernel event on the live ladder: the state changes
// as its connections' transitions (the kernel's segments are not
// traced), the rest as remarks.
func hostLadder(ll *ladder.Ladder, ids *connIDs, ev *hosttrace.Event) {
	switch ev.Kind {
	case hosttrace.KindState:
		tu := tcp.Tuple{Local: ev.Local, Remote: ev.Remote}
		if ev.Remote.Port() == 0 && ev.Remote.Addr().IsUnspecified() {
			tu.Remote = netip.AddrPort{} // a listener, as the stack's has no remote
		}
		ll.Trace(stack.TraceEvent{Kind: stack.TraceState, Transition: tcp.Transition{
			Time: ev.Time, ID: ids.id(ev.Sock, ev.To == tcp.Closed), Tuple: tu, From: ev.From, To: ev.To}})
	case hosttrace.KindLost:
		ll.Dropped(ev.Lost)
	default:
		ll.Aside(ev.Time, hostLine(ev)[len("15:04:05.000000  "):])
	}
}

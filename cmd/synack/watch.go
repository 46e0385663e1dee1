package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/synack/synack/admin"
	"github.com/synack/synack/diag"
	"github.com/synack/synack/diag/hostlive"
	"github.com/synack/synack/stack"
	"github.com/synack/synack/tcp"
)

func init() {
	register(&command{
		name:    "watch",
		summary: "the RFC 9293 state diagram of the host kernel's TCP, live in a browser (--host)",
		run:     runWatch,
	})
}

func runWatch(args []string) int {
	fs := flag.NewFlagSet("watch", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: synack watch --host [--listen ADDR] [--ports LIST] [flags]")
		fmt.Fprintln(fs.Output(), "\nServes the admin page of `synack serve --admin` for the host kernel's own TCP: the")
		fmt.Fprintln(fs.Output(), "RFC 9293 state diagram with the sockets in each state now (sock_diag), every transition's")
		fmt.Fprintln(fs.Output(), "count and rate, the resets and retransmissions of each connection (tracepoints), the")
		fmt.Fprintln(fs.Output(), "`synack diagnose` findings, and /metrics as `synack exporter --host` serves it. Needs root.")
		fmt.Fprintln(fs.Output(), "Counts are those of the network namespace it runs in; the tracepoints are the whole host's.")
		fmt.Fprintln(fs.Output(), "\nflags:")
		fs.PrintDefaults()
	}
	var o hostOpts
	hostFlags(fs, &o, ":9842")
	if status, done := parseFlags(fs, args); done {
		return status
	}
	if !o.host || fs.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "synack watch: --host is required (a synack stack serves this page itself with --admin)")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serveHost(ctx, "watch", o, func(m *hostModel) http.Handler { return watchHandler(m.Model) })
}

// hostAPI is the reply of api/host: the totals and the per-connection
// table of resets and retransmissions.
type hostAPI struct {
	Totals hostTotalsJSON `json:"totals"`
	Conns  []hostConnJSON `json:"conns"`
}

type hostTotalsJSON struct {
	ResetsSent        uint64 `json:"resets_sent"`
	ResetsReceived    uint64 `json:"resets_received"`
	Retransmits       uint64 `json:"retransmits"`
	SynAckRetransmits uint64 `json:"synack_retransmits"`
	BytesAcked        uint64 `json:"bytes_acked"`
	BytesReceived     uint64 `json:"bytes_received"`
	LostEvents        uint64 `json:"lost_events"`
	Untracked         uint64 `json:"untracked"`
	Tracked           int    `json:"tracked"` // entries in the table; conns has the maxHostConns latest
}

// maxHostConns bounds api/host's conns.
const maxHostConns = 1000

type hostConnJSON struct {
	Sock              string    `json:"sock"`
	Local             string    `json:"local"`
	Remote            string    `json:"remote,omitempty"`
	State             string    `json:"state"`
	Closed            bool      `json:"closed,omitempty"`
	Retransmits       uint64    `json:"retransmits,omitempty"`
	SynAckRetransmits uint64    `json:"synack_retransmits,omitempty"`
	ResetsSent        uint64    `json:"resets_sent,omitempty"`
	ResetsReceived    uint64    `json:"resets_received,omitempty"`
	First             time.Time `json:"first"`
	Last              time.Time `json:"last"`
}

func writeHostJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(v)
}

// hostEvents is a view in the shape of admin's /api/events, so that the
// page reads the kernel's transitions as it reads a stack's.
func hostEvents(v hostlive.View) admin.Events {
	out := admin.Events{Start: v.Start, Last: v.LastSeq, Events: []admin.TraceRecord{}, Transitions: []admin.TransitionCount{}}
	for _, r := range v.Recent {
		tu := tcp.Tuple{Local: r.Local, Remote: r.Remote}
		if r.Remote.Port() == 0 && r.Remote.Addr().IsUnspecified() {
			tu.Remote = netip.AddrPort{} // a listener: no remote end
		}
		out.Events = append(out.Events, admin.TraceRecord{Seq: r.Seq, Kind: stack.TraceState,
			Transition: tcp.Transition{Time: r.Time, ID: r.ID, Tuple: tu, From: r.From, To: r.To}})
	}
	for _, t := range v.Transitions {
		rate := t.Rate
		out.Transitions = append(out.Transitions, admin.TransitionCount{From: t.From.String(), To: t.To.String(), Count: t.Count, Rate: &rate})
	}
	return out
}

func hostConns(v hostlive.View) hostAPI {
	t := v.Totals
	out := hostAPI{Conns: []hostConnJSON{}, Totals: hostTotalsJSON{
		ResetsSent: t.ResetsSent, ResetsReceived: t.ResetsReceived, Retransmits: t.Retransmits,
		SynAckRetransmits: t.SynAckRetransmits, BytesAcked: t.BytesAcked, BytesReceived: t.BytesReceived,
		LostEvents: t.Lost, Untracked: t.ConnsDropped,
	}}
	out.Totals.Tracked = len(v.Conns)
	// The most recently active first (View's order), as many as the
	// page shows: the table can hold --max-conns, polled every second.
	for _, c := range v.Conns[:min(len(v.Conns), maxHostConns)] {
		out.Conns = append(out.Conns, hostConnJSON{
			Sock: "0x" + strconv.FormatUint(c.Sock, 16), Local: apText(c.Local), Remote: apText(c.Remote),
			State: c.State.String(), Closed: c.Closed, Retransmits: c.Retransmits, SynAckRetransmits: c.SynAckRetransmits,
			ResetsSent: c.ResetsSent, ResetsReceived: c.ResetsRecv, First: c.First, Last: c.Last,
		})
	}
	return out
}

// watchHandler serves admin's page for the host model m, the API the
// page reads, and /metrics.
func watchHandler(m *hostlive.Model) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", admin.ServeHostPage)
	mux.HandleFunc("GET /diagram.svg", admin.ServeDiagram)
	mux.Handle("GET /metrics", exporterHandler(m, true))
	mux.HandleFunc("GET /api/diagnose", func(w http.ResponseWriter, r *http.Request) {
		rep := m.View(^uint64(0)).Report
		if rep.Findings == nil {
			rep.Findings = []diag.Finding{}
		}
		writeHostJSON(w, rep)
	})
	mux.HandleFunc("GET /api/connections", func(w http.ResponseWriter, r *http.Request) {
		writeHostJSON(w, m.View(^uint64(0)).Snapshot)
	})
	mux.HandleFunc("GET /api/events", func(w http.ResponseWriter, r *http.Request) {
		after, _ := strconv.ParseUint(r.URL.Query().Get("after"), 10, 64)
		writeHostJSON(w, hostEvents(m.View(after)))
	})
	mux.HandleFunc("GET /api/host", func(w http.ResponseWriter, r *http.Request) {
		writeHostJSON(w, hostConns(m.View(^uint64(0))))
	})
	return mux
}

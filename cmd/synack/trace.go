package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/synack/synack/admin"
	"github.com/synack/synack/diag/ladder"
)

func init() {
	register(&command{
		name:    "trace",
		summary: "the ladder diagram of a running synack's real connections, live (synack serve --admin)",
		run:     runTrace,
	})
}

type traceOpts struct {
	filter   admin.TraceFilter
	backlog  int
	count    int // stop after this many records; 0: never
	json     bool
	color    bool
	width    int // the ladder's width; 0 for its default
	absolute bool
	ladder   bool // --host: the live ladder instead of one line an event
	// ready, if not nil, is closed once the kernel's tracepoints are
	// attached (--host): what happens after that is seen.
	ready chan struct{}
}

func runTrace(args []string) int {
	fs := flag.NewFlagSet("trace", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: synack trace [--admin URL | --host] [flags] [FILTER ...]")
		fmt.Fprintln(fs.Output(), "\nPrints the segments and state changes of a running synack's connections as they happen,")
		fmt.Fprintln(fs.Output(), "as the ladder of `synack demo`: the stack on the left, each peer on the right.")
		fmt.Fprintln(fs.Output(), "With --host, the host kernel's own TCP sockets instead (root): every state change, RST")
		fmt.Fprintln(fs.Output(), "and retransmission, one line each, from tracepoints in a private tracefs instance.")
		fmt.Fprintln(fs.Output(), "\nFILTER words (all kinds must match; values of one kind are alternatives):")
		fmt.Fprintln(fs.Output(), "  port N | N            either end's port")
		fmt.Fprintln(fs.Output(), "  host ADDR | ADDR      either end's address (ADDR:PORT sets both)")
		fmt.Fprintln(fs.Output(), "  state S | S           the connection is in S before or after the event (close-wait, TIME-WAIT, ...)")
		fmt.Fprintln(fs.Output(), "\nflags:")
		fs.PrintDefaults()
	}
	base := fs.String("admin", "", "the admin `URL` of a running synack (default $SYNACK_ADMIN, else "+defaultAdminURL+")")
	hostMode := fs.Bool("host", false, "trace the host kernel's TCP (tracepoints; needs root) instead of a synack")
	var o traceOpts
	fs.BoolVar(&o.ladder, "ladder", false, "with --host: draw the connections' transitions as the live ladder")
	fs.IntVar(&o.backlog, "backlog", 0, "first show the last `N` recorded events that match")
	fs.IntVar(&o.count, "count", 0, "stop after `N` events (0: until interrupted)")
	fs.BoolVar(&o.json, "json", false, "print the events as JSON lines")
	fs.BoolVar(&o.absolute, "absolute", false, "print absolute sequence numbers")
	noColor := fs.Bool("no-color", false, "no colour even on a terminal (so does a non-empty NO_COLOR)")
	// Flags may come after filter words.
	var words []string
	for {
		if status, done := parseFlags(fs, args); done {
			return status
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		words = append(words, args[0])
		args = args[1:]
	}
	var err error
	if o.filter, err = admin.ParseTraceFilter(words); err != nil {
		fmt.Fprintf(os.Stderr, "synack trace: filter: %v\n", err)
		return 2
	}
	o.color = !o.json && colorOn(os.Stdout, *noColor)
	o.width = termWidth(os.Stdout)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *hostMode {
		err = followHost(ctx, o, os.Stdout, os.Stderr)
	} else {
		err = followTrace(ctx, adminBase(*base), o, os.Stdout)
	}
	switch {
	case err == nil, ctx.Err() != nil:
		return 0
	default:
		fmt.Fprintf(os.Stderr, "synack trace: %v\n", err)
		return 1
	}
}

// followTrace reads base's /api/trace and prints it to w until ctx ends,
// the server ends the stream, or o.count events were printed.
func followTrace(ctx context.Context, base string, o traceOpts, w io.Writer) error {
	q := o.filter.Query()
	if o.backlog > 0 {
		if q != "" {
			q += "&"
		}
		q += "backlog=" + strconv.Itoa(o.backlog)
	}
	u := base + "/api/trace"
	if q != "" {
		u += "?" + q
	}
	if _, err := url.Parse(u); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("%w (is `synack serve --admin ADDR` running there?)", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s: %s: %s", u, resp.Status, strings.TrimSpace(string(b)))
	}
	// With --json stdout carries the server's records and nothing else,
	// one JSON object a line, so it can be piped into jq.
	var ll *ladder.Ladder
	if !o.json {
		ll = ladder.NewLive(w)
		ll.Color, ll.Absolute, ll.Width = o.color, o.absolute, o.width
		ll.Header()
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		if o.json {
			fmt.Fprintf(w, "%s\n", sc.Bytes())
		} else {
			var rec admin.TraceRecord
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				return fmt.Errorf("reading the trace: %w", err)
			}
			if rec.Kind == admin.TraceDropped {
				ll.Dropped(rec.Dropped)
			} else {
				ll.Trace(rec.Event())
			}
		}
		if n++; o.count > 0 && n >= o.count {
			return nil
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if !o.json {
		ll.Remark("(the server ended the trace: the stack closed)")
	}
	return nil
}

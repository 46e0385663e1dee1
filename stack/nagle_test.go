package stack

import (
	"io"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/synack/synack/link/memlink"
	"github.com/synack/synack/tcp"
)

// Nagle's algorithm (RFC 9293 3.7.4) is off on a stack's connections unless
// the Options ask for it (tcp.Config.Nagle), as Go's net package sets
// TCP_NODELAY; SetNoDelay changes it per connection (MUST-17). Two one-byte
// writes in a row on a path with a 20 ms round trip: with Nagle off both go
// at once; with it on, the second waits for the first's ACK.
func TestNagleDefault(t *testing.T) {
	for _, tt := range []struct {
		name    string
		opts    Options
		noDelay *bool // SetNoDelay on the client before writing, if set
		atOnce  int   // data segments the client sends before any ACK can arrive
	}{
		{name: "zero Options: off", opts: Options{}, atOnce: 2},
		{name: "TCP.Nagle: on", opts: Options{TCP: tcp.Config{Nagle: true}}, atOnce: 1},
		{name: "zero Options, SetNoDelay(false): on", opts: Options{}, noDelay: new(false), atOnce: 1},
		{name: "TCP.Nagle, SetNoDelay(true): off", opts: Options{TCP: tcp.Config{Nagle: true}}, noDelay: new(true), atOnce: 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var data atomic.Int32 // the client's segments with payload
				tt.opts.Trace = func(ev TraceEvent) {
					if ev.Kind == TraceSent && len(ev.Segment.Payload) > 0 {
						data.Add(1)
					}
				}
				imp := memlink.Impairments{Delay: 10 * time.Millisecond}
				p := newPair(t, pairOpts{link: memlink.Config{AB: imp, BA: imp}, a: tt.opts})
				client, server := p.connect(t, 80)
				synctest.Wait() // the handshake's last ACK is in
				if tt.noDelay != nil {
					if err := client.SetNoDelay(*tt.noDelay); err != nil {
						t.Fatal(err)
					}
				}
				for _, b := range []string{"a", "b"} {
					if _, err := client.Write([]byte(b)); err != nil {
						t.Fatal(err)
					}
				}
				synctest.Wait() // no time has passed: nothing was acknowledged yet
				if got := int(data.Load()); got != tt.atOnce {
					t.Errorf("data segments sent before the first ACK: %d, want %d", got, tt.atOnce)
				}
				buf := make([]byte, 2)
				if _, err := io.ReadFull(server, buf); err != nil || string(buf) != "ab" {
					t.Errorf("server read %q, %v; want \"ab\"", buf, err)
				}
			})
		})
	}
}

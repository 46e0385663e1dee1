package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/synack/synack/stack"
)

// defaultUDPFlows is --max-udp-flows's default: each flow holds a host
// socket and a goroutine with a 64 KiB buffer.
const defaultUDPFlows = 1024

// udpRelay relays what the stack's UDP forwarder receives. A flow is a
// client address and a destination; each gets a host socket connected to
// the destination (dialed as TCP's are: --out-netns, --out-iface), whose
// replies go back to the client from the destination's address. A flow
// ends after --udp-timeout with nothing in either direction; beyond
// --max-udp-flows, datagrams of new flows are dropped.
type udpRelay struct {
	f       *stack.UDPForwarder
	dial    func(ctx context.Context, network, addr string) (net.Conn, error)
	timeout time.Duration
	max     int
	verbose bool

	mu     sync.Mutex
	closed bool
	flows  map[udpFlowKey]*udpFlow
	wg     sync.WaitGroup
}

type udpFlowKey struct{ client, dst netip.AddrPort }

type udpFlow struct {
	c    net.Conn
	mu   sync.Mutex
	last time.Time // the last datagram either way
}

func (fl *udpFlow) touch() {
	fl.mu.Lock()
	fl.last = time.Now()
	fl.mu.Unlock()
}

func (fl *udpFlow) idleSince() time.Time {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	return fl.last
}

// serve reads the forwarder until it is closed.
func (u *udpRelay) serve() {
	buf := make([]byte, 65535)
	for {
		n, from, to, err := u.f.ReadFrom(buf)
		if err != nil {
			return
		}
		fl := u.flow(from, to)
		if fl == nil {
			continue
		}
		fl.touch()
		fl.c.Write(buf[:n]) // a datagram lost on the way is UDP's to lose
	}
}

// flow returns the flow of client and dst, making it if there is room.
func (u *udpRelay) flow(client, dst netip.AddrPort) *udpFlow {
	k := udpFlowKey{client, dst}
	u.mu.Lock()
	if fl := u.flows[k]; fl != nil || u.closed || len(u.flows) >= u.max {
		u.mu.Unlock()
		return fl
	}
	u.mu.Unlock()
	// Connecting a UDP socket sends nothing: it does not wait on the
	// destination, only on the namespace switch.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	c, err := u.dial(ctx, "udp", dst.String())
	cancel()
	if err != nil {
		if u.verbose {
			fmt.Fprintf(os.Stderr, "synack forward: udp %v -> %v: %v\n", client, dst, err)
		}
		return nil
	}
	fl := &udpFlow{c: c, last: time.Now()}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		c.Close()
		return nil
	}
	u.flows[k] = fl
	u.wg.Add(1)
	go u.back(k, fl)
	if u.verbose {
		fmt.Fprintf(os.Stderr, "synack forward: udp %v -> %v: relaying from %v\n", client, dst, c.LocalAddr())
	}
	return fl
}

// back sends the destination's replies to the client until the flow has
// been idle for the timeout, or is closed.
func (u *udpRelay) back(k udpFlowKey, fl *udpFlow) {
	defer u.wg.Done()
	defer func() {
		u.mu.Lock()
		if u.flows[k] == fl {
			delete(u.flows, k)
		}
		u.mu.Unlock()
		fl.c.Close()
	}()
	buf := make([]byte, 65535)
	for {
		fl.c.SetReadDeadline(fl.idleSince().Add(u.timeout))
		n, err := fl.c.Read(buf)
		if err != nil {
			var ne net.Error
			switch {
			case errors.As(err, &ne) && ne.Timeout():
				if time.Since(fl.idleSince()) >= u.timeout {
					return
				}
			case errors.Is(err, syscall.ECONNREFUSED):
				// ICMP port unreachable from the destination: the
				// client's datagrams were lost; it will time out or
				// retry, as it would without us.
			default:
				return
			}
			continue
		}
		fl.touch()
		u.f.WriteFrom(buf[:n], k.dst, k.client)
	}
}

// shutdown closes the flows and waits for their goroutines.
func (u *udpRelay) shutdown() {
	u.mu.Lock()
	u.closed = true
	for _, fl := range u.flows {
		fl.c.Close()
	}
	u.mu.Unlock()
	u.wg.Wait()
}

package clock_test

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/synack/synack/clock"
	"github.com/synack/synack/link/memlink"
	"github.com/synack/synack/stack"
	"github.com/synack/synack/tcp"
)

// Two stacks on an in-memory link with 20 ms of delay each way, under a
// virtual clock: a request, an echo, both closes and the client's 2MSL
// TIME-WAIT run to completion without waiting in real time. The same code
// with clock.Real() (or nil) would take two minutes.
func ExampleVirtual() {
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	v := clock.NewVirtual(start)
	delay := memlink.Impairments{Delay: 20 * time.Millisecond}
	ea, eb := memlink.Pipe(memlink.Config{Clock: v, Seed: 1, AB: delay, BA: delay})
	client := stack.New(stack.Options{Clock: v})
	server := stack.New(stack.Options{Clock: v})
	defer client.Close()
	defer server.Close()
	addrC, addrS := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2")
	if _, err := client.AddLink(ea, netip.PrefixFrom(addrC, 24)); err != nil {
		panic(err)
	}
	if _, err := server.AddLink(eb, netip.PrefixFrom(addrS, 24)); err != nil {
		panic(err)
	}

	err := v.Run(func() {
		l, err := server.ListenTCP(netip.AddrPortFrom(addrS, 7), 0)
		if err != nil {
			panic(err)
		}
		// The server is a participant: v.Go, not go, so that the clock
		// knows when it is idle.
		v.Go(func() {
			s, err := l.AcceptTCP()
			if err != nil {
				return
			}
			io.Copy(s, s)
			s.Close()
		})
		c, err := client.DialTCP(context.Background(), netip.AddrPortFrom(addrS, 7))
		if err != nil {
			panic(err)
		}
		sent := v.Now()
		c.Write([]byte("hello"))
		c.CloseWrite()
		got, _ := io.ReadAll(c)
		fmt.Printf("echo %q after %v\n", got, v.Now().Sub(sent))
		c.Close()
		l.Close()
		v.Sleep(2*tcp.DefaultMSL + time.Second)
		fmt.Println("connections left:", len(client.Connections())+len(server.Connections()))
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("virtual time passed more than 2MSL:", v.Now().Sub(start) > 2*tcp.DefaultMSL)
	// Output:
	// echo "hello" after 40ms
	// connections left: 0
	// virtual time passed more than 2MSL: true
}

package stack_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"

	"github.com/synack/synack/link/memlink"
	"github.com/synack/synack/stack"
)

// Two stacks joined by an in-memory link: an HTTP server on one, a client
// dialing through the other. The README shows this example.
func Example() {
	a, b := memlink.Pipe(memlink.Config{})
	server, client := stack.New(stack.Options{}), stack.New(stack.Options{})
	server.AddLink(b, netip.MustParsePrefix("198.18.0.2/24"))
	client.AddLink(a, netip.MustParsePrefix("198.18.0.1/24"))

	ln, _ := server.Listen(context.Background(), "tcp", "198.18.0.2:80")
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from synack\n")
	}))

	hc := &http.Client{Transport: &http.Transport{DialContext: client.DialContext}}
	resp, err := hc.Get("http://198.18.0.2/")
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	fmt.Print(string(body))

	server.Close()
	client.Close()
	// Output: hello from synack
}

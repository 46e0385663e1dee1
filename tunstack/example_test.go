//go:build linux

package tunstack_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"go/doc"
	"go/parser"
	"go/token"
	"io"
	"log"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/synack/synack/link/tun/nstest"
	"github.com/synack/synack/tunstack"
)

// Example puts a stack on a TUN device and lets the kernel's TCP (Go's
// net package) and synack's talk both ways. It needs root, and creates the
// interface in the network namespace it runs in: run it inside one of your
// own, as `ip netns exec` does for a program (this package's tests run it
// in a throwaway namespace).
func Example() {
	n, err := tunstack.New(tunstack.Config{
		Name: "synack0",
		Addrs: []tunstack.Pair{{
			Host:  netip.MustParsePrefix("198.18.0.1/24"), // the kernel's side
			Stack: netip.MustParseAddr("198.18.0.2"),      // synack's
		}},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer n.Close()
	fmt.Println(n)

	// An echo server on the stack, and the kernel as its client.
	ln, err := n.Stack.Listen(context.Background(), "tcp", "198.18.0.2:7")
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		io.Copy(c, c)
		c.Close()
	}()
	kc, err := net.Dial("tcp", "198.18.0.2:7")
	if err != nil {
		log.Fatal(err)
	}
	io.WriteString(kc, "hello, synack")
	kc.(*net.TCPConn).CloseWrite()
	back, _ := io.ReadAll(kc)
	kc.Close()
	fmt.Printf("the kernel got %q back\n", back)

	// A kernel listener, and the stack as its client.
	kl, err := net.Listen("tcp", "198.18.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer kl.Close()
	go func() {
		c, err := kl.Accept()
		if err != nil {
			return
		}
		io.WriteString(c, "hello, kernel here")
		c.Close()
	}()
	sc, err := n.Stack.DialContext(context.Background(), "tcp", kl.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	got, _ := io.ReadAll(sc)
	sc.Close()
	fmt.Printf("the stack got %q\n", got)
	// Output:
	// synack0, kernel 198.18.0.1/24, stack 198.18.0.2
	// the kernel got "hello, synack" back
	// the stack got "hello, kernel here"
}

// TestMain keeps go test from running Example itself: it would create its
// interface in the host's network namespace. TestExample runs it in a
// namespace of its own and checks its Output comment instead.
func TestMain(m *testing.M) {
	flag.Parse()
	skip := "^Example$"
	if s := flag.Lookup("test.skip").Value.String(); s != "" {
		skip = s + "|" + skip
	}
	flag.Set("test.skip", skip)
	os.Exit(m.Run())
}

// TestExample runs Example inside a throwaway network namespace (skipping
// without root, failing under CI=true) and compares what it prints with
// its Output comment, as go test would.
func TestExample(t *testing.T) {
	want := exampleOutput(t, "example_test.go", "")
	ns := nstest.New(t)

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan string)
	go func() {
		var b bytes.Buffer
		io.Copy(&b, r)
		out <- b.String()
	}()
	stdout := os.Stdout
	os.Stdout = w
	// Run on the namespace's thread: the interface and the kernel's
	// sockets Example makes belong to the namespace.
	func() {
		defer func() { os.Stdout = stdout }()
		ns.Do(Example)
	}()
	w.Close()
	got := <-out
	r.Close()
	if strings.TrimSpace(got) != strings.TrimSpace(want) {
		t.Errorf("Example printed:\n%s\nwant (its Output comment):\n%s", got, want)
	}
	var ifErr error
	ns.Do(func() { _, ifErr = net.InterfaceByName("synack0") })
	if ifErr == nil {
		t.Errorf("synack0 still exists after Example returned")
	}
}

// exampleOutput reads the Output comment of the example named name ("" for
// the package example) in file.
func exampleOutput(t *testing.T, file, name string) string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, file, nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	for _, ex := range doc.Examples(f) {
		if ex.Name == name {
			if ex.Output == "" {
				t.Fatalf("Example%s in %s has no Output comment", name, file)
			}
			return ex.Output
		}
	}
	t.Fatalf("no Example%s in %s", name, file)
	return ""
}

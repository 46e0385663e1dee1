package stack

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// The doors check what ends a call in net.Conn's order: closed first,
// then the deadline, then the call itself (a read side shut down reads
// io.EOF only before its deadline).
func TestDoorChecksInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{})
		c, _ := p.connect(t, 80)
		past := time.Now().Add(-time.Second)
		if err := c.CloseRead(); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("read after CloseRead: %v, want io.EOF", err)
		}
		c.SetDeadline(past)
		_, err := c.Read(make([]byte, 1))
		wantOpError(t, err, "read", os.ErrDeadlineExceeded)
		_, err = c.Write([]byte("x"))
		wantOpError(t, err, "write", os.ErrDeadlineExceeded)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		_, err = c.Read(make([]byte, 1))
		wantOpError(t, err, "read", net.ErrClosed)
		_, err = c.Write([]byte("x"))
		wantOpError(t, err, "write", net.ErrClosed)
		if err := c.SetDeadline(time.Time{}); err == nil {
			t.Error("SetDeadline after Close: no error")
		}

		l, err := p.b.ListenTCP(netip.AddrPortFrom(addrB, 81), 0)
		if err != nil {
			t.Fatal(err)
		}
		l.SetDeadline(past)
		_, err = l.Accept()
		wantOpError(t, err, "accept", os.ErrDeadlineExceeded)
		l.Close()
		_, err = l.Accept()
		wantOpError(t, err, "accept", net.ErrClosed)
	})
}

// TestOneDoor keeps the contract of door.go: the package calls methods of
// a tcp.Conn held in a tcb field only in the places listed here; every
// other call is made in a door's callback, on its argument c, so a call
// that skips settle cannot creep back in.
func TestOneDoor(t *testing.T) {
	allowed := map[string]string{
		"Stack.settle":          "the door's bookkeeping after every call",
		"Stack.clampMSS":        "part of settle",
		"shard.compact":         "part of settle",
		"Stack.settleChild":     "part of settle (a listener's child, under s.lmu)",
		"Stack.accountMemory":   "part of settle",
		"Stack.pushMemoryState": "part of the door (callLocked), before the call",
		"TCPConn.state":         "read-only, lock held",
		"TCPConn.info":          "read-only, lock held",
		// A listener's tcp.Conn stays in LISTEN: it sends nothing and
		// has no timers, so there is nothing to settle.
		"Stack.newListener":    "a listener's LISTEN (listeners and the forwarder)",
		"Listener.closeLocked": "a listener's CLOSE",
		"Stack.Connections":    "read-only, lock held",
	}
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	files := 0
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files++
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			fn := funcName(fd)
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				m, ok := call.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				if x, ok := m.X.(*ast.SelectorExpr); ok && x.Sel.Name == "tcb" {
					if _, ok := allowed[fn]; !ok {
						t.Errorf("%v: %s calls .tcb.%s outside the doors (door.go): use do, doWait or callLocked",
							fset.Position(call.Pos()), fn, m.Sel.Name)
					}
				}
				return true
			})
		}
	}
	if files == 0 {
		t.Fatal("no source files found")
	}
}

// funcName is "Type.Method" for a method, the name for a function.
func funcName(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return fd.Name.Name
	}
	typ := fd.Recv.List[0].Type
	if st, ok := typ.(*ast.StarExpr); ok {
		typ = st.X
	}
	if id, ok := typ.(*ast.Ident); ok {
		return id.Name + "." + fd.Name.Name
	}
	return fd.Name.Name
}

package stack

import (
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

// Peek blocks like Read: woken by data, ended by the read deadline, io.EOF
// after the FIN; and what it returns stays for the next Read.
func TestPeek(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{})
		c, s := p.connect(t, 80)

		c.SetReadDeadline(time.Now().Add(time.Second))
		start := time.Now()
		_, err := c.Peek(make([]byte, 10))
		wantOpError(t, err, "read", os.ErrDeadlineExceeded)
		if d := time.Since(start); d != time.Second {
			t.Errorf("Peek timed out after %v, want 1s", d)
		}
		c.SetReadDeadline(time.Time{})

		go func() {
			time.Sleep(time.Second)
			s.Write([]byte("hello"))
		}()
		buf := make([]byte, 10)
		start = time.Now()
		n, err := c.Peek(buf)
		if n != 5 || err != nil || string(buf[:n]) != "hello" {
			t.Fatalf("blocked Peek = %d, %v, %q; want 5, nil, \"hello\"", n, err, buf[:n])
		}
		if d := time.Since(start); d < time.Second {
			t.Errorf("Peek returned after %v, before the data was sent", d)
		}
		n, err = c.Peek(buf[:3])
		if n != 3 || err != nil || string(buf[:n]) != "hel" {
			t.Fatalf("short Peek = %d, %v, %q; want 3, nil, \"hel\"", n, err, buf[:n])
		}
		if info := c.Info(); info.RecvQueue != 5 {
			t.Errorf("RecvQueue after the peeks = %d, want 5", info.RecvQueue)
		}

		s.Write([]byte(" world"))
		s.Close()
		synctest.Wait()
		got, err := io.ReadAll(c)
		if string(got) != "hello world" || err != nil {
			t.Fatalf("Read after Peek: %q, %v; want \"hello world\", nil", got, err)
		}
		if n, err := c.Peek(buf); n != 0 || err != io.EOF {
			t.Fatalf("Peek after the FIN = %d, %v; want 0, io.EOF", n, err)
		}
		c.Close()
		_, err = c.Peek(buf)
		wantOpError(t, err, "read", net.ErrClosed)
	})
}

// After a reset Peek gives the error Read gives: ECONNRESET.
func TestPeekReset(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{})
		c, s := p.connect(t, 80)
		go func() {
			time.Sleep(time.Second)
			s.SetLinger(0)
			s.Close() // RST
		}()
		_, err := c.Peek(make([]byte, 10))
		wantOpError(t, err, "read", syscall.ECONNRESET)
		_, err = c.Read(make([]byte, 10))
		wantOpError(t, err, "read", syscall.ECONNRESET)
	})
}

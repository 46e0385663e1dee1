package stack

import (
	"bytes"
	"io"
	"testing"
	"testing/synctest"
)

func TestEcho(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{})
		c, s := p.connect(t, 80)
		go func() {
			io.Copy(s, s)
			s.Close()
		}()
		msg := bytes.Repeat([]byte("hello synack "), 100000)
		go c.Write(msg)
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatalf("ReadFull: %v", err)
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("echo differs")
		}
		c.CloseWrite()
		if n, err := c.Read(got); n != 0 || err != io.EOF {
			t.Fatalf("Read after the peer's FIN = %d, %v; want 0, io.EOF", n, err)
		}
		c.Close()
		p.close()
	})
}

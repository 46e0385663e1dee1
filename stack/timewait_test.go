package stack

import (
	"io"
	"testing"
	"testing/synctest"
	"time"
)

// Data that arrived before the peer's FIN is still readable in TIME-WAIT.
// (The core once released the receive buffer on entering TIME-WAIT.)
func TestReadInTimeWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{})
		c, s := p.connect(t, 80)
		c.CloseWrite() // client: FIN-WAIT-1, then FIN-WAIT-2
		synctest.Wait()
		s.Write([]byte("reply")) // server: data, then FIN
		s.Close()
		time.Sleep(time.Millisecond) // client: TIME-WAIT, "reply" unread
		if st := c.State(); st.String() != "TIME-WAIT" {
			t.Fatalf("client in %v, want TIME-WAIT", st)
		}
		got, err := io.ReadAll(c)
		if string(got) != "reply" || err != nil {
			t.Fatalf("client read %q, %v; want \"reply\", nil", got, err)
		}
	})
}

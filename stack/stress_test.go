package stack

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/synack/synack/link/memlink"
	"github.com/synack/synack/tcp"
)

// Many connections at once, each an echo with both closes, over a lossy,
// reordering, duplicating link; everything ends CLOSED.
func TestManyConnsLossy(t *testing.T) {
	for seed := range int64(3) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				imp := memlink.Impairments{Delay: 2 * time.Millisecond, Jitter: time.Millisecond,
					Loss: 0.03, Reorder: 0.03, Duplicate: 0.02}
				p := newPair(t, pairOpts{link: memlink.Config{Seed: seed, AB: imp, BA: imp}})
				l, err := p.b.ListenTCP(netip.AddrPortFrom(addrB, 80), 256)
				if err != nil {
					t.Fatal(err)
				}
				go func() {
					for {
						s, err := l.AcceptTCP()
						if err != nil {
							return
						}
						go func() {
							io.Copy(s, s)
							s.Close()
						}()
					}
				}()
				const n = 100
				errs := make(chan error, n)
				for i := range n {
					go func() {
						c, err := p.a.DialTCP(context.Background(), netip.AddrPortFrom(addrB, 80))
						if err != nil {
							errs <- err
							return
						}
						msg := make([]byte, 1000+i*300)
						rand.NewChaCha8([32]byte{byte(i)}).Read(msg)
						go c.Write(msg)
						got := make([]byte, len(msg))
						if _, err := io.ReadFull(c, got); err != nil {
							errs <- fmt.Errorf("conn %d: %v", i, err)
							return
						}
						if !bytes.Equal(got, msg) {
							errs <- fmt.Errorf("conn %d: echo differs", i)
							return
						}
						c.CloseWrite()
						if _, err := c.Read(got[:1]); err != io.EOF {
							errs <- fmt.Errorf("conn %d: read after FIN: %v", i, err)
							return
						}
						errs <- c.Close()
					}()
				}
				for range n {
					if err := <-errs; err != nil {
						t.Error(err)
					}
				}
				l.Close()
				time.Sleep(2*tcp.DefaultMSL + 10*time.Second)
				if a, b := len(p.a.Connections()), len(p.b.Connections()); a+b != 0 {
					t.Errorf("connections left: client %d (%v), server %d (%v)", a, p.a.StateCounts(), b, p.b.StateCounts())
				}
				ca, cb := p.a.Counters().TCP, p.b.Counters().TCP
				if ca.CurrEstab != 0 || cb.CurrEstab != 0 || ca.ActiveOpens != n || cb.PassiveOpens < n {
					t.Errorf("counters: client %+v\nserver %+v", ca, cb)
				}
			})
		})
	}
}

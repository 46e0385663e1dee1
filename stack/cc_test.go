package stack

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/synack/synack/link/memlink"
	"github.com/synack/synack/tcp"
)

// Issue 11: connections use CUBIC unless told otherwise, and say so.
func TestCongestionControlDefaultCubic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{})
		c, s := p.connect(t, 80)
		go func() {
			io.Copy(io.Discard, s)
			s.Close()
		}()
		if _, err := c.Write(make([]byte, 1<<20)); err != nil {
			t.Fatal(err)
		}
		i := c.Info()
		if i.CongestionControl != "cubic" || s.Info().CongestionControl != "cubic" {
			t.Fatalf("controllers %q and %q, want cubic", i.CongestionControl, s.Info().CongestionControl)
		}
		if i.CWnd <= 0 || i.SSThresh <= 0 || i.MinRTT <= 0 {
			t.Fatalf("Info: cwnd %d ssthresh %d min RTT %v", i.CWnd, i.SSThresh, i.MinRTT)
		}
		if p.a.Options().TCP.CongestionControl != "cubic" {
			t.Fatalf("Options report %q", p.a.Options().TCP.CongestionControl)
		}
		c.Close()
		p.close()
	})
}

// An unknown name is an error (never a silent fallback), naming the
// registered controllers.
func TestCongestionControlUnknown(t *testing.T) {
	s := New(Options{Rand: newSeeded(1), TCP: tcp.Config{CongestionControl: "vegas"}})
	defer s.Close()
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, tcp.ErrUnknownCongestionControl) || !strings.Contains(err.Error(), "cubic, newreno, bbr") {
			t.Errorf("%s: %v, want an unknown congestion control error naming cubic, newreno, bbr", what, err)
		}
	}
	ea, eb := memlink.Pipe(memlink.Config{})
	defer eb.Close()
	_, err := s.AddLink(ea, netip.PrefixFrom(addrA, 24))
	check("AddLink", err)
	ea.Close()
	_, err = s.ListenTCP(netip.AddrPortFrom(addrA, 80), 0)
	check("Listen", err)
	_, err = s.DialTCP(context.Background(), netip.AddrPortFrom(addrB, 80))
	check("Dial", err)

	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{})
		c, _ := p.connect(t, 80)
		check("SetCongestionControl", c.SetCongestionControl("vegas"))
		if got := c.Info().CongestionControl; got != "cubic" {
			t.Errorf("after a failed SetCongestionControl: %q, want cubic still", got)
		}
		if err := c.SetCongestionControl("newreno"); err != nil {
			t.Fatal(err)
		}
		if got := c.Info().CongestionControl; got != "newreno" {
			t.Errorf("after SetCongestionControl(newreno): %q", got)
		}
		p.close()
	})
}

// Options.TCP.CongestionControl picks the controller of every connection.
func TestCongestionControlNewReno(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := Options{TCP: tcp.Config{CongestionControl: "newreno"}}
		p := newPair(t, pairOpts{a: o, b: o})
		c, s := p.connect(t, 80)
		if c.Info().CongestionControl != "newreno" || s.Info().CongestionControl != "newreno" {
			t.Fatalf("controllers %q, %q; want newreno", c.Info().CongestionControl, s.Info().CongestionControl)
		}
		p.close()
	})
}

// Issue 11: "bbr" works as a stack's controller and per connection, and a
// BBR connection is paced through the stack's timer (no goroutine of its
// own): a bulk transfer completes and Info reports the pacing rate.
func TestCongestionControlBBR(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o := Options{TCP: tcp.Config{CongestionControl: "bbr"}}
		p := newPair(t, pairOpts{a: o, b: o})
		c, s := p.connect(t, 80)
		done := make(chan int64)
		go func() {
			n, _ := io.Copy(io.Discard, s)
			s.Close()
			done <- n
		}()
		const size = 4 << 20
		if _, err := c.Write(make([]byte, size)); err != nil {
			t.Fatal(err)
		}
		i := c.Info()
		if i.CongestionControl != "bbr" || s.Info().CongestionControl != "bbr" {
			t.Fatalf("controllers %q, %q; want bbr", i.CongestionControl, s.Info().CongestionControl)
		}
		if i.PacingRate <= 0 || i.DeliveryRate <= 0 {
			t.Fatalf("Info: pacing rate %d, delivery rate %d; want both set", i.PacingRate, i.DeliveryRate)
		}
		c.CloseWrite()
		if n := <-done; n != size {
			t.Fatalf("received %d bytes of %d", n, size)
		}
		c.Close()
		p.close()
	})
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{})
		c, _ := p.connect(t, 80)
		if err := c.SetCongestionControl("bbr"); err != nil {
			t.Fatal(err)
		}
		if got := c.Info().CongestionControl; got != "bbr" {
			t.Fatalf("after SetCongestionControl(bbr): %q", got)
		}
		c.Close()
		p.close()
	})
}

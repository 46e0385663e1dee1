package tcp

import (
	"reflect"
	"testing"
)

// A clean connection, idle or short, never makes the cold counters: a
// handshake, a byte each way and the close move only the ones kept in the
// Conn (stats.go), and Stats reports those.
func TestColdStatsStayUnmade(t *testing.T) {
	cfg := &Config{Nagle: false}
	p := &pipeSink{peer: map[*Conn]*Conn{}}
	A, B := p.handshake(t, cfg)
	for _, c := range []*Conn{A, B} {
		if c.more != nil {
			t.Errorf("%v: the handshake made the cold counters: %+v", c.id, *c.more)
		}
	}
	buf := make([]byte, 4)
	A.Write(epoch, []byte{'x'})
	p.deliver(epoch)
	B.Read(epoch, buf)
	B.Write(epoch, []byte{'y'})
	p.deliver(epoch)
	A.Read(epoch, buf)
	A.Close(epoch)
	p.deliver(epoch)
	B.Close(epoch)
	p.deliver(epoch)
	if A.State() != TimeWait || B.State() != Closed {
		t.Fatalf("close: A %v B %v", A.State(), B.State())
	}
	for _, c := range []*Conn{A, B} {
		if c.more != nil {
			t.Errorf("%v: a clean short connection made the cold counters: %+v", c.id, *c.more)
		}
		s := c.Stats()
		if s.SegsIn == 0 || s.SegsOut == 0 || s.BytesSent != 1 || s.BytesAcked != 1 || s.BytesReceived != 1 {
			t.Errorf("%v: counters %+v, want segments both ways and 1 byte sent, acknowledged and received", c.id, s)
		}
	}
}

// Stats merges the two parts: every field of Stats reads back what was
// counted, wherever it is kept.
func TestStatsMerge(t *testing.T) {
	c := NewConn(&Config{}, Tuple{}, nullSink{})
	c.stats = hotStats{1, 2, 3, 4, 5, 6, 7, 8, 9}
	c.cold().Retransmits = 11
	c.cold().Drops[DropPAWS] = 12
	c.cold().CWRSent = 13
	s := c.Stats()
	h := reflect.ValueOf(c.stats)
	sv := reflect.ValueOf(s)
	for i := range h.NumField() {
		name := h.Type().Field(i).Name
		if got, want := sv.FieldByName(name).Uint(), h.Field(i).Uint(); got != want {
			t.Errorf("Stats().%s = %d, want %d", name, got, want)
		}
	}
	if s.Retransmits != 11 || s.Drops[DropPAWS] != 12 || s.CWRSent != 13 {
		t.Errorf("cold counters lost: %+v", s)
	}
}

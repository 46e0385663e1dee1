package stack

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"golang.org/x/net/dns/dnsmessage"
)

// dnsZone is what the test's DNS server knows: host.test. has one A and
// one AAAA record; big.test. has more A records than a UDP answer may
// carry, so over UDP it answers truncated (TC set, RFC 1035 4.1.1) and
// the resolver must ask again over TCP (RFC 7766 5); anything else is
// NXDOMAIN.
var (
	dnsHostA    = netip.MustParseAddr("198.18.7.1")
	dnsHostAAAA = netip.MustParseAddr("fd00::7:1")
)

func dnsBigA(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 19, byte(i / 256), byte(i % 256)})
}

const dnsBigCount = 100

// dnsAnswer builds the reply to query q; tcp says which transport it
// came over. It returns nil for a message it does not answer.
func dnsAnswer(q []byte, tcp bool) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil {
		return nil
	}
	qs, err := p.AllQuestions()
	if err != nil || len(qs) != 1 {
		return nil
	}
	question := qs[0]
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired}
	name := question.Name.String()
	var a []netip.Addr
	switch {
	case name == "host.test." && question.Type == dnsmessage.TypeA:
		a = []netip.Addr{dnsHostA}
	case name == "host.test." && question.Type == dnsmessage.TypeAAAA:
		a = []netip.Addr{dnsHostAAAA}
	case name == "host.test.":
	case name == "big.test." && question.Type == dnsmessage.TypeA && !tcp:
		rh.Truncated = true
	case name == "big.test." && question.Type == dnsmessage.TypeA:
		for i := range dnsBigCount {
			a = append(a, dnsBigA(i))
		}
	case name == "big.test.":
	default:
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	b.StartQuestions()
	b.Question(question)
	b.StartAnswers()
	for _, x := range a {
		rr := dnsmessage.ResourceHeader{Name: question.Name, Class: dnsmessage.ClassINET, TTL: 60}
		if x.Is4() {
			b.AResource(rr, dnsmessage.AResource{A: x.As4()})
		} else {
			b.AAAAResource(rr, dnsmessage.AAAAResource{AAAA: x.As16()})
		}
	}
	out, err := b.Finish()
	if err != nil {
		return nil
	}
	return out
}

// serveDNS answers queries on u (UDP) and l (TCP, two-byte length
// prefixes, RFC 1035 4.2.2) until they are closed, counting the queries
// that came over TCP.
func serveDNS(u net.PacketConn, l net.Listener, tcpQueries *atomic.Int32) {
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := u.ReadFrom(buf)
			if err != nil {
				return
			}
			if r := dnsAnswer(buf[:n], false); r != nil {
				u.WriteTo(r, from)
			}
		}
	}()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				for {
					var lb [2]byte
					if _, err := io.ReadFull(c, lb[:]); err != nil {
						return
					}
					q := make([]byte, binary.BigEndian.Uint16(lb[:]))
					if _, err := io.ReadFull(c, q); err != nil {
						return
					}
					tcpQueries.Add(1)
					r := dnsAnswer(q, true)
					if r == nil {
						return
					}
					c.Write(binary.BigEndian.AppendUint16(nil, uint16(len(r))))
					c.Write(r)
				}
			}()
		}
	}()
}

// TestResolver: names resolved through a DNS server on the other stack,
// over UDP, over TCP after a truncated answer, NXDOMAIN as the net
// package reports it, and failover from a server that refuses to one
// that answers.
func TestResolver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, pairOpts{})
		u, err := p.b.ListenUDP("udp", netip.AddrPortFrom(netip.Addr{}, 53))
		if err != nil {
			t.Fatal(err)
		}
		defer u.Close()
		l, err := p.b.ListenTCP(netip.AddrPortFrom(netip.Addr{}, 53), 0)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		var tcpQueries atomic.Int32
		serveDNS(u, l, &tcpQueries)
		ctx := context.Background()

		for _, server := range []netip.AddrPort{netip.AddrPortFrom(addrB, 0), netip.AddrPortFrom(addrB6, 53)} {
			r := p.a.Resolver([]netip.AddrPort{server})
			got, err := r.LookupHost(ctx, "host.test")
			if err != nil {
				t.Fatalf("via %v: %v", server, err)
			}
			slices.Sort(got)
			if want := []string{dnsHostA.String(), dnsHostAAAA.String()}; !slices.Equal(got, want) {
				t.Errorf("via %v: LookupHost(host.test) = %v, want %v", server, got, want)
			}
		}

		r := p.a.Resolver([]netip.AddrPort{netip.AddrPortFrom(addrB, 53)})
		big, err := r.LookupNetIP(ctx, "ip4", "big.test.")
		if err != nil {
			t.Fatal(err)
		}
		if len(big) != dnsBigCount || tcpQueries.Load() == 0 {
			t.Errorf("big.test.: %d addresses, %d queries over TCP; want %d addresses, the answer over TCP", len(big), tcpQueries.Load(), dnsBigCount)
		}

		_, err = r.LookupHost(ctx, "nx.test.")
		var de *net.DNSError
		if !errors.As(err, &de) || !de.IsNotFound {
			t.Errorf("nx.test.: %v, want a *net.DNSError with IsNotFound", err)
		}

		// The first server has no socket on its port (ICMP port
		// unreachable, ECONNREFUSED): the resolver's retry goes to the
		// second.
		r = p.a.Resolver([]netip.AddrPort{netip.AddrPortFrom(addrB, 5353), netip.AddrPortFrom(addrB, 53)})
		got, err := r.LookupNetIP(ctx, "ip4", "host.test.")
		if err != nil || len(got) != 1 || got[0] != dnsHostA {
			t.Errorf("failover: %v %v, want [%v]", got, err, dnsHostA)
		}
	})
}

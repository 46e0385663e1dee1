package netstack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/synack/synack/wire"
)

// dataReader is n bytes of a ChaCha8 stream seeded with seed: both ends
// can make it, so a transfer is checked by hash without holding it.
func dataReader(seed uint64, n int64) io.Reader {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	return io.LimitReader(rand.NewChaCha8(s), n)
}

func dataHash(seed uint64, n int64) string {
	h := sha256.New()
	io.Copy(h, dataReader(seed, n))
	return hex.EncodeToString(h.Sum(nil))
}

// dataHandler serves GET /data?n=N&seed=S (N bytes of dataReader) and
// POST /hash (the SHA-256 of the body, in hex).
func dataHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /data", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		seed, _ := strconv.ParseUint(r.URL.Query().Get("seed"), 10, 64)
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		io.Copy(w, dataReader(seed, n))
	})
	mux.HandleFunc("POST /hash", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		if _, err := io.Copy(h, r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		io.WriteString(w, hex.EncodeToString(h.Sum(nil)))
	})
	return mux
}

type dialFunc func(ctx context.Context, network, address string) (net.Conn, error)

func httpClient(dial dialFunc) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: dial, DisableCompression: true}, Timeout: 5 * time.Minute}
}

// httpBothWays downloads and uploads size bytes between a client dialling
// with dial and the server at base, checking both by SHA-256.
func httpBothWays(t *testing.T, c *http.Client, base string, size int64, seed uint64) {
	t.Helper()
	resp, err := c.Get(fmt.Sprintf("%s/data?n=%d&seed=%d", base, size, seed))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	resp.Body.Close()
	if err != nil || n != size {
		t.Fatalf("GET: %d bytes, %v; want %d", n, err, size)
	}
	want := dataHash(seed, size)
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		t.Errorf("GET: SHA-256 %s, want %s", got, want)
	}
	resp, err = c.Post(base+"/hash", "application/octet-stream", dataReader(seed+1, size))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if want := dataHash(seed+1, size); string(body) != want {
		t.Errorf("POST: server's SHA-256 %s, want %s", body, want)
	}
}

func serveHTTP(t *testing.T, l net.Listener) {
	srv := &http.Server{Handler: dataHandler()}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}

// TestHTTP moves 64 MiB each way through the WireGuard tunnel, with
// synack serving and gVisor's netstack as the client, then the other way
// round, every byte checked by SHA-256.
func TestHTTP(t *testing.T) {
	size := int64(64 << 20)
	if testing.Short() {
		size = 4 << 20
	}
	tn := newTunnel(t, 0)
	l, err := tn.sy.ListenTCPAddrPort(netip.AddrPortFrom(syAddr4, 80))
	if err != nil {
		t.Fatal(err)
	}
	serveHTTP(t, l)
	gl, err := tn.gv.ListenTCPAddrPort(netip.AddrPortFrom(gvAddr6, 80))
	if err != nil {
		t.Fatal(err)
	}
	serveHTTP(t, gl)
	t.Run("synack-server", func(t *testing.T) {
		httpBothWays(t, httpClient(tn.gv.DialContext), "http://"+syAddr4.String(), size, 1)
	})
	t.Run("synack-client", func(t *testing.T) {
		httpBothWays(t, httpClient(tn.sy.DialContext), "http://["+gvAddr6.String()+"]", size, 3)
	})
}

// udpEcho answers every datagram on c with itself until c is closed.
func udpEcho(c net.PacketConn) {
	buf := make([]byte, 65536)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return
		}
		c.WriteTo(buf[:n], from)
	}
}

func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2000)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != msg {
		t.Fatalf("echo of %q: %q %v", msg, buf[:n], err)
	}
}

// TestUDPEcho: datagrams through the tunnel to an echo server on the
// other side, both ways, IPv4 and IPv6.
func TestUDPEcho(t *testing.T) {
	tn := newTunnel(t, 0)
	syEcho, err := tn.sy.ListenUDPAddrPort(netip.AddrPortFrom(netip.Addr{}, 7))
	if err != nil {
		t.Fatal(err)
	}
	defer syEcho.Close()
	go udpEcho(syEcho)
	for _, a := range []netip.Addr{gvAddr4, gvAddr6} {
		gvEcho, err := tn.gv.ListenUDPAddrPort(netip.AddrPortFrom(a, 7))
		if err != nil {
			t.Fatal(err)
		}
		defer gvEcho.Close()
		go udpEcho(gvEcho)
	}
	big := string(bytes.Repeat([]byte("u"), 1300))
	for _, a := range []netip.Addr{syAddr4, syAddr6} {
		c, err := tn.gv.DialUDPAddrPort(netip.AddrPort{}, netip.AddrPortFrom(a, 7))
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, c, "to synack at "+a.String())
		roundTrip(t, c, big)
		c.Close()
	}
	for _, a := range []netip.Addr{gvAddr4, gvAddr6} {
		c, err := tn.sy.DialUDPAddrPort(netip.AddrPort{}, netip.AddrPortFrom(a, 7))
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, c, "to gVisor at "+a.String())
		roundTrip(t, c, big)
		c.Close()
		// Through Dial, as a program ported from wireguard-go's package
		// would.
		nc, err := tn.sy.Dial("udp", netip.AddrPortFrom(a, 7).String())
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, nc, "dialled")
		nc.Close()
	}
}

// pingOnce writes an echo request on c and checks the reply it reads.
func pingOnce(t *testing.T, c net.Conn, v6 bool, seq int) {
	t.Helper()
	typ, proto := icmp.Type(ipv4.ICMPTypeEcho), 1
	if v6 {
		typ, proto = ipv6.ICMPTypeEchoRequest, 58
	}
	data := []byte(fmt.Sprintf("gopher burrow %d", seq))
	req, err := (&icmp.Message{Type: typ, Body: &icmp.Echo{ID: 1, Seq: seq, Data: data}}).Marshal(nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	m, err := icmp.ParseMessage(proto, buf[:n])
	if err != nil {
		t.Fatal(err)
	}
	e, ok := m.Body.(*icmp.Echo)
	if !ok || e.Seq != seq || !bytes.Equal(e.Data, data) {
		t.Fatalf("reply %+v, want an echo reply with seq %d and data %q", m, seq, data)
	}
	if (v6 && m.Type != ipv6.ICMPTypeEchoReply) || (!v6 && m.Type != ipv4.ICMPTypeEchoReply) {
		t.Fatalf("reply type %v", m.Type)
	}
}

// TestPing: synack's ping sockets ping gVisor's stack and gVisor's ping
// synack's, through the tunnel, IPv4 and IPv6.
func TestPing(t *testing.T) {
	tn := newTunnel(t, 0)
	for i, a := range []netip.Addr{gvAddr4, gvAddr6} {
		c, err := tn.sy.DialPingAddr(netip.Addr{}, a)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.RemoteAddr().Network(); got != PingAddrFromAddr(a).Network() {
			t.Errorf("RemoteAddr().Network() = %s", got)
		}
		pingOnce(t, c, a.Is6(), 10+i)
		c.Close()
		network := "ping4"
		if a.Is6() {
			network = "ping6"
		}
		nc, err := tn.sy.Dial(network, a.String())
		if err != nil {
			t.Fatal(err)
		}
		pingOnce(t, nc, a.Is6(), 20+i)
		nc.Close()
	}
	// Unconnected, with WriteTo and ReadFrom and PingAddr, as
	// wireguard-go's package is used.
	pc, err := tn.sy.ListenPing(PingAddrFromAddr(syAddr4))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := (&icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{Seq: 5, Data: []byte("x")}}).Marshal(nil)
	if _, err := pc.WriteTo(req, PingAddrFromAddr(gvAddr4)); err != nil {
		t.Fatal(err)
	}
	pc.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 100)
	_, from, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	if pa, ok := from.(*PingAddr); !ok || pa.Addr() != gvAddr4 {
		t.Errorf("reply from %#v, want *PingAddr %v", from, gvAddr4)
	}
	pc.Close()

	for i, a := range []netip.Addr{syAddr4, syAddr6} {
		c, err := tn.gv.DialPingAddr(netip.Addr{}, a)
		if err != nil {
			t.Fatal(err)
		}
		pingOnce(t, c, a.Is6(), 30+i)
		c.Close()
	}
}

// DNS: a tiny authoritative server for the test, served on gVisor's side
// of the tunnel. peer.test. names gVisor's addresses; big.test. has more
// A records than the server puts in a UDP answer (it sets TC, RFC 1035
// 4.1.1, and the resolver asks again over TCP, RFC 7766 5); the rest is
// NXDOMAIN.
const bigCount = 100

func bigAddr(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 19, 0, byte(i)}) }

// dnsAsked records every name the server was asked.
var dnsAsked sync.Map

func dnsAnswer(q []byte, overTCP bool) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil {
		return nil
	}
	question, err := p.Question()
	if err != nil {
		return nil
	}
	dnsAsked.Store(question.Name.String(), true)
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired}
	var addrs []netip.Addr
	switch name, typ := question.Name.String(), question.Type; {
	case name == "peer.test." && typ == dnsmessage.TypeA:
		addrs = []netip.Addr{gvAddr4}
	case name == "peer.test." && typ == dnsmessage.TypeAAAA:
		addrs = []netip.Addr{gvAddr6}
	case name == "big.test." && typ == dnsmessage.TypeA && !overTCP:
		rh.Truncated = true
	case name == "big.test." && typ == dnsmessage.TypeA:
		for i := range bigCount {
			addrs = append(addrs, bigAddr(i))
		}
	case name == "peer.test." || name == "big.test.":
	default:
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	b.StartQuestions()
	b.Question(question)
	b.StartAnswers()
	for _, a := range addrs {
		rr := dnsmessage.ResourceHeader{Name: question.Name, Class: dnsmessage.ClassINET, TTL: 60}
		if a.Is4() {
			b.AResource(rr, dnsmessage.AResource{A: a.As4()})
		} else {
			b.AAAAResource(rr, dnsmessage.AAAAResource{AAAA: a.As16()})
		}
	}
	out, _ := b.Finish()
	return out
}

func serveDNS(u net.PacketConn, l net.Listener) {
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
				var lb [2]byte
				for {
					if _, err := io.ReadFull(c, lb[:]); err != nil {
						return
					}
					q := make([]byte, binary.BigEndian.Uint16(lb[:]))
					if _, err := io.ReadFull(c, q); err != nil {
						return
					}
					r := dnsAnswer(q, true)
					if r == nil {
						return
					}
					c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(r))), r...))
				}
			}()
		}
	}()
}

// TestLookupHost: names resolved by a DNS server on gVisor's side, over
// the tunnel, over UDP and (for a truncated answer) TCP; a name given to
// Dial.
func TestLookupHost(t *testing.T) {
	tn := newTunnel(t, 0)
	u, err := tn.gv.ListenUDPAddrPort(netip.AddrPortFrom(gvAddr4, 53))
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	l, err := tn.gv.ListenTCPAddrPort(netip.AddrPortFrom(gvAddr4, 53))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	serveDNS(u, l)

	got, err := tn.sy.LookupHost("peer.test")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if want := []string{gvAddr4.String(), gvAddr6.String()}; !slices.Equal(got, want) {
		t.Errorf("LookupHost(peer.test) = %v, want %v", got, want)
	}
	got, err = tn.sy.LookupContextHost(context.Background(), "big.test.")
	if err != nil || len(got) != bigCount {
		t.Errorf("big.test.: %d addresses, %v; want %d (answered over TCP)", len(got), err, bigCount)
	}
	if _, err := tn.sy.LookupHost("nx.test."); !isNotFound(err) {
		t.Errorf("nx.test.: %v, want not found", err)
	}
	// A single label is asked as it is, rooted: never with the host's
	// resolv.conf search list appended (that would tell the tunnel's
	// server the names of the host's own networks).
	if _, err := tn.sy.LookupHost("nxlabel"); !isNotFound(err) {
		t.Errorf("nxlabel: %v, want not found", err)
	}
	dnsAsked.Range(func(k, _ any) bool {
		if name := k.(string); strings.HasPrefix(name, "nxlabel.") && name != "nxlabel." {
			t.Errorf("the tunnel's DNS server was asked %q", name)
		}
		return true
	})
	if _, ok := dnsAsked.Load("nxlabel."); !ok {
		t.Errorf("the tunnel's DNS server was not asked nxlabel.")
	}
	if got, err := tn.sy.LookupHost(gvAddr6.String()); err != nil || len(got) != 1 || got[0] != gvAddr6.String() {
		t.Errorf("an address literal: %v %v", got, err)
	}

	// A name given to Dial: an HTTP GET to peer.test over IPv6.
	gl, err := tn.gv.ListenTCPAddrPort(netip.AddrPortFrom(gvAddr6, 80))
	if err != nil {
		t.Fatal(err)
	}
	serveHTTP(t, gl)
	c := httpClient(func(ctx context.Context, _, address string) (net.Conn, error) {
		return tn.sy.DialContext(ctx, "tcp6", address)
	})
	resp, err := c.Get("http://peer.test/data?n=1000&seed=9")
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if n != 1000 {
		t.Errorf("GET by name: %d bytes, want 1000", n)
	}
}

func isNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// TestDialErrors: errors keep the net package's shapes through Net.
func TestDialErrors(t *testing.T) {
	tn := newTunnel(t, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// gVisor answers a SYN to a closed port with RST.
	_, err := tn.sy.DialContextTCPAddrPort(ctx, netip.AddrPortFrom(gvAddr4, 9))
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial a closed port: %v, want ECONNREFUSED", err)
	}
	if _, err := tn.sy.Dial("sctp", "1.2.3.4:5"); err == nil {
		t.Errorf("dial sctp: no error")
	}
	if _, err := tn.sy.Dial("tcp4", "["+gvAddr6.String()+"]:80"); err == nil {
		t.Errorf("tcp4 to an IPv6 address: no error")
	}
}

// echoPacket is an IPv4 ICMP echo request from gvAddr4 to syAddr4.
func echoPacket(seq uint16) []byte {
	m := wire.NewICMPv4Echo(false, 77, seq, []byte("offset test"))
	h := wire.IPv4Header{TTL: 64, Protocol: wire.ProtocolICMP, Src: gvAddr4, Dst: syAddr4}
	b := wire.AppendIPv4(nil, &h, wire.ICMPHeaderLen+len(m.Data))
	return wire.AppendICMPv4(b, &m)
}

// TestDevice: the tun.Device without WireGuard: EventUp once, MTU, batch
// size, Read and Write at an offset, a batch in and a batch out, and
// Close ending a blocked Read.
func TestDevice(t *testing.T) {
	dev, _, err := CreateNetTUN([]netip.Addr{syAddr4}, nil, 1280)
	if err != nil {
		t.Fatal(err)
	}
	if ev := <-dev.Events(); ev != tun.EventUp {
		t.Errorf("first event %v, want EventUp", ev)
	}
	select {
	case ev := <-dev.Events():
		t.Errorf("second event %v", ev)
	default:
	}
	if mtu, err := dev.MTU(); mtu != 1280 || err != nil {
		t.Errorf("MTU %d %v", mtu, err)
	}
	if dev.BatchSize() < 1 {
		t.Errorf("BatchSize %d", dev.BatchSize())
	}

	const offset = 16
	const k = 3
	in := make([][]byte, k+1)
	for i := range k {
		in[i] = append(make([]byte, offset), echoPacket(uint16(i))...)
	}
	in[k] = make([]byte, offset) // empty past the offset: skipped
	if n, err := dev.Write(in, offset); n != len(in) || err != nil {
		t.Fatalf("Write: %d %v", n, err)
	}
	bufs := make([][]byte, dev.BatchSize())
	for i := range bufs {
		bufs[i] = make([]byte, offset+1500)
	}
	sizes := make([]int, len(bufs))
	var seqs []uint16
	for len(seqs) < k {
		n, err := dev.Read(bufs, sizes, offset)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			p, err := wire.ParseIP(bufs[i][offset : offset+sizes[i]])
			if err != nil {
				t.Fatal(err)
			}
			m, err := wire.ParseICMPv4(p.Payload, true)
			if err != nil || m.Type != wire.ICMPv4EchoReply || p.Dst != gvAddr4 {
				t.Fatalf("packet %d: %+v %v, want an echo reply to %v", i, m, err, gvAddr4)
			}
			_, seq := m.Echo()
			seqs = append(seqs, seq)
		}
	}
	if !slices.Equal(seqs, []uint16{0, 1, 2}) {
		t.Errorf("replies %v, want seq 0, 1, 2 in order", seqs)
	}

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := dev.Read(bufs, sizes, offset); !errors.Is(err, os.ErrClosed) {
			t.Errorf("Read across Close: %v, want os.ErrClosed", err)
		}
	}()
	if err := dev.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if _, ok := <-dev.Events(); ok {
		t.Errorf("Events not closed by Close")
	}
	if _, err := dev.Write(in, offset); err == nil {
		t.Errorf("Write after Close: no error")
	}
}

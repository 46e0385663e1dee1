package tcp

import (
	"fmt"
	"testing"
	"time"

	"github.com/synack/synack/seqnum"
	"github.com/synack/synack/wire"
)

// Segment-level tests of ECN (RFC 3168 section 6.1, ecn.go).

const (
	ECE = wire.ECE
	CWR = wire.CWR
)

func withECN(m ECNMode) func(*Config) { return func(c *Config) { c.ECN = m } }

func withCC(name string) func(*Config) { return func(c *Config) { c.CongestionControl = name } }

// wantECN checks the IP ECN field the segment goes out with.
func wantECN(t *testing.T, why string, s Segment, e wire.ECN) {
	t.Helper()
	if s.ECN != e {
		t.Fatalf("%s: %s goes out %v, want %v", why, s.String(), s.ECN, e)
	}
}

// newECNClient is an active open with ECNActive whose peer agrees
// (RFC 3168 6.1.1): ECN-setup SYN, ECN-setup SYN,ACK.
func newECNClient(t *testing.T, mods ...func(*Config)) *tconn {
	t.Helper()
	tc := newTC(t, append([]func(*Config){withECN(ECNActive)}, mods...)...)
	tc.peerWin = 65535
	if err := tc.c.Connect(tc.now); err != nil {
		t.Fatal(err)
	}
	syn := tc.want("ECN-setup SYN", seg{flags: S | ECE | CWR, seq: iss})
	wantECN(t, "a SYN", syn, wire.NotECT)
	tc.in(seg{flags: S | A | ECE, seq: irs, ack: iss + 1, opts: mssOpt(1000)})
	ack := tc.want("ACK of SYN,ACK", seg{flags: A, seq: iss + 1, ack: irs + 1})
	wantECN(t, "a pure ACK", ack, wire.NotECT)
	if !tc.c.Info().ECN {
		t.Fatal("ECN not negotiated")
	}
	return tc
}

// newECNServer is a passive open (default ECNPassive) of a peer's
// ECN-setup SYN.
func newECNServer(t *testing.T, mods ...func(*Config)) *tconn {
	t.Helper()
	tc := newListen(t, mods...)
	tc.in(seg{flags: S | ECE | CWR, seq: irs})
	sa := tc.want("ECN-setup SYN,ACK", seg{flags: S | A | ECE, seq: iss, ack: irs + 1})
	wantECN(t, "a SYN,ACK", sa, wire.NotECT)
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1})
	tc.wantState("handshake done", Established)
	if !tc.c.Info().ECN {
		t.Fatal("ECN not negotiated")
	}
	return tc
}

// pair shuttles the segments of two Conns to each other.
type pairEnd struct {
	c   *Conn
	out []Segment
}

func (p *pairEnd) SendSegment(_ *Conn, s *Segment) {
	cp := *s
	cp.Payload = append([]byte(nil), s.Payload...)
	p.out = append(p.out, cp)
}
func (p *pairEnd) StateChanged(*Conn, Transition) {}

// shuttle delivers what each end sent to the other until both are quiet,
// and returns the SYN and SYN,ACK it saw.
func shuttle(now time.Time, a, b *pairEnd) (syns []Segment) {
	for range 100 {
		if len(a.out) == 0 && len(b.out) == 0 {
			return syns
		}
		for _, e := range [2][2]*pairEnd{{a, b}, {b, a}} {
			from, to := e[0], e[1]
			out := from.out
			from.out = nil
			for i := range out {
				if out[i].Flags&S != 0 {
					syns = append(syns, out[i])
				}
				to.c.HandleSegment(now, &out[i])
			}
		}
	}
	panic("shuttle: no end")
}

// The negotiation matrix of RFC 3168 6.1.1 with Linux's tcp_ecn values
// on both sides, the passive side answering with a TCB, a SYN-queue
// Handshake or a SYN cookie: ECN is in use only when the client asks
// (ECNActive) and the server does not refuse (not ECNOff).
func TestECNNegotiationMatrix(t *testing.T) {
	modes := []ECNMode{ECNOff, ECNActive, ECNPassive}
	for _, cm := range modes {
		for _, sm := range modes {
			for _, path := range []string{"tcb", "handshake", "cookie"} {
				t.Run(fmt.Sprintf("client %v server %v %s", cm, sm, path), func(t *testing.T) {
					want := cm == ECNActive && sm != ECNOff
					ccfg := Config{ISN: FixedISN(iss), ECN: cm}
					scfg := Config{ISN: FixedISN(irs), ECN: sm}
					cid := Tuple{Local: remoteAP, Remote: localAP}
					sid := cid.Reverse()
					client, server := &pairEnd{}, &pairEnd{}
					client.c = NewConn(&ccfg, cid, client)
					now := epoch
					if err := client.c.Connect(now); err != nil {
						t.Fatal(err)
					}
					syn := client.out[0]
					if got := syn.Flags&(ECE|CWR) == ECE|CWR; got != (cm == ECNActive) {
						t.Fatalf("SYN %s: ECN-setup %v, want %v", syn.String(), got, cm == ECNActive)
					}
					switch path {
					case "tcb":
						server.c = NewConn(&scfg, sid, server)
						server.c.Listen(now)
					case "handshake", "cookie":
						client.out = nil
						var sa Segment
						var h Handshake
						if path == "handshake" {
							h = NewHandshake(&scfg, sid, &syn, now)
							sa = h.SynAck(&scfg, sid, now)
						} else {
							sc := NewSynCookies(newFixedRand(3))
							sa = sc.Make(&scfg, sid, &syn, now)
							client.c.HandleSegment(now, &sa)
							ack := client.out[len(client.out)-1]
							var ok bool
							if h, ok = sc.Check(&scfg, sid, &ack, now); !ok {
								t.Fatal("cookie ACK not recognised")
							}
							sa = Segment{} // already delivered
						}
						if h.ECN != (sm != ECNOff && cm == ECNActive) {
							t.Fatalf("Handshake.ECN %v", h.ECN)
						}
						if sa.Flags != 0 {
							client.c.HandleSegment(now, &sa)
						}
						server.c = ResumeSynReceived(&scfg, sid, server, &h, now)
					}
					syns := shuttle(now, client, server)
					if client.c.State() != Established || server.c.State() != Established {
						t.Fatalf("states %v %v", client.c.State(), server.c.State())
					}
					for _, s := range syns {
						if s.Flags&A != 0 && s.Flags&(ECE|CWR) != map[bool]wire.TCPFlags{true: ECE}[want] {
							t.Errorf("SYN,ACK %s: want ECE %v alone", s.String(), want)
						}
					}
					if ci, si := client.c.Info().ECN, server.c.Info().ECN; ci != want || si != want {
						t.Fatalf("ECN client %v server %v, want %v", ci, si, want)
					}
					// Data both ways: ECT(0) exactly when negotiated.
					wantECT := map[bool]wire.ECN{true: wire.ECT0, false: wire.NotECT}[want]
					client.c.Write(now, []byte("hello"))
					server.c.Write(now, []byte("world"))
					for _, e := range []*pairEnd{client, server} {
						for _, s := range e.out {
							if len(s.Payload) > 0 && s.ECN != wantECT {
								t.Errorf("%s goes out %v, want %v", s.String(), s.ECN, wantECT)
							}
						}
					}
				})
			}
		}
	}
}

// A SYN,ACK with both ECE and CWR (a host that reflects the flags) is no
// agreement (RFC 3168 6.1.1); and a retransmitted SYN no longer asks, in
// case a middlebox drops ECN-setup SYNs (6.1.1.1).
func TestECNSetupRules(t *testing.T) {
	tc := newTC(t, withECN(ECNActive))
	tc.c.Connect(tc.now)
	tc.want("ECN-setup SYN", seg{flags: S | ECE | CWR, seq: iss})
	tc.advanceToDeadline()
	tc.want("the retransmitted SYN does not ask", seg{flags: S, seq: iss})
	tc.advanceToDeadline()
	tc.want("nor the next", seg{flags: S, seq: iss})
	tc.in(seg{flags: S | A | ECE, seq: irs, ack: iss + 1})
	tc.want("ACK", seg{flags: A, seq: iss + 1, ack: irs + 1})
	if tc.c.Info().ECN {
		t.Error("ECN negotiated though the SYN that went out last did not ask")
	}

	// FreeBSD's net.inet.tcp.ecn.maxretries: one retransmission still
	// asks.
	tc = newTC(t, withECN(ECNActive), func(c *Config) { c.ECNSynRetries = 1 })
	tc.c.Connect(tc.now)
	tc.want("ECN-setup SYN", seg{flags: S | ECE | CWR, seq: iss})
	tc.advanceToDeadline()
	tc.want("the first retransmission asks too", seg{flags: S | ECE | CWR, seq: iss})
	tc.advanceToDeadline()
	tc.want("the second does not", seg{flags: S, seq: iss})

	tc = newTC(t, withECN(ECNActive))
	tc.c.Connect(tc.now)
	tc.want("ECN-setup SYN", seg{flags: S | ECE | CWR, seq: iss})
	tc.in(seg{flags: S | A | ECE | CWR, seq: irs, ack: iss + 1})
	tc.want("ACK", seg{flags: A, seq: iss + 1, ack: irs + 1})
	if tc.c.Info().ECN {
		t.Error("a SYN,ACK with ECE and CWR taken as agreement")
	}

	// A listener with ECN off answers an ECN-setup SYN with a plain
	// SYN,ACK.
	tc = newListen(t, withECN(ECNOff))
	tc.in(seg{flags: S | ECE | CWR, seq: irs})
	tc.want("plain SYN,ACK", seg{flags: S | A, seq: iss, ack: irs + 1})
}

// RFC 3168 6.1.3: a CE-marked data segment is acknowledged at once with
// ECE, and every ACK after it carries ECE until a segment with CWR
// arrives; a CE on the CWR segment itself keeps the echo going.
func TestECNReceiverEchoUntilCWR(t *testing.T) {
	tc := newECNServer(t)
	d := payload(100, 'a')
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1, data: d, ecn: wire.CE})
	tc.want("CE is acknowledged at once, with ECE", seg{flags: A | ECE, seq: iss + 1, ack: irs + 101})
	tc.in(seg{flags: A, seq: irs + 101, ack: iss + 1, data: d, ecn: wire.ECT0})
	tc.in(seg{flags: A, seq: irs + 201, ack: iss + 1, data: d, ecn: wire.ECT0})
	tc.advanceToDeadline()
	tc.want("unmarked data: still ECE", seg{flags: A | ECE, seq: iss + 1, ack: irs + 301})
	// Our own data carries the echo too, and is ECT(0).
	tc.write([]byte("x"))
	out := tc.want("data with the echo", seg{flags: A | P | ECE, seq: iss + 1, ack: irs + 301, len: 1})
	wantECN(t, "new data", out, wire.ECT0)
	tc.in(seg{flags: A | CWR, seq: irs + 301, ack: iss + 2, data: d, ecn: wire.CE})
	tc.want("CWR and CE together: the echo goes on", seg{flags: A | ECE, seq: iss + 2, ack: irs + 401})
	tc.in(seg{flags: A | CWR, seq: irs + 401, ack: iss + 2, data: d, ecn: wire.ECT0})
	tc.in(seg{flags: A, seq: irs + 501, ack: iss + 2, data: d, ecn: wire.ECT0})
	tc.advanceToDeadline()
	tc.want("after CWR no ECE", seg{flags: A, seq: iss + 2, ack: irs + 601})
	if st := tc.c.Stats(); st.CEReceived != 2 {
		t.Errorf("CEReceived %d, want 2", st.CEReceived)
	}

	// CE on a segment outside the window is ignored (RFC 3168 6.1.5).
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 2, data: d, ecn: wire.CE})
	tc.want("old duplicate: plain ACK", seg{flags: A, seq: iss + 2, ack: irs + 601})
	if st := tc.c.Stats(); st.CEReceived != 2 {
		t.Errorf("CEReceived %d after an old CE segment, want 2", st.CEReceived)
	}
}

// Without ECN negotiated a CE mark changes nothing and nothing is ECT.
func TestECNNotNegotiatedIgnoresCE(t *testing.T) {
	tc := newEstablished(t)
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1, data: payload(100, 'a'), ecn: wire.CE})
	tc.advanceToDeadline()
	tc.want("delayed ACK, no ECE", seg{flags: A, seq: iss + 1, ack: irs + 101})
	tc.write([]byte("x"))
	out := tc.want("data", seg{flags: A | P, seq: iss + 1, ack: irs + 101, len: 1})
	wantECN(t, "data without ECN", out, wire.NotECT)
}

// RFC 3168 6.1.2: an ECE halves the window once per window of data, the
// next new data segment carries CWR, and neither retransmissions (6.1.5)
// nor pure ACKs (6.1.4) nor window probes (6.1.6) are ECT.
func TestECNSenderResponse(t *testing.T) {
	for _, cc := range []string{"newreno", "cubic"} {
		t.Run(cc, func(t *testing.T) {
			tc := newECNClient(t, withCC(cc), withNoDelay)
			tc.write(payload(10000, 'a'))
			out := tc.drain()
			if len(out) != 10 {
				t.Fatalf("%d segments in the initial window, want 10", len(out))
			}
			for _, s := range out {
				wantECN(t, "new data", s, wire.ECT0)
				if s.Flags&CWR != 0 {
					t.Fatalf("%s: CWR before any reduction", s.String())
				}
			}
			cwnd0 := tc.c.Info().CWnd
			// The first ACK echoes a mark: one reduction.
			tc.in(seg{flags: A | ECE, seq: irs + 1, ack: iss + 1001})
			i := tc.c.Info()
			flight := 9000 + 1000 // outstanding when the ECE arrived
			want := flight / 2
			if cc == "cubic" {
				want = int(float64(flight)*cubicBeta + 0.5)
			}
			if i.CWnd != want || i.SSThresh != want || i.ECNReductions != 1 || i.ECEReceived != 1 {
				t.Fatalf("after ECE: cwnd %d ssthresh %d reductions %d (cwnd before %d), want cwnd = ssthresh = %d, 1 reduction",
					i.CWnd, i.SSThresh, i.ECNReductions, cwnd0, want)
			}
			if i.Retransmits != 0 || i.Recovering {
				t.Fatalf("ECE retransmitted or entered recovery: %+v", i.Stats)
			}
			// The rest of the window echoes too (the receiver has not
			// seen CWR yet): no further reduction, no growth, and the
			// first new segment the ACKs clock out carries CWR.
			tc.write(payload(6000, 'b'))
			var sent []Segment
			for k := 2; k <= 10; k++ {
				tc.in(seg{flags: A | ECE, seq: irs + 1, ack: iss.Add(seqnum.Size(1 + 1000*k))})
				sent = append(sent, tc.drain()...)
			}
			i = tc.c.Info()
			if i.ECNReductions != 1 || i.CWnd != want || i.ECEReceived != 10 {
				t.Fatalf("within the window: %d reductions, cwnd %d (want 1, %d), %d ECEs", i.ECNReductions, i.CWnd, want, i.ECEReceived)
			}
			if len(sent) == 0 {
				t.Fatal("no new data clocked out by the ACKs")
			}
			for k, s := range sent {
				wantECN(t, "new data after the reduction", s, wire.ECT0)
				if cwr := s.Flags&CWR != 0; cwr != (k == 0) {
					t.Fatalf("segment %d after the reduction %s: CWR %v, want it on the first only", k, s.String(), cwr)
				}
			}
			if i.CWRSent != 1 {
				t.Fatalf("CWRSent %d, want 1", i.CWRSent)
			}
			// An ECE on the ACK of data sent after the reduction is a new
			// congestion signal.
			tc.in(seg{flags: A | ECE, seq: irs + 1, ack: sent[0].Seq + 1000})
			if i = tc.c.Info(); i.ECNReductions != 2 {
				t.Fatalf("ECE for the next window: %d reductions, want 2", i.ECNReductions)
			}
			if !tc.c.ecn.cwr {
				t.Fatal("after the second reduction no CWR is owed")
			}
			tc.drain()

			// A retransmission by timeout is Not-ECT and has no CWR.
			tc.advanceToDeadline()
			rtx := tc.drain()
			if len(rtx) == 0 || rtx[0].Seq != sent[0].Seq+1000 {
				t.Fatalf("timeout: %v, want the retransmission of %d", rtx, sent[0].Seq+1000)
			}
			wantECN(t, "a retransmission", rtx[0], wire.NotECT)
			if rtx[0].Flags&CWR != 0 {
				t.Fatalf("%s: CWR on a retransmission (RFC 3168 6.1.2)", rtx[0].String())
			}
		})
	}
}

// Window probes are Not-ECT (RFC 3168 6.1.6), and so are FINs without
// data and pure ACKs (6.1.4).
func TestECNNotOnProbesOrACKs(t *testing.T) {
	tc := newECNClient(t, withNoDelay)
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1, zeroWin: true})
	tc.write([]byte("abc"))
	tc.wantNothing("zero window")
	tc.advanceToDeadline()
	probe := tc.want("probe", seg{flags: A, seq: iss + 1, ack: irs + 1, data: []byte("a")})
	wantECN(t, "a window probe", probe, wire.NotECT)
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 1, win: 1000})
	out := tc.want("the window opens", seg{flags: A | P, seq: iss + 1, ack: irs + 1, data: []byte("abc")})
	wantECN(t, "data sent again from SND.UNA", out, wire.NotECT) // the probe's byte went out before
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 4, win: 1000})
	tc.in(seg{flags: A, seq: irs + 1, ack: iss + 4, data: payload(10, 'x'), win: 1000})
	tc.advanceToDeadline()
	ack := tc.want("delayed ACK", seg{flags: A, seq: iss + 4, ack: irs + 11})
	wantECN(t, "a pure ACK", ack, wire.NotECT)
	tc.c.Close(tc.now)
	fin := tc.want("FIN", seg{flags: F | A, seq: iss + 4, ack: irs + 11})
	wantECN(t, "a FIN without data", fin, wire.NotECT)
}

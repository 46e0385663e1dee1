#!/usr/bin/env python3
"""Hostile packets for synack over TUN (interop/hostile_test.go).

Runs inside the test's network namespace. It builds packets with scapy and
writes them straight onto the TUN device through a packet socket (so that
no kernel check or fix-up touches them: lying lengths, broken checksums and
bad versions reach synack as written), and reads synack's answers from the
same device. Its source addresses (--attacker4, --attacker6) lie in the
device's subnets but belong to no one, so the kernel neither answers nor
sees synack's replies to them.

The test writes a group's name on stdin; the script runs that group and
prints one JSON line:
  sent      packets written
  expect    {counter: least growth}: where each discarded packet must be
            counted ("IP.InHdrErrors", "Drops.out_of_window"; "A|B": either)
  at_most   {counter: most growth}
  failures  answers the RFCs ask for that did not come, or that came and
            must not have
  notes     what was seen, for the log
Everything random comes from --seed.
"""

import argparse
import json
import random
import select
import socket
import struct
import sys
import time

from scapy.all import (ICMP, IP, IPv6, TCP, UDP, ICMPv6DestUnreach, ICMPv6EchoRequest,
                       ICMPv6PacketTooBig, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment,
                       IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, Raw, fuzz)

ETH_P_ALL, ETH_P_IP, ETH_P_IPV6 = 0x0003, 0x0800, 0x86DD
PACKET_OUTGOING = 4

F, S, R, P, A, U, E, C = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80


def u32(x):
    return x & 0xFFFFFFFF


def csum(b):
    """The Internet checksum (RFC 1071)."""
    if len(b) % 2:
        b += b"\x00"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ip4_checksummed(b):
    """b, an IPv4 packet, with its header checksum computed as written."""
    b = bytearray(b)
    struct.pack_into("!H", b, 10, 0)
    struct.pack_into("!H", b, 10, csum(bytes(b[:(b[0] & 15) * 4])))
    return bytes(b)


def tcp_packet(fam, t):
    """An IP packet carrying the TCP segment t (bytes, header as written)
    with a correct checksum over whatever t holds."""
    t = bytearray(t)
    struct.pack_into("!H", t, 16, 0)
    af = socket.AF_INET6 if fam.v6 else socket.AF_INET
    pseudo = socket.inet_pton(af, fam.attacker) + socket.inet_pton(af, fam.stack)
    pseudo += struct.pack("!IxxxB", len(t), 6) if fam.v6 else struct.pack("!xBH", 6, len(t))
    struct.pack_into("!H", t, 16, csum(pseudo + bytes(t)))
    return fam.ip(**({"nh": 6} if fam.v6 else {"proto": 6})) / Raw(bytes(t))


def fast_tcp(src, dst, sport, dport, seq, ack, flags, window=65535, data=b"", opts=b"", urg=0):
    """An IP packet with a TCP segment, built by hand: scapy takes
    milliseconds a packet, too slow for floods."""
    v6 = ":" in src
    af = socket.AF_INET6 if v6 else socket.AF_INET
    s, d = socket.inet_pton(af, src), socket.inet_pton(af, dst)
    hl = 20 + len(opts)
    t = struct.pack("!HHIIBBHHH", sport, dport, u32(seq), u32(ack), (hl // 4) << 4, flags, window, 0, urg) + opts + data
    pseudo = s + d + (struct.pack("!IxxxB", len(t), 6) if v6 else struct.pack("!xBH", 6, len(t)))
    t = t[:16] + struct.pack("!H", csum(pseudo + t)) + t[18:]
    if v6:
        return struct.pack("!IHBB", 6 << 28, len(t), 6, 64) + s + d + t
    h = struct.pack("!BBHHHBBH", 0x45, 0, 20 + len(t), 0, 0, 64, 6, 0) + s + d
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + t


def encode_opts(opts):
    """TCP options from scapy's (name, value) list, padded to 4 bytes."""
    b = b""
    for k, v in opts:
        if k == "NOP":
            b += b"\x01"
        elif k == "EOL":
            b += b"\x00"
        elif k == "MSS":
            b += struct.pack("!BBH", 2, 4, v)
        elif k == "WScale":
            b += struct.pack("!BBB", 3, 3, v)
        elif k == "SAckOK":
            b += b"\x04\x02"
        elif k == "SAck":
            b += struct.pack("!BB", 5, 2 + 4 * len(v)) + b"".join(struct.pack("!I", x) for x in v)
        elif k == "Timestamp":
            b += struct.pack("!BBII", 8, 10, v[0], v[1])
        else:
            raise ValueError(k)
    return b + b"\x00" * (-len(b) % 4)


class RawSeg:
    """The fields of a received TCP segment, read without scapy (which takes
    milliseconds a packet: too slow for the answers to a flood)."""

    def __init__(self, b):
        v6 = b[0] >> 4 == 6
        if v6:
            af, off, proto = socket.AF_INET6, 40, b[6]
            self.src, self.dst = socket.inet_ntop(af, b[8:24]), socket.inet_ntop(af, b[24:40])
        else:
            af, off, proto = socket.AF_INET, (b[0] & 15) * 4, b[9]
            self.src, self.dst = socket.inet_ntop(af, b[12:16]), socket.inet_ntop(af, b[16:20])
        if proto != 6 or len(b) < off + 20:
            raise ValueError("not TCP")
        (self.sport, self.dport, self.seq, self.ack, hl, self.flags, self.window) = struct.unpack("!HHIIBBH", b[off:off + 16])
        self.opts = b[off + 20:off + (hl >> 4) * 4]
        self.payload_len = len(b) - off - (hl >> 4) * 4

    def has_sack(self):
        i = 0
        while i < len(self.opts):
            k = self.opts[i]
            if k == 0:
                return False
            if k == 1:
                i += 1
                continue
            if k == 5:
                return True
            if i + 1 >= len(self.opts) or self.opts[i + 1] < 2:
                return False
            i += self.opts[i + 1]
        return False


class Report:
    def __init__(self, group):
        self.group = group
        self.expect = {}
        self.at_most = {}
        self.failures = []
        self.notes = []

    def want(self, counter, n):
        self.expect[counter] = self.expect.get(counter, 0) + n

    def most(self, counter, n):
        self.at_most[counter] = self.at_most.get(counter, 0) + n

    def fail(self, msg):
        self.failures.append(msg)

    def check(self, ok, msg):
        if not ok:
            self.fail(msg)
        return ok

    def note(self, msg):
        self.notes.append(msg)


class Link:
    """Packets onto and off the TUN device."""

    def __init__(self, iface):
        self.iface = iface
        self.tx = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
        self.rx = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
        self.rx.bind((iface, ETH_P_ALL))
        self.rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sent = 0
        self.refused = 0
        self.backlog = []  # received, not yet matched

    def send(self, pkt):
        b = bytes(pkt)
        proto = ETH_P_IPV6 if b and b[0] >> 4 == 6 else ETH_P_IP
        try:
            self.tx.sendto(b, (self.iface, proto))
            self.sent += 1
        except OSError:
            self.refused += 1  # the kernel would not send it (an empty packet)

    def _read(self, timeout):
        r, _, _ = select.select([self.rx], [], [], max(timeout, 0))
        if not r:
            return None
        b, addr = self.rx.recvfrom(1 << 16)
        if addr[2] == PACKET_OUTGOING:
            return False  # ours
        try:
            return IPv6(b) if b and b[0] >> 4 == 6 else IP(b)
        except Exception:
            return False

    def recv(self, match, timeout):
        """The first received packet match accepts, or None after timeout."""
        for i, p in enumerate(self.backlog):
            if match(p):
                del self.backlog[i]
                return p
        end = time.time() + timeout
        while True:
            p = self._read(end - time.time())
            if p is None:
                return None
            if p is False:
                continue
            if match(p):
                return p
            self.backlog.append(p)
            if len(self.backlog) > 4096:
                del self.backlog[:2048]

    def collect(self, match, duration):
        """Every received packet match accepts within duration."""
        out = [p for p in self.backlog if match(p)]
        self.backlog = [p for p in self.backlog if not match(p)]
        end = time.time() + duration
        while True:
            p = self._read(end - time.time())
            if p is None:
                return out
            if p is False:
                continue
            if match(p):
                out.append(p)

    def collect_raw(self, match, duration):
        """collect for floods: every TCP segment (a RawSeg) match accepts
        within duration, read without scapy."""
        out = []
        for p in self.backlog:
            try:
                q = RawSeg(bytes(p))
            except ValueError:
                continue
            if match(q):
                out.append(q)
        self.backlog = []
        end = time.time() + duration
        while True:
            r, _, _ = select.select([self.rx], [], [], max(end - time.time(), 0))
            if not r:
                return out
            b, addr = self.rx.recvfrom(1 << 16)
            if addr[2] == PACKET_OUTGOING or not b:
                continue
            try:
                q = RawSeg(b)
            except (ValueError, struct.error, IndexError):
                continue
            if match(q):
                out.append(q)

    def flush(self, duration=0.05):
        self.collect(lambda p: True, duration)
        self.backlog = []


class Fam:
    def __init__(self, v6, stack, attacker):
        self.v6, self.stack, self.attacker = v6, stack, attacker

    def ip(self, **kw):
        if self.v6:
            return IPv6(src=kw.pop("src", self.attacker), dst=kw.pop("dst", self.stack), **kw)
        return IP(src=kw.pop("src", self.attacker), dst=kw.pop("dst", self.stack), **kw)

    def name(self):
        return "IPv6" if self.v6 else "IPv4"


def tcp_of(p):
    return p[TCP] if TCP in p else None


def seg_from(fam, sport, dport=None):
    """A matcher of TCP segments from the stack to fam's attacker port sport."""
    def m(p):
        t = tcp_of(p)
        if t is None or p.dst != fam.attacker or p.src != fam.stack or t.dport != sport:
            return False
        return dport is None or t.sport == dport
    return m


class Peer:
    """One TCP connection from the attacker to the stack, driven by hand."""

    def __init__(self, h, fam, sport, dport=80, ts=False, sack=False, ws=None, mss=1000):
        self.h, self.fam, self.sport, self.dport = h, fam, sport, dport
        self.ts, self.sack, self.ws, self.mss = ts, sack, ws, mss
        self.iss = h.rng.getrandbits(32)
        self.snd_nxt = u32(self.iss + 1)
        self.irs = self.rcv_nxt = None
        self.tsval = 1000
        self.peer_ts = 0
        self.stack_ts = False
        self.window = 65535
        self.got = b""

    def opts(self, extra=None):
        o = []
        if self.ts and self.stack_ts:
            self.tsval += 1
            o.append(("Timestamp", (self.tsval, self.peer_ts)))
        return o + (extra or [])

    def send(self, flags, seq=None, ack=None, data=b"", window=None, options=None, urg=0):
        if isinstance(flags, str):
            flags = sum({"F": F, "S": S, "R": R, "P": P, "A": A, "U": U, "E": E, "C": C}[c] for c in flags)
        b = fast_tcp(self.fam.attacker, self.fam.stack, self.sport, self.dport,
                     self.snd_nxt if seq is None else seq, (self.rcv_nxt or 0) if ack is None else ack,
                     flags, self.window if window is None else window, data,
                     encode_opts(self.opts() if options is None else options), urg)
        self.h.link.send(b)

    def syn(self, options=None):
        o = [("MSS", self.mss)]
        if self.ws is not None:
            o.append(("WScale", self.ws))
        if self.sack:
            o.append(("SAckOK", b""))
        if self.ts:
            o.append(("Timestamp", (self.tsval, 0)))
        self.h.link.send(self.fam.ip() / TCP(sport=self.sport, dport=self.dport, flags="S", seq=self.iss,
                                             window=65535, options=o if options is None else options))
        sa = self.h.link.recv(lambda p: seg_from(self.fam, self.sport, self.dport)(p) and p[TCP].flags & (S | A) == S | A, 1.5)
        if sa is None:
            return None
        self.irs = sa[TCP].seq
        self.rcv_nxt = u32(self.irs + 1)
        for k, v in sa[TCP].options:
            if k == "Timestamp":
                self.stack_ts, self.peer_ts = True, v[0]
        return sa

    def connect(self, options=None):
        sa = self.syn(options)
        if sa is None:
            return None
        self.send("A")
        return sa

    def segs(self, duration, match=None):
        m = seg_from(self.fam, self.sport, self.dport)
        return self.h.link.collect(lambda p: m(p) and (match is None or match(p[TCP])), duration)

    def take(self, t):
        """Takes in-order data of the stack's segment t; reports whether it was new."""
        for k, v in t.options:
            if k == "Timestamp":
                self.peer_ts = v[0]
        data = bytes(t.payload)
        if data and t.seq == self.rcv_nxt:
            self.got += data
            self.rcv_nxt = u32(self.rcv_nxt + len(data))
            return True
        return False

    def write(self, data, **kw):
        for i in range(0, len(data), self.mss):
            chunk = data[i:i + self.mss]
            self.send("PA", data=chunk, **kw)
            self.snd_nxt = u32(self.snd_nxt + len(chunk))

    def read(self, n, timeout=4.0):
        """Reads until n bytes arrived in order (ACKing them), or timeout."""
        end = time.time() + timeout
        m = seg_from(self.fam, self.sport, self.dport)
        while len(self.got) < n and time.time() < end:
            p = self.h.link.recv(m, end - time.time())
            if p is None:
                break
            t = p[TCP]
            if t.flags & R:
                return False
            self.take(t)
            self.send("A")
        return len(self.got) >= n

    def echo(self, n, **kw):
        """Sends n random bytes to the echo service and checks they come back."""
        data = bytes(self.h.rng.getrandbits(8) for _ in range(n))
        start = len(self.got)
        self.write(data, **kw)
        self.read(start + n)
        return self.got[start:start + n] == data

    def rst(self):
        self.send("R", ack=0, options=[])


class Hostile:
    def __init__(self, a):
        self.link = Link(a.iface)
        self.rng = random.Random(a.seed)
        random.seed(a.seed)  # scapy's fuzz() draws from the module's generator
        self.f4 = Fam(False, a.stack4, a.attacker4)
        self.f6 = Fam(True, a.stack6, a.attacker6)
        self.port = 10000

    def ports(self, n=1):
        p = self.port
        self.port += n
        if self.port > 60000:
            self.port = 10000
        return p

    def connect(self, r, fam, **kw):
        peer = Peer(self, fam, self.ports(), **{k: v for k, v in kw.items() if k != "options"})
        if peer.connect(kw.get("options")) is None:
            r.fail("%s: no SYN,ACK from port %d for a plain SYN" % (fam.name(), peer.dport))
            return None
        return peer

    def no_answer(self, r, fam, ports, what, duration=0.4):
        """Fails if the stack answered anything to the attacker's ports."""
        ps = set(ports)
        got = self.link.collect(lambda p: tcp_of(p) is not None and p.dst == fam.attacker and p[TCP].dport in ps, duration)
        r.check(not got, "%s: %d answers to %s (must be dropped silently): %s" % (
            fam.name(), len(got), what, [p[TCP].sprintf("%TCP.sport%>%TCP.dport% %TCP.flags%") for p in got[:5]]))

    def syn_tcp(self, fam, sport, dport=80):
        return TCP(sport=sport, dport=dport, flags="S", seq=self.rng.getrandbits(32), window=65535)

    # ---- groups ----

    def g_ipv4_header(self, r):
        """Broken IPv4 headers (RFC 791 3.1, RFC 1122 3.2.1), each around a SYN to port 80."""
        f = self.f4
        ports = []

        def syn():
            p = self.ports()
            ports.append(p)
            return f.ip() / self.syn_tcp(f, p)

        def raw(b, counter):
            self.link.send(b)
            r.want(counter, 1)

        for k in range(1, 20):  # truncated below the fixed header
            raw(bytes(syn())[:k], "IP.InHdrErrors")
        for ihl in range(0, 5):  # IHL under 5 words
            b = bytearray(bytes(syn()))
            b[0] = 0x40 | ihl
            raw(bytes(b), "IP.InHdrErrors")
        for ihl in (11, 12, 15):  # IHL past the packet's end (40 bytes)
            raw(bytes(f.ip(ihl=ihl) / self.syn_tcp(f, self.ports()))[:40], "IP.InHdrErrors")
        for ihl in (6, 7, 8, 9):  # IHL eating into TCP: options from the TCP header, or TCP broken
            p = IP(bytes(syn()))
            p.ihl, p.chksum = ihl, None
            raw(bytes(p), "IP.InHdrErrors|TCP.InErrs")
        for extra in (1, 20, 1000):  # total length longer than the packet
            p = syn()
            p.len = 40 + extra
            raw(bytes(p), "IP.InHdrErrors")
        for tl in (0, 1, 19):  # total length shorter than the header
            p = syn()
            p.len = tl
            raw(bytes(p), "IP.InHdrErrors")
        for tl in (21, 30, 39):  # total length cutting the TCP header
            p = syn()
            p.len = tl
            raw(bytes(p), "TCP.InErrs")
        for v in (0, 1, 5, 7, 15):  # version
            b = bytearray(bytes(syn()))
            b[0] = v << 4 | 5
            raw(bytes(b), "IP.InHdrErrors")
        for _ in range(5):  # header checksum
            p = syn()
            p.chksum = self.rng.randrange(1, 0xFFFF)
            b = bytes(p)
            if IP(b).chksum == IP(bytes(IP(b))).chksum:
                continue
            raw(b, "IP.InHdrErrors")
        # Options that lie (RFC 791 3.1's option format).
        for opt in (b"\x07\x00\x00\x00", b"\x07\x01\x00\x00", b"\x44\x28\x05\x00", b"\x83\x03\x03\x00", b"\x89\xff\x00\x00",
                    b"\x94\x02\x44\x00"):
            p = f.ip(options=[]) / self.syn_tcp(f, self.ports())
            ports.append(p[TCP].sport)
            b = bytearray(bytes(p))
            words = len(opt) // 4
            b = b[:20] + bytearray(opt) + b[20:]
            b[0] = 0x40 | (5 + words)
            struct.pack_into("!H", b, 2, len(b))
            raw(ip4_checksummed(b), "IP.InHdrErrors")
        self.no_answer(r, f, ports, "malformed IPv4 headers")
        # Martian sources and destinations not ours (RFC 1122 3.2.1.3, 4.2.3.10).
        for src in ("0.0.0.0", "0.1.2.3", "127.0.0.1", "224.0.0.1", "240.0.0.1", "255.255.255.255", "198.18.0.255", f.stack):
            self.link.send(IP(src=src, dst=f.stack) / TCP(sport=80, dport=80, flags="S", seq=self.rng.getrandbits(32)))
            r.want("IP.InAddrErrors", 1)
        for dst in ("198.18.0.77", "198.18.0.255", "255.255.255.255", "224.0.0.1", "127.0.0.1"):
            p = self.ports()
            ports.append(p)
            self.link.send(IP(src=f.attacker, dst=dst) / self.syn_tcp(f, p))
            r.want("IP.InAddrErrors", 1)
        for proto in (253, 255, 0x84):  # protocols we do not speak (SCTP among them)
            self.link.send(f.ip(proto=proto) / Raw(b"x" * 20))
            r.want("IP.InUnknownProtos", 1)
        self.no_answer(r, f, ports, "martian or foreign addresses")
        # Padding after the datagram is the link's (RFC 791: total length
        # rules): the SYN inside must be answered.
        p = self.ports()
        b = bytes(f.ip() / self.syn_tcp(f, p)) + b"\x00" * 10
        self.link.send(b)
        sa = self.link.recv(lambda q: seg_from(f, p)(q) and q[TCP].flags & (S | A) == S | A, 1.5)
        r.check(sa is not None, "IPv4: no SYN,ACK to a SYN followed by 10 bytes of link padding")
        if sa is not None:
            self.link.send(f.ip() / TCP(sport=p, dport=80, flags="R", seq=sa[TCP].ack))

    def g_ipv6_header(self, r):
        """Broken IPv6 headers and extension header chains (RFC 8200)."""
        f = self.f6
        ports = []

        def syn(*ext):
            p = self.ports()
            ports.append(p)
            pkt = f.ip()
            for x in ext:
                pkt = pkt / x
            return pkt / self.syn_tcp(f, p)

        def raw(b, counter):
            self.link.send(b)
            r.want(counter, 1)

        for k in (1, 4, 8, 20, 39):
            raw(bytes(syn())[:k], "IP.InHdrErrors")
        for extra in (1, 100):  # payload length past the packet
            p = syn()
            p.plen = 20 + extra
            raw(bytes(p), "IP.InHdrErrors")
        for plen in (0, 8, 19):  # payload length cutting TCP
            p = syn()
            p.plen = plen
            raw(bytes(p), "TCP.InErrs")
        # Extension headers that run off the end.
        b = bytearray(bytes(syn(IPv6ExtHdrDestOpt())))
        b[41] = 200  # Hdr Ext Len: 1608 bytes
        raw(bytes(b), "IP.InHdrErrors")
        b = bytes(syn(IPv6ExtHdrHopByHop()))[:44]
        b = bytearray(b)
        struct.pack_into("!H", b, 4, 4)
        raw(bytes(b), "IP.InHdrErrors")
        # Hop-by-hop anywhere but first (RFC 8200 4.3, 4.1).
        raw(bytes(syn(IPv6ExtHdrDestOpt(), IPv6ExtHdrHopByHop())), "IP.InHdrErrors")
        # Type 0 routing header with segments left (RFC 5095 3: MUST drop).
        # (The TCP checksum is over our address: a stack that wrongly took
        # the packet as its own would answer it.)
        p = self.ports()
        ports.append(p)
        t = tcp_packet(f, bytes(self.syn_tcp(f, p)))[Raw].load
        raw(bytes(f.ip() / IPv6ExtHdrRouting(type=0, addresses=["fd00:5afe::9"], segleft=1, nh=6) / Raw(t)), "IP.InHdrErrors")
        # A routing header with nothing left to route is ignored (RFC 8200 4.4).
        p = self.ports()
        t = tcp_packet(f, bytes(self.syn_tcp(f, p)))[Raw].load
        self.link.send(f.ip() / IPv6ExtHdrRouting(type=0, addresses=[], segleft=0, nh=6) / Raw(t))
        sa = self.link.recv(lambda q: seg_from(f, p)(q), 1.0)
        if r.check(sa is not None, "IPv6: no SYN,ACK to a SYN behind a routing header with Segments Left 0 (RFC 8200 4.4)"):
            self.link.send(f.ip() / TCP(sport=p, dport=80, flags="R", seq=sa[TCP].ack))
        # No next header (RFC 8200 4.7): nothing to deliver.
        p = f.ip(nh=59) / Raw(bytes(self.syn_tcp(f, self.ports())))
        raw(bytes(p), "IP.InHdrErrors|IP.InUnknownProtos")
        # 253 is an extension header kept for experiments (RFC 3692, RFC 4727).
        raw(bytes(f.ip(nh=253) / Raw(b"y" * 16)), "IP.InHdrErrors|IP.InUnknownProtos")
        self.no_answer(r, f, ports, "malformed IPv6 headers")
        for src in ("::", "::1", "ff02::1", "::ffff:198.18.0.66", f.stack):
            self.link.send(IPv6(src=src, dst=f.stack) / TCP(sport=80, dport=80, flags="S", seq=self.rng.getrandbits(32)))
            r.want("IP.InAddrErrors", 1)
        for dst in ("fd00:5afe::77", "ff02::1", "::1"):
            p = self.ports()
            ports.append(p)
            self.link.send(IPv6(src=f.attacker, dst=dst) / self.syn_tcp(f, p))
            r.want("IP.InAddrErrors", 1)
        self.no_answer(r, f, ports, "martian or foreign addresses")
        # A long chain of valid destination options headers: each is
        # allowed, so the SYN must be answered or, if the stack bounds
        # the chain, counted; it must not be silently lost.
        for n in (3, 30):
            p = self.ports()
            self.link.send(self._chain_pkt(f, n, p))
            sa = self.link.recv(lambda q, p=p: seg_from(f, p)(q), 1.0)
            if sa is not None:
                self.link.send(f.ip() / TCP(sport=p, dport=80, flags="R", seq=sa[TCP].ack))
                r.note("a SYN behind %d destination options headers answered" % n)
            else:
                r.note("a SYN behind %d destination options headers not answered" % n)
                r.want("IP.InHdrErrors|IP.InUnknownProtos", 1)

    def _chain_pkt(self, f, n, port):
        pkt = f.ip()
        for _ in range(n):
            pkt = pkt / IPv6ExtHdrDestOpt()
        return pkt / self.syn_tcp(f, port)

    def g_tcp_header(self, r):
        """Broken TCP headers and options (RFC 9293 3.1), as SYNs to port 80."""
        for f in (self.f4, self.f6):
            ports = []

            def seg(**kw):
                p = self.ports()
                ports.append(p)
                t = self.syn_tcp(f, p)
                for k, v in kw.items():
                    setattr(t, k, v)
                return f.ip() / t

            def raw(b, counter):
                self.link.send(b)
                r.want(counter, 1)

            for off in range(0, 5):  # data offset under 5
                raw(bytes(seg(dataofs=off)), "TCP.InErrs")
            for off in (6, 10, 15):  # past the segment's end
                raw(bytes(seg(dataofs=off)), "TCP.InErrs")
            for k in (0, 1, 12, 19):  # TCP header cut short, lengths consistent
                p = self.ports()
                ports.append(p)
                t = bytes(self.syn_tcp(f, p))[:k]
                raw(bytes(f.ip(**({"nh": 6} if f.v6 else {"proto": 6})) / Raw(t)), "TCP.InErrs")
            for _ in range(4):  # bad checksums
                p = seg()
                right = f.ip().__class__(bytes(p))[TCP].chksum
                p[TCP].chksum = (right + self.rng.randrange(1, 0xFFFF)) & 0xFFFF
                raw(bytes(p), "TCP.InCsumErrors")
            raw(bytes(seg(sport=0)), "TCP.InErrs")
            raw(bytes(seg(dport=0)), "TCP.InErrs")
            # Options that lie about their length (RFC 9293 3.1: a TCP
            # must handle an illegal option length without crashing).
            for opt in (b"\x02\x00\x05\xb4", b"\x02\x01\x05\xb4", b"\x03\x0a\x07\x00", b"\x02\x03\x05\x00",
                        b"\xfe\x00\x00\x00", b"\x01\x01\x01\x08", b"\x05\x0b\x00\x00"):
                p = self.ports()
                ports.append(p)
                t = bytearray(bytes(TCP(sport=p, dport=80, flags="S", seq=self.rng.getrandbits(32), window=65535)))
                t = t[:20] + bytearray(opt) + t[20:]
                t[12] = (5 + len(opt) // 4) << 4
                raw(bytes(tcp_packet(f, t)), "TCP.InErrs")
            self.no_answer(r, f, ports, "malformed TCP headers")

    def g_flags(self, r):
        """Every combination of the eight flags, to LISTEN, to a closed port and to ESTABLISHED (RFC 9293 3.10.7)."""
        f = self.f4
        syns = []
        rsts_wanted = 0
        for flags in range(256):
            p = self.ports()
            seq, ack = self.rng.getrandbits(32), self.rng.getrandbits(32)
            self.link.send(f.ip() / TCP(sport=p, dport=80, flags=flags, seq=seq, ack=ack, window=1024))
            if flags & R:
                r.want("Drops.listen_rst", 1)
            elif flags & A:
                r.want("Drops.listen_ack", 1)
            elif flags & S:
                syns.append((p, flags))
            else:
                r.want("Drops.listen_no_syn", 1)
        got = self.link.collect(lambda q: tcp_of(q) is not None and q.dst == f.attacker and 10000 <= q[TCP].dport, 0.8)
        synacks = {q[TCP].dport for q in got if q[TCP].flags & (S | A) == S | A}
        r.note("LISTEN: %d SYN,ACKs for %d SYNs without ACK or RST (SYN+FIN among them: %d answered)" % (
            len(synacks), len(syns), len([p for p, fl in syns if fl & F and p in synacks])))
        plain = [p for p, fl in syns if not fl & F]
        missing = [p for p in plain if p not in synacks]
        r.check(not missing, "LISTEN: %d SYNs (without FIN) got no SYN,ACK" % len(missing))
        # The half-open connections are left to the SYN,ACK retries.
        # A closed port (RFC 9293 3.10.7.1).
        for flags in range(256):
            p = self.ports()
            self.link.send(f.ip() / TCP(sport=p, dport=81, flags=flags, seq=self.rng.getrandbits(32),
                                        ack=self.rng.getrandbits(32)))
            if not flags & R:
                rsts_wanted += 1
        r.want("TCP.InNoSocket", 256)
        got = self.link.collect(lambda q: tcp_of(q) is not None and q.dst == f.attacker and q[TCP].sport == 81, 0.8)
        bad = [q for q in got if not q[TCP].flags & R]
        r.check(not bad, "closed port: %d answers that are not RSTs" % len(bad))
        r.note("closed port: %d RSTs for %d segments without RST" % (len(got), rsts_wanted))
        # ESTABLISHED: each combination without ACK, at RCV.NXT+1 (in the
        # window, not exact): RST and SYN get challenge ACKs (RFC 5961 3.2,
        # 4.2), the rest are dropped for want of ACK (3.10.7.4 fifth).
        peer = self.connect(r, f)
        if peer is None:
            return
        for flags in range(256):
            if flags & A:
                continue
            peer.send(flags, seq=u32(peer.snd_nxt + 1), ack=0, data=b"z")
            if flags & R:
                r.want("Drops.rst_in_window_challenge", 1)
            elif flags & S:
                r.want("Drops.syn_in_window_challenge", 1)
            else:
                r.want("Drops.no_ack", 1)
        time.sleep(0.2)
        peer.segs(0.2)
        r.check(peer.echo(3000), "ESTABLISHED: the echo broke after 128 segments without ACK")

    def g_options(self, r):
        """Options that lie (RFC 9293 3.7.1, RFC 7323, RFC 2018)."""
        f = self.f4
        for mss in (0, 1, 8, 40):
            peer = Peer(self, f, self.ports(), mss=mss)
            sa = peer.connect()
            if not r.check(sa is not None, "no SYN,ACK for a SYN with MSS %d" % mss):
                continue
            peer.mss = 100  # what we send; the stack sends what it decided
            data = bytes(self.rng.getrandbits(8) for _ in range(3000))
            peer.write(data)
            sizes = []
            end = time.time() + 5
            m = seg_from(f, peer.sport, 80)
            while len(peer.got) < len(data) and time.time() < end:
                q = self.link.recv(m, end - time.time())
                if q is None:
                    break
                n = len(bytes(q[TCP].payload))
                if n:
                    sizes.append(n)
                peer.take(q[TCP])
                peer.send("A")
            r.check(peer.got == data, "MSS %d: echo of 3000 bytes came back wrong or short (%d bytes)" % (mss, len(peer.got)))
            r.check(sizes and max(sizes) >= 64,
                    "MSS %d: the stack's segments carry at most %d bytes (a forged MSS option must not shrink them to nothing)" % (mss, max(sizes or [0])))
            r.note("MSS option %d: stack's segments of %d..%d bytes" % (mss, min(sizes or [0]), max(sizes or [0])))
            peer.rst()
        for ws in (15, 16, 255):
            peer = Peer(self, f, self.ports(), ws=ws)
            sa = peer.connect()
            if not r.check(sa is not None, "no SYN,ACK for a SYN with window scale %d" % ws):
                continue
            peer.window = 1  # << 14 = 16 KiB (RFC 7323 2.3: a shift over 14 is taken as 14)
            peer.send("A")
            r.check(peer.echo(5000), "window scale %d: echo broke" % ws)
            peer.rst()
        # 40 bytes of option soup: unknown kinds with honest lengths must
        # be ignored (RFC 9293 3.1, MUST-6: "ignore without error any TCP
        # option it does not implement").
        for _ in range(12):
            soup = b""
            while len(soup) < 36:
                kind = self.rng.choice([1, 6, 7, 9, 14, 15, 19, 28, 29, 30, 34, 69, 76, 200, 253, 254])
                if kind == 1:
                    soup += b"\x01"
                    continue
                ln = self.rng.randrange(2, min(10, 40 - len(soup)) + 1)
                soup += bytes([kind, ln]) + bytes(self.rng.getrandbits(8) for _ in range(ln - 2))
            soup = (soup + b"\x00" * 40)[:40]
            p = self.ports()
            t = bytearray(bytes(TCP(sport=p, dport=80, flags="S", seq=self.rng.getrandbits(32), window=65535)))
            t = t[:20] + bytearray(soup)
            t[12] = 15 << 4
            self.link.send(tcp_packet(f, t))
            sa = self.link.recv(lambda q, p=p: seg_from(f, p)(q), 1.0)
            if r.check(sa is not None and sa[TCP].flags & (S | A) == S | A,
                       "no SYN,ACK for a SYN with 40 bytes of unknown options %s" % soup.hex()):
                self.link.send(f.ip() / TCP(sport=p, dport=80, flags="R", seq=sa[TCP].ack))
        # SACK blocks outside the window or reversed (RFC 2018 3).
        peer = Peer(self, f, self.ports(), sack=True)
        if r.check(peer.connect() is not None, "no SYN,ACK with SACK permitted"):
            una = peer.rcv_nxt
            for blocks in ([(una + 100000, una + 200000)], [(una + 50, una + 10)], [(una - 100000, una - 50000)],
                           [(una, una)], [(0, 0xFFFFFFFF)], [(una + 1, una + 2)] * 4):
                peer.send("A", options=[("NOP", None), ("NOP", None), ("SAck", tuple(u32(x) for b in blocks for x in b))])
            r.check(peer.echo(4000), "echo broke after lying SACK blocks")
            peer.rst()
        # Timestamps on a connection that did not negotiate them: ignored,
        # the segment processed normally (RFC 7323 3.2).
        peer = Peer(self, f, self.ports())
        if r.check(peer.connect() is not None, "no SYN,ACK"):
            peer.stack_ts = True
            peer.ts = True
            r.check(peer.echo(2000), "echo broke when timestamps came on a connection that did not negotiate them")
            peer.rst()
        # Timestamps negotiated, then a TSval from the past: PAWS (RFC 7323 5.3).
        peer = Peer(self, f, self.ports(), ts=True)
        if r.check(peer.connect() is not None, "no SYN,ACK with timestamps"):
            peer.tsval += 100000
            r.check(peer.echo(1000), "echo broke with timestamps")
            for _ in range(5):
                peer.send("PA", data=b"old", options=[("NOP", None), ("NOP", None), ("Timestamp", (5, peer.peer_ts))])
            r.want("Drops.paws", 5)
            peer.segs(0.1)
            peer.tsval += 10
            r.check(peer.echo(1000), "echo broke after PAWS drops")
            peer.rst()

    def g_blind(self, r):
        """Blind injection into ESTABLISHED (RFC 5961)."""
        for f in (self.f4, self.f6):
            peer = self.connect(r, f)
            if peer is None:
                continue
            far = u32(peer.snd_nxt + 0x40000000)
            for i in range(50):  # RST out of window: dropped silently (RFC 5961 3.2)
                peer.send("R", seq=u32(far + i * 1000), ack=0, options=[])
            r.want("Drops.rst_out_of_window", 50)
            got = peer.segs(0.3)
            r.check(not got, "%s: %d answers to RSTs out of the window (RFC 5961 3.2: drop silently)" % (f.name(), len(got)))
            # RSTs in the window, not at RCV.NXT: challenge ACKs, at most
            # ChallengeACKLimit (100) a second (RFC 5961 3.2, 7).
            start = time.time()
            for i in range(300):
                peer.send("R", seq=u32(peer.snd_nxt + 1 + i), ack=0, options=[])
            took = time.time() - start
            r.want("Drops.rst_in_window_challenge", 300)
            got = peer.segs(0.5)
            acks = [q for q in got if q[TCP].flags & A and not q[TCP].flags & R and q[TCP].ack == peer.snd_nxt]
            limit = 100 * (int(took) + 1)  # ChallengeACKLimit a second, the burst spanning int(took)+1 of them at most
            r.check(1 <= len(acks) <= limit, "%s: %d challenge ACKs for 300 RSTs in the window sent in %.2f s, want 1..%d (RFC 5961 7)" % (f.name(), len(acks), took, limit))
            r.note("%s: %d challenge ACKs for 300 in-window RSTs sent in %.2f s" % (f.name(), len(acks), took))
            time.sleep(1.0)  # the challenge ACK budget refills
            for i in range(30):  # SYNs, in and out of the window: challenge ACK (RFC 5961 4.2)
                peer.send("S", seq=u32(peer.snd_nxt + (i if i % 2 else 0x7000000 + i)), ack=0, options=[])
            # Either name: the SYN beyond the window fails the sequence
            # test first, and is answered with an ACK there (RFC 9293
            # 3.10.7.4 first), which is the challenge ACK's form.
            r.want("Drops.syn_in_window_challenge|Drops.out_of_window", 30)
            got = peer.segs(0.3)
            r.check(len([q for q in got if q[TCP].flags & A]) >= 15, "%s: %d ACKs for 30 SYNs, want one each (RFC 5961 4.2)" % (f.name(), len(got)))
            for i in range(40):  # data out of the window (RFC 9293 3.10.7.4)
                peer.send("PA", seq=u32(peer.snd_nxt + 0x10000000 + i * 100), data=b"evil")
            r.want("Drops.out_of_window", 40)
            for i in range(20):  # data acknowledging what was never sent (RFC 9293 3.10.7.4 fifth)
                peer.send("PA", seq=peer.snd_nxt, ack=u32(peer.rcv_nxt + 1000000 + i), data=b"evil")
            r.want("Drops.ack_unsent", 20)
            for i in range(20):  # data with an ACK too old (RFC 5961 5.2)
                peer.send("PA", seq=peer.snd_nxt, ack=u32(peer.rcv_nxt - 0x20000000 - i), data=b"evil")
            r.want("Drops.ack_too_old", 20)
            peer.segs(0.3)
            r.check(peer.echo(5000), "%s: the echo broke after blind injection" % f.name())
            # The exact RST ends the connection: the numbers above were right.
            peer.send("R", seq=peer.snd_nxt, ack=0, options=[])
            time.sleep(0.1)
            peer.send("PA", data=b"after")
            got = peer.segs(0.3)
            r.check(any(q[TCP].flags & R for q in got), "%s: the connection survived an RST at RCV.NXT (or sent no RST for data after it)" % f.name())

    def g_states(self, r):
        """Injection into SYN-RECEIVED, CLOSE-WAIT/LAST-ACK, FIN-WAIT-2, TIME-WAIT."""
        f = self.f4
        # SYN-RECEIVED: left half open afterwards, for the SYN,ACK retries.
        peer = Peer(self, f, self.ports())
        if r.check(peer.syn() is not None, "no SYN,ACK"):
            peer.send("R", seq=u32(peer.snd_nxt + 0x40000000), ack=0, options=[])
            peer.send("A", ack=u32(peer.rcv_nxt + 5000))  # an ACK not of our SYN: RST (RFC 9293 3.10.7.4 fifth)
            got = peer.segs(0.3, lambda t: t.flags & R)
            r.check(len(got) == 1 and got[0].seq == u32(peer.rcv_nxt + 5000),
                    "SYN-RECEIVED: want one RST with SEQ=SEG.ACK for a bad ACK, got %d" % len(got))
            r.want("Drops.syn_recv_bad_ack|Drops.listen_ack", 1)
        # LAST-ACK: the echo server closes after our FIN.
        peer = self.connect(r, f)
        if peer is not None:
            peer.send("FA")
            peer.snd_nxt = u32(peer.snd_nxt + 1)
            got = peer.segs(0.4)
            fin = [q for q in got if q[TCP].flags & F]
            if r.check(fin, "no FIN from the echo server after ours"):
                peer.rcv_nxt = u32(fin[0][TCP].seq + 1)
                for i in range(10):
                    peer.send("R", seq=u32(peer.snd_nxt + 0x40000000 + i), ack=0, options=[])
                peer.send("PA", data=b"after my FIN")  # text after FIN: ignored (RFC 9293 3.10.7.4 seventh)
                peer.send("S", seq=peer.snd_nxt, options=[])
                r.want("Drops.rst_out_of_window", 10)
                peer.segs(0.2)
                # Left unacknowledged: the FIN's retransmissions end it.
        # FIN-WAIT-2 and TIME-WAIT, with the closer on port 82.
        for final in ("fin_wait_2", "time_wait"):
            peer = Peer(self, f, self.ports(), dport=82)
            if not r.check(peer.connect() is not None, "no SYN,ACK from port 82"):
                continue
            got = peer.segs(0.4)
            for q in got:
                peer.take(q[TCP])
            fin = [q for q in got if q[TCP].flags & F]
            if not r.check(fin and peer.got == b"bye\n", "port 82: want bye and a FIN, got %r" % peer.got):
                continue
            peer.rcv_nxt = u32(fin[0][TCP].seq + len(bytes(fin[0][TCP].payload)) + 1)
            peer.send("A")
            if final == "time_wait":
                peer.send("FA")
                peer.snd_nxt = u32(peer.snd_nxt + 1)
                peer.segs(0.1)
                for _ in range(5):
                    peer.send("R", seq=peer.snd_nxt, ack=0, options=[])  # TIME-WAIT ignores RSTs (RFC 1337)
                r.want("Drops.time_wait_rst", 5)
            else:
                for i in range(5):
                    peer.send("R", seq=u32(peer.snd_nxt + 0x40000000 + i), ack=0, options=[])
                r.want("Drops.rst_out_of_window", 5)
            peer.send("PA", seq=u32(peer.snd_nxt + 0x10000000), data=b"late")
            r.want("Drops.out_of_window", 1)
            peer.segs(0.2)
            # Left alone: TIME-WAIT ends after 2 MSL, FIN-WAIT-2 after FinWait2Timeout.

    def g_syn_sent(self, r):
        """Answers to the stack's own SYN (the test dials port 9 of the
        attacker): bad ACKs, RSTs, a forged ICMP error, then a real one
        (RFC 9293 3.10.7.3, RFC 5961 3.2, RFC 5927, RFC 1122 4.2.3.9)."""
        f = self.f4
        syn = self.link.recv(lambda q: tcp_of(q) is not None and q.src == f.stack and q.dst == f.attacker and
                             q[TCP].dport == 9 and q[TCP].flags & (S | A) == S, 5.0)
        if not r.check(syn is not None, "no SYN from the stack's dial"):
            return
        sp, iss = syn[TCP].sport, syn[TCP].seq

        def send(flags, seq, ack):
            self.link.send(fast_tcp(f.attacker, f.stack, 9, sp, seq, ack, flags))

        def rsts():
            return [q for q in self.link.collect(seg_from(f, 9, sp), 0.3) if q[TCP].flags & R]

        send(A, 1000, iss + 1000)  # an ACK of something never sent: <SEQ=SEG.ACK><CTL=RST>
        got = rsts()
        r.check(len(got) == 1 and got[0][TCP].seq == u32(iss + 1000),
                "SYN-SENT: want one RST with SEQ=SEG.ACK for a bad ACK, got %d" % len(got))
        send(R, 1000, 0)  # an RST without ACK: dropped
        send(R | A, 1000, iss + 5000)  # an RST acknowledging something never sent: dropped
        send(A, 1000, iss + 1)  # the right ACK without SYN: dropped
        send(A | F, 1000, iss + 1)
        r.want("Drops.syn_sent_bad_ack", 2)
        r.want("Drops.syn_sent_rst_no_ack", 1)
        r.want("Drops.syn_sent_no_syn", 2)
        r.check(not rsts(), "SYN-SENT: an RST answered an RST or a segment with an acceptable ACK")
        # A port unreachable quoting a sequence number we never sent is
        # forged (RFC 5927 4.1): the dial goes on.
        quote = bytearray(bytes(syn[IP])[:28])
        struct.pack_into("!I", quote, 24, u32(iss + 77))
        self.link.send(IP(src="198.18.0.1", dst=f.stack) / ICMP(type=3, code=3) / Raw(bytes(quote)))
        again = self.link.recv(lambda q: tcp_of(q) is not None and q.src == f.stack and q[TCP].sport == sp and q[TCP].flags & S, 2.0)
        r.check(again is not None, "SYN-SENT: no SYN retransmitted after a forged port unreachable (the dial was aborted?)")
        # The real one, quoting our SYN: a hard error, the dial fails
        # with ECONNREFUSED (the test checks).
        self.link.send(IP(src="198.18.0.1", dst=f.stack) / ICMP(type=3, code=3) / Raw(bytes(syn[IP])[:28]))
        r.want("ICMP.InErrorsMatched", 1)

    def _frags4(self, f, payload, chunks, ident, proto=6):
        """IPv4 fragments of payload cut at the given (offset, length) in bytes."""
        out = []
        for off, ln in chunks:
            more = off + ln < len(payload)
            out.append(IP(src=f.attacker, dst=f.stack, id=ident, proto=proto, flags="MF" if more else 0,
                          frag=off // 8) / Raw(payload[off:off + ln]))
        return out

    def g_fragments(self, r):
        """Overlapping, tiny, unending IP fragments (RFC 791, 815, 1858, 3128, 5722, 7112, 8200)."""
        f = self.f4
        ports = []

        def synbytes(port, data=b""):
            t = TCP(sport=port, dport=80, flags="S", seq=self.rng.getrandbits(32), window=65535) / Raw(data)
            return bytes((f.ip() / t)[TCP])

        # Positive control: a SYN in two honest fragments is answered.
        p = self.ports()
        for q in self._frags4(f, synbytes(p, b"d" * 40), [(0, 24), (24, 36)], 1):
            self.link.send(q)
        r.want("IP.ReasmOKs", 1)
        sa = self.link.recv(lambda q: seg_from(f, p)(q), 1.0)
        if r.check(sa is not None, "no SYN,ACK to a SYN in two fragments"):
            self.link.send(f.ip() / TCP(sport=p, dport=80, flags="R", seq=sa[TCP].ack))
        # Teardrop: the second fragment inside the first.
        for i in range(20):
            p = self.ports()
            ports.append(p)
            b = synbytes(p, b"t" * 64)
            frags = [IP(src=f.attacker, dst=f.stack, id=100 + i, proto=6, flags="MF", frag=0) / Raw(b[:48]),
                     IP(src=f.attacker, dst=f.stack, id=100 + i, proto=6, frag=3) / Raw(b[24:30])]
            for q in frags:
                self.link.send(q)
        r.want("IP.ReasmFails", 20)
        # The RFC 1858 overlap: a second first fragment, of the same offset
        # and length, rewrites the destination port. Dropped as a duplicate
        # (RFC 5722 erratum 3089, as Linux) or the datagram discarded; the
        # rewritten port must never be seen.
        rewritten = []
        for i in range(10):
            p = self.ports()
            rewritten.append(p)
            b = synbytes(p, b"o" * 40)
            b2 = bytearray(b)
            b2[2:4] = struct.pack("!H", 22)
            self.link.send(IP(src=f.attacker, dst=f.stack, id=200 + i, proto=6, flags="MF", frag=0) / Raw(b[:24]))
            self.link.send(IP(src=f.attacker, dst=f.stack, id=200 + i, proto=6, flags="MF", frag=0) / Raw(bytes(b2[:24])))
            self.link.send(IP(src=f.attacker, dst=f.stack, id=200 + i, proto=6, frag=3) / Raw(b[24:]))
        got = self.link.collect(lambda q: tcp_of(q) is not None and q.dst == f.attacker and q[TCP].dport in rewritten, 0.4)
        r.check(not [q for q in got if q[TCP].sport != 80], "IPv4: an overlapping fragment rewrote a port: answers %s" % [q[TCP].sport for q in got])
        r.note("RFC 1858 overlaps: %d of 10 answered from port 80 (the first copy kept)" % len({q[TCP].dport for q in got}))
        for q in got:
            self.link.send(f.ip() / TCP(sport=q[TCP].dport, dport=80, flags="R", seq=q[TCP].ack))
        # Tiny fragments: 8 bytes each, the second at offset 8 (RFC 3128 4).
        for i in range(10):
            p = self.ports()
            ports.append(p)
            b = synbytes(p)
            for q in self._frags4(f, b, [(o, 8) for o in range(0, len(b), 8)], 300 + i):
                self.link.send(q)
        r.want("IP.ReasmFails", 10)
        # Fragments that break the rules alone: a middle one not a
        # multiple of 8, one past 65535.
        for i in range(10):
            self.link.send(IP(src=f.attacker, dst=f.stack, id=400 + i, proto=6, flags="MF", frag=2) / Raw(b"x" * 13))
            self.link.send(IP(src=f.attacker, dst=f.stack, id=450 + i, proto=6, frag=8190) / Raw(b"x" * 100))
        r.want("IP.ReasmFails", 20)
        # A flood of first fragments that never complete: over the budget,
        # the oldest are evicted.
        for i in range(1500):
            self.link.send(IP(src=f.attacker, dst=f.stack, id=(1000 + i) & 0xFFFF, proto=6, flags="MF", frag=0) / Raw(b"F" * 1000))
        r.want("IP.ReasmReqds", 1500)
        r.want("IP.ReasmFails", 500)
        # IPv6: overlaps, a first fragment without the TCP header (RFC 7112),
        # an atomic fragment (RFC 6946), a nested fragment header.
        g = self.f6
        for i in range(10):
            p = self.ports()
            ports.append(p)
            t = bytes(TCP(sport=p, dport=80, flags="S", seq=self.rng.getrandbits(32)) / Raw(b"v" * 48))
            self.link.send(IPv6(src=g.attacker, dst=g.stack) / IPv6ExtHdrFragment(nh=6, id=7000 + i, m=1, offset=0) / Raw(t[:40]))
            self.link.send(IPv6(src=g.attacker, dst=g.stack) / IPv6ExtHdrFragment(nh=6, id=7000 + i, m=0, offset=2) / Raw(t[16:]))
        r.want("IP.ReasmFails", 10)
        for i in range(10):
            p = self.ports()
            ports.append(p)
            t = bytes(TCP(sport=p, dport=80, flags="S", seq=self.rng.getrandbits(32)) / Raw(b"w" * 48))
            # The first fragment holds 8 bytes of a destination options header only.
            self.link.send(IPv6(src=g.attacker, dst=g.stack) / IPv6ExtHdrFragment(nh=60, id=7100 + i, m=1, offset=0) / Raw(bytes([6, 0, 1, 4, 0, 0, 0, 0])))
            self.link.send(IPv6(src=g.attacker, dst=g.stack) / IPv6ExtHdrFragment(nh=60, id=7100 + i, m=0, offset=1) / Raw(t))
        r.want("IP.ReasmFails", 10)
        for i in range(10):  # nested: a fragment header inside the reassembled packet
            p = self.ports()
            ports.append(p)
            inner = bytes(IPv6ExtHdrFragment(nh=6, id=9, m=0, offset=0)) + bytes(TCP(sport=p, dport=80, flags="S", seq=1))
            self.link.send(IPv6(src=g.attacker, dst=g.stack) / IPv6ExtHdrFragment(nh=44, id=7200 + i, m=1, offset=0) / Raw(inner[:16]))
            self.link.send(IPv6(src=g.attacker, dst=g.stack) / IPv6ExtHdrFragment(nh=44, id=7200 + i, m=0, offset=2) / Raw(inner[16:]))
        r.want("IP.ReasmFails|IP.InHdrErrors", 10)
        for i in range(300):
            self.link.send(IPv6(src=g.attacker, dst=g.stack) / IPv6ExtHdrFragment(nh=6, id=8000 + i, m=1, offset=0) / Raw(b"G" * 1000))
        self.no_answer(r, f, ports, "bad fragments")
        self.no_answer(r, g, ports, "bad fragments", 0.1)
        p = self.ports()
        self.link.send(IPv6(src=g.attacker, dst=g.stack) / IPv6ExtHdrFragment(nh=6, id=9999, m=0, offset=0) /
                       TCP(sport=p, dport=80, flags="S", seq=self.rng.getrandbits(32)))
        sa = self.link.recv(lambda q: seg_from(g, p)(q), 1.0)
        if r.check(sa is not None, "IPv6: no SYN,ACK to a SYN in an atomic fragment (RFC 6946 4)"):
            self.link.send(g.ip() / TCP(sport=p, dport=80, flags="R", seq=sa[TCP].ack))

    def _inflight(self, r, f):
        """A connection whose echo data the stack has sent and we have not acknowledged."""
        peer = self.connect(r, f, mss=1440)
        if peer is None:
            return None, []
        peer.write(bytes(self.rng.getrandbits(8) for _ in range(3000)))
        got = peer.segs(0.4, lambda t: len(bytes(t.payload)) > 0)
        return peer, got

    def g_icmp(self, r):
        """ICMP errors quoting our connections (RFC 5927, RFC 1191, RFC 8201, RFC 1122 4.2.3.9)."""
        f = self.f4
        peer, inflight = self._inflight(r, f)
        if peer is None or not r.check(inflight, "IPv4: no echo data in flight"):
            return
        una = inflight[0][TCP].seq
        quote = bytes(inflight[0][IP])[:28]
        qbad = bytearray(quote)
        struct.pack_into("!I", qbad, 24, u32(una + 1000000))  # a sequence number never sent
        for mtu in (0, 1, 68, 100):
            self.link.send(IP(src="198.18.0.1", dst=f.stack) / ICMP(type=3, code=4, nexthopmtu=mtu) / Raw(bytes(qbad)))
        r.most("ICMP.InErrorsMatched", 0)
        for code in (0, 1, 2, 3):  # net, host, protocol, port unreachable: not for a synchronized connection
            self.link.send(IP(src="198.18.0.1", dst=f.stack) / ICMP(type=3, code=code) / Raw(quote))
        r.most("ICMP.InErrorsMatched", 4)  # soft errors are remembered, not fatal
        for junk in (quote[:20], quote[:24], b"\x45" + b"\x00" * 7, b"\x4f" + quote[1:], b""):
            self.link.send(IP(src="198.18.0.1", dst=f.stack) / ICMP(type=3, code=4, nexthopmtu=576) / Raw(junk))
        r.want("ICMP.InErrors", 3)
        self.link.send(IP(src="198.18.0.1", dst=f.stack) / ICMP(type=3, code=3, chksum=0x1234) / Raw(quote))
        self.link.send(IP(src="198.18.0.1", dst=f.stack, proto=1) / Raw(b"\x03\x03"))
        r.want("ICMP.InErrors", 2)
        # A PMTU of 68 quoting the segment in flight: taken as MinPMTU
        # (552), never as 68 (RFC 1191 with Linux's min_pmtu).
        self.link.send(IP(src="198.18.0.1", dst=f.stack) / ICMP(type=3, code=4, nexthopmtu=68) / Raw(quote))
        r.most("ICMP.InErrorsMatched", 1)
        got = peer.segs(1.5, lambda t: len(bytes(t.payload)) > 0)
        sizes = [len(bytes(q[TCP].payload)) for q in got]
        r.note("IPv4: after a forged PMTU of 68 the stack's segments carry %s bytes" % sorted(set(sizes)))
        r.check(sizes and 400 <= max(sizes) <= 512,
                "IPv4: after a PMTU of 68 quoting data in flight, segments of at most %d bytes, want 512 (MinPMTU 552 less 40)" % max(sizes or [0]))
        for q in got:
            peer.take(q[TCP])
        peer.send("A")
        r.check(peer.read(3000), "IPv4: the echo broke after ICMP errors (%d of 3000 bytes)" % len(peer.got))
        peer.rst()
        # IPv6: a Packet Too Big under 1280 (RFC 8201 4: the floor).
        g = self.f6
        peer, inflight = self._inflight(r, g)
        if peer is None or not r.check(inflight, "IPv6: no echo data in flight"):
            return
        quote = bytes(inflight[0][IPv6])[:48]
        for mtu in (0, 100, 1279):
            self.link.send(IPv6(src="fd00:5afe::1", dst=g.stack) / ICMPv6PacketTooBig(mtu=mtu) / Raw(quote))
        for code in (0, 1, 3, 4):
            self.link.send(IPv6(src="fd00:5afe::1", dst=g.stack) / ICMPv6DestUnreach(code=code) / Raw(quote))
        r.most("ICMP.InErrorsMatched", 7)
        for junk in (quote[:40], quote[:44], b"\x60" + b"\x00" * 3, b""):
            self.link.send(IPv6(src="fd00:5afe::1", dst=g.stack) / ICMPv6PacketTooBig(mtu=1280) / Raw(junk))
        r.want("ICMP.InErrors", 3)
        got = peer.segs(1.5, lambda t: len(bytes(t.payload)) > 0)
        sizes = [len(bytes(q[TCP].payload)) for q in got]
        r.note("IPv6: after forged PTBs of 0..1279 the stack's segments carry %s bytes" % sorted(set(sizes)))
        r.check(sizes and max(sizes) >= 1220,
                "IPv6: after PTBs under 1280, segments of at most %d bytes, want at least 1220 (RFC 8201 4: never below 1280 less 60)" % max(sizes or [0]))
        for q in got:
            peer.take(q[TCP])
        peer.send("A")
        r.check(peer.read(3000), "IPv6: the echo broke after ICMPv6 errors (%d of 3000 bytes)" % len(peer.got))
        # ICMPv6 echo with a bad checksum.
        self.link.send(IPv6(src="fd00:5afe::1", dst=g.stack) / ICMPv6EchoRequest(cksum=0x1111))
        r.want("ICMP.InErrors", 1)
        peer.rst()

    def g_zero_window(self, r):
        """A peer whose window stays shut (RFC 9293 3.8.6.1, RFC 1122 4.2.2.17)."""
        f = self.f4
        peer = self.connect(r, f)
        if peer is None:
            return
        peer.window = 0
        data = bytes(self.rng.getrandbits(8) for _ in range(2000))
        peer.write(data, window=0)
        probes = 0
        end = time.time() + 4
        m = seg_from(f, peer.sport, 80)
        while time.time() < end:
            q = self.link.recv(m, end - time.time())
            if q is None:
                break
            probes += 1
            peer.take(q[TCP])
            peer.send("A", window=0)
        r.note("zero window for 4 s: %d probes (%d bytes taken)" % (probes, len(peer.got)))
        r.check(1 <= probes <= 40, "zero window for 4 s: %d probes, want a few, backing off" % probes)
        peer.window = 65535
        peer.send("A")
        r.check(peer.read(2000), "the echo did not finish when the window opened (%d of 2000)" % len(peer.got))
        r.check(peer.got[:2000] == data, "the echo after a zero window came back wrong")
        peer.rst()
        # Then left shut, with nobody answering the probes: the timers end it.
        peer = self.connect(r, f)
        if peer is not None:
            peer.write(b"q" * 500, window=0)
        # Probes of our own beyond the stack's window, many.
        peer = self.connect(r, f)
        if peer is not None:
            for i in range(100):
                peer.send("A", seq=u32(peer.snd_nxt + 65535 + 1 + i), data=b"p")
            r.want("Drops.out_of_window", 100)
            peer.segs(0.2)
            r.check(peer.echo(1000), "echo broke after probes beyond the window")
            peer.rst()

    def g_lying_acks(self, r):
        """ACKs of data never sent and SACKs of it (RFC 9293 3.10.7.4 fifth, RFC 2018, RFC 6675)."""
        for f in (self.f4, self.f6):
            peer = Peer(self, f, self.ports(), sack=True)
            if not r.check(peer.connect() is not None, "no SYN,ACK"):
                continue
            data = bytes(self.rng.getrandbits(8) for _ in range(6000))
            peer.write(data)
            got = peer.segs(0.4, lambda t: len(bytes(t.payload)) > 0)
            if not r.check(got, "%s: no echo in flight" % f.name()):
                continue
            una = peer.rcv_nxt
            top = max(u32(q[TCP].seq + len(bytes(q[TCP].payload))) for q in got)
            for i in range(30):  # SACKs of data never sent
                peer.send("A", ack=una, options=[("NOP", None), ("NOP", None), ("SAck", (u32(top + 1000 * i), u32(top + 1000 * i + 500)))])
            for i in range(20):  # ACKs of data never sent, without data
                peer.send("A", ack=u32(top + 100000 + i))
            r.want("Drops.ack_unsent", 20)
            for i in range(100):  # a storm of duplicate ACKs SACKing the last byte sent
                peer.send("A", ack=una, options=[("NOP", None), ("NOP", None), ("SAck", (u32(top - 1), u32(top)))])
            for q in got:
                peer.take(q[TCP])
            peer.send("A")
            r.check(peer.read(6000, 6.0), "%s: the echo did not complete after lying ACKs (%d of 6000)" % (f.name(), len(peer.got)))
            r.check(peer.got[:6000] == data, "%s: the echo came back wrong after lying ACKs" % f.name())
            peer.rst()

    def g_wrap(self, r):
        """Sequence numbers across 2**32 (RFC 9293 3.4), and options the connection did not agree on."""
        for f in (self.f4, self.f6):
            peer = Peer(self, f, self.ports())
            peer.iss = 0xFFFFFF00  # our data wraps after 255 bytes
            peer.snd_nxt = u32(peer.iss + 1)
            if not r.check(peer.connect() is not None, "no SYN,ACK for ISS 0xFFFFFF00"):
                continue
            r.check(peer.echo(3000), "%s: the echo broke across the wrap of our sequence numbers" % f.name())
            # SACK blocks on a connection that did not negotiate SACK:
            # ignored (RFC 2018 2: only after SACK-permitted).
            for _ in range(5):
                peer.send("A", options=[("NOP", None), ("NOP", None), ("SAck", (u32(peer.rcv_nxt + 10), u32(peer.rcv_nxt + 20)))])
            r.check(peer.echo(1000), "%s: the echo broke after SACKs on a connection without SACK" % f.name())
            peer.rst()
        # Timestamps negotiated, then a segment without them: RFC 7323 3.2
        # says a receiver SHOULD drop it; Linux takes it. Noted, not judged.
        peer = Peer(self, self.f4, self.ports(), ts=True)
        if r.check(peer.connect() is not None, "no SYN,ACK with timestamps"):
            start = len(peer.got)
            peer.write(b"no timestamps here", options=[])
            peer.read(start + 18, 1.0)
            r.note("a segment without timestamps on a connection with them: %s" % ("taken" if len(peer.got) > start else "dropped"))
            peer.rst()

    def g_urgent(self, r):
        """Urgent pointer games (RFC 9293 3.8.5, RFC 6093: urgent data stays in line)."""
        f = self.f4
        peer = self.connect(r, f)
        if peer is None:
            return
        data = b""
        for urg, flags in ((0, "PAU"), (1, "PAU"), (100, "PAU"), (65535, "PAU"), (50, "PA"), (0, "AU")):
            chunk = bytes(self.rng.getrandbits(8) for _ in range(100)) if flags != "AU" else b""
            peer.send(flags, data=chunk, urg=urg)
            peer.snd_nxt = u32(peer.snd_nxt + len(chunk))
            data += chunk
        r.check(peer.read(len(data)) and peer.got == data, "urgent data did not come back in line, byte for byte (%d of %d)" % (len(peer.got), len(data)))
        peer.send("AU", urg=65535, data=b"")  # URG with a pointer far ahead, no data
        r.check(peer.echo(1000), "echo broke after urgent pointer games")
        peer.rst()

    def g_islands(self, r):
        """Out-of-order islands, one byte each, then the holes filled (RFC 9293 3.10.7.4, RFC 2018)."""
        for f in (self.f4, self.f6):
            peer = Peer(self, f, self.ports(), sack=True)
            if not r.check(peer.connect() is not None, "no SYN,ACK"):
                continue
            n = 8000
            data = bytes(self.rng.getrandbits(8) for _ in range(n))
            base = peer.snd_nxt
            order = list(range(1, n, 2))
            self.rng.shuffle(order)
            for i in order:  # every other byte, shuffled: n/2 islands
                self.link.send(fast_tcp(f.attacker, f.stack, peer.sport, 80, base + i, peer.rcv_nxt, P | A, data=data[i:i + 1]))
            got = self.link.collect_raw(lambda q: q.dst == f.attacker and q.dport == peer.sport, 0.5)
            sacks = [q for q in got if q.has_sack()]
            r.note("%s: %d one-byte islands: %d ACKs back, %d with SACK blocks" % (f.name(), len(order), len(got), len(sacks)))
            r.check(len(got) >= len(order) // 2 and sacks, "%s: %d one-byte islands got %d ACKs, %d with SACK (RFC 5681 4.2: out-of-order data is ACKed at once)" % (
                f.name(), len(order), len(got), len(sacks)))
            # Duplicates of held islands, and overlapping rewrites: the
            # first copy is kept (RFC 9293 3.10.7.4: the data is the same).
            for i in order[:200]:
                self.link.send(fast_tcp(f.attacker, f.stack, peer.sport, 80, base + i, peer.rcv_nxt, P | A, data=data[i:i + 1]))
            self.link.collect_raw(lambda q: q.dst == f.attacker and q.dport == peer.sport, 0.2)
            # The holes, in order, as 1000-byte segments over the islands.
            peer.write(data)
            r.check(peer.read(n, 6.0), "%s: %d of %d bytes echoed after the islands" % (f.name(), len(peer.got), n))
            r.check(peer.got[:n] == data, "%s: the echo after out-of-order islands came back wrong" % f.name())
            peer.rst()
            # And islands left for good, for the stack's timers to end:
            # the test reports what they hold at the group's end.
            peer = Peer(self, f, self.ports(), sack=True)
            if r.check(peer.connect() is not None, "no SYN,ACK"):
                for i in range(1, 8000, 2):
                    self.link.send(fast_tcp(f.attacker, f.stack, peer.sport, 80, peer.snd_nxt + i, peer.rcv_nxt, P | A, data=b"i"))
                self.link.collect_raw(lambda q: q.dst == f.attacker and q.dport == peer.sport, 0.3)

    def g_syn_flood(self, r):
        """SYNs from 150 addresses nobody owns, never completed (RFC 4987)."""
        f = self.f4
        n = 3000
        for i in range(n):
            src = "198.18.0.%d" % (100 + i % 150)
            self.link.send(fast_tcp(src, f.stack, 20000 + i, 80, self.rng.getrandbits(32), 0, S,
                                    opts=b"\x02\x04\x05\xb4\x04\x02\x03\x03\x07\x00\x00\x00"))  # MSS 1460, SACK-permitted, WS 7
        r.want("TCP.PassiveOpens|TCP.SyncookiesSent", n)
        got = self.link.collect_raw(lambda q: q.sport == 80 and q.dst.startswith("198.18.0.") and q.flags & (S | A) == S | A, 1.0)
        answered = len({(q.dst, q.dport) for q in got})
        r.note("%d SYNs: %d answered, %d SYN,ACKs seen within a second" % (n, answered, len(got)))
        r.check(answered >= n * 9 // 10, "%d SYNs: only %d answered" % (n, answered))

    def g_fuzz(self, r):
        """scapy's fuzz(): random fields on packets to the stack (seeded, bounded)."""
        f, g = self.f4, self.f6
        templates = [
            lambda: IP(src=f.attacker, dst=f.stack) / fuzz(TCP(dport=80)),
            lambda: fuzz(IP(src=f.attacker, dst=f.stack, proto=6)) / fuzz(TCP(dport=80)),
            lambda: IP(src=f.attacker, dst=f.stack) / fuzz(TCP(dport=80, options=[("MSS", 1), ("SAckOK", b""), ("WScale", 1), ("Timestamp", (1, 1))])),
            lambda: IPv6(src=g.attacker, dst=g.stack) / fuzz(TCP(dport=80)),
            lambda: fuzz(IPv6(src=g.attacker, dst=g.stack)) / fuzz(TCP(dport=80)),
            lambda: IP(src=f.attacker, dst=f.stack) / fuzz(ICMP()) / fuzz(IP(src=f.stack, dst=f.attacker) / TCP(sport=80)),
            lambda: IPv6(src=g.attacker, dst=g.stack) / fuzz(ICMPv6PacketTooBig()) / IPv6(src=g.stack, dst=g.attacker) / fuzz(TCP(sport=80)),
            lambda: IP(src=f.attacker, dst=f.stack) / fuzz(UDP()),
            lambda: IPv6(src=g.attacker, dst=g.stack) / fuzz(IPv6ExtHdrFragment()) / fuzz(TCP(dport=80)),
            lambda: IP(src=f.attacker, dst=f.stack, flags="MF", id=self.rng.getrandbits(16)) / fuzz(TCP(dport=80)),
        ]
        n = 0
        for i in range(2000):
            t = templates[i % len(templates)]
            try:
                self.link.send(t())
                n += 1
            except Exception as e:  # a field scapy cannot encode
                r.note("template %d: %s" % (i % len(templates), e))
        # And on live connections: the 4-tuple right, everything else random.
        for fam in (f, g):
            peer = self.connect(r, fam)
            if peer is None:
                continue
            for _ in range(300):
                t = fuzz(TCP(sport=peer.sport, dport=80))
                self.link.send(fam.ip() / t)
            peer.segs(0.2)
        r.note("%d fuzzed packets" % n)
        r.want("IP.InReceives", n)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iface", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--stack4", required=True)
    ap.add_argument("--attacker4", required=True)
    ap.add_argument("--stack6", required=True)
    ap.add_argument("--attacker6", required=True)
    a = ap.parse_args()
    h = Hostile(a)
    for line in sys.stdin:
        group = line.strip()
        if not group:
            continue
        r = Report(group)
        fn = getattr(h, "g_" + group, None)
        if group != "syn_sent":  # whose SYN may be here already
            h.link.flush()
        sent = h.link.sent
        if fn is None:
            r.fail("no group %r" % group)
        else:
            fn(r)
        h.link.flush(0.1)
        out = {"group": group, "sent": h.link.sent - sent, "expect": r.expect, "at_most": r.at_most,
               "failures": r.failures, "notes": r.notes}
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()

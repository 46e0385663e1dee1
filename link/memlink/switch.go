package memlink

import (
	"net/netip"
	"sync"
	"sync/atomic"
)

// Switch joins any number of stacks. It forwards each packet by its
// destination IP address to the port that owns it: addresses are registered
// with [Switch.Port] and also learned from the source address of packets a
// port sends. A packet for an unknown address is dropped and counted
// (there is no flooding: a stack should not see packets not meant for it).
//
// Each port is a Pipe between the stack and the switch built from the
// switch's Config: AB impairs the way from the stack into the switch, BA the
// way out to the stack, so a packet between two ports crosses both. Tap sees
// every hop (AtoB: entering the switch, BtoA: leaving it).
type Switch struct {
	cfg        Config
	unroutable atomic.Uint64

	mu    sync.RWMutex
	ports []*port
	owner map[netip.Addr]*port
}

type port struct {
	sw    *Switch
	inner *Endpoint // the switch's end of the port's pipe
	// one is a reusable one-packet batch. Safe without a lock: the packets
	// of one port reach the switch from a single delivery goroutine/timer.
	one [1][]byte
}

// NewSwitch returns a switch whose ports are links configured by cfg. Each
// port gets its own seed derived from cfg.Seed and the port's index.
func NewSwitch(cfg Config) *Switch {
	return &Switch{cfg: cfg, owner: make(map[netip.Addr]*port)}
}

// Port adds a port owning addrs and returns the stack's end of it.
func (s *Switch) Port(addrs ...netip.Addr) *Endpoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	cfg := s.cfg
	// Distinct, reproducible seeds per port (golden-ratio increments keep
	// nearby port seeds far apart).
	cfg.Seed = s.cfg.Seed + int64(len(s.ports)+1)*-0x61c8864680b583eb
	outer, inner := Pipe(cfg)
	p := &port{sw: s, inner: inner}
	s.ports = append(s.ports, p)
	for _, a := range addrs {
		s.owner[a.Unmap()] = p
	}
	inner.Attach(p)
	return outer
}

// Unroutable returns how many packets were dropped for want of a port
// owning their destination (or for being too short to carry one).
func (s *Switch) Unroutable() uint64 { return s.unroutable.Load() }

// Close takes every port down.
func (s *Switch) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.ports {
		p.inner.Close()
	}
	return nil
}

// DeliverPacket receives a packet a stack sent into the switch.
func (p *port) DeliverPacket(pkt []byte) {
	src, dst, ok := addrs(pkt)
	if !ok {
		p.sw.unroutable.Add(1)
		return
	}
	s := p.sw
	s.mu.RLock()
	known := s.owner[src] != nil
	out := s.owner[dst]
	s.mu.RUnlock()
	if !known && src.IsValid() && !src.IsUnspecified() {
		s.mu.Lock()
		if s.owner[src] == nil {
			s.owner[src] = p
		}
		s.mu.Unlock()
	}
	if out == nil {
		s.unroutable.Add(1)
		return
	}
	// WritePackets copies, so pkt may be handed on as is; its errors
	// (closed port, oversize) are the same packet loss a real switch has.
	p.one[0] = pkt
	out.inner.WritePackets(p.one[:])
	p.one[0] = nil
}

// addrs reads the source and destination of a bare IPv4 or IPv6 packet.
func addrs(pkt []byte) (src, dst netip.Addr, ok bool) {
	if len(pkt) == 0 {
		return src, dst, false
	}
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 20 {
			return src, dst, false
		}
		return netip.AddrFrom4([4]byte(pkt[12:16])), netip.AddrFrom4([4]byte(pkt[16:20])), true
	case 6:
		if len(pkt) < 40 {
			return src, dst, false
		}
		return netip.AddrFrom16([16]byte(pkt[8:24])), netip.AddrFrom16([16]byte(pkt[24:40])), true
	}
	return src, dst, false
}

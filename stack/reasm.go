package stack

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/synack/synack/ipreasm"
	"github.com/synack/synack/wire"
)

// fragState is the stack's IP reassembly (package ipreasm), made when the
// first fragment arrives, and the reassembler's counters as last copied
// into the stack's.
type fragState struct {
	r    *ipreasm.Reassembler
	seen ipreasm.Counters
}

// reassemble hands the fragment p (parsed from pkt with an ErrFragment
// error, already checked to be for us from a sane source) to the
// reassembler. When it completes a datagram, reassemble returns the whole
// packet and p parsed from it, for deliver to go on with as if it had
// arrived whole; otherwise nil.
func (s *Stack) reassemble(p *wire.IPPacket, pkt []byte, now time.Time) []byte {
	s.fragMu.Lock()
	defer s.fragMu.Unlock()
	f := &s.frag
	if f.r == nil {
		f.r = ipreasm.New(s.opts.Reassembly)
	}
	var whole []byte
	if p.Version == 4 {
		whole = f.r.AddIPv4(now, &p.IPv4, p.Payload)
	} else {
		// ParseIPv6 returned the payload from the Fragment header on;
		// what lies between the fixed header and it is the unfragmentable
		// part's extension headers.
		plen := int(binary.BigEndian.Uint16(pkt[4:]))
		whole = f.r.AddIPv6(now, &p.IPv6, p.Payload, plen-len(p.Payload))
	}
	s.syncFragCounters()
	s.updateMemoryState(now) // the queue is part of the budget
	if whole == nil {
		return nil
	}
	q, err := wire.ParseIP(whole)
	if err != nil {
		// A fragment inside a reassembled packet, or a header that only
		// the whole shows to be bad.
		if errors.Is(err, wire.ErrFragment) {
			s.ctr.IP.ReasmFails.add(1)
		} else {
			s.ctr.IP.InHdrErrors.add(1)
		}
		return nil
	}
	*p = q
	return whole
}

// expireFragments discards the incomplete datagrams whose time is up
// (RFC 791's reassembly timer, RFC 8200 section 4.5's 60 s). The
// reassembler has no timer of its own: deliver calls this for every
// packet while datagrams are incomplete, and the stack's timer
// (runTimers, armed for fragDeadline) when no packet comes, so that the
// memory of a datagram whose other fragments never arrive is given back
// on time on a silent link too.
func (s *Stack) expireFragments(now time.Time) {
	s.fragMu.Lock()
	defer s.fragMu.Unlock()
	if f := &s.frag; f.r != nil && f.r.Len() > 0 {
		f.r.Expire(now)
		s.syncFragCounters()
		s.updateMemoryState(now)
	}
}

// fragDeadline is when the oldest incomplete datagram expires, or the
// zero time.
func (s *Stack) fragDeadline() time.Time {
	s.fragMu.Lock()
	defer s.fragMu.Unlock()
	if f := &s.frag; f.r != nil && f.r.Len() > 0 {
		return f.r.Deadline()
	}
	return time.Time{}
}

// syncFragCounters adds what the reassembler counted since the last call
// to the stack's atomic counters.
func (s *Stack) syncFragCounters() {
	f := &s.frag
	c := f.r.Counters()
	ip := &s.ctr.IP
	ip.ReasmReqds.add(c.ReasmReqds - f.seen.ReasmReqds)
	ip.ReasmOKs.add(c.ReasmOKs - f.seen.ReasmOKs)
	ip.ReasmFails.add(c.ReasmFails - f.seen.ReasmFails)
	ip.ReasmTimeout.add(c.ReasmTimeout - f.seen.ReasmTimeout)
	f.seen = c
	s.mem.frag.Store(int64(f.r.Mem())) // the budget's count (memory.go)
}

//go:build linux

package hosttrace

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// format is an event's binary layout as its tracefs format file gives
// it: the field offsets are read, not assumed, since they change between
// kernel versions (tcp_send_reset gained skaddr and reason, for one).
type format struct {
	id     uint16
	kind   Kind
	size   int // the end of the last field
	fields map[string]field
}

type field struct{ off, size int }

func readFormat(path string) (*format, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("hosttrace: %w (does this kernel have the tracepoint?)", err)
	}
	f := &format{fields: map[string]field{}}
	name := ""
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "name:"):
			name = strings.TrimSpace(strings.TrimPrefix(line, "name:"))
		case strings.HasPrefix(line, "ID:"):
			id, err := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(line, "ID:")), 10, 16)
			if err != nil {
				return nil, fmt.Errorf("hosttrace: %s: bad ID: %w", path, err)
			}
			f.id = uint16(id)
		case strings.HasPrefix(line, "field:"):
			// field:__u16 sport;	offset:24;	size:2;	signed:0;
			parts := strings.Split(line, ";")
			if len(parts) < 3 {
				continue
			}
			decl := strings.TrimSpace(strings.TrimPrefix(parts[0], "field:"))
			fname := decl[strings.LastIndexAny(decl, " *")+1:]
			if i := strings.IndexByte(fname, '['); i >= 0 {
				fname = fname[:i]
			}
			off, err1 := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(parts[1]), "offset:"))
			size, err2 := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(parts[2]), "size:"))
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("hosttrace: %s: bad field %q", path, line)
			}
			f.fields[fname] = field{off, size}
			f.size = max(f.size, off+size)
		}
	}
	switch name {
	case "inet_sock_set_state":
		f.kind = KindState
	case "tcp_send_reset":
		f.kind = KindSendReset
	case "tcp_receive_reset":
		f.kind = KindReceiveReset
	case "tcp_retransmit_skb":
		f.kind = KindRetransmit
	case "tcp_retransmit_synack":
		f.kind = KindSynAckRetransmit
	case "tcp_destroy_sock":
		f.kind = KindDestroy
	default:
		return nil, fmt.Errorf("hosttrace: %s: unexpected event %q", path, name)
	}
	return f, nil
}

func (f *format) bytes(b []byte, name string) []byte {
	fl, ok := f.fields[name]
	if !ok || fl.off+fl.size > len(b) {
		return nil
	}
	return b[fl.off : fl.off+fl.size]
}

func (f *format) u64(b []byte, name string) uint64 {
	if v := f.bytes(b, name); len(v) == 8 {
		return binary.LittleEndian.Uint64(v)
	}
	return 0
}

func (f *format) u32(b []byte, name string) uint32 {
	if v := f.bytes(b, name); len(v) == 4 {
		return binary.LittleEndian.Uint32(v)
	}
	return 0
}

func (f *format) u16(b []byte, name string) uint16 {
	if v := f.bytes(b, name); len(v) == 2 {
		return binary.LittleEndian.Uint16(v)
	}
	return 0
}

// addrPorts reads the family, sport, dport, saddr/daddr (IPv4) and
// saddr_v6/daddr_v6 fields. The tracepoints store ports in host order
// (they call ntohs).
func (f *format) addrPorts(b []byte) (local, remote netip.AddrPort) {
	sport, dport := f.u16(b, "sport"), f.u16(b, "dport")
	var sa, da netip.Addr
	switch f.u16(b, "family") {
	case 2: // AF_INET
		if s, d := f.bytes(b, "saddr"), f.bytes(b, "daddr"); len(s) == 4 && len(d) == 4 {
			sa, da = netip.AddrFrom4([4]byte(s)), netip.AddrFrom4([4]byte(d))
		}
	case 10: // AF_INET6
		if s, d := f.bytes(b, "saddr_v6"), f.bytes(b, "daddr_v6"); len(s) == 16 && len(d) == 16 {
			sa, da = netip.AddrFrom16([16]byte(s)), netip.AddrFrom16([16]byte(d))
		}
	}
	return netip.AddrPortFrom(sa, sport), netip.AddrPortFrom(da, dport)
}

// sockaddr reads a field holding a struct sockaddr_in or sockaddr_in6
// (tcp_send_reset's saddr and daddr): family in host order, the port in
// network order.
func (f *format) sockaddr(b []byte, name string) netip.AddrPort {
	v := f.bytes(b, name)
	if len(v) < 8 {
		return netip.AddrPort{}
	}
	port := binary.BigEndian.Uint16(v[2:])
	switch binary.LittleEndian.Uint16(v) {
	case 2:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(v[4:8])), port)
	case 10:
		if len(v) >= 24 {
			return netip.AddrPortFrom(netip.AddrFrom16([16]byte(v[8:24])), port)
		}
	}
	return netip.AddrPort{}
}

//go:build cgo && linux

package main

/*
#include <stddef.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <poll.h>

extern void sdFill(void *);
*/
import "C"

import (
	"fmt"
	"os"
	"syscall"
	"time"
	"unsafe"
)

// packetdrill_interface_init is what packetdrill looks up in the object:
// it starts a fresh stack (one per script run) and fills the table.
//
//export packetdrill_interface_init
func packetdrill_interface_init(flags *C.char, iface unsafe.Pointer) {
	newInstance(C.GoString(flags))
	C.sdFill(iface)
}

func neg(e syscall.Errno) C.longlong { return C.longlong(-int64(e)) }

//export sdFree
func sdFree() { inst.close() }

//export sdSocket
func sdSocket(domain, typ, proto C.int) C.longlong {
	fd, e := inst.socket(int(domain), int(typ))
	if e != 0 {
		return neg(e)
	}
	return C.longlong(fd)
}

//export sdBind
func sdBind(fd C.int, addr unsafe.Pointer, n C.socklen_t) C.longlong {
	return neg(inst.bind(int(fd), C.GoBytes(addr, C.int(n))))
}

//export sdListen
func sdListen(fd, backlog C.int) C.longlong { return neg(inst.tab.Listen(int(fd), int(backlog))) }

//export sdAccept
func sdAccept(fd C.int, addr unsafe.Pointer, n *C.socklen_t) C.longlong {
	nfd, e := wait(inst.tab.Accept(int(fd)))
	if e != 0 {
		return neg(e)
	}
	if addr != nil && n != nil {
		if s := inst.tab.Get(nfd); s != nil && s.Conn() != nil {
			*n = C.socklen_t(putSockaddr(unsafe.Slice((*byte)(addr), int(*n)), s.Conn().Tuple().Remote))
		}
	}
	return C.longlong(nfd)
}

//export sdConnect
func sdConnect(fd C.int, addr unsafe.Pointer, n C.socklen_t) C.longlong {
	return neg(inst.connect(int(fd), C.GoBytes(addr, C.int(n))))
}

//export sdRead
func sdRead(fd C.int, buf unsafe.Pointer, n C.size_t) C.longlong {
	b := unsafe.Slice((*byte)(buf), int(n))
	k, e := wait(inst.tab.Read(int(fd), b))
	if e != 0 {
		return neg(e)
	}
	return C.longlong(k)
}

//export sdRecv
func sdRecv(fd C.int, buf unsafe.Pointer, n C.size_t, flags C.int) C.longlong {
	b := unsafe.Slice((*byte)(buf), int(n))
	k, e := wait(inst.tab.Recv(int(fd), b, int(flags)))
	if e != 0 {
		return neg(e)
	}
	return C.longlong(k)
}

//export sdWrite
func sdWrite(fd C.int, buf unsafe.Pointer, n C.size_t) C.longlong {
	b := C.GoBytes(buf, C.int(n))
	k, e := wait(inst.tab.Write(int(fd), b))
	if e != 0 {
		return neg(e)
	}
	return C.longlong(k)
}

//export sdFcntl
func sdFcntl(fd, cmd C.int, arg C.long) C.longlong {
	v, e := inst.fcntl(int(fd), int(cmd), int(arg))
	if e != 0 {
		return neg(e)
	}
	return C.longlong(v)
}

//export sdClose
func sdClose(fd C.int) C.longlong { return neg(inst.tab.Close(int(fd))) }

//export sdShutdown
func sdShutdown(fd, how C.int) C.longlong { return neg(inst.tab.Shutdown(int(fd), int(how))) }

//export sdGetsockopt
func sdGetsockopt(fd, level, name C.int, val unsafe.Pointer, n *C.socklen_t) C.longlong {
	v, e := inst.getsockopt(int(fd), int(level), int(name))
	if e != 0 {
		return neg(e)
	}
	if val != nil && n != nil && *n >= 4 {
		*(*C.int)(val) = C.int(v)
		*n = 4
	}
	return 0
}

//export sdSetsockopt
func sdSetsockopt(fd, level, name C.int, val unsafe.Pointer, n C.socklen_t) C.longlong {
	return neg(inst.setsockopt(int(fd), int(level), int(name), C.GoBytes(val, C.int(n))))
}

//export sdPoll
func sdPoll(fds *C.struct_pollfd, n C.nfds_t, timeout C.int) C.longlong {
	ps := unsafe.Slice(fds, int(n))
	ready := 0
	for i := range ps {
		ev := inst.tab.Poll(int(ps[i].fd), int16(ps[i].events))
		ps[i].revents = C.short(ev)
		if ev != 0 {
			ready++
		}
	}
	return C.longlong(ready)
}

//export sdNetdevSend
func sdNetdevSend(buf unsafe.Pointer, n C.size_t) C.longlong {
	inst.inject(C.GoBytes(buf, C.int(n)))
	return 0
}

//export sdNetdevReceive
func sdNetdevReceive(buf unsafe.Pointer, n *C.size_t, usecs *C.longlong) C.longlong {
	p, at, ok, why := inst.sniff()
	if !ok {
		// packetdrill's so netdev has no timeout and retries on -1, so
		// hand it one byte that is no IP packet: it stops the script
		// with a parse error, after this message.
		fmt.Fprintf(os.Stderr, "synack.so: netdev_receive: no packet: %s\n", why)
		if *n > 0 {
			*(*byte)(buf) = 0
			*n = 1
		}
		*usecs = C.longlong(inst.v.Now().UnixMicro())
		return 0
	}
	b := unsafe.Slice((*byte)(buf), int(*n))
	*n = C.size_t(copy(b, p))
	*usecs = C.longlong(at.UnixMicro())
	return 0
}

//export sdUsleep
func sdUsleep(us C.uint) C.longlong {
	inst.sleep(time.Duration(us) * time.Microsecond)
	return 0
}

//export sdGettimeofday
func sdGettimeofday(tv *C.struct_timeval) C.longlong {
	now := inst.now()
	tv.tv_sec = C.long(now.Unix())
	tv.tv_usec = C.long(now.Nanosecond() / 1000)
	return 0
}

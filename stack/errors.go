package stack

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"syscall"
)

// The errors of this package have the shapes of package net's, so that
// code written for kernel sockets works unchanged:
//
//   - *net.OpError{Op: "dial", "read", "write", "accept", "listen",
//     "close"; Net: "tcp"} around
//   - *os.SyscallError{Syscall: "connect", "read", "write", "bind", ...}
//     around a syscall.Errno, so errors.Is(err, syscall.ECONNRESET) works;
//   - os.ErrDeadlineExceeded for deadlines (net.Error's Timeout() is true);
//   - net.ErrClosed after Close;
//   - a plain io.EOF from Read after the peer's FIN.

// tcpAddr converts an address for net.OpError; the zero AddrPort gives nil.
func tcpAddr(ap netip.AddrPort) net.Addr {
	if !ap.IsValid() {
		return nil
	}
	return net.TCPAddrFromAddrPort(ap)
}

// opError wraps err for the operation op. An errno gets the syscall name
// the kernel would have reported it from.
func opError(op, syscallName string, src, dst netip.AddrPort, err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	var errno syscall.Errno
	if errors.As(err, &errno) && err == error(errno) {
		err = os.NewSyscallError(syscallName, errno)
	}
	return &net.OpError{Op: op, Net: "tcp", Source: tcpAddr(src), Addr: tcpAddr(dst), Err: err}
}

// syscallFor names the system call a kernel socket would have reported an
// error from.
func syscallFor(op string) string {
	switch op {
	case "dial":
		return "connect"
	case "listen":
		return "bind"
	case "close":
		return "shutdown"
	}
	return op
}

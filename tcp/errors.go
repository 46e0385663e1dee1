package tcp

import "syscall"

// The errors the core reports are the errno values a kernel socket would
// give, so the stack can wrap them in *net.OpError and errors.Is works as
// it does with kernel sockets.
var (
	ErrWouldBlock      error = syscall.EAGAIN       // nothing to read, or no room to write, now
	ErrRefused         error = syscall.ECONNREFUSED // RST in answer to our SYN
	ErrReset           error = syscall.ECONNRESET   // RST on a synchronized connection
	ErrTimedOut        error = syscall.ETIMEDOUT    // retransmission, keep-alive or user timeout
	ErrClosing         error = syscall.EPIPE        // SEND after CLOSE
	ErrNotConnected    error = syscall.ENOTCONN     // the call needs a connection there is not
	ErrAlreadyOpen     error = syscall.EISCONN      // OPEN on an open connection
	ErrConnectionAbort error = syscall.ECONNABORTED // aborted locally
)

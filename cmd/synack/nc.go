package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func init() {
	register(&command{
		name:    "nc",
		summary: "connect from the stack on a TUN device to HOST PORT, stdin/stdout like netcat",
		run:     runNC,
	})
}

func runNC(args []string) int {
	fs := flag.NewFlagSet("synack nc", flag.ContinueOnError)
	tf := addTunFlags(fs)
	timeout := fs.Duration("timeout", 30*time.Second, "give up connecting after `DURATION` (0: the stack's SYN retries decide)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: synack nc [--tun NAME --host-addr CIDR --stack-addr IP] HOST PORT")
		fmt.Fprintln(fs.Output(), "\nConnects from the stack to HOST PORT over a TUN interface, copies stdin to the")
		fmt.Fprintln(fs.Output(), "connection and the connection to stdout. At the end of stdin it sends FIN (like nc -N)")
		fmt.Fprintln(fs.Output(), "and keeps reading until the peer's FIN. Exit status 0 on a clean close, 1 on a")
		fmt.Fprintln(fs.Output(), "connection error (refused, reset, timed out). Needs root (CAP_NET_ADMIN).\n\nflags:")
		fs.PrintDefaults()
	}
	if status, done := parseFlags(fs, args); done {
		return status
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return 2
	}
	host, err := netip.ParseAddr(fs.Arg(0))
	if err != nil {
		fmt.Fprintf(os.Stderr, "synack nc: HOST %q: want an IP address (synack resolves no names)\n", fs.Arg(0))
		return 2
	}
	port, err := strconv.ParseUint(fs.Arg(1), 10, 16)
	if err != nil || port == 0 {
		fmt.Fprintf(os.Stderr, "synack nc: PORT %q: want a number from 1 to 65535\n", fs.Arg(1))
		return 2
	}
	cfg, err := tf.config()
	if err != nil {
		fmt.Fprintf(os.Stderr, "synack nc: %v\n", err)
		return 2
	}

	tn, err := tf.open(cfg)
	if err != nil {
		return setupFailed("nc", err)
	}
	defer tn.Close()

	sig, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx := sig
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(sig, *timeout)
		defer cancel()
	}
	c, err := tn.Stack.DialTCP(ctx, netip.AddrPortFrom(host.Unmap(), uint16(port)))
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w (after %v)", syscall.ETIMEDOUT, *timeout)
		}
		fmt.Fprintf(os.Stderr, "synack nc: %v\n", err)
		return 1
	}
	return copyBoth(sig, c, os.Stdin, os.Stdout)
}

// halfCloser is the part of *stack.TCPConn copyBoth needs.
type halfCloser interface {
	net.Conn
	CloseWrite() error
}

// copyBoth copies in to c and c to out. At in's EOF it sends FIN and goes
// on reading until the peer's; it returns 0 when both directions ended
// cleanly, and 1 after printing the error otherwise, or on a signal.
func copyBoth(ctx context.Context, c halfCloser, in io.Reader, out io.Writer) int {
	sent := make(chan error, 1)
	go func() {
		_, err := io.Copy(c, in)
		if err == nil {
			err = c.CloseWrite()
		}
		sent <- err
	}()
	recvd := make(chan error, 1)
	go func() {
		_, err := io.Copy(out, c)
		recvd <- err
	}()

	var sendErr, recvErr error
	sendDone, recvDone := false, false
	for !sendDone || !recvDone {
		select {
		case sendErr = <-sent:
			sendDone = true
			if sendErr != nil {
				// Reading on would hide the failure; stop here.
				recvDone = true
			}
		case recvErr = <-recvd:
			recvDone = true
			if recvErr != nil {
				sendDone = true
			}
		case <-ctx.Done():
			c.Close()
			fmt.Fprintln(os.Stderr, "synack nc: interrupted")
			return 1
		}
	}
	if err := errors.Join(recvErr, sendErr); err != nil {
		c.Close()
		fmt.Fprintf(os.Stderr, "synack nc: %v\n", connError(recvErr, sendErr))
		return 1
	}
	if err := c.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		fmt.Fprintf(os.Stderr, "synack nc: %v\n", err)
		return 1
	}
	return 0
}

// connError picks the error to report: the connection's (reset, timed out)
// before a local one, the first otherwise.
func connError(recv, send error) error {
	for _, e := range []error{recv, send} {
		if errors.Is(e, syscall.ECONNRESET) || errors.Is(e, syscall.ETIMEDOUT) || errors.Is(e, syscall.ECONNREFUSED) {
			return e
		}
	}
	if recv != nil {
		return recv
	}
	return send
}

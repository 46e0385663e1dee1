//go:build !linux

package main

import "errors"

// runTUN needs a Linux TUN device (link/tun).
func runTUN() error {
	return errors.New("part 2 (TUN + hping3) needs Linux")
}

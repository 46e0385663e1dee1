//go:build !(linux && tunflood)

package main

import "errors"

// runTUN needs link/tun, whose netlink dependencies the bench module does
// not require yet: build with -tags tunflood once it does.
func runTUN() error {
	return errors.New("part 2 (TUN + hping3) is not built in: build with -tags tunflood on Linux")
}

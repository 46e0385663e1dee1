// Package interop holds the tests that put synack on a TUN device inside a
// network namespace the test creates and let the Linux kernel's TCP,
// driven through Go's own net package inside that namespace, talk to it:
// bulk transfers both ways, half-close, refused connections, resets,
// thousands of short connections and where TIME-WAIT ends up, net/http in
// both roles, loss on the kernel's side, a pcap of a run checked packet
// by packet, and malformed and hostile packets from a scapy script
// (hostile_test.go, testdata/hostile.py; Debian's python3-scapy).
//
// They need root (network namespaces and TUN devices); without it they
// skip and say why, except under CI=true, where they fail. Addresses are
// only 198.18.0.0/15 and fd00::/8, inside the test's own namespace.
package interop

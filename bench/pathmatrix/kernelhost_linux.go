package pathmatrix

import (
	"context"
	"net"
	"net/netip"

	"github.com/synack/synack/link"
)

// KernelHost is the kernel's TCP in a network namespace of its own behind
// a TUN device, for a caller that builds its own topology around it (the
// fairness pair of bench/fairness puts it beside a synack stack on one
// bottleneck). Device is the TUN seen from this process: what it delivers
// the kernel sent; what is written to it the kernel receives.
type KernelHost struct{ k *kernelEnd }

// NewKernelHost makes the namespace (named NSPrefix<pid>-<n>) with the
// kernel at addr, its TCP tuned for cell c as in the matrix.
func NewKernelHost(c Cell, addr netip.Prefix) (*KernelHost, error) {
	if err := RootError(); err != nil {
		return nil, err
	}
	k, err := newKernelEnd(c, addr)
	if err != nil {
		return nil, err
	}
	return &KernelHost{k: k}, nil
}

// Device is the TUN device.
func (h *KernelHost) Device() link.Endpoint { return h.k.dev }

// Dial connects from the namespace to raddr's port 5201 with congestion
// control cc (TCP_CONGESTION).
func (h *KernelHost) Dial(ctx context.Context, raddr netip.Addr, cc string) (net.Conn, error) {
	return h.k.dial(netip.PrefixFrom(raddr, 32), cc)(ctx)
}

// KernelRetrans is a kernel socket's tcpi_total_retrans, -1 if unknown.
func KernelRetrans(c net.Conn) int64 { return kernelStats(c).retrans }

// Close removes the device and the namespace.
func (h *KernelHost) Close() { h.k.close() }

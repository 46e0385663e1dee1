package stack

import (
	"testing"
	"unsafe"
)

// A TCPConn stays within the allocator's 320-byte size class: an idle
// connection and a short one pay for it whole (issue 13 item 6).
func TestTCPConnSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(TCPConn{}); n > 320 {
		t.Errorf("TCPConn is %d bytes, over the 320-byte size class", n)
	}
}

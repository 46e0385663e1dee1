package fairness

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/synack/synack/bench/pathmatrix"
)

// TestRunMixedPairSmoke runs synack's CUBIC beside the kernel's for three
// seconds: both flows must move data in each half, the sum must fit the
// link, and the namespace must be gone afterwards. Nothing is asserted
// about the shares (real time on a shared machine).
func TestRunMixedPairSmoke(t *testing.T) {
	if err := pathmatrix.RootError(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v; CI=true, so this is a failure, not a skip", err)
		}
		t.Skip(err)
	}
	defer func(p string) { pathmatrix.NSPrefix = p }(pathmatrix.NSPrefix)
	pathmatrix.NSPrefix = "fa-" // this package's prefix, apart from other tests'
	pathmatrix.RemoveStale()
	c := pathmatrix.Cell{RTT: 10 * time.Millisecond, Rate: 50e6}
	r, err := RunMixedPair(c, 3*time.Second, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("synack %.1f Mbit/s, linux %.1f Mbit/s, Jain %.3f, retrans %v", r.Mbit(0), r.Mbit(1), r.Jain(), r.Retrans)
	for i := range r.Bytes {
		if r.Late[i] == 0 {
			t.Errorf("flow %d (%s) moved nothing in the second half (%d bytes in all)", i, r.Names[i], r.Bytes[i])
		}
	}
	// Slack for bytes that were in flight when the run started counting.
	if u := r.Utilization(); u > 1.05 {
		t.Errorf("utilization %.3f: more than the link carries", u)
	}
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), fmt.Sprintf("fa-%d-", os.Getpid())) {
			t.Errorf("namespace %s left behind", e.Name())
		}
	}
}

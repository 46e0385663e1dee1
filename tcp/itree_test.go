package tcp

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// nodes returns t's ranges in order.
func (t *itree) nodes() []*inode {
	var out []*inode
	var walk func(n *inode)
	walk = func(n *inode) {
		if n == nil {
			return
		}
		walk(n.left)
		out = append(out, n)
		walk(n.right)
	}
	walk(t.root)
	return out
}

// spanList returns the islands in order.
func (q *reassembly) spanList() []span {
	var out []span
	for _, n := range q.spans.nodes() {
		out = append(out, span{n.start, n.end})
	}
	return out
}

// checkTree fails unless t is a valid AVL tree of n ordered, disjoint
// ranges.
func checkTree(t *testing.T, tr *itree) {
	t.Helper()
	var check func(n *inode) int
	check = func(n *inode) int {
		if n == nil {
			return 0
		}
		l, r := check(n.left), check(n.right)
		if l-r > 1 || r-l > 1 || n.height != 1+max(l, r) {
			t.Fatalf("node %d: heights %d, %d, stored %d", n.start, l, r, n.height)
		}
		return n.height
	}
	check(tr.root)
	ns := tr.nodes()
	if len(ns) != tr.len() {
		t.Fatalf("%d nodes, len %d", len(ns), tr.len())
	}
	for i := 1; i < len(ns); i++ {
		if ns[i-1].end > ns[i].start || ns[i].start >= ns[i].end {
			t.Fatalf("ranges out of order: [%d,%d) then [%d,%d)", ns[i-1].start, ns[i-1].end, ns[i].start, ns[i].end)
		}
	}
}

// The tree against a sorted slice: random inserts and removals, in any
// order, keep it balanced and its lookups right.
func TestITreeModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var tr itree
	var model []int // starts; range [10s, 10s+5)
	for step := range 20000 {
		s := rng.IntN(3000)
		if i, found := slices.BinarySearch(model, s); found {
			if got := tr.remove(10 * s); got == nil || got.start != 10*s {
				t.Fatalf("step %d: remove %d gave %v", step, 10*s, got)
			}
			model = slices.Delete(model, i, i+1)
		} else {
			tr.insert(&inode{start: 10 * s, end: 10*s + 5})
			model = slices.Insert(model, i, s)
		}
		if step%500 == 0 {
			checkTree(t, &tr)
		}
		pos := rng.IntN(31000)
		i, _ := slices.BinarySearch(model, (pos-4+9)/10) // first s with 10s+5 > pos
		want := -1
		if i < len(model) {
			want = 10 * model[i]
		}
		got := -1
		if n := tr.ceilEnd(pos); n != nil {
			got = n.start
		}
		if got != want {
			t.Fatalf("step %d: ceilEnd(%d) = %d, want %d", step, pos, got, want)
		}
		j, _ := slices.BinarySearch(model, pos/10+1) // first s with 10s > pos
		want = -1
		if j < len(model) {
			want = 10 * model[j]
		}
		got = -1
		if n := tr.after(pos); n != nil {
			got = n.start
		}
		if got != want {
			t.Fatalf("step %d: after(%d) = %d, want %d", step, pos, got, want)
		}
	}
	checkTree(t, &tr)
	if tr.remove(-5) != nil {
		t.Fatal("removed a range that is not there")
	}
	if len(model) > 0 && (tr.min().start != 10*model[0] || tr.max().start != 10*model[len(model)-1]) {
		t.Fatal("min or max wrong")
	}
}

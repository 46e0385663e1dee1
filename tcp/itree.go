package tcp

// itree is an ordered set of disjoint ranges [start, end) of stream
// offsets, kept in an AVL tree keyed by start: the out-of-order chunks and
// the islands they form (ooo.go). A slow-start overshoot into a drop-tail
// queue loses about every other segment, which leaves as many islands as
// half the window holds segments, thousands; and a hostile peer can send
// one-byte pieces with gaps between them in any order. A balanced tree
// keeps every insert, removal and lookup at O(log n) whatever the order,
// where a sorted slice moves O(n) entries on each insert (Linux keeps its
// out-of-order queue in a red-black tree for the same reason). Because the
// ranges are disjoint, ordering by start orders them by end too, which
// ceilEnd relies on.
type itree struct {
	root *inode
	n    int
}

// inode is one range of an itree. data and cost are used by the chunk
// tree only: the bytes received, and what they count against the limit
// (chunkCost).
type inode struct {
	left, right *inode
	height      int
	start, end  int
	data        []byte
	cost        int
}

func (t *itree) len() int { return t.n }

// insert adds x, whose range overlaps none in t.
func (t *itree) insert(x *inode) {
	x.left, x.right, x.height = nil, nil, 1
	t.root = insertNode(t.root, x)
	t.n++
}

// remove takes out and returns the node starting at start, or nil.
func (t *itree) remove(start int) *inode {
	var got *inode
	t.root, got = removeNode(t.root, start)
	if got != nil {
		t.n--
		got.left, got.right = nil, nil
	}
	return got
}

// min returns the first range, or nil.
func (t *itree) min() *inode {
	n := t.root
	for n != nil && n.left != nil {
		n = n.left
	}
	return n
}

// max returns the last range, or nil.
func (t *itree) max() *inode {
	n := t.root
	for n != nil && n.right != nil {
		n = n.right
	}
	return n
}

// ceilEnd returns the first range that ends after pos, or nil.
func (t *itree) ceilEnd(pos int) *inode {
	var best *inode
	for n := t.root; n != nil; {
		if n.end > pos {
			best, n = n, n.left
		} else {
			n = n.right
		}
	}
	return best
}

// after returns the first range that starts after pos, or nil.
func (t *itree) after(pos int) *inode {
	var best *inode
	for n := t.root; n != nil; {
		if n.start > pos {
			best, n = n, n.left
		} else {
			n = n.right
		}
	}
	return best
}

func nodeHeight(n *inode) int {
	if n == nil {
		return 0
	}
	return n.height
}

func (n *inode) fix() { n.height = 1 + max(nodeHeight(n.left), nodeHeight(n.right)) }

func rotateRight(n *inode) *inode {
	l := n.left
	n.left, l.right = l.right, n
	n.fix()
	l.fix()
	return l
}

func rotateLeft(n *inode) *inode {
	r := n.right
	n.right, r.left = r.left, n
	n.fix()
	r.fix()
	return r
}

// rebalance restores the AVL property at n (its subtrees' heights differ
// by at most one), given that its subtrees have it, and returns the new
// root of the subtree.
func rebalance(n *inode) *inode {
	n.fix()
	switch b := nodeHeight(n.left) - nodeHeight(n.right); {
	case b > 1:
		if nodeHeight(n.left.left) < nodeHeight(n.left.right) {
			n.left = rotateLeft(n.left)
		}
		return rotateRight(n)
	case b < -1:
		if nodeHeight(n.right.right) < nodeHeight(n.right.left) {
			n.right = rotateRight(n.right)
		}
		return rotateLeft(n)
	}
	return n
}

func insertNode(n, x *inode) *inode {
	if n == nil {
		return x
	}
	if x.start < n.start {
		n.left = insertNode(n.left, x)
	} else {
		n.right = insertNode(n.right, x)
	}
	return rebalance(n)
}

func removeMinNode(n *inode) (rest, least *inode) {
	if n.left == nil {
		return n.right, n
	}
	n.left, least = removeMinNode(n.left)
	return rebalance(n), least
}

func removeNode(n *inode, start int) (root, got *inode) {
	switch {
	case n == nil:
		return nil, nil
	case start < n.start:
		n.left, got = removeNode(n.left, start)
	case start > n.start:
		n.right, got = removeNode(n.right, start)
	default:
		if n.right == nil {
			return n.left, n
		}
		rest, m := removeMinNode(n.right)
		m.left, m.right = n.left, rest
		return rebalance(m), n
	}
	if got == nil {
		return n, nil
	}
	return rebalance(n), got
}

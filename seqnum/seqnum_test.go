package seqnum

import "testing"

func TestCompareAcrossWrap(t *testing.T) {
	cases := []struct {
		v, w Value
		less bool
	}{
		{1, 2, true},
		{2, 1, false},
		{0xFFFFFFFF, 0, true}, // wraps: 2^32-1 comes just before 0
		{0, 0xFFFFFFFF, false},
		{0xFFFFFF00, 0x100, true},
		{0x7FFFFFFF, 0x80000000, true},
		{5, 5, false},
	}
	for _, c := range cases {
		if got := c.v.LessThan(c.w); got != c.less {
			t.Errorf("%d.LessThan(%d) = %v, want %v", c.v, c.w, got, c.less)
		}
		if got := c.w.GreaterThan(c.v); got != c.less {
			t.Errorf("%d.GreaterThan(%d) = %v, want %v", c.w, c.v, got, c.less)
		}
	}
	if !Value(5).LessThanEq(5) || !Value(5).GreaterThanEq(5) {
		t.Error("equal values must be <= and >=")
	}
}

func TestWindow(t *testing.T) {
	cases := []struct {
		v, first Value
		size     Size
		in       bool
	}{
		{10, 10, 1, true},
		{10, 10, 0, false},
		{19, 10, 10, true},
		{20, 10, 10, false},
		{9, 10, 10, false},
		{2, 0xFFFFFFF0, 0x20, true}, // window straddles the wrap
		{0xFFFFFFF0, 0xFFFFFFF0, 0x20, true},
		{0x10, 0xFFFFFFF0, 0x20, false},
	}
	for _, c := range cases {
		if got := c.v.InWindow(c.first, c.size); got != c.in {
			t.Errorf("%#x.InWindow(%#x, %d) = %v, want %v", c.v, c.first, c.size, got, c.in)
		}
	}
}

func TestArithmetic(t *testing.T) {
	v := Value(0xFFFFFFFE)
	if got := v.Add(4); got != 2 {
		t.Errorf("Add across wrap = %d, want 2", got)
	}
	if got := v.Size(2); got != 4 {
		t.Errorf("Size across wrap = %d, want 4", got)
	}
	if got := Value(2).Sub(4); got != v {
		t.Errorf("Sub across wrap = %#x, want %#x", got, v)
	}
	if Max(0xFFFFFFFF, 1) != 1 || Min(0xFFFFFFFF, 1) != 0xFFFFFFFF {
		t.Error("Max/Min must respect the wrap")
	}
	if !Overlap(0xFFFFFFFE, 4, 1, 1) || Overlap(0, 4, 4, 4) || Overlap(0, 0, 0, 4) {
		t.Error("Overlap wrong")
	}
}

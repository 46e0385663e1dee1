// Package seqnum implements the modular 32-bit arithmetic of TCP sequence
// numbers (RFC 9293 section 3.4): every comparison is made modulo 2^32, so a
// number is "less than" another when it lies in the half of the circle
// before it.
package seqnum

// Value is a TCP sequence number.
type Value uint32

// Size is a distance in sequence space: a length or a window.
type Size uint32

// LessThan reports whether v comes before w, modulo 2^32.
func (v Value) LessThan(w Value) bool { return int32(v-w) < 0 }

// LessThanEq reports whether v comes before or is w.
func (v Value) LessThanEq(w Value) bool { return int32(v-w) <= 0 }

// GreaterThan reports whether v comes after w.
func (v Value) GreaterThan(w Value) bool { return int32(v-w) > 0 }

// GreaterThanEq reports whether v comes after or is w.
func (v Value) GreaterThanEq(w Value) bool { return int32(v-w) >= 0 }

// InRange reports whether a <= v < b.
func (v Value) InRange(a, b Value) bool { return v-a < b-a }

// InWindow reports whether v lies in the window of size s starting at first:
// first <= v < first+s. An empty window holds nothing.
func (v Value) InWindow(first Value, s Size) bool { return v.InRange(first, first.Add(s)) }

// Add returns v advanced by s.
func (v Value) Add(s Size) Value { return v + Value(s) }

// Sub returns v moved back by s.
func (v Value) Sub(s Size) Value { return v - Value(s) }

// Size returns the distance from v forward to w (w - v).
func (v Value) Size(w Value) Size { return Size(w - v) }

// Max returns the later of v and w.
func Max(v, w Value) Value {
	if v.GreaterThan(w) {
		return v
	}
	return w
}

// Min returns the earlier of v and w.
func Min(v, w Value) Value {
	if v.LessThan(w) {
		return v
	}
	return w
}

// Overlap reports whether the ranges [a, a+an) and [b, b+bn) share a number.
func Overlap(a Value, an Size, b Value, bn Size) bool {
	if an == 0 || bn == 0 {
		return false
	}
	return b.InWindow(a, an) || a.InWindow(b, bn)
}

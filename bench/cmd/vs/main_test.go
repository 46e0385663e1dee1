package main

import "testing"

// A shape that two names of -only select runs once: "mem" selects the
// timewait shape too, and "mem,timewait" printed its row twice.
func TestSelectShapesOnce(t *testing.T) {
	shapes, err := selectShapes("mem,timewait,conn,conn-16")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, s := range shapes {
		seen[s.Name]++
		if seen[s.Name] > 1 {
			t.Errorf("shape %s selected %d times", s.Name, seen[s.Name])
		}
	}
	if seen["timewait"] != 1 || seen["mem"] != 1 || seen["conn-16"] != 1 {
		t.Errorf("selected %v, want mem, timewait and conn-16 once each", seen)
	}
}

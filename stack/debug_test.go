package stack

import (
	"testing"
)

func logTrace(t *testing.T, name string) func(TraceEvent) {
	return func(e TraceEvent) {
		if e.Segment != nil {
			t.Logf("%s %v %s #%d %v %v->%v", name, e.Kind, e.Time.Format("05.000000"), e.ID, e.Segment, e.From, e.To)
		} else {
			t.Logf("%s %v %s #%d %v->%v %s", name, e.Kind, e.Time.Format("05.000000"), e.ID, e.From, e.To, e.Cause)
		}
	}
}

package netstack

import (
	"reflect"
	"strings"
	"testing"

	gvnetstack "golang.zx2c4.com/wireguard/tun/netstack"
)

// TestSameAPI: every exported method of wireguard-go's Net, PingConn and
// PingAddr exists here with the same arguments and as many results, so
// porting a program is changing its import. A result may differ only
// where wireguard-go's is one of gonet's types (ours is synack's) or its
// own type of the same name.
func TestSameAPI(t *testing.T) {
	for _, pair := range []struct{ theirs, ours reflect.Type }{
		{reflect.TypeFor[*gvnetstack.Net](), reflect.TypeFor[*Net]()},
		{reflect.TypeFor[*gvnetstack.PingConn](), reflect.TypeFor[*PingConn]()},
		{reflect.TypeFor[gvnetstack.PingAddr](), reflect.TypeFor[PingAddr]()},
		{reflect.TypeFor[*gvnetstack.PingAddr](), reflect.TypeFor[*PingAddr]()},
	} {
		for i := range pair.theirs.NumMethod() {
			tm := pair.theirs.Method(i)
			om, ok := pair.ours.MethodByName(tm.Name)
			if !ok {
				t.Errorf("%v has no method %s", pair.ours, tm.Name)
				continue
			}
			tt, ot := tm.Type, om.Type
			if tt.NumIn() != ot.NumIn() || tt.NumOut() != ot.NumOut() || tt.IsVariadic() != ot.IsVariadic() {
				t.Errorf("%v.%s is %v, wireguard-go's is %v", pair.ours, tm.Name, ot, tt)
				continue
			}
			for j := 1; j < tt.NumIn(); j++ { // 0 is the receiver
				if !sameType(tt.In(j), ot.In(j)) {
					t.Errorf("%v.%s argument %d is %v, wireguard-go's is %v", pair.ours, tm.Name, j, ot.In(j), tt.In(j))
				}
			}
			for j := range tt.NumOut() {
				th, oh := tt.Out(j), ot.Out(j)
				if sameType(th, oh) || strings.Contains(th.String(), "gonet.") {
					continue
				}
				t.Errorf("%v.%s result %d is %v, wireguard-go's is %v", pair.ours, tm.Name, j, oh, th)
			}
		}
	}
	// The package-level function too.
	if tt, ot := reflect.TypeOf(gvnetstack.CreateNetTUN), reflect.TypeOf(CreateNetTUN); tt.NumIn() != ot.NumIn() || tt.NumOut() != ot.NumOut() {
		t.Errorf("CreateNetTUN is %v, wireguard-go's is %v", ot, tt)
	} else {
		for j := range tt.NumIn() {
			if tt.In(j) != ot.In(j) {
				t.Errorf("CreateNetTUN argument %d is %v, wireguard-go's is %v", j, ot.In(j), tt.In(j))
			}
		}
		if tt.Out(0) != ot.Out(0) {
			t.Errorf("CreateNetTUN returns %v, wireguard-go's %v", ot.Out(0), tt.Out(0))
		}
	}
}

// sameType: identical, or the package's own type of the same name
// (PingAddr, PingConn, Net) on each side.
func sameType(theirs, ours reflect.Type) bool {
	if theirs == ours {
		return true
	}
	if theirs.Kind() != ours.Kind() {
		return false
	}
	if theirs.Kind() == reflect.Pointer {
		return sameType(theirs.Elem(), ours.Elem())
	}
	return theirs.PkgPath() == "golang.zx2c4.com/wireguard/tun/netstack" &&
		ours.PkgPath() == "github.com/synack/synack/contrib/wireguard/netstack" && theirs.Name() == ours.Name()
}

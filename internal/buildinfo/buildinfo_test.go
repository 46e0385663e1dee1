package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestFrom(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "github.com/synack/synack", Version: "v1.2.3"},
		Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
			{Key: "vcs.time", Value: "2026-12-03T15:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		}}
	in := From(bi)
	want := "synack v1.2.3 (commit 0123456789abcdef0123456789abcdef01234567, 2026-12-03T15:00:00Z, modified) go1.26.0"
	if got := in.String(); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	bi.Settings, bi.Main.Version = nil, ""
	if got := From(bi).String(); got != "synack (devel) go1.26.0" {
		t.Errorf("without VCS: %q", got)
	}
}

func TestRead(t *testing.T) {
	in := Read()
	if in.GoVersion != runtime.Version() || in.Version == "" || !strings.HasPrefix(in.String(), "synack ") {
		t.Errorf("Read: %+v", in)
	}
}

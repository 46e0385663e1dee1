// Package buildinfo tells which synack this is, from what the Go toolchain
// records in the binary (runtime/debug.ReadBuildInfo): the module version,
// and the VCS revision, time and modified flag when the build had them.
// `synack --version` prints it and /metrics exports it as
// synack_build_info.
package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// Info is what is known about the build. Fields are "" when unknown.
type Info struct {
	Version   string // the main module's version: "v1.2.3", "(devel)" for a build from a checkout
	Revision  string // VCS revision (a git commit)
	Time      string // VCS commit time, RFC 3339
	Modified  bool   // the work tree had changes not committed
	GoVersion string // "go1.26.0"
}

// Read returns the running binary's build information.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Info{Version: "(unknown)", GoVersion: runtime.Version()}
	}
	return From(bi)
}

// From extracts Info from a debug.BuildInfo.
func From(bi *debug.BuildInfo) Info {
	in := Info{Version: bi.Main.Version, GoVersion: bi.GoVersion}
	if in.Version == "" {
		// Tests and `go run` leave it empty.
		in.Version = "(devel)"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			in.Revision = s.Value
		case "vcs.time":
			in.Time = s.Value
		case "vcs.modified":
			in.Modified = s.Value == "true"
		}
	}
	return in
}

// String is the line `synack --version` prints:
// "synack v1.2.3 (commit 0123abc, 2026-12-03T15:00:00Z, modified) go1.26.0".
func (in Info) String() string {
	var b strings.Builder
	b.WriteString("synack " + in.Version)
	var vcs []string
	if in.Revision != "" {
		vcs = append(vcs, "commit "+in.Revision)
	}
	if in.Time != "" {
		vcs = append(vcs, in.Time)
	}
	if in.Modified {
		vcs = append(vcs, "modified")
	}
	if len(vcs) > 0 {
		b.WriteString(" (" + strings.Join(vcs, ", ") + ")")
	}
	if in.GoVersion != "" {
		b.WriteString(" " + in.GoVersion)
	}
	return b.String()
}

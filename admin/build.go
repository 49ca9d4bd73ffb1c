package admin

import (
	"runtime"
	"runtime/debug"
)

// Build says which accel is running: what "accel version" prints and
// accel_build_info exports.
type Build struct {
	// Version is the module version ("v1.2.3" from go install, "(devel)"
	// from a checkout).
	Version string
	// Revision and Time are the VCS commit the binary was built from, and
	// its time; empty when built outside a checkout. Modified is set when
	// the work tree had changes.
	Revision string
	Time     string
	Modified bool
	// GoVersion is the toolchain that built the binary.
	GoVersion string
}

// ReadBuild reads the running binary's build information.
func ReadBuild() Build {
	b := Build{Version: "(unknown)", GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	if bi.Main.Version != "" {
		b.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// String is the one line "accel version" prints.
func (b Build) String() string {
	s := "accel " + b.Version
	if b.Revision != "" {
		s += " commit " + b.Revision
		if b.Modified {
			s += "+modified"
		}
		if b.Time != "" {
			s += " (" + b.Time + ")"
		}
	}
	return s + " " + b.GoVersion + " " + runtime.GOOS + "/" + runtime.GOARCH
}

package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// buildInfo is what the binary knows about how it was built: the module
// version (a tag for `go install ...@vX`, "(devel)" for a checkout), the
// VCS commit and whether the tree had local changes, and the Go release.
type buildInfo struct {
	Version, Commit, CommitTime, GoVersion string
	Modified                               bool
}

// commit may be set at link time, for builds where Go records no VCS
// information (GOFLAGS=-buildvcs=false, a source tarball):
//
//	go build -ldflags "-X main.commit=$(git rev-parse HEAD)" ./cmd/livechatd
var commit string

func readBuildInfo() buildInfo {
	b := buildInfo{Version: "(unknown)", Commit: "unknown", GoVersion: runtime.Version()}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b // a binary built without module support
	}
	if info.Main.Version != "" {
		b.Version = info.Main.Version
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Commit = s.Value
		case "vcs.time":
			b.CommitTime = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	if b.Commit == "unknown" && commit != "" {
		b.Commit = commit
	}
	return b
}

// String is the one line `livechatd version` prints and the daemon logs.
func (b buildInfo) String() string {
	commit := b.Commit
	if b.Modified {
		commit += " (modified)"
	}
	if b.CommitTime != "" {
		commit += " of " + b.CommitTime
	}
	return fmt.Sprintf("livechatd %s commit %s %s %s/%s", b.Version, commit, b.GoVersion, runtime.GOOS, runtime.GOARCH)
}

func version(stdout io.Writer) int {
	fmt.Fprintln(stdout, readBuildInfo())
	return 0
}

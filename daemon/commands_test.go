package daemon

import (
	"testing"
	"time"
)

func TestRestOfLine(t *testing.T) {
	cases := []struct {
		raw  string
		n    int
		want string
	}{
		{"MSG lobby hello there", 1, "hello there"},
		{"MSG lobby   spaced    out  ", 1, "spaced    out  "},
		{"msg lobby :)", 1, ":)"},
		{"@tag=1 :src MSG lobby with tags", 1, "with tags"},
		{"MSG lobby", 1, ""},
		{"MSG lobby hi\r\n", 1, "hi"},
	}
	for _, tc := range cases {
		if got := restOfLine([]byte(tc.raw), tc.n); got != tc.want {
			t.Errorf("restOfLine(%q, %d) = %q, want %q", tc.raw, tc.n, got, tc.want)
		}
	}
}

func TestHelpListsEveryDocumentedCommand(t *testing.T) {
	listed := map[string]bool{}
	for _, name := range helpOrder {
		c := commandTable[name]
		if c == nil || c.help == "" {
			t.Errorf("HELP lists %s, which has no help text", name)
		}
		listed[name] = true
	}
	for _, c := range commandList {
		if c.help != "" && !listed[c.name] {
			t.Errorf("%s has help text but HELP does not list it", c.name)
		}
	}
}

func TestFloodBucket(t *testing.T) {
	var b floodBucket
	start := time.Unix(1000, 0)
	for i := range 5 {
		if wait, ok := b.take(start, 5, 1, 3*time.Second); wait != 0 || !ok {
			t.Fatalf("line %d within the burst: wait %v ok %v", i, wait, ok)
		}
	}
	wait, ok := b.take(start, 5, 1, 3*time.Second)
	if wait != time.Second || !ok {
		t.Fatalf("first line past the burst: wait %v ok %v", wait, ok)
	}
	// Still sending as fast as the lag allows: in debt continuously, so
	// dropped once the lag has lasted past maxLag (3s), not before.
	now := start.Add(wait)
	lines := 0
	for ok && lines < 10 {
		wait, ok = b.take(now, 5, 1, 3*time.Second)
		now = now.Add(wait)
		lines++
	}
	if ok || lines != 3 {
		t.Fatalf("dropped=%v after %d more lines, want dropped after 3", !ok, lines)
	}
	// A client that pauses pays its debt and starts afresh.
	var c floodBucket
	for range 6 {
		c.take(start, 5, 1, 3*time.Second)
	}
	if wait, ok := c.take(start.Add(time.Minute), 5, 1, 3*time.Second); wait != 0 || !ok {
		t.Fatalf("after a pause: wait %v ok %v", wait, ok)
	}
}

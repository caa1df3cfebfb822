package historystore

import (
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/livechat/livechat/rooms"
)

// crashCopy copies the store's files as a kill -9 would leave them (what
// was written is in the page cache) to a new directory and returns the
// copy's path. The store is held still meanwhile.
func crashCopy(t *testing.T, s *Store) string {
	t.Helper()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	path := filepath.Join(t.TempDir(), "history.db")
	for _, suffix := range []string{"", walSuffix} {
		src, err := os.Open(s.path + suffix)
		if err != nil {
			t.Fatal(err)
		}
		dst, err := os.Create(path + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(dst, src); err != nil {
			t.Fatal(err)
		}
		src.Close()
		dst.Close()
	}
	return path
}

func ids(t *testing.T, s *Store, target string) []string {
	t.Helper()
	got, err := s.Query(target, rooms.Query{Sel: rooms.SelLatest, Limit: 1 << 20, Events: true})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range got {
		out = append(out, e.ID)
	}
	return out
}

// TestLogReplay: what Sync made durable only in the log is in the file
// after a crash, once, in order, with the counts right; records the file
// holds already (a checkpoint came between) are not written twice, nor
// brought back after a deletion, and a redacted event stays redacted.
func TestLogReplay(t *testing.T) {
	defer func(d time.Duration) { checkpointInterval = d }(checkpointInterval)
	checkpointInterval = time.Hour // checkpoints only when forced

	s := open(t, tempPath(t), Options{})
	for i := range 50 {
		s.Append("#a", chat(i, "#a"))
	}
	for i := range 10 {
		s.Append("#gone", chat(100+i, "#gone"))
	}
	if err := s.syncFile(); err != nil { // a checkpoint: the log starts over
		t.Fatal(err)
	}
	for i := 50; i < 55; i++ { // over the start of the previous round
		s.Append("#a", chat(i, "#a"))
	}
	s.Append("#a", chat(999, "#a"))
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Redact("#a", "id000999"); err != nil { // logged: a deletion op
		t.Fatal(err)
	}
	if err := s.Delete("#gone"); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil { // the deletions force a checkpoint
		t.Fatal(err)
	}
	// Over the start of the round that holds the redacted event.
	s.Append("#a", chat(55, "#a"))
	for i := range 3 {
		s.Append("#new", chat(200+i, "#new"))
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	inFile, logged := s.ckptGen, s.walGen
	s.mu.Unlock()
	if logged <= inFile {
		t.Fatalf("nothing only in the log (file %d, log %d): the test does not test", inFile, logged)
	}
	stored := s.StoredBytes()

	c := open(t, crashCopy(t, s), Options{})
	want := make([]string, 0, 56)
	for i := range 56 {
		want = append(want, chat(i, "").ID)
	}
	if got := ids(t, c, "#a"); !equalStrings(got, want) {
		t.Errorf("#a after the crash: %v", got)
	}
	if got := ids(t, c, "#new"); len(got) != 3 || got[0] != "id000200" {
		t.Errorf("#new after the crash: %v", got)
	}
	if got := ids(t, c, "#gone"); len(got) != 0 {
		t.Errorf("#gone after the crash: %v", got)
	}
	if c.StoredBytes() != stored {
		t.Errorf("StoredBytes %d after the crash, %d before", c.StoredBytes(), stored)
	}
	// The replay is in the file: a second crash changes nothing.
	c.Append("#a", chat(56, "#a"))
	if err := c.Sync(); err != nil {
		t.Fatal(err)
	}
	d := open(t, crashCopy(t, c), Options{})
	if got := ids(t, d, "#a"); len(got) != 57 || got[56] != "id000056" {
		t.Errorf("#a after a second crash: %d events", len(got))
	}
	if d.StoredBytes() != c.StoredBytes() {
		t.Errorf("StoredBytes %d after a second crash, %d before", d.StoredBytes(), c.StoredBytes())
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestLogTorn: a record cut short (the crash came mid-write) ends the
// log: what came before it is kept, nothing after.
func TestLogTorn(t *testing.T) {
	defer func(d time.Duration) { checkpointInterval = d }(checkpointInterval)
	checkpointInterval = time.Hour

	s := open(t, tempPath(t), Options{})
	for i := range 20 {
		s.Append("#a", chat(i, "#a"))
		if err := s.Sync(); err != nil { // a record a sync
			t.Fatal(err)
		}
	}
	path := crashCopy(t, s)
	fi, err := os.Stat(path + walSuffix)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path+walSuffix, fi.Size()-5); err != nil {
		t.Fatal(err)
	}
	c := open(t, path, Options{})
	if got := ids(t, c, "#a"); len(got) != 19 || got[18] != "id000018" {
		t.Errorf("after a torn record: %v", got)
	}
}

// TestLogOfAnotherFile: a log left beside a new file (the file was
// removed to start afresh) does not bring its events into it.
func TestLogOfAnotherFile(t *testing.T) {
	defer func(d time.Duration) { checkpointInterval = d }(checkpointInterval)
	checkpointInterval = time.Hour

	s := open(t, tempPath(t), Options{})
	for i := range 5 {
		s.Append("#a", chat(i, "#a"))
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	path := crashCopy(t, s)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	c := open(t, path, Options{})
	if got := ids(t, c, "#a"); len(got) != 0 {
		t.Fatalf("a new file holds %v", got)
	}
	c.Append("#a", chat(10, "#a"))
	if err := c.Sync(); err != nil {
		t.Fatal(err)
	}
	d := open(t, crashCopy(t, c), Options{})
	if got := ids(t, d, "#a"); len(got) != 1 || got[0] != "id000010" {
		t.Errorf("after a crash: %v", got)
	}
}

package historystore

import (
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
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
	if err := s.Sync(); err != nil { // the redaction forces a checkpoint
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

// TestLogDeleteWaitsInTheLog: deleting a target's events (a room of joins
// and parts forgotten when it empties) waits in the log like an append,
// without a checkpoint, and a crash before the checkpoint loses neither
// the deletion nor what the target got after it, in the log or already in
// the file.
func TestLogDeleteWaitsInTheLog(t *testing.T) {
	defer func(d time.Duration) { checkpointInterval = d }(checkpointInterval)
	checkpointInterval = time.Hour // checkpoints only when forced

	s := open(t, tempPath(t), Options{})
	for i := range 10 {
		s.Append("#r", chat(i, "#r")) // in the file
	}
	if err := s.syncFile(); err != nil {
		t.Fatal(err)
	}
	for i := 10; i < 15; i++ {
		s.Append("#r", chat(i, "#r")) // only in the log
	}
	for i := range 4 {
		s.Append("#k", chat(100+i, "#k"))
	}
	for i := range 3 {
		s.Append("#n", chat(200+i, "#n")) // a target only the log knows
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	before := s.ckptGen
	s.mu.Unlock()
	if err := s.Delete("#r"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("#n"); err != nil {
		t.Fatal(err)
	}
	for i := 15; i < 18; i++ {
		s.Append("#r", chat(i, "#r")) // after the deletion
	}
	s.Append("#n", chat(203, "#n"))
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	after, logged := s.ckptGen, s.walGen
	s.mu.Unlock()
	if after != before || logged <= after {
		t.Fatalf("the deletion was checkpointed (file gen %d -> %d, log %d): it should wait in the log", before, after, logged)
	}
	want := []string{"id000015", "id000016", "id000017"}
	if got := ids(t, s, "#r"); !equalStrings(got, want) {
		t.Fatalf("#r before the checkpoint: %v", got)
	}

	c := open(t, crashCopy(t, s), Options{})
	if got := ids(t, c, "#r"); !equalStrings(got, want) {
		t.Errorf("#r after the crash: %v, want %v", got, want)
	}
	if got := ids(t, c, "#k"); len(got) != 4 {
		t.Errorf("#k after the crash: %v", got)
	}
	if got := ids(t, c, "#n"); !equalStrings(got, []string{"id000203"}) {
		t.Errorf("#n after the crash: %v", got)
	}
	if err := s.syncFile(); err != nil { // the live store's checkpoint
		t.Fatal(err)
	}
	if got := ids(t, s, "#r"); !equalStrings(got, want) {
		t.Errorf("#r after the checkpoint: %v", got)
	}
	if c.StoredBytes() != s.StoredBytes() {
		t.Errorf("StoredBytes %d after the crash's replay, %d after the checkpoint", c.StoredBytes(), s.StoredBytes())
	}
	// The replay is in the file: a second crash changes nothing.
	c2 := open(t, crashCopy(t, c), Options{})
	if got := ids(t, c2, "#r"); !equalStrings(got, want) {
		t.Errorf("#r after a second crash: %v", got)
	}
}

// TestLogDeleteSplitByCheckpoint: a logged deletion longer than one
// checkpoint deletes (deleteChunk) stays in the log until it is done, so
// a crash between its chunks does not bring back what Sync confirmed
// deleted.
func TestLogDeleteSplitByCheckpoint(t *testing.T) {
	defer func(d time.Duration) { checkpointInterval = d }(checkpointInterval)
	checkpointInterval = time.Hour

	s := open(t, tempPath(t), Options{})
	for i := range deleteChunk + 500 {
		s.Append("#r", chat(i, "#r"))
	}
	if err := s.syncFile(); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("#r"); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil { // in the log only
		t.Fatal(err)
	}
	var commits atomic.Int32
	s.wmu.Lock()
	s.commitFault = func() error { // one checkpoint, then the disk goes
		if commits.Add(1) > 1 {
			return syscall.EIO
		}
		return nil
	}
	s.wmu.Unlock()
	s.mu.Lock()
	s.ckptWanted, s.due = true, time.Now()
	s.mu.Unlock()
	nudge(s.urgent)
	eventually(t, "a checkpoint and a failed second one", func() bool { return commits.Load() >= 2 })

	c := open(t, crashCopy(t, s), Options{})
	if got := ids(t, c, "#r"); len(got) != 0 {
		t.Errorf("%d events of #r came back after a crash between the deletion's chunks", len(got))
	}
}

// TestBoundWithLoggedEventsWhileTheDiskIsAway: while commits fail, the
// memory bound holds with events in the log waiting for their checkpoint
// (they stay; the oldest others go), in the pending queue and in the
// target's own list alike.
func TestBoundWithLoggedEventsWhileTheDiskIsAway(t *testing.T) {
	defer func(d time.Duration) { checkpointInterval = d }(checkpointInterval)
	checkpointInterval = time.Hour

	s := open(t, tempPath(t), Options{MaxPending: 100})
	for i := range 10 {
		s.Append("#r", chat(i, "#r"))
	}
	if err := s.Sync(); err != nil { // in the log, waiting for a checkpoint
		t.Fatal(err)
	}
	s.wmu.Lock()
	s.commitFault = func() error { return syscall.ENOSPC }
	s.wmu.Unlock()
	for i := 10; i < 5000; i++ {
		s.Append("#r", chat(i, "#r"))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	mem := s.targets["#r"].mem
	if len(s.pending) > 110 || len(mem) > 110 {
		t.Fatalf("%d pending and %d in the target's list, want at most the 10 logged and the bound of 100", len(s.pending), len(mem))
	}
	// Queries read the target's list: the logged first, the newest last.
	if first, last := mem[0].e, mem[len(mem)-1].e; first == nil || first.ID != "id000000" || last == nil || last.ID != "id004999" {
		t.Fatalf("the target's list runs from %v to %v: want the first logged event to the newest", first, last)
	}
}

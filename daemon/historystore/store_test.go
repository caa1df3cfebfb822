package historystore

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/livechat/livechat/internal/eventrec"
	"github.com/livechat/livechat/protocol"
	"github.com/livechat/livechat/rooms"
	"github.com/livechat/livechat/rooms/logtest"
)

func tempPath(t *testing.T) string { return filepath.Join(t.TempDir(), "history.db") }

func open(t *testing.T, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	logtest.Run(t, func(t *testing.T) rooms.Log {
		s, err := Open(tempPath(t), Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Error(err)
			}
		})
		return s
	})
}

// restarting is a Log whose Sync closes the store and opens it again, so
// the conformance suite checks that everything survives a restart.
type restarting struct {
	t    *testing.T
	path string
	mu   sync.RWMutex
	s    *Store
}

func (r *restarting) Append(target string, e *rooms.Event) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	r.s.Append(target, e)
}

func (r *restarting) Sync() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.s.Close(); err != nil {
		return err
	}
	s, err := Open(r.path, Options{})
	if err != nil {
		return err
	}
	r.s = s
	return nil
}

func (r *restarting) Query(target string, q rooms.Query) ([]*rooms.Event, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.s.Query(target, q)
}

func (r *restarting) Redact(target, id string) (*rooms.Event, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.s.Redact(target, id)
}

func (r *restarting) Delete(target string) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.s.Delete(target)
}

func (r *restarting) Targets(prefix string) ([]rooms.TargetInfo, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.s.Targets(prefix)
}

func TestConformanceAcrossRestarts(t *testing.T) {
	logtest.Run(t, func(t *testing.T) rooms.Log {
		r := &restarting{t: t, path: tempPath(t)}
		var err error
		if r.s, err = Open(r.path, Options{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.s.Close() })
		return r
	})
}

func chat(i int, target string) *rooms.Event {
	return &rooms.Event{
		At:      rooms.Now(),
		ID:      fmt.Sprintf("id%06d", i),
		Source:  "nick!user@host.example",
		Account: "Nick",
		Origin:  "a:nick",
		Command: "PRIVMSG",
		Params:  []string{target, fmt.Sprintf("message %d: %s", i, strings.Repeat("lorem ipsum ", 6))},
	}
}

// TestRestartKeepsEverything: Close commits what is pending, and a new
// Open finds every event with its msgid and time, in order, and goes on
// appending after them.
func TestRestartKeepsEverything(t *testing.T) {
	path := tempPath(t)
	s, err := Open(path, Options{SyncInterval: time.Hour}) // only Close commits
	if err != nil {
		t.Fatal(err)
	}
	const targets, each = 20, 250
	want := map[string][]*rooms.Event{}
	for i := range targets * each {
		name := fmt.Sprintf("#r%d", i%targets)
		e := chat(i, name)
		s.Append(name, e)
		want[name] = append(want[name], e)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path, Options{})
	for name, events := range want {
		got, err := s.Query(name, rooms.Query{Sel: rooms.SelLatest, Limit: each * 2})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(events) {
			t.Fatalf("%s: %d events after restart, want %d", name, len(got), len(events))
		}
		for i := range got {
			if !logtest.Equal(got[i], events[i]) {
				t.Fatalf("%s event %d: got %+v want %+v", name, i, got[i], events[i])
			}
		}
		more := chat(1_000_000, name)
		s.Append(name, more)
		got, _ = s.Query(name, rooms.Query{Sel: rooms.SelLatest, Limit: 2})
		if len(got) != 2 || got[0].ID != events[len(events)-1].ID || got[1].ID != more.ID {
			t.Fatalf("%s: appending after a restart: %v", name, got)
		}
	}
	if s.StoredBytes() <= 0 || s.DiskBytes() <= 0 {
		t.Errorf("StoredBytes %d, DiskBytes %d", s.StoredBytes(), s.DiskBytes())
	}
}

func TestInUse(t *testing.T) {
	path := tempPath(t)
	open(t, path, Options{})
	start := time.Now()
	_, err := Open(path, Options{})
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("second Open = %v, want ErrInUse", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("second Open took %v", d)
	}
}

// setSchema rewrites a closed file's layout version, as another livechatd
// would have written it.
func setSchema(t *testing.T, path string, v uint32) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(spaceNames[spaceMeta]).Put(keySchema, encodeVersion(v))
	}); err != nil {
		t.Fatal(err)
	}
}

func getSchema(t *testing.T, path string) uint32 {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v uint32
	db.View(func(tx *bolt.Tx) error {
		v = uint32(tx.Bucket(spaceNames[spaceMeta]).Get(keySchema)[3])
		return nil
	})
	return v
}

func TestNewerSchemaRefused(t *testing.T) {
	path := tempPath(t)
	s := open(t, path, Options{})
	s.Append("#r", chat(1, "#r"))
	s.Close()
	setSchema(t, path, schemaVersion+1)
	before, _ := os.ReadFile(path)
	_, err := Open(path, Options{})
	if !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("Open = %v, want ErrNewerSchema", err)
	}
	t.Log(err)
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("refusing the file changed it")
	}
	r := OpenResilient(path, Options{})
	defer r.Close()
	if _, err := r.Query("#r", rooms.Query{Sel: rooms.SelLatest, Limit: 1}); !errors.Is(err, rooms.ErrHistoryUnavailable) {
		t.Errorf("resilient Query on a newer file = %v", err)
	}
}

// TestMigration pretends this code is layout 2 with a migration from 1,
// and opens a layout 1 file.
func TestMigration(t *testing.T) {
	path := tempPath(t)
	s := open(t, path, Options{})
	for i := range 10 {
		s.Append("#r", chat(i, "#r"))
	}
	s.Close()

	defer func(v uint32) { schemaVersion, migrations = v, map[uint32]func(writer) error{} }(schemaVersion)
	schemaVersion = 2
	runs := 0
	migrations = map[uint32]func(writer) error{1: func(w writer) error {
		// A layout 2 that upper-cases every message's text.
		runs++
		c := w.cursor(spaceEvents)
		type kv struct{ k, v []byte }
		var all []kv
		for k, v := c.First(); k != nil; k, v = c.Next() {
			e, err := eventrec.Decode(v)
			if err != nil {
				return err
			}
			e.Params[1] = strings.ToUpper(e.Params[1])
			all = append(all, kv{append([]byte(nil), k...), eventrec.Append(nil, e)})
		}
		for _, x := range all {
			if err := w.put(spaceEvents, x.k, x.v); err != nil {
				return err
			}
		}
		return nil
	}}
	s = open(t, path, Options{})
	got, err := s.Query("#r", rooms.Query{Sel: rooms.SelLatest, Limit: 100})
	if err != nil || len(got) != 10 || !strings.HasPrefix(got[0].Params[1], "MESSAGE 0") {
		t.Fatalf("after migrating: %v %v", got, err)
	}
	s.Close()
	if v := getSchema(t, path); v != 2 || runs != 1 {
		t.Fatalf("layout %d after %d runs, want 2 after 1", v, runs)
	}
	s = open(t, path, Options{})
	s.Close()
	if runs != 1 {
		t.Errorf("the migration ran again on a migrated file")
	}

	// A failing migration leaves the file as it was.
	path2 := tempPath(t)
	schemaVersion = 1
	s = open(t, path2, Options{})
	s.Append("#r", chat(1, "#r"))
	s.Close()
	schemaVersion = 2
	migrations[1] = func(w writer) error { return errors.New("boom") }
	if _, err := Open(path2, Options{}); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("Open with a failing migration = %v", err)
	}
	if v := getSchema(t, path2); v != 1 {
		t.Errorf("a failed migration left layout %d", v)
	}
}

// hooks records what the store reports.
type hooks struct {
	mu        sync.Mutex
	failed    map[string]int
	lastErr   error
	committed atomic.Int64
	commits   atomic.Int64
	retained  atomic.Int64
}

func (h *hooks) Hooks() Hooks {
	h.failed = map[string]int{}
	return Hooks{
		Committed: func(n int, _ int64, _ time.Duration) { h.committed.Add(int64(n)); h.commits.Add(1) },
		Failed: func(op string, err error) {
			h.mu.Lock()
			h.failed[op]++
			h.lastErr = err
			h.mu.Unlock()
		},
		Retained: func(n int) { h.retained.Add(int64(n)) },
	}
}

func (h *hooks) failures(op string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.failed[op]
}

// eventually waits for cond, failing after a deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func countAll(t *testing.T, s *Store, target string) int {
	t.Helper()
	got, err := s.Query(target, rooms.Query{Sel: rooms.SelLatest, Limit: 1 << 20, Events: true})
	if err != nil {
		t.Fatal(err)
	}
	return len(got)
}

// checkResilient opens a store on a path that cannot be opened, appends
// while it is unavailable, repairs the path and expects the store to
// recover with every event.
func checkResilient(t *testing.T, path string, repair func()) {
	var h hooks
	s := OpenResilient(path, Options{RetryInterval: 20 * time.Millisecond, Hooks: h.Hooks()})
	defer s.Close()
	if h.failures("open") == 0 {
		t.Fatal("no open failure reported")
	}
	h.mu.Lock()
	t.Logf("reported: %v", h.lastErr)
	h.mu.Unlock()
	if s.Available() {
		t.Fatal("Available on a file that cannot open")
	}
	for i := range 50 {
		s.Append("#r", chat(i, "#r"))
	}
	if _, err := s.Query("#r", rooms.Query{Sel: rooms.SelLatest, Limit: 10}); !errors.Is(err, rooms.ErrHistoryUnavailable) {
		t.Fatalf("Query while unavailable = %v", err)
	}
	if _, err := s.Targets(""); !errors.Is(err, rooms.ErrHistoryUnavailable) {
		t.Fatalf("Targets while unavailable = %v", err)
	}
	if err := s.Sync(); !errors.Is(err, rooms.ErrHistoryUnavailable) {
		t.Fatalf("Sync while unavailable = %v", err)
	}
	if e, _ := s.Redact("#r", "id000003"); e == nil || e.ID != "id000003" {
		t.Fatalf("Redact of a pending event while unavailable = %v", e)
	}
	repair()
	eventually(t, "recovery", s.Available)
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if n := countAll(t, s, "#r"); n != 49 {
		t.Fatalf("%d events after recovery, want 49", n)
	}
	s.Append("#r", chat(50, "#r"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, path, Options{})
	got, _ := s2.Query("#r", rooms.Query{Sel: rooms.SelLatest, Limit: 100})
	if len(got) != 50 || got[0].ID != "id000000" || got[49].ID != "id000050" {
		t.Fatalf("after reopening: %d events", len(got))
	}
}

func TestResilientGarbageFile(t *testing.T) {
	path := tempPath(t)
	garbage := bytes.Repeat([]byte("not a bbolt file "), 1000)
	if err := os.WriteFile(path, garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	checkResilient(t, path, func() { os.Rename(path, path+".corrupt") })
}

// TestResilientCorruptPages damages a real store one page at a time:
// whatever bbolt makes of it (an error, a panic, wrong bytes), the store
// neither panics nor hangs.
func TestResilientCorruptPages(t *testing.T) {
	path := tempPath(t)
	s := open(t, path, Options{})
	for i := range 2000 {
		s.Append(fmt.Sprintf("#r%d", i%10), chat(i, "#r"))
	}
	s.Close()
	used := s.DiskBytes() // the file is longer: bbolt preallocates
	good, _ := os.ReadFile(path)
	const page = 4096
	outcomes := map[string]int{}
	pages := int(used / page)
	for p := 0; p < pages; p += max(1, pages/40) {
		data := append([]byte(nil), good[:used]...)
		for i := p * page; i < (p+1)*page; i += 7 {
			data[i] ^= 0x5a
		}
		bad := filepath.Join(t.TempDir(), "bad.db")
		os.WriteFile(bad, data, 0o600)
		r := OpenResilient(bad, Options{RetryInterval: time.Hour})
		outcome := "refused"
		if r.Available() {
			outcome = "answers"
			for i := range 10 {
				if _, err := r.Query(fmt.Sprintf("#r%d", i), rooms.Query{Sel: rooms.SelLatest, Limit: 1000}); err != nil {
					if !errors.Is(err, rooms.ErrHistoryUnavailable) {
						t.Errorf("page %d: Query error %v is not ErrHistoryUnavailable", p, err)
					}
					outcome = "query errors"
				}
			}
			r.Targets("")
			r.Append("#r0", chat(5000, "#r0"))
			r.Sync()
		}
		r.Close()
		outcomes[outcome]++
	}
	t.Logf("damaged pages: %v", outcomes)
}

func TestResilientDirIsFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(dir, []byte("a file where the data dir should be"), 0o600); err != nil {
		t.Fatal(err)
	}
	checkResilient(t, filepath.Join(dir, "history.db"), func() {
		os.Remove(dir)
		os.Mkdir(dir, 0o700)
	})
}

func TestResilientReadOnlyDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ro")
	os.Mkdir(dir, 0o500)
	if f, err := os.Create(filepath.Join(dir, "probe")); err == nil {
		f.Close()
		t.Skip("a read-only directory is writable here (running as root)")
	}
	checkResilient(t, filepath.Join(dir, "history.db"), func() { os.Chmod(dir, 0o700) })
}

// TestCommitFailure: a full disk fails commits; the store reports it,
// answers unavailable, keeps the group (within the bound, dropping the
// oldest beyond it) and commits it once the disk is back.
func TestCommitFailure(t *testing.T) {
	var h hooks
	path := tempPath(t)
	s := open(t, path, Options{MaxPending: 100, Hooks: h.Hooks()})
	s.Append("#r", chat(0, "#r"))
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	var full atomic.Bool
	full.Store(true)
	s.wmu.Lock()
	s.commitFault = func() error {
		if full.Load() {
			return syscall.ENOSPC
		}
		return nil
	}
	s.wmu.Unlock()
	for i := 1; i <= 50; i++ {
		s.Append("#r", chat(i, "#r"))
	}
	eventually(t, "a commit failure", func() bool { return h.failures("commit") > 0 })
	if s.Available() {
		t.Error("Available while commits fail")
	}
	if err := s.Sync(); !errors.Is(err, rooms.ErrHistoryUnavailable) {
		t.Errorf("Sync while commits fail = %v", err)
	}
	if _, err := s.Query("#r", rooms.Query{Sel: rooms.SelLatest, Limit: 1}); !errors.Is(err, rooms.ErrHistoryUnavailable) {
		t.Errorf("Query while commits fail = %v", err)
	}
	for i := 51; i <= 150; i++ {
		s.Append("#r", chat(i, "#r"))
	}
	if d := s.Dropped(); d != 50 {
		t.Errorf("Dropped = %d, want 50", d)
	}
	for i := 151; i <= 5000; i++ {
		s.Append("#other", chat(i, "#other"))
	}
	s.mu.Lock()
	held := len(s.targets["#r"].mem) + len(s.targets["#other"].mem)
	s.mu.Unlock()
	if held > 100+maxBatch {
		t.Errorf("%d events held in memory with MaxPending 100", held)
	}
	full.Store(false)
	eventually(t, "recovery", s.Available)
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Query("#r", rooms.Query{Sel: rooms.SelLatest, Limit: 1000})
	if len(got) != 1 || got[0].ID != "id000000" {
		t.Fatalf("after recovery: #r holds %d events", len(got))
	}
	got, _ = s.Query("#other", rooms.Query{Sel: rooms.SelLatest, Limit: 1000})
	if len(got) != 100 || got[0].ID != "id004901" || got[99].ID != "id005000" {
		t.Fatalf("after recovery: #other holds %d events", len(got))
	}
	if h.failures("drop") == 0 {
		t.Error("drops not reported")
	}
}

// TestSyncAlways: concurrent Append+Sync callers are all durable when Sync
// returns, and share commits.
func TestSyncAlways(t *testing.T) {
	var h hooks
	s := open(t, tempPath(t), Options{SyncAlways: true, SyncInterval: time.Hour, Hooks: h.Hooks()})
	const workers, each = 8, 50
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				name := fmt.Sprintf("#r%d", w)
				s.Append(name, chat(w*each+i, name))
				if err := s.Sync(); err != nil {
					t.Error(err)
					return
				}
				s.mu.Lock()
				durable := s.durableGen
				s.mu.Unlock()
				if durable == 0 {
					t.Error("Sync returned before a commit")
				}
			}
		}()
	}
	wg.Wait()
	// The Committed hook runs just after the commit wakes the Syncs, so
	// the last one may still be on its way.
	deadline := time.Now().Add(10 * time.Second)
	for h.committed.Load() < workers*each && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := h.committed.Load(); n != workers*each {
		t.Errorf("committed %d events, want %d", n, workers*each)
	}
	t.Logf("%d syncs took %d commits", workers*each, h.commits.Load())
}

func TestRetentionMaxAge(t *testing.T) {
	var h hooks
	s := open(t, tempPath(t), Options{MaxAge: time.Hour, RetentionInterval: 10 * time.Millisecond, Hooks: h.Hooks()})
	old := time.Now().Add(-2 * time.Hour)
	for i := range 30 {
		e := chat(i, "#r")
		if i < 20 {
			e.At = old.Add(time.Duration(i) * time.Millisecond).Truncate(time.Millisecond)
		}
		s.Append("#r", e)
		s.Append("#old", e)
	}
	s.Sync()
	eventually(t, "retention", func() bool { return h.retained.Load() == 40 })
	if n := countAll(t, s, "#r"); n != 10 {
		t.Errorf("%d events left, want 10", n)
	}
	st, _ := s.Stats()
	if len(st) != 2 || st[0].Events != 10 || st[1].Events != 10 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestRetentionMaxPerTarget(t *testing.T) {
	var h hooks
	s := open(t, tempPath(t), Options{MaxPerTarget: 25, RetentionInterval: 10 * time.Millisecond, Hooks: h.Hooks()})
	for i := range 100 {
		s.Append("#big", chat(i, "#big"))
		if i < 10 {
			s.Append("#small", chat(i, "#small"))
		}
	}
	s.Sync()
	eventually(t, "retention", func() bool { return h.retained.Load() == 75 })
	got, _ := s.Query("#big", rooms.Query{Sel: rooms.SelLatest, Limit: 1000})
	if len(got) != 25 || got[0].ID != "id000075" {
		t.Errorf("#big keeps %d events from %s", len(got), got[0].ID)
	}
	if n := countAll(t, s, "#small"); n != 10 {
		t.Errorf("#small keeps %d", n)
	}
}

func TestRetentionMaxBytes(t *testing.T) {
	var h hooks
	path := tempPath(t)
	s := open(t, path, Options{Hooks: h.Hooks()})
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	// Three targets with interleaved times: the oldest go first, whichever
	// target they are in.
	for i := range 300 {
		name := fmt.Sprintf("#r%d", i%3)
		e := chat(i, name)
		e.At = base.Add(time.Duration(i) * time.Second)
		s.Append(name, e)
	}
	s.Sync()
	total := s.StoredBytes()
	s.Close()
	limit := total / 3
	s = open(t, path, Options{MaxBytes: limit, RetentionInterval: 10 * time.Millisecond, Hooks: h.Hooks()})
	eventually(t, "retention", func() bool { return s.retentions.Load() > 0 && s.StoredBytes() <= limit })
	if s.StoredBytes() < limit*8/10 {
		t.Errorf("retention kept %d bytes of %d allowed: too much deleted", s.StoredBytes(), limit)
	}
	var oldestKept time.Time
	for k := range 3 {
		got, _ := s.Query(fmt.Sprintf("#r%d", k), rooms.Query{Sel: rooms.SelLatest, Limit: 1000})
		if len(got) == 0 || len(got) > 100 {
			t.Fatalf("#r%d keeps %d", k, len(got))
		}
		if oldestKept.IsZero() || got[0].At.Before(oldestKept) {
			oldestKept = got[0].At
		}
	}
	// Everything newer than the oldest kept event is kept.
	kept := 0
	for k := range 3 {
		kept += countAll(t, s, fmt.Sprintf("#r%d", k))
	}
	if want := 300 - int(oldestKept.Sub(base)/time.Second); kept != want {
		t.Errorf("kept %d events, want the newest %d", kept, want)
	}
}

// fileHas reports whether the store's file holds text.
// fileHas reports whether text is in the store's files on the disk: the
// file or its log.
func fileHas(t *testing.T, path, text string) bool {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	wal, err := os.ReadFile(path + walSuffix)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return bytes.Contains(data, []byte(text)) || bytes.Contains(wal, []byte(text))
}

// TestScrub: redacted, deleted and forgotten text leaves the file within
// ScrubInterval; the rest stays.
func TestScrub(t *testing.T) {
	path := tempPath(t)
	s := open(t, path, Options{ScrubInterval: 50 * time.Millisecond})
	secret := func(what string) *rooms.Event {
		e := chat(0, "#r")
		e.ID = what
		e.Params = []string{"#r", "SECRET-" + what + "-" + strings.Repeat("x", 40)}
		return e
	}
	for i := range 200 {
		s.Append("#r", chat(i, "#r"))
	}
	s.Append("#r", secret("redacted"))
	s.Append("#gone", secret("deleted"))
	forgotten := secret("forgotten")
	forgotten.Account, forgotten.Origin = "Mallory", "a:mallory"
	s.Append("#other", forgotten)
	for i := 200; i < 400; i++ {
		s.Append("#r", chat(i, "#r"))
	}
	s.Sync()
	for _, w := range []string{"redacted", "deleted", "forgotten"} {
		if !fileHas(t, path, "SECRET-"+w) {
			t.Fatalf("%s text not in the file before deleting (test is broken)", w)
		}
	}
	if e, err := s.Redact("#r", "redacted"); err != nil || e == nil {
		t.Fatal(e, err)
	}
	if err := s.Delete("#gone"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Forget("MALLORY"); err != nil || n != 1 {
		t.Fatalf("Forget = %d, %v", n, err)
	}
	s.Sync()
	if !s.ScrubDue() {
		t.Fatal("no scrub scheduled")
	}
	eventually(t, "the scrub", func() bool { return !s.ScrubDue() })
	for _, w := range []string{"redacted", "deleted", "forgotten"} {
		if fileHas(t, path, "SECRET-"+w) {
			t.Errorf("%s text still in the file after the scrub", w)
		}
	}
	if n := countAll(t, s, "#r"); n != 400 {
		t.Errorf("#r keeps %d events after the scrub, want 400", n)
	}
	s.Append("#r", chat(1000, "#r"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path, Options{})
	if n := countAll(t, s, "#r"); n != 401 {
		t.Errorf("#r keeps %d events after reopening, want 401", n)
	}
	if s.ScrubDue() {
		t.Error("a scrub is due again after reopening")
	}
}

// TestScrubAfterRestart: a deletion committed just before a crash still
// gets scrubbed after the restart.
func TestScrubAfterRestart(t *testing.T) {
	path := tempPath(t)
	s := open(t, path, Options{})
	s.Append("#r", chat(1, "#r"))
	s.Sync()
	s.Redact("#r", "id000001")
	s.Close()
	s = open(t, path, Options{})
	if !s.ScrubDue() {
		t.Fatal("the scrub was forgotten across a restart")
	}
	if err := s.Scrub(); err != nil {
		t.Fatal(err)
	}
	if s.ScrubDue() || fileHas(t, path, "message 1:") {
		t.Error("the scrub did not happen")
	}
}

func TestDeleteLongHistory(t *testing.T) {
	path := tempPath(t)
	s := open(t, path, Options{})
	n := 2*deleteChunk + 500
	for i := range n {
		s.Append("#big", chat(i, "#big"))
	}
	s.Append("#keep", chat(0, "#keep"))
	s.Sync()
	s.Delete("#big")
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	st, _ := s.Stats()
	if len(st) != 1 || st[0].Name != "#keep" {
		t.Errorf("Stats after Delete = %+v", st)
	}
	s.Close()
	s = open(t, path, Options{})
	if got := countAll(t, s, "#big"); got != 0 {
		t.Errorf("%d events after Delete and restart", got)
	}
	if s.StoredBytes() <= 0 || s.StoredBytes() > 1000 {
		t.Errorf("StoredBytes = %d after deleting all but one event", s.StoredBytes())
	}
}

func TestStatsExport(t *testing.T) {
	s := open(t, tempPath(t), Options{})
	first := chat(1, "#r")
	first.Tags = []protocol.Tag{{Key: "+draft/reply", Value: "x"}}
	s.Append("#r", first)
	s.Append("#r", &rooms.Event{At: first.At.Add(time.Second), ID: "j", Source: "x!y@z", Command: "JOIN", Params: []string{"#r"}, ExtParams: []string{"#r", "*", "Real"}})
	conv := rooms.ConversationTarget("a:x", "a:y")
	s.Append(conv, chat(3, "y"))
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 2 || st[0].Name != "#r" || st[0].Events != 2 || st[0].Bytes <= 0 ||
		!st[0].Oldest.Equal(first.At) || !st[0].Newest.Equal(first.At.Add(time.Second)) || st[1].Name != conv {
		t.Fatalf("Stats = %+v", st)
	}
	var buf bytes.Buffer
	n, err := s.Export("#r", &buf)
	if err != nil || n != 2 {
		t.Fatalf("Export = %d, %v", n, err)
	}
	sc := bufio.NewScanner(&buf)
	var lines []ExportedEvent
	for sc.Scan() {
		var x ExportedEvent
		if err := json.Unmarshal(sc.Bytes(), &x); err != nil {
			t.Fatalf("%q: %v", sc.Text(), err)
		}
		lines = append(lines, x)
	}
	if len(lines) != 2 || lines[0].ID != first.ID || lines[0].Tags["+draft/reply"] != "x" ||
		lines[0].Time != first.At.UTC().Format(rooms.TimeFormat) || lines[1].ExtParams[2] != "Real" || lines[0].Origin != "a:nick" {
		t.Errorf("exported %+v", lines)
	}
	if n, err := s.Export("#none", &buf); n != 0 || err != nil {
		t.Errorf("Export of an unknown target = %d, %v", n, err)
	}
}

// TestMaxScan: a query without Events reads a bounded number of events
// looking for messages.
func TestMaxScan(t *testing.T) {
	s := open(t, tempPath(t), Options{MaxScan: 100})
	s.Append("#r", chat(1, "#r"))
	for i := range 500 {
		e := chat(i+2, "#r")
		e.Command = "JOIN"
		s.Append("#r", e)
	}
	s.Sync()
	got, err := s.Query("#r", rooms.Query{Sel: rooms.SelLatest, Limit: 10})
	if err != nil || len(got) != 0 {
		t.Errorf("LATEST past 500 joins with MaxScan 100 = %d events, %v", len(got), err)
	}
	got, _ = s.Query("#r", rooms.Query{Sel: rooms.SelAfter, A: rooms.Bound{ID: "id000001"}, Limit: 10, Events: true})
	if len(got) != 10 {
		t.Errorf("with Events the bound does not bite: %d", len(got))
	}
}

func TestCloseIsFinal(t *testing.T) {
	s := open(t, tempPath(t), Options{})
	s.Close()
	s.Append("#r", chat(1, "#r"))
	if _, err := s.Query("#r", rooms.Query{Sel: rooms.SelLatest, Limit: 1}); !errors.Is(err, rooms.ErrHistoryUnavailable) {
		t.Errorf("Query after Close = %v", err)
	}
	if err := s.Sync(); !errors.Is(err, rooms.ErrHistoryUnavailable) {
		t.Errorf("Sync after Close = %v", err)
	}
	if s.Close() != nil {
		t.Error("second Close failed")
	}
}

// TestResilientInUse: a store that cannot open yet (another process holds
// the file) takes appends to a target the file already has, and places
// them after the file's events once it opens.
func TestResilientInUse(t *testing.T) {
	path := tempPath(t)
	first, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		first.Append("#r", chat(i, "#r"))
	}
	first.Sync()
	var h hooks
	s := OpenResilient(path, Options{RetryInterval: 20 * time.Millisecond, Hooks: h.Hooks()})
	defer s.Close()
	h.mu.Lock()
	if !errors.Is(h.lastErr, ErrInUse) {
		t.Errorf("reported %v, want ErrInUse", h.lastErr)
	}
	h.mu.Unlock()
	for i := 10; i < 15; i++ {
		s.Append("#r", chat(i, "#r"))
		s.Append("#new", chat(i, "#new"))
	}
	first.Close()
	eventually(t, "recovery", s.Available)
	for _, synced := range []bool{false, true} {
		if synced {
			s.Sync()
		}
		got, _ := s.Query("#r", rooms.Query{Sel: rooms.SelLatest, Limit: 100})
		if len(got) != 15 {
			t.Fatalf("%d events, want 15", len(got))
		}
		for i, e := range got {
			if e.ID != fmt.Sprintf("id%06d", i) {
				t.Fatalf("event %d is %s", i, e.ID)
			}
		}
		got, _ = s.Query("#r", rooms.Query{Sel: rooms.SelAfter, A: rooms.Bound{ID: "id000009"}, Limit: 2})
		if len(got) != 2 || got[0].ID != "id000010" {
			t.Fatalf("AFTER the file's last event: %v", got)
		}
		if n := countAll(t, s, "#new"); n != 5 {
			t.Fatalf("#new holds %d", n)
		}
	}
}

// TestScrubKeepsCommitting: commits go on while a scrub copies, and what
// they wrote (appends, a redaction) is in the scrubbed file.
func TestScrubKeepsCommitting(t *testing.T) {
	path := tempPath(t)
	s := open(t, path, Options{ScrubInterval: time.Hour})
	for i := range 100 {
		s.Append("#r", chat(i, "#r"))
	}
	s.Sync()
	s.Redact("#r", "id000000")
	s.Sync()
	copied := false
	s.scrubCopying = func() {
		copied = true
		for i := 100; i < 150; i++ {
			s.Append("#r", chat(i, "#r"))
		}
		done := make(chan error)
		go func() { done <- s.Sync() }()
		select {
		case err := <-done:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Sync waited for the scrub's copy")
		}
		if e, _ := s.Redact("#r", "id000050"); e == nil {
			t.Error("Redact during the copy found nothing")
		}
		s.Sync()
	}
	if err := s.Scrub(); err != nil {
		t.Fatal(err)
	}
	if !copied {
		t.Fatal("the copy hook did not run")
	}
	s.scrubCopying = nil
	if fileHas(t, path, "message 0:") {
		t.Error("text redacted before the scrub is still in the file")
	}
	if !s.ScrubDue() {
		t.Error("a redaction during the scrub scheduled no scrub")
	}
	if err := s.Scrub(); err != nil {
		t.Fatal(err)
	}
	if fileHas(t, path, "message 50:") || s.ScrubDue() {
		t.Error("the second scrub did not remove the text redacted during the first")
	}
	check := func() {
		got, _ := s.Query("#r", rooms.Query{Sel: rooms.SelLatest, Limit: 1000})
		if len(got) != 148 || got[0].ID != "id000001" || got[147].ID != "id000149" {
			t.Fatalf("%d events", len(got))
		}
		st, _ := s.Stats()
		if len(st) != 1 || st[0].Events != 148 {
			t.Fatalf("Stats = %+v", st)
		}
	}
	check()
	s.Close()
	s = open(t, path, Options{})
	check()
}

// TestSyncTimeout: a disk that hangs fails Sync after SyncTimeout instead
// of freezing its callers; appends go on, and the commit lands once the
// disk answers.
func TestSyncTimeout(t *testing.T) {
	s := open(t, tempPath(t), Options{SyncTimeout: 50 * time.Millisecond})
	release := make(chan struct{})
	s.wmu.Lock()
	s.commitFault = func() error { <-release; return nil }
	s.wmu.Unlock()
	s.Append("#r", chat(1, "#r"))
	start := time.Now()
	if err := s.Sync(); !errors.Is(err, rooms.ErrHistoryUnavailable) {
		t.Fatalf("Sync on a hung disk = %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Sync took %v", d)
	}
	s.Append("#r", chat(2, "#r"))
	if n := countAll(t, s, "#r"); n != 2 {
		t.Errorf("Query on a hung disk sees %d events", n)
	}
	close(release)
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
}

// TestStaleScrubCopyRemoved: a scrub's copy left by a kill -9 half-way
// does not stay on the disk after the next open.
func TestStaleScrubCopyRemoved(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.db")
	if err := os.WriteFile(path+".scrub", bytes.Repeat([]byte("x"), 1<<16), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := os.Stat(path + ".scrub"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the stale copy is still there: %v", err)
	}
}

// TestIdleWriterSleeps: an append is committed within the interval without
// a Sync, and so is a deletion; with nothing queued the writer does not
// wake at all (it used to tick every SyncInterval).
func TestIdleWriterSleeps(t *testing.T) {
	committed := make(chan int, 16)
	s := open(t, tempPath(t), Options{SyncInterval: time.Millisecond, Hooks: Hooks{
		Committed: func(events int, _ int64, _ time.Duration) { committed <- events },
	}})
	s.Append("#r", chat(0, "#r"))
	select {
	case n := <-committed:
		if n != 1 {
			t.Fatalf("committed %d events, want 1", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("an append was not committed without a Sync")
	}
	if err := s.Delete("#r"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the deletion committed", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.durableGen == s.gen && len(s.ops) == 0
	})
	woke := s.wakes.Load()
	// Observing that nothing happens needs a wait: 50 intervals.
	time.Sleep(50 * time.Millisecond)
	if n := s.wakes.Load() - woke; n != 0 {
		t.Errorf("the idle writer woke %d times in 50 intervals", n)
	}
}

// Package historystore keeps room and conversation history in a file under
// data_dir: the embedded rooms.Log (history.store: file).
//
// # Writes
//
// Append never touches the disk: it gives the event its place (a per-target
// sequence number) and queues it. One writer goroutine commits the queue
// as a group SyncInterval after its first event, with one write and one
// fdatasync of a log (wal.go), so a kill -9 loses at most the last
// interval while thousands of messages a second cost a hundred commits;
// the logged events go into the file in bulk about once a second. Sync
// commits at once and shares that commit with every caller waiting at the
// time (history.sync: always). Queries read the file and merge the queue,
// so they see every event appended before them.
//
// # Layout
//
// Each target has a number (tid). Events are keyed by tid and sequence,
// big-endian, so a target's events are one ordered range: the newest N, or
// those just before or after a position, are a seek and a short walk. A
// msgid index (tid, msgid -> sequence) places msgid bounds; time bounds
// are a binary search over the sequence, since events are appended in time
// order. Every query costs O(log n + what it returns) however long the
// history.
//
// # Faults
//
// OpenResilient never fails: while the file cannot be opened (a read-only
// or full disk, a corrupt file, a newer format) or commits fail, queries
// answer rooms.ErrHistoryUnavailable, appends wait in memory up to a bound
// (the oldest are dropped beyond it, and counted), and the store retries
// until the disk is back.
//
// # Deleting
//
// Redact, Delete and Forget remove events from the file; because a freed
// page keeps its old bytes until reused, they also schedule a scrub: the
// live data is copied to a new file that replaces the old one, so redacted
// text is gone from the disk within ScrubInterval. Commits go on during
// the copy (they are written again to the copy before the swap).
//
// # Costs (measured on the 2-core development machine)
//
// A chat line of 80 characters costs about 214 bytes of keys and values
// (what MaxBytes counts), 291 bytes of file as written and 256 after a
// scrub. Group commit sustains about 200,000 appends a second across 100
// rooms; a commit of the ~10 events a chat writes in 10 ms costs about
// 0.1 ms of CPU (0.7 ms when each commit was a bbolt transaction);
// Append+Sync (sync: always) takes 0.13-0.19 ms alone, 0.015 ms each with
// 16 rooms sharing commits. On a room of 1,000,000 events a page
// of 100 (LATEST, BEFORE/AFTER a msgid or a time, AROUND, BETWEEN) takes
// 0.03-0.13 ms with a warm page cache and about 40 KB. bench_test.go has
// the benchmarks.
package historystore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livechat/livechat/rooms"
)

// Defaults for Options' zero values.
const (
	// DefaultSyncInterval bounds what a kill -9 loses. 10 ms is a hundred
	// fsyncs a second at most, which any disk sustains, and a hundredth of
	// what Redis's appendfsync everysec may lose.
	DefaultSyncInterval      = 10 * time.Millisecond
	DefaultMaxPending        = 100_000
	DefaultMaxScan           = 100_000
	DefaultRetentionInterval = time.Minute
	DefaultScrubInterval     = 10 * time.Minute
	DefaultRetryInterval     = 30 * time.Second
	DefaultSyncTimeout       = 5 * time.Second
)

// Options tune a Store. The zero value is usable: defaults everywhere, no
// retention.
type Options struct {
	// SyncInterval is the group commit period: a kill -9 loses at most
	// the events of the last interval.
	SyncInterval time.Duration
	// SyncAlways starts a commit as soon as an event is appended instead
	// of waiting for the interval; rooms then call Sync before delivering.
	SyncAlways bool
	// SyncTimeout bounds how long Sync waits for a commit: a disk that
	// hangs must not freeze the rooms that sync always. Sync then fails
	// with rooms.ErrHistoryUnavailable and the rooms decide.
	SyncTimeout time.Duration

	// Retention, 0 for none: events older than MaxAge, beyond the newest
	// MaxPerTarget of a target, and the oldest across all targets while
	// the events and their index take more than MaxBytes.
	MaxAge       time.Duration
	MaxPerTarget int
	MaxBytes     int64

	// MaxPending bounds the events waiting in memory for the disk; beyond
	// it the oldest are dropped (and reported through Hooks.Failed).
	MaxPending int
	// MaxScan bounds the events one query reads past those it returns
	// (a query without Events skipping joins and parts).
	MaxScan int

	RetentionInterval time.Duration // how often retention runs
	ScrubInterval     time.Duration // how soon deleted text leaves the disk
	RetryInterval     time.Duration // how often an unavailable file is retried

	Hooks Hooks
}

// Hooks let the daemon count and log what the store does. Any may be nil.
// They are called from the store's goroutines and must not block.
type Hooks struct {
	// Committed reports a group commit: the events made durable, the
	// bytes they and their index entries take in the file, and how long
	// the log's write and fdatasync took (or the file's transaction,
	// for events a checkpoint wrote that the log had not). Each event is
	// reported once.
	Committed func(events int, bytes int64, took time.Duration)
	// Failed reports an error in an operation: "open", "commit",
	// "drop" (appends lost to the memory bound), "retention", "scrub",
	// "query" (a damaged file).
	Failed func(op string, err error)
	// Retained reports events deleted by retention.
	Retained func(deleted int)
}

func (o *Options) fill() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.SyncInterval, DefaultSyncInterval)
	def(&o.RetentionInterval, DefaultRetentionInterval)
	def(&o.ScrubInterval, DefaultScrubInterval)
	def(&o.RetryInterval, DefaultRetryInterval)
	def(&o.SyncTimeout, DefaultSyncTimeout)
	if o.MaxPending <= 0 {
		o.MaxPending = DefaultMaxPending
	}
	if o.MaxScan <= 0 {
		o.MaxScan = DefaultMaxScan
	}
}

// ErrDropped is reported through Hooks.Failed when appends are lost
// because the disk could not keep up within MaxPending.
var ErrDropped = errors.New("historystore: events dropped: the disk is not keeping up")

// errClosed: the store was closed.
var errClosed = fmt.Errorf("historystore: closed: %w", rooms.ErrHistoryUnavailable)

// Store is a rooms.Log in a file. Safe for concurrent use.
type Store struct {
	path string
	opts Options

	// wmu orders the write transactions (group commits, retention, admin
	// deletions) and keeps them out of a scrub's copy.
	wmu sync.Mutex
	// dbMu guards db: readers share it, opening, closing and the scrub's
	// swap take it alone.
	dbMu sync.RWMutex
	db   engine

	mu       sync.Mutex
	open     bool // db != nil, readable under mu
	targets  map[string]*target
	nextTid  uint32 // 0 until the file was opened once
	pending  []*entry
	ops      []op
	gen      uint64 // appends and ops so far
	takenGen uint64 // the writer holds (or wrote) everything up to here
	// durableGen: everything up to here is committed.
	durableGen uint64
	committed  chan struct{} // closed and replaced after each commit attempt
	// due is when the oldest queued append or deletion must be committed
	// (queued + SyncInterval), zero while nothing waits: the writer sleeps
	// without a timer when idle instead of waking every interval.
	due time.Time
	// The log (see wal.go): entries up to walGen are in it or in the
	// file, those up to ckptGen in the file; ckptDue is when the logged
	// ones must go into the file, ckptWanted asks for that at once.
	walGen     uint64
	ckptGen    uint64
	ckptDue    time.Time
	ckptWanted bool
	failing    error // the last commit's error, nil once one succeeds
	closed     bool
	scrubAt    time.Time // zero: no scrub due

	dropped    atomic.Uint64
	dropSeen   uint64 // dropped already reported, writer only
	stored     atomic.Int64
	diskBytes  atomic.Int64
	urgent     chan struct{}
	queued     chan struct{} // due was set: the writer arms its timer
	maintWake  chan struct{}
	stop       chan struct{}
	wal        *walLog // the log, from the first open to Close; under wmu
	wg         sync.WaitGroup
	closeErr   error
	retentions atomic.Uint64 // retention runs completed, for tests
	wakes      atomic.Uint64 // times the writer woke, for tests

	// While a scrub copies the file, commits are also kept in journal, to
	// be written again to the copy. journaled counts their events.
	scrubMu    sync.Mutex // held by a scrub, and by deletions outside the writer
	journaling bool       // under wmu
	journal    []journalItem
	journaled  int

	// commitFault, set by tests, fails a commit's transaction;
	// scrubCopying runs while a scrub copies.
	commitFault  func() error
	scrubCopying func()
}

type journalItem struct {
	batch []*entry
	ops   []op
}

var _ rooms.Log = (*Store)(nil)

// target is a target's state in memory.
type target struct {
	name string
	tid  uint32 // 0 until the file assigns one
	next uint64 // the sequence the next event gets
	// mem holds the events not yet committed, in the writer's batch or
	// pending, by sequence. Dead ones were dropped or redacted.
	mem []*entry
	// hideBelow and hide are events still in the file that Delete and
	// Redact removed: queries skip them until the writer deletes them.
	hideBelow uint64
	hide      map[uint64]struct{}
}

type entry struct {
	t    *target
	seq  uint64
	gen  uint64
	e    *rooms.Event
	dead bool   // only set while pending (gen > takenGen), under mu
	lsn  uint64 // its record in the log, 0 if none; the writer's
}

type opKind uint8

const (
	opRedact      opKind = iota // delete event seq
	opDeleteBelow               // delete every event before seq
)

type op struct {
	kind opKind
	t    *target
	seq  uint64
	gen  uint64
	lsn  uint64 // its record in the log, 0 if none (see logged)
	// partial: a checkpoint did part of it (deleteChunk) and the log
	// that held it may have started over: only the file can finish it.
	partial bool
}

// logged reports whether o may wait in the log for the next checkpoint.
// A deletion of a whole run of a target (opDeleteBelow: a room that held
// only joins and parts, forgotten when it empties) may: replaying it
// drops the run from the log and from the file alike. A redaction may
// not: the text it removes must not stay on disk, in the log, for the
// checkpoint interval.
func (o *op) logged() bool { return o.kind == opDeleteBelow && !o.partial }

// Open opens (creating if needed) the store at path, failing when it cannot:
// for the admin commands. A file held by a running daemon fails fast with
// ErrInUse; one written by a newer livechatd with ErrNewerSchema.
func Open(path string, opts Options) (*Store, error) {
	s := newStore(path, opts)
	if err := s.attach(); err != nil {
		return nil, err
	}
	s.start()
	return s, nil
}

// OpenResilient opens the store at path for the daemon: it never fails.
// While the file cannot be opened it reports why through Hooks.Failed,
// answers queries with rooms.ErrHistoryUnavailable, keeps appends in
// memory (up to MaxPending) and retries every RetryInterval.
func OpenResilient(path string, opts Options) *Store {
	s := newStore(path, opts)
	if err := s.attach(); err != nil {
		s.failed("open", err)
	}
	s.start()
	return s
}

func newStore(path string, opts Options) *Store {
	opts.fill()
	return &Store{
		path:      path,
		opts:      opts,
		targets:   make(map[string]*target),
		committed: make(chan struct{}),
		urgent:    make(chan struct{}, 1),
		queued:    make(chan struct{}, 1),
		maintWake: make(chan struct{}, 1),
		stop:      make(chan struct{}),
	}
}

func (s *Store) start() {
	s.wg.Add(2)
	go s.writer()
	go s.maintain()
}

func (s *Store) failed(op string, err error) {
	if s.opts.Hooks.Failed != nil {
		s.opts.Hooks.Failed(op, err)
	}
}

func nudge(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Append queues e as target's newest event. It never waits on the disk.
func (s *Store) Append(name string, e *rooms.Event) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.dropped.Add(1)
		return
	}
	t := s.target(name)
	s.gen++
	en := &entry{t: t, seq: t.next, gen: s.gen, e: e}
	t.next++
	t.mem = append(t.mem, en)
	s.pending = append(s.pending, en)
	s.trimPending()
	n := len(s.pending)
	first := s.due.IsZero()
	if first {
		s.due = time.Now().Add(s.opts.SyncInterval)
	}
	s.mu.Unlock()
	if s.opts.SyncAlways || n >= commitEarly {
		nudge(s.urgent)
	} else if first {
		nudge(s.queued)
	}
}

// queuedLocked starts the interval for a deletion queued with mu held.
func (s *Store) queuedLocked() {
	if s.due.IsZero() {
		s.due = time.Now().Add(s.opts.SyncInterval)
		nudge(s.queued)
	}
}

// commitEarly starts a commit before the interval when this many events
// wait: a bulk load should not build one huge transaction.
const commitEarly = maxBatch

// target returns name's state, creating it. Called with mu held.
func (s *Store) target(name string) *target {
	t := s.targets[name]
	if t == nil {
		t = &target{name: name, next: 1}
		if s.nextTid > 0 {
			t.tid = s.nextTid
			s.nextTid++
		}
		s.targets[name] = t
	}
	return t
}

// trimPending drops the oldest pending events beyond the bound. Those in
// the log are durable and stay (a checkpoint writes them; at most about
// commitEarly of them wait). Called with mu held.
func (s *Store) trimPending() {
	if len(s.pending) <= s.opts.MaxPending {
		return
	}
	logged := sort.Search(len(s.pending), func(i int) bool { return s.pending[i].gen > s.walGen })
	k := len(s.pending) - logged - s.opts.MaxPending
	if k <= 0 {
		return
	}
	// Drop pending[logged:logged+k] in one move of the short logged
	// prefix (at most about commitEarly), not of the long tail: this
	// runs on every Append while the disk is away.
	touched := map[*target]bool{}
	for _, en := range s.pending[logged : logged+k] {
		if !en.dead {
			en.dead, en.e = true, nil
			s.dropped.Add(1)
		}
		touched[en.t] = true
	}
	copy(s.pending[k:logged+k], s.pending[:logged])
	clear(s.pending[:k])
	s.pending = s.pending[k:]
	// While the disk is away nothing prunes t.mem either: drop the dead
	// run that follows its logged prefix, or it grows for as long as the
	// outage.
	for t := range touched {
		i := sort.Search(len(t.mem), func(i int) bool { return t.mem[i].gen > s.walGen })
		j := i
		for j < len(t.mem) && t.mem[j].dead {
			j++
		}
		if j > i {
			n := j - i
			copy(t.mem[n:j], t.mem[:i])
			clear(t.mem[:n])
			t.mem = t.mem[n:]
		}
	}
}

// Dropped returns how many appended events were lost to the memory bound
// (or arrived after Close).
func (s *Store) Dropped() uint64 { return s.dropped.Load() }

// StoredBytes returns the bytes the stored events and their index entries
// take, which MaxBytes bounds. The file is larger by the engine's page
// overhead.
func (s *Store) StoredBytes() int64 { return s.stored.Load() }

// DiskBytes returns the bytes the file uses on disk, as of the last
// checkpoint: its pages in use or free for reuse. bbolt extends the file
// ahead of need, so ls may show it larger.
func (s *Store) DiskBytes() int64 { return s.diskBytes.Load() }

// Sync returns once every event appended before it is committed, starting
// a commit at once. Callers arriving while a commit runs share the next.
// It fails with rooms.ErrHistoryUnavailable at once while the store cannot
// write, and after SyncTimeout when the disk hangs.
func (s *Store) Sync() error { return s.sync(false) }

// syncFile is Sync into the file itself (a checkpoint), not only the log:
// for what reads the file alone (Stats, Export, Backup, Forget, Scrub).
func (s *Store) syncFile() error { return s.sync(true) }

func (s *Store) sync(file bool) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errClosed
	}
	want := s.gen
	var timeout <-chan time.Time
	for s.durableGen < want || file && s.ckptGen < want {
		if err := s.unavailable(); err != nil {
			s.mu.Unlock()
			return err
		}
		if file {
			s.ckptWanted = true
		}
		ch := s.committed
		s.mu.Unlock()
		nudge(s.urgent)
		if timeout == nil {
			t := time.NewTimer(s.opts.SyncTimeout)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-ch:
		case <-timeout:
			return fmt.Errorf("%w: no commit for %v", rooms.ErrHistoryUnavailable, s.opts.SyncTimeout)
		}
		s.mu.Lock()
	}
	s.mu.Unlock()
	return nil
}

// unavailable says why the store cannot answer or write now, or nil.
// Called with mu held.
func (s *Store) unavailable() error {
	switch {
	case s.closed:
		return errClosed
	case !s.open:
		return fmt.Errorf("%w: the history file is not open", rooms.ErrHistoryUnavailable)
	case s.failing != nil:
		return fmt.Errorf("%w: %v", rooms.ErrHistoryUnavailable, s.failing)
	}
	return nil
}

// Available reports whether the store answers queries now.
func (s *Store) Available() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.unavailable() == nil
}

// notify wakes Sync callers after a commit attempt. Called with mu held.
func (s *Store) notify() {
	close(s.committed)
	s.committed = make(chan struct{})
}

// writer commits the queue SyncInterval after the first append or
// deletion that waits (or at once when urged), and reopens the file while
// it is unavailable. With nothing queued it sleeps without a timer.
func (s *Store) writer() {
	defer s.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var retryAt time.Time
	var backoff time.Duration
	for {
		s.mu.Lock()
		wake, open := s.due, s.open
		if !s.ckptDue.IsZero() && (wake.IsZero() || s.ckptDue.Before(wake)) {
			wake = s.ckptDue
		}
		s.mu.Unlock()
		switch {
		case !retryAt.IsZero():
			wake = retryAt // failing: nothing is tried before then
		case !open:
			wake = time.Now()
		}
		var fire <-chan time.Time
		if !wake.IsZero() {
			timer.Reset(time.Until(wake))
			fire = timer.C
		}
		select {
		case <-s.stop:
			s.final()
			return
		case <-fire:
		case <-s.urgent:
		case <-s.queued:
			timer.Stop()
			continue // arm the timer for the new due
		}
		s.wakes.Add(1)
		timer.Stop()
		now := time.Now()
		if now.Before(retryAt) {
			continue
		}
		if !open {
			if err := s.attach(); err != nil {
				s.failed("open", err)
				retryAt = now.Add(s.opts.RetryInterval)
				s.reportDrops()
				continue
			}
		}
		err := s.commit()
		s.reportDrops()
		if err == nil {
			backoff, retryAt = 0, time.Time{}
			continue
		}
		if errors.Is(err, errEngine) {
			// The engine panicked: reopen the file from scratch.
			s.detach()
			retryAt = now.Add(s.opts.RetryInterval)
			continue
		}
		backoff = min(max(2*backoff, 100*time.Millisecond), s.opts.RetryInterval)
		retryAt = now.Add(backoff)
	}
}

func (s *Store) reportDrops() {
	if d := s.dropped.Load(); d > s.dropSeen {
		s.failed("drop", fmt.Errorf("%w: %d events lost (%d in all)", ErrDropped, d-s.dropSeen, d))
		s.dropSeen = d
	}
}

// final commits what is queued when the store closes.
func (s *Store) final() {
	for {
		s.mu.Lock()
		left := len(s.pending) + len(s.ops)
		open := s.open
		s.mu.Unlock()
		if left == 0 || !open {
			break
		}
		// Each commit makes progress: events up to maxBatch, deletions
		// up to deleteChunk.
		if err := s.commit(); err != nil {
			s.closeErr = err
			break
		}
	}
	s.mu.Lock()
	lost := 0
	for _, en := range s.pending {
		if !en.dead {
			lost++
		}
	}
	s.mu.Unlock()
	if lost > 0 && s.closeErr == nil {
		s.closeErr = fmt.Errorf("historystore: %d events could not be written", lost)
	}
	s.reportDrops()
}

// Close commits everything appended and closes the file: nothing
// appended before Close is lost unless the disk fails, which Close
// reports. Appends after Close are dropped.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.notify()
	s.mu.Unlock()
	close(s.stop)
	s.wg.Wait()
	s.mu.Lock()
	s.open = false
	s.notify()
	s.mu.Unlock()
	s.wmu.Lock()
	if s.wal != nil {
		s.wal.f.Close()
		s.wal = nil
	}
	s.wmu.Unlock()
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	if s.db != nil {
		if err := s.db.close(); err != nil && s.closeErr == nil {
			s.closeErr = err
		}
		s.db = nil
	}
	return s.closeErr
}

// detach closes a file that failed, so the writer reopens it.
func (s *Store) detach() {
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	if s.db != nil {
		s.db.close()
		s.db = nil
	}
	s.mu.Lock()
	s.open = false
	s.notify()
	s.mu.Unlock()
}

// Keys.

const (
	evKeyLen = 12
	seqLen   = 8
)

func putEvKey(b []byte, tid uint32, seq uint64) []byte {
	b = binary.BigEndian.AppendUint32(b, tid)
	return binary.BigEndian.AppendUint64(b, seq)
}

func evKey(tid uint32, seq uint64) []byte { return putEvKey(make([]byte, 0, evKeyLen), tid, seq) }

func idKey(tid uint32, id string) []byte {
	b := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(id)), tid)
	return append(b, id...)
}

func keyTid(k []byte) uint32 { return binary.BigEndian.Uint32(k) }
func keySeq(k []byte) uint64 { return binary.BigEndian.Uint64(k[4:]) }

// targetRecord is a target's entry in spaceTargets.
type targetRecord struct {
	tid    uint32
	events int64
	bytes  int64
}

const targetRecordLen = 20

func (r targetRecord) encode() []byte {
	b := binary.BigEndian.AppendUint32(make([]byte, 0, targetRecordLen), r.tid)
	b = binary.BigEndian.AppendUint64(b, uint64(r.events))
	return binary.BigEndian.AppendUint64(b, uint64(r.bytes))
}

func decodeTargetRecord(v []byte) (targetRecord, error) {
	if len(v) != targetRecordLen {
		return targetRecord{}, fmt.Errorf("historystore: corrupt target record")
	}
	return targetRecord{
		tid:    binary.BigEndian.Uint32(v),
		events: int64(binary.BigEndian.Uint64(v[4:])),
		bytes:  int64(binary.BigEndian.Uint64(v[12:])),
	}, nil
}

// lastSeq returns the sequence of tid's newest event in the file, 0 if none.
func lastSeq(r reader, tid uint32) uint64 {
	c := r.cursor(spaceEvents)
	k, _ := c.Seek(evKey(tid+1, 0))
	if k == nil {
		k, _ = c.Last()
	} else {
		k, _ = c.Prev()
	}
	if len(k) == evKeyLen && keyTid(k) == tid {
		return keySeq(k)
	}
	return 0
}

type loaded struct {
	name string
	rec  targetRecord
	last uint64
}

// attach opens the file, migrates it, and merges what memory holds.
func (s *Store) attach() error {
	eng, err := openBolt(s.path)
	if err != nil {
		if errors.Is(err, ErrInUse) {
			return err
		}
		return fmt.Errorf("historystore: open %s: %w", s.path, err)
	}
	// A scrub's copy left by a kill -9 half-way is garbage (the rename
	// never happened); with the file locked, nobody else is writing it.
	os.Remove(s.path + ".scrub")
	var targets []loaded
	var scrub bool
	// A file at the current layout needs no write (and no fsync) to open.
	current := false
	err = eng.view(func(r reader) error {
		v := r.get(spaceMeta, keySchema)
		current = len(v) == 4 && binary.BigEndian.Uint32(v) == schemaVersion
		return nil
	})
	if err == nil && !current {
		err = eng.update(migrate)
	}
	// The log: on the first open, what it holds beyond the file goes into
	// the file. Reopened after a failure, the log and memory go on as
	// they were (memory holds everything logged that the file lacks).
	s.wmu.Lock()
	wal := s.wal
	s.wmu.Unlock()
	var newWAL *walLog
	if err == nil && wal == nil {
		var from uint64
		var has bool
		if err = eng.view(func(r reader) (err error) { from, has, err = walFrom(r); return err }); err == nil {
			var recs []walRecord
			if newWAL, recs, err = openWAL(s.path+walSuffix, from); err == nil {
				if has {
					err = replayWAL(eng, recs)
				} else {
					// A log left beside a new file (the old one was
					// removed) is not its history: mark it as held.
					err = eng.update(func(w writer) error {
						return w.put(spaceMeta, keyWAL, binary.BigEndian.AppendUint64(nil, newWAL.lsn))
					})
				}
				if err != nil {
					newWAL.f.Close()
					newWAL = nil
				}
			}
		}
	}
	if err == nil {
		err = eng.view(func(r reader) error {
			scrub = r.get(spaceMeta, keyScrub) != nil
			c := r.cursor(spaceTargets)
			for k, v := c.First(); k != nil; k, v = c.Next() {
				rec, err := decodeTargetRecord(v)
				if err != nil {
					return err
				}
				targets = append(targets, loaded{name: string(k), rec: rec, last: lastSeq(r, rec.tid)})
			}
			return nil
		})
	}
	if err != nil {
		eng.close()
		if newWAL != nil {
			newWAL.f.Close()
		}
		return fmt.Errorf("historystore: open %s: %w", s.path, err)
	}
	size := eng.size()

	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		eng.close()
		if newWAL != nil {
			newWAL.f.Close()
		}
		return errClosed
	}
	if newWAL != nil {
		s.wal = newWAL
	}
	var stored int64
	next := uint32(1)
	for _, l := range targets {
		next = max(next, l.rec.tid+1)
	}
	for _, l := range targets {
		stored += l.rec.bytes
		t := s.targets[l.name]
		if t == nil {
			t = &target{name: l.name, next: 1}
			s.targets[l.name] = t
		}
		if t.tid != l.rec.tid {
			// Appended before the file could be read: place the events
			// after the file's.
			t.tid, t.hideBelow, t.hide = l.rec.tid, 0, nil
			t.next = l.last + 1
			for _, en := range t.mem {
				en.seq = t.next
				t.next++
			}
		}
		t.next = max(t.next, l.last+1)
	}
	known := make(map[uint32]string, len(targets))
	for _, l := range targets {
		known[l.rec.tid] = l.name
	}
	for _, t := range s.targets {
		if owner, ok := known[t.tid]; t.tid == 0 || ok && owner != t.name {
			t.tid = max(next, s.nextTid)
			next = t.tid + 1
		}
	}
	s.nextTid = max(next, s.nextTid)
	s.db = eng
	s.open = true
	s.failing = nil
	s.stored.Store(stored)
	s.diskBytes.Store(size)
	if scrub {
		s.scheduleScrub()
	}
	nudge(s.urgent)
	return nil
}

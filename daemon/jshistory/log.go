// Package jshistory keeps history in NATS JetStream: a rooms.Log whose
// events live in one stream shared by every node of a cluster, so that
// CHATHISTORY gives the same answer wherever it is asked and outlives any
// livechatd process. See docs/CLUSTER.md.
//
// Layout. Every target (a room's folded name, a conversation) owns two
// subjects of the history stream, <subject>.<T>.m for PRIVMSG and NOTICE
// and <subject>.<T>.e for every other event, where <T> is the target name
// in unpadded base32hex (any name becomes a valid subject token, and the
// encoding keeps order). Queries without event playback read .m alone and
// never scan past joins and parts; with it they read <subject>.<T>.*. The
// stream sequence is the order: the one every member saw.
//
// A second stream, the msgid index, maps <index>.<T>.<msgid in base32hex>
// to the stream sequence of that event (one message per subject), written
// as soon as the event's publish is acknowledged. A node also remembers
// the sequences of its own recent appends.
package jshistory

import (
	"context"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/livechat/livechat/internal/eventrec"
	"github.com/livechat/livechat/internal/jsopen"
	"github.com/livechat/livechat/rooms"
)

// Config names the streams and their limits. The zero value is usable.
type Config struct {
	Stream       string // history stream, default LIVECHAT_HISTORY
	Subject      string // its subject prefix, default lc.hist
	IndexStream  string // msgid index stream, default LIVECHAT_MSGIDS
	IndexSubject string // its subject prefix, default lc.ids
	Replicas     int    // 1 (tests, one NATS node) or 3 (a NATS cluster); default 1
	// Retention, as the history.* keys: 0 means no limit. MaxPerTarget
	// bounds each of a target's two subjects (messages, other events).
	MaxAge       time.Duration
	MaxPerTarget int64
	MaxBytes     int64
	// MaxInFlight bounds unacknowledged publishes (default 4096); past it
	// appends wait in memory, never in Append.
	MaxInFlight int
	// Timeout bounds every wait on NATS: an acknowledgement, a query, Sync
	// (default 5 s).
	Timeout time.Duration
	// Duplicates is the stream's de-duplication window for Nats-Msg-Id
	// (default 2 minutes).
	Duplicates time.Duration
}

func (c *Config) defaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.Stream, "LIVECHAT_HISTORY")
	def(&c.Subject, "lc.hist")
	def(&c.IndexStream, "LIVECHAT_MSGIDS")
	def(&c.IndexSubject, "lc.ids")
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 4096
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Second
	}
	if c.Duplicates <= 0 {
		c.Duplicates = 2 * time.Minute
	}
}

// Log is a rooms.Log on JetStream. Safe for concurrent use; several Logs
// (on several nodes) may share the streams.
type Log struct {
	cfg       Config
	nc        *nats.Conn
	js        jetstream.JetStream
	hist, idx jetstream.Stream

	mu      sync.Mutex
	wake    *sync.Cond
	queue   []*pub
	closing bool
	next    uint64            // number of the newest append
	lastFor map[string]uint64 // encoded target → number of its newest append
	err     error             // first failure since the last Sync

	acked  watermark // appends whose publish is acknowledged (or failed)
	stored watermark // ... and whose index entry is too
	cache  idCache

	futs, idxFuts chan *pub
	done          sync.WaitGroup
}

// pub is one append on its way to the stream.
type pub struct {
	n   uint64
	enc string
	e   *rooms.Event
	fut jetstream.PubAckFuture
}

var _ rooms.Log = (*Log)(nil)

var b32 = base32.HexEncoding.WithPadding(base32.NoPadding)

// encode makes a name one subject token.
func encode(s string) string {
	if s == "" {
		return "-"
	}
	return b32.EncodeToString([]byte(s))
}

func decode(tok string) (string, bool) {
	if tok == "-" {
		return "", true
	}
	b, err := b32.DecodeString(tok)
	return string(b), err == nil
}

// Open creates or updates the streams and returns a Log publishing over
// nc. Close it before closing nc.
func Open(ctx context.Context, nc *nats.Conn, cfg Config) (*Log, error) {
	cfg.defaults()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(cfg.MaxInFlight),
		jetstream.WithPublishAsyncTimeout(cfg.Timeout))
	if err != nil {
		return nil, err
	}
	maxBytes := cfg.MaxBytes
	if maxBytes <= 0 {
		maxBytes = -1
	}
	perSubject := cfg.MaxPerTarget
	if perSubject <= 0 {
		perSubject = -1
	}
	hist, err := jsopen.Stream(ctx, js, jetstream.StreamConfig{
		Name:              cfg.Stream,
		Description:       "livechat history: one subject pair per room or conversation",
		Subjects:          []string{cfg.Subject + ".>"},
		Storage:           jetstream.FileStorage,
		Replicas:          cfg.Replicas,
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		MaxAge:            cfg.MaxAge,
		MaxBytes:          maxBytes,
		MaxMsgsPerSubject: perSubject,
		Duplicates:        cfg.Duplicates,
		AllowDirect:       true,
	})
	if err != nil {
		return nil, fmt.Errorf("jshistory: stream %s: %w", cfg.Stream, err)
	}
	idx, err := jsopen.Stream(ctx, js, jetstream.StreamConfig{
		Name:              cfg.IndexStream,
		Description:       "livechat history: msgid to sequence in " + cfg.Stream,
		Subjects:          []string{cfg.IndexSubject + ".>"},
		Storage:           jetstream.FileStorage,
		Replicas:          cfg.Replicas,
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		MaxAge:            cfg.MaxAge,
		MaxMsgsPerSubject: 1,
		AllowDirect:       true,
	})
	if err != nil {
		return nil, fmt.Errorf("jshistory: stream %s: %w", cfg.IndexStream, err)
	}
	l := &Log{
		cfg: cfg, nc: nc, js: js, hist: hist, idx: idx,
		lastFor: make(map[string]uint64),
		futs:    make(chan *pub, cfg.MaxInFlight),
		idxFuts: make(chan *pub, cfg.MaxInFlight),
	}
	l.wake = sync.NewCond(&l.mu)
	l.acked.init()
	l.stored.init()
	l.cache.init(1 << 16)
	l.done.Add(3)
	go l.publisher()
	go l.waiter()
	go l.indexWaiter()
	return l, nil
}

// Close publishes what is queued, waits (within the timeout) for its
// acknowledgements and stops. The connection stays open.
func (l *Log) Close() error {
	err := l.Sync()
	l.mu.Lock()
	l.closing = true
	l.wake.Broadcast()
	l.mu.Unlock()
	l.done.Wait()
	return err
}

func (l *Log) subject(enc string, e *rooms.Event) string {
	if e.IsMessage() {
		return l.cfg.Subject + "." + enc + ".m"
	}
	return l.cfg.Subject + "." + enc + ".e"
}

func (l *Log) indexSubject(enc, id string) string {
	return l.cfg.IndexSubject + "." + enc + "." + encode(id)
}

// Append queues e for publishing and returns at once.
func (l *Log) Append(target string, e *rooms.Event) {
	enc := encode(target)
	l.mu.Lock()
	l.next++
	p := &pub{n: l.next, enc: enc, e: e}
	l.lastFor[enc] = p.n
	l.queue = append(l.queue, p)
	l.mu.Unlock()
	l.wake.Signal()
}

// publisher hands queued appends to the asynchronous publisher in order,
// waiting when MaxInFlight are unacknowledged.
func (l *Log) publisher() {
	defer l.done.Done()
	defer close(l.futs)
	var buf []byte
	for {
		l.mu.Lock()
		for len(l.queue) == 0 && !l.closing {
			l.wake.Wait()
		}
		batch := l.queue
		l.queue = nil
		closing := l.closing
		l.mu.Unlock()
		if len(batch) == 0 && closing {
			return
		}
		for _, p := range batch {
			buf = eventrec.Append(buf[:0], p.e)
			m := nats.NewMsg(l.subject(p.enc, p.e))
			m.Data = append([]byte(nil), buf...)
			if p.e.ID != "" {
				// Per target: a QUIT carries one msgid into several.
				m.Header.Set(jetstream.MsgIDHeader, p.enc+" "+p.e.ID)
			}
			deadline := time.Now().Add(l.cfg.Timeout)
			for {
				fut, err := l.js.PublishMsgAsync(m)
				if errors.Is(err, jetstream.ErrTooManyStalledMsgs) && time.Now().Before(deadline) {
					continue // the stall wait was the back-pressure
				}
				if err != nil {
					l.fail(p, err)
				} else {
					p.fut = fut
					l.futs <- p
				}
				break
			}
		}
	}
}

// waiter takes acknowledgements in publish order and writes index entries.
func (l *Log) waiter() {
	defer l.done.Done()
	defer close(l.idxFuts)
	for p := range l.futs {
		select {
		case ack := <-p.fut.Ok():
			if p.e.ID == "" {
				l.acked.done(p.n)
				l.stored.done(p.n)
				continue
			}
			l.cache.put(p.enc+" "+p.e.ID, ack.Sequence)
			l.acked.done(p.n)
			m := nats.NewMsg(l.indexSubject(p.enc, p.e.ID))
			m.Data = binary.BigEndian.AppendUint64(nil, ack.Sequence)
			fut, err := l.js.PublishMsgAsync(m, jetstream.WithStallWait(l.cfg.Timeout))
			if err != nil {
				l.setErr(err)
				l.stored.done(p.n)
				continue
			}
			p.fut = fut
			l.idxFuts <- p
		case err := <-p.fut.Err():
			l.fail(p, err)
		}
	}
}

func (l *Log) indexWaiter() {
	defer l.done.Done()
	for p := range l.idxFuts {
		select {
		case <-p.fut.Ok():
		case err := <-p.fut.Err():
			l.setErr(fmt.Errorf("jshistory: msgid index: %w", err))
		}
		l.stored.done(p.n)
	}
}

func (l *Log) setErr(err error) {
	l.mu.Lock()
	if l.err == nil {
		l.err = err
	}
	l.mu.Unlock()
}

func (l *Log) fail(p *pub, err error) {
	l.setErr(fmt.Errorf("jshistory: publish to %s: %w", l.cfg.Stream, err))
	l.acked.done(p.n)
	l.stored.done(p.n)
}

// Sync waits until every earlier append is acknowledged by JetStream (with
// its replicas) and indexed, and reports the first failure since the last
// Sync.
func (l *Log) Sync() error {
	l.mu.Lock()
	n := l.next
	l.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.Timeout)
	defer cancel()
	if err := l.stored.wait(ctx, n); err != nil {
		return fmt.Errorf("jshistory: sync: %w", err)
	}
	l.mu.Lock()
	err := l.err
	l.err = nil
	l.mu.Unlock()
	return err
}

// settle waits for the acknowledgements of target's appends so far (all
// appends when enc is ""): read-your-writes.
func (l *Log) settle(ctx context.Context, enc string) error {
	l.mu.Lock()
	n := l.next
	if enc != "" {
		n = l.lastFor[enc]
	}
	l.mu.Unlock()
	if err := l.acked.wait(ctx, n); err != nil {
		return fmt.Errorf("%w: %v", rooms.ErrHistoryUnavailable, err)
	}
	return nil
}

// watermark tracks numbered operations that finish in any order: through
// is the highest number below which all have finished.
type watermark struct {
	mu      sync.Mutex
	through uint64
	early   map[uint64]bool
	moved   chan struct{} // closed when through advances
}

func (w *watermark) init() {
	w.early = make(map[uint64]bool)
	w.moved = make(chan struct{})
}

func (w *watermark) done(n uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n != w.through+1 {
		w.early[n] = true
		return
	}
	w.through++
	for w.early[w.through+1] {
		delete(w.early, w.through+1)
		w.through++
	}
	close(w.moved)
	w.moved = make(chan struct{})
}

func (w *watermark) wait(ctx context.Context, n uint64) error {
	for {
		w.mu.Lock()
		if w.through >= n {
			w.mu.Unlock()
			return nil
		}
		ch := w.moved
		w.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// idCache remembers the stream sequences of this node's recent appends,
// by encoded target and msgid, so that most msgid bounds need no index
// lookup. Entries are hints: a read checks the event it points at.
type idCache struct {
	mu   sync.Mutex
	m    map[string]uint64
	ring []string
	pos  int
}

func (c *idCache) init(n int) {
	c.m = make(map[string]uint64, n)
	c.ring = make([]string, n)
}

func (c *idCache) put(key string, seq uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.ring[c.pos]; old != "" {
		delete(c.m, old)
	}
	c.ring[c.pos] = key
	c.pos = (c.pos + 1) % len(c.ring)
	c.m[key] = seq
}

func (c *idCache) get(key string) (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	seq, ok := c.m[key]
	return seq, ok
}

func (c *idCache) drop(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, key) // its ring slot is reclaimed in turn
}

// dropPrefix forgets every entry of an encoded target.
func (c *idCache) dropPrefix(prefix string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.m {
		if len(k) > len(prefix) && k[:len(prefix)] == prefix {
			delete(c.m, k)
		}
	}
}

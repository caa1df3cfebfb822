package accounts

import (
	"container/list"
	"sync"
	"time"
)

// ThrottleConfig tunes login throttling. Zero fields take the defaults of
// DefaultThrottleConfig; Free < 0 means no free failures.
type ThrottleConfig struct {
	// Free is how many failures a key may have before lockouts start.
	Free int
	// BaseDelay is the lockout after failure Free+1; each further failure
	// doubles it, up to MaxDelay.
	BaseDelay time.Duration
	MaxDelay  time.Duration
	// Expire forgets a key this long after its last failure or the end of
	// its lockout, whichever is later.
	Expire time.Duration
	// MaxEntries caps each of the two tables (accounts, sources). When full,
	// the least recently failed key is forgotten, so an attacker cycling
	// names or addresses cannot grow memory without bound.
	MaxEntries int
}

// DefaultThrottleConfig: 3 free failures, then 1s, 2s, 4s, … capped at 5m;
// keys forgotten after an idle hour; at most 65536 keys per table (a few
// MiB at worst).
func DefaultThrottleConfig() ThrottleConfig {
	return ThrottleConfig{
		Free:       3,
		BaseDelay:  time.Second,
		MaxDelay:   5 * time.Minute,
		Expire:     time.Hour,
		MaxEntries: 1 << 16,
	}
}

func (c ThrottleConfig) withDefaults() ThrottleConfig {
	d := DefaultThrottleConfig()
	switch {
	case c.Free == 0:
		c.Free = d.Free
	case c.Free < 0:
		c.Free = 0
	}
	if c.BaseDelay <= 0 {
		c.BaseDelay = d.BaseDelay
	}
	if c.MaxDelay <= 0 {
		c.MaxDelay = d.MaxDelay
	}
	if c.MaxDelay < c.BaseDelay {
		c.MaxDelay = c.BaseDelay
	}
	if c.Expire <= 0 {
		c.Expire = d.Expire
	}
	if c.MaxEntries <= 0 {
		c.MaxEntries = d.MaxEntries
	}
	return c
}

// Throttle tracks failed logins per account key and per source key (an IP
// string, or whatever the caller uses to identify a client's origin). Empty
// keys are ignored. Keys are opaque here: Service passes Fold(name).
//
// A success resets the account's counter but not the source's, so an
// attacker cannot launder a source's failures by logging into an account of
// their own.
//
// All methods are safe for concurrent use; one mutex guards both tables,
// and every operation under it is O(1) amortised.
type Throttle struct {
	mu       sync.Mutex
	cfg      ThrottleConfig
	now      func() time.Time // injected clock; tests replace it
	accounts table
	sources  table
}

// NewThrottle returns a Throttle using the real clock.
func NewThrottle(cfg ThrottleConfig) *Throttle {
	cfg = cfg.withDefaults()
	return &Throttle{
		cfg:      cfg,
		now:      time.Now,
		accounts: newTable(),
		sources:  newTable(),
	}
}

// Check returns how long the caller must wait before trying account from
// source; 0 means go ahead. It records nothing. Callers that hash after a
// zero Check should report the outcome with Failure or Success; Begin does
// both steps and also stops parallel bursts, and is what Service uses.
func (t *Throttle) Check(account, source string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	var retry time.Duration
	for _, x := range t.pairs(account, source) {
		if x.key == "" {
			continue
		}
		if e := x.tab.lookup(x.key, now, t.cfg.Expire); e != nil {
			retry = max(retry, e.lockedUntil.Sub(now))
		}
	}
	return retry
}

// Failure records a failed login for account and source.
func (t *Throttle) Failure(account, source string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.fail(account, source, t.now())
}

// Success records a successful login: the account's counter is reset.
func (t *Throttle) Success(account, source string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.succeed(account)
}

// Begin is Check plus a reservation. Without it, N parallel attempts all
// pass Check before the first failure is recorded, letting a burst of
// connections get far more guesses than the lockout schedule allows. So
// attempts in flight count: once a key is past its free failures, only one
// attempt for it may be in flight at a time, and the others are refused as
// if locked.
//
// If retryAfter > 0 the attempt is refused and a is nil. Otherwise the
// caller must end a with exactly one of Failure, Success or Release.
func (t *Throttle) Begin(account, source string) (a *Attempt, retryAfter time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	pairs := t.pairs(account, source)
	for _, x := range pairs {
		if x.key == "" {
			continue
		}
		e := x.tab.lookup(x.key, now, t.cfg.Expire)
		if e == nil {
			continue
		}
		retryAfter = max(retryAfter, e.lockedUntil.Sub(now))
		if e.inflight > 0 && e.failures+e.inflight >= t.cfg.Free {
			// Another attempt in flight might earn a lockout; tell this
			// one to come back after the lockout it would cause.
			retryAfter = max(retryAfter, t.lockFor(e.failures+1), t.cfg.BaseDelay)
		}
	}
	if retryAfter > 0 {
		return nil, retryAfter
	}
	a = &Attempt{t: t, account: account, source: source}
	for i, x := range pairs {
		if x.key == "" {
			continue
		}
		e := x.tab.getOrCreate(x.key, now, t.cfg)
		e.inflight++
		a.entries[i] = e
	}
	return a, 0
}

// Len returns the number of tracked account and source keys.
func (t *Throttle) Len() (accounts, sources int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.accounts.m), len(t.sources.m)
}

// Attempt is a reservation from Throttle.Begin. Its methods are safe for
// concurrent use; only the first call has any effect.
type Attempt struct {
	t               *Throttle
	account, source string
	entries         [2]*entry // reserved entries, nil where the key was empty
	done            bool      // guarded by t.mu
}

// Failure ends the attempt as a failed login.
func (a *Attempt) Failure() { a.finish(outcomeFailure) }

// Success ends the attempt as a successful login.
func (a *Attempt) Success() { a.finish(outcomeSuccess) }

// Release ends the attempt without a verdict (pool busy, context ended,
// store error): nothing is recorded.
func (a *Attempt) Release() { a.finish(outcomeNone) }

type outcome int

const (
	outcomeNone outcome = iota
	outcomeFailure
	outcomeSuccess
)

func (a *Attempt) finish(o outcome) {
	t := a.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if a.done {
		return
	}
	a.done = true
	for _, e := range a.entries {
		if e != nil {
			e.inflight--
		}
	}
	switch o {
	case outcomeFailure:
		t.fail(a.account, a.source, t.now())
	case outcomeSuccess:
		t.succeed(a.account)
	}
	// Entries that only existed for the reservation are dropped at once, so
	// successful logins leave nothing behind. remove is a no-op for an entry
	// that was evicted meanwhile.
	for i, e := range a.entries {
		if e != nil && e.inflight == 0 && e.failures == 0 {
			t.tables()[i].remove(e)
		}
	}
}

func (t *Throttle) fail(account, source string, now time.Time) {
	for _, x := range t.pairs(account, source) {
		if x.key == "" {
			continue
		}
		e := x.tab.getOrCreate(x.key, now, t.cfg)
		e.failures++
		e.last = now
		if d := t.lockFor(e.failures); d > 0 {
			if until := now.Add(d); until.After(e.lockedUntil) {
				e.lockedUntil = until
			}
		}
		x.tab.lru.MoveToFront(e.elem)
	}
}

func (t *Throttle) succeed(account string) {
	if e := t.accounts.m[account]; account != "" && e != nil {
		// Reset, but keep an entry that other in-flight attempts reserved.
		e.failures = 0
		e.lockedUntil = time.Time{}
		if e.inflight == 0 {
			t.accounts.remove(e)
		}
	}
}

// lockFor returns the lockout earned by the n-th consecutive failure.
func (t *Throttle) lockFor(n int) time.Duration {
	if n <= t.cfg.Free {
		return 0
	}
	d := t.cfg.BaseDelay
	for i := n - t.cfg.Free - 1; i > 0 && d < t.cfg.MaxDelay; i-- {
		d *= 2 // stops at MaxDelay, so no overflow
	}
	return min(d, t.cfg.MaxDelay)
}

type keyed struct {
	tab *table
	key string
}

// pairs returns the keys with their tables, account first; callers skip
// empty keys. The position matters: Attempt.entries and tables() use the
// same indexes.
func (t *Throttle) pairs(account, source string) [2]keyed {
	return [2]keyed{{&t.accounts, account}, {&t.sources, source}}
}

func (t *Throttle) tables() [2]*table { return [2]*table{&t.accounts, &t.sources} }

// table is one map of keys with an LRU list ordered by last touch (front =
// newest), so the oldest key is found in O(1) when the map is full.
type table struct {
	m   map[string]*entry
	lru *list.List // of *entry
}

type entry struct {
	key         string
	elem        *list.Element
	failures    int
	inflight    int
	last        time.Time // last failure (or creation)
	lockedUntil time.Time
}

func newTable() table { return table{m: make(map[string]*entry), lru: list.New()} }

func (e *entry) expired(now time.Time, expire time.Duration) bool {
	end := e.last
	if e.lockedUntil.After(end) {
		end = e.lockedUntil
	}
	return e.inflight == 0 && !now.Before(end.Add(expire))
}

// lookup returns the live entry for key, dropping it if expired.
func (tb *table) lookup(key string, now time.Time, expire time.Duration) *entry {
	e := tb.m[key]
	if e != nil && e.expired(now, expire) {
		tb.remove(e)
		return nil
	}
	return e
}

func (tb *table) getOrCreate(key string, now time.Time, cfg ThrottleConfig) *entry {
	if e := tb.lookup(key, now, cfg.Expire); e != nil {
		return e
	}
	// Make room. First drop a few expired entries from the old end, which
	// keeps the table small in steady state; then, if still full, forget
	// the least recently touched key, which bounds memory under attack.
	for i := 0; i < 4; i++ {
		back := tb.lru.Back()
		if back == nil || !back.Value.(*entry).expired(now, cfg.Expire) {
			break
		}
		tb.remove(back.Value.(*entry))
	}
	for len(tb.m) >= cfg.MaxEntries {
		tb.remove(tb.lru.Back().Value.(*entry))
	}
	e := &entry{key: key, last: now}
	e.elem = tb.lru.PushFront(e)
	tb.m[key] = e
	return e
}

// remove deletes e if it is still the table's entry for its key.
func (tb *table) remove(e *entry) {
	if tb.m[e.key] == e {
		delete(tb.m, e.key)
		tb.lru.Remove(e.elem)
	}
}

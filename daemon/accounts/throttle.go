package accounts

import (
	"container/list"
	"sync"
	"time"
)

// ThrottleConfig tunes login throttling. Zero fields take the defaults of
// DefaultThrottleConfig; Free < 0 and AccountFree < 0 mean no free failures.
type ThrottleConfig struct {
	// Free is how many failures a source may have, against any accounts,
	// before lockouts start.
	Free int
	// AccountFree is how many failures one account may have, from all
	// sources together, before lockouts start for it. It is much higher
	// than Free so that guessing from a few addresses cannot lock the
	// owner out; see Throttle.
	AccountFree int
	// TrustFor is how long a source that logged in to an account stays
	// exempt from that account's lockout (not from its own).
	TrustFor time.Duration
	// BaseDelay is the lockout after failure Free+1 (AccountFree+1 for an
	// account); each further failure doubles it, up to MaxDelay.
	BaseDelay time.Duration
	MaxDelay  time.Duration
	// Expire forgets a key this long after its last failure or the end of
	// its lockout, whichever is later.
	Expire time.Duration
	// MaxEntries caps each table (accounts, sources, trusted). When full,
	// the least recently failed key is forgotten, so an attacker cycling
	// names or addresses cannot grow memory without bound.
	MaxEntries int
}

// DefaultThrottleConfig: 3 free failures per source and 100 per account,
// then 1s, 2s, 4s, … capped at 5m; keys forgotten after an idle hour, a
// source trusted for 30 days after a login; at most 65536 keys per table
// (a few MiB at worst).
func DefaultThrottleConfig() ThrottleConfig {
	return ThrottleConfig{
		Free:        3,
		AccountFree: 100,
		TrustFor:    30 * 24 * time.Hour,
		BaseDelay:   time.Second,
		MaxDelay:    5 * time.Minute,
		Expire:      time.Hour,
		MaxEntries:  1 << 16,
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
	switch {
	case c.AccountFree == 0:
		c.AccountFree = d.AccountFree
	case c.AccountFree < 0:
		c.AccountFree = 0
	}
	if c.TrustFor <= 0 {
		c.TrustFor = d.TrustFor
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
// Lockout of the owner is the design constraint. Anyone can send wrong
// passwords for any name, so an account-wide lockout as strict as the
// per-source one would let a stranger lock the owner out with four guesses
// and keep it locked with one per window. So:
//   - the per-source schedule (Free) is the brute-force brake: a source
//     that fails too often is locked out of every account;
//   - the account-wide schedule (AccountFree, much higher) only caps
//     guessing spread over many sources, and a source that logged in to
//     the account within TrustFor is exempt from it. The owner is then
//     refused only if their own address failed, or if they log in from a
//     new address while a distributed attack has the account over its
//     ceiling (delays still capped at MaxDelay).
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
	trusted  table // account "\x00" source pairs that logged in; failures unused
}

// NewThrottle returns a Throttle using the real clock.
func NewThrottle(cfg ThrottleConfig) *Throttle {
	cfg = cfg.withDefaults()
	return &Throttle{
		cfg:      cfg,
		now:      time.Now,
		accounts: newTable(),
		sources:  newTable(),
		trusted:  newTable(),
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
	for _, x := range t.pairs(account, source, now) {
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
	t.succeed(account, source, t.now())
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
	pairs := t.pairs(account, source, now)
	for _, x := range pairs {
		if x.key == "" {
			continue
		}
		e := x.tab.lookup(x.key, now, t.cfg.Expire)
		if e == nil {
			continue
		}
		retryAfter = max(retryAfter, e.lockedUntil.Sub(now))
		if e.inflight > 0 && e.failures+e.inflight >= x.free {
			// Another attempt in flight might earn a lockout; tell this
			// one to come back after the lockout it would cause.
			retryAfter = max(retryAfter, t.lockFor(x.free, e.failures+1), t.cfg.BaseDelay)
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
		a.entries[i], a.tab[i] = e, x.tab
	}
	return a, 0
}

// Len returns the number of tracked account and source keys (trusted pairs
// are not counted).
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
	entries         [2]*entry // reserved entries, nil where the key was empty or the account trusts the source
	tab             [2]*table // the tables of entries
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
		t.succeed(a.account, a.source, t.now())
	}
	// Entries that only existed for the reservation are dropped at once, so
	// successful logins leave nothing behind. remove is a no-op for an entry
	// that was evicted meanwhile.
	for i, e := range a.entries {
		if e != nil && e.inflight == 0 && e.failures == 0 {
			a.tab[i].remove(e)
		}
	}
}

func (t *Throttle) fail(account, source string, now time.Time) {
	// A trusted source's failures do not count against the account either:
	// they are the owner's typos, which the source's own schedule brakes.
	for _, x := range t.pairs(account, source, now) {
		if x.key == "" {
			continue
		}
		e := x.tab.getOrCreate(x.key, now, t.cfg)
		e.failures++
		e.last = now
		if d := t.lockFor(x.free, e.failures); d > 0 {
			if until := now.Add(d); until.After(e.lockedUntil) {
				e.lockedUntil = until
			}
		}
		x.tab.lru.MoveToFront(e.elem)
	}
}

func (t *Throttle) succeed(account, source string, now time.Time) {
	if account != "" && source != "" {
		e := t.trusted.getOrCreate(trustKey(account, source), now, ThrottleConfig{Expire: t.cfg.TrustFor, MaxEntries: t.cfg.MaxEntries})
		e.last = now
		t.trusted.lru.MoveToFront(e.elem)
	}
	if e := t.accounts.m[account]; account != "" && e != nil {
		// Reset, but keep an entry that other in-flight attempts reserved.
		e.failures = 0
		e.lockedUntil = time.Time{}
		if e.inflight == 0 {
			t.accounts.remove(e)
		}
	}
}

// lockFor returns the lockout earned by the n-th consecutive failure of a
// key allowed free failures.
func (t *Throttle) lockFor(free, n int) time.Duration {
	if n <= free {
		return 0
	}
	d := t.cfg.BaseDelay
	for i := n - free - 1; i > 0 && d < t.cfg.MaxDelay; i-- {
		d *= 2 // stops at MaxDelay, so no overflow
	}
	return min(d, t.cfg.MaxDelay)
}

type keyed struct {
	tab  *table
	key  string
	free int // failures before lockouts start
}

// pairs returns the keys with their tables, account first; callers skip
// empty keys. The account key is blanked when the account trusts source.
// Must be called with t.mu held.
func (t *Throttle) pairs(account, source string, now time.Time) [2]keyed {
	if account != "" && source != "" && t.trusted.lookup(trustKey(account, source), now, t.cfg.TrustFor) != nil {
		account = ""
	}
	return [2]keyed{{&t.accounts, account, t.cfg.AccountFree}, {&t.sources, source, t.cfg.Free}}
}

func trustKey(account, source string) string { return account + "\x00" + source }

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

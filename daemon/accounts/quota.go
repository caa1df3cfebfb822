package accounts

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrRegisterQuota: the source created as many accounts as it may for now;
// the concrete error is a *QuotaError saying when to retry.
var ErrRegisterQuota = errors.New("accounts: too many registrations from this source")

// QuotaError is returned by Register when the source's registration quota
// is used up. errors.Is(err, ErrRegisterQuota) holds.
type QuotaError struct {
	RetryAfter time.Duration
}

func (e *QuotaError) Error() string {
	secs := (e.RetryAfter + time.Second - 1) / time.Second
	return fmt.Sprintf("%v; retry in %ds", ErrRegisterQuota, secs)
}

func (e *QuotaError) Unwrap() error { return ErrRegisterQuota }

// quota allows each source per registrations per window, refilling evenly
// (a token bucket kept as one time per source, the GCRA form: tat is when
// the source's bucket will be full again). The table is bounded like the
// throttle's: past maxEntries the least recently used source is forgotten,
// which fails open for it rather than growing memory.
type quota struct {
	mu         sync.Mutex
	per        int
	window     time.Duration
	maxEntries int
	tab        table // entry.lockedUntil is the source's tat
}

func newQuota(per int, window time.Duration, maxEntries int) *quota {
	return &quota{per: max(per, 1), window: window, maxEntries: maxEntries, tab: newTable()}
}

func (q *quota) interval() time.Duration { return q.window / time.Duration(q.per) }

// take charges one registration to source, or says how long to wait. An
// empty source is not limited.
func (q *quota) take(source string, now time.Time) time.Duration {
	if source == "" {
		return 0
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	e := q.tab.getOrCreate(source, now, ThrottleConfig{MaxEntries: q.maxEntries})
	tat := e.lockedUntil
	if tat.Before(now) {
		tat = now
	}
	if ahead := tat.Sub(now); ahead > q.window-q.interval() {
		return ahead - (q.window - q.interval())
	}
	e.lockedUntil, e.last = tat.Add(q.interval()), now
	q.tab.lru.MoveToFront(e.elem)
	return 0
}

// refund gives back a registration that did not happen.
func (q *quota) refund(source string) {
	if source == "" {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if e := q.tab.m[source]; e != nil {
		e.lockedUntil = e.lockedUntil.Add(-q.interval())
	}
}

package accounts

import (
	"context"
	"errors"
	"time"
)

// ErrBusy means no hashing slot became free within the pool's wait. The
// caller should tell the user to try again rather than queue: a login storm
// must not pile up unbounded goroutines, each about to allocate argon2's
// memory.
var ErrBusy = errors.New("accounts: too busy, try again")

// Pool bounds how many password hashes run at once. Each argon2id run takes
// Params.Memory KiB and a core for tens of milliseconds, so the bound caps
// both CPU and memory (size × Memory).
//
// It is a semaphore, not a worker pool: Do runs fn on the caller's
// goroutine once a slot is held, which keeps the caller's stack and avoids a
// hand-off. Safe for concurrent use.
type Pool struct {
	slots chan struct{}
	wait  time.Duration
	// newTimer is time.NewTimer, replaceable by tests so that the ErrBusy
	// path can be driven without real waiting.
	newTimer func(time.Duration) (<-chan time.Time, func() bool)
}

// NewPool returns a pool running at most size functions at once (size < 1
// is treated as 1). A Do call waits at most wait for a slot; wait <= 0 means
// do not wait at all.
func NewPool(size int, wait time.Duration) *Pool {
	if size < 1 {
		size = 1
	}
	return &Pool{
		slots: make(chan struct{}, size),
		wait:  wait,
		newTimer: func(d time.Duration) (<-chan time.Time, func() bool) {
			t := time.NewTimer(d)
			return t.C, t.Stop
		},
	}
}

// Size returns the number of slots.
func (p *Pool) Size() int { return cap(p.slots) }

// InUse returns the number of slots currently held (a snapshot).
func (p *Pool) InUse() int { return len(p.slots) }

// Do runs fn while holding a slot. It returns ErrBusy if no slot frees up
// within the pool's wait, or ctx.Err() if ctx ends first; in both cases fn
// did not run. Once started, fn runs to completion (argon2 cannot be
// interrupted), and its slot is released even if it panics.
func (p *Pool) Do(ctx context.Context, fn func()) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := p.acquire(ctx); err != nil {
		return err
	}
	defer func() { <-p.slots }()
	fn()
	return nil
}

func (p *Pool) acquire(ctx context.Context) error {
	// Fast path: a free slot costs no timer.
	select {
	case p.slots <- struct{}{}:
		return nil
	default:
	}
	if p.wait <= 0 {
		return ErrBusy
	}
	c, stop := p.newTimer(p.wait)
	defer stop()
	select {
	case p.slots <- struct{}{}:
		return nil
	case <-c:
		return ErrBusy
	case <-ctx.Done():
		return ctx.Err()
	}
}

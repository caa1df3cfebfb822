package accounts

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// ErrBusy means no hashing slot became free within the pool's wait, or the
// caller's source already has as many hashes running and queued as it may.
// The caller should tell the user to try again rather than queue: a login
// storm must not pile up unbounded goroutines, each about to allocate
// argon2's memory.
var ErrBusy = errors.New("accounts: too busy, try again")

// Pool bounds how many password hashes run at once. Each argon2id run takes
// Params.Memory KiB and a core for tens of milliseconds, so the bound caps
// both CPU and memory (size × Memory).
//
// Slots are shared fairly between keys (client addresses): waiters queue
// per key, and a freed slot goes to the next key in round-robin order, so
// a key with many connections gets no more turns than a key with one. A
// key may hold at most perKey slots and queue places together; past that
// it gets ErrBusy at once, which bounds what one address can park in the
// queue.
//
// It is a semaphore, not a worker pool: Do runs fn on the caller's
// goroutine once a slot is held, which keeps the caller's stack and avoids a
// hand-off. Safe for concurrent use.
type Pool struct {
	size, perKey int
	wait         time.Duration
	// newTimer is time.NewTimer, replaceable by tests so that the ErrBusy
	// path can be driven without real waiting.
	newTimer func(time.Duration) (<-chan time.Time, func() bool)

	mu    sync.Mutex
	inUse int
	keys  map[string]*keyQueue // keys with a slot or a queue place
	turns []*keyQueue          // keys with waiters, in round-robin order
}

type keyQueue struct {
	key     string
	held    int // slots plus queue places
	waiters []*waiter
}

type waiter struct {
	granted chan struct{} // closed when a slot is handed over
	ok      bool          // guarded by Pool.mu: the slot is this waiter's
}

// NewPool returns a pool running at most size functions at once (size < 1
// is treated as 1), with no per-key bound. A Do call waits at most wait
// for a slot; wait <= 0 means do not wait at all.
func NewPool(size int, wait time.Duration) *Pool { return NewFairPool(size, 0, wait) }

// NewFairPool is NewPool where each key but "" (an unknown source, such as
// an admin tool) may hold at most perKey slots and queue places together
// (perKey < 1: no bound).
func NewFairPool(size, perKey int, wait time.Duration) *Pool {
	return &Pool{
		size:   max(size, 1),
		perKey: perKey,
		wait:   wait,
		keys:   make(map[string]*keyQueue),
		newTimer: func(d time.Duration) (<-chan time.Time, func() bool) {
			t := time.NewTimer(d)
			return t.C, t.Stop
		},
	}
}

// Size returns the number of slots.
func (p *Pool) Size() int { return p.size }

// InUse returns the number of slots currently held (a snapshot).
func (p *Pool) InUse() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.inUse
}

// Waiting returns the number of callers queued for a slot (a snapshot).
func (p *Pool) Waiting() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, q := range p.turns {
		n += len(q.waiters)
	}
	return n
}

// Do is DoFor with the empty key.
func (p *Pool) Do(ctx context.Context, fn func()) error { return p.DoFor(ctx, "", fn) }

// DoFor runs fn while holding a slot, queued under key. It returns ErrBusy
// if key is at its bound or no slot frees up within the pool's wait, or
// ctx.Err() if ctx ends first; in those cases fn did not run. Once started,
// fn runs to completion (argon2 cannot be interrupted), and its slot is
// released even if it panics.
func (p *Pool) DoFor(ctx context.Context, key string, fn func()) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	q, err := p.acquire(ctx, key)
	if err != nil {
		return err
	}
	defer p.release(q)
	fn()
	return nil
}

func (p *Pool) acquire(ctx context.Context, key string) (*keyQueue, error) {
	p.mu.Lock()
	q := p.keys[key]
	if q == nil {
		q = &keyQueue{key: key}
		p.keys[key] = q
	}
	if p.perKey > 0 && key != "" && q.held >= p.perKey {
		p.mu.Unlock()
		return nil, ErrBusy
	}
	q.held++
	// A free slot is taken at once only if nobody waits: otherwise it is
	// already promised to the next key in turn.
	if p.inUse < p.size && len(p.turns) == 0 {
		p.inUse++
		p.mu.Unlock()
		return q, nil
	}
	if p.wait <= 0 {
		p.drop(q)
		p.mu.Unlock()
		return nil, ErrBusy
	}
	w := &waiter{granted: make(chan struct{})}
	if len(q.waiters) == 0 {
		p.turns = append(p.turns, q)
	}
	q.waiters = append(q.waiters, w)
	p.mu.Unlock()

	c, stop := p.newTimer(p.wait)
	defer stop()
	var err error
	select {
	case <-w.granted:
		return q, nil
	case <-c:
		err = ErrBusy
	case <-ctx.Done():
		err = ctx.Err()
	}
	p.mu.Lock()
	if w.ok {
		// Granted just as we gave up: pass the slot on.
		p.mu.Unlock()
		p.release(q)
		return nil, err
	}
	q.waiters = slices.DeleteFunc(q.waiters, func(x *waiter) bool { return x == w })
	if len(q.waiters) == 0 {
		p.turns = slices.DeleteFunc(p.turns, func(x *keyQueue) bool { return x == q })
	}
	p.drop(q)
	p.mu.Unlock()
	return nil, err
}

// release gives up q's slot: to the first waiter of the next key in turn,
// or back to the pool.
func (p *Pool) release(q *keyQueue) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.drop(q)
	if len(p.turns) == 0 {
		p.inUse--
		return
	}
	next := p.turns[0]
	p.turns = p.turns[1:]
	w := next.waiters[0]
	next.waiters = next.waiters[1:]
	if len(next.waiters) > 0 {
		p.turns = append(p.turns, next) // to the back of the round
	}
	w.ok = true
	close(w.granted)
}

// drop gives up one of q's slots or places. Must hold p.mu.
func (p *Pool) drop(q *keyQueue) {
	q.held--
	if q.held == 0 {
		delete(p.keys, q.key)
	}
}

package accounts

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fastParams keep argon2 to microseconds so that tests exercise the real
// code paths without the real cost. One test uses DefaultParams.
var fastParams = Params{Memory: 64, Time: 1, Threads: 1}

// fakeClock is an injectable clock; tests advance it instead of sleeping.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// verifyCounter wraps VerifyPassword and records what it was called with.
type verifyCounter struct {
	mu      sync.Mutex
	calls   int
	hashes  []string
	hashing atomic.Int64 // calls to the hash seam
}

func (v *verifyCounter) verify(password, encoded string, cur Params) (bool, bool, error) {
	v.mu.Lock()
	v.calls++
	v.hashes = append(v.hashes, encoded)
	v.mu.Unlock()
	return VerifyPassword(password, encoded, cur)
}

func (v *verifyCounter) hash(password string, p Params) (string, error) {
	v.hashing.Add(1)
	return HashPassword(password, p)
}

func (v *verifyCounter) snapshot() (int, []string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.calls, append([]string(nil), v.hashes...)
}

type testService struct {
	*Service
	clock *fakeClock
	vc    *verifyCounter
}

// newTestService builds a Service with fast params, a fake clock and
// counting seams. cfg tweaks the config before construction.
func newTestService(t *testing.T, store Store, tweak func(*Config)) testService {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Params = fastParams
	if tweak != nil {
		tweak(&cfg)
	}
	s := NewService(store, cfg)
	t.Cleanup(func() { s.Close() })
	clock := newFakeClock()
	vc := &verifyCounter{}
	s.now = clock.Now
	s.throttle.now = clock.Now
	s.verify = vc.verify
	s.hash = vc.hash
	return testService{s, clock, vc}
}

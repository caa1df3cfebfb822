package accounts

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// holdSlot occupies one slot of p until the returned release is called.
// It returns only once the slot is held, so callers need no sleeps.
func holdSlot(t *testing.T, p *Pool) (release func()) {
	t.Helper()
	held, done := make(chan struct{}), make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- p.Do(context.Background(), func() {
			close(held)
			<-done
		})
	}()
	select {
	case <-held:
	case err := <-errc:
		t.Fatalf("could not take a slot: %v", err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			close(done)
			if err := <-errc; err != nil {
				t.Errorf("holder: %v", err)
			}
		})
	}
	t.Cleanup(release)
	return release
}

// manualTimer replaces the pool's timer: the test decides when the wait
// expires, so the ErrBusy path is exercised without any real waiting.
type manualTimer struct {
	created chan time.Duration
	fire    chan time.Time
}

func installManualTimer(p *Pool) *manualTimer {
	m := &manualTimer{created: make(chan time.Duration, 1), fire: make(chan time.Time, 1)}
	p.newTimer = func(d time.Duration) (<-chan time.Time, func() bool) {
		m.created <- d
		return m.fire, func() bool { return true }
	}
	return m
}

func TestPoolBusyWhenSaturated(t *testing.T) {
	p := NewPool(1, time.Hour)
	mt := installManualTimer(p)
	holdSlot(t, p)

	ran := false
	errc := make(chan error, 1)
	go func() { errc <- p.Do(context.Background(), func() { ran = true }) }()
	if d := <-mt.created; d != time.Hour {
		t.Fatalf("waited with %v, want the configured wait", d)
	}
	mt.fire <- time.Time{} // the wait is over
	if err := <-errc; !errors.Is(err, ErrBusy) {
		t.Fatalf("got %v, want ErrBusy", err)
	}
	if ran {
		t.Fatal("fn ran without a slot")
	}
}

func TestPoolGetsSlotFreedDuringWait(t *testing.T) {
	p := NewPool(1, time.Hour)
	mt := installManualTimer(p)
	release := holdSlot(t, p)

	errc := make(chan error, 1)
	go func() { errc <- p.Do(context.Background(), func() {}) }()
	<-mt.created // now blocked waiting
	release()
	if err := <-errc; err != nil {
		t.Fatalf("got %v, want the freed slot", err)
	}
}

// The real timer, with a short wait: ErrBusy must come after about the wait,
// not after the holder finishes.
func TestPoolBusyRealWait(t *testing.T) {
	const wait = 20 * time.Millisecond
	p := NewPool(1, wait)
	holdSlot(t, p)
	start := time.Now()
	err := p.Do(context.Background(), func() {})
	el := time.Since(start)
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("got %v, want ErrBusy", err)
	}
	if el < wait || el > wait+2*time.Second {
		t.Fatalf("ErrBusy after %v, want about %v", el, wait)
	}
}

func TestPoolNoWait(t *testing.T) {
	p := NewPool(1, 0)
	holdSlot(t, p)
	if err := p.Do(context.Background(), func() {}); !errors.Is(err, ErrBusy) {
		t.Fatalf("got %v, want ErrBusy", err)
	}
}

func TestPoolContext(t *testing.T) {
	p := NewPool(1, time.Hour)
	mt := installManualTimer(p)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Do(ctx, func() { t.Error("ran with a dead context") }); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}

	holdSlot(t, p)
	ctx, cancel = context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- p.Do(ctx, func() {}) }()
	<-mt.created
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestPoolReleasesOnPanic(t *testing.T) {
	p := NewPool(1, 0)
	func() {
		defer func() { recover() }()
		p.Do(context.Background(), func() { panic("boom") })
	}()
	if p.InUse() != 0 {
		t.Fatal("slot leaked by a panicking fn")
	}
	if err := p.Do(context.Background(), func() {}); err != nil {
		t.Fatal(err)
	}
}

func TestPoolBoundsConcurrency(t *testing.T) {
	p := NewPool(2, time.Hour)
	var cur, peak atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := p.Do(context.Background(), func() {
				n := cur.Add(1)
				for {
					old := peak.Load()
					if n <= old || peak.CompareAndSwap(old, n) {
						break
					}
				}
				runtime.Gosched()
				cur.Add(-1)
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if peak.Load() > 2 {
		t.Fatalf("%d ran at once in a pool of 2", peak.Load())
	}
	if NewPool(0, 0).Size() != 1 {
		t.Fatal("size < 1 not clamped to 1")
	}
}

// BenchmarkPoolThroughput: hashes per second through a default-sized pool
// with default params, with more callers than slots (as in a login storm).
func BenchmarkPoolThroughput(b *testing.B) {
	p := NewPool(runtime.GOMAXPROCS(0), time.Hour)
	params := DefaultParams()
	b.SetParallelism(4) // 4×GOMAXPROCS callers compete for the slots
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			err := p.Do(context.Background(), func() {
				if _, err := HashPassword("benchmark-password", params); err != nil {
					b.Error(err)
				}
			})
			if err != nil {
				b.Error(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "hashes/s")
}

// waitQueued waits (bounded) until p has n callers queued.
func waitQueued(t *testing.T, p *Pool, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for p.Waiting() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d queued, want %d", p.Waiting(), n)
		}
		runtime.Gosched()
	}
}

// Issue 12: one address queueing many hashes must not make a later
// address wait behind all of them. Slots go to keys in turn.
func TestPoolFairAcrossKeys(t *testing.T) {
	p := NewFairPool(1, 0, time.Hour)
	release := holdSlot(t, p)
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	enqueue := func(key string, n int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.DoFor(context.Background(), key, func() {
				mu.Lock()
				order = append(order, key)
				mu.Unlock()
			}); err != nil {
				t.Error(err)
			}
		}()
		waitQueued(t, p, n)
	}
	for i := range 4 {
		enqueue("flood", i+1)
	}
	enqueue("owner", 5)
	release()
	wg.Wait()
	if got := order[:2]; got[0] != "flood" || got[1] != "owner" {
		t.Fatalf("order %v: the second key should run second", order)
	}
}

// A key may hold only so many slots and places; others still get theirs.
func TestPoolPerKeyBound(t *testing.T) {
	p := NewFairPool(1, 2, time.Hour)
	hold := make(chan struct{})
	held := make(chan struct{})
	go p.DoFor(context.Background(), "a", func() { close(held); <-hold })
	<-held
	queued := make(chan error, 2)
	go func() { queued <- p.DoFor(context.Background(), "a", func() {}) }()
	waitQueued(t, p, 1)
	if err := p.DoFor(context.Background(), "a", func() { t.Error("ran past the bound") }); !errors.Is(err, ErrBusy) {
		t.Fatalf("third for a: %v, want ErrBusy", err)
	}
	go func() { queued <- p.DoFor(context.Background(), "b", func() {}) }()
	waitQueued(t, p, 2)
	close(hold)
	for range 2 {
		if err := <-queued; err != nil {
			t.Fatal(err)
		}
	}
	if p.InUse() != 0 || len(p.keys) != 0 {
		t.Fatalf("left %d in use, keys %v", p.InUse(), p.keys)
	}
}

// A waiter that gives up leaves the queue, and the slot still moves on.
func TestPoolWaiterGivesUp(t *testing.T) {
	p := NewFairPool(1, 0, time.Hour)
	release := holdSlot(t, p)
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp := make(chan error, 1)
	go func() { gaveUp <- p.DoFor(ctx, "quitter", func() { t.Error("ran after giving up") }) }()
	waitQueued(t, p, 1)
	done := make(chan error, 1)
	go func() { done <- p.DoFor(context.Background(), "stayer", func() {}) }()
	waitQueued(t, p, 2)
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if p.InUse() != 0 || p.Waiting() != 0 {
		t.Fatalf("in use %d, waiting %d", p.InUse(), p.Waiting())
	}
}

func TestDefaultPoolSizeLeavesCores(t *testing.T) {
	n := runtime.GOMAXPROCS(0)
	if got := DefaultPoolSize(Params{Threads: 1}); got < 1 || n > 1 && got >= n {
		t.Fatalf("DefaultPoolSize = %d with GOMAXPROCS %d: hashing may take every core", got, n)
	}
}

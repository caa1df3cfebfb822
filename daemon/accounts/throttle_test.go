package accounts

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// newTestThrottle gives accounts the sources' schedule unless cfg sets
// one: most tests here exercise the schedule's mechanics, on either table.
func newTestThrottle(cfg ThrottleConfig) (*Throttle, *fakeClock) {
	if cfg.AccountFree == 0 {
		cfg.AccountFree = cfg.Free
	}
	th := NewThrottle(cfg)
	c := newFakeClock()
	th.now = c.Now
	return th, c
}

func TestThrottleGrowthAndCap(t *testing.T) {
	th, clock := newTestThrottle(ThrottleConfig{Free: 3, BaseDelay: time.Second, MaxDelay: 8 * time.Second})
	for i := 1; i <= 3; i++ {
		th.Failure("alice", "")
		if d := th.Check("alice", ""); d != 0 {
			t.Fatalf("after free failure %d: locked %v", i, d)
		}
	}
	// Failure 4 locks 1s, then each failure doubles, capped at 8s.
	for _, want := range []time.Duration{1, 2, 4, 8, 8, 8} {
		th.Failure("alice", "")
		if d := th.Check("alice", ""); d != want*time.Second {
			t.Fatalf("lockout %v, want %v", d, want*time.Second)
		}
		clock.Advance(want*time.Second - time.Millisecond)
		if d := th.Check("alice", ""); d != time.Millisecond {
			t.Fatalf("just before the end: %v", d)
		}
		clock.Advance(time.Millisecond)
		if d := th.Check("alice", ""); d != 0 {
			t.Fatalf("lockout did not end: %v", d)
		}
	}
}

func TestThrottleSuccessResetsAccountNotSource(t *testing.T) {
	th, _ := newTestThrottle(ThrottleConfig{Free: 1})
	th.Failure("alice", "1.2.3.4")
	th.Failure("alice", "1.2.3.4")
	if th.Check("alice", "") == 0 || th.Check("", "1.2.3.4") == 0 {
		t.Fatal("not locked after 2 failures with 1 free")
	}
	th.Success("alice", "1.2.3.4")
	if d := th.Check("alice", ""); d != 0 {
		t.Fatalf("account still locked after success: %v", d)
	}
	// The source keeps its record: logging into one's own account must not
	// launder failures against others.
	if th.Check("bob", "1.2.3.4") == 0 {
		t.Fatal("success reset the source")
	}
	// And the account counter really restarted: one free failure again.
	th.Failure("alice", "")
	if d := th.Check("alice", ""); d != 0 {
		t.Fatalf("counter not reset: %v", d)
	}
}

func TestThrottlePerAccountAndPerSource(t *testing.T) {
	th, _ := newTestThrottle(ThrottleConfig{Free: 2})
	// One account from many sources: the account locks, the sources don't.
	for i := range 3 {
		th.Failure("victim", fmt.Sprintf("10.0.0.%d", i))
	}
	if th.Check("victim", "10.9.9.9") == 0 {
		t.Fatal("account not locked for a fresh source")
	}
	if th.Check("other", "10.0.0.1") != 0 {
		t.Fatal("a source with one failure is locked")
	}
	// One source against many accounts: the source locks.
	for i := range 3 {
		th.Failure(fmt.Sprintf("user%d", i), "192.0.2.7")
	}
	if th.Check("fresh", "192.0.2.7") == 0 {
		t.Fatal("source not locked for a fresh account")
	}
	if th.Check("fresh", "192.0.2.8") != 0 {
		t.Fatal("unrelated source locked")
	}
}

func TestThrottleExpiry(t *testing.T) {
	th, clock := newTestThrottle(ThrottleConfig{Free: 1, BaseDelay: time.Second, MaxDelay: time.Minute, Expire: time.Hour})
	for range 5 { // lockout 8s
		th.Failure("alice", "ip")
	}
	clock.Advance(8*time.Second + time.Hour - time.Second)
	if a, s := th.Len(); a != 1 || s != 1 {
		t.Fatalf("forgotten too early: %d %d", a, s)
	}
	th.Failure("alice", "") // still counting: failure 6 → 16s
	if d := th.Check("alice", ""); d != 16*time.Second {
		t.Fatalf("counter lost before expiry: %v", d)
	}
	clock.Advance(16*time.Second + time.Hour)
	if d := th.Check("alice", "ip"); d != 0 {
		t.Fatalf("locked after expiry: %v", d)
	}
	if a, s := th.Len(); a != 0 || s != 0 {
		t.Fatalf("expired entries kept: %d %d", a, s)
	}
	th.Failure("alice", "") // fresh start: the one free failure
	if d := th.Check("alice", ""); d != 0 {
		t.Fatalf("counter survived expiry: %v", d)
	}
}

func TestThrottleBoundedSize(t *testing.T) {
	th, clock := newTestThrottle(ThrottleConfig{Free: 3, MaxEntries: 100})
	for i := range 10000 {
		th.Failure(fmt.Sprintf("name%d", i), fmt.Sprintf("ip%d", i))
		clock.Advance(time.Millisecond)
	}
	if a, s := th.Len(); a > 100 || s > 100 {
		t.Fatalf("tables grew to %d/%d entries, cap 100", a, s)
	}
	// The newest keys are the ones kept: a key under active attack stays.
	for range 4 {
		th.Failure("target", "")
	}
	for i := range 99 {
		th.Failure(fmt.Sprintf("churn%d", i), "")
	}
	if th.Check("target", "") == 0 {
		t.Fatal("recently failed key evicted before older ones")
	}
}

func TestThrottleEmptyKeysIgnored(t *testing.T) {
	th, _ := newTestThrottle(ThrottleConfig{Free: -1}) // no free failures
	th.Failure("", "")
	if a, s := th.Len(); a != 0 || s != 0 {
		t.Fatalf("empty keys tracked: %d %d", a, s)
	}
	th.Failure("x", "")
	if th.Check("x", "") != time.Second {
		t.Fatal("Free<0 should mean the first failure locks")
	}
}

// Parallel attempts must not all slip past Check before the first failure
// is recorded.
func TestThrottleBeginStopsBursts(t *testing.T) {
	th, clock := newTestThrottle(ThrottleConfig{Free: 3, BaseDelay: time.Second})
	var atts []*Attempt
	for i := range 3 { // within the free allowance: parallel is fine
		a, d := th.Begin("alice", "")
		if d != 0 {
			t.Fatalf("attempt %d refused: %v", i, d)
		}
		atts = append(atts, a)
	}
	if a, d := th.Begin("alice", ""); a != nil || d < time.Second {
		t.Fatalf("4th parallel attempt admitted (%v, %v)", a, d)
	}
	for _, a := range atts {
		a.Failure()
	}
	// Past the free allowance: one at a time.
	a, d := th.Begin("alice", "")
	if d != 0 {
		t.Fatalf("sequential attempt refused: %v", d)
	}
	if b, d := th.Begin("alice", ""); b != nil || d != time.Second {
		t.Fatalf("second in-flight attempt past the allowance: %v %v", b, d)
	}
	a.Failure() // failure 4 → 1s
	if _, d := th.Begin("alice", ""); d != time.Second {
		t.Fatalf("locked for %v, want 1s", d)
	}
	clock.Advance(time.Second)
	a, _ = th.Begin("alice", "")
	a.Success()
	if n, _ := th.Len(); n != 0 {
		t.Fatalf("%d account entries after success", n)
	}
}

func TestThrottleAttemptReleaseAndIdempotence(t *testing.T) {
	th, _ := newTestThrottle(ThrottleConfig{Free: -1})
	a, _ := th.Begin("alice", "ip")
	if n, m := th.Len(); n != 1 || m != 1 {
		t.Fatalf("reservation not tracked: %d %d", n, m)
	}
	a.Release()
	a.Failure() // no effect: already ended
	if n, m := th.Len(); n != 0 || m != 0 {
		t.Fatalf("released attempt left %d %d entries", n, m)
	}
	if d := th.Check("alice", "ip"); d != 0 {
		t.Fatalf("Release recorded a failure: %v", d)
	}
	a, _ = th.Begin("", "ip") // source only
	a.Failure()
	if n, m := th.Len(); n != 0 || m != 1 {
		t.Fatalf("source-only attempt: %d %d", n, m)
	}
}

func TestThrottleConcurrent(t *testing.T) {
	th := NewThrottle(ThrottleConfig{MaxEntries: 50})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				acct, ip := fmt.Sprintf("u%d", i%70), fmt.Sprintf("ip%d", g)
				th.Check(acct, ip)
				if a, d := th.Begin(acct, ip); d == 0 {
					if i%3 == 0 {
						a.Success()
					} else {
						a.Failure()
					}
				}
				th.Failure(acct, "")
			}
		}()
	}
	wg.Wait()
	if a, s := th.Len(); a > 50 || s > 50 {
		t.Fatalf("cap exceeded: %d %d", a, s)
	}
}

// Issue 12: guesses from other addresses must not lock the owner out,
// while each guessing address is still braked.
func TestThrottleStrangersCannotLockOutOwner(t *testing.T) {
	th, _ := newTestThrottle(ThrottleConfig{Free: 3, AccountFree: 100})
	for i := range 20 {
		src := fmt.Sprintf("10.0.0.%d", i)
		for range 4 {
			th.Failure("victim", src)
		}
		if th.Check("victim", src) == 0 {
			t.Fatalf("%s not braked after 4 failures", src)
		}
	}
	if d := th.Check("victim", "192.0.2.1"); d != 0 {
		t.Fatalf("owner locked out by strangers for %v", d)
	}
}

// Past the account-wide ceiling a new source waits, but one that logged
// in to the account before does not; its own failures still brake it.
func TestThrottleTrustedSourceSkipsAccountLock(t *testing.T) {
	th, clock := newTestThrottle(ThrottleConfig{Free: 1, AccountFree: 2, TrustFor: time.Hour})
	th.Success("victim", "home")
	for i := range 5 {
		th.Failure("victim", fmt.Sprintf("10.0.0.%d", i))
	}
	if th.Check("victim", "cafe") == 0 {
		t.Fatal("account not locked past its ceiling")
	}
	if d := th.Check("victim", "home"); d != 0 {
		t.Fatalf("trusted source locked out for %v", d)
	}
	a, err := th.Begin("victim", "home")
	if err != 0 {
		t.Fatalf("Begin refused the trusted source: %v", err)
	}
	a.Failure()
	a, _ = th.Begin("victim", "home")
	a.Failure()
	if th.Check("victim", "home") == 0 {
		t.Fatal("trusted source not braked by its own failures")
	}
	clock.Advance(2 * time.Hour)
	th.Failure("victim", "10.0.0.9")
	th.Failure("victim", "10.0.0.9")
	th.Failure("victim", "10.0.0.8")
	if th.Check("victim", "home") == 0 {
		t.Fatal("trust did not expire")
	}
}

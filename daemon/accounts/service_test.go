package accounts

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRegisterLogin(t *testing.T) {
	s := newTestService(t, NewMemoryStore(), nil)
	a, err := s.Register(bg, "Alice", "correct horse", "")
	if err != nil {
		t.Fatal(err)
	}
	if a.Name != "Alice" || a.Hash != "" || !a.Created.Equal(s.clock.Now()) {
		t.Fatalf("Register returned %+v", a)
	}
	if s.Count() != 1 {
		t.Fatalf("Count = %d", s.Count())
	}
	a, err = s.Login(bg, "alice", "correct horse", "198.51.100.1")
	if err != nil {
		t.Fatal(err)
	}
	if a.Name != "Alice" || a.Hash != "" {
		t.Fatalf("Login returned %+v", a)
	}
	_, err = s.Login(bg, "Alice", "wrong horse", "198.51.100.1")
	if !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
	_, err2 := s.Login(bg, "Mallory", "wrong horse", "198.51.100.1")
	if !errors.Is(err2, ErrBadCredentials) || err.Error() != err2.Error() {
		t.Fatalf("unknown name must look like a wrong password: %v vs %v", err, err2)
	}
	if !s.Exists(bg, "ALICE") || s.Exists(bg, "mallory") {
		t.Fatal("Exists wrong")
	}
}

func TestRegisterCaseInsensitiveUnique(t *testing.T) {
	s := newTestService(t, NewMemoryStore(), nil)
	if _, err := s.Register(bg, "Alice", "password1", ""); err != nil {
		t.Fatal(err)
	}
	hashesBefore := s.vc.hashing.Load()
	if _, err := s.Register(bg, "aLICE", "password2", ""); !errors.Is(err, ErrExists) {
		t.Fatalf("got %v, want ErrExists", err)
	}
	if s.vc.hashing.Load() != hashesBefore {
		t.Fatal("a taken name cost a hash")
	}
	if _, err := s.Login(bg, "ALICE", "password1", ""); err != nil {
		t.Fatalf("original password: %v", err)
	}
}

func TestPasswordRules(t *testing.T) {
	s := newTestService(t, NewMemoryStore(), nil)
	for i, tc := range []struct {
		pw   string
		want error
	}{
		{"", ErrWeakPassword},
		{"1234567", ErrWeakPassword},
		{"12345678", nil},
		{"ééééééé", ErrWeakPassword}, // 7 characters, 14 bytes: counted in characters
		{"éééééééé", nil},
		{"bad\xffutf8-password", ErrWeakPassword},
		{strings.Repeat("a", MaxPasswordLen), nil},
		{strings.Repeat("a", MaxPasswordLen+1), ErrPasswordTooLong},
		{strings.Repeat("a", 1<<20), ErrPasswordTooLong},
	} {
		_, err := s.Register(bg, fmt.Sprintf("user%d", i), tc.pw, "")
		if !errors.Is(err, tc.want) {
			t.Errorf("password of %d bytes: %v, want %v", len(tc.pw), err, tc.want)
		}
	}
	if _, err := s.Register(bg, "", "12345678", ""); !errors.Is(err, ErrInvalidName) {
		t.Errorf("empty name: %v", err)
	}
	s2 := newTestService(t, NewMemoryStore(), func(c *Config) { c.MinPasswordLen = 3 })
	if _, err := s2.Register(bg, "x", "abc", ""); err != nil {
		t.Errorf("MinPasswordLen 3: %v", err)
	}
}

// CheckPassword is the rule Register applies; admin tools call it directly.
func TestCheckPassword(t *testing.T) {
	for _, tc := range []struct {
		pw     string
		minLen int
		want   error
	}{
		{"abc", 3, nil},
		{"ab", 3, ErrWeakPassword},
		{"", 0, nil},    // minLen < 1: no minimum
		{"ééé", 3, nil}, // characters, not bytes
		{"ab\xff", 1, ErrWeakPassword},
		{strings.Repeat("é", MaxPasswordLen/2), 8, nil},
		{strings.Repeat("é", MaxPasswordLen/2+1), 8, ErrPasswordTooLong}, // bytes, not characters
	} {
		if err := CheckPassword(tc.pw, tc.minLen); !errors.Is(err, tc.want) {
			t.Errorf("CheckPassword(%d bytes, %d) = %v, want %v", len(tc.pw), tc.minLen, err, tc.want)
		}
	}
}

// Login must still accept a password shorter than today's minimum (the
// minimum may have been raised), and must refuse over-long or invalid ones
// without hashing.
func TestLoginPasswordShapes(t *testing.T) {
	store := NewMemoryStore()
	old := newTestService(t, store, func(c *Config) { c.MinPasswordLen = 4 })
	if _, err := old.Register(bg, "shorty", "abcd", ""); err != nil {
		t.Fatal(err)
	}
	s := newTestService(t, store, func(c *Config) { c.MinPasswordLen = 12 })
	if _, err := s.Login(bg, "shorty", "abcd", ""); err != nil {
		t.Fatalf("short legacy password: %v", err)
	}
	before, _ := s.vc.snapshot()
	for _, pw := range []string{strings.Repeat("a", MaxPasswordLen+1), "bad\xff"} {
		if _, err := s.Login(bg, "shorty", pw, ""); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("got %v", err)
		}
	}
	if after, _ := s.vc.snapshot(); after != before {
		t.Fatal("hashed a password that can never match")
	}
}

// The unknown-name path must cost one verification against the dummy hash,
// made with the current params: that is what makes it take as long as a
// wrong password. Checked structurally, not by timing.
func TestUnknownNameVerifiesDummy(t *testing.T) {
	s := newTestService(t, NewMemoryStore(), nil)
	if _, err := s.Register(bg, "alice", "password1", ""); err != nil {
		t.Fatal(err)
	}
	stored, _ := s.store.Get(bg, "alice")

	if _, err := s.Login(bg, "nobody", "password1", ""); !errors.Is(err, ErrBadCredentials) {
		t.Fatal(err)
	}
	if _, err := s.Login(bg, "alice", "password2", ""); !errors.Is(err, ErrBadCredentials) {
		t.Fatal(err)
	}
	n, hashes := s.vc.snapshot()
	if n != 2 || hashes[0] != s.dummy || hashes[1] != stored.Hash {
		t.Fatalf("verify calls %d %q; want dummy then the stored hash", n, hashes)
	}
	d, err := ParseHash(s.dummy)
	if err != nil || d.Params != s.params || len(d.Key) != KeyLen || len(d.Salt) != SaltLen {
		t.Fatalf("dummy %+v (%v) not made with the current params %+v", d.Params, err, s.params)
	}
	// The dummy is never a way in, whatever is typed.
	if _, err := s.Login(bg, "nobody", "", ""); !errors.Is(err, ErrBadCredentials) {
		t.Fatal(err)
	}
}

func TestLoginUpgradesOldHash(t *testing.T) {
	store := NewMemoryStore()
	old := newTestService(t, store, nil) // fastParams: m=64,t=1
	if _, err := old.Register(bg, "alice", "password1", ""); err != nil {
		t.Fatal(err)
	}
	stronger := Params{Memory: 128, Time: 2, Threads: 1}
	s := newTestService(t, store, func(c *Config) { c.Params = stronger })

	// A wrong password must not trigger a re-hash.
	s.Login(bg, "alice", "password2", "")
	if a, _ := store.Get(bg, "alice"); !strings.Contains(a.Hash, "m=64,t=1,") {
		t.Fatalf("hash changed on a failed login: %s", a.Hash)
	}
	if _, err := s.Login(bg, "alice", "password1", ""); err != nil {
		t.Fatal(err)
	}
	a, _ := store.Get(bg, "alice")
	h, err := ParseHash(a.Hash)
	if err != nil || h.Params != stronger {
		t.Fatalf("not upgraded: %s (%v)", a.Hash, err)
	}
	hashesBefore := s.vc.hashing.Load()
	if _, err := s.Login(bg, "alice", "password1", ""); err != nil {
		t.Fatalf("login after upgrade: %v", err)
	}
	if s.vc.hashing.Load() != hashesBefore {
		t.Fatal("re-hashed an up-to-date hash")
	}
}

func TestLoginCorruptStoredHash(t *testing.T) {
	store := NewMemoryStore()
	store.Create(bg, Account{Name: "broken", Hash: "$argon2id$v=19$m=99999999999,t=1,p=1$x$y"})
	s := newTestService(t, store, nil)
	_, err := s.Login(bg, "broken", "whatever", "")
	if !errors.Is(err, ErrBadCredentials) || !errors.Is(err, ErrMalformedHash) {
		t.Fatalf("got %v, want ErrBadCredentials wrapping ErrMalformedHash", err)
	}
	// Still spends a real hash so the account does not stand out by timing.
	if n, hashes := s.vc.snapshot(); n != 2 || hashes[1] != s.dummy {
		t.Fatalf("verify calls %d %q", n, hashes)
	}
}

func TestLoginThrottled(t *testing.T) {
	// Default schedule (3 free, 1s base), with the account-wide ceiling
	// lowered to match so that one source can reach it.
	s := newTestService(t, NewMemoryStore(), func(c *Config) { c.Throttle.AccountFree = 3 })
	if _, err := s.Register(bg, "alice", "password1", ""); err != nil {
		t.Fatal(err)
	}
	for i := range 4 { // 3 free failures, the 4th earns a 1s lockout
		if _, err := s.Login(bg, "alice", "nope", "ip1"); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("failure %d: %v", i+1, err)
		}
	}
	calls, _ := s.vc.snapshot()
	_, err := s.Login(bg, "ALICE", "password1", "ip2") // even the right password, from elsewhere
	var te *ThrottledError
	if !errors.As(err, &te) || !errors.Is(err, ErrThrottled) || te.RetryAfter != time.Second {
		t.Fatalf("got %v, want ThrottledError{1s}", err)
	}
	if after, _ := s.vc.snapshot(); after != calls {
		t.Fatal("a throttled login was hashed")
	}
	if s.Check("alice", "") != time.Second {
		t.Fatal("Service.Check disagrees")
	}
	if !strings.Contains(err.Error(), "retry in 1s") {
		t.Fatalf("message %q", err)
	}

	s.clock.Advance(time.Second)
	if _, err := s.Login(bg, "alice", "password1", "ip2"); err != nil {
		t.Fatalf("after the lockout: %v", err)
	}
	// Success reset the account: three free failures again.
	for i := range 3 {
		if _, err := s.Login(bg, "alice", "nope", "ip3"); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("post-reset failure %d: %v", i+1, err)
		}
	}
	// ip1 has 4 failures and stays locked for any account once its lockout
	// is renewed by one more failure.
	s.clock.Advance(time.Hour - time.Second) // < Expire since the lock ended
	s.Login(bg, "someone", "x", "ip1")
	if _, err := s.Login(bg, "other", "x", "ip1"); !errors.Is(err, ErrThrottled) {
		t.Fatalf("source not throttled: %v", err)
	}
}

// Issue 12: four wrong passwords from another address used to make the
// owner's right one answer "throttled".
func TestLoginNotLockedOutFromElsewhere(t *testing.T) {
	s := newTestService(t, NewMemoryStore(), nil)
	if _, err := s.Register(bg, "lockme", "password1", ""); err != nil {
		t.Fatal(err)
	}
	for _, ip := range []string{"10.0.0.1", "10.0.0.2"} {
		for range 4 {
			s.Login(bg, "lockme", "wrong", ip)
		}
		if _, err := s.Login(bg, "lockme", "wrong", ip); !errors.Is(err, ErrThrottled) {
			t.Fatalf("guesser %s not throttled: %v", ip, err)
		}
	}
	if _, err := s.Login(bg, "lockme", "password1", "192.0.2.1"); err != nil {
		t.Fatalf("owner: %v", err)
	}
}

func TestPoolSaturationReturnsBusy(t *testing.T) {
	const wait = 30 * time.Millisecond
	s := newTestService(t, NewMemoryStore(), func(c *Config) { c.PoolSize = 1; c.PoolWait = wait })
	if _, err := s.Register(bg, "alice", "password1", ""); err != nil {
		t.Fatal(err)
	}
	release := holdSlot(t, s.pool)

	start := time.Now()
	if _, err := s.Register(bg, "bob", "password1", ""); !errors.Is(err, ErrBusy) {
		t.Fatalf("Register: %v, want ErrBusy", err)
	}
	if _, err := s.Login(bg, "alice", "password1", "ip"); !errors.Is(err, ErrBusy) {
		t.Fatalf("Login: %v, want ErrBusy", err)
	}
	if el := time.Since(start); el > 2*wait+2*time.Second {
		t.Fatalf("two ErrBusy took %v with a %v wait", el, wait)
	}
	// Being busy is not the user's fault: nothing recorded, nothing stored.
	if a, ip := s.throttle.Len(); a != 0 || ip != 0 {
		t.Fatalf("busy login left throttle entries: %d %d", a, ip)
	}
	if s.Exists(bg, "bob") {
		t.Fatal("busy Register stored an account")
	}
	// Exists needs no slot.
	if !s.Exists(bg, "alice") {
		t.Fatal("Exists blocked by the pool")
	}
	release()
	if _, err := s.Login(bg, "alice", "password1", "ip"); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

func TestServiceContextCancelled(t *testing.T) {
	s := newTestService(t, NewMemoryStore(), nil)
	ctx, cancel := context.WithCancel(bg)
	cancel()
	if _, err := s.Register(ctx, "alice", "password1", ""); !errors.Is(err, context.Canceled) {
		t.Fatalf("Register: %v", err)
	}
	if _, err := s.Login(ctx, "alice", "password1", "ip"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Login: %v", err)
	}
	if a, ip := s.throttle.Len(); a != 0 || ip != 0 {
		t.Fatal("cancelled login counted as a failure")
	}
}

// No error text may contain a password, on any path.
func TestErrorsNeverContainPassword(t *testing.T) {
	const secret = "Sup3rSecretPassw0rd"
	store := NewMemoryStore()
	store.Create(bg, Account{Name: "broken", Hash: "garbage"})
	s := newTestService(t, store, func(c *Config) { c.Throttle.Free = -1 })
	var errs []error
	collect := func(_ Account, err error) { errs = append(errs, err) }
	collect(s.Register(bg, "alice", secret, ""))
	collect(s.Register(bg, "alice", secret, ""))
	collect(s.Register(bg, "bob", secret[:4], ""))
	collect(s.Register(bg, "bob", secret+strings.Repeat("x", MaxPasswordLen), ""))
	collect(s.Login(bg, "alice", secret+"x", "ip"))
	collect(s.Login(bg, "alice", secret, "ip"))
	collect(s.Login(bg, "ghost", secret, "ip9"))
	collect(s.Login(bg, "broken", secret, "ip8"))
	_, _, err := VerifyPassword(secret, "garbage", fastParams)
	errs = append(errs, err)
	n := 0
	for _, err := range errs {
		if err == nil {
			continue
		}
		n++
		if strings.Contains(err.Error(), secret[:8]) {
			t.Errorf("error leaks the password: %v", err)
		}
	}
	if n < 7 {
		t.Fatalf("only %d errors collected", n)
	}
}

func TestServiceWithFileStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "accounts.db")
	store, err := OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	s := newTestService(t, store, nil)
	if _, err := s.Register(bg, "Dave", "password1", ""); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := s.Register(bg, "erin", "password1", ""); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}

	store, err = OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	s = newTestService(t, store, nil)
	a, err := s.Login(bg, "dave", "password1", "")
	if err != nil || a.Name != "Dave" {
		t.Fatalf("after reopen: %+v %v", a, err)
	}
}

// The one end-to-end run with the real default cost.
func TestServiceDefaultConfig(t *testing.T) {
	s := NewService(NewMemoryStore(), Config{}) // zero Config: all defaults
	defer s.Close()
	if s.params != DefaultParams() || s.pool.Size() < 1 || s.minLen != 8 {
		t.Fatalf("defaults not applied: %+v size %d min %d", s.params, s.pool.Size(), s.minLen)
	}
	if _, err := s.Register(bg, "Frank", "a good password", ""); err != nil {
		t.Fatal(err)
	}
	a, _ := s.store.Get(bg, "frank")
	if !strings.Contains(a.Hash, "$m=19456,t=2,p=1$") {
		t.Fatalf("stored %q", a.Hash)
	}
	if _, err := s.Login(bg, "frank", "a good password", "ip"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Login(bg, "frank", "a bad password", "ip"); !errors.Is(err, ErrBadCredentials) {
		t.Fatal(err)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatal(err)
	}
	bad := Config{Params: Params{Memory: 8, Time: 1, Threads: 4}}
	if bad.Validate() == nil {
		t.Fatal("memory below 8*p accepted")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("NewService accepted invalid params")
		}
	}()
	NewService(NewMemoryStore(), bad)
}

func TestThrottledErrorMessage(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Millisecond:        "retry in 1s",
		time.Second:             "retry in 1s",
		1500 * time.Millisecond: "retry in 2s",
		5 * time.Minute:         "retry in 300s",
	} {
		if got := (&ThrottledError{RetryAfter: d}).Error(); !strings.Contains(got, want) {
			t.Errorf("%v: %q", d, got)
		}
	}
}

func TestLoginInvalidName(t *testing.T) {
	s := newTestService(t, NewMemoryStore(), nil)
	long := strings.Repeat("n", MaxNameLen+1)
	if _, err := s.Login(bg, long, "password1", "ip"); !errors.Is(err, ErrBadCredentials) {
		t.Fatal(err)
	}
	if a, ip := s.throttle.Len(); a != 0 || ip != 1 {
		t.Fatalf("throttle entries %d/%d: a long name became a key", a, ip)
	}
	if n, hashes := s.vc.snapshot(); n != 1 || hashes[0] != s.dummy {
		t.Fatal("invalid name did not cost the dummy verification")
	}
}

// Issue 12: one address looping REGISTER created hundreds of accounts.
func TestRegisterQuotaPerSource(t *testing.T) {
	s := newTestService(t, NewMemoryStore(), func(c *Config) {
		c.RegisterPerSource, c.RegisterWindow, c.PoolWait = 2, time.Hour, -1
	})
	// A registration that fails after the quota is charged is given back.
	release := holdSlot(t, s.pool)
	if _, err := s.Register(bg, "u0", "password1", "ip1"); !errors.Is(err, ErrBusy) {
		t.Fatal(err)
	}
	release()
	for i := range 2 {
		if _, err := s.Register(bg, fmt.Sprintf("u%d", i), "password1", "ip1"); err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.Register(bg, "u2", "password1", "ip1")
	var qe *QuotaError
	if !errors.As(err, &qe) || !errors.Is(err, ErrRegisterQuota) || qe.RetryAfter != 30*time.Minute {
		t.Fatalf("got %v, want QuotaError{30m}", err)
	}
	for i := range 2 {
		if _, err := s.Register(bg, fmt.Sprintf("v%d", i), "password1", "ip2"); err != nil {
			t.Fatalf("another source: %v", err)
		}
	}
	s.clock.Advance(30 * time.Minute)
	if _, err := s.Register(bg, "u2", "password1", "ip1"); err != nil {
		t.Fatalf("after refill: %v", err)
	}
	if _, err := s.Register(bg, "u3", "password1", "ip1"); !errors.Is(err, ErrRegisterQuota) {
		t.Fatalf("got %v", err)
	}
}

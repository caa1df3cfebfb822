package accounts

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"
	"unicode/utf8"
)

// MaxPasswordLen bounds passwords in bytes. argon2 itself would accept
// anything, but hashing megabytes per attempt is a cheap DoS.
const MaxPasswordLen = 1024

// Errors returned by Service besides the store's ErrExists and
// ErrInvalidName, the pool's ErrBusy and the quota's ErrRegisterQuota. None of them ever carries a
// password.
var (
	// ErrWeakPassword: shorter than Config.MinPasswordLen characters, or not
	// valid UTF-8.
	ErrWeakPassword = errors.New("accounts: password too weak")
	// ErrPasswordTooLong: longer than MaxPasswordLen bytes.
	ErrPasswordTooLong = errors.New("accounts: password too long")
	// ErrBadCredentials: unknown account or wrong password, deliberately
	// indistinguishable. If the stored hash is unusable, the error also
	// wraps ErrMalformedHash so the daemon can log it.
	ErrBadCredentials = errors.New("accounts: invalid account name or password")
	// ErrThrottled: too many recent failures; the concrete error is a
	// *ThrottledError saying when to retry.
	ErrThrottled = errors.New("accounts: too many failed logins")
)

// ThrottledError is returned by Login when the account or the source is
// locked out. errors.Is(err, ErrThrottled) holds.
type ThrottledError struct {
	RetryAfter time.Duration
}

func (e *ThrottledError) Error() string {
	secs := (e.RetryAfter + time.Second - 1) / time.Second // round up: "retry in 0s" would be wrong
	return fmt.Sprintf("%v; retry in %ds", ErrThrottled, secs)
}

func (e *ThrottledError) Unwrap() error { return ErrThrottled }

// Config configures a Service. Zero fields take the defaults of
// DefaultConfig (field by field, also inside Params and Throttle). A
// negative PoolWait means "never wait for a hashing slot"; a negative
// PoolPerSource or RegisterPerSource means no bound.
type Config struct {
	Params         Params
	MinPasswordLen int // in characters (runes)
	PoolSize       int
	PoolWait       time.Duration
	// PoolPerSource bounds the hashes one source may have running and
	// queued together.
	PoolPerSource int
	// RegisterPerSource accounts may be created from one source per
	// RegisterWindow, refilling evenly.
	RegisterPerSource int
	RegisterWindow    time.Duration
	Throttle          ThrottleConfig
	// TokenTTL is how long a login token lives after its last use
	// (tokens.go).
	TokenTTL time.Duration
	// SCRAMIterations is the PBKDF2 iteration count of new SCRAM keys
	// (scram.go); keys made with another count are made again at the
	// next password login.
	SCRAMIterations int
	// Now is the clock of token expiry, the registration quota and the
	// login throttle; nil is time.Now. It is here so that tests of other
	// packages (the store conformance suite, accountstest) can move time
	// without sleeping.
	Now func() time.Time
}

// DefaultConfig: OWASP argon2id parameters, 8-character minimum,
// DefaultPoolSize hashing slots, 2s wait for a slot, 4 hashes per source,
// 5 registrations per source per hour, DefaultThrottleConfig.
func DefaultConfig() Config {
	p := DefaultParams()
	return Config{
		Params:            p,
		MinPasswordLen:    8,
		PoolSize:          DefaultPoolSize(p),
		PoolWait:          2 * time.Second,
		PoolPerSource:     4,
		RegisterPerSource: 5,
		RegisterWindow:    time.Hour,
		Throttle:          DefaultThrottleConfig(),
		TokenTTL:          DefaultTokenTTL,
		SCRAMIterations:   DefaultSCRAMIterations,
	}
}

// DefaultPoolSize keeps half the usable cores free of hashing (at least
// one hash may run), so that a login or registration flood leaves cores
// for the chat path: with every core hashing, PINGs queue behind argon2.
// argon2 runs one goroutine per lane, so a hash with p lanes counts p times.
func DefaultPoolSize(p Params) int {
	return max(1, runtime.GOMAXPROCS(0)/2/max(int(p.Threads), 1))
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Params.Memory == 0 {
		c.Params.Memory = d.Params.Memory
	}
	if c.Params.Time == 0 {
		c.Params.Time = d.Params.Time
	}
	if c.Params.Threads == 0 {
		c.Params.Threads = d.Params.Threads
	}
	if c.MinPasswordLen <= 0 {
		c.MinPasswordLen = d.MinPasswordLen
	}
	if c.PoolSize <= 0 {
		c.PoolSize = DefaultPoolSize(c.Params)
	}
	if c.PoolPerSource == 0 {
		c.PoolPerSource = d.PoolPerSource
	}
	if c.RegisterPerSource == 0 {
		c.RegisterPerSource = d.RegisterPerSource
	}
	if c.RegisterWindow <= 0 {
		c.RegisterWindow = d.RegisterWindow
	}
	if c.PoolWait == 0 {
		c.PoolWait = d.PoolWait
	}
	if c.TokenTTL <= 0 {
		c.TokenTTL = d.TokenTTL
	}
	if c.SCRAMIterations <= 0 {
		c.SCRAMIterations = d.SCRAMIterations
	}
	c.Throttle = c.Throttle.withDefaults()
	return c
}

// Validate reports whether NewService would accept c (after defaults are
// filled in). Call it when loading configuration to get an error instead
// of NewService's panic.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.SCRAMIterations < MinSCRAMIterations {
		return fmt.Errorf("accounts: SCRAM iterations %d below the minimum of %d (RFC 7677)", c.SCRAMIterations, MinSCRAMIterations)
	}
	return c.Params.Validate()
}

// Service is the account façade used by the daemon. All methods are safe
// for concurrent use by many connection goroutines.
type Service struct {
	store    Store
	params   Params
	minLen   int
	pool     *Pool
	throttle *Throttle
	quota    *quota // nil: registrations are not limited per source
	tokenTTL time.Duration
	// scramIters is Config.SCRAMIterations.
	scramIters int
	// dummy is a hash of a random password made with the current params.
	// Login verifies unknown names against it so that they cost exactly
	// as much as a wrong password for a real account.
	dummy string

	// Seams for tests; set once in NewService and never changed by the
	// package afterwards.
	now    func() time.Time
	verify func(password, encoded string, cur Params) (match, needsUpgrade bool, err error)
	hash   func(password string, p Params) (string, error)
}

// NewService returns a Service over store; the Service owns the store and
// closes it in Close. It computes one hash (the dummy) before returning, so
// it takes as long as one hash. It panics if cfg.Validate fails: invalid
// argon2 parameters are a configuration error to catch at startup.
func NewService(store Store, cfg Config) *Service {
	cfg = cfg.withDefaults()
	if err := cfg.Params.Validate(); err != nil {
		panic(err)
	}
	var pw [16]byte
	randRead(pw[:])
	dummy, err := HashPassword(string(pw[:]), cfg.Params)
	if err != nil {
		panic(err) // unreachable: params validated above
	}
	var q *quota
	if cfg.RegisterPerSource > 0 {
		q = newQuota(cfg.RegisterPerSource, cfg.RegisterWindow, cfg.Throttle.MaxEntries)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	throttle := NewThrottle(cfg.Throttle)
	throttle.now = now
	return &Service{
		store:      store,
		params:     cfg.Params,
		minLen:     cfg.MinPasswordLen,
		pool:       NewFairPool(cfg.PoolSize, cfg.PoolPerSource, cfg.PoolWait),
		throttle:   throttle,
		quota:      q,
		tokenTTL:   cfg.TokenTTL,
		scramIters: cfg.SCRAMIterations,
		dummy:      dummy,
		now:        now,
		verify:     VerifyPassword,
		hash:       HashPassword,
	}
}

// Register creates an account; source identifies the client's origin for
// the registration quota and the hashing pool's fairness ("" for neither).
// Errors: ErrInvalidName, ErrWeakPassword, ErrPasswordTooLong, ErrExists
// (also when a concurrent Register of the same folded name won), a
// *QuotaError (errors.Is ErrRegisterQuota), ErrBusy, a context error, or a
// store error. The returned Account has an empty Hash.
func (s *Service) Register(ctx context.Context, name, password, source string) (a Account, err error) {
	if err := checkName(name); err != nil {
		return Account{}, err
	}
	if err := CheckPassword(password, s.minLen); err != nil {
		return Account{}, err
	}
	// Cheap early refusal so that a taken name costs no hash. Existence is
	// public anyway (nick protection), so this leaks nothing. The store's
	// Create re-checks atomically.
	switch _, err := s.store.Get(ctx, name); {
	case err == nil:
		return Account{}, ErrExists
	case !errors.Is(err, ErrNotFound):
		return Account{}, err
	}
	if s.quota != nil {
		// Charged before hashing, so a burst of parallel attempts cannot
		// all pass; given back below if no account results.
		if retry := s.quota.take(source, s.now()); retry > 0 {
			return Account{}, &QuotaError{RetryAfter: retry}
		}
		defer func() {
			if err != nil {
				s.quota.refund(source)
			}
		}()
	}
	var hash, scramKeys string
	var herr error
	err = s.pool.DoFor(ctx, source, func() {
		hash, herr = s.hash(password, s.params)
		// A password SASLprep refuses gets no SCRAM keys: it keeps to
		// PLAIN, as a SCRAM client could not use it anyway.
		scramKeys, _ = newSCRAM(password, s.scramIters)
	})
	if err != nil {
		return Account{}, err
	}
	if herr != nil {
		return Account{}, herr
	}
	// UTC() also strips the monotonic reading, so the value compares equal
	// after a round trip through the file store.
	a = Account{Name: name, Hash: hash, Created: s.now().UTC(), SCRAM: scramKeys}
	if err := s.store.Create(ctx, a); err != nil {
		return Account{}, err
	}
	// The address that created the account is its owner's: trust it past
	// the account-wide login throttle, as after a login.
	s.throttle.Success(Fold(name), source)
	a.Hash, a.SCRAM = "", ""
	return a, nil
}

// Login checks name's password; ip identifies the client's source for
// throttling ("" to throttle by account only). Errors: ErrBadCredentials
// for an unknown name or a wrong password alike, a *ThrottledError
// (errors.Is ErrThrottled) when locked out — no hashing is done then —,
// ErrBusy, a context error, or a store error. On success, a hash weaker
// than the current Params is replaced, and SCRAM keys are added if the
// account has none (registered before SCRAM) or has them with another
// iteration count (best effort: if storing fails, the next login tries
// again). The returned Account has an empty Hash and SCRAM.
func (s *Service) Login(ctx context.Context, name, password, ip string) (Account, error) {
	key := Fold(name)
	if checkName(name) != nil {
		// Cannot exist; and an arbitrarily long name must not become a
		// throttle key. The source is still throttled and the dummy still
		// hashed below.
		key = ""
	}
	att, retry := s.throttle.Begin(key, ip)
	if retry > 0 {
		return Account{}, &ThrottledError{RetryAfter: retry}
	}
	// A password that Register would never have accepted as too long or
	// not UTF-8 cannot match; refuse it without hashing. This depends only
	// on the password, not on whether name exists, so it leaks nothing.
	// (Too-short ones are still verified: the minimum may have been raised
	// since the account was registered.)
	if len(password) > MaxPasswordLen || !utf8.ValidString(password) {
		att.Failure()
		return Account{}, ErrBadCredentials
	}
	acct, err := s.store.Get(ctx, key)
	found := err == nil
	if err != nil && !errors.Is(err, ErrNotFound) {
		att.Release()
		return Account{}, err
	}
	encoded := s.dummy
	if found {
		encoded = acct.Hash
	}
	var (
		match, upgrade bool
		verr           error
		newHash        string
		newSCRAMKeys   string
	)
	err = s.pool.DoFor(ctx, ip, func() {
		match, upgrade, verr = s.verify(password, encoded, s.params)
		if verr != nil {
			// Unparsable stored hash: spend the normal cost anyway so this
			// account does not stand out by timing.
			s.verify(password, s.dummy, s.params)
		}
		if found && match && upgrade {
			// Re-hash while holding the slot we already waited for.
			newHash, _ = s.hash(password, s.params)
		}
		if found && match && !scramCurrent(acct.SCRAM, s.scramIters) {
			// The migration of accounts from before SCRAM: this is the
			// one moment the server sees the password again.
			newSCRAMKeys, _ = newSCRAM(password, s.scramIters)
		}
	})
	if err != nil {
		att.Release()
		return Account{}, err
	}
	if !found || !match {
		att.Failure()
		if found && verr != nil {
			return Account{}, fmt.Errorf("%w: %w", ErrBadCredentials, verr)
		}
		return Account{}, ErrBadCredentials
	}
	att.Success()
	if newHash != "" || newSCRAMKeys != "" {
		hash, keys := acct.Hash, acct.SCRAM
		if newHash != "" {
			hash = newHash
		}
		if newSCRAMKeys != "" {
			keys = newSCRAMKeys
		}
		// Detached from ctx: the hash is already paid for, and a client
		// that disconnects right after logging in should not waste it.
		_ = s.store.Rehash(context.WithoutCancel(ctx), key, acct.Hash, hash, keys)
	}
	acct.Hash, acct.SCRAM = "", ""
	return acct, nil
}

// VerifyOperator checks an OPER password against encoded (an operator's
// hash from the config, or "" for a name that is not an operator) the way
// Login checks an account's: on the shared fair pool, throttled per source,
// and at the same cost whether or not the name exists. Without this, OPER
// attempts from many connections would hash on their own goroutines, past
// the pool's bound and its fairness.
func (s *Service) VerifyOperator(ctx context.Context, password, encoded, source string) (bool, error) {
	att, retry := s.throttle.Begin("", source)
	if retry > 0 {
		return false, &ThrottledError{RetryAfter: retry}
	}
	if len(password) > MaxPasswordLen {
		att.Failure()
		return false, nil
	}
	known := encoded != ""
	if !known {
		encoded = s.dummy
	}
	var match bool
	if err := s.pool.DoFor(ctx, source, func() {
		var err error
		match, _, err = VerifyPassword(password, encoded, s.params)
		match = match && err == nil && known
	}); err != nil {
		att.Release()
		return false, err
	}
	if !match {
		att.Failure()
		return false, nil
	}
	att.Success()
	return true, nil
}

// Check returns how long logins for name from ip are currently refused (0:
// not throttled). Handlers may use it to refuse early, e.g. before reading
// a SASL payload; Login checks again itself.
func (s *Service) Check(name, ip string) time.Duration {
	return s.throttle.Check(Fold(name), ip)
}

// Exists reports whether name is registered, case-insensitively, for nick
// protection. It does no hashing. A store error counts as "not registered"
// so that a broken store does not lock every nick.
func (s *Service) Exists(ctx context.Context, name string) bool {
	_, err := s.store.Get(ctx, name)
	return err == nil
}

// PoolStats returns how many hashes are running and how many wait for a
// slot (a snapshot, for metrics).
func (s *Service) PoolStats() (inUse, waiting int) { return s.pool.InUse(), s.pool.Waiting() }

// Count returns the number of registered accounts.
func (s *Service) Count() int { return s.store.Count() }

// Close closes the store. Calls after Close fail with ErrClosed.
func (s *Service) Close() error { return s.store.Close() }

// Credentials returns what a store keeps for password (its argon2id hash
// and SCRAM keys, for SetPassword) with DefaultParams and
// DefaultSCRAMIterations. Admin tools that set passwords use it; it
// hashes on the caller's goroutine, not on a Service's pool.
func Credentials(password string) (hash, scramKeys string, err error) {
	if hash, err = HashPassword(password, DefaultParams()); err != nil {
		return "", "", err
	}
	scramKeys, _ = newSCRAM(password, DefaultSCRAMIterations) // see Register
	return hash, scramKeys, nil
}

// CheckPassword applies the rules for a new password: at most
// MaxPasswordLen bytes (else ErrPasswordTooLong), valid UTF-8 and at least
// minLen characters (else ErrWeakPassword). Register uses it with
// Config.MinPasswordLen; admin tools that set passwords must use it too, so
// that there is one definition of an acceptable password. minLen < 1 means
// no minimum. The error never contains the password.
func CheckPassword(pw string, minLen int) error {
	// Length first: it is the cheap DoS guard, and it bounds the UTF-8 scan.
	if len(pw) > MaxPasswordLen {
		return ErrPasswordTooLong
	}
	if !utf8.ValidString(pw) || utf8.RuneCountInString(pw) < minLen {
		return ErrWeakPassword
	}
	return nil
}

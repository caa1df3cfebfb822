// Package accounts stores registered accounts and verifies their passwords.
//
// It knows nothing about IRC: the caller validates account names as nicks and
// maps the errors below to numerics. What this package guarantees is:
//
//   - names are unique case-insensitively (ASCII folding, see Fold) while the
//     display spelling given at registration is kept;
//   - passwords are stored only as argon2id PHC strings (hash.go) and
//     SCRAM-SHA-256 keys derived from them (scram.go), and never appear in
//     errors or return values;
//   - hashing is CPU- and memory-heavy, so it runs on a bounded pool
//     (pool.go) that sheds load with ErrBusy instead of queueing forever;
//   - failed logins are throttled per account and per source (throttle.go),
//     and an unknown name costs the same hash as a wrong password so login
//     timing does not reveal which names are registered (service.go).
//
// Service is the façade the daemon uses; the lower-level pieces are exported
// for tests and tools but need not be used directly.
package accounts

import (
	"context"
	"errors"
	"time"
)

// Errors returned by stores and the Service. Compare with errors.Is: they
// are usually wrapped with context.
var (
	// ErrExists: the folded name is already registered.
	ErrExists = errors.New("accounts: account already exists")
	// ErrNotFound: no account with that folded name.
	ErrNotFound = errors.New("accounts: no such account")
	// ErrInvalidName: empty or longer than MaxNameLen. Real nick validation
	// is the caller's job; this only protects the stores.
	ErrInvalidName = errors.New("accounts: invalid account name")
	// ErrClosed: the store (or service) has been closed.
	ErrClosed = errors.New("accounts: store closed")
	// ErrLocked: the file store is held by another process.
	ErrLocked = errors.New("accounts: store locked by another process")
	// ErrSchemaTooNew: the file store was written by a newer livechatd
	// whose format this one does not know. The file is left untouched.
	ErrSchemaTooNew = errors.New("accounts: store has a newer schema version")
)

// MaxNameLen bounds account names in bytes. It is a storage guard far above
// any sane NICKLEN, not a policy.
const MaxNameLen = 255

// Account is one registered account.
type Account struct {
	Name    string    // display name, as registered
	Hash    string    // argon2id PHC string; Service leaves it empty in results
	Created time.Time // registration time
	// SCRAM is the SCRAM-SHA-256 salt, iteration count and keys derived
	// from the same password as Hash (scram.go), or "" for an account
	// that has not logged in with its password since SCRAM came. Stores
	// keep it as an opaque string; Service leaves it empty in results.
	SCRAM string
	// Multiclient is the account's own choice for several connections at
	// once sharing its nick: "on", "off", or "" for the server's default.
	Multiclient string
}

// Store persists accounts keyed by Fold(name).
//
// Implementations must be safe for concurrent use by multiple goroutines.
// Create must be atomic with respect to the uniqueness check, so that of two
// concurrent Creates of names that fold equally exactly one succeeds.
// Create, SetPassword and Delete must be durable when they return nil.
type Store interface {
	// Create adds a. ErrExists if Fold(a.Name) is taken.
	Create(ctx context.Context, a Account) error
	// Get looks name up case-insensitively. ErrNotFound if absent.
	Get(ctx context.Context, name string) (Account, error)
	// List returns every account, Hash included, sorted by Fold(Name). It
	// is meant for admin tools; nothing on a client's path should call it.
	List(ctx context.Context) ([]Account, error)
	// SetPassword replaces the stored hash and SCRAM keys together: both
	// come from one password, and keys left from an old password would
	// still let it in. ErrNotFound if absent.
	SetPassword(ctx context.Context, name, hash, scram string) error
	// Rehash replaces the hash and SCRAM keys only if the stored hash is
	// still oldHash: a login that upgrades them (new cost parameters, SCRAM
	// keys for an old account) must not undo a password change that raced
	// it. No change and nil otherwise; ErrNotFound if absent.
	Rehash(ctx context.Context, name, oldHash, hash, scram string) error
	// SetMulticlient records the account's multiclient choice ("on",
	// "off" or ""). ErrNotFound if absent.
	SetMulticlient(ctx context.Context, name, value string) error
	// Delete removes name case-insensitively. ErrNotFound if absent.
	Delete(ctx context.Context, name string) error
	// Count returns the number of accounts.
	Count() int
	// Close releases the store; later calls return ErrClosed.
	Close() error
}

// Fold returns the storage key of an account name: ASCII lower case.
//
// Only ASCII is folded, on purpose: it matches the "ascii" IRC casemapping,
// and any wider folding (rfc1459 brackets, Unicode) would have to agree
// exactly with the nick layer, which is the caller's concern.
func Fold(name string) string {
	for i := 0; i < len(name); i++ {
		if c := name[i]; 'A' <= c && c <= 'Z' {
			b := []byte(name)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return name // already folded: no allocation
}

func checkName(name string) error {
	if name == "" || len(name) > MaxNameLen {
		return ErrInvalidName
	}
	return nil
}

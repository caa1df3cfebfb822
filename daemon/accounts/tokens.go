package accounts

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
)

// Login tokens let a browser (or an IRC client) stay logged in without
// keeping the password: after a password login the owner asks for one, the
// server returns it once, and later connections present it instead of the
// password.
//
// A token is "<id>.<secret>": id is public (it names the token in lists and
// revocations), secret is 256 random bits. Only SHA-256(secret) is stored.
// A fast hash is enough here, unlike for passwords: the secret is random and
// long, so there is nothing to guess by brute force, and checking it costs
// microseconds, so a reconnect storm of token logins never touches the
// argon2 pool.

// DefaultTokenTTL is how long a token lives after its last use.
const DefaultTokenTTL = 30 * 24 * time.Hour

// MaxTokens bounds the tokens one account keeps: issuing one beyond it
// forgets the one used longest ago, so a client asking in a loop cannot grow
// the store without end.
const MaxTokens = 20

// MaxTokenLabelLen bounds a token's label in bytes.
const MaxTokenLabelLen = 64

// touchEvery is how stale a token's last use may get before a login with it
// writes the new time (and the new expiry) to the store. Without it every
// reconnect would be a durable write; with it a token expires at most this
// much earlier than "TTL after its very last use".
const touchEvery = time.Hour

var (
	// ErrBadToken: the token is malformed, unknown, revoked or expired, or
	// its account is gone. Deliberately one error: which of these it was
	// is nobody's business but the owner's, who can list their tokens.
	ErrBadToken = errors.New("accounts: invalid, revoked or expired login token")
	// ErrNoTokens: the store keeps no login tokens.
	ErrNoTokens = errors.New("accounts: this store keeps no login tokens")
)

// Token describes one login token. The secret itself is never stored and
// never returned after IssueToken.
type Token struct {
	ID       string
	Label    string
	Hash     [sha256.Size]byte // SHA-256 of the secret; Service leaves it zero in results
	Created  time.Time
	LastUsed time.Time
	Expires  time.Time
}

// TokenStore is a Store that also keeps login tokens. It is a separate
// interface, as MarkerStore is, so that stores (and test fakes) without
// them keep compiling; the Service answers ErrNoTokens for those. An
// account's tokens must go with it on Delete.
type TokenStore interface {
	// AddToken stores t for account, first dropping tokens expired at now
	// and then the least recently used ones until fewer than keep remain.
	// ErrNotFound if the account does not exist.
	AddToken(ctx context.Context, account string, t Token, keep int, now time.Time) error
	// Token returns account's token id. ErrNotFound if absent.
	Token(ctx context.Context, account, id string) (Token, error)
	// TouchToken records a use. A token revoked meanwhile stays revoked
	// (ErrNotFound).
	TouchToken(ctx context.Context, account, id string, used, expires time.Time) error
	// Tokens returns account's tokens, oldest first.
	Tokens(ctx context.Context, account string) ([]Token, error)
	// DeleteTokens deletes account's token id, or all of them for id "",
	// and returns how many went.
	DeleteTokens(ctx context.Context, account, id string) (int, error)
}

func (s *Service) tokenStore() (TokenStore, error) {
	ts, ok := s.store.(TokenStore)
	if !ok {
		return nil, ErrNoTokens
	}
	return ts, nil
}

// IssueToken makes a new login token for account (which the caller has
// authenticated) and returns it; this is the only time the secret exists
// outside the client. label says where it is used (e.g. "web"); it is cut
// to MaxTokenLabelLen bytes and may be empty.
func (s *Service) IssueToken(ctx context.Context, account, label string) (string, Token, error) {
	ts, err := s.tokenStore()
	if err != nil {
		return "", Token{}, err
	}
	if checkName(account) != nil {
		return "", Token{}, ErrNotFound
	}
	var idb [8]byte
	var secret [32]byte
	randRead(idb[:])
	randRead(secret[:])
	sec := base64.RawURLEncoding.EncodeToString(secret[:])
	now := s.now().UTC().Truncate(time.Millisecond)
	t := Token{
		ID:       hex.EncodeToString(idb[:]),
		Label:    cleanLabel(label),
		Hash:     sha256.Sum256([]byte(sec)),
		Created:  now,
		LastUsed: now,
		Expires:  now.Add(s.tokenTTL),
	}
	if err := ts.AddToken(ctx, account, t, MaxTokens, now); err != nil {
		return "", Token{}, err
	}
	t.Hash = [sha256.Size]byte{}
	return t.ID + "." + sec, t, nil
}

// cleanLabel keeps a label printable, single-word-safe for IRC and short.
func cleanLabel(label string) string {
	label = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, strings.ToValidUTF8(label, ""))
	for len(label) > MaxTokenLabelLen {
		_, size := utf8.DecodeLastRuneInString(label)
		label = label[:len(label)-size]
	}
	return strings.TrimSpace(label)
}

// splitToken parses "<id>.<secret>" without allocating for bad input.
func splitToken(token string) (id, secret string, ok bool) {
	id, secret, ok = strings.Cut(token, ".")
	if !ok || len(id) != 16 || len(secret) != 43 {
		return "", "", false
	}
	return id, secret, true
}

// TokenLogin logs in to name with a login token; ip identifies the
// client's source for throttling. It never hashes a password. Errors:
// ErrBadToken, a *ThrottledError (errors.Is ErrThrottled), ErrNoTokens, a
// context error, or a store error. A success slides the token's expiry to
// TTL after now. The returned Account has an empty Hash.
//
// Failures count against the source only, not the account: guessing a
// 256-bit secret is hopeless anyway, and an account-wide count would let
// strangers lock its owner's browsers out. The per-source count is shared
// with password logins, so a source spraying tokens is braked like one
// guessing passwords.
func (s *Service) TokenLogin(ctx context.Context, name, token, ip string) (Account, error) {
	ts, err := s.tokenStore()
	if err != nil {
		return Account{}, err
	}
	att, retry := s.throttle.Begin("", ip)
	if retry > 0 {
		return Account{}, &ThrottledError{RetryAfter: retry}
	}
	id, secret, ok := splitToken(token)
	if !ok || checkName(name) != nil {
		att.Failure()
		return Account{}, ErrBadToken
	}
	t, err := ts.Token(ctx, name, id)
	if errors.Is(err, ErrNotFound) {
		att.Failure()
		return Account{}, ErrBadToken
	}
	if err != nil {
		att.Release()
		return Account{}, err
	}
	sum := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(sum[:], t.Hash[:]) != 1 {
		att.Failure()
		return Account{}, ErrBadToken
	}
	now := s.now().UTC()
	if !now.Before(t.Expires) {
		// Expired: forget it now rather than on some later sweep.
		_, _ = ts.DeleteTokens(context.WithoutCancel(ctx), name, id)
		att.Failure()
		return Account{}, ErrBadToken
	}
	acct, err := s.store.Get(ctx, name)
	if errors.Is(err, ErrNotFound) {
		att.Failure()
		return Account{}, ErrBadToken
	}
	if err != nil {
		att.Release()
		return Account{}, err
	}
	att.Success()
	if now.Sub(t.LastUsed) >= touchEvery {
		now = now.Truncate(time.Millisecond)
		// Best effort: a failed write only means an earlier expiry.
		_ = ts.TouchToken(context.WithoutCancel(ctx), name, id, now, now.Add(s.tokenTTL))
	}
	acct.Hash, acct.SCRAM = "", ""
	return acct, nil
}

// Tokens lists account's live tokens, oldest first, without their hashes.
func (s *Service) Tokens(ctx context.Context, account string) ([]Token, error) {
	ts, err := s.tokenStore()
	if err != nil {
		return nil, err
	}
	if checkName(account) != nil {
		return nil, nil
	}
	all, err := ts.Tokens(ctx, account)
	if err != nil {
		return nil, err
	}
	now := s.now()
	out := all[:0]
	for _, t := range all {
		if now.Before(t.Expires) {
			t.Hash = [sha256.Size]byte{}
			out = append(out, t)
		}
	}
	return out, nil
}

// RevokeToken deletes account's token id; ErrNotFound if it has none such.
// With id "" it deletes them all and reports how many there were.
func (s *Service) RevokeToken(ctx context.Context, account, id string) (int, error) {
	ts, err := s.tokenStore()
	if err != nil {
		return 0, err
	}
	if checkName(account) != nil {
		return 0, ErrNotFound
	}
	n, err := ts.DeleteTokens(ctx, account, id)
	if err == nil && n == 0 && id != "" {
		return 0, ErrNotFound
	}
	return n, err
}

// In the file store, bucket login_tokens holds a bucket per Fold(account)
// whose keys are token ids and values tokenRecord JSON. An older livechatd
// ignores the bucket, so the schema version stays 1; an account's tokens go
// with it on Delete.
var bucketTokens = []byte("login_tokens")

type tokenRecord struct {
	Label    string    `json:"label,omitempty"`
	SHA256   string    `json:"sha256"` // hex
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used"`
	Expires  time.Time `json:"expires"`
}

func encodeToken(t Token) ([]byte, error) {
	return json.Marshal(tokenRecord{Label: t.Label, SHA256: hex.EncodeToString(t.Hash[:]), Created: t.Created, LastUsed: t.LastUsed, Expires: t.Expires})
}

func decodeToken(id string, v []byte) (Token, error) {
	var r tokenRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return Token{}, fmt.Errorf("token %s: %w", id, err)
	}
	t := Token{ID: id, Label: r.Label, Created: r.Created, LastUsed: r.LastUsed, Expires: r.Expires}
	if h, err := hex.DecodeString(r.SHA256); err == nil && len(h) == sha256.Size {
		copy(t.Hash[:], h)
	} // else: a zero hash, which no secret matches
	return t, nil
}

func (s *fileStore) AddToken(ctx context.Context, account string, t Token, keep int, now time.Time) error {
	if err := s.usable(ctx); err != nil {
		return err
	}
	name := []byte(Fold(account))
	val, err := encodeToken(t)
	if err != nil {
		return err
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketAccounts).Get(name) == nil {
			return ErrNotFound
		}
		all, err := tx.CreateBucketIfNotExists(bucketTokens)
		if err != nil {
			return err
		}
		b, err := all.CreateBucketIfNotExists(name)
		if err != nil {
			return err
		}
		var mine []Token
		if err := b.ForEach(func(k, v []byte) error {
			old, err := decodeToken(string(k), v)
			if err != nil {
				old = Token{ID: string(k)} // unreadable: expired, first to go
			}
			mine = append(mine, old)
			return nil
		}); err != nil {
			return err
		}
		for _, id := range tokensToDrop(mine, keep, now) {
			if err := b.Delete([]byte(id)); err != nil {
				return err
			}
		}
		return b.Put([]byte(t.ID), val)
	})
	return s.wrap(err)
}

// tokensToDrop picks the expired tokens, then the least recently used,
// until fewer than keep remain.
func tokensToDrop(mine []Token, keep int, now time.Time) []string {
	var drop []string
	live := mine[:0:0]
	for _, t := range mine {
		if now.Before(t.Expires) {
			live = append(live, t)
		} else {
			drop = append(drop, t.ID)
		}
	}
	slices.SortFunc(live, func(a, b Token) int { return a.LastUsed.Compare(b.LastUsed) })
	for i := 0; len(live)-i >= keep && i < len(live); i++ {
		drop = append(drop, live[i].ID)
	}
	return drop
}

func (s *fileStore) Token(ctx context.Context, account, id string) (Token, error) {
	if err := s.usable(ctx); err != nil {
		return Token{}, err
	}
	var t Token
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tokenBucket(tx, account)
		if b == nil {
			return ErrNotFound
		}
		v := b.Get([]byte(id))
		if v == nil {
			return ErrNotFound
		}
		var err error
		t, err = decodeToken(id, v)
		return err
	})
	return t, s.wrap(err)
}

func tokenBucket(tx *bolt.Tx, account string) *bolt.Bucket {
	all := tx.Bucket(bucketTokens)
	if all == nil {
		return nil
	}
	return all.Bucket([]byte(Fold(account)))
}

func (s *fileStore) TouchToken(ctx context.Context, account, id string, used, expires time.Time) error {
	if err := s.usable(ctx); err != nil {
		return err
	}
	// Batch: many browsers coming back at once share one fsync. fn may
	// run twice; it only reads and writes the same key.
	err := s.db.Batch(func(tx *bolt.Tx) error {
		b := tokenBucket(tx, account)
		if b == nil {
			return ErrNotFound
		}
		v := b.Get([]byte(id))
		if v == nil {
			return ErrNotFound
		}
		t, err := decodeToken(id, v)
		if err != nil {
			return err
		}
		t.LastUsed, t.Expires = used, expires
		nv, err := encodeToken(t)
		if err != nil {
			return err
		}
		return b.Put([]byte(id), nv)
	})
	return s.wrap(err)
}

func (s *fileStore) Tokens(ctx context.Context, account string) ([]Token, error) {
	if err := s.usable(ctx); err != nil {
		return nil, err
	}
	var out []Token
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tokenBucket(tx, account)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			t, err := decodeToken(string(k), v)
			if err != nil {
				return err
			}
			out = append(out, t)
			return nil
		})
	})
	if err != nil {
		return nil, s.wrap(err)
	}
	sortTokens(out)
	return out, nil
}

func sortTokens(ts []Token) {
	slices.SortFunc(ts, func(a, b Token) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

func (s *fileStore) DeleteTokens(ctx context.Context, account, id string) (int, error) {
	if err := s.usable(ctx); err != nil {
		return 0, err
	}
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		n = 0
		b := tokenBucket(tx, account)
		if b == nil {
			return nil
		}
		if id == "" {
			n = b.Stats().KeyN
			return tx.Bucket(bucketTokens).DeleteBucket([]byte(Fold(account)))
		}
		if b.Get([]byte(id)) == nil {
			return nil
		}
		n = 1
		return b.Delete([]byte(id))
	})
	if err != nil {
		return 0, s.wrap(err)
	}
	return n, nil
}

// deleteTokens forgets every token of the account key, in tx.
func deleteTokens(tx *bolt.Tx, key []byte) error {
	all := tx.Bucket(bucketTokens)
	if all == nil || all.Bucket(key) == nil {
		return nil
	}
	if err := all.DeleteBucket(key); err != nil {
		return fmt.Errorf("delete login tokens: %w", err)
	}
	return nil
}

func (m *memStore) AddToken(ctx context.Context, account string, t Token, keep int, now time.Time) error {
	key := Fold(account)
	unlock, err := m.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if _, ok := m.byKey[key]; !ok {
		return ErrNotFound
	}
	if m.tokens == nil {
		m.tokens = make(map[string]map[string]Token)
	}
	mine := m.tokens[key]
	if mine == nil {
		mine = make(map[string]Token)
		m.tokens[key] = mine
	}
	list := make([]Token, 0, len(mine))
	for _, old := range mine {
		list = append(list, old)
	}
	for _, id := range tokensToDrop(list, keep, now) {
		delete(mine, id)
	}
	mine[t.ID] = t
	return nil
}

func (m *memStore) Token(ctx context.Context, account, id string) (Token, error) {
	unlock, err := m.rlock(ctx)
	if err != nil {
		return Token{}, err
	}
	defer unlock()
	t, ok := m.tokens[Fold(account)][id]
	if !ok {
		return Token{}, ErrNotFound
	}
	return t, nil
}

func (m *memStore) TouchToken(ctx context.Context, account, id string, used, expires time.Time) error {
	unlock, err := m.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	mine := m.tokens[Fold(account)]
	t, ok := mine[id]
	if !ok {
		return ErrNotFound
	}
	t.LastUsed, t.Expires = used, expires
	mine[id] = t
	return nil
}

func (m *memStore) Tokens(ctx context.Context, account string) ([]Token, error) {
	unlock, err := m.rlock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var out []Token
	for _, t := range m.tokens[Fold(account)] {
		out = append(out, t)
	}
	sortTokens(out)
	return out, nil
}

func (m *memStore) DeleteTokens(ctx context.Context, account, id string) (int, error) {
	key := Fold(account)
	unlock, err := m.lock(ctx)
	if err != nil {
		return 0, err
	}
	defer unlock()
	mine := m.tokens[key]
	if id == "" {
		delete(m.tokens, key)
		return len(mine), nil
	}
	if _, ok := mine[id]; !ok {
		return 0, nil
	}
	delete(mine, id)
	return 1, nil
}

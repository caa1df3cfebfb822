package accounts

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTokenLifecycle(t *testing.T) {
	for _, impl := range storeImpls {
		t.Run(impl.name, func(t *testing.T) {
			svc := newTestService(t, impl.open(t), func(c *Config) { c.TokenTTL = 24 * time.Hour })
			for _, n := range []string{"Alice", "bob"} {
				if err := svc.store.Create(bg, Account{Name: n, Hash: "h"}); err != nil {
					t.Fatal(err)
				}
			}
			tok, info, err := svc.IssueToken(bg, "alice", "web\x01 page")
			if err != nil {
				t.Fatal(err)
			}
			if info.Label != "web page" || !info.Expires.Equal(svc.clock.Now().Add(24*time.Hour)) || info.Hash != ([32]byte{}) {
				t.Fatalf("issued %+v", info)
			}
			if !strings.HasPrefix(tok, info.ID+".") {
				t.Fatalf("token %q does not start with its id %s", tok, info.ID)
			}
			// Use: any spelling of the name, no password hash run.
			a, err := svc.TokenLogin(bg, "ALICE", tok, "10.0.0.1")
			if err != nil || a.Name != "Alice" || a.Hash != "" {
				t.Fatalf("token login: %+v, %v", a, err)
			}
			if calls, _ := svc.vc.snapshot(); calls != 0 || svc.vc.hashing.Load() != 0 {
				t.Fatalf("a token login ran the password hash (%d verifies, %d hashes)", calls, svc.vc.hashing.Load())
			}
			// Another account's name with alice's token: refused.
			if _, err := svc.TokenLogin(bg, "bob", tok, "10.0.0.1"); !errors.Is(err, ErrBadToken) {
				t.Fatalf("bob with alice's token: %v", err)
			}
			// A wrong secret with the right id: refused.
			last := "A"
			if strings.HasSuffix(tok, "A") {
				last = "B"
			}
			bad := tok[:len(tok)-1] + last
			if _, err := svc.TokenLogin(bg, "alice", bad, "10.0.0.1"); !errors.Is(err, ErrBadToken) {
				t.Fatalf("wrong secret: %v", err)
			}
			list, err := svc.Tokens(bg, "Alice")
			if err != nil || len(list) != 1 || list[0].ID != info.ID || list[0].Hash != ([32]byte{}) {
				t.Fatalf("list: %+v, %v", list, err)
			}
			// Sliding expiry: used after 23h, it lives 24h from then.
			svc.clock.Advance(23 * time.Hour)
			if _, err := svc.TokenLogin(bg, "alice", tok, "10.0.0.1"); err != nil {
				t.Fatalf("after 23h: %v", err)
			}
			svc.clock.Advance(23 * time.Hour)
			if _, err := svc.TokenLogin(bg, "alice", tok, "10.0.0.1"); err != nil {
				t.Fatalf("23h after its last use: %v", err)
			}
			// Unused for a whole TTL: gone, and gone from the list.
			svc.clock.Advance(24 * time.Hour)
			if _, err := svc.TokenLogin(bg, "alice", tok, "10.0.0.2"); !errors.Is(err, ErrBadToken) {
				t.Fatalf("expired: %v", err)
			}
			if list, _ := svc.Tokens(bg, "alice"); len(list) != 0 {
				t.Fatalf("expired token still listed: %+v", list)
			}
			// Revoke one, revoke all.
			t1, i1, _ := svc.IssueToken(bg, "alice", "one")
			t2, _, _ := svc.IssueToken(bg, "alice", "two")
			if n, err := svc.RevokeToken(bg, "alice", i1.ID); err != nil || n != 1 {
				t.Fatalf("revoke: %d, %v", n, err)
			}
			if _, err := svc.RevokeToken(bg, "alice", i1.ID); !errors.Is(err, ErrNotFound) {
				t.Fatalf("revoke again: %v", err)
			}
			if _, err := svc.RevokeToken(bg, "bob", "x"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("revoke another's: %v", err)
			}
			if _, err := svc.TokenLogin(bg, "alice", t1, "10.0.0.3"); !errors.Is(err, ErrBadToken) {
				t.Fatalf("revoked token: %v", err)
			}
			if _, err := svc.TokenLogin(bg, "alice", t2, "10.0.0.3"); err != nil {
				t.Fatalf("the other token: %v", err)
			}
			svc.IssueToken(bg, "alice", "three")
			if n, err := svc.RevokeToken(bg, "alice", ""); err != nil || n != 2 {
				t.Fatalf("revoke all: %d, %v", n, err)
			}
			if _, err := svc.TokenLogin(bg, "alice", t2, "10.0.0.3"); !errors.Is(err, ErrBadToken) {
				t.Fatalf("after revoking all: %v", err)
			}
			// Deleting the account deletes its tokens: a new account of the
			// same name is not entered with the old one's token.
			t4, _, _ := svc.IssueToken(bg, "alice", "four")
			if err := svc.store.Delete(bg, "alice"); err != nil {
				t.Fatal(err)
			}
			if _, err := svc.TokenLogin(bg, "alice", t4, "10.0.0.4"); !errors.Is(err, ErrBadToken) {
				t.Fatalf("deleted account: %v", err)
			}
			if err := svc.store.Create(bg, Account{Name: "alice", Hash: "h"}); err != nil {
				t.Fatal(err)
			}
			if _, err := svc.TokenLogin(bg, "alice", t4, "10.0.0.4"); !errors.Is(err, ErrBadToken) {
				t.Fatalf("re-registered name took the old token: %v", err)
			}
			if list, _ := svc.Tokens(bg, "alice"); len(list) != 0 {
				t.Fatalf("re-registered name inherited tokens %+v", list)
			}
			if _, _, err := svc.IssueToken(bg, "nobody", ""); !errors.Is(err, ErrNotFound) {
				t.Fatalf("token for no account: %v", err)
			}
		})
	}
}

func TestTokensAreBounded(t *testing.T) {
	old := tokenLimit
	tokenLimit = 3
	t.Cleanup(func() { tokenLimit = old })
	for _, impl := range storeImpls {
		t.Run(impl.name, func(t *testing.T) {
			svc := newTestService(t, impl.open(t), nil)
			svc.store.Create(bg, Account{Name: "alice", Hash: "h"})
			var toks []string
			for i := range 3 {
				tok, _, err := svc.IssueToken(bg, "alice", fmt.Sprint(i))
				if err != nil {
					t.Fatal(err)
				}
				toks = append(toks, tok)
				svc.clock.Advance(2 * touchEvery)
			}
			// Using the oldest makes the second the least recently used.
			if _, err := svc.TokenLogin(bg, "alice", toks[0], "10.0.0.1"); err != nil {
				t.Fatal(err)
			}
			svc.clock.Advance(time.Minute)
			if _, _, err := svc.IssueToken(bg, "alice", "3"); err != nil {
				t.Fatal(err)
			}
			list, _ := svc.Tokens(bg, "alice")
			var labels []string
			for _, tk := range list {
				labels = append(labels, tk.Label)
			}
			if strings.Join(labels, ",") != "0,2,3" {
				t.Fatalf("kept %v; want the least recently used (1) dropped", labels)
			}
			if _, err := svc.TokenLogin(bg, "alice", toks[1], "10.0.0.1"); !errors.Is(err, ErrBadToken) {
				t.Fatalf("dropped token: %v", err)
			}
		})
	}
}

// Wrong tokens count as failed logins of their source, shared with
// passwords, so spraying them is braked; the account is not locked for
// other sources.
func TestWrongTokensAreThrottled(t *testing.T) {
	svc := newTestService(t, NewMemoryStore(), nil)
	svc.store.Create(bg, Account{Name: "alice", Hash: "h"})
	tok, _, _ := svc.IssueToken(bg, "alice", "")
	guess := "0123456789abcdef." + strings.Repeat("A", 43)
	free := DefaultThrottleConfig().Free
	for i := range free {
		if _, err := svc.TokenLogin(bg, "alice", guess, "10.9.9.9"); !errors.Is(err, ErrBadToken) {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	if _, err := svc.TokenLogin(bg, "alice", guess, "10.9.9.9"); !errors.Is(err, ErrBadToken) {
		t.Fatalf("guess past the free ones: %v", err)
	}
	var th *ThrottledError
	if _, err := svc.TokenLogin(bg, "alice", tok, "10.9.9.9"); !errors.As(err, &th) {
		t.Fatalf("the guessing source is not braked: %v", err)
	}
	// The same source's password logins are braked too: one counter.
	if _, err := svc.Login(bg, "alice", "whatever", "10.9.9.9"); !errors.As(err, &th) {
		t.Fatalf("password login from the guessing source: %v", err)
	}
	// The owner elsewhere is unaffected.
	if _, err := svc.TokenLogin(bg, "alice", tok, "10.1.1.1"); err != nil {
		t.Fatalf("owner from another source: %v", err)
	}
	for _, bad := range []string{"", ".", "x.y", tok + "x", strings.Repeat("a", 5000)} {
		if _, err := svc.TokenLogin(bg, "alice", bad, "10.2.2.2"); err == nil {
			t.Fatalf("malformed token %q accepted", bad)
		}
	}
}

func TestTokensLastAcrossRestarts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "accounts.db")
	s, err := OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	s.Create(bg, Account{Name: "alice", Hash: "h"})
	svc := NewService(s, Config{Params: fastParams})
	tok, _, err := svc.IssueToken(bg, "alice", "web")
	if err != nil {
		t.Fatal(err)
	}
	svc.Close()
	s, err = OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	svc = NewService(s, Config{Params: fastParams})
	defer svc.Close()
	if a, err := svc.TokenLogin(bg, "alice", tok, "10.0.0.1"); err != nil || a.Name != "alice" {
		t.Fatalf("after reopening: %+v, %v", a, err)
	}
}

// storeWithoutTokens hides the tokens of a store, as a third-party Store
// would lack them.
type storeWithoutTokens struct{ Store }

func TestServiceWithoutTokenStore(t *testing.T) {
	svc := newTestService(t, storeWithoutTokens{NewMemoryStore()}, nil)
	if _, _, err := svc.IssueToken(bg, "alice", ""); !errors.Is(err, ErrNoTokens) {
		t.Fatalf("got %v, want ErrNoTokens", err)
	}
}

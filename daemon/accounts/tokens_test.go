package accounts

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// A token login never runs the password hash: that is what makes a
// reconnect storm cheap. (The token lifecycle itself is in the store
// suite, accountstest, run by conformance_test.go.)
func TestTokenLoginRunsNoHash(t *testing.T) {
	svc := newTestService(t, NewMemoryStore(), nil)
	if err := svc.store.Create(bg, Account{Name: "Alice", Hash: "h"}); err != nil {
		t.Fatal(err)
	}
	tok, _, err := svc.IssueToken(bg, "alice", "web")
	if err != nil {
		t.Fatal(err)
	}
	if a, err := svc.TokenLogin(bg, "ALICE", tok, "10.0.0.1"); err != nil || a.Name != "Alice" {
		t.Fatalf("token login: %+v, %v", a, err)
	}
	if calls, _ := svc.vc.snapshot(); calls != 0 || svc.vc.hashing.Load() != 0 {
		t.Fatalf("a token login ran the password hash (%d verifies, %d hashes)", calls, svc.vc.hashing.Load())
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

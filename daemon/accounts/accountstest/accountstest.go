// Package accountstest is the conformance suite of accounts.Store with its
// MarkerStore, TokenStore and CertFPStore: every implementation (memory, file, JetStream
// KV) runs the same tests, directly and through an accounts.Service.
package accountstest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livechat/livechat/daemon/accounts"
)

// Suite says how to get stores to test.
type Suite struct {
	// Open returns a new, empty store that also implements
	// accounts.MarkerStore, accounts.TokenStore and accounts.CertFPStore.
	// The suite closes it.
	Open func(t *testing.T) accounts.Store
	// MarkerLimit is how many read markers per account the stores from
	// Open keep (accounts.MaxReadMarkers unless the implementation lets
	// tests lower it, which keeps the bound test short). At most 50.
	MarkerLimit int
}

// Run runs every test of the suite as a subtest of t.
func Run(t *testing.T, s Suite) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, Suite)
	}{
		{"Contract", testContract},
		{"ListDelete", testListDelete},
		{"ConcurrentCreate", testConcurrentCreate},
		{"ConcurrentRegisterSameName", testConcurrentRegisterSameName},
		{"ReadMarkers", testReadMarkers},
		{"ReadMarkersAreBounded", testReadMarkersAreBounded},
		{"ReadMarkersRace", testReadMarkersRace},
		{"TokenLifecycle", testTokenLifecycle},
		{"TokensAreBounded", testTokensAreBounded},
		{"SCRAM", testSCRAM},
		{"SCRAMThrottle", testSCRAMThrottle},
		{"SCRAMMigration", testSCRAMMigration},
		{"CertFPs", testCertFPs},
		{"CertFPsConcurrent", testCertFPsConcurrent},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, s) })
	}
}

var bg = context.Background()

// fastParams keep argon2 to microseconds: the suite tests stores, not
// hashing.
var fastParams = accounts.Params{Memory: 64, Time: 1, Threads: 1}

// fastSCRAM is below what Config.Validate accepts, which NewService does
// not check: PBKDF2 at real counts would dominate the suite's time.
const fastSCRAM = 64

// Clock is an injectable clock; tests advance it instead of sleeping.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock stopped at a fixed time.
func NewClock() *Clock { return &Clock{t: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type service struct {
	*accounts.Service
	store accounts.Store
	clock *Clock
}

// newService builds a Service over a new store with fast params and a
// fake clock; tweak changes the config first.
func newService(t *testing.T, s Suite, tweak func(*accounts.Config)) service {
	t.Helper()
	store := s.Open(t)
	clock := NewClock()
	cfg := accounts.DefaultConfig()
	cfg.Params = fastParams
	cfg.SCRAMIterations = fastSCRAM
	cfg.Now = clock.Now
	if tweak != nil {
		tweak(&cfg)
	}
	svc := accounts.NewService(store, cfg)
	t.Cleanup(func() { svc.Close() })
	return service{svc, store, clock}
}

func testContract(t *testing.T, suite Suite) {
	s := suite.Open(t)
	defer s.Close()
	created := time.Date(2025, 5, 6, 7, 8, 9, 10, time.UTC)

	if err := s.Create(bg, accounts.Account{Name: "Alice", Hash: "h1", Created: created}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"alice", "ALICE", "aLiCe"} {
		if err := s.Create(bg, accounts.Account{Name: n, Hash: "h2"}); !errors.Is(err, accounts.ErrExists) {
			t.Fatalf("Create(%q) = %v, want ErrExists", n, err)
		}
	}
	got, err := s.Get(bg, "ALICE")
	if err != nil {
		t.Fatal(err)
	}
	want := accounts.Account{Name: "Alice", Hash: "h1", Created: created}
	if got != want {
		t.Fatalf("Get = %+v, want %+v (display name kept)", got, want)
	}
	if _, err := s.Get(bg, "bob"); !errors.Is(err, accounts.ErrNotFound) {
		t.Fatalf("Get(bob) = %v", err)
	}
	if err := s.SetPassword(bg, "aLICE", "h3", "s3"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(bg, "alice"); got.Hash != "h3" || got.SCRAM != "s3" || got.Name != "Alice" || !got.Created.Equal(created) {
		t.Fatalf("after SetPassword: %+v", got)
	}
	// The SCRAM keys go with the hash: clearing them is storing "".
	if err := s.SetPassword(bg, "alice", "h4", ""); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(bg, "alice"); got.Hash != "h4" || got.SCRAM != "" {
		t.Fatalf("after SetPassword without SCRAM: %+v", got)
	}
	if err := s.Create(bg, accounts.Account{Name: "scrammy", Hash: "h", SCRAM: "s", Created: created}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(bg, "Scrammy"); got != (accounts.Account{Name: "scrammy", Hash: "h", SCRAM: "s", Created: created}) {
		t.Fatalf("SCRAM keys not kept by Create: %+v", got)
	}
	if err := s.Delete(bg, "scrammy"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPassword(bg, "bob", "h", ""); !errors.Is(err, accounts.ErrNotFound) {
		t.Fatalf("SetPassword(bob) = %v", err)
	}
	// A rehash applies only over the hash it was computed from: a password
	// changed meanwhile stays.
	if err := s.Rehash(bg, "alice", "h4", "h4b", "s4b"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(bg, "alice"); got.Hash != "h4b" || got.SCRAM != "s4b" {
		t.Fatalf("after Rehash: %+v", got)
	}
	if err := s.Rehash(bg, "alice", "h4", "stale", "stale"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(bg, "alice"); got.Hash != "h4b" {
		t.Fatalf("a stale Rehash undid a newer password: %+v", got)
	}
	// The multiclient choice is kept, and a password change keeps it.
	if err := s.SetMulticlient(bg, "ALICE", "off"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPassword(bg, "alice", "h5", "s5"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(bg, "alice"); got.Multiclient != "off" || got.Hash != "h5" {
		t.Fatalf("after SetMulticlient and SetPassword: %+v", got)
	}
	if err := s.SetMulticlient(bg, "bob", "on"); !errors.Is(err, accounts.ErrNotFound) {
		t.Fatalf("SetMulticlient(bob) = %v", err)
	}
	// Non-ASCII letters are not folded: only ASCII is.
	if err := s.Create(bg, accounts.Account{Name: "Ärger"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(bg, accounts.Account{Name: "ärger"}); err != nil {
		t.Fatalf("non-ASCII folded: %v", err)
	}
	if s.Count() != 3 {
		t.Fatalf("Count = %d, want 3", s.Count())
	}
	for _, n := range []string{"", strings.Repeat("x", accounts.MaxNameLen+1)} {
		if err := s.Create(bg, accounts.Account{Name: n}); !errors.Is(err, accounts.ErrInvalidName) {
			t.Fatalf("Create(len %d) = %v", len(n), err)
		}
		if _, err := s.Get(bg, n); !errors.Is(err, accounts.ErrNotFound) {
			t.Fatalf("Get(len %d) = %v", len(n), err)
		}
	}
	ctx, cancel := context.WithCancel(bg)
	cancel()
	if err := s.Create(ctx, accounts.Account{Name: "carol"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Create with dead ctx = %v", err)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(bg, "alice"); !errors.Is(err, accounts.ErrClosed) {
		t.Fatalf("Get after Close = %v", err)
	}
	if err := s.Create(bg, accounts.Account{Name: "dave"}); !errors.Is(err, accounts.ErrClosed) {
		t.Fatalf("Create after Close = %v", err)
	}
}

func testListDelete(t *testing.T, suite Suite) {
	s := suite.Open(t)
	defer s.Close()
	if l, err := s.List(bg); err != nil || len(l) != 0 {
		t.Fatalf("List of empty store = %v, %v", l, err)
	}
	created := time.Date(2025, 5, 6, 7, 8, 9, 0, time.UTC)
	// Insertion order differs from folded order on purpose; "Ärger"
	// sorts last because its first byte (0xC3) is above ASCII.
	for _, n := range []string{"carol", "Ärger", "Bob", "alice"} {
		if err := s.Create(bg, accounts.Account{Name: n, Hash: "h-" + n, Created: created}); err != nil {
			t.Fatal(err)
		}
	}
	l, err := s.List(bg)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range l {
		names = append(names, a.Name)
		if a.Hash != "h-"+a.Name || !a.Created.Equal(created) {
			t.Errorf("List entry %+v: hash or creation time lost", a)
		}
	}
	if got, want := strings.Join(names, ","), "alice,Bob,carol,Ärger"; got != want {
		t.Fatalf("List order %s, want %s (by folded name, display spelling kept)", got, want)
	}

	if err := s.Delete(bg, "BOB"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(bg, "bob"); !errors.Is(err, accounts.ErrNotFound) {
		t.Fatalf("Get after Delete = %v", err)
	}
	if s.Count() != 3 {
		t.Fatalf("Count after Delete = %d, want 3", s.Count())
	}
	for _, n := range []string{"bob", "mallory", "", strings.Repeat("x", accounts.MaxNameLen+1)} {
		if err := s.Delete(bg, n); !errors.Is(err, accounts.ErrNotFound) {
			t.Fatalf("Delete(%q) = %v, want ErrNotFound", n, err)
		}
	}
	if s.Count() != 3 {
		t.Fatalf("Count after failed Deletes = %d, want 3", s.Count())
	}
	// The name is free again.
	if err := s.Create(bg, accounts.Account{Name: "bOb"}); err != nil {
		t.Fatalf("re-Create after Delete: %v", err)
	}

	ctx, cancel := context.WithCancel(bg)
	cancel()
	if _, err := s.List(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("List with dead ctx = %v", err)
	}
	if err := s.Delete(ctx, "alice"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Delete with dead ctx = %v", err)
	}
	if _, err := s.Get(bg, "alice"); err != nil {
		t.Fatalf("Delete with dead ctx deleted anyway: %v", err)
	}

	s.Close()
	if _, err := s.List(bg); !errors.Is(err, accounts.ErrClosed) {
		t.Fatalf("List after Close = %v", err)
	}
	if err := s.Delete(bg, "alice"); !errors.Is(err, accounts.ErrClosed) {
		t.Fatalf("Delete after Close = %v", err)
	}
}

func testConcurrentCreate(t *testing.T, suite Suite) {
	s := suite.Open(t)
	defer s.Close()
	names := []string{"bob", "Bob", "BOB", "bOb", "boB", "BoB", "bOB", "BOb"}
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = s.Create(bg, accounts.Account{Name: n})
		}()
	}
	close(start)
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, accounts.ErrExists):
			t.Fatalf("unexpected %v", err)
		}
	}
	if wins != 1 || s.Count() != 1 {
		t.Fatalf("%d winners, Count %d; want exactly 1", wins, s.Count())
	}
}

func testConcurrentRegisterSameName(t *testing.T, suite Suite) {
	s := newService(t, suite, nil)
	names := []string{"carol", "Carol", "CAROL", "cArOl", "caRol", "CARol"}
	var wg sync.WaitGroup
	errs := make([]error, len(names))
	for i, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.Register(bg, n, "password-"+n, "")
		}()
	}
	wg.Wait()
	var winner string
	for i, err := range errs {
		switch {
		case err == nil:
			if winner != "" {
				t.Fatalf("two winners: %s and %s", winner, names[i])
			}
			winner = names[i]
		case !errors.Is(err, accounts.ErrExists):
			t.Fatalf("%s: %v", names[i], err)
		}
	}
	if winner == "" || s.Count() != 1 {
		t.Fatalf("winner %q, Count %d", winner, s.Count())
	}
	if _, err := s.Login(bg, "carol", "password-"+winner, ""); err != nil {
		t.Fatalf("winner's password: %v", err)
	}
}

func testReadMarkers(t *testing.T, suite Suite) {
	svc := newService(t, suite, nil)
	for _, n := range []string{"Alice", "bob"} {
		if err := svc.store.Create(bg, accounts.Account{Name: n, Hash: "h"}); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Date(2025, 3, 4, 5, 6, 7, 891_234_567, time.UTC)
	if at, err := svc.ReadMarker(bg, "alice", "#lobby"); err != nil || !at.IsZero() {
		t.Fatalf("no marker yet: %v, %v", at, err)
	}
	got, moved, err := svc.SetReadMarker(bg, "ALICE", "#lobby", t0)
	if want := t0.Truncate(time.Millisecond); err != nil || !got.Equal(want) || !moved {
		t.Fatalf("set: %v, %v, %v; want %v (milliseconds, as server-time), moved", got, moved, err, want)
	}
	// Backwards, or the same time, leaves the stored one.
	for _, at := range []time.Time{t0.Add(-time.Hour), t0, {}} {
		if got, moved, err := svc.SetReadMarker(bg, "alice", "#lobby", at); err != nil || moved || !got.Equal(t0.Truncate(time.Millisecond)) {
			t.Fatalf("set %v: %v, %v, %v; want the stored marker, not moved", at, got, moved, err)
		}
	}
	later := t0.Add(time.Minute)
	if got, moved, _ := svc.SetReadMarker(bg, "alice", "#lobby", later); !got.Equal(later.Truncate(time.Millisecond)) || !moved {
		t.Fatalf("forward: %v, moved %v", got, moved)
	}
	if at, _ := svc.ReadMarker(bg, "Alice", "#lobby"); !at.Equal(later.Truncate(time.Millisecond)) {
		t.Fatalf("read back %v", at)
	}
	// Accounts do not see each other's markers.
	if at, _ := svc.ReadMarker(bg, "bob", "#lobby"); !at.IsZero() {
		t.Fatalf("bob sees alice's marker %v", at)
	}
	if _, _, err := svc.SetReadMarker(bg, "nobody", "#lobby", t0); !errors.Is(err, accounts.ErrNotFound) {
		t.Fatalf("unknown account: %v", err)
	}
	for _, target := range []string{"", string(make([]byte, accounts.MaxMarkerTargetLen+1))} {
		if _, _, err := svc.SetReadMarker(bg, "alice", target, t0); !errors.Is(err, accounts.ErrInvalidTarget) {
			t.Fatalf("target of %d bytes: %v", len(target), err)
		}
	}
	// Any bytes make a target, as long as it is not too long.
	odd := "#\xff\x00 é." + strings.Repeat("x", accounts.MaxMarkerTargetLen-8)
	if _, moved, err := svc.SetReadMarker(bg, "alice", odd, t0); err != nil || !moved {
		t.Fatalf("target of odd bytes: %v, %v", moved, err)
	}
	if at, _ := svc.ReadMarker(bg, "alice", odd); !at.Equal(t0.Truncate(time.Millisecond)) {
		t.Fatalf("target of odd bytes read back %v", at)
	}
	// Deleting the account forgets its markers: a new account of the same
	// name starts with none.
	if err := svc.store.Delete(bg, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := svc.store.Create(bg, accounts.Account{Name: "alice", Hash: "h"}); err != nil {
		t.Fatal(err)
	}
	if at, _ := svc.ReadMarker(bg, "alice", "#lobby"); !at.IsZero() {
		t.Fatalf("a re-registered name inherited the marker %v", at)
	}
}

func testReadMarkersAreBounded(t *testing.T, suite Suite) {
	limit := suite.MarkerLimit
	if limit < 4 || limit > 50 {
		t.Fatalf("Suite.MarkerLimit %d: want 4 to 50", limit)
	}
	svc := newService(t, suite, nil)
	if err := svc.store.Create(bg, accounts.Account{Name: "alice", Hash: "h"}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	// #r0 is read last of all, so it stays though it came first.
	n := limit + 3
	for i := range n {
		at := t0.Add(time.Duration(i) * time.Minute)
		if i == 0 {
			at = t0.Add(time.Hour)
		}
		if _, _, err := svc.SetReadMarker(bg, "alice", fmt.Sprintf("#r%d", i), at); err != nil {
			t.Fatal(err)
		}
	}
	kept := 0
	for i := range n {
		at, _ := svc.ReadMarker(bg, "alice", fmt.Sprintf("#r%d", i))
		if !at.IsZero() {
			kept++
		}
		if gone := i >= 1 && i <= 3; gone != at.IsZero() {
			t.Errorf("#r%d: marker %v; want the oldest three (#r1-#r3) dropped", i, at)
		}
	}
	if kept != limit {
		t.Fatalf("kept %d markers, want %d", kept, limit)
	}
	// Moving an existing marker forward at the limit drops nothing.
	if _, _, err := svc.SetReadMarker(bg, "alice", "#r4", t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if at, _ := svc.ReadMarker(bg, "alice", "#r5"); at.IsZero() {
		t.Fatal("updating a marker dropped another")
	}
}

// testReadMarkersRace: clients racing to move one marker, each to its own
// time: it ends at the latest, and every call's answer is at least its own
// time and at most the latest.
func testReadMarkersRace(t *testing.T, suite Suite) {
	svc := newService(t, suite, nil)
	if err := svc.store.Create(bg, accounts.Account{Name: "alice", Hash: "h"}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	const racers = 16
	var wg sync.WaitGroup
	errs := make(chan error, racers)
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			at := t0.Add(time.Duration(i) * time.Second)
			got, _, err := svc.SetReadMarker(bg, "alice", "#race", at)
			if err == nil && (got.Before(at) || got.After(t0.Add((racers-1)*time.Second))) {
				err = fmt.Errorf("set %v answered %v", at, got)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if at, err := svc.ReadMarker(bg, "alice", "#race"); err != nil || !at.Equal(t0.Add((racers-1)*time.Second)) {
		t.Fatalf("after the race: %v, %v; want the latest", at, err)
	}
}

func testTokenLifecycle(t *testing.T, suite Suite) {
	svc := newService(t, suite, func(c *accounts.Config) { c.TokenTTL = 24 * time.Hour })
	for _, n := range []string{"Alice", "bob"} {
		if err := svc.store.Create(bg, accounts.Account{Name: n, Hash: "h"}); err != nil {
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
	// Use: any spelling of the name.
	a, err := svc.TokenLogin(bg, "ALICE", tok, "10.0.0.1")
	if err != nil || a.Name != "Alice" || a.Hash != "" {
		t.Fatalf("token login: %+v, %v", a, err)
	}
	// Another account's name with alice's token: refused.
	if _, err := svc.TokenLogin(bg, "bob", tok, "10.0.0.1"); !errors.Is(err, accounts.ErrBadToken) {
		t.Fatalf("bob with alice's token: %v", err)
	}
	// A wrong secret with the right id: refused.
	last := "A"
	if strings.HasSuffix(tok, "A") {
		last = "B"
	}
	bad := tok[:len(tok)-1] + last
	if _, err := svc.TokenLogin(bg, "alice", bad, "10.0.0.1"); !errors.Is(err, accounts.ErrBadToken) {
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
	if _, err := svc.TokenLogin(bg, "alice", tok, "10.0.0.2"); !errors.Is(err, accounts.ErrBadToken) {
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
	if _, err := svc.RevokeToken(bg, "alice", i1.ID); !errors.Is(err, accounts.ErrNotFound) {
		t.Fatalf("revoke again: %v", err)
	}
	if _, err := svc.RevokeToken(bg, "bob", "x"); !errors.Is(err, accounts.ErrNotFound) {
		t.Fatalf("revoke another's: %v", err)
	}
	if _, err := svc.TokenLogin(bg, "alice", t1, "10.0.0.3"); !errors.Is(err, accounts.ErrBadToken) {
		t.Fatalf("revoked token: %v", err)
	}
	if _, err := svc.TokenLogin(bg, "alice", t2, "10.0.0.3"); err != nil {
		t.Fatalf("the other token: %v", err)
	}
	svc.IssueToken(bg, "alice", "three")
	if n, err := svc.RevokeToken(bg, "alice", ""); err != nil || n != 2 {
		t.Fatalf("revoke all: %d, %v", n, err)
	}
	if _, err := svc.TokenLogin(bg, "alice", t2, "10.0.0.3"); !errors.Is(err, accounts.ErrBadToken) {
		t.Fatalf("after revoking all: %v", err)
	}
	// Deleting the account deletes its tokens: a new account of the same
	// name is not entered with the old one's token.
	t4, _, _ := svc.IssueToken(bg, "alice", "four")
	if err := svc.store.Delete(bg, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.TokenLogin(bg, "alice", t4, "10.0.0.4"); !errors.Is(err, accounts.ErrBadToken) {
		t.Fatalf("deleted account: %v", err)
	}
	if err := svc.store.Create(bg, accounts.Account{Name: "alice", Hash: "h"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.TokenLogin(bg, "alice", t4, "10.0.0.4"); !errors.Is(err, accounts.ErrBadToken) {
		t.Fatalf("re-registered name took the old token: %v", err)
	}
	if list, _ := svc.Tokens(bg, "alice"); len(list) != 0 {
		t.Fatalf("re-registered name inherited tokens %+v", list)
	}
	if _, _, err := svc.IssueToken(bg, "nobody", ""); !errors.Is(err, accounts.ErrNotFound) {
		t.Fatalf("token for no account: %v", err)
	}
}

// testTokensAreBounded: at accounts.MaxTokens, a new token drops the one
// used longest ago. touch is more than the time after which a login
// writes the token's last use (an hour).
func testTokensAreBounded(t *testing.T, suite Suite) {
	const touch = 2 * time.Hour
	svc := newService(t, suite, nil)
	svc.store.Create(bg, accounts.Account{Name: "alice", Hash: "h"})
	var toks []string
	for i := range accounts.MaxTokens {
		tok, _, err := svc.IssueToken(bg, "alice", fmt.Sprint(i))
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, tok)
		svc.clock.Advance(touch)
	}
	// Using the oldest makes the second the least recently used.
	if _, err := svc.TokenLogin(bg, "alice", toks[0], "10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	svc.clock.Advance(time.Minute)
	if _, _, err := svc.IssueToken(bg, "alice", fmt.Sprint(accounts.MaxTokens)); err != nil {
		t.Fatal(err)
	}
	list, _ := svc.Tokens(bg, "alice")
	var labels, want []string
	for _, tk := range list {
		labels = append(labels, tk.Label)
	}
	for i := range accounts.MaxTokens + 1 {
		if i != 1 {
			want = append(want, fmt.Sprint(i))
		}
	}
	if strings.Join(labels, ",") != strings.Join(want, ",") {
		t.Fatalf("kept %v; want the least recently used (1) dropped", labels)
	}
	if _, err := svc.TokenLogin(bg, "alice", toks[1], "10.0.0.1"); !errors.Is(err, accounts.ErrBadToken) {
		t.Fatalf("dropped token: %v", err)
	}
}

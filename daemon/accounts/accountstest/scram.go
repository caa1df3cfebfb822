package accountstest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livechat/livechat/daemon/accounts"
)

// SCRAMExchange runs a whole SCRAM-SHA-256 exchange of c against svc
// from source, checking the server's signature on success.
func SCRAMExchange(svc *accounts.Service, c *SCRAMClient, source string) (accounts.Account, error) {
	l := svc.NewSCRAMLogin(source)
	serverFirst, _, err := l.Step(bg, c.First())
	if err != nil {
		return accounts.Account{}, err
	}
	final, err := c.Final(serverFirst)
	if err != nil {
		return accounts.Account{}, fmt.Errorf("client: %w", err)
	}
	serverFinal, acct, err := l.Step(bg, final)
	if err != nil {
		return accounts.Account{}, err
	}
	if err := c.Verify(serverFinal); err != nil {
		return accounts.Account{}, fmt.Errorf("client: %w", err)
	}
	return acct, nil
}

func testSCRAM(t *testing.T, suite Suite) {
	svc := newService(t, suite, nil)
	if _, err := svc.Register(bg, "Alice", "correct horse", ""); err != nil {
		t.Fatal(err)
	}
	stored, err := svc.store.Get(bg, "alice")
	if err != nil || !strings.HasPrefix(stored.SCRAM, "scram-sha-256$i=64$") {
		t.Fatalf("after Register the store has SCRAM %q (%v)", stored.SCRAM, err)
	}
	if strings.Contains(stored.SCRAM, "correct horse") {
		t.Fatal("the password is in the stored SCRAM keys")
	}
	a, err := SCRAMExchange(svc.Service, &SCRAMClient{User: "ALICE", Password: "correct horse"}, "10.0.0.1")
	if err != nil || a.Name != "Alice" || a.Hash != "" || a.SCRAM != "" {
		t.Fatalf("SCRAM login: %+v, %v", a, err)
	}
	// The authorization identity is the caller's to check; it is passed on.
	l := svc.NewSCRAMLogin("10.0.0.1")
	c := &SCRAMClient{User: "alice", Password: "correct horse", AuthzID: "bob"}
	if _, _, err := l.Step(bg, c.First()); err != nil || l.AuthzID() != "bob" {
		t.Fatalf("authzid: %q, %v", l.AuthzID(), err)
	}
	// A wrong password: the proof does not verify.
	if _, err := SCRAMExchange(svc.Service, &SCRAMClient{User: "alice", Password: "wrong horse"}, "10.0.0.2"); !errors.Is(err, accounts.ErrBadCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
	// An unknown account fails at once.
	if _, err := SCRAMExchange(svc.Service, &SCRAMClient{User: "nobody", Password: "x"}, "10.0.0.3"); !errors.Is(err, accounts.ErrBadCredentials) {
		t.Fatalf("unknown account: %v", err)
	}
	// Garbage, and a replayed client-final from another exchange.
	if _, _, err := svc.NewSCRAMLogin("10.0.0.4").Step(bg, "hello"); !errors.Is(err, accounts.ErrSCRAMProtocol) {
		t.Fatalf("garbage client-first: %v", err)
	}
	c1 := &SCRAMClient{User: "alice", Password: "correct horse"}
	l1 := svc.NewSCRAMLogin("10.0.0.5")
	sf, _, _ := l1.Step(bg, c1.First())
	final, _ := c1.Final(sf)
	l2 := svc.NewSCRAMLogin("10.0.0.5")
	if _, _, err := l2.Step(bg, (&SCRAMClient{User: "alice"}).First()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l2.Step(bg, final); !errors.Is(err, accounts.ErrBadCredentials) {
		t.Fatalf("replayed client-final: %v", err)
	}
	// A password change (here the admin tool's) replaces the keys: the
	// old password no longer works over SCRAM either.
	hash, keys, err := accounts.Credentials("new password")
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.store.SetPassword(bg, "alice", hash, keys); err != nil {
		t.Fatal(err)
	}
	if _, err := SCRAMExchange(svc.Service, &SCRAMClient{User: "alice", Password: "correct horse"}, "10.0.0.6"); !errors.Is(err, accounts.ErrBadCredentials) {
		t.Fatalf("old password after a change: %v", err)
	}
	if _, err := SCRAMExchange(svc.Service, &SCRAMClient{User: "alice", Password: "new password"}, "10.0.0.6"); err != nil {
		t.Fatalf("new password: %v", err)
	}
}

// testSCRAMThrottle: wrong SCRAM proofs count against the source and the
// account exactly as wrong PLAIN passwords do, and a locked-out source is
// refused SCRAM and PLAIN alike.
func testSCRAMThrottle(t *testing.T, suite Suite) {
	svc := newService(t, suite, func(c *accounts.Config) {
		c.Throttle = accounts.ThrottleConfig{Free: 2, AccountFree: 1000, BaseDelay: time.Minute, MaxDelay: time.Hour}
	})
	if _, err := svc.Register(bg, "alice", "correct horse", "10.9.9.9"); err != nil {
		t.Fatal(err)
	}
	const ip = "10.0.0.1"
	for i := range 2 {
		if _, err := SCRAMExchange(svc.Service, &SCRAMClient{User: "alice", Password: "wrong"}, ip); !errors.Is(err, accounts.ErrBadCredentials) {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	// The third failure is the first past Free: it earns a lockout.
	if _, err := svc.Login(bg, "alice", "wrong", ip); !errors.Is(err, accounts.ErrBadCredentials) {
		t.Fatalf("PLAIN failure after two SCRAM ones: %v", err)
	}
	var th *accounts.ThrottledError
	if _, err := SCRAMExchange(svc.Service, &SCRAMClient{User: "alice", Password: "correct horse"}, ip); !errors.As(err, &th) || th.RetryAfter <= 0 {
		t.Fatalf("SCRAM while locked out: %v", err)
	}
	if _, err := svc.Login(bg, "alice", "correct horse", ip); !errors.Is(err, accounts.ErrThrottled) {
		t.Fatalf("PLAIN while locked out: %v", err)
	}
	if d := svc.Check("alice", ip); d <= 0 {
		t.Fatalf("Check = %v while locked out", d)
	}
	// Another address is not affected, and the lockout ends.
	if _, err := SCRAMExchange(svc.Service, &SCRAMClient{User: "alice", Password: "correct horse"}, "10.0.0.2"); err != nil {
		t.Fatalf("other address: %v", err)
	}
	svc.clock.Advance(2 * time.Minute)
	if _, err := SCRAMExchange(svc.Service, &SCRAMClient{User: "alice", Password: "correct horse"}, ip); err != nil {
		t.Fatalf("after the lockout: %v", err)
	}
	// Unknown names count too, as with PLAIN.
	svc2 := newService(t, suite, func(c *accounts.Config) {
		c.Throttle = accounts.ThrottleConfig{Free: 1, BaseDelay: time.Minute, MaxDelay: time.Hour}
	})
	for i := range 2 {
		SCRAMExchange(svc2.Service, &SCRAMClient{User: fmt.Sprint("ghost", i), Password: "x"}, ip)
	}
	if d := svc2.Check("anyone", ip); d <= 0 {
		t.Fatal("probing unknown names over SCRAM is not throttled")
	}
}

// testSCRAMMigration: an account stored before SCRAM (a hash only) fails
// SCRAM with ErrNoSCRAM until a password login adds the keys; keys made
// with another iteration count are made again.
func testSCRAMMigration(t *testing.T, suite Suite) {
	svc := newService(t, suite, nil)
	hash, err := accounts.HashPassword("correct horse", fastParams)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.store.Create(bg, accounts.Account{Name: "old", Hash: hash}); err != nil {
		t.Fatal(err)
	}
	if _, err := SCRAMExchange(svc.Service, &SCRAMClient{User: "old", Password: "correct horse"}, "10.0.0.1"); !errors.Is(err, accounts.ErrNoSCRAM) {
		t.Fatalf("SCRAM before migration: %v", err)
	}
	if d := svc.Check("old", "10.0.0.1"); d != 0 {
		t.Fatalf("ErrNoSCRAM counted as a failure: locked for %v", d)
	}
	// A wrong password migrates nothing.
	if _, err := svc.Login(bg, "old", "wrong", "10.0.0.1"); !errors.Is(err, accounts.ErrBadCredentials) {
		t.Fatal(err)
	}
	if a, _ := svc.store.Get(bg, "old"); a.SCRAM != "" {
		t.Fatalf("a failed login stored SCRAM keys %q", a.SCRAM)
	}
	if _, err := svc.Login(bg, "old", "correct horse", "10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	after, _ := svc.store.Get(bg, "old")
	if after.Hash != hash || !strings.HasPrefix(after.SCRAM, "scram-sha-256$i=64$") {
		t.Fatalf("after the password login: %+v", after)
	}
	if _, err := SCRAMExchange(svc.Service, &SCRAMClient{User: "old", Password: "correct horse"}, "10.0.0.1"); err != nil {
		t.Fatalf("SCRAM after migration: %v", err)
	}
	// A later login leaves current keys alone (no new salt, no write).
	svc.Login(bg, "old", "correct horse", "10.0.0.1")
	if again, _ := svc.store.Get(bg, "old"); again.SCRAM != after.SCRAM {
		t.Fatal("current SCRAM keys were derived again")
	}
	// A new iteration count: the next password login re-derives.
	svc2 := accounts.NewService(svc.store, func() accounts.Config {
		c := accounts.DefaultConfig()
		c.Params, c.SCRAMIterations = fastParams, 2*fastSCRAM
		return c
	}())
	if _, err := svc2.Login(bg, "old", "correct horse", "10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if a, _ := svc.store.Get(bg, "old"); !strings.HasPrefix(a.SCRAM, fmt.Sprintf("scram-sha-256$i=%d$", 2*fastSCRAM)) {
		t.Fatalf("keys not re-derived for the new count: %q", a.SCRAM)
	}
	// Unusable stored keys are as good as none.
	if err := svc.store.SetPassword(bg, "old", hash, "scram-sha-256$garbage"); err != nil {
		t.Fatal(err)
	}
	if _, err := SCRAMExchange(svc.Service, &SCRAMClient{User: "old", Password: "correct horse"}, "10.0.0.1"); !errors.Is(err, accounts.ErrNoSCRAM) {
		t.Fatalf("SCRAM with garbage keys: %v", err)
	}
}

func testCertFPs(t *testing.T, suite Suite) {
	svc := newService(t, suite, nil)
	for _, n := range []string{"Alice", "bob"} {
		if err := svc.store.Create(bg, accounts.Account{Name: n, Hash: "h"}); err != nil {
			t.Fatal(err)
		}
	}
	fp := func(i int) string { return fmt.Sprintf("%064x", i+1) }
	colons := strings.ToUpper(fp(0)[:2]) + ":" + fp(0)[2:]
	if err := svc.AddCertFP(bg, "alice", colons); err != nil {
		t.Fatal(err)
	}
	if err := svc.AddCertFP(bg, "ALICE", fp(0)); err != nil {
		t.Fatalf("adding one it has: %v", err)
	}
	if err := svc.AddCertFP(bg, "bob", fp(0)); !errors.Is(err, accounts.ErrCertFPTaken) {
		t.Fatalf("bob takes alice's: %v", err)
	}
	for _, bad := range []string{"", "xyz", fp(0)[1:], fp(0) + "00", strings.Repeat("g", 64)} {
		if err := svc.AddCertFP(bg, "alice", bad); !errors.Is(err, accounts.ErrBadCertFP) {
			t.Fatalf("AddCertFP(%q) = %v", bad, err)
		}
	}
	if err := svc.AddCertFP(bg, "nobody", fp(1)); !errors.Is(err, accounts.ErrNotFound) {
		t.Fatalf("no account: %v", err)
	}
	a, err := svc.CertFPLogin(bg, fp(0))
	if err != nil || a.Name != "Alice" || a.Hash != "" {
		t.Fatalf("CertFPLogin: %+v, %v", a, err)
	}
	if _, err := svc.CertFPLogin(bg, fp(1)); !errors.Is(err, accounts.ErrBadCredentials) {
		t.Fatalf("unknown fingerprint: %v", err)
	}
	// Bounded.
	for i := 1; i < accounts.MaxCertFPs; i++ {
		if err := svc.AddCertFP(bg, "alice", fp(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := svc.AddCertFP(bg, "alice", fp(99)); !errors.Is(err, accounts.ErrCertFPLimit) {
		t.Fatalf("one past the bound: %v", err)
	}
	// The refused one is nobody's: bob may have it.
	if err := svc.AddCertFP(bg, "bob", fp(99)); err != nil {
		t.Fatalf("bob after alice was refused: %v", err)
	}
	list, err := svc.CertFPs(bg, "alice")
	if err != nil || len(list) != accounts.MaxCertFPs || list[0] != fp(0) {
		t.Fatalf("list: %v, %v", list, err)
	}
	if err := svc.DeleteCertFP(bg, "bob", fp(0)); !errors.Is(err, accounts.ErrNotFound) {
		t.Fatalf("bob deletes alice's: %v", err)
	}
	if err := svc.DeleteCertFP(bg, "alice", fp(0)); err != nil {
		t.Fatal(err)
	}
	if err := svc.DeleteCertFP(bg, "alice", fp(0)); !errors.Is(err, accounts.ErrNotFound) {
		t.Fatalf("delete again: %v", err)
	}
	if _, err := svc.CertFPLogin(bg, fp(0)); !errors.Is(err, accounts.ErrBadCredentials) {
		t.Fatalf("deleted fingerprint still logs in: %v", err)
	}
	if err := svc.AddCertFP(bg, "bob", fp(0)); err != nil {
		t.Fatalf("bob takes a freed one: %v", err)
	}
	// Deleting the account frees its fingerprints and a new account of
	// the same name starts with none.
	if err := svc.store.Delete(bg, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CertFPLogin(bg, fp(1)); !errors.Is(err, accounts.ErrBadCredentials) {
		t.Fatalf("deleted account's fingerprint: %v", err)
	}
	if err := svc.store.Create(bg, accounts.Account{Name: "alice", Hash: "h"}); err != nil {
		t.Fatal(err)
	}
	if list, err := svc.CertFPs(bg, "alice"); err != nil || len(list) != 0 {
		t.Fatalf("re-registered name inherited %v (%v)", list, err)
	}
	if err := svc.AddCertFP(bg, "bob", fp(1)); err != nil {
		t.Fatalf("bob takes a deleted account's: %v", err)
	}
	if a, err := svc.CertFPLogin(bg, fp(1)); err != nil || a.Name != "bob" {
		t.Fatalf("after bob took it: %+v, %v", a, err)
	}
}

// testCertFPsConcurrent: of accounts adding one fingerprint at once,
// exactly one gets it.
func testCertFPsConcurrent(t *testing.T, suite Suite) {
	svc := newService(t, suite, nil)
	const n = 8
	for i := range n {
		if err := svc.store.Create(bg, accounts.Account{Name: fmt.Sprint("u", i), Hash: "h"}); err != nil {
			t.Fatal(err)
		}
	}
	fp := strings.Repeat("ab", 32)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = svc.AddCertFP(bg, fmt.Sprint("u", i), fp) })
	}
	wg.Wait()
	winner := ""
	for i, err := range errs {
		switch {
		case err == nil && winner == "":
			winner = fmt.Sprint("u", i)
		case err == nil:
			t.Fatalf("%s and u%d both got the fingerprint", winner, i)
		case !errors.Is(err, accounts.ErrCertFPTaken):
			t.Fatalf("u%d: %v", i, err)
		}
	}
	if a, err := svc.CertFPLogin(bg, fp); err != nil || a.Name != winner {
		t.Fatalf("owner %+v, %v; want %s", a, err, winner)
	}
}

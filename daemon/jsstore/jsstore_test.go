package jsstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/livechat/livechat/daemon/accounts"
	"github.com/livechat/livechat/daemon/accounts/accountstest"
	"github.com/livechat/livechat/daemon/roomstore/roomstoretest"
	"github.com/livechat/livechat/internal/natstest"
	"github.com/livechat/livechat/rooms"
)

var bg = context.Background()

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(bg, 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func js(t testing.TB, nc *nats.Conn) jetstream.JetStream {
	t.Helper()
	j, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

var prefixes atomic.Int64

// freshOptions names buckets no other store of the test uses, so that
// many stores share one server.
func freshOptions() Options {
	return Options{Prefix: fmt.Sprint("T", prefixes.Add(1)), MaxReadMarkers: 5, Timeout: 10 * time.Second}
}

func openAccounts(t testing.TB, nc *nats.Conn, o Options) *Accounts {
	t.Helper()
	a, err := OpenAccounts(ctxT(t), js(t, nc), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func openRooms(t testing.TB, nc *nats.Conn, o Options) *Rooms {
	t.Helper()
	r, err := OpenRooms(ctxT(t), js(t, nc), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestAccountsConformance(t *testing.T) {
	s := natstest.RunServer(t, "")
	nc := natstest.Connect(t, s.ClientURL())
	accountstest.Run(t, accountstest.Suite{
		Open:        func(t *testing.T) accounts.Store { return openAccounts(t, nc, freshOptions()) },
		MarkerLimit: 5,
	})
}

func TestRoomsConformance(t *testing.T) {
	s := natstest.RunServer(t, "")
	nc := natstest.Connect(t, s.ClientURL())
	roomstoretest.Run(t, func(t *testing.T) rooms.Store { return openRooms(t, nc, freshOptions()) })
}

func TestKeys(t *testing.T) {
	for _, name := range []string{"a", "[Foo]", "x\\y`^{}|", "Ärger", "#ünï 🎉", "#a.b c*>"} {
		k := key(accounts.Fold(name))
		for _, r := range k {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-/_=.", r)) {
				t.Fatalf("key(%q) = %q: not a valid KV key", name, k)
			}
		}
		if back, ok := unkey(k); !ok || back != accounts.Fold(name) {
			t.Fatalf("unkey(key(%q)) = %q, %v", name, back, ok)
		}
	}
}

// nodes opens n stores on one set of buckets, each on its own NATS
// connection to one of urls (round robin): n livechat nodes.
func nodes(t *testing.T, urls []string, n int, o Options) []*Accounts {
	var out []*Accounts
	for i := range n {
		out = append(out, openAccounts(t, natstest.Connect(t, urls[i%len(urls)]), o))
	}
	return out
}

// raceRegister has 50 goroutines spread over the nodes Create spellings
// of one name at once: exactly one may win, the rest get ErrExists.
func raceRegister(t *testing.T, nodes []*Accounts, name string) {
	t.Helper()
	const racers = 50
	var wg sync.WaitGroup
	var wins atomic.Int32
	errs := make(chan error, racers)
	start := make(chan struct{})
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			spelling := []byte(name)
			for j := range spelling { // a different case mix per racer
				if i>>(j%6)&1 == 1 && spelling[j] >= 'a' && spelling[j] <= 'z' {
					spelling[j] -= 'a' - 'A'
				}
			}
			<-start
			err := nodes[i%len(nodes)].Create(ctxT(t), accounts.Account{Name: string(spelling), Hash: fmt.Sprint("h", i)})
			switch {
			case err == nil:
				wins.Add(1)
			case !errors.Is(err, accounts.ErrExists):
				errs <- err
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("racer for %s: %v", name, err)
	}
	if wins.Load() != 1 {
		t.Fatalf("%s: %d winners of 50, want exactly 1", name, wins.Load())
	}
}

// waitCount waits until every node counts want accounts: other nodes'
// registrations reach Count through the watch.
func waitCount(t *testing.T, nodes []*Accounts, want int) {
	t.Helper()
	waitCountFor(t, nodes, want, 10*time.Second)
}

func waitCountFor(t *testing.T, nodes []*Accounts, want int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for i, n := range nodes {
		for n.Count() != want {
			if time.Now().After(deadline) {
				t.Fatalf("node %d counts %d accounts, want %d", i, n.Count(), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// TestRegisterRace: three nodes, 50 concurrent REGISTERs of one name per
// round, also of a name just deleted (JetStream's create of a deleted
// key takes another path): one winner every time, and every node ends up
// agreeing on the count.
func TestRegisterRace(t *testing.T) {
	s := natstest.RunServer(t, "")
	ns := nodes(t, []string{s.ClientURL()}, 3, freshOptions())
	for i := range 10 {
		raceRegister(t, ns, fmt.Sprint("racer", i))
	}
	waitCount(t, ns, 10)
	for i := range 5 {
		name := fmt.Sprint("racer", i)
		if err := ns[i%3].Delete(ctxT(t), strings.ToUpper(name)); err != nil {
			t.Fatal(err)
		}
		raceRegister(t, ns, name)
	}
	waitCount(t, ns, 10)
	// Every node reads the winner's account.
	a, err := ns[2].Get(ctxT(t), "RACER7")
	if err != nil || accounts.Fold(a.Name) != "racer7" || !strings.HasPrefix(a.Hash, "h") {
		t.Fatalf("Get on another node: %+v, %v", a, err)
	}
}

// Deleting on one node while another changes the password: whichever
// comes first, the account does not come back.
func TestDeleteRacesSetPassword(t *testing.T) {
	s := natstest.RunServer(t, "")
	ns := nodes(t, []string{s.ClientURL()}, 2, freshOptions())
	for i := range 20 {
		name := fmt.Sprint("user", i)
		if err := ns[0].Create(ctxT(t), accounts.Account{Name: name, Hash: "h0"}); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var delErr, pwErr error
		wg.Add(2)
		go func() { defer wg.Done(); delErr = ns[0].Delete(ctxT(t), name) }()
		go func() { defer wg.Done(); pwErr = ns[1].SetPassword(ctxT(t), name, "h1", "") }()
		wg.Wait()
		if delErr != nil || pwErr != nil && !errors.Is(pwErr, accounts.ErrNotFound) {
			t.Fatalf("delete %v, set password %v", delErr, pwErr)
		}
		if _, err := ns[1].Get(ctxT(t), name); !errors.Is(err, accounts.ErrNotFound) {
			t.Fatalf("deleted account is back: %v", err)
		}
	}
	waitCount(t, ns, 0)
}

// TestMarkerRaceTwoNodes: clients of one account on two nodes move one
// marker to their own times at once; it only moves forward and ends at
// the latest.
func TestMarkerRaceTwoNodes(t *testing.T) {
	s := natstest.RunServer(t, "")
	ns := nodes(t, []string{s.ClientURL()}, 2, freshOptions())
	if err := ns[0].Create(ctxT(t), accounts.Account{Name: "alice", Hash: "h"}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	const racers = 40
	var wg sync.WaitGroup
	errs := make(chan error, racers)
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			at := t0.Add(time.Duration(i) * time.Second)
			got, _, err := ns[i%2].SetReadMarker(ctxT(t), "ALICE", "#lobby", at)
			if err == nil && got.Before(at) {
				err = fmt.Errorf("set %v, stored %v: moved back", at, got)
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
	want := t0.Add((racers - 1) * time.Second)
	for i, n := range ns {
		if at, err := n.ReadMarker(ctxT(t), "alice", "#lobby"); err != nil || !at.Equal(want) {
			t.Fatalf("node %d reads %v, %v; want %v", i, at, err, want)
		}
	}
}

// TestRestart: what the store acknowledged survives a restart of the NATS
// server on the same store directory, and the store keeps working on its
// reconnected connection.
func TestRestart(t *testing.T) {
	s := natstest.RunServer(t, "")
	o := freshOptions()
	nc := natstest.Connect(t, s.ClientURL())
	a := openAccounts(t, nc, o)
	r := openRooms(t, nc, o)
	svc := accounts.NewService(a, accounts.Config{Params: accounts.Params{Memory: 64, Time: 1, Threads: 1}})
	const n = 200
	for i := range n {
		if err := a.Create(ctxT(t), accounts.Account{Name: fmt.Sprint("user", i), Hash: fmt.Sprint("h", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Delete(ctxT(t), "user0"); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2025, 6, 7, 8, 9, 10, 123_000_000, time.UTC)
	if _, _, err := a.SetReadMarker(ctxT(t), "user1", "#lobby", at); err != nil {
		t.Fatal(err)
	}
	tok, _, err := svc.IssueToken(ctxT(t), "user2", "web")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Save("#home", roomstoretest.Saved()); err != nil {
		t.Fatal(err)
	}

	reconnected := make(chan struct{}, 1)
	nc.SetReconnectHandler(func(*nats.Conn) { reconnected <- struct{}{} })
	s = natstest.Restart(t, s)
	select {
	case <-reconnected:
	case <-time.After(10 * time.Second):
		t.Fatal("no reconnection to the restarted server")
	}

	check := func(t *testing.T, a *Accounts, r *Rooms) {
		t.Helper()
		for i := 1; i < n; i++ {
			if got, err := a.Get(ctxT(t), fmt.Sprint("USER", i)); err != nil || got.Hash != fmt.Sprint("h", i) {
				t.Fatalf("acknowledged account user%d after the restart: %+v, %v", i, got, err)
			}
		}
		if _, err := a.Get(ctxT(t), "user0"); !errors.Is(err, accounts.ErrNotFound) {
			t.Fatalf("acknowledged Delete lost: %v", err)
		}
		if got, err := a.ReadMarker(ctxT(t), "user1", "#lobby"); err != nil || !got.Equal(at) {
			t.Fatalf("marker after the restart: %v, %v", got, err)
		}
		if sv, ok, err := r.Load("#home"); !ok || err != nil || sv.Owner != "founder" {
			t.Fatalf("room after the restart: %+v %v %v", sv, ok, err)
		}
		waitCount(t, []*Accounts{a}, n-1)
	}
	check(t, a, r) // the same stores, on their reconnected connection
	nc2 := natstest.Connect(t, s.ClientURL())
	check(t, openAccounts(t, nc2, o), openRooms(t, nc2, o)) // a node starting now
	svc2 := accounts.NewService(openAccounts(t, nc2, o), accounts.Config{Params: accounts.Params{Memory: 64, Time: 1, Threads: 1}})
	if got, err := svc2.TokenLogin(ctxT(t), "user2", tok, "10.0.0.1"); err != nil || got.Name != "user2" {
		t.Fatalf("token after the restart: %+v, %v", got, err)
	}
	// And the first store writes again.
	if err := a.Create(ctxT(t), accounts.Account{Name: "late"}); err != nil {
		t.Fatal(err)
	}
}

// TestNATSCluster: three livechat nodes, each on its own server of a
// three-server JetStream cluster, buckets replicated three times. A
// REGISTER race has one winner; what one node writes the others read;
// with one NATS server down the other two keep a quorum and lose nothing.
func TestNATSCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("three-server cluster")
	}
	servers := natstest.RunCluster(t)
	var urls []string
	for _, s := range servers {
		urls = append(urls, s.ClientURL())
	}
	o := freshOptions()
	o.Replicas = 3
	ns := nodes(t, urls, 3, o)
	for i := range 5 {
		raceRegister(t, ns, fmt.Sprint("r3racer", i))
	}
	if err := ns[0].Delete(ctxT(t), "r3racer0"); err != nil {
		t.Fatal(err)
	}
	raceRegister(t, ns, "r3racer0") // replicated streams report CAS conflicts with another code
	waitCount(t, ns, 5)

	if _, _, err := ns[1].SetReadMarker(ctxT(t), "r3racer1", "#lobby", time.UnixMilli(1_800_000_000_000)); err != nil {
		t.Fatal(err)
	}
	rs := make([]*Rooms, 3)
	for i := range rs {
		rs[i] = openRooms(t, natstest.Connect(t, urls[i]), o)
	}
	if err := rs[0].Save("#home", roomstoretest.Saved()); err != nil {
		t.Fatal(err)
	}

	const n = 200
	lat := make([]time.Duration, n)
	for i := range n {
		t0 := time.Now()
		if err := ns[i%3].Create(ctxT(t), accounts.Account{Name: fmt.Sprint("seq", i)}); err != nil {
			t.Fatal(err)
		}
		lat[i] = time.Since(t0)
	}
	sortDurations(lat)
	t.Logf("R3 Create latency p50 %v p99 %v (%d sequential)", lat[n/2], lat[n*99/100], n)

	// One NATS server goes; the nodes on the other two carry on.
	down := servers[2]
	down.Shutdown()
	down.WaitForShutdown()
	for _, a := range ns[:2] {
		for i := range n {
			if _, err := a.Get(ctxT(t), fmt.Sprint("seq", i)); err != nil {
				t.Fatalf("seq%d with one NATS server down: %v", i, err)
			}
		}
	}
	if at, err := ns[0].ReadMarker(ctxT(t), "r3racer1", "#lobby"); err != nil || at.UnixMilli() != 1_800_000_000_000 {
		t.Fatalf("marker from another node: %v, %v", at, err)
	}
	if sv, ok, err := rs[1].Load("#home"); !ok || err != nil || sv.Topic != "kept" {
		t.Fatalf("room saved on another node: %+v %v %v", sv, ok, err)
	}
	if err := ns[1].Create(ctxT(t), accounts.Account{Name: "during"}); err != nil {
		t.Fatalf("Create with one NATS server down: %v", err)
	}
	// The node whose NATS server went reconnects to another one (its
	// connection learnt their addresses) and reads everything.
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := ns[2].Get(ctxT(t), "during")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the node of the stopped NATS server: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A watch whose consumer was on the stopped server notices after
	// missing its heartbeats (5 s apart) and starts again where it was.
	t0 := time.Now()
	waitCountFor(t, ns, 5+n+1, 40*time.Second)
	t.Logf("every node counts the account created with one NATS server down after %v", time.Since(t0).Round(time.Millisecond))
}

func sortDurations(d []time.Duration) {
	for i := 1; i < len(d); i++ {
		for j := i; j > 0 && d[j] < d[j-1]; j-- {
			d[j], d[j-1] = d[j-1], d[j]
		}
	}
}

// TestNATSAway: with the NATS server gone every call fails within the
// timeout, none hangs; when it is back the same stores work again.
func TestNATSAway(t *testing.T) {
	s := natstest.RunServer(t, "")
	o := freshOptions()
	o.Timeout = 300 * time.Millisecond
	nc := natstest.Connect(t, s.ClientURL())
	a := openAccounts(t, nc, o)
	r := openRooms(t, nc, o)
	if err := a.Create(ctxT(t), accounts.Account{Name: "alice"}); err != nil {
		t.Fatal(err)
	}
	s.Shutdown()
	s.WaitForShutdown()

	calls := map[string]func() error{
		"Create": func() error { return a.Create(bg, accounts.Account{Name: "bob"}) },
		"Get": func() error {
			_, err := a.Get(bg, "alice")
			return err
		},
		"SetPassword": func() error { return a.SetPassword(bg, "alice", "h", "") },
		"Delete":      func() error { return a.Delete(bg, "alice") },
		"List": func() error {
			_, err := a.List(bg)
			return err
		},
		"SetReadMarker": func() error {
			_, _, err := a.SetReadMarker(bg, "alice", "#x", time.Now())
			return err
		},
		"Tokens": func() error {
			_, err := a.Tokens(bg, "alice")
			return err
		},
		"Rooms.Save": func() error { return r.Save("#x", roomstoretest.Saved()) },
		"Rooms.Load": func() error {
			_, _, err := r.Load("#x")
			return err
		},
		"Rooms.List": func() error {
			_, err := r.List()
			return err
		},
		"OpenAccounts": func() error {
			ctx, cancel := context.WithTimeout(bg, o.Timeout)
			defer cancel()
			_, err := OpenAccounts(ctx, js(t, nc), o)
			return err
		},
	}
	var wg sync.WaitGroup
	for name, call := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			err := call()
			took := time.Since(t0)
			if err == nil || errors.Is(err, accounts.ErrNotFound) {
				t.Errorf("%s with NATS away: %v", name, err)
			}
			if took > o.Timeout+time.Second {
				t.Errorf("%s with NATS away took %v (timeout %v)", name, took, o.Timeout)
			}
			t.Logf("%s with NATS away: %v after %v", name, err, took.Round(time.Millisecond))
		}()
	}
	wg.Wait()
	// A caller's shorter deadline is kept.
	ctx, cancel := context.WithTimeout(bg, 50*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	if _, err := a.Get(ctx, "alice"); err == nil || time.Since(t0) > 50*time.Millisecond+o.Timeout/2 {
		t.Errorf("Get with a 50ms deadline: %v after %v", err, time.Since(t0))
	}

	reconnected := make(chan struct{}, 1)
	nc.SetReconnectHandler(func(*nats.Conn) { reconnected <- struct{}{} })
	natstest.Restart(t, s)
	select {
	case <-reconnected:
	case <-time.After(10 * time.Second):
		t.Fatal("no reconnection")
	}
	if _, err := a.Get(ctxT(t), "alice"); err != nil {
		t.Fatalf("Get when NATS is back: %v", err)
	}
	if err := r.Save("#x", roomstoretest.Saved()); err != nil {
		t.Fatalf("Save when NATS is back: %v", err)
	}
}

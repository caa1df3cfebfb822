package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/livechat/livechat/internal/natstest"
)

// testNode is one livechat node: its own NATS connection, Node and Claims.
type testNode struct {
	nc     *nats.Conn
	node   *Node
	claims *Claims
}

func startNode(t testing.TB, url, name string, ttl time.Duration, before func(*Node)) *testNode {
	t.Helper()
	return startNodeR(t, url, name, ttl, 1, before)
}

func startNodeR(t testing.TB, url, name string, ttl time.Duration, replicas int, before func(*Node)) *testNode {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	node, err := NewNode(js, NodeConfig{Name: name, LeaseTTL: ttl, Replicas: replicas})
	if err != nil {
		t.Fatal(err)
	}
	if before != nil {
		before(node)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := node.Start(ctx); err != nil {
		t.Fatal(err)
	}
	claims, err := NewClaims(ctx, node)
	if err != nil {
		t.Fatal(err)
	}
	tn := &testNode{nc: nc, node: node, claims: claims}
	t.Cleanup(func() {
		claims.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		node.Stop(ctx)
		nc.Close()
	})
	return tn
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestNickKey(t *testing.T) {
	for _, nick := range []string{"a", "[Foo]", "x\\y`^{}|", "Guest-1234"} {
		k := NickKey(nick)
		if !jetstreamKeyValid(k) {
			t.Errorf("NickKey(%q) = %q: not a valid KV key", nick, k)
		}
	}
	if NickKey("Alice") != NickKey("ALICE") || NickKey("[Ab]") != NickKey("[aB]") {
		t.Error("NickKey does not fold like protocol.FoldNick")
	}
}

func jetstreamKeyValid(k string) bool {
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '=' || r == '.' || r == '/') {
			return false
		}
	}
	return k != ""
}

// Two nodes race for the same nick: exactly one wins every round.
func TestClaimRaceTwoNodes(t *testing.T) {
	s := natstest.RunServer(t, "")
	a := startNode(t, s.ClientURL(), "a", 2*time.Second, nil)
	b := startNode(t, s.ClientURL(), "b", 2*time.Second, nil)
	ctx := ctxT(t)
	for i := range 200 {
		nick := fmt.Sprintf("Race[%d]|", i)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for j, n := range []*testNode{a, b} {
			wg.Go(func() {
				_, errs[j] = n.claims.Claim(ctx, nick, fmt.Sprint("s", j), "")
			})
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, ErrInUse):
				t.Fatalf("round %d: %v", i, err)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d winners (%v)", i, won, errs)
		}
		h, ok, err := a.claims.Holder(ctx, nick)
		if err != nil || !ok {
			t.Fatalf("round %d: holder: %v %v", i, ok, err)
		}
		want := "a"
		if errs[0] != nil {
			want = "b"
		}
		if h.Node != want || h.Nick != nick {
			t.Fatalf("round %d: holder %+v, want node %s", i, h, want)
		}
	}
}

// 50 concurrent claims of one nick spread over three nodes: one succeeds.
func TestClaimRaceFifty(t *testing.T) {
	s := natstest.RunServer(t, "")
	nodes := []*testNode{
		startNode(t, s.ClientURL(), "a", 2*time.Second, nil),
		startNode(t, s.ClientURL(), "b", 2*time.Second, nil),
		startNode(t, s.ClientURL(), "c", 2*time.Second, nil),
	}
	ctx := ctxT(t)
	raceFifty(t, ctx, nodes)
}

func TestRenameRelease(t *testing.T) {
	s := natstest.RunServer(t, "")
	a := startNode(t, s.ClientURL(), "a", 2*time.Second, nil)
	b := startNode(t, s.ClientURL(), "b", 2*time.Second, nil)
	ctx := ctxT(t)

	alice, err := a.claims.Claim(ctx, "alice", "s1", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.claims.Claim(ctx, "ALICE", "s2", ""); !errors.Is(err, ErrInUse) {
		t.Fatalf("claim of a held nick in other case: %v", err)
	}
	// Case change only: rewritten in place.
	alice, release, err := a.claims.Rename(ctx, alice, "Alice", "s1", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := release(ctx); err != nil {
		t.Fatal(err)
	}
	if h, _, _ := b.claims.Holder(ctx, "alice"); h.Nick != "Alice" {
		t.Fatalf("holder after case change: %+v", h)
	}
	// Rename: the old nick stays held until release.
	alice2, release, err := a.claims.Rename(ctx, alice, "alice2", "s1", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.claims.Claim(ctx, "alice", "s2", ""); !errors.Is(err, ErrInUse) {
		t.Fatalf("old nick before release: %v", err)
	}
	if err := release(ctx); err != nil {
		t.Fatal(err)
	}
	bob, err := b.claims.Claim(ctx, "alice", "s2", "")
	if err != nil {
		t.Fatalf("old nick after release: %v", err)
	}
	// Renaming to a held nick fails and keeps the old one.
	if _, _, err := a.claims.Rename(ctx, alice2, "Alice", "s1", ""); !errors.Is(err, ErrInUse) {
		t.Fatalf("rename to held nick: %v", err)
	}
	// Releasing the stale claim on "alice" does not free b's claim.
	if err := a.claims.Release(ctx, alice); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("stale release: %v", err)
	}
	if h, ok, _ := a.claims.Holder(ctx, "alice"); !ok || h.Node != "b" {
		t.Fatalf("holder after stale release: %+v %v", h, ok)
	}
	// Release frees.
	if err := b.claims.Release(ctx, bob); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := a.claims.Holder(ctx, "alice"); ok {
		t.Fatal("alice still held after release")
	}
	// Take: logging in to the account takes the nick back.
	if _, err := b.claims.Claim(ctx, "owner", "s2", ""); err != nil {
		t.Fatal(err)
	}
	_, prev, err := a.claims.Take(ctx, "Owner", "s1", "owner")
	if err != nil || prev == nil || prev.Node != "b" || prev.Session != "s2" {
		t.Fatalf("take: %+v %v", prev, err)
	}
	if h, _, _ := b.claims.Holder(ctx, "owner"); h.Node != "a" || h.Account != "owner" {
		t.Fatalf("holder after take: %+v", h)
	}
}

// A node that crashes (its connection closed, lease not deleted) is seen
// dead within the lease, and its nicks are freed exactly once.
func TestNodeCrashFreesNicks(t *testing.T) {
	s := natstest.RunServer(t, "")
	const ttl = time.Second
	events := make(chan string, 16)
	a := startNode(t, s.ClientURL(), "a", ttl, func(n *Node) {
		n.Watch(func(node string, alive bool) { events <- fmt.Sprint(node, " ", alive) })
	})
	var freed sync.Map
	var freedN atomic.Int32
	a.claims.OnFreed(func(h Holder) { freed.Store(h.Nick, h); freedN.Add(1) })
	c := startNode(t, s.ClientURL(), "c", ttl, nil) // a second survivor racing to free
	c.claims.OnFreed(func(h Holder) { freed.Store(h.Nick, h); freedN.Add(1) })
	b := startNode(t, s.ClientURL(), "b", ttl, nil)
	expect(t, events, "c true", 5*time.Second)
	expect(t, events, "b true", 5*time.Second)
	if !a.node.Alive("b") {
		t.Fatal("b not alive")
	}
	ctx := ctxT(t)
	nicks := []string{"bob", "[bob]", "b^b"}
	for _, nick := range nicks {
		if _, err := b.claims.Claim(ctx, nick, "s", ""); err != nil {
			t.Fatal(err)
		}
	}
	keep, err := a.claims.Claim(ctx, "alice", "s", "")
	if err != nil {
		t.Fatal(err)
	}

	crashed := time.Now()
	b.nc.Close() // no Stop: the lease is left to expire
	expect(t, events, "b false", ttl+2*time.Second)
	seen := time.Since(crashed)
	deadline := time.Now().Add(2 * time.Second)
	for freedN.Load() < int32(len(nicks)) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	allFreed := time.Since(crashed)
	t.Logf("lease %v: death seen after %v, nicks freed after %v", ttl, seen.Round(time.Millisecond), allFreed.Round(time.Millisecond))
	if got := freedN.Load(); got != int32(len(nicks)) {
		t.Fatalf("%d claims freed, want %d (each exactly once)", got, len(nicks))
	}
	if a.node.Alive("b") {
		t.Fatal("b still alive")
	}
	for _, nick := range nicks {
		if _, err := a.claims.Claim(ctx, nick, "s", ""); err != nil {
			t.Fatalf("claim %s after b died: %v", nick, err)
		}
	}
	if h, ok, _ := a.claims.Holder(ctx, "alice"); !ok || h.Node != "a" || keep.Rev == 0 {
		t.Fatal("a survivor's claim was freed")
	}
	// Nothing more was freed (b's claims are gone; a's and c's stay).
	time.Sleep(100 * time.Millisecond)
	if got := freedN.Load(); got != int32(len(nicks)) {
		t.Fatalf("%d claims freed", got)
	}
}

// A node cut off for longer than its lease learns it lost the lease; its
// stale claims were freed and retaken, and its late releases fail.
func TestLostLeaseStaleRelease(t *testing.T) {
	s := natstest.RunServer(t, "")
	const ttl = time.Second
	a := startNode(t, s.ClientURL(), "a", ttl, nil)
	lost := make(chan struct{}, 1)
	b := startNode(t, s.ClientURL(), "b", ttl, func(n *Node) {
		n.OnLost(func() { lost <- struct{}{} })
	})
	ctx := ctxT(t)
	stale, err := b.claims.Claim(ctx, "bob", "s", "")
	if err != nil {
		t.Fatal(err)
	}
	oldInc := b.node.Incarnation()
	freed := make(chan Holder, 1)
	a.claims.OnFreed(func(h Holder) { freed <- h })
	// What the cluster sees when b's lease expires, without waiting for it.
	js, _ := jetstream.New(a.nc)
	kv, _ := js.KeyValue(ctx, NodesBucket)
	if err := kv.Purge(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	select {
	case h := <-freed:
		if h.Nick != "bob" || h.Node != "b" {
			t.Fatalf("freed %+v", h)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("b's claim not freed")
	}
	if _, err := a.claims.Claim(ctx, "bob", "s2", ""); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost:
	case <-time.After(3 * ttl):
		t.Fatal("b did not learn it lost its lease")
	}
	if err := b.claims.Release(ctx, stale); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("stale release: %v", err)
	}
	if h, ok, _ := b.claims.Holder(ctx, "bob"); !ok || h.Node != "a" {
		t.Fatalf("bob after stale release: %+v %v", h, ok)
	}
	// b goes on with a new incarnation and can claim again.
	deadline := time.Now().Add(3 * ttl)
	for !b.node.LeaseOK() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if b.node.Incarnation() == oldInc {
		t.Fatal("same incarnation after a lost lease")
	}
	if _, err := b.claims.Claim(ctx, "bobby", "s", ""); err != nil {
		t.Fatal(err)
	}
}

// A claim left behind by a dead incarnation (written after the sweep) is
// freed when someone claims the nick.
func TestClaimOverOrphan(t *testing.T) {
	s := natstest.RunServer(t, "")
	a := startNode(t, s.ClientURL(), "a", time.Second, nil)
	ctx := ctxT(t)
	js, _ := jetstream.New(a.nc)
	kv, _ := js.KeyValue(ctx, NicksBucket)
	if _, err := kv.Create(ctx, NickKey("ghost"), []byte(`{"nick":"ghost","node":"z","inc":"dead"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.claims.Claim(ctx, "Ghost", "s", ""); err != nil {
		t.Fatalf("claim over an orphan: %v", err)
	}
	// And a new node's start sweeps orphans.
	if _, err := kv.Create(ctx, NickKey("ghost2"), []byte(`{"nick":"ghost2","node":"z","inc":"dead"}`)); err != nil {
		t.Fatal(err)
	}
	startNode(t, s.ClientURL(), "b", time.Second, nil)
	if _, ok, _ := a.claims.Holder(ctx, "ghost2"); ok {
		t.Fatal("orphan not swept at start")
	}
}

func TestNodeNameInUse(t *testing.T) {
	s := natstest.RunServer(t, "")
	startNode(t, s.ClientURL(), "a", time.Second, nil)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	dup, _ := NewNode(js, NodeConfig{Name: "a", LeaseTTL: time.Second})
	if err := dup.Start(ctxT(t)); !errors.Is(err, ErrNameInUse) {
		t.Fatalf("second node named a: %v", err)
	}
}

// A node that stops cleanly is seen gone at once, and a restarted process
// with the same name gets a fresh lease without waiting.
func TestStopAndRestart(t *testing.T) {
	s := natstest.RunServer(t, "")
	events := make(chan string, 16)
	startNode(t, s.ClientURL(), "a", 2*time.Second, func(n *Node) {
		n.Watch(func(node string, alive bool) { events <- fmt.Sprint(node, " ", alive) })
	})
	b := startNode(t, s.ClientURL(), "b", 2*time.Second, nil)
	expect(t, events, "b true", 5*time.Second)
	b.claims.Close()
	if err := b.node.Stop(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	expect(t, events, "b false", 500*time.Millisecond)
	startNode(t, s.ClientURL(), "b", 2*time.Second, nil)
	expect(t, events, "b true", 500*time.Millisecond)
}

func expect(t *testing.T, ch <-chan string, want string, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case got := <-ch:
			if got == want {
				return
			}
			t.Logf("event %q while waiting for %q", got, want)
		case <-deadline:
			t.Fatalf("no %q within %v", want, within)
		}
	}
}

// Claim latency over loopback, one replica, file storage.
func TestClaimLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement")
	}
	s := natstest.RunServer(t, "")
	a := startNode(t, s.ClientURL(), "a", 2*time.Second, nil)
	ctx := ctxT(t)
	const n = 2000
	lat := make([]time.Duration, n)
	for i := range n {
		t0 := time.Now()
		if _, err := a.claims.Claim(ctx, fmt.Sprint("seq", i), "s", ""); err != nil {
			t.Fatal(err)
		}
		lat[i] = time.Since(t0)
	}
	slices.Sort(lat)
	// Throughput with 64 concurrent claimers.
	const workers, per = 64, 200
	t0 := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range per {
				if _, err := a.claims.Claim(ctx, fmt.Sprint("par", w, "-", i), "s", ""); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	el := time.Since(t0)
	t.Logf("claim latency p50 %v p99 %v (%d sequential); %d concurrent claimers: %.0f claims/s",
		lat[n/2], lat[n*99/100], n, workers, float64(workers*per)/el.Seconds())
}

// raceFifty has 50 claimers spread over nodes race for one nick, five
// rounds: exactly one wins each round, the others get ErrInUse.
func raceFifty(t *testing.T, ctx context.Context, nodes []*testNode) {
	t.Helper()
	for round := range 5 {
		nick := fmt.Sprintf("Popular%d", round)
		var won, lost atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range 50 {
			n := nodes[i%len(nodes)]
			wg.Go(func() {
				<-start
				_, err := n.claims.Claim(ctx, nick, fmt.Sprint(i), "")
				switch {
				case err == nil:
					won.Add(1)
				case errors.Is(err, ErrInUse):
					lost.Add(1)
				default:
					t.Error(err)
				}
			})
		}
		close(start)
		wg.Wait()
		if won.Load() != 1 || lost.Load() != 49 {
			t.Fatalf("round %d: %d won, %d lost", round, won.Load(), lost.Load())
		}
	}
}

package cluster

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/livechat/livechat/internal/natstest"
)

// Three livechat nodes, each on its own NATS server of a three-node
// JetStream cluster, buckets replicated three times.
func TestNATSClusterClaims(t *testing.T) {
	if testing.Short() {
		t.Skip("three-server cluster")
	}
	servers := natstest.RunCluster(t)
	const ttl = time.Second
	events := make(chan string, 16)
	var nodes []*testNode
	for i, s := range servers {
		name := fmt.Sprint("lc", i)
		nodes = append(nodes, startNodeR(t, s.ClientURL(), name, ttl, 3, func(n *Node) {
			if i == 0 {
				n.Watch(func(node string, alive bool) { events <- fmt.Sprint(node, " ", alive) })
			}
		}))
	}
	ctx := ctxT(t)
	raceFifty(t, ctx, nodes)

	const n = 500
	lat := make([]time.Duration, n)
	for i := range n {
		t0 := time.Now()
		if _, err := nodes[1].claims.Claim(ctx, fmt.Sprint("seq", i), "s", ""); err != nil {
			t.Fatal(err)
		}
		lat[i] = time.Since(t0)
	}
	slices.Sort(lat)
	t.Logf("R3 claim latency p50 %v p99 %v (%d sequential)", lat[n/2], lat[n*99/100], n)

	freed := make(chan Holder, 64)
	for _, tn := range nodes[:2] {
		tn.claims.OnFreed(func(h Holder) { freed <- h })
	}
	if _, err := nodes[2].claims.Claim(ctx, "victim", "s", ""); err != nil {
		t.Fatal(err)
	}
	crashed := time.Now()
	nodes[2].nc.Close()
	expect(t, events, "lc2 false", ttl+2*time.Second)
	// lc2 may also have won some of the Popular nicks; wait for victim.
	for timeout := time.After(2 * time.Second); ; {
		var h Holder
		select {
		case h = <-freed:
		case <-timeout:
			t.Fatal("victim not freed")
		}
		if h.Node != "lc2" {
			t.Fatalf("freed %+v", h)
		}
		if h.Nick == "victim" {
			break
		}
	}
	t.Logf("R3, lease %v: crashed node's nick freed after %v", ttl, time.Since(crashed).Round(time.Millisecond))
	if _, err := nodes[0].claims.Claim(ctx, "victim", "s", ""); err != nil {
		t.Fatal(err)
	}
}

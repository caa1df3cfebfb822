package cluster

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// runCluster starts three in-process nats-servers forming one JetStream
// cluster over loopback routes, on route ports found free just before; it
// tries again with other ports if one was taken meanwhile.
func runCluster(t testing.TB) []*server.Server {
	t.Helper()
	for range 3 {
		if servers := tryCluster(t); servers != nil {
			return servers
		}
	}
	t.Fatal("no three-server JetStream cluster")
	return nil
}

func tryCluster(t testing.TB) []*server.Server {
	ports := make([]int, 3)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	var routes []*url.URL
	for _, p := range ports {
		routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprint("127.0.0.1:", p)})
	}
	servers := make([]*server.Server, 3)
	shutdown := func() {
		for _, s := range servers {
			if s != nil {
				s.Shutdown()
			}
		}
	}
	for i := range servers {
		s, err := server.NewServer(&server.Options{
			ServerName: fmt.Sprint("n", i), Host: "127.0.0.1", Port: -1,
			JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
			Cluster: server.ClusterOpts{Name: "lc", Host: "127.0.0.1", Port: ports[i]},
			Routes:  routes,
		})
		if err != nil {
			t.Fatal(err)
		}
		go s.Start()
		servers[i] = s
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, s := range servers {
		if !s.ReadyForConnections(5 * time.Second) {
			shutdown()
			return nil
		}
		for !s.JetStreamIsCurrent() || !hasLeader(servers) {
			if time.Now().After(deadline) {
				shutdown()
				return nil
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Cleanup(shutdown)
	return servers
}

func hasLeader(servers []*server.Server) bool {
	for _, s := range servers {
		if s.JetStreamIsLeader() {
			return true
		}
	}
	return false
}

// Three livechat nodes, each on its own NATS server of a three-node
// JetStream cluster, buckets replicated three times.
func TestNATSClusterClaims(t *testing.T) {
	if testing.Short() {
		t.Skip("three-server cluster")
	}
	servers := runCluster(t)
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

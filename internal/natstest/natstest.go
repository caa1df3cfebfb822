// Package natstest runs real nats-servers with JetStream inside go test:
// one server, or a three-server JetStream cluster, on loopback ports.
// It is the one place the embedded-server set-up lives, so that the tests
// of every package that talks to NATS start it the same way.
package natstest

import (
	"fmt"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// RunServer starts an in-process nats-server with JetStream on a random
// loopback port, storing in dir (a fresh temporary directory if dir is
// ""). It is shut down when the test ends; shutting it down earlier is
// fine.
func RunServer(t testing.TB, dir string) *server.Server {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	return start(t, dir, -1)
}

// Restart shuts s down and starts a new server on the same store
// directory and client port, so that connections to s reconnect to it by
// themselves, as they would to a NATS node that was restarted.
func Restart(t testing.TB, s *server.Server) *server.Server {
	t.Helper()
	v, ok := started.Load(s)
	if !ok {
		t.Fatal("natstest: Restart of a server RunServer did not start")
	}
	p := v.(place)
	s.Shutdown()
	s.WaitForShutdown()
	return start(t, p.dir, p.port)
}

// started remembers where each server RunServer started stores and
// listens (once shut down, a server no longer says; and its StoreDir has
// "jetstream" added).
var started sync.Map // *server.Server → place

type place struct {
	dir  string
	port int
}

func start(t testing.TB, dir string, port int) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir,
		NoLog: true, NoSigs: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatal("nats-server not ready within 10 s")
	}
	started.Store(s, place{dir, s.Addr().(*net.TCPAddr).Port})
	t.Cleanup(func() {
		s.Shutdown()
		started.Delete(s)
	})
	return s
}

// Connect connects to url, reconnecting for ever and quickly, and closes
// the connection when the test ends.
func Connect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// RunCluster starts three in-process nats-servers forming one JetStream
// cluster over loopback routes, on route ports found free just before; it
// tries again with other ports if one was taken meanwhile.
func RunCluster(t testing.TB) []*server.Server {
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

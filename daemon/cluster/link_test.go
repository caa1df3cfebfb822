package cluster

import (
	"sync"
	"testing"
	"time"

	"github.com/livechat/livechat/internal/natstest"
)

// Room homes: of two nodes claiming one room, one is its home, and many
// joins racing on the home itself all find it there (they once raced to
// rewrite the key and some gave up).
func TestHomes(t *testing.T) {
	ns := natstest.RunServer(t, "")
	a := startNode(t, ns.ClientURL(), "a", 2*time.Second, nil)
	b := startNode(t, ns.ClientURL(), "b", 2*time.Second, nil)
	la, err := NewLink(ctxT(t), a.nc, a.node)
	if err != nil {
		t.Fatal(err)
	}
	lb, err := NewLink(ctxT(t), b.nc, b.node)
	if err != nil {
		t.Fatal(err)
	}
	homes := make(chan string, 40)
	var wg sync.WaitGroup
	for i := range 40 {
		l := la
		if i%2 == 1 {
			l = lb
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := l.Home("#race", true)
			if err != nil {
				t.Error(err)
			}
			homes <- h
		}()
	}
	wg.Wait()
	close(homes)
	seen := map[string]int{}
	for h := range homes {
		seen[h]++
	}
	if len(seen) != 1 || seen["a"]+seen["b"] != 40 {
		t.Fatalf("homes found: %v", seen)
	}
	// Released, the room is nobody's until claimed again.
	home := la
	if seen["b"] > 0 {
		home = lb
	}
	home.Release("#race")
	deadline := time.Now().Add(10 * time.Second)
	for {
		h, err := la.Home("#race", false)
		if err != nil {
			t.Fatal(err)
		}
		if h == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still homed on %q after its release", h)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

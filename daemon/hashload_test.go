package daemon

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/livechat/livechat/configs"
	"github.com/livechat/livechat/protocol"
)

// Issue 12: one connection looping REGISTER/LOGOUT created accounts
// without end. Quotas per connection and per address stop it.
func TestRegistrationQuotas(t *testing.T) {
	srv, addr := testServer(t, func(c *configs.Config, _ *Options) {
		c.Accounts.RegisterPerConn, c.Accounts.RegisterPerIP = 2, 3
	})
	a := dialFrom(t, addr, "127.0.0.2")
	for i := range 2 {
		a.send("REGISTER loop"+strconv.Itoa(i)+" long-enough-pw", "LOGOUT")
		a.expect(protocol.RPL_LOGGEDOUT)
	}
	a.send("REGISTER loop2 long-enough-pw")
	if m := a.expectFail("REGISTER", "RATE_LIMITED"); m.Param(2) != "loop2" {
		t.Fatalf("%q", m.String())
	}
	b := dialFrom(t, addr, "127.0.0.2")
	b.send("REGISTER loop3 long-enough-pw", "LOGOUT")
	b.expect(protocol.RPL_LOGGEDOUT)
	b.send("REGISTER loop4 long-enough-pw")
	b.expectFail("REGISTER", "RATE_LIMITED") // the address's 3 are used up
	// Another address is not affected.
	c := dialFrom(t, addr, "127.0.0.3")
	c.send("REGISTER other long-enough-pw")
	c.expect(protocol.RPL_LOGGEDIN)
	if n := srv.accounts.Count(); n != 4 {
		t.Fatalf("%d accounts, want 4", n)
	}
	for label, want := range map[string]float64{"quota_connection": 1, "quota_address": 1} {
		var m dto.Metric
		srv.metrics.registrations.WithLabelValues(label).Write(&m)
		if got := m.GetCounter().GetValue(); got != want {
			t.Errorf("registrations{result=%q} = %v, want %v", label, got, want)
		}
	}
}

// pingRTTs measures back-to-back PING round trips, at most n of them,
// until done is closed.
func pingRTTs(c *client, n int, done <-chan struct{}) []time.Duration {
	c.t.Helper()
	out := make([]time.Duration, 0, n)
	for range n {
		select {
		case <-done:
			return out
		default:
		}
		start := time.Now()
		c.sync()
		out = append(out, time.Since(start))
	}
	return out
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// Issue 12: attackers from many addresses looping REGISTER/LOGOUT and
// wrong LOGINs starved the hashing pool (the owner's LOGIN got
// TEMPORARILY_UNAVAILABLE) and the chat path (PING p95 167ms). With fair
// turns, a hashing pool smaller than the cores, quotas and throttles, the
// owner logs in and PINGs stay fast. The bounds asserted are generous; the
// logged figures are the measurement.
//
// LIVECHAT_HASHLOAD_FULL=1 measures the issue's own scene instead: 50
// attacking addresses and the default argon2id cost (for BENCHMARKS.md,
// not for CI: it takes seconds of both cores).
func TestHashingFloodStarvesNobody(t *testing.T) {
	full := os.Getenv("LIVECHAT_HASHLOAD_FULL") == "1"
	attackers := 30
	if full {
		attackers = 50
	}
	_, addr := testServer(t, func(c *configs.Config, _ *Options) {
		d := configs.Default()
		c.Accounts.RegisterPerConn, c.Accounts.RegisterPerIP = d.Accounts.RegisterPerConn, d.Accounts.RegisterPerIP
		// Real enough that hashing costs CPU (~ms), cheap enough for -race.
		c.Accounts.HashMemoryKiB, c.Accounts.HashIterations = 2048, 1
		if full {
			c.Accounts.HashMemoryKiB, c.Accounts.HashIterations = d.Accounts.HashMemoryKiB, d.Accounts.HashIterations
		}
	})
	owner := dialFrom(t, addr, "127.0.0.2")
	owner.send("REGISTER lockme long-enough-pw", "LOGOUT")
	owner.expect(protocol.RPL_LOGGEDOUT)
	bystander := connect(t, addr, "bystander")
	idle := pingRTTs(bystander, 500, nil)

	stop, attackOver := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	replies := map[string]int{}
	inFullSwing := make(chan struct{})
	total := 0
	for i := range attackers {
		a := dialFrom(t, addr, fmt.Sprintf("127.0.0.%d", 10+i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := time.Now().Add(3 * time.Second)
			for n := 0; n < 500 && time.Now().Before(deadline); n++ {
				select {
				case <-stop:
					return
				default:
				}
				if n%2 == 0 {
					a.send(fmt.Sprintf("REGISTER atk%d-%d long-enough-pw", i, n), "LOGOUT")
				} else {
					a.send("LOGIN lockme wrong-password")
				}
				m, err := a.tryRead()
				for err == nil && m.Command != "FAIL" && m.Command != protocol.RPL_LOGGEDOUT {
					m, err = a.tryRead()
				}
				if err != nil {
					return
				}
				key := m.Command
				if key == "FAIL" {
					key += " " + m.Param(0) + " " + m.Param(1)
				}
				mu.Lock()
				replies[key]++
				if total++; total == 2*attackers {
					close(inFullSwing)
				}
				mu.Unlock()
			}
		}()
	}
	go func() { wg.Wait(); close(attackOver) }()
	t.Cleanup(func() { close(stop); <-attackOver })
	select {
	case <-inFullSwing:
	case <-time.After(waitFor):
		t.Fatal("the attack never got going")
	}

	pings := make(chan []time.Duration)
	go func() { pings <- pingRTTs(bystander, 100000, attackOver) }()
	start := time.Now()
	owner.send("LOGIN lockme long-enough-pw")
	m := owner.read()
	for m.Command == "NOTICE" || m.Command == plain || m.Command == "NICK" {
		m = owner.read()
	}
	loginTook := time.Since(start)
	if m.Command != protocol.RPL_LOGGEDIN {
		t.Errorf("owner's LOGIN under attack: %q", m.String())
	}
	loaded := <-pings // the attack has run its course
	mu.Lock()
	t.Logf("attack replies %v", replies)
	mu.Unlock()
	t.Logf("owner LOGIN %v; PING idle p50 %v p99 %v; under attack (%d pings) p50 %v p99 %v max %v",
		loginTook, percentile(idle, .5), percentile(idle, .99), len(loaded), percentile(loaded, .5), percentile(loaded, .99), slices.Max(loaded))
	// Starvation, not speed: hashes starving the other goroutines hold
	// PINGs for whole hash times (hundreds of ms each, queued); the speed
	// figures are in the log line above and in docs/BENCHMARKS.md.
	if p99 := percentile(loaded, .99); p99 > 500*time.Millisecond {
		t.Errorf("PING p99 %v under attack, want < 500ms", p99)
	}
}

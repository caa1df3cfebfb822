package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// soakScenario churns clients against a server for a while and checks two
// things: every message reached every member present when it was sent, in
// order; and the server's goroutines and heap come back to where they
// were once everyone has left.
//
// Delivery is checked without a global clock, from the room order every
// member observes (the room actor sends each member its events in one
// order). A message counts as sent when its sender sees its own echo. Every
// pair of co-members (S, R) of a room stays together until one of them
// leaves (PART, KICK, QUIT); both see that leave at the same point of the
// room's order and each reports its half of the pair to the checker: S the
// range of sequence numbers it sent while R was there (k0, k1], R the run of
// S's sequence numbers it received. The leave is named the same way on both
// sides (leaver, room, PART/KICK reason or "quit") so the halves meet.
// Within a run, each number must follow the previous one: a gap is a lost
// message, a step back a reordering.
type soakScenario struct {
	clients        int
	duration       time.Duration
	rooms          int
	maxJoined      int
	think          time.Duration
	registerFrac   float64
	maxConnects    int
	metricsURL     string
	settle         time.Duration
	goroutineSlack int
	heapSlackMiB   int
	seed           uint64
}

func (s *soakScenario) defaultNickPrefix() string { return "sk" }

func (s *soakScenario) doc() string {
	return `-clients clients churn for -duration: connect (some REGISTER an account), join and part
rooms from a set of -rooms, talk, change nicks, kick (room ops do), quit and reconnect.
Checks that every message reached every member present, in order, and that with
-metrics the server's go_goroutines and go_memstats_heap_inuse_bytes return to their
baseline within -settle after everyone quit (RSS is reported, not checked). Exits 1 on
any violation. Needs echo-message and batch (or draft/chathistory) on the server.`
}

func (s *soakScenario) flags(fs *flag.FlagSet) {
	fs.IntVar(&s.clients, "clients", 500, "clients at once")
	fs.DurationVar(&s.duration, "duration", time.Minute, "how long the churn runs")
	fs.IntVar(&s.rooms, "rooms", 20, "rooms the clients use")
	fs.IntVar(&s.maxJoined, "max-joined", 3, "rooms one client is in at most")
	fs.DurationVar(&s.think, "think", 500*time.Millisecond, "mean pause between a client's actions (it reads meanwhile)")
	fs.Float64Var(&s.registerFrac, "register", 0.02, "fraction of connections that REGISTER an account")
	fs.IntVar(&s.maxConnects, "max-connects", 1_000_000, "bound on connections over the whole run")
	fs.StringVar(&s.metricsURL, "metrics", "", "the server's /metrics URL; /debug/pprof/heap?gc=1 next to it is used to force a GC when it exists")
	fs.DurationVar(&s.settle, "settle", time.Minute, "how long the server gets to return to its baseline after everyone quit")
	fs.IntVar(&s.goroutineSlack, "goroutine-slack", 50, "goroutines above the baseline still counted as back")
	fs.IntVar(&s.heapSlackMiB, "heap-slack-mib", 32, "heap in use above the baseline still counted as back (rooms keep some history)")
	fs.Uint64Var(&s.seed, "seed", 1, "random seed for the clients' choices")
}

func (s *soakScenario) validate(c *common) error {
	switch {
	case s.clients < 1 || s.rooms < 1 || s.maxJoined < 1:
		return errors.New("-clients, -rooms and -max-joined must be >= 1")
	case s.duration <= 0 || s.think <= 0 || s.settle < 0 || c.timeout <= 0:
		return errors.New("-duration, -think and -timeout must be > 0")
	case s.registerFrac < 0 || s.registerFrac > 1:
		return errors.New("-register must be within [0,1]")
	case s.maxConnects < s.clients:
		return errors.New("-max-connects must be >= -clients")
	}
	return nil
}

func (s *soakScenario) fdsNeeded() int { return s.clients + 16 }

// soakStats are the run's counters, shared by all clients.
type soakStats struct {
	connects, connectFails, registered, messages, deliveries atomic.Int64
	joins, parts, kicks, nicks, quits, stuck, checked        atomic.Int64
	violations                                               atomic.Int64
	ids                                                      atomic.Uint32

	connectErrs errorCounts

	mu      sync.Mutex
	samples []string
	pending map[pairKey]*pairHalves
}

func (st *soakStats) violation(format string, args ...any) {
	st.mu.Lock()
	st.violationLocked(format, args...)
	st.mu.Unlock()
}

func (s *soakScenario) run(ctx context.Context, c *common, rep *report) error {
	st := &soakStats{pending: map[pairKey]*pairHalves{}}
	base, baseErr := s.scrape(ctx)
	peak := base

	start := time.Now()
	end := start.Add(s.duration)
	hard := end.Add(c.timeout)
	ctx, cancel := context.WithDeadline(ctx, hard)
	defer cancel()
	prog := startProgress(c, "soak", func() string {
		return fmt.Sprintf("connects %d messages %d deliveries %d violations %d", st.connects.Load(), st.messages.Load(), st.deliveries.Load(), st.violations.Load())
	})
	scrapeDone := make(chan struct{})
	go func() { // peaks while the churn runs
		defer close(scrapeDone)
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for time.Now().Before(end) {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if m, err := s.scrape(ctx); err == nil {
					peak = peak.max(m)
				}
			}
		}
	}()
	var wg sync.WaitGroup
	for i := range s.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(s.seed, uint64(i)))
			for time.Now().Before(end) && ctx.Err() == nil && st.connects.Load() < int64(s.maxConnects) {
				s.session(ctx, c, st, rng, end)
			}
		}()
	}
	wg.Wait()
	<-scrapeDone
	prog.Stop()
	elapsed := time.Since(start)
	unverified := st.unmatched()

	rep.add("clients", s.clients)
	rep.add("elapsed_seconds", round3(elapsed.Seconds()))
	rep.add("connects", st.connects.Load())
	rep.add("connect_failures", st.connectFails.Load())
	if st.connectFails.Load() > 0 {
		rep.add("connect_failure_samples", st.connectErrs.sampleString())
	}
	rep.add("registered_accounts", st.registered.Load())
	rep.add("joins", st.joins.Load())
	rep.add("parts", st.parts.Load())
	rep.add("kicks", st.kicks.Load())
	rep.add("nick_changes", st.nicks.Load())
	rep.add("quits", st.quits.Load())
	rep.add("messages", st.messages.Load())
	rep.add("deliveries", st.deliveries.Load())
	rep.add("pairs_checked", st.checked.Load())
	rep.add("pairs_unverified", unverified)
	rep.add("stuck_actions", st.stuck.Load())
	rep.add("violations", st.violations.Load())
	if len(st.samples) > 0 {
		rep.add("violation_samples", strings.Join(st.samples, "; "))
	}
	var problems []string
	if v := st.violations.Load(); v > 0 {
		problems = append(problems, fmt.Sprintf("%d delivery violations", v))
	}
	if st.messages.Load() == 0 {
		problems = append(problems, "no message was sent")
	}
	if s.metricsURL != "" {
		if baseErr != nil {
			return fmt.Errorf("baseline scrape: %w", baseErr)
		}
		after, back := s.settleBack(ctx, base)
		rep.add("server_goroutines", ordered{{"baseline", base.goroutines}, {"peak", peak.goroutines}, {"end", after.goroutines}})
		rep.add("server_heap_inuse_mib", ordered{{"baseline", mib(base.heap)}, {"peak", mib(peak.heap)}, {"end", mib(after.heap)}})
		rep.add("server_rss_mib", ordered{{"baseline", mib(base.rss)}, {"peak", mib(peak.rss)}, {"end", mib(after.rss)}})
		rep.add("server_back_to_baseline", back)
		if !back {
			problems = append(problems, fmt.Sprintf("server not back to baseline within %v: goroutines %v -> %v, heap %.1f -> %.1f MiB",
				s.settle, base.goroutines, after.goroutines, mib(base.heap), mib(after.heap)))
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

func mib(b float64) float64 { return round3(b / (1 << 20)) }

// serverMetrics are the figures the soak compares before and after.
type serverMetrics struct{ goroutines, heap, rss float64 }

func (m serverMetrics) max(o serverMetrics) serverMetrics {
	return serverMetrics{max(m.goroutines, o.goroutines), max(m.heap, o.heap), max(m.rss, o.rss)}
}

func (s *soakScenario) scrape(ctx context.Context) (serverMetrics, error) {
	if s.metricsURL == "" {
		return serverMetrics{}, errors.New("no -metrics")
	}
	v, err := scrapeMetrics(ctx, s.metricsURL, "go_goroutines", "go_memstats_heap_inuse_bytes", "process_resident_memory_bytes")
	if err != nil {
		return serverMetrics{}, err
	}
	return serverMetrics{v[0], v[1], v[2]}, nil
}

// settleBack waits for the server to come back within the slack of its
// baseline, forcing a GC before each look when the server offers pprof.
func (s *soakScenario) settleBack(ctx context.Context, base serverMetrics) (serverMetrics, bool) {
	gcURL := strings.TrimSuffix(s.metricsURL, "/metrics") + "/debug/pprof/heap?gc=1"
	deadline := time.Now().Add(s.settle)
	for {
		fetch(ctx, gcURL) // best effort: a 404 just means no forced GC
		m, err := s.scrape(ctx)
		back := err == nil && m.goroutines <= base.goroutines+float64(s.goroutineSlack) &&
			m.heap <= base.heap+float64(s.heapSlackMiB<<20)
		if back || time.Now().After(deadline) || ctx.Err() != nil {
			return m, back
		}
		sleepCtx(ctx, time.Second)
	}
}

// session is one connection's life: connect, act until the run ends or it
// decides to quit, then quit.
func (s *soakScenario) session(ctx context.Context, c *common, st *soakStats, rng *rand.Rand, end time.Time) {
	cl := &soakClient{sc: s, st: st, rng: rng, id: st.ids.Add(1), prefix: c.nickPrefix, roomPrefix: c.roomPrefix,
		rooms: map[string]*soakRoom{}, seq: map[string]uint32{}, parts: map[string]int{}, kickReasons: map[string]int{}}
	st.connects.Add(1)
	if err := cl.connect(ctx, c, time.Now().Add(c.timeout)); err != nil {
		st.connectFails.Add(1)
		st.connectErrs.add(stepOf(err), err)
		sleepCtx(ctx, s.think) // do not spin on a refusing server
		return
	}
	defer cl.cn.close()
	cl.hard = end.Add(c.timeout)
	for time.Now().Before(end) && !cl.gone {
		if !cl.act() {
			break
		}
		cl.readFor(time.Duration(rng.Int64N(int64(2 * s.think))))
	}
	cl.quit()
}

// scrapeMetrics fetches a Prometheus text page and returns the named
// label-less series, in order.
func scrapeMetrics(ctx context.Context, url string, names ...string) ([]float64, error) {
	body, err := fetch(ctx, url)
	if err != nil {
		return nil, err
	}
	out := make([]float64, len(names))
	for i, name := range names {
		v, err := parseMetric(strings.NewReader(body), name)
		if err != nil {
			return nil, err
		}
		out[i] = float64(v)
	}
	return out, nil
}

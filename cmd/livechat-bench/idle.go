package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

type idleScenario struct {
	conns   int
	rooms   int
	hold    time.Duration
	settle  time.Duration
	metrics string
}

func (s *idleScenario) defaultNickPrefix() string { return "lcbi" }

func (s *idleScenario) doc() string {
	return `N connections, each registered (NICK/USER, wait 001) and joined to one of -rooms rooms
(wait 366), then held open for -hold while answering server PINGs.

Server memory is read before the first connection and after all have joined (after
-settle), and again at the end of the hold: from /proc/<pid>/status VmRSS with -pid,
otherwise process_resident_memory_bytes scraped from -metrics. Reported:
rss_per_conn_kib = (RSS_after - RSS_before) / joined connections. The CPU figures
(tool_*, server_* with -pid, machine/other) cover the hold phase only: what N idle
connections cost.`
}

func (s *idleScenario) flags(fs *flag.FlagSet) {
	fs.IntVar(&s.conns, "conns", 1000, "number of connections (N)")
	fs.IntVar(&s.rooms, "rooms", 0, "number of rooms the connections are spread over (0: N/100, at least 1)")
	fs.DurationVar(&s.hold, "hold", 10*time.Second, "how long to hold all connections open after they joined")
	fs.DurationVar(&s.settle, "settle", time.Second, "pause between the last join and the RSS_after reading")
	fs.StringVar(&s.metrics, "metrics", "", "server metrics `URL` (e.g. http://127.0.0.1:9100/metrics) for process_resident_memory_bytes, used when -pid is not given")
}

func (s *idleScenario) validate(c *common) error {
	if s.conns < 1 {
		return errors.New("-conns must be >= 1")
	}
	if s.rooms < 0 {
		return errors.New("-rooms must be >= 0")
	}
	if s.rooms == 0 {
		s.rooms = max(1, s.conns/100)
	}
	if s.hold < 0 || s.settle < 0 {
		return errors.New("-hold and -settle must be >= 0")
	}
	if c.timeout <= 0 {
		return errors.New("-timeout must be > 0")
	}
	return nil
}

func (s *idleScenario) fdsNeeded() int { return s.conns }

func (s *idleScenario) run(ctx context.Context, c *common, rep *report) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	src := rssSource{pid: c.pid, url: s.metrics}
	if !src.enabled() {
		stderrf("livechat-bench idle: no -pid or -metrics: server RSS will not be reported\n")
	}
	measure := func(what string) (int64, bool) {
		if !src.enabled() {
			return 0, false
		}
		v, err := src.measure(ctx)
		if err != nil {
			stderrf("livechat-bench idle: RSS %s: %v\n", what, err)
			return 0, false
		}
		return v, true
	}

	rssBefore, okBefore := measure("before")

	start := time.Now()
	setupDeadline := start.Add(c.timeout)
	hard := setupDeadline.Add(s.settle + s.hold + 30*time.Second)

	conns := make([]*ircConn, s.conns)
	var connsMu sync.Mutex
	var closing atomic.Bool
	closeAll := func() {
		connsMu.Lock()
		closing.Store(true)
		for _, cn := range conns {
			if cn != nil {
				cn.close()
			}
		}
		connsMu.Unlock()
	}
	watchdog := time.AfterFunc(time.Until(hard), func() { cancel(); closeAll() })
	defer watchdog.Stop()

	var errs errorCounts
	var joined, dropped atomic.Int64
	var readers sync.WaitGroup
	prog := startProgress(c, "idle setup", func() string {
		return fmt.Sprintf("joined %d/%d failed %d", joined.Load(), s.conns, errs.total())
	})
	setupCtx, setupCancel := context.WithDeadline(ctx, setupDeadline)
	parallel(setupCtx, s.conns, c.dialConc, func(i int) {
		cn, err := connectJoin(setupCtx, c.dialer, nickFor(c.nickPrefix, i), roomName(c.roomPrefix, i%s.rooms), setupDeadline, hard, 0)
		if err != nil {
			errs.add(stepOf(err), err)
			return
		}
		connsMu.Lock()
		conns[i] = cn
		if closing.Load() {
			cn.close()
		}
		connsMu.Unlock()
		joined.Add(1)
		readers.Add(1)
		go func() {
			defer readers.Done()
			cn.readLoop(nil)
			if !closing.Load() {
				dropped.Add(1)
			}
		}()
	})
	setupCancel()
	prog.Stop()
	setupDur := time.Since(start)
	nj := joined.Load()

	sleepCtx(ctx, s.settle)
	rssAfter, okAfter := measure("after")

	holdStart := time.Now()
	cpu := startCPU(c.pid)
	prog = startProgress(c, "idle hold", func() string {
		return fmt.Sprintf("open %d dropped %d", nj-dropped.Load(), dropped.Load())
	})
	sleepCtx(ctx, s.hold)
	cpu.stop()
	prog.Stop()
	holdDur := time.Since(holdStart)
	rssEnd, okEnd := measure("end")

	closeAll()
	readers.Wait()

	var pings int64
	for _, cn := range conns {
		if cn != nil {
			pings += cn.pings.Load()
		}
	}
	rep.add("conns", s.conns)
	rep.add("rooms", s.rooms)
	rep.add("joined", nj)
	rep.add("failed", errs.total())
	if errs.total() > 0 {
		rep.add("failures", errs.snapshot())
		rep.add("failure_samples", errs.sampleString())
	}
	rep.add("setup_seconds", round3(setupDur.Seconds()))
	rep.add("joins_per_sec", round3(float64(nj)/setupDur.Seconds()))
	rep.add("hold_seconds", round3(holdDur.Seconds()))
	rep.add("dropped_during_hold", dropped.Load())
	rep.add("pings_answered", pings)
	rep.add("rss_source", src.describe())
	kib := func(b int64) float64 { return round3(float64(b) / 1024) }
	if okBefore {
		rep.add("rss_before_kib", kib(rssBefore))
	}
	if okAfter {
		rep.add("rss_after_kib", kib(rssAfter))
	}
	if okEnd {
		rep.add("rss_end_kib", kib(rssEnd))
	}
	if okBefore && okAfter && nj > 0 {
		rep.add("rss_per_conn_kib", round3(float64(rssAfter-rssBefore)/1024/float64(nj)))
	}
	if okBefore && okEnd && nj > 0 {
		rep.add("rss_end_per_conn_kib", round3(float64(rssEnd-rssBefore)/1024/float64(nj)))
	}
	// CPU during the hold: what N idle connections cost the server (and us).
	cpu.add(rep, 0, "")
	if nj != int64(s.conns) {
		return fmt.Errorf("only %d of %d connections joined (%s)", nj, s.conns, errs.sampleString())
	}
	return nil
}

// sleepCtx sleeps for d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

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

type stormScenario struct {
	conns       int
	concurrency int
	rooms       int
	connTimeout time.Duration
}

func (s *stormScenario) defaultNickPrefix() string { return "lcbs" }

func (s *stormScenario) doc() string {
	return `-conns connections, at most -concurrency at a time, each doing
connect -> NICK/USER -> 001 -> JOIN -> 366 -> QUIT (then waiting for the server's
ERROR/close). Reports completed connections per second over the whole run, failures
by step, and connect-to-001 and connect-to-366 latency percentiles. Each connection
has -conn-timeout for all its steps; the run as a whole is bounded by -timeout.`
}

func (s *stormScenario) flags(fs *flag.FlagSet) {
	fs.IntVar(&s.conns, "conns", 2000, "total connections")
	fs.IntVar(&s.concurrency, "concurrency", 64, "connections in flight at once")
	fs.IntVar(&s.rooms, "rooms", 8, "rooms the connections join (round robin)")
	fs.DurationVar(&s.connTimeout, "conn-timeout", 10*time.Second, "deadline for one connection's whole cycle")
}

func (s *stormScenario) validate(c *common) error {
	switch {
	case s.conns < 1:
		return errors.New("-conns must be >= 1")
	case s.concurrency < 1:
		return errors.New("-concurrency must be >= 1")
	case s.rooms < 1:
		return errors.New("-rooms must be >= 1")
	case s.connTimeout <= 0 || c.timeout <= 0:
		return errors.New("-conn-timeout and -timeout must be > 0")
	}
	return nil
}

func (s *stormScenario) fdsNeeded() int { return s.concurrency * 2 }

func (s *stormScenario) run(ctx context.Context, c *common, rep *report) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	var errs errorCounts
	var done atomic.Int64
	var mu sync.Mutex
	h001, h366 := &Histogram{}, &Histogram{}

	var lastDone int64
	prog := startProgress(c, "storm", func() string {
		d := done.Load()
		rate := d - lastDone
		lastDone = d
		return fmt.Sprintf("completed %d/%d (%d/s) failed %d", d, s.conns, rate, errs.total())
	})
	cpu := startCPU(c.pid)
	start := time.Now()
	parallel(ctx, s.conns, s.concurrency, func(i int) {
		t0 := time.Now()
		deadline := t0.Add(s.connTimeout)
		if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
			deadline = dl
		}
		cn, err := connectRegister(ctx, c.dialer, nickFor(c.nickPrefix, i), deadline, 0)
		if err != nil {
			errs.add(stepOf(err), err)
			return
		}
		defer cn.close()
		t1 := time.Now()
		if err := cn.join(roomName(c.roomPrefix, i%s.rooms), deadline); err != nil {
			errs.add(stepOf(err), err)
			return
		}
		t2 := time.Now()
		if err := cn.quit(deadline); err != nil {
			errs.add(stepOf(err), err)
			return
		}
		mu.Lock()
		h001.Record(int64(t1.Sub(t0)))
		h366.Record(int64(t2.Sub(t0)))
		mu.Unlock()
		done.Add(1)
	})
	elapsed := time.Since(start)
	cpu.stop()
	prog.Stop()

	completed := done.Load()
	failed := errs.total()
	notRun := int64(s.conns) - completed - failed
	rep.add("conns", s.conns)
	rep.add("concurrency", s.concurrency)
	rep.add("completed", completed)
	rep.add("failed", failed)
	rep.add("not_started", notRun)
	if failed > 0 {
		rep.add("failures", errs.snapshot())
		rep.add("failure_samples", errs.sampleString())
	}
	rep.add("elapsed_seconds", round3(elapsed.Seconds()))
	rep.add("completed_per_sec", round3(float64(completed)/elapsed.Seconds()))
	rep.add("connect_to_001_us", latencySummary(h001))
	rep.add("connect_to_366_us", latencySummary(h366))
	cpu.add(rep, completed, "conn")
	if completed == 0 {
		return fmt.Errorf("no connection completed (%s)", errs.sampleString())
	}
	if notRun > 0 {
		return fmt.Errorf("timed out after %v with %d connections not started", c.timeout, notRun)
	}
	return nil
}

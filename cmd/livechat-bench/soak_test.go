package main

import (
	"context"
	"net"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/livechat/livechat/configs"
	"github.com/livechat/livechat/daemon"
)

// TestSoakAgainstDaemon runs a short soak against an in-process livechat
// daemon (the fake server lacks echo-message and rooms' ordering, which the
// soak's checks rely on).
func TestSoakAgainstDaemon(t *testing.T) {
	if testing.Short() {
		t.Skip("a few seconds of churn")
	}
	cfg := configs.Default()
	cfg.Listen.TCP = "127.0.0.1:0"
	cfg.Metrics.Listen = ""
	cfg.Accounts.Store = "memory"
	cfg.Accounts.HashMemoryKiB, cfg.Accounts.HashIterations = 64, 1
	cfg.Limits.Exempt = []string{"127.0.0.0/8"}
	cfg.Rooms.IdleTTL = time.Second
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	srv := daemon.New(&cfg, daemon.Options{Logger: zerolog.Nop()})
	l, err := net.Listen("tcp", cfg.Listen.TCP)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(l, "tcp")
	}()
	ops := httptest.NewServer(srv.OpsHandler(true))
	t.Cleanup(func() {
		ops.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-served
	})

	// The daemon shares this process, so its goroutine count includes the
	// soak's own clients until they are gone; the slack covers the test's.
	r := runBench(t, 0, "soak", "-addr", l.Addr().String(), "-metrics", ops.URL+"/metrics", "-sources", "4",
		"-clients", "50", "-duration", "3s", "-rooms", "5", "-think", "100ms", "-register", "0.1",
		"-settle", "15s", "-timeout", "20s", "-quiet")
	for _, k := range []string{"messages", "deliveries", "pairs_checked", "connects", "joins", "parts", "nick_changes", "quits"} {
		if num(t, r, k) <= 0 {
			t.Errorf("%s = %v, want some", k, num(t, r, k))
		}
	}
	if num(t, r, "violations") != 0 || num(t, r, "connect_failures") != 0 {
		t.Errorf("soak: %s", r.raw)
	}
	if back, _ := r.Results["server_back_to_baseline"].(bool); !back {
		t.Errorf("server not back to baseline: %s", r.raw)
	}
}

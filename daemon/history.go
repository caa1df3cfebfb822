package daemon

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/livechat/livechat/configs"
	"github.com/livechat/livechat/daemon/historystore"
	"github.com/livechat/livechat/rooms"
)

// HistoryLog is a rooms.Log the server can close: Close commits what is
// pending, so a graceful shutdown loses nothing.
type HistoryLog interface {
	rooms.Log
	Close() error
}

// OpenHistory opens the log history.store names. A file that another
// daemon holds, or that a newer livechatd wrote, refuses the start; any
// other failure (a read-only or full disk, a damaged file) is logged and
// the server starts with history unavailable, served from memory, until
// the store recovers by itself.
func OpenHistory(cfg *configs.Config, log zerolog.Logger) (HistoryLog, error) {
	h := cfg.History
	if h.Store == "memory" {
		return nil, nil // New makes the memory log
	}
	sink := &historySink{log: log}
	opts := historystore.Options{
		SyncInterval: h.SyncInterval, SyncAlways: h.Sync == "always",
		MaxAge: h.MaxAge, MaxPerTarget: h.MaxMessages, MaxBytes: int64(h.MaxMegabytes) << 20,
		Hooks: sink.hooks(),
	}
	path := filepath.Join(cfg.DataDir, "history.db")
	st, err := historystore.Open(path, opts)
	switch {
	case errors.Is(err, historystore.ErrInUse), errors.Is(err, historystore.ErrNewerSchema):
		return nil, fmt.Errorf("history store %s: %w", path, err)
	case err != nil:
		log.Error().Err(err).Str("path", path).Msg("history store unavailable; chat goes on with history in memory, retrying")
		return &fileHistory{Store: historystore.OpenResilient(path, opts), sink: sink, openFailed: true}, nil
	}
	return &fileHistory{Store: st, sink: sink}, nil
}

// fileHistory is the durable log with the sink its hooks report to.
type fileHistory struct {
	*historystore.Store
	sink       *historySink
	openFailed bool // at start, before there were metrics to count it in
}

// historySink turns the store's reports into metrics and log lines; the
// metrics arrive when the server that owns them is built.
type historySink struct {
	log zerolog.Logger
	m   atomic.Pointer[historyMetrics]
}

func (k *historySink) hooks() historystore.Hooks {
	return historystore.Hooks{
		Committed: func(events int, _ int64, took time.Duration) {
			if m := k.m.Load(); m != nil {
				m.written.Add(float64(events))
				m.commit.Observe(took.Seconds())
			}
		},
		Failed: func(op string, err error) {
			if m := k.m.Load(); m != nil {
				m.errors.WithLabelValues(op).Inc()
			}
			k.log.Error().Err(err).Str("op", op).Msg("history store failed; chat goes on from memory")
		},
		Retained: func(deleted int) {
			if m := k.m.Load(); m != nil {
				m.retained.Add(float64(deleted))
			}
		},
	}
}

// historyCloseWait bounds the final commit at shutdown. It is its own
// budget, not what is left of shutdown_timeout: slow clients must not cost
// the history, but a disk that hangs must not hang the exit either.
const historyCloseWait = 30 * time.Second

// closeHistory commits what is pending.
func closeHistory(h HistoryLog) error {
	ctx, cancel := context.WithTimeout(context.Background(), historyCloseWait)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- h.Close() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("history store: %w before everything pending was committed", ctx.Err())
	}
}

// memHistory is the history.store: memory log.
type memHistory struct{ *rooms.MemLog }

func (memHistory) Close() error { return nil }

// sweepEvery is how often dormant rooms whose history expired are
// forgotten.
const sweepEvery = time.Minute

// historyMetrics are the history store's collectors; the file store
// reports through its historySink.
type historyMetrics struct {
	written  prometheus.Counter
	commit   prometheus.Histogram
	retained prometheus.Counter
	errors   *prometheus.CounterVec
}

// historyStats are what the file store can say about itself at a scrape.
type historyStats interface {
	StoredBytes() int64
	DiskBytes() int64
	Available() bool
}

func newHistoryMetrics(reg *prometheus.Registry, srv *Server) *historyMetrics {
	m := &historyMetrics{
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livechat_history_events_written_total", Help: "History events committed to the store.",
		}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "livechat_history_commit_seconds", Help: "Time to commit one group of history events (write and fsync).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		retained: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livechat_history_retention_deleted_total", Help: "History events deleted by retention (age, count per target, store size).",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "livechat_history_errors_total", Help: "History store errors, by operation.",
		}, []string{"op"}),
	}
	for _, op := range []string{"open", "commit", "drop", "retention", "scrub", "query", "sync"} {
		m.errors.WithLabelValues(op)
	}
	stat := func(f func(historyStats) float64, memory float64) func() float64 {
		return func() float64 {
			if st, ok := srv.history.(historyStats); ok {
				return f(st)
			}
			return memory
		}
	}
	reg.MustRegister(m.written, m.commit, m.retained, m.errors,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "livechat_rooms_dormant", Help: "Rooms remembered for their history or owner without an actor (bounded by limits.max_rooms).",
		}, func() float64 { return float64(srv.rooms.Dormant()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "livechat_history_available", Help: "1 when the history store is writable and answering; 0 while history is served from memory only.",
		}, stat(func(st historyStats) float64 {
			if st.Available() {
				return 1
			}
			return 0
		}, 1)),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "livechat_history_stored_bytes", Help: "Bytes of history events and their index (what history.max_megabytes bounds).",
		}, stat(func(st historyStats) float64 { return float64(st.StoredBytes()) }, 0)),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "livechat_history_disk_bytes", Help: "Bytes of the history file in use on disk.",
		}, stat(func(st historyStats) float64 { return float64(st.DiskBytes()) }, 0)))
	return m
}

// historyFailed logs and counts a history write the store refused; the
// chat goes on.
func (s *Server) historyFailed(err error) {
	s.metrics.history.errors.WithLabelValues("sync").Inc()
	s.log.Error().Err(err).Msg("history write failed; chat goes on from memory")
}

// sweepRooms forgets dormant rooms whose history expired, until stop.
func (s *Server) sweepRooms(stop <-chan struct{}) {
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if err := s.rooms.Sweep(); err != nil {
				s.log.Warn().Err(err).Msg("could not sweep expired rooms")
			}
		case <-stop:
			return
		}
	}
}

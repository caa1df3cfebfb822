package daemon

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/livechat/livechat/rooms"
)

// HistoryLog is a rooms.Log the server can close: Close commits what is
// pending, so a graceful shutdown loses nothing.
type HistoryLog interface {
	rooms.Log
	Close() error
}

// memHistory is the history.store: memory log.
type memHistory struct{ *rooms.MemLog }

func (memHistory) Close() error { return nil }

// sweepEvery is how often dormant rooms whose history expired are
// forgotten.
const sweepEvery = time.Minute

// historyMetrics are the history store's collectors; the store reports
// through Server.historyHooks.
type historyMetrics struct {
	written   prometheus.Counter
	commit    prometheus.Histogram
	retained  prometheus.Counter
	errors    *prometheus.CounterVec
	available prometheus.Gauge
}

func newHistoryMetrics(reg *prometheus.Registry) *historyMetrics {
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
		available: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "livechat_history_available", Help: "1 when the history store is writable and answering, 0 when history is served from memory only.",
		}),
	}
	for _, op := range []string{"open", "commit", "query", "retention", "dropped"} {
		m.errors.WithLabelValues(op)
	}
	m.available.Set(1)
	reg.MustRegister(m.written, m.commit, m.retained, m.errors, m.available)
	return m
}

// historyFailed logs and counts a history write the store refused; the
// chat goes on.
func (s *Server) historyFailed(err error) {
	s.metrics.history.errors.WithLabelValues("commit").Inc()
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

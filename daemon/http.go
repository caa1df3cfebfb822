package daemon

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// OpsHandler serves the operator endpoints: /metrics, /healthz (the
// process is alive), /readyz (client listeners are accepting) and, when
// enabled, /debug/pprof.
func (s *Server) OpsHandler(pprofOn bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{Registry: s.registry}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if ready, why := s.readiness(); !ready {
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	if pprofOn {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// Ready reports whether the server is accepting clients.
func (s *Server) Ready() bool {
	ready, _ := s.readiness()
	return ready
}

func (s *Server) readiness() (ready bool, why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.draining:
		return false, "shutting down"
	case len(s.listeners) == 0:
		return false, "no listener accepting clients yet"
	case s.cluster != nil && !s.cluster.Connected():
		return false, "cut off from the cluster (NATS unreachable or lease lost)"
	}
	return true, ""
}

// ServeOps serves the operator endpoints on l until ctx is done, then
// gives in-flight requests a moment, closes every connection (kept-alive
// ones too, so a stopped daemon stops answering) and returns nil.
// Requests are bounded in how long their headers may take and how long a
// kept-alive connection may idle; there is no write timeout because
// /debug/pprof/profile streams for as long as it was asked to.
func (s *Server) ServeOps(ctx context.Context, l net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute}
	stopped, closed := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(closed)
		select {
		case <-ctx.Done():
		case <-stopped: // Serve failed on its own
			return
		}
		grace, cancel := context.WithTimeout(context.Background(), opsGrace)
		defer cancel()
		srv.Shutdown(grace)
		srv.Close()
	}()
	err := srv.Serve(l) // returns as soon as Shutdown starts...
	close(stopped)
	<-closed // ...so wait for the connections to be closed
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// opsGrace is how long a stopping operator endpoint lets a scrape finish.
const opsGrace = time.Second

package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/livechat/livechat/configs"
	"github.com/livechat/livechat/daemon"
	"github.com/livechat/livechat/daemon/wslisten"
	"github.com/livechat/livechat/web"
)

// serve runs the daemon until SIGINT or SIGTERM; SIGHUP reloads.
func serve(cfg *configs.Config, log zerolog.Logger, load func() (*configs.Config, error)) error {
	// Catch signals before starting: SIGHUP's default action would kill a
	// daemon that is reloaded while it is still binding its listeners.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	d, err := start(cfg, log, load)
	if err != nil {
		return err
	}
	sd := newNotifier(log)
	sd.ready()
	watchdogStop := make(chan struct{})
	defer close(watchdogStop)
	sd.watchdog(d.srv.Ready, watchdogStop)
	go trimMemory(log, watchdogStop) // process-wide, so here and not in start
	for sig := range sigs {
		if sig == syscall.SIGHUP {
			sd.reloading()
			d.reload() // logs its own outcome; a failed reload changes nothing
			sd.reloaded()
			continue
		}
		sd.stopping()
		timeout := d.config().ShutdownTimeout
		log.Info().Str("signal", sig.String()).Dur("timeout", timeout).Msg("shutting down")
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- d.stop(ctx) }()
		for {
			select {
			case err := <-done:
				if err != nil {
					log.Warn().Err(err).Msg("some clients were cut off at the shutdown deadline")
				}
				log.Info().Msg("stopped")
				return nil
			case sig := <-sigs:
				// A second SIGINT/SIGTERM is an operator who will not wait.
				if sig != syscall.SIGHUP {
					log.Warn().Str("signal", sig.String()).Msg("second signal: cutting the drain short")
					cancel()
				}
			}
		}
	}
	return nil
}

// instance is a running daemon: the server, its client listeners and the
// operator HTTP endpoint. start makes one; tests drive it in-process.
type instance struct {
	srv     *daemon.Server
	log     zerolog.Logger
	load    func() (*configs.Config, error)
	certs   *certStore // nil without a TLS listener
	control *control   // the backup socket; nil without durable stores
	reloads *prometheus.CounterVec
	addrs   addrs

	clients []net.Listener
	webs    []*wslisten.Listener // the WebSocket ones among clients, for reloads
	serving sync.WaitGroup       // one per client listener
	ops     net.Listener         // nil when metrics.listen is off
	opsStop context.CancelFunc
	opsDone chan struct{}

	mu  sync.Mutex // serializes reloads; guards cfg
	cfg *configs.Config
}

// addrs are the bound addresses, "" for a listener that is off. With port
// 0 in the config they show the port the kernel chose.
type addrs struct {
	TCP, TLS, WebSocket, WebSocketTLS, Metrics string
}

// start binds every listener, opens the durable stores and starts
// serving. Everything is bound and opened before any client is accepted,
// so a bad address, certificate or data_dir fails the start without
// having let anyone in, and leaves nothing open or locked.
func start(cfg *configs.Config, log zerolog.Logger, load func() (*configs.Config, error)) (d *instance, err error) {
	reg := prometheus.NewRegistry()
	log.Info().Str("build", readBuildInfo().String()).Msg("starting")
	d = &instance{log: log, load: load, cfg: cfg, reloads: newReloadMetrics(reg), opsDone: make(chan struct{})}
	registerOpsMetrics(reg, d)

	var bound []net.Listener
	defer func() {
		if err != nil {
			for _, l := range bound {
				l.Close()
			}
		}
	}()
	listen := func(key, addr string) (net.Listener, error) {
		bind := func(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }
		if key == "listen.tcp" || key == "listen.tls" {
			bind = daemon.ListenTCP // IRC clients: TCP keepalive set once, on the listening socket
		}
		l, err := bind(addr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		bound = append(bound, l)
		return l, nil
	}

	var tcpL, tlsL, wsL, wssL net.Listener
	if cfg.Listen.TCP != "" {
		if tcpL, err = listen("listen.tcp", cfg.Listen.TCP); err != nil {
			return nil, err
		}
		d.addrs.TCP = tcpL.Addr().String()
	}
	if cfg.Listen.TLS != "" || cfg.Listen.WebSocketTLS != "" {
		d.certs = newCertStore(reg)
		leaf, err := d.certs.load(cfg.Listen.TLSCert, cfg.Listen.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("listen.tls_cert: %w", err)
		}
		logCert(log, leaf, cfg.Listen.TLSCert, "TLS certificate loaded")
	}
	// listenTLS binds addr and serves TLS on it with tc, whose
	// certificate is the live one.
	listenTLS := func(key, addr string, tc *tls.Config) (net.Listener, string, error) {
		l, err := listen(key, addr)
		if err != nil {
			return nil, "", err
		}
		return tls.NewListener(l, tc), l.Addr().String(), nil
	}
	if cfg.Listen.TLS != "" {
		if tlsL, d.addrs.TLS, err = listenTLS("listen.tls", cfg.Listen.TLS, d.certs.ircTLSConfig()); err != nil {
			return nil, err
		}
	}
	if cfg.Listen.WebSocket != "" {
		if wsL, err = listen("listen.websocket", cfg.Listen.WebSocket); err != nil {
			if cfg.Listen.WebSocket != configs.DefaultWebSocket {
				return nil, err
			}
			// Only the built-in page address: a newcomer's second daemon,
			// or another program on 8080, must not stop the chat.
			log.Warn().Err(err).Msg("the chat page is not served: its default address is taken; set listen.websocket (--ws-listen) to another, or \"\" to turn it off")
			wsL, err = nil, nil
		}
	}
	if wsL != nil {
		d.addrs.WebSocket = wsL.Addr().String()
	}
	if cfg.Listen.WebSocketTLS != "" {
		if wssL, d.addrs.WebSocketTLS, err = listenTLS("listen.websocket_tls", cfg.Listen.WebSocketTLS, d.certs.tlsConfig()); err != nil {
			return nil, err
		}
	}
	if cfg.Metrics.Listen != "" {
		if d.ops, err = listen("metrics.listen", cfg.Metrics.Listen); err != nil {
			return nil, err
		}
		d.addrs.Metrics = d.ops.Addr().String()
	}

	cloakKey, err := daemon.OpenCloakKey(cfg)
	if err != nil {
		return nil, err
	}
	// The durable stores last, once every address is bound: they lock
	// their files, and a start that fails must let go of them.
	opts := daemon.Options{Logger: log, Metrics: reg, CloakKey: cloakKey}
	if cfg.Cluster.Enabled() {
		// A cluster node keeps accounts, rooms and history in JetStream,
		// shared with the other nodes: no local stores to open.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cl, err := daemon.JoinCluster(ctx, cfg, log)
		cancel()
		if err != nil {
			return nil, err
		}
		log.Info().Str("node", cl.Node.Name()).Str("nats", cfg.Cluster.NATSURLs).Msg("joined the cluster")
		opts.Cluster = cl
		d.srv = daemon.New(cfg, opts)
	} else {
		accts, err := daemon.OpenAccountStore(cfg)
		if err != nil {
			return nil, err // names the file, and says when another daemon holds it
		}
		roomStore, err := daemon.OpenRoomStore(cfg)
		if err != nil {
			accts.Close()
			return nil, err
		}
		history, err := daemon.OpenHistory(cfg, log)
		if err != nil {
			accts.Close()
			roomStore.Close()
			return nil, err
		}
		banStore, err := daemon.OpenBanStore(cfg)
		if err != nil {
			accts.Close()
			roomStore.Close()
			history.Close()
			return nil, err
		}
		opts.Accounts, opts.Rooms, opts.History, opts.Bans = accts, roomStore, history, banStore
		d.srv = daemon.New(cfg, opts)
		d.control = listenControl(cfg.DataDir, log, map[string]any{"accounts.db": accts, "rooms.db": roomStore, "history.db": history})
	}
	// The operator endpoint first: a probe during startup then sees
	// /readyz 503 until the client listeners are serving.
	if d.ops != nil {
		var ctx context.Context
		ctx, d.opsStop = context.WithCancel(context.Background())
		go func() {
			defer close(d.opsDone)
			if err := d.srv.ServeOps(ctx, d.ops, d.srv.OpsHandler(cfg.Metrics.PProf)); err != nil {
				log.Error().Err(err).Msg("operator HTTP listener failed")
			}
		}()
		log.Info().Str("addr", d.addrs.Metrics).Msg("serving /metrics, /healthz, /readyz")
	} else {
		close(d.opsDone)
	}
	for _, c := range []struct {
		l         net.Listener
		transport string
		addr      string
	}{
		{tcpL, "tcp", d.addrs.TCP},
		{tlsL, "tls", d.addrs.TLS},
		{wsL, "websocket", d.addrs.WebSocket},
		{wssL, "websocket_tls", d.addrs.WebSocketTLS},
	} {
		if c.l == nil {
			continue
		}
		if c.l == wsL || c.l == wssL {
			// HTTP is served from here on; the daemon accepts the
			// upgraded connections like any others.
			wl := wslisten.New(c.l, webSocketOptions(cfg, log, d.srv))
			d.webs = append(d.webs, wl)
			c.l = wl
		}
		d.clients = append(d.clients, c.l)
		d.serving.Add(1)
		go func() {
			defer d.serving.Done()
			if err := d.srv.Serve(c.l, c.transport); err != nil && !errors.Is(err, net.ErrClosed) {
				log.Error().Err(err).Str("transport", c.transport).Msg("listener failed")
			}
		}()
		ev := log.Info().Str("addr", c.addr).Str("transport", c.transport)
		switch c.transport {
		case "websocket":
			ev = ev.Str("page", "http://"+c.addr+"/")
		case "websocket_tls":
			ev = ev.Str("page", "https://"+c.addr+"/")
		}
		ev.Msg("accepting clients")
	}
	logWhereToGo(log, d.addrs)
	return d, nil
}

// logWhereToGo tells a newcomer, in one line each, where to point a
// browser and a terminal.
func logWhereToGo(log zerolog.Logger, a addrs) {
	host := func(addr string) (string, string) {
		h, p, err := net.SplitHostPort(addr)
		if err != nil {
			return addr, ""
		}
		if ip := net.ParseIP(h); ip != nil && ip.IsUnspecified() {
			h = "localhost" // bound to every address: this machine is one of them
		}
		return h, p
	}
	if a.WebSocket != "" {
		h, p := host(a.WebSocket)
		log.Info().Msg("chat in a browser: open http://" + net.JoinHostPort(h, p) + "/")
	}
	if a.TCP != "" {
		h, p := host(a.TCP)
		log.Info().Msg("chat in a terminal: nc " + h + " " + p + "  (or point an IRC client at " + net.JoinHostPort(h, p) + ")")
	}
}

// config returns the configuration in force.
func (d *instance) config() *configs.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// shutdown drains the clients: it stops accepting, tells every client,
// lets their output flush and returns when they are gone or ctx is done.
// The operator endpoint keeps answering meanwhile, /readyz with 503, so a
// load balancer sees the drain.
func (d *instance) shutdown(ctx context.Context) error {
	d.control.close() // before the stores close
	err := d.srv.Shutdown(ctx)
	for _, l := range d.clients {
		l.Close() // Shutdown closed those already serving; this catches the rest
	}
	d.serving.Wait()
	return err
}

// closeOps stops the operator endpoint; the last step of a stop.
func (d *instance) closeOps() {
	if d.opsStop != nil {
		d.opsStop()
	}
	<-d.opsDone
}

// stop drains the clients within ctx, then closes the operator endpoint.
func (d *instance) stop(ctx context.Context) error {
	err := d.shutdown(ctx)
	d.closeOps()
	return err
}

// webSocketOptions configures both WebSocket listeners from the validated
// config; srv counts the upgrades they refuse.
func webSocketOptions(cfg *configs.Config, log zerolog.Logger, srv *daemon.Server) wslisten.Options {
	proxies, _ := cfg.WebSocket.TrustedProxyPrefixes() // validated
	return wslisten.Options{
		AllowedOrigins: cfg.WebSocket.AllowedOrigins,
		Hostnames:      cfg.WebSocket.Hostnames,
		TrustedProxies: proxies,
		Page:           web.Handler(),
		Admit:          srv.AdmitHTTP,
		Refused:        srv.CountRefusal,
		Log:            log,
	}
}

// Package daemon runs livechat: listeners, one Session per connection, the
// command handlers that turn protocol lines into room requests, the nick
// registry, metrics and the operator HTTP endpoints.
package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/livechat/livechat/configs"
	"github.com/livechat/livechat/daemon/accounts"
	"github.com/livechat/livechat/daemon/bans"
	"github.com/livechat/livechat/daemon/roomstore"
	"github.com/livechat/livechat/rooms"
)

// Version is reported in 002/004 and logs.
const Version = "livechat-0.1.0"

// Options are the parts of a Server that are not configuration.
type Options struct {
	Logger zerolog.Logger
	// Metrics is where the server registers its collectors; nil means a
	// fresh registry (so tests never collide).
	Metrics *prometheus.Registry
	// RoomHooks.BeforeRequest lets tests inject faults into rooms.
	RoomHooks rooms.Hooks
	// Accounts is the account store (see OpenAccountStore); nil means an
	// in-memory store. The server closes it on Shutdown.
	Accounts accounts.Store
	// Rooms keeps claimed rooms (see OpenRoomStore); nil keeps them in
	// memory. The server closes it on Shutdown.
	Rooms RoomStore
	// History keeps room and private history (see OpenHistory); nil keeps
	// it in memory. The server closes it on Shutdown, after the rooms.
	History HistoryLog
	// Bans keeps server bans, KLINE and DLINE (see OpenBanStore); nil
	// keeps them in memory. In a cluster the cluster's bucket is used.
	Bans bans.Store
	// CloakKey keys host cloaks when cloak.secret is unset (see
	// OpenCloakKey); nil means a random key for this process.
	CloakKey []byte
	// Cluster makes this server a node of a cluster (see JoinCluster):
	// rooms, nicks, accounts and history are then shared with the other
	// nodes. nil: a single node. The server leaves the cluster on Shutdown.
	Cluster *ClusterNode
}

// RoomStore is a rooms.Store the server can close.
type RoomStore interface {
	rooms.Store
	Close() error
}

// Server is a running chat daemon. Create it with New, start listeners with
// Serve, stop it with Shutdown.
type Server struct {
	cfg        atomic.Pointer[configs.Config]
	log        zerolog.Logger
	rooms      *rooms.Registry
	nicks      *nickRegistry
	monitors   *monitorRegistry
	whowas     *whowasRing
	accounts   *accounts.Service
	accountCfg accounts.Config
	roomStore  RoomStore
	bans       *bans.Set
	banStore   bans.Store
	metrics    *metrics
	iplimit    *ipLimiter
	registry   *prometheus.Registry
	created    time.Time
	cloakKey   []byte
	tlsPort    atomic.Int32 // the TLS listener's port, for STS (see stsValue)

	nextID   atomic.Uint64
	ids      *rooms.IDs // message and batch ids, shared with rooms
	privates *privateHistory
	history  HistoryLog
	cluster  *ClusterNode  // nil on a single node
	stopBG   chan struct{} // stops background sweeps on Shutdown
	stopOnce sync.Once     // Shutdown may run twice; the stores close once
	workers  workerPool

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	sessions  map[*Session]struct{}
	byID      map[uint64]*Session // the same sessions, by connection id
	// byAccount holds the logged-in sessions by folded account name, so
	// that finding an account's connections (devices, read markers,
	// redaction, LOGOUT ALL) does not walk every session.
	byAccount map[string]map[*Session]struct{}
	draining  bool
	sessWG    sync.WaitGroup
}

// New builds a server from a validated config.
func New(cfg *configs.Config, opts Options) *Server {
	s := &Server{
		log:       opts.Logger,
		nicks:     newNickRegistry(),
		monitors:  newMonitorRegistry(),
		created:   time.Now(),
		listeners: make(map[net.Listener]struct{}),
		sessions:  make(map[*Session]struct{}),
		byID:      make(map[uint64]*Session),
		byAccount: make(map[string]map[*Session]struct{}),
		cluster:   opts.Cluster,
		workers:   newWorkerPool(workerIdle),
		ids:       rooms.NewIDs(),
		stopBG:    make(chan struct{}),
		cloakKey:  opts.CloakKey,
	}
	if opts.Cluster != nil && opts.Cluster.CloakKey != nil {
		s.cloakKey = opts.Cluster.CloakKey // the same cloaks on every node
	}
	if s.cloakKey == nil {
		s.cloakKey = randomCloakKey()
	}
	s.cfg.Store(cfg)
	s.iplimit = newIPLimiter(s.Config)
	s.whowas = &whowasRing{size: func() int { return s.Config().Limits.Whowas }}
	if c := opts.Cluster; c != nil {
		opts.Accounts, opts.Rooms, opts.History = c.Accounts, c.Rooms, c.History
		s.nicks.claims = c.Claims
	}
	store := opts.Accounts
	if store == nil {
		store = accounts.NewMemoryStore()
	}
	s.accountCfg = accountConfig(cfg)
	s.accounts = accounts.NewService(store, s.accountCfg)
	s.roomStore = opts.Rooms
	if s.roomStore == nil {
		s.roomStore = roomstore.NewMemory()
	}
	s.openBans(opts.Bans)
	s.history = opts.History
	if s.history == nil {
		s.history = memHistory{rooms.NewMemLog(cfg.History.Size, cfg.Limits.MaxRooms+maxConversations)}
	}
	syncAlways := cfg.History.Sync == "always"
	defer func() {
		if fh, ok := s.history.(*fileHistory); ok {
			fh.sink.m.Store(s.metrics.history)
			if fh.openFailed {
				s.metrics.history.errors.WithLabelValues("open").Inc()
			}
		}
	}()
	s.privates = newPrivateHistory(s.history, syncAlways)
	reg := opts.Metrics
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	s.registry = reg
	s.metrics = newMetrics(reg, s)
	if opts.Cluster != nil {
		opts.Cluster.registerMetrics(reg)
		// Cut off for longer than the lease, this node's users were
		// declared lost by the others (their nicks freed, QUITs sent):
		// they must reconnect rather than go on in a private version.
		opts.Cluster.Node.OnLost(func() { s.closeAll("This node lost contact with the cluster; please reconnect") })
		opts.Cluster.OnChange(func(ok bool) {
			if ok {
				s.noticeAll("The chat server is in contact with the cluster again.")
			} else {
				s.noticeAll("The chat server lost contact with the cluster: rooms on other nodes and private messages to their users fail until it is back.")
			}
		})
	}
	hooks := opts.RoomHooks
	hooks.Created = func(room string) {
		s.metrics.rooms.Inc()
		s.log.Debug().Str("room", room).Msg("room created")
	}
	hooks.Dropped = func(room string) {
		s.metrics.rooms.Dec()
		s.log.Debug().Str("room", room).Msg("room dropped")
	}
	hooks.Panicked = func(room, req string, v any, stack []byte) {
		s.metrics.roomRestarts.Inc()
		s.log.Error().Str("room", room).Str("request", req).Interface("panic", v).Bytes("stack", stack).Msg("room recovered from a panic")
	}
	hooks.Delivered = s.metrics.delivered
	hooks.StoreFailed = func(room string, err error) {
		s.log.Error().Str("room", room).Err(err).Msg("room store failed; the room goes on in memory")
	}
	var cl rooms.Cluster
	if opts.Cluster != nil {
		cl = opts.Cluster.Link
	}
	s.rooms = rooms.NewRegistry(rooms.Options{
		Cluster:       cl,
		ServerName:    cfg.ServerName,
		MaxRooms:      cfg.Limits.MaxRooms,
		MaxMembers:    cfg.Limits.MaxRoomMembers,
		HistorySize:   cfg.History.Size,
		HistoryReplay: cfg.History.Replay,
		IdleTTL:       cfg.Rooms.IdleTTL,
		IDs:           s.ids,
		Store:         s.roomStore,
		Log:           s.history,
		SyncAlways:    syncAlways,
		Hooks:         hooks,
	})
	if opts.Cluster != nil {
		opts.Cluster.Link.SetLocal(s, s.rooms)
		for name, fn := range map[string]func([]byte) []byte{"whois": s.answerWhois, "pm": s.answerPM, "evict": s.answerEvict} {
			if err := opts.Cluster.Link.Handle(name, fn); err != nil {
				s.log.Error().Err(err).Str("query", name).Msg("cluster: this node will not answer other nodes' queries")
			}
		}
	}
	if c := opts.Cluster; c != nil {
		// MONITOR hears of the users of other nodes through their nick
		// claims (see nickClaimChanged).
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-s.stopBG; cancel() }()
		if err := c.Claims.Watch(ctx, s.nickClaimChanged); err != nil {
			s.log.Error().Err(err).Msg("cluster: MONITOR will not see users of other nodes come and go")
		}
	}
	if err := s.rooms.Restore(); err != nil {
		s.log.Error().Err(err).Msg("could not bring back the rooms with history; they return when someone joins")
	}
	go s.sweepRooms(s.stopBG)
	return s
}

// Config returns the configuration in force. Read it once per operation.
func (s *Server) Config() *configs.Config { return s.cfg.Load() }

// SetConfig swaps in a new validated configuration; the parts that can
// change live (MOTD, limits, log level) apply from the next use.
func (s *Server) SetConfig(cfg *configs.Config) {
	s.cfg.Store(cfg)
	s.rooms.SetLimits(cfg.Limits.MaxRooms, cfg.Limits.MaxRoomMembers)
}

// Serve accepts connections on l until l is closed or the server shuts
// down. Temporary accept errors back off from 5ms to 1s instead of spinning.
func (s *Server) Serve(l net.Listener, transport string) error {
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		l.Close()
		return net.ErrClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	if a, ok := l.Addr().(*net.TCPAddr); ok && transport == "tls" {
		s.tlsPort.Store(int32(a.Port))
	}
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()

	_, keptAlive := l.(keepAliveListener)
	var backoff time.Duration
	for {
		conn, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn().Err(err).Dur("retry_in", backoff).Msg("accept failed")
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		if !keptAlive {
			keepAlive(conn)
		}
		s.accept(conn, transport)
	}
}

// isTemporary recognises accept errors worth retrying (out of file
// descriptors, aborted handshakes) without the deprecated Temporary method.
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

func (s *Server) accept(conn net.Conn, transport string) {
	cfg := s.Config()
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		conn.Close()
		return
	}
	if len(s.sessions) >= cfg.Limits.MaxClients {
		s.mu.Unlock()
		s.metrics.refused.WithLabelValues("server_full").Inc()
		s.iplimit.refuse(conn, "Server is full, try again later")
		return
	}
	if b, ok := s.dlined(conn.RemoteAddr()); ok {
		s.mu.Unlock()
		s.metrics.refused.WithLabelValues(refusedDLine).Inc()
		s.iplimit.refuse(conn, banMessage(b))
		return
	}
	ipKey, no := s.iplimit.acquire(conn.RemoteAddr())
	if no.reason != "" {
		s.mu.Unlock()
		s.metrics.refused.WithLabelValues(no.reason).Inc()
		s.log.Debug().Str("remote", conn.RemoteAddr().String()).Str("reason", no.reason).Msg("connection refused")
		s.iplimit.refuse(conn, no.message)
		return
	}
	sess := newSession(s, conn, transport, s.nextID.Add(1))
	s.sessions[sess] = struct{}{}
	s.byID[sess.id] = sess
	s.sessWG.Add(1)
	s.mu.Unlock()

	s.metrics.connected(transport)
	// Logged here, not on the session's goroutine: that one should park in
	// Read with the smallest possible stack.
	sess.log().Debug().Str("transport", transport).Msg("connected")
	go func() {
		defer s.sessWG.Done()
		sess.serve()
		s.mu.Lock()
		delete(s.sessions, sess)
		delete(s.byID, sess.id)
		s.indexAccountLocked(sess, sess.Account(), "")
		s.mu.Unlock()
		if s.cluster != nil {
			s.cluster.Link.Gone(sess.id)
		}
		s.iplimit.release(ipKey)
	}()
}

// closeAll ends every session with reason.
func (s *Server) closeAll(reason string) {
	for _, t := range s.allSessions() {
		t.closeWith(reason)
	}
}

// noticeAll tells every registered session something about the server.
func (s *Server) noticeAll(text string) {
	for _, t := range s.allSessions() {
		if t.registered.Load() {
			t.notice(text)
		}
	}
}

func (s *Server) allSessions() []*Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Session, 0, len(s.sessions))
	for t := range s.sessions {
		out = append(out, t)
	}
	return out
}

// TCP keepalive: a connection silent for keepAliveIdle is probed every
// keepAliveInterval, and keepAliveCount unanswered probes end it (the
// read fails), about two minutes for a peer that vanished. It is how a
// dead person in a terminal is found, who is never PINGed (see pings).
const (
	keepAliveIdle     = 60 * time.Second
	keepAliveInterval = 15 * time.Second
	keepAliveCount    = 4
)

// keepAliveListener marks a listener from ListenTCP: Serve does not set
// keepalive on its connections again.
type keepAliveListener struct{ *net.TCPListener }

// keepAlive turns on TCP keepalive for a TCP or TLS client connection.
// WebSocket connections belong to the HTTP server, which sets its own.
func keepAlive(conn net.Conn) {
	if t, ok := conn.(*tls.Conn); ok {
		conn = t.NetConn()
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: keepAliveIdle, Interval: keepAliveInterval, Count: keepAliveCount})
	}
}

// AdmitHTTP is wslisten.Options.Admit: it counts a WebSocket listener's
// socket that has not upgraded yet against limits.max_conns_per_ip (see
// ipLimiter.holdHTTP). Safe from any goroutine.
func (s *Server) AdmitHTTP(remote net.Addr) (release func(), ok bool) {
	return s.iplimit.holdHTTP(remote)
}

// Shutdown stops accepting, sends every client `ERROR :Server shutting
// down`, lets their queues flush, and returns when every session has ended
// or ctx is done (then the rest are cut off).
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	for l := range s.listeners {
		l.Close()
	}
	sessions := make([]*Session, 0, len(s.sessions))
	for sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()

	for _, sess := range sessions {
		sess.closeWith("Server shutting down")
	}
	done := make(chan struct{})
	go func() {
		s.sessWG.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		for _, sess := range sessions {
			sess.conn.Close()
		}
		<-done
	}
	s.rooms.Close()
	s.stopOnce.Do(func() {
		close(s.stopBG)
		if cerr := closeHistory(s.history); cerr != nil {
			err = cerr
		}
		for _, c := range []interface{ Close() error }{s.accounts, s.roomStore, s.banStore} {
			if cerr := c.Close(); cerr != nil && err == nil {
				err = cerr
			}
		}
		if s.cluster != nil {
			if cerr := s.cluster.Close(ctx); cerr != nil && err == nil {
				err = cerr
			}
		}
	})
	return err
}

// OpenRoomStore opens the store for claimed rooms next to the accounts:
// a durable file under data_dir, or memory.
func OpenRoomStore(cfg *configs.Config) (RoomStore, error) {
	if cfg.Accounts.Store == "memory" {
		return roomstore.NewMemory(), nil
	}
	return roomstore.Open(filepath.Join(cfg.DataDir, "rooms.db"))
}

// OpenBanStore opens the store of server bans next to the accounts: a
// durable file under data_dir, or memory.
func OpenBanStore(cfg *configs.Config) (bans.Store, error) {
	if cfg.Accounts.Store == "memory" {
		return bans.NewMemory(), nil
	}
	return bans.OpenFile(filepath.Join(cfg.DataDir, "bans.json"))
}

// accountConfig translates the accounts section of the config.
func accountConfig(cfg *configs.Config) accounts.Config {
	a := cfg.Accounts
	c := accounts.DefaultConfig()
	c.Params = accounts.Params{Memory: uint32(a.HashMemoryKiB), Time: uint32(a.HashIterations), Threads: uint8(a.HashParallelism)}
	c.MinPasswordLen = a.MinPasswordLength
	if a.HashWorkers > 0 {
		c.PoolSize = a.HashWorkers
	}
	c.PoolWait = a.HashWait
	c.PoolPerSource, c.RegisterPerSource, c.RegisterWindow = a.HashQueuePerIP, a.RegisterPerIP, a.RegisterWindow
	if a.HashQueuePerIP == 0 {
		c.PoolPerSource = -1 // accounts reads 0 as "default"; here it means none
	}
	if a.RegisterPerIP == 0 {
		c.RegisterPerSource = -1
	}
	c.Throttle.Free = a.ThrottleFree
	if a.ThrottleFree == 0 {
		c.Throttle.Free = -1 // accounts reads 0 as "default"; here it means none
	}
	c.Throttle.AccountFree = a.ThrottleAccount
	if a.ThrottleAccount == 0 {
		c.Throttle.AccountFree = -1
	}
	c.Throttle.TrustFor = a.ThrottleTrust
	c.Throttle.BaseDelay, c.Throttle.MaxDelay = a.ThrottleDelay, a.ThrottleMaxDelay
	c.TokenTTL = a.TokenTTL
	c.SCRAMIterations = a.SCRAMIterations
	return c
}

// OpenAccountStore opens the store accounts.store names: a durable file
// under data_dir, or memory.
func OpenAccountStore(cfg *configs.Config) (accounts.Store, error) {
	if cfg.Accounts.Store == "memory" {
		return accounts.NewMemoryStore(), nil
	}
	return accounts.OpenFileStore(filepath.Join(cfg.DataDir, "accounts.db"))
}

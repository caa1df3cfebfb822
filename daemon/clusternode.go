package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/livechat/livechat/configs"
	"github.com/livechat/livechat/daemon/cluster"
	"github.com/livechat/livechat/daemon/jshistory"
	"github.com/livechat/livechat/daemon/jsstore"
	"github.com/livechat/livechat/internal/jsopen"
	"github.com/livechat/livechat/protocol"
	"github.com/livechat/livechat/rooms"
)

// ClusterNode is this daemon's membership of a cluster (cluster.*
// settings, docs/CLUSTER.md): its NATS connection, its lease, the
// cluster-wide nick claims, the link that carries room requests and
// lines between nodes, and the stores every node shares.
type ClusterNode struct {
	NC       *nats.Conn
	Node     *cluster.Node
	Claims   *cluster.Claims
	Link     *cluster.Link
	Accounts *jsstore.Accounts
	Rooms    *jsstore.Rooms
	Bans     *jsstore.Bans
	History  *jshistory.Log
	// CloakKey is the cluster's one host-cloak key, so that a user's
	// cloak (and a ban on it) is the same on every node.
	CloakKey []byte

	slowDrops atomic.Uint64 // frames dropped on arrival (NATS slow consumer)

	mu        sync.Mutex
	connected bool // NATS is connected
	reported  bool // what OnChange callbacks were last told
	onChange  []func(connected bool)
	stop      chan struct{}
}

// JoinCluster connects to NATS and takes this node's place in the
// cluster. It fails if NATS cannot be reached or the node name is held
// by a live node.
func JoinCluster(ctx context.Context, cfg *configs.Config, log zerolog.Logger) (*ClusterNode, error) {
	cc := cfg.Cluster
	name := cc.NodeName
	if name == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("cluster.node_name is empty and the host name is unknown: %w", err)
		}
		name = strings.Map(func(r rune) rune {
			if r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
				return r
			}
			return '-'
		}, h)
	}
	c := &ClusterNode{connected: true, reported: true, stop: make(chan struct{})}
	opts := []nats.Option{
		nats.Name("livechatd " + name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if nc.IsClosed() {
				return // leaving the cluster, not losing it
			}
			log.Warn().Err(err).Msg("cluster: lost NATS; users stay connected, room and private messages wait")
			c.setConnected(false)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info().Str("url", nc.ConnectedUrlRedacted()).Msg("cluster: NATS is back")
			c.setConnected(true)
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			if errors.Is(err, nats.ErrSlowConsumer) {
				// The frames this node could not take in time (past the
				// link's pending bound) are gone: count them as lost.
				c.slowDrops.Add(1)
			}
			log.Error().Err(err).Str("subject", subj).Msg("cluster: NATS error")
		}),
	}
	if cc.Credentials != "" {
		opts = append(opts, nats.UserCredentials(cc.Credentials))
	}
	if cc.TLSCA != "" {
		opts = append(opts, nats.RootCAs(cc.TLSCA))
	}
	if cc.TLSCert != "" {
		opts = append(opts, nats.ClientCert(cc.TLSCert, cc.TLSKey))
	}
	nc, err := nats.Connect(cc.NATSURLs, opts...)
	if err != nil {
		return nil, fmt.Errorf("cluster: connecting to NATS at %s: %w", cc.NATSURLs, err)
	}
	c.NC = nc
	fail := func(err error) (*ClusterNode, error) {
		c.Close(context.Background())
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return fail(err)
	}
	if c.Node, err = cluster.NewNode(js, cluster.NodeConfig{Name: name, LeaseTTL: cc.LeaseTTL, Replicas: cc.Replicas}); err != nil {
		return fail(err)
	}
	if err := c.Node.Start(ctx); err != nil {
		c.Node = nil
		return fail(err)
	}
	if c.Claims, err = cluster.NewClaims(ctx, c.Node); err != nil {
		return fail(err)
	}
	if c.Link, err = cluster.NewLink(ctx, nc, c.Node); err != nil {
		return fail(err)
	}
	so := jsstore.Options{Replicas: cc.Replicas}
	if c.Accounts, err = jsstore.OpenAccounts(ctx, js, so); err != nil {
		return fail(err)
	}
	if c.Rooms, err = jsstore.OpenRooms(ctx, js, so); err != nil {
		return fail(err)
	}
	if c.Bans, err = jsstore.OpenBans(ctx, js, so); err != nil {
		return fail(err)
	}
	if c.CloakKey, err = sharedCloakKey(ctx, js, cc.Replicas); err != nil {
		return fail(err)
	}
	h := cfg.History
	if c.History, err = jshistory.Open(ctx, nc, jshistory.Config{
		Replicas: cc.Replicas, MaxAge: h.MaxAge, MaxPerTarget: int64(h.MaxMessages), MaxBytes: int64(h.MaxMegabytes) << 20,
	}); err != nil {
		return fail(err)
	}
	go c.watchLease(c.Node.LeaseTTL() / 4)
	return c, nil
}

// sharedCloakKey returns the cluster's cloak key, made by the first node
// that asks (a KV create: of two first nodes, one makes it).
func sharedCloakKey(ctx context.Context, js jetstream.JetStream, replicas int) ([]byte, error) {
	kv, err := jsopen.Bucket(ctx, js, jetstream.KeyValueConfig{Bucket: "LIVECHAT_SECRETS", Description: "livechat cluster-wide secrets", Replicas: replicas, Storage: jetstream.FileStorage})
	if err != nil {
		return nil, fmt.Errorf("cluster: secrets bucket: %w", err)
	}
	// Retried like the bucket: a Create whose answer was lost may have
	// been applied, and then the Get reads this key back.
	key := randomCloakKey()
	err = jsopen.Retry(ctx, func(ctx context.Context) error {
		_, err := kv.Create(ctx, "cloak_key", key)
		return err
	})
	if err == nil {
		return key, nil
	} else if !errors.Is(err, jetstream.ErrKeyExists) {
		return nil, fmt.Errorf("cluster: cloak key: %w", err)
	}
	err = jsopen.Retry(ctx, func(ctx context.Context) error {
		e, err := kv.Get(ctx, "cloak_key")
		if err == nil {
			key = e.Value()
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: cloak key: %w", err)
	}
	return key, nil
}

// watchLease tells OnChange callbacks when the node's lease lapses or
// comes back without the NATS connection dropping (a partition that
// loses packets and never fails the connection).
func (c *ClusterNode) watchLease(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.report()
		}
	}
}

func (c *ClusterNode) setConnected(ok bool) {
	c.mu.Lock()
	c.connected = ok
	c.mu.Unlock()
	c.report()
}

// report calls the OnChange callbacks if Connected changed since.
func (c *ClusterNode) report() {
	ok := c.Connected()
	c.mu.Lock()
	if ok == c.reported {
		c.mu.Unlock()
		return
	}
	c.reported = ok
	fns := append([]func(bool){}, c.onChange...)
	c.mu.Unlock()
	for _, fn := range fns {
		fn(ok)
	}
}

// Connected reports whether NATS is reachable and the node holds its lease.
func (c *ClusterNode) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connected && c.Node.LeaseOK()
}

// OnChange calls fn whenever the NATS connection is lost or comes back.
func (c *ClusterNode) OnChange(fn func(connected bool)) {
	c.mu.Lock()
	c.onChange = append(c.onChange, fn)
	c.mu.Unlock()
}

// Close leaves the cluster: the lease goes at once (the others free this
// node's nicks and rooms), then the connection. The stores are the
// server's to close.
func (c *ClusterNode) Close(ctx context.Context) error {
	var errs []error
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	if c.Link != nil {
		c.Link.Close()
	}
	if c.Claims != nil {
		c.Claims.Close()
	}
	if c.Node != nil {
		errs = append(errs, c.Node.Stop(ctx))
	}
	if c.NC != nil {
		c.NC.Close()
	}
	return errors.Join(errs...)
}

// sessionID names a session in nick claims: its connection id.
func sessionID(s *Session) string { return strconv.FormatUint(s.id, 10) }

// Client implements cluster.Locals.
func (s *Server) Client(id uint64) rooms.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.byID[id]; t != nil {
		return t
	}
	return nil
}

// Ref implements cluster.Locals.
func (s *Server) Ref(c rooms.Client) (rooms.ClientRef, bool) {
	t, ok := c.(*Session)
	if !ok {
		return rooms.ClientRef{}, false
	}
	return rooms.ClientRef{ID: t.id, Features: t.Features(), Caps: t.caps.Load(), Away: t.Away()}, true
}

// sayToRemoteNick sends a private message to nick on the node of the
// cluster that holds it, which delivers it and keeps it in history. It
// reports false when no other node holds nick.
func (s *Session) sayToRemoteNick(nick string, sp rooms.Speech) (bool, error) {
	c := s.srv.cluster
	unavailable := failErr(sp.Command, "TEMPORARILY_UNAVAILABLE", nick, "The cluster cannot be reached; the message was not sent")
	ctx, cancel := context.WithTimeout(context.Background(), claimTimeout)
	h, ok, err := c.Claims.Holder(ctx, nick)
	cancel()
	if err != nil {
		return false, unavailable
	}
	if !ok || h.Node == c.Node.Name() {
		return false, nil
	}
	params := []string{h.Nick}
	var lines []rooms.Line
	if sp.Command != "TAGMSG" {
		var text string
		text, lines = s.speechText(sp, h.Nick)
		params = append(params, text)
	}
	e := s.event(sp.Command, params...)
	e.ID, e.Tags, e.Lines = s.srv.ids.Next(), sp.Tags, lines
	req, _ := json.Marshal(remotePM{Session: h.Session, FromID: s.identity(), FromNick: s.Nick(), Event: e})
	b, err := c.Link.Query(h.Node, "pm", req)
	var a remotePMAnswer
	if err != nil || json.Unmarshal(b, &a) != nil {
		return false, unavailable
	}
	if a.ToID == "" {
		return false, nil // gone meanwhile: no such nick
	}
	s.srv.privates.note(s.identity(), s.Nick(), a.ToID, a.ToNick, e.At)
	if f := s.Features(); f&rooms.FeatEcho != 0 && (sp.Command != "TAGMSG" || f&rooms.FeatTags != 0) {
		s.Reply(e.Render(f))
	}
	if a.Away != nil && sp.Command == "PRIVMSG" {
		s.numeric(protocol.RPL_AWAY, a.ToNick, *a.Away)
	}
	return true, nil
}

// remotePM is a private message to a session of another node.
type remotePM struct {
	Session          string
	FromID, FromNick string
	Event            *rooms.Event
}

type remotePMAnswer struct {
	ToID, ToNick string  // "" when the session is gone
	Away         *string `json:",omitempty"`
}

// answerPM is the "pm" query: deliver a private message from another
// node to one of this node's sessions, keeping it in history.
func (s *Server) answerPM(req []byte) []byte {
	var pm remotePM
	var a remotePMAnswer
	if json.Unmarshal(req, &pm) == nil && pm.Event != nil {
		id, _ := strconv.ParseUint(pm.Session, 10, 64)
		if t, ok := s.Client(id).(*Session); ok && t.registered.Load() {
			e := pm.Event
			a.ToID, a.ToNick, a.Away = t.identity(), t.Nick(), t.away.Load()
			if e.Command != "TAGMSG" || e.KeepsTagmsg() {
				if err := s.privates.addBetween(pm.FromID, pm.FromNick, a.ToID, a.ToNick, e); err != nil {
					s.historyFailed(err)
				}
			}
			if e.Command != "TAGMSG" || t.Features()&rooms.FeatTags != 0 {
				t.Send(e.Render(t.Features()))
			}
		}
	}
	b, _ := json.Marshal(a)
	return b
}

// registerMetrics exports the cluster's state: whether NATS is reachable,
// how many nodes hold a lease, and the frames the link sent and lost.
func (c *ClusterNode) registerMetrics(reg prometheus.Registerer) {
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "livechat_cluster_connected",
			Help: "1 while this node reaches NATS and holds its lease; 0 when cut off (then /readyz is 503)."},
			func() float64 { return b2f(c.Connected()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "livechat_cluster_nodes",
			Help: "Nodes of the cluster holding a lease, as this node sees them."},
			func() float64 { return float64(len(c.Node.Nodes())) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "livechat_cluster_frames_sent_total",
			Help: "Frames (room requests, answers, lines) this node published to other nodes."},
			func() float64 { return float64(c.Link.Published.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "livechat_cluster_frames_failed_total",
			Help: "Frames lost between nodes: refused by NATS on sending (connection closed or its buffer full), or dropped on arrival because this node fell too far behind (slow consumer)."},
			func() float64 { return float64(c.Link.Dropped.Load() + c.slowDrops.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "livechat_cluster_backlog_frames",
			Help: "Frames other nodes sent this node that it has not handled yet (its lag)."},
			func() float64 { return float64(c.Link.Backlog()) }),
	)
	rtt := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "livechat_cluster_request_seconds",
		Help:    "Round trip of a request to the node running a room (JOIN, a message, ...), until that node has taken it.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .5, 1, 5}})
	reg.MustRegister(rtt)
	c.Link.Answered = func(d time.Duration) { rtt.Observe(d.Seconds()) }
}

// clusterDirectory lists every room of the cluster by name: the rooms
// this node knows (running or remembered for their history), with the
// live snapshot of the node that runs each.
func (s *Server) clusterDirectory() []rooms.Info {
	byName := make(map[string]rooms.Info)
	for _, r := range s.rooms.ByName() {
		if !r.Gone() {
			info := r.Info()
			byName[protocol.FoldRoom(info.Name)] = info
		}
	}
	for _, info := range s.cluster.Link.Directory() {
		byName[protocol.FoldRoom(info.Name)] = info
	}
	out := make([]rooms.Info, 0, len(byName))
	for _, info := range byName {
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// remoteWhois fills w with what the node holding nick says of its user.
func (s *Session) remoteWhois(nick string, w *whoisInfo) bool {
	c := s.srv.cluster
	ctx, cancel := context.WithTimeout(context.Background(), claimTimeout)
	h, ok, err := c.Claims.Holder(ctx, nick)
	cancel()
	if err != nil || !ok || h.Node == c.Node.Name() {
		return false
	}
	b, err := c.Link.Query(h.Node, "whois", []byte(h.Session))
	return err == nil && json.Unmarshal(b, w) == nil && w.Nick != ""
}

// answerWhois is the "whois" query: what WHOIS shows of this node's
// session with the given connection id.
func (s *Server) answerWhois(req []byte) []byte {
	var w whoisInfo
	if id, err := strconv.ParseUint(string(req), 10, 64); err == nil {
		if t, ok := s.Client(id).(*Session); ok && t.registered.Load() {
			w = t.whoisOf()
		}
	}
	b, _ := json.Marshal(w)
	return b
}

// remoteClient returns the client holding nick on another node of the
// cluster, as rooms see it, and its nick as spelled; nil if none.
func (s *Server) remoteClient(nick string) (rooms.Client, string) {
	c := s.cluster
	if c == nil {
		return nil, ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), claimTimeout)
	h, ok, err := c.Claims.Holder(ctx, nick)
	cancel()
	if err != nil || !ok || h.Node == c.Node.Name() {
		return nil, ""
	}
	id, err := strconv.ParseUint(h.Session, 10, 64)
	if err != nil {
		return nil, ""
	}
	return c.Link.Client(rooms.ClientRef{Node: h.Node, ID: id}), h.Nick
}

// remoteHolder returns who holds nick on another node of the cluster.
func (s *Server) remoteHolder(nick string) (cluster.Holder, bool) {
	c := s.cluster
	if c == nil {
		return cluster.Holder{}, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), claimTimeout)
	h, ok, err := c.Claims.Holder(ctx, nick)
	cancel()
	if err != nil || !ok || h.Node == c.Node.Name() {
		return cluster.Holder{}, false
	}
	return h, true
}

// evictRequest asks a node to make one of its sessions a guest (its nick
// is an account's that logged in elsewhere, or RECOVER), or with Close to
// disconnect it (GHOST).
type evictRequest struct {
	Session string
	Why     string
	Close   bool
}

// evictRemote has h's node evict h's session and waits until it has.
func (s *Server) evictRemote(h cluster.Holder, why string, close bool) error {
	req, _ := json.Marshal(evictRequest{Session: h.Session, Why: why, Close: close})
	b, err := s.cluster.Link.Query(h.Node, "evict", req)
	if err != nil {
		return err
	}
	if string(b) != "ok" {
		return errors.New(string(b))
	}
	return nil
}

// answerEvict is the "evict" query.
func (s *Server) answerEvict(req []byte) []byte {
	var e evictRequest
	if json.Unmarshal(req, &e) != nil {
		return []byte("bad request")
	}
	id, _ := strconv.ParseUint(e.Session, 10, 64)
	t, ok := s.Client(id).(*Session)
	if !ok {
		return []byte("ok") // gone meanwhile: the nick is free anyway
	}
	if e.Close {
		t.closeWith(e.Why)
	} else {
		t.becomeGuest(e.Why)
	}
	return []byte("ok")
}

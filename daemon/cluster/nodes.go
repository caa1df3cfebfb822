// Package cluster holds what several livechatd nodes share through NATS
// JetStream besides room order: which nodes are alive (a lease per node in
// the KV bucket LIVECHAT_NODES) and who holds each nick (the KV bucket
// LIVECHAT_NICKS). docs/CLUSTER-CLAIMS.md describes the keys, the races and
// the timings.
package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"time"

	"github.com/livechat/livechat/internal/jsopen"
	"github.com/nats-io/nats.go/jetstream"
)

// Bucket names. The buckets are created by the first node that starts.
const (
	NodesBucket = "LIVECHAT_NODES"
	NicksBucket = "LIVECHAT_NICKS"
)

// DefaultLeaseTTL is cluster.lease_ttl when it is not set: a node that
// stops refreshing its lease is seen dead by the others within this time.
const DefaultLeaseTTL = 5 * time.Second

// minLeaseTTL is the smallest TTL JetStream accepts on a message.
const minLeaseTTL = time.Second

// Errors.
var (
	// ErrNameInUse: another live process refreshes a lease under this
	// node name (two nodes configured with the same cluster.node_name).
	ErrNameInUse = errors.New("cluster: node name is in use by a live node")
	// ErrNoLease: the node holds no valid lease (NATS unreachable for
	// longer than the lease, or not started), so it must not claim.
	ErrNoLease = errors.New("cluster: node has no valid lease")
)

var nodeNameRE = regexp.MustCompile(`^[-_a-zA-Z0-9]{1,64}$`)

// NodeConfig configures a Node.
type NodeConfig struct {
	Name     string        // cluster.node_name: [-_a-zA-Z0-9]{1,64}, unique in the cluster
	LeaseTTL time.Duration // cluster.lease_ttl; DefaultLeaseTTL if zero; at least 1 s
	Replicas int           // replicas of the buckets when this node creates them; 1 if zero
}

// lease is the value of a node's key in LIVECHAT_NODES.
type lease struct {
	Incarnation string    `json:"inc"`
	Started     time.Time `json:"started"`
}

// Node is this process's membership of the cluster: it keeps a lease under
// its name in LIVECHAT_NODES, refreshed every LeaseTTL/3 with a per-message
// TTL of LeaseTTL, and watches the bucket to learn which nodes are alive.
// A node whose lease expires (crash, or cut off from NATS) is reported dead
// to every Watch callback of every other node within LeaseTTL plus the
// server's expiry latency.
//
// Every start of a process, and every time a node finds that its lease
// was lost, gets a new incarnation id: claims record the incarnation, so
// the claims of a dead incarnation can be freed even if the same name is
// back alive.
//
// The methods are safe for concurrent use.
type Node struct {
	name string
	ttl  time.Duration
	reps int
	js   jetstream.JetStream
	kv   jetstream.KeyValue
	subj string // the lease's subject: $KV.LIVECHAT_NODES.<name>

	mu       sync.Mutex
	inc      string            // our current incarnation
	rev      uint64            // revision of our last lease write
	okUntil  time.Time         // our lease is valid until then, as far as we know
	alive    map[string]string // node name -> incarnation, from the watch
	watchers []func(node string, alive bool)
	deaths   []func(node, inc string)
	lost     []func()

	cancel context.CancelFunc
	done   chan struct{}
}

// NewNode returns a Node that is not started yet.
func NewNode(js jetstream.JetStream, cfg NodeConfig) (*Node, error) {
	if !nodeNameRE.MatchString(cfg.Name) {
		return nil, fmt.Errorf("cluster: node name %q: want 1-64 of [-_a-zA-Z0-9]", cfg.Name)
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.LeaseTTL < minLeaseTTL {
		return nil, fmt.Errorf("cluster: lease_ttl %v is below %v", cfg.LeaseTTL, minLeaseTTL)
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	return &Node{
		name:  cfg.Name,
		ttl:   cfg.LeaseTTL.Truncate(time.Second),
		reps:  cfg.Replicas,
		js:    js,
		subj:  "$KV." + NodesBucket + "." + cfg.Name,
		alive: make(map[string]string),
	}, nil
}

// Name returns the node's name.
func (n *Node) Name() string { return n.name }

// Incarnation returns the node's current incarnation id.
func (n *Node) Incarnation() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.inc
}

// LeaseTTL returns the lease duration.
func (n *Node) LeaseTTL() time.Duration { return n.ttl }

func newIncarnation() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// openBucket creates a KV bucket or opens it if another node created it.
func openBucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := jsopen.Bucket(ctx, js, cfg)
	if err != nil {
		return nil, fmt.Errorf("cluster: bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// Start opens the buckets, reads which nodes are alive, takes the lease
// (waiting up to 1.5 lease TTLs if a previous process of the same name
// crashed and its lease has not expired yet) and starts refreshing it.
// It returns ErrNameInUse if another process keeps that lease alive.
func (n *Node) Start(ctx context.Context) error {
	kv, err := openBucket(ctx, n.js, jetstream.KeyValueConfig{
		Bucket:         NodesBucket,
		Description:    "livechat node leases",
		History:        1,
		Replicas:       n.reps,
		Storage:        jetstream.FileStorage, // a NATS restart shorter than a lease must not lose the leases
		LimitMarkerTTL: time.Minute,
	})
	if err != nil {
		return err
	}
	n.kv = kv
	bg, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	w, err := kv.WatchAll(bg)
	if err != nil {
		cancel()
		return fmt.Errorf("cluster: watch %s: %w", NodesBucket, err)
	}
	// Read the current leases before going on, so Alive is right on return.
	for caught := false; !caught; {
		select {
		case <-ctx.Done():
			cancel()
			w.Stop()
			return fmt.Errorf("cluster: read %s: %w", NodesBucket, ctx.Err())
		case e := <-w.Updates():
			if e == nil {
				caught = true
				break
			}
			for _, call := range n.apply(e) {
				call()
			}
		}
	}
	if err := n.acquire(ctx); err != nil {
		cancel()
		w.Stop()
		return err
	}
	n.done = make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); n.watch(bg, w) }()
	go func() { defer wg.Done(); n.refresh(bg) }()
	go func() { wg.Wait(); close(n.done) }()
	return nil
}

// Stop stops refreshing and deletes the lease, so the others see this node
// leave at once rather than after the TTL. Its claims are then freed by the
// survivors, unless the daemon released them first.
func (n *Node) Stop(ctx context.Context) error {
	if n.cancel == nil {
		return nil
	}
	n.cancel()
	<-n.done
	n.mu.Lock()
	rev := n.rev
	n.okUntil = time.Time{}
	n.mu.Unlock()
	err := n.kv.Delete(ctx, n.name, jetstream.LastRevision(rev))
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return nil // already expired or replaced
	}
	return err
}

// Alive reports whether node holds a lease, as this node last saw it.
func (n *Node) Alive(node string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.alive[node]
	return ok
}

// Nodes returns the names of the nodes alive, as this node last saw it.
func (n *Node) Nodes() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]string, 0, len(n.alive))
	for k := range n.alive {
		out = append(out, k)
	}
	return out
}

// LeaseOK reports whether this node's lease is valid as far as it knows:
// its last refresh was acknowledged less than a TTL ago. When false (NATS
// unreachable for a lease time) the others may already consider this node
// dead and have freed its nicks.
func (n *Node) LeaseOK() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return time.Now().Before(n.okUntil)
}

// Watch registers fn to be called when another node appears (alive true)
// or its lease ends (alive false: it stopped, or crashed and its lease
// expired). A node that restarted under the same name is reported dead and
// then alive. fn is called from a single goroutine, in the order of the
// bucket, and must not block for long. Register before Start to see the
// nodes alive at start; after Start, only changes are reported.
func (n *Node) Watch(fn func(node string, alive bool)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.watchers = append(n.watchers, fn)
}

// OnLost registers fn to be called when this node finds that its own lease
// was lost (it was cut off from NATS for longer than the lease, and the
// others have treated it as dead). The daemon must then drop its users:
// their nicks were freed and their QUITs published by the survivors. The
// node goes on with a new incarnation.
func (n *Node) OnLost(fn func()) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.lost = append(n.lost, fn)
}

// onDeath registers fn for the end of an incarnation of another node.
func (n *Node) onDeath(fn func(node, inc string)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.deaths = append(n.deaths, fn)
}

// apply updates the alive map from a watch entry and returns the callbacks
// to run.
func (n *Node) apply(e jetstream.KeyValueEntry) (calls []func()) {
	node := e.Key()
	n.mu.Lock()
	defer n.mu.Unlock()
	prev, had := n.alive[node]
	died := func(inc string) {
		delete(n.alive, node)
		if node == n.name && inc == n.inc {
			return // our own lease: refresh finds out and calls lost
		}
		for _, fn := range n.deaths {
			calls = append(calls, func() { fn(node, inc) })
		}
		if node != n.name {
			for _, fn := range n.watchers {
				calls = append(calls, func() { fn(node, false) })
			}
		}
	}
	if e.Operation() != jetstream.KeyValuePut {
		if had {
			died(prev)
		}
		return calls
	}
	var l lease
	if err := json.Unmarshal(e.Value(), &l); err != nil {
		return calls
	}
	if had && prev == l.Incarnation {
		return calls // a refresh
	}
	if had {
		died(prev)
	}
	n.alive[node] = l.Incarnation
	if node != n.name {
		for _, fn := range n.watchers {
			calls = append(calls, func() { fn(node, true) })
		}
	}
	return calls
}

func (n *Node) watch(ctx context.Context, w jetstream.KeyWatcher) {
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil {
				continue
			}
			for _, call := range n.apply(e) {
				call()
			}
		}
	}
}

func (n *Node) takeLease(inc string, rev uint64, sent time.Time) {
	n.mu.Lock()
	n.inc, n.rev, n.okUntil = inc, rev, sent.Add(n.ttl)
	n.mu.Unlock()
}

// acquire takes the lease under a new incarnation. If the key is held, it
// waits for it to expire; if it is refreshed meanwhile, a live process has
// the name and acquire returns ErrNameInUse.
func (n *Node) acquire(ctx context.Context) error {
	inc := newIncarnation()
	val, _ := json.Marshal(lease{Incarnation: inc, Started: time.Now().UTC()})
	deadline := time.Now().Add(n.ttl * 3 / 2)
	var seen uint64
	for {
		// The first attempt's time: a retried Create whose lost answer
		// was applied holds the lease from then.
		sent := time.Now()
		var rev uint64
		err := jsopen.Retry(ctx, func(ctx context.Context) error {
			var err error
			rev, err = n.kv.Create(ctx, n.name, val, jetstream.KeyTTL(n.ttl))
			return err
		})
		if err == nil {
			n.takeLease(inc, rev, sent)
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("cluster: lease %s: %w", n.name, err)
		}
		e, gerr := n.kv.Get(ctx, n.name)
		if gerr == nil && bytes.Equal(e.Value(), val) {
			// Ours: an attempt whose answer was lost (a stream leader
			// changing) created it.
			n.takeLease(inc, e.Revision(), sent)
			return nil
		}
		if gerr == nil {
			if seen != 0 && e.Revision() != seen {
				return fmt.Errorf("%w: %s", ErrNameInUse, n.name)
			}
			seen = e.Revision()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %s", ErrNameInUse, n.name)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(n.ttl / 6):
		}
	}
}

// refresh rewrites the lease every TTL/3, on condition that it is still
// ours (expected last revision). A mismatch means the lease expired: the
// node calls the OnLost callbacks and takes a new one.
func (n *Node) refresh(ctx context.Context) {
	t := time.NewTicker(n.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n.mu.Lock()
		inc, rev := n.inc, n.rev
		n.mu.Unlock()
		val, _ := json.Marshal(lease{Incarnation: inc, Started: time.Now().UTC()})
		sent := time.Now()
		pctx, cancel := context.WithTimeout(ctx, n.ttl/3)
		ack, err := n.js.Publish(pctx, n.subj, val,
			jetstream.WithMsgTTL(n.ttl), jetstream.WithExpectLastSequencePerSubject(rev))
		cancel()
		if err == nil {
			n.mu.Lock()
			if n.rev == rev {
				n.rev, n.okUntil = ack.Sequence, sent.Add(n.ttl)
			}
			n.mu.Unlock()
			continue
		}
		var apiErr *jetstream.APIError
		if !errors.As(err, &apiErr) || (apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence &&
			apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
			continue // NATS trouble: retry on the next tick; LeaseOK turns false after a TTL
		}
		n.mu.Lock()
		n.okUntil = time.Time{}
		lost := append([]func(){}, n.lost...)
		n.mu.Unlock()
		for _, fn := range lost {
			fn()
		}
		for ctx.Err() == nil {
			err := n.acquire(ctx)
			if err == nil {
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(n.ttl / 3):
			}
		}
	}
}

// aliveInc reports, asking the bucket rather than the watch, whether the
// incarnation inc of node holds its lease.
func (n *Node) aliveInc(ctx context.Context, node, inc string) (bool, error) {
	e, err := n.kv.Get(ctx, node)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var l lease
	if json.Unmarshal(e.Value(), &l) != nil {
		return false, nil
	}
	return l.Incarnation == inc, nil
}

package cluster

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/livechat/livechat/protocol"
)

// ErrInUse is returned by Claim and Rename when another session, on any
// node, holds the nick. The daemon answers 433 ERR_NICKNAMEINUSE.
var ErrInUse = errors.New("cluster: nick in use")

// ErrNotHeld is returned by Release when the claim is no longer the
// current one: it was freed, or taken by someone else since.
var ErrNotHeld = errors.New("cluster: claim no longer held")

// Holder is who holds a nick: the value of its key in LIVECHAT_NICKS.
type Holder struct {
	Nick        string `json:"nick"` // as the holder spelled it
	Node        string `json:"node"`
	Incarnation string `json:"inc"`
	Session     string `json:"session"`
	Account     string `json:"account,omitempty"`
}

// Claim is a nick held by this node. Rev is the revision of its key when
// it was written: deleting with it cannot delete a later claim by someone
// else.
type Claim struct {
	Nick string
	Rev  uint64
	key  string
}

// NickKey returns the LIVECHAT_NICKS key of nick: the hex of its folded
// form, since nicks may hold []\`^{}| which KV keys do not allow.
func NickKey(nick string) string {
	return hex.EncodeToString([]byte(protocol.FoldNick(nick)))
}

// Claims holds this node's nicks in LIVECHAT_NICKS. Every node that sees
// another node's incarnation die deletes that incarnation's claims, each
// with its revision, so exactly one node deletes each claim and a claim
// retaken since is left alone; the callback given to OnFreed runs on that
// one node, which is where the daemon publishes the holder's QUIT.
//
// The methods are safe for concurrent use.
type Claims struct {
	node *Node
	kv   jetstream.KeyValue

	mu     sync.Mutex
	freed  []func(Holder)
	closed bool // no more sweeps are started

	sweeps sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
}

// NewClaims opens LIVECHAT_NICKS (creating it with node's replica count if
// needed) and frees the claims of incarnations that are no longer alive
// (the whole cluster was down, or a node died while no other was up).
// Call it after node.Start.
func NewClaims(ctx context.Context, node *Node) (*Claims, error) {
	kv, err := openBucket(ctx, node.js, jetstream.KeyValueConfig{
		Bucket:      NicksBucket,
		Description: "livechat nick claims",
		History:     1,
		Replicas:    node.reps,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, err
	}
	c := &Claims{node: node, kv: kv}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	node.onDeath(func(dead, inc string) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.closed {
			return
		}
		c.sweeps.Add(1)
		go func() {
			defer c.sweeps.Done()
			c.sweep(c.ctx, func(h Holder) (bool, error) {
				return h.Node == dead && h.Incarnation == inc, nil
			})
		}()
	})
	cache := make(map[[2]string]bool)
	_, err = c.sweep(ctx, func(h Holder) (bool, error) {
		k := [2]string{h.Node, h.Incarnation}
		alive, ok := cache[k]
		if !ok {
			var err error
			if alive, err = node.aliveInc(ctx, h.Node, h.Incarnation); err != nil {
				return false, err
			}
			cache[k] = alive
		}
		return !alive, nil
	})
	if err != nil {
		c.cancel()
		return nil, err
	}
	return c, nil
}

// Close stops the sweeps under way. It does not release the claims.
func (c *Claims) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.sweeps.Wait()
}

// OnFreed registers fn to be called on the node that deletes a dead
// node's claim, once per claim across the cluster. fn must not block.
func (c *Claims) OnFreed(fn func(Holder)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.freed = append(c.freed, fn)
}

func (c *Claims) holder(session, account, nick string) ([]byte, Holder) {
	h := Holder{Nick: nick, Node: c.node.name, Incarnation: c.node.Incarnation(), Session: session, Account: account}
	b, _ := json.Marshal(h)
	return b, h
}

// Claim claims nick for session (and account, if logged in). Exactly one
// of several racing claims, on any nodes, succeeds; the others get
// ErrInUse. A nick held by a dead incarnation whose claim has not been
// swept yet is freed and claimed.
func (c *Claims) Claim(ctx context.Context, nick, session, account string) (Claim, error) {
	if !c.node.LeaseOK() {
		return Claim{}, ErrNoLease
	}
	key := NickKey(nick)
	val, _ := c.holder(session, account, nick)
	for range 2 {
		rev, err := c.kv.Create(ctx, key, val)
		if err == nil {
			return Claim{Nick: nick, Rev: rev, key: key}, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return Claim{}, fmt.Errorf("cluster: claim: %w", err)
		}
		// Held. If by a dead incarnation, free it and try once more.
		e, err := c.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // released meanwhile
		}
		if err != nil {
			return Claim{}, fmt.Errorf("cluster: claim: %w", err)
		}
		var h Holder
		if json.Unmarshal(e.Value(), &h) != nil {
			return Claim{}, ErrInUse
		}
		alive, err := c.node.aliveInc(ctx, h.Node, h.Incarnation)
		if err != nil || alive {
			return Claim{}, ErrInUse
		}
		if c.kv.Delete(ctx, key, jetstream.LastRevision(e.Revision())) == nil {
			c.notifyFreed(h)
		}
	}
	return Claim{}, ErrInUse
}

// Rename claims newNick for session and returns its claim and a function
// that frees old. As in the daemon's registry, the old nick stays held
// until release is called, after the rename has been announced. A change of
// case only rewrites the claim in place (release is then a no-op).
func (c *Claims) Rename(ctx context.Context, old Claim, newNick, session, account string) (Claim, func(context.Context) error, error) {
	noop := func(context.Context) error { return nil }
	key := NickKey(newNick)
	if key == old.key {
		val, _ := c.holder(session, account, newNick)
		rev, err := c.kv.Update(ctx, key, val, old.Rev)
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return Claim{}, nil, ErrNotHeld
		}
		if err != nil {
			return Claim{}, nil, fmt.Errorf("cluster: rename: %w", err)
		}
		return Claim{Nick: newNick, Rev: rev, key: key}, noop, nil
	}
	nc, err := c.Claim(ctx, newNick, session, account)
	if err != nil {
		return Claim{}, nil, err
	}
	if old.key == "" {
		return nc, noop, nil
	}
	return nc, func(ctx context.Context) error { return c.Release(ctx, old) }, nil
}

// Take gives nick to session even if someone else holds it (logging in to
// the account that owns the nick) and returns the previous holder, if any:
// its node must rename that session. The overwrite is a compare-and-set on
// the revision read, retried if the key changed in between.
func (c *Claims) Take(ctx context.Context, nick, session, account string) (Claim, *Holder, error) {
	if !c.node.LeaseOK() {
		return Claim{}, nil, ErrNoLease
	}
	key := NickKey(nick)
	val, _ := c.holder(session, account, nick)
	for {
		e, err := c.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			rev, err := c.kv.Create(ctx, key, val)
			if errors.Is(err, jetstream.ErrKeyExists) {
				continue
			}
			if err != nil {
				return Claim{}, nil, fmt.Errorf("cluster: take: %w", err)
			}
			return Claim{Nick: nick, Rev: rev, key: key}, nil, nil
		}
		if err != nil {
			return Claim{}, nil, fmt.Errorf("cluster: take: %w", err)
		}
		rev, err := c.kv.Update(ctx, key, val, e.Revision())
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue
		}
		if err != nil {
			return Claim{}, nil, fmt.Errorf("cluster: take: %w", err)
		}
		var prev *Holder
		var h Holder
		if json.Unmarshal(e.Value(), &h) == nil && (h.Node != c.node.name || h.Session != session) {
			prev = &h
		}
		return Claim{Nick: nick, Rev: rev, key: key}, prev, nil
	}
}

// Release frees a claim, only if it is still the current one: a node that
// lost its lease and comes back cannot delete a claim someone else took
// since. It returns ErrNotHeld in that case, which the daemon can ignore.
func (c *Claims) Release(ctx context.Context, cl Claim) error {
	if cl.key == "" {
		return nil
	}
	err := c.kv.Delete(ctx, cl.key, jetstream.LastRevision(cl.Rev))
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return ErrNotHeld
	}
	return err
}

// Holder returns who holds nick, reading the bucket (one round trip).
func (c *Claims) Holder(ctx context.Context, nick string) (Holder, bool, error) {
	e, err := c.kv.Get(ctx, NickKey(nick))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Holder{}, false, nil
	}
	if err != nil {
		return Holder{}, false, err
	}
	var h Holder
	if err := json.Unmarshal(e.Value(), &h); err != nil {
		return Holder{}, false, fmt.Errorf("cluster: holder of %q: %w", nick, err)
	}
	return h, true, nil
}

func (c *Claims) notifyFreed(h Holder) {
	c.mu.Lock()
	fns := append([]func(Holder){}, c.freed...)
	c.mu.Unlock()
	for _, fn := range fns {
		fn(h)
	}
}

// sweep deletes, each with its revision, the claims whose holder dead
// reports true for, and returns how many this node deleted.
func (c *Claims) sweep(ctx context.Context, dead func(Holder) (bool, error)) (int, error) {
	w, err := c.kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return 0, fmt.Errorf("cluster: sweep: %w", err)
	}
	defer w.Stop()
	type victim struct {
		key string
		rev uint64
		h   Holder
	}
	var victims []victim
	for {
		var e jetstream.KeyValueEntry
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case e = <-w.Updates():
		}
		if e == nil {
			break
		}
		var h Holder
		if json.Unmarshal(e.Value(), &h) != nil {
			continue
		}
		d, err := dead(h)
		if err != nil {
			return 0, err
		}
		if d {
			victims = append(victims, victim{e.Key(), e.Revision(), h})
		}
	}
	n := 0
	for _, v := range victims {
		if c.kv.Delete(ctx, v.key, jetstream.LastRevision(v.rev)) == nil {
			n++
			c.notifyFreed(v.h)
		}
	}
	return n, nil
}

// Node returns the name of this node.
func (c *Claims) Node() string { return c.node.Name() }

// Watch calls fn for every change to a claim, on any node, from now until
// ctx is done: h is the new holder, or nil when the nick was freed (then
// only its folded form is known). fn runs on one goroutine, in the order
// of the changes, and must not block. A node's own changes come too.
func (c *Claims) Watch(ctx context.Context, fn func(folded string, h *Holder)) error {
	w, err := c.kv.WatchAll(ctx, jetstream.UpdatesOnly())
	if err != nil {
		return fmt.Errorf("cluster: watch nicks: %w", err)
	}
	go func() {
		defer w.Stop()
		for e := range w.Updates() { // closed when ctx is done
			if e == nil {
				continue
			}
			folded, err := hex.DecodeString(e.Key())
			if err != nil {
				continue
			}
			if e.Operation() != jetstream.KeyValuePut {
				fn(string(folded), nil)
				continue
			}
			var h Holder
			if json.Unmarshal(e.Value(), &h) == nil {
				fn(string(folded), &h)
			}
		}
	}()
	return nil
}

package jsstore

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/livechat/livechat/daemon/bans"
)

// Bans is a bans.Store in the bucket <Prefix>_BANS: key hex(Ban.Key()),
// value the ban as JSON (the file store's format). Every node loads it at
// start and watches it (Watch), so a ban set on one node closes the
// connections it covers on every node. Safe for concurrent use.
type Bans struct {
	opts   Options
	kv     jetstream.KeyValue
	closed atomic.Bool
	ctx    context.Context // ends the watch on Close
	cancel context.CancelFunc
}

var _ bans.Store = (*Bans)(nil)

// OpenBans opens the bans bucket, creating it if needed; ctx bounds that.
func OpenBans(ctx context.Context, js jetstream.JetStream, o Options) (*Bans, error) {
	o.defaults()
	kv, err := openBucket(ctx, js, o, "BANS", "livechat server bans (KLINE, DLINE)")
	if err != nil {
		return nil, err
	}
	b := &Bans{opts: o, kv: kv}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	return b, nil
}

func (s *Bans) begin() (context.Context, context.CancelFunc, error) {
	if s.closed.Load() {
		return nil, nil, ErrClosed
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
	return ctx, cancel, nil
}

// Load returns every stored ban.
func (s *Bans) Load() ([]bans.Ban, error) {
	ctx, cancel, err := s.begin()
	if err != nil {
		return nil, err
	}
	defer cancel()
	var out []bans.Ban
	err = readAll(ctx, s.kv, func() { out = nil }, func(e jetstream.KeyValueEntry) error {
		var b bans.Ban
		if json.Unmarshal(e.Value(), &b) != nil {
			return nil // not written by this package
		}
		out = append(out, b)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("jsstore: load bans: %w", err)
	}
	return out, nil
}

// Put stores b; it has been acknowledged by JetStream when Put returns nil.
func (s *Bans) Put(b bans.Ban) error {
	ctx, cancel, err := s.begin()
	if err != nil {
		return err
	}
	defer cancel()
	v, err := json.Marshal(b)
	if err == nil {
		err = retry(ctx, func() error {
			_, err := s.kv.Put(ctx, key(b.Key()), v)
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("jsstore: put ban: %w", err)
	}
	return nil
}

// Delete forgets the ban with k; an absent one is no error.
func (s *Bans) Delete(k string) error {
	ctx, cancel, err := s.begin()
	if err != nil {
		return err
	}
	defer cancel()
	if err := retry(ctx, func() error { return s.kv.Purge(ctx, key(k)) }); err != nil {
		return fmt.Errorf("jsstore: delete ban: %w", err)
	}
	return nil
}

// Watch calls fn, on one goroutine, for every ban put (b) or deleted (b
// nil) from now until Close, whichever node changed it, this one
// included. It fails only if the watch cannot start.
func (s *Bans) Watch(fn func(key string, b *bans.Ban)) error {
	w, err := s.kv.WatchAll(s.ctx, jetstream.UpdatesOnly())
	if err != nil {
		return fmt.Errorf("jsstore: watch bans: %w", err)
	}
	go func() {
		defer w.Stop()
		for {
			select {
			case <-s.ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil {
					continue
				}
				k, ok := unkey(e.Key())
				if !ok {
					continue
				}
				if e.Operation() != jetstream.KeyValuePut {
					fn(k, nil)
					continue
				}
				var b bans.Ban
				if json.Unmarshal(e.Value(), &b) == nil {
					fn(k, &b)
				}
			}
		}
	}()
	return nil
}

// Close ends the watch and makes later calls fail with ErrClosed; the
// NATS connection stays open.
func (s *Bans) Close() error {
	s.closed.Store(true)
	s.cancel()
	return nil
}

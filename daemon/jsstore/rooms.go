package jsstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/livechat/livechat/rooms"
)

// ErrClosed is returned by a Rooms store after Close.
var ErrClosed = errors.New("jsstore: store closed")

// Rooms is a rooms.Store in the bucket <Prefix>_ROOMS: key hex(folded
// room name), value the room's rooms.Saved as JSON (the file store's
// format). Save is a plain put: the last write wins, so the daemon must
// save a room from one place at a time (the node applying the room's
// events in order), as it does on a single node from the room's
// goroutine. Each call waits at most Options.Timeout. Safe for
// concurrent use.
type Rooms struct {
	opts   Options
	kv     jetstream.KeyValue
	closed atomic.Bool
}

var _ rooms.Store = (*Rooms)(nil)

// OpenRooms opens the rooms bucket, creating it if needed; ctx bounds
// that. The NATS connection stays the caller's.
func OpenRooms(ctx context.Context, js jetstream.JetStream, o Options) (*Rooms, error) {
	o.defaults()
	kv, err := openBucket(ctx, js, o, "ROOMS", "livechat claimed rooms")
	if err != nil {
		return nil, err
	}
	return &Rooms{opts: o, kv: kv}, nil
}

func (r *Rooms) begin() (context.Context, context.CancelFunc, error) {
	if r.closed.Load() {
		return nil, nil, ErrClosed
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.opts.Timeout)
	return ctx, cancel, nil
}

// Load returns the saved state of a claimed room.
func (r *Rooms) Load(folded string) (rooms.Saved, bool, error) {
	ctx, cancel, err := r.begin()
	if err != nil {
		return rooms.Saved{}, false, err
	}
	defer cancel()
	var e jetstream.KeyValueEntry
	err = retry(ctx, func() (err error) {
		e, err = r.kv.Get(ctx, key(folded))
		return err
	})
	if absent(err) {
		return rooms.Saved{}, false, nil
	}
	var s rooms.Saved
	if err == nil {
		err = json.Unmarshal(e.Value(), &s)
	}
	if err != nil {
		return rooms.Saved{}, false, fmt.Errorf("jsstore: load room %s: %w", folded, err)
	}
	return s, true, nil
}

// Save stores a claimed room's state; it has been acknowledged by
// JetStream (a quorum of replicas) when Save returns nil.
func (r *Rooms) Save(folded string, s rooms.Saved) error {
	ctx, cancel, err := r.begin()
	if err != nil {
		return err
	}
	defer cancel()
	v, err := json.Marshal(s)
	if err == nil {
		err = retry(ctx, func() error {
			_, err := r.kv.Put(ctx, key(folded), v)
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("jsstore: save room %s: %w", folded, err)
	}
	return nil
}

// Delete forgets a room; a room never saved is no error.
func (r *Rooms) Delete(folded string) error {
	ctx, cancel, err := r.begin()
	if err != nil {
		return err
	}
	defer cancel()
	if err := retry(ctx, func() error { return r.kv.Purge(ctx, key(folded)) }); err != nil {
		return fmt.Errorf("jsstore: delete room %s: %w", folded, err)
	}
	return nil
}

// List returns every saved room by folded name.
func (r *Rooms) List() (map[string]rooms.Saved, error) {
	ctx, cancel, err := r.begin()
	if err != nil {
		return nil, err
	}
	defer cancel()
	var out map[string]rooms.Saved
	err = readAll(ctx, r.kv, func() { out = make(map[string]rooms.Saved) }, func(e jetstream.KeyValueEntry) error {
		name, ok := unkey(e.Key())
		if !ok {
			return nil // not written by this package
		}
		var s rooms.Saved
		if err := json.Unmarshal(e.Value(), &s); err != nil {
			return fmt.Errorf("room %q: %w", name, err)
		}
		out[name] = s
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("jsstore: list rooms: %w", err)
	}
	return out, nil
}

// Close makes later calls fail with ErrClosed; the NATS connection stays
// open.
func (r *Rooms) Close() error {
	r.closed.Store(true)
	return nil
}

// Package jsstore keeps accounts (with their read markers and login
// tokens) and claimed rooms in NATS JetStream KV buckets, so that every
// livechat node of a cluster sees the same ones. Accounts is an
// accounts.Store, accounts.MarkerStore and accounts.TokenStore; Rooms is a
// rooms.Store. Both pass the conformance suites of the memory and file
// stores (accountstest, roomstoretest).
//
// Races between nodes are decided by JetStream, never by a node: a
// Create is a KV create (the stream accepts one first write of a key), and
// every read-modify-write (a password, markers, tokens, a deletion) is a
// compare-and-set on the key's revision, retried on conflict. See
// docs/CLUSTER.md, "Accounts, markers, tokens and rooms in KV".
//
// Every call waits on NATS at most Options.Timeout (or less if its context
// says so) and then fails; none hangs while NATS is away.
package jsstore

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/livechat/livechat/internal/jsopen"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Options configure the buckets and the waits. The zero value is what a
// single NATS server needs; a three-node NATS cluster wants Replicas 3.
type Options struct {
	// Prefix names the buckets: <Prefix>_ACCOUNTS, <Prefix>_ACCOUNT_DATA
	// and <Prefix>_ROOMS. Default "LIVECHAT". Tests use their own so that
	// many stores share one server.
	Prefix string
	// Replicas of the buckets when this node creates them (1 to 5);
	// default 1. A bucket that exists keeps its own.
	Replicas int
	// Storage of the buckets when this node creates them; the zero value
	// is file storage, which is what survives a NATS restart.
	Storage jetstream.StorageType
	// Timeout bounds each call's waits on NATS, compare-and-set retries
	// included, when the call's context has no earlier deadline (the
	// rooms.Store methods have no context). Default 5 s.
	Timeout time.Duration
	// MaxReadMarkers bounds the read markers of one account, dropping the
	// oldest beyond it; default accounts.MaxReadMarkers. Tests lower it.
	MaxReadMarkers int
}

func (o *Options) defaults() {
	if o.Prefix == "" {
		o.Prefix = "LIVECHAT"
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
}

// openBucket creates a KV bucket or opens it if another node created it
// (as daemon/cluster does for its own).
func openBucket(ctx context.Context, js jetstream.JetStream, o Options, name, desc string) (jetstream.KeyValue, error) {
	cfg := jetstream.KeyValueConfig{
		Bucket: o.Prefix + "_" + name, Description: desc,
		History: 1, Replicas: o.Replicas, Storage: o.Storage,
	}
	kv, err := jsopen.Bucket(ctx, js, cfg)
	if err != nil {
		return nil, fmt.Errorf("jsstore: bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// key encodes a name (folded by the caller) for the KV key alphabet
// [-/_=.a-zA-Z0-9]: hex keeps any byte, and keeps the byte order, so keys
// sort as the names do.
func key(name string) string { return hex.EncodeToString([]byte(name)) }

func unkey(k string) (string, bool) {
	b, err := hex.DecodeString(k)
	return string(b), err == nil
}

// withTimeout bounds ctx by d unless it already ends sooner.
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= d {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// conflict reports a lost compare-and-set: the key was written since it
// was read (or created by someone else first). Replicated streams report
// it with another code than single ones; the deleted-key path of
// KeyValue.Create returns it unwrapped.
func conflict(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// absent reports a key that does not exist or was deleted.
func absent(err error) bool {
	return errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted)
}

// transient reports an error that goes away by itself within seconds:
// nobody answered the request, as while a stream's replicas elect a new
// leader after a NATS server went away.
func transient(err error) bool {
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse)
}

// retry runs step until it neither loses a compare-and-set nor meets a
// transient error, or ctx ends. A lost compare-and-set means another
// writer succeeded, so concurrent loops make progress as a whole and it
// is retried at once; a transient error after a short pause. ctx bounds
// it for this caller.
func retry(ctx context.Context, step func() error) error {
	pause := 20 * time.Millisecond
	for {
		err := step()
		switch {
		case err == nil:
			return nil
		case conflict(err):
		case transient(err):
			select {
			case <-ctx.Done():
				return err
			case <-time.After(pause):
			}
			pause = min(2*pause, 500*time.Millisecond)
		default:
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

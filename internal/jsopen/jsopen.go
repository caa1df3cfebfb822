// Package jsopen creates or opens the JetStream buckets and streams
// livechat keeps its shared state in, the same way for every package.
//
// A JetStream API request sent while a NATS cluster elects a new meta or
// stream leader can go unanswered; waiting for it until the caller's
// deadline turns one lost request into a failed start. So every attempt
// here is bounded and retried until the caller's context ends.
package jsopen

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Attempt bounds one try of a JetStream API request.
const Attempt = 5 * time.Second

// Retry calls fn with a context bounded by Attempt until it succeeds, ctx
// ends, or fn returns an error that is not a timeout. fn must be safe to
// repeat.
func Retry(ctx context.Context, fn func(context.Context) error) error {
	for {
		actx, cancel := context.WithTimeout(ctx, Attempt)
		err := fn(actx)
		cancel()
		if err == nil || ctx.Err() != nil || !retryable(err) {
			return err
		}
	}
}

func retryable(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabled) // 503 while the cluster forms
}

// Bucket creates the KV bucket cfg describes, or opens it if it exists
// (another node made it first).
func Bucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	var kv jetstream.KeyValue
	err := Retry(ctx, func(ctx context.Context) error {
		var err error
		kv, err = js.CreateKeyValue(ctx, cfg)
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, cfg.Bucket)
		}
		return err
	})
	return kv, err
}

// Stream creates the stream cfg describes or updates it to cfg.
func Stream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	var s jetstream.Stream
	err := Retry(ctx, func(ctx context.Context) error {
		var err error
		s, err = js.CreateOrUpdateStream(ctx, cfg)
		return err
	})
	return s, err
}

package jsopen

import (
	"context"
	"errors"
	"testing"
)

func TestRetry(t *testing.T) {
	calls := 0
	err := Retry(context.Background(), func(ctx context.Context) error {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("attempt without a deadline")
		}
		calls++
		if calls < 3 {
			return context.DeadlineExceeded // an unanswered request
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("err %v after %d calls, want success on the third", err, calls)
	}

	bad := errors.New("bad config")
	calls = 0
	if err := Retry(context.Background(), func(context.Context) error { calls++; return bad }); err != bad || calls != 1 {
		t.Fatalf("err %v after %d calls, want the first error at once", err, calls)
	}

	ctx, cancel := context.WithCancel(context.Background())
	calls = 0
	err = Retry(ctx, func(context.Context) error { calls++; cancel(); return context.DeadlineExceeded })
	if err == nil || calls != 1 {
		t.Fatalf("err %v after %d calls, want to stop when the caller gives up", err, calls)
	}
}

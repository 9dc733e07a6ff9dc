// Package retry holds the waiting that calls and their retry loops share:
// default deadlines, backoff, sleeps.
package retry

import (
	"context"
	"time"
)

// Sleep waits for d or until ctx ends, and reports whether ctx is still live.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Backoff returns the wait before retry attempt (1, 2, ...): base doubled
// per attempt, capped at limit.
func Backoff(attempt int, base, limit time.Duration) time.Duration {
	if attempt < 1 {
		return 0
	}
	return min(base<<min(attempt-1, 20), limit)
}

// WithDefaultTimeout returns ctx bounded by d if it has no deadline of its
// own, and ctx as it is otherwise (the returned cancel then does nothing).
// Callers defer the cancel either way.
func WithDefaultTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d)
}

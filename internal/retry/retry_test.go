package retry_test

import (
	"context"
	"testing"
	"time"

	"github.com/profileledger/profileledger/internal/retry"
)

func TestBackoffDoublesUpToTheLimit(t *testing.T) {
	for attempt, want := range []time.Duration{0, 10, 20, 40, 80, 100, 100} {
		if got := retry.Backoff(attempt, 10, 100); got != want {
			t.Errorf("Backoff(%d) = %v, want %v", attempt, got, want)
		}
	}
	if got := retry.Backoff(1000, time.Millisecond, time.Second); got != time.Second {
		t.Errorf("a huge attempt = %v, want the limit", got)
	}
}

func TestSleepStopsWhenTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if retry.Sleep(ctx, time.Hour) {
		t.Fatal("Sleep on a cancelled context reported it live")
	}
	if !retry.Sleep(context.Background(), time.Millisecond) {
		t.Fatal("Sleep on a live context reported it ended")
	}
}

func TestWithDefaultTimeoutBoundsOnlyAContextWithoutDeadline(t *testing.T) {
	ctx, cancel := retry.WithDefaultTimeout(context.Background(), time.Minute)
	defer cancel()
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > time.Minute {
		t.Fatalf("no deadline of its own: got %v, %v; want one within a minute", d, ok)
	}
	mine, cancelMine := context.WithTimeout(context.Background(), time.Hour)
	defer cancelMine()
	ctx, cancel = retry.WithDefaultTimeout(mine, time.Minute)
	cancel()
	if ctx != mine || ctx.Err() != nil {
		t.Fatalf("a context with a deadline came back changed (%v) or cancelled (%v)", ctx != mine, ctx.Err())
	}
}

package profileledger_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/pltest"
)

// toggle is one call of a critical handler.
type toggle struct {
	critical bool
	h        profileledger.Health
}

// nextToggle waits for the next call of the critical handler, failing the
// test if none comes within a minute.
func nextToggle(t *testing.T, ch <-chan toggle) toggle {
	t.Helper()
	select {
	case tg := <-ch:
		return tg
	case <-time.After(time.Minute):
		t.Fatal("the critical handler was not called within a minute")
		return toggle{}
	}
}

func TestHealthGoesCriticalWhenNATSStopsAndRecoversWhenItReturns(t *testing.T) {
	srv := pltest.Run(t)
	js := pltest.Connect(t, srv.URL())
	toggles := make(chan toggle, 16)
	var mu sync.Mutex
	var reported []error
	st, err := profileledger.Open(ctxT(t), js, "health", template(),
		profileledger.WithLeaseTTL(time.Second),
		profileledger.WithHealthThresholds(profileledger.HealthThresholds{
			Errors: 3, Window: time.Minute, Unreachable: 200 * time.Millisecond, Recovery: 300 * time.Millisecond,
		}),
		profileledger.WithCriticalHandler(func(critical bool, h profileledger.Health) { toggles <- toggle{critical, h} }),
		profileledger.WithErrorHandler(func(err error) {
			mu.Lock()
			reported = append(reported, err)
			mu.Unlock()
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := st.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	ctx := ctxT(t)
	s, err := st.StartSession(ctx, "user:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Mutate(ctx, "coins", addCoins(1)); err != nil {
		t.Fatal(err)
	}
	if h := st.Health(); h.Critical || !h.Reachable || h.SessionsHeld != 1 || h.ErrorsTotal != 0 || len(h.Reasons) != 0 {
		t.Fatalf("health of a healthy store = %+v", h)
	}

	srv.Stop()
	tg := nextToggle(t, toggles)
	if !tg.critical || !tg.h.Critical || tg.h.Reachable {
		t.Fatalf("after NATS stopped the handler got critical=%v, health %+v", tg.critical, tg.h)
	}
	if !strings.Contains(strings.Join(tg.h.Reasons, "; "), "NATS unreachable") {
		t.Errorf("reasons %q do not say NATS is unreachable", tg.h.Reasons)
	}
	// The store's heartbeat cannot be renewed: its session is lost after a
	// TTL, and each failed renewal is an error.
	select {
	case <-s.Done():
	case <-time.After(time.Minute):
		t.Fatal("the session outlived its lease with NATS stopped")
	}
	if !errors.Is(s.Err(), profileledger.ErrSessionLost) {
		t.Fatalf("session ended with %v, want ErrSessionLost", s.Err())
	}
	h := st.Health()
	if !h.Critical || h.SessionsLost != 1 || h.SessionsHeld != 0 || h.RenewalsFailed == 0 || h.Errors == 0 {
		t.Fatalf("health with NATS stopped = %+v", h)
	}
	var oe *profileledger.OpError
	if !errors.As(h.LastError, &oe) || oe.Op != "renew" || oe.Key != "" {
		t.Fatalf("last error %v, want a renewal of the store's heartbeat (no key)", h.LastError)
	}

	srv.Start()
	tg = nextToggle(t, toggles)
	if tg.critical || tg.h.Critical || !tg.h.Reachable || tg.h.Errors != 0 || tg.h.SessionsLost != 1 || tg.h.RenewalsFailed == 0 {
		t.Fatalf("after NATS returned the handler got critical=%v, health %+v", tg.critical, tg.h)
	}
	if h := st.Health(); h.Critical || !h.Reachable || len(h.Reasons) != 0 {
		t.Fatalf("health after recovery = %+v", h)
	}
	s2, err := st.StartSession(ctx, "user:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Mutate(ctx, "coins", addCoins(1)); err != nil {
		t.Fatal(err)
	}
	if got := s2.Data().Coins; got != 102 {
		t.Errorf("coins after recovery = %d, want 102", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reported) == 0 || uint64(len(reported)) > st.Health().ErrorsTotal {
		t.Errorf("the error handler got %d errors; the store counted %d", len(reported), st.Health().ErrorsTotal)
	}
	for _, err := range reported {
		if !errors.As(err, &oe) || (oe.Key != "user:1" && oe.Op != "renew") {
			t.Errorf("reported error %v is not an OpError of user:1 or of the heartbeat", err)
		}
	}
}

func TestErrorsWithinTheWindowMakeTheStoreCritical(t *testing.T) {
	srv := pltest.Run(t)
	js := pltest.Connect(t, srv.URL())
	toggles := make(chan toggle, 16)
	st, err := profileledger.Open(ctxT(t), js, "errors", template(),
		profileledger.WithHealthThresholds(profileledger.HealthThresholds{
			Errors: 2, Window: time.Hour, Unreachable: time.Hour, Recovery: 100 * time.Millisecond,
		}),
		profileledger.WithCriticalHandler(func(critical bool, h profileledger.Health) { toggles <- toggle{critical, h} }))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(context.Background())
	ctx := ctxT(t)
	s, err := st.StartSession(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	// With NATS stopped for less than Unreachable, only the errors count:
	srv.Stop()
	// two mutations whose appends get no acknowledgement (the second
	// fails reading the log, to settle the first, before it appends).
	for i := range 2 {
		mctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		err := s.Mutate(mctx, "coins", addCoins(1))
		cancel()
		if i == 0 && !errors.Is(err, profileledger.ErrUncertain) || err == nil {
			t.Fatalf("Mutate %d with NATS stopped: %v, want an error (ErrUncertain first)", i, err)
		}
	}
	tg := nextToggle(t, toggles)
	if !tg.critical || tg.h.Errors < 2 || !strings.Contains(strings.Join(tg.h.Reasons, "; "), "errors in the last 1h0m0s") {
		t.Fatalf("after two uncertain appends the handler got critical=%v, health %+v", tg.critical, tg.h)
	}
	var oe *profileledger.OpError
	if !errors.As(tg.h.LastError, &oe) || oe.Key != "k" {
		t.Errorf("last error %v, want an OpError of k", tg.h.LastError)
	}
	srv.Start()
	if tg := nextToggle(t, toggles); tg.critical || tg.h.Errors != 0 {
		t.Fatalf("after NATS returned the handler got critical=%v, health %+v", tg.critical, tg.h)
	}
}

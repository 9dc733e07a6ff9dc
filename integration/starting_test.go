package integration_test

import (
	"errors"
	"testing"
	"time"

	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/pltest"
)

// TestASessionLostWhileStartingIsNotReturnedAsLive: behind 600 ms of
// latency each way a 1 s lease cannot be renewed, so the session is lost
// while StartSession is still appending its fence. The start must fail
// with ErrSessionLost — not panic (it once closed Done twice) and not hand
// back a session that is already over as if it were live.
func TestASessionLostWhileStartingIsNotReturnedAsLive(t *testing.T) {
	srv := pltest.Run(t)
	tp := pltest.Proxy(t, srv.URL())
	slow := openNode(t, tp.URL(), "slow", true)
	tp.Latency(600*time.Millisecond, 0)
	defer tp.Latency(0, 0)
	ctx := testCtx(t, time.Minute)
	s, err := slow.st.StartSession(ctx, "far-away")
	if err == nil {
		select {
		case <-s.Done():
			t.Fatalf("StartSession returned a session that was already over: %v", s.Err())
		default:
		}
		t.Fatalf("StartSession kept a 1 s lease over a 1.2 s round trip: the test did not inject its fault")
	}
	if !errors.Is(err, profileledger.ErrSessionLost) {
		t.Fatalf("StartSession = %v, want ErrSessionLost", err)
	}
	t.Logf("start failed as it should: %v", err)
}

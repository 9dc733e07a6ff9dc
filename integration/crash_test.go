package integration_test

import (
	"testing"
	"time"

	"github.com/profileledger/profileledger/pltest"
)

// TestServerCrashAndRestartLosesNoAcknowledgedWrite kills the only NATS
// server (sync_interval: always; pltest's Kill: connections reset, the
// store directory left as a killed process leaves it) in the middle of a
// contended workload and starts it again on the same store directory. Sessions resume or end as
// lost and start again; afterwards every acknowledged mutation is in the
// log exactly once, no rejected one is, and the logs keep the invariants.
func TestServerCrashAndRestartLosesNoAcknowledgedWrite(t *testing.T) {
	srv := pltest.Run(t, pltest.SyncAlways())
	nodes := []*node{
		openNode(t, srv.URL(), "a", true),
		openNode(t, srv.URL(), "b", true),
		openNode(t, srv.URL(), "c", true),
	}
	w := newWorkload([]string{"k1", "k2", "k3"}, func() []*node { return nodes })
	ctx := testCtx(t, 2*time.Minute)
	run := 6 * time.Second
	until := time.Now().Add(run)
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.run(ctx, t, 6, until, 0.1)
	}()
	time.Sleep(run / 3)
	srv.Kill()                          // mid-load: every holder loses NATS at once
	time.Sleep(2500 * time.Millisecond) // longer than the lease and than a mutation's deadline
	srv.Start()
	<-done

	w.verify(t, openNode(t, srv.URL(), "auditor", false))
}

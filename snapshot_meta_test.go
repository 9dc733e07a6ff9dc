package profileledger_test

import (
	"fmt"
	"strings"
	"testing"
)

// TestAProfileWithManyUserIDsIsStillSnapshotted: a profile's user ids go
// into the snapshot's Meta, which snapshots.Encode capped at 1 KiB, while a profile may hold
// MaxUserIDs (32) ids of MaxUserIDLen (128) bytes. Past about 8 long ids no
// snapshot of the profile can be saved again: every load replays the whole
// log since the last one that fit.
func TestAProfileWithManyUserIDsIsStillSnapshotted(t *testing.T) {
	e := newEnv(t)
	st := e.open(t, "players")
	ctx := ctxT(t)
	s := start(t, st, "p")
	for i := range 10 {
		if err := s.AddUserID(ctx, fmt.Sprintf("%03d%s", i, strings.Repeat("u", 117))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.End(ctx); err != nil {
		t.Fatal(err)
	}
	s2 := start(t, st, "p")
	defer s2.End(ctx)
	if r := s2.LoadReport(); r.SnapshotVersion == 0 {
		t.Fatalf("no snapshot was used after End (%d events replayed): End's snapshot could not be saved", r.Replayed)
	}
}

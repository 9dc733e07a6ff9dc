package profileledger_test

import (
	"errors"
	"testing"
	"time"

	"github.com/profileledger/profileledger"
)

// TestRemoveUserIDIsInTheLogBeforeItsIndexEntryGoes: in deferred mode
// too, RemoveUserID returns once its event is in the log, and only then
// drops the index entry; so the index stays a superset of the log's links
// even if the session is lost right after. (Before, the entry went while
// the removal was in memory only: a steal kept the id in the log, and
// EraseUser missed the profile.)
func TestRemoveUserIDIsInTheLogBeforeItsIndexEntryGoes(t *testing.T) {
	e := newEnv(t)
	st1 := e.open(t, "players", profileledger.WithDeferredWrites(time.Hour), profileledger.WithLeaseTTL(5*time.Second))
	st2 := e.open(t, "players", profileledger.WithLeaseTTL(5*time.Second))
	ctx := ctxT(t)
	s1 := start(t, st1, "p")
	for _, id := range []string{"alice", "bob"} {
		if err := s1.AddUserID(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := s1.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s1.RemoveUserID(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := s1.AddUserID(ctx, "carol"); err != nil { // deferred: in memory only
		t.Fatal(err)
	}
	s2 := start(t, st2, "p", profileledger.Steal()) // s1's unflushed events never land
	if ids := s2.UserIDs(); len(ids) != 1 || ids[0] != "bob" {
		t.Fatalf("the log's user ids = %v, want [bob]: alice's removal was acknowledged, carol's addition was not flushed", ids)
	}
	if err := s2.End(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s1.End(ctx); !errors.Is(err, profileledger.ErrSessionLost) {
		t.Fatalf("the stolen session's End = %v, want ErrSessionLost", err)
	}
	for id, want := range map[string]int{"alice": 0, "carol": 0, "bob": 1} {
		keys, err := st2.EraseUser(ctx, id)
		if err != nil || len(keys) != want {
			t.Fatalf("EraseUser(%s) = %v, %v; want %d profile(s)", id, keys, err, want)
		}
	}
}

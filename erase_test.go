package profileledger_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/profileledger/profileledger"
)

func TestUserIDsAreRecordedAndFindEveryProfileOfAPerson(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	st := e.open(t, "players")
	a, b, c := start(t, st, "a"), start(t, st, "b"), start(t, st, "c")
	for _, s := range []*profileledger.Session[Player]{a, b} {
		if err := s.AddUserID(ctx, "roblox:1"); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.AddUserID(ctx, "email:x@y"); err != nil {
		t.Fatal(err)
	}
	v := a.Version()
	if err := a.AddUserID(ctx, "roblox:1"); err != nil || a.Version() != v {
		t.Fatalf("adding an id the profile has = %v, version %d→%d; want a no-op", err, v, a.Version())
	}
	if err := c.AddUserID(ctx, "roblox:2"); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveUserID(ctx, "roblox:2"); err != nil {
		t.Fatal(err)
	}
	if got := a.UserIDs(); !slices.Equal(got, []string{"email:x@y", "roblox:1"}) {
		t.Fatalf("a.UserIDs = %v", got)
	}
	for _, bad := range []string{"", string(make([]byte, 200)), "\xff"} {
		if err := a.AddUserID(ctx, bad); !errors.Is(err, profileledger.ErrInvalidInput) {
			t.Errorf("AddUserID(%q) = %v, want ErrInvalidInput", bad, err)
		}
	}
	for _, s := range []*profileledger.Session[Player]{a, b, c} {
		if err := s.End(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// A new session (from the snapshot written at End) has them.
	a2 := start(t, st, "a")
	if got := a2.UserIDs(); !slices.Equal(got, []string{"email:x@y", "roblox:1"}) {
		t.Fatalf("after a new session: %v", got)
	}
	if err := a2.End(ctx); err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx, "c")
	if err != nil || len(info.UserIDs) != 0 {
		t.Fatalf("c's info = %+v, %v", info, err)
	}
	// The index finds a person's profiles (c lost roblox:2: nothing).
	if got, err := st.UserProfiles(ctx, "roblox:1"); err != nil || !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("UserProfiles(roblox:1) = %v, %v; want [a b]", got, err)
	}
	if got, err := st.UserProfiles(ctx, "roblox:2"); err != nil || len(got) != 0 {
		t.Fatalf("UserProfiles(roblox:2) = %v, %v; want none", got, err)
	}
	if _, err := st.UserProfiles(ctx, ""); !errors.Is(err, profileledger.ErrInvalidInput) {
		t.Fatalf("UserProfiles(\"\") = %v, want ErrInvalidInput", err)
	}
	keys, err := st.EraseUser(ctx, "roblox:1")
	if err != nil || !slices.Equal(keys, []string{"a", "b"}) {
		t.Fatalf("EraseUser = %v, %v; want [a b]", keys, err)
	}
	// c had roblox:2 and lost it: EraseUser of it erases nothing.
	if keys, err := st.EraseUser(ctx, "roblox:2"); err != nil || len(keys) != 0 {
		t.Fatalf("EraseUser of a removed id = %v, %v", keys, err)
	}
	if keys, err := st.EraseUser(ctx, "roblox:1"); err != nil || len(keys) != 0 {
		t.Fatalf("EraseUser again = %v, %v; want nothing left", keys, err)
	}
}

func TestEraseLeavesOnlyATombstoneAndAFreshProfile(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	st := e.open(t, "players", profileledger.WithSnapshotEvery(2))
	s := start(t, st, "k")
	for range 5 {
		if err := s.Mutate(ctx, "loot", func(p *Player) error { p.Inventory = append(p.Inventory, "secret"); p.Name = "Alice"; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddUserID(ctx, "email:alice@example.com"); err != nil {
		t.Fatal(err)
	}
	if err := st.Message(ctx, "k", []byte("gift")); err != nil {
		t.Fatal(err)
	}
	// The holder is asked to hand over; the erasure goes ahead.
	ectx := profileledger.WithMeta(ctx, map[string]string{profileledger.MetaActor: "dpo", profileledger.MetaReason: "GDPR request 12"})
	if err := st.Erase(ectx, "k"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Done():
	default:
		t.Fatal("the holder is still live after the erasure")
	}
	var events []profileledger.Event
	for ev, err := range st.History(ctx, "k") {
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, ev)
	}
	if len(events) != 1 || events[0].Type != "pl.erased" || events[0].Meta["actor"] != "dpo" || len(events[0].Ops) != 0 {
		t.Fatalf("log after the erasure = %+v, want one tombstone", events)
	}
	for _, opts := range [][]profileledger.ReadOption{nil, {profileledger.AtTime(time.Now())}} {
		v, err := st.Get(ctx, "k", opts...)
		if err != nil || v.Exists || v.Data.Name != "" || len(v.Data.Inventory) != 0 || v.Data.Coins != 100 {
			t.Fatalf("Get after the erasure = %+v, %v; want the template", v, err)
		}
	}
	info, err := st.Info(ctx, "k")
	if err != nil || info.Exists || info.PendingMessages != 0 || len(info.UserIDs) != 0 || info.Holder != "" {
		t.Fatalf("Info after the erasure = %+v, %v", info, err)
	}
	if keys, err := st.EraseUser(ctx, "email:alice@example.com"); err != nil || len(keys) != 0 {
		t.Fatalf("the index still links the erased profile: %v, %v", keys, err)
	}
	// A fresh session; erasing again is idempotent.
	s2 := start(t, st, "k")
	if d := s2.Data(); d.Name != "" || len(d.Inventory) != 0 {
		t.Fatalf("a new session after the erasure = %+v", d)
	}
	if err := s2.Mutate(ctx, "x", addCoins(1)); err != nil {
		t.Fatal(err)
	}
	if err := st.Erase(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if err := st.Erase(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, err := range st.History(ctx, "k") {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 1 {
		t.Fatalf("%d events after erasing twice more, want the one tombstone", n)
	}
}

func TestInfoTellsWhoHoldsAProfileAndWhatItIs(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	st := e.open(t, "players", profileledger.WithNode("game-7"))
	if info, err := st.Info(ctx, "nobody"); err != nil || info.Exists || info.Holder != "" || info.Version != 0 {
		t.Fatalf("Info of a new profile = %+v, %v", info, err)
	}
	s := start(t, st, "k")
	if err := s.Mutate(ctx, "x", addCoins(1)); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := st.Message(ctx, "k", []byte("m")); err != nil {
			t.Fatal(err)
		}
	}
	info, err := st.Info(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if !info.Exists || info.Holder != "game-7" || info.HolderSession != s.ID() || info.HolderSince.IsZero() ||
		info.Version != s.Version() || info.Epoch != 1 || info.PendingMessages != 3 || info.Created.IsZero() || info.Updated.Before(info.Created) {
		t.Fatalf("Info = %+v", info)
	}
	s.HandleMessages(gifts)
	waitFor(t, "three gifts", func() bool { return len(s.Data().Inventory) == 3 })
	if err := s.End(ctx); err != nil {
		t.Fatal(err)
	}
	info, err = st.Info(ctx, "k")
	if err != nil || info.Holder != "" || info.PendingMessages != 0 || info.Epoch != 1 {
		t.Fatalf("Info after End = %+v, %v", info, err)
	}
}

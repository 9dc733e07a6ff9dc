package profileledger_test

import (
	"errors"
	"testing"

	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/ledger"
)

func TestAnImmutableLogRefusesErasureAndEveryDeletion(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	st := e.open(t, "vault", profileledger.WithImmutableLog())
	s := start(t, st, "acct:1")
	if err := s.Mutate(ctx, "deposit", func(p *Player) error { p.Coins += 10; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.AddUserID(ctx, "email:a@b"); err != nil {
		t.Fatal(err)
	}
	// A message, handled: it stays in the inbox (no purge), handled once.
	if err := st.Message(ctx, "acct:1", []byte("gift")); err != nil {
		t.Fatal(err)
	}
	handled := make(chan struct{}, 4)
	s.HandleMessages(func(p *Player, m profileledger.Message) error { p.Coins++; handled <- struct{}{}; return nil })
	<-handled
	if err := s.End(ctx); err != nil {
		t.Fatal(err)
	}
	stream, err := e.js.Stream(ctx, "PL_vault")
	if err != nil {
		t.Fatal(err)
	}
	before := stream.CachedInfo().State.Msgs
	if cfg := stream.CachedInfo().Config; !cfg.DenyDelete || !cfg.DenyPurge {
		t.Fatalf("stream config deny_delete %v deny_purge %v, want both", cfg.DenyDelete, cfg.DenyPurge)
	}

	if err := st.Erase(ctx, "acct:1"); !errors.Is(err, profileledger.ErrImmutableLog) {
		t.Fatalf("Erase = %v, want ErrImmutableLog", err)
	}
	if keys, err := st.EraseUser(ctx, "email:a@b"); !errors.Is(err, profileledger.ErrImmutableLog) || len(keys) != 0 {
		t.Fatalf("EraseUser = %v, %v; want ErrImmutableLog and nothing erased", keys, err)
	}
	// Nothing appended, nothing removed: the profile is as it was.
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != before {
		t.Fatalf("the stream holds %d messages after the refused erasures, %d before", info.State.Msgs, before)
	}
	v, err := st.Get(ctx, "acct:1")
	if err != nil || v.Data.Coins != 111 {
		t.Fatalf("Get = %+v, %v; want 111 coins", v, err)
	}
	// The JetStream API itself refuses a deletion.
	if err := stream.DeleteMsg(ctx, 1); err == nil {
		t.Fatal("DeleteMsg on an immutable log succeeded")
	}
	if err := stream.Purge(ctx); err == nil {
		t.Fatal("Purge of an immutable log succeeded")
	}
	// A store that wants an immutable log refuses a stream that is not.
	e.open(t, "plain")
	_, err = profileledger.Open(ctx, e.js, "plain", Player{}, profileledger.WithImmutableLog())
	if !errors.Is(err, ledger.ErrStreamConfig) {
		t.Fatalf("Open WithImmutableLog over a mutable stream = %v, want ErrStreamConfig", err)
	}
}

package profileledger_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/profileledger/profileledger"
)

// gifts is a handler that appends each message's payload to the
// inventory.
func gifts(p *Player, m profileledger.Message) error {
	p.Inventory = append(p.Inventory, string(m.Payload))
	return nil
}

// waitFor polls cond until it holds or the test's context ends.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx := ctxT(t)
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("gave up waiting for %s", what)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func TestMessagesAreHandledExactlyOnceInInboxOrder(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	st := e.open(t, "players")
	sender := e.open(t, "players") // another process's store: no session needed
	var want []string
	for i := range 30 { // sent while nobody holds the profile
		p := fmt.Sprintf("gift-%02d", i)
		want = append(want, p)
		mctx := profileledger.WithMeta(ctx, map[string]string{profileledger.MetaActor: "shop"})
		if err := sender.Message(mctx, "k", []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	s := start(t, st, "k")
	s.HandleMessages(gifts)
	for i := 30; i < 60; i++ { // sent while it is held
		p := fmt.Sprintf("gift-%02d", i)
		want = append(want, p)
		if err := sender.Message(ctx, "k", []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "60 gifts", func() bool { return len(s.Data().Inventory) == 60 })
	if got := s.Data().Inventory; !slices.Equal(got, want) {
		t.Fatalf("inventory = %v, want %v", got, want)
	}
	if err := s.End(ctx); err != nil {
		t.Fatal(err)
	}
	// The next session handles nothing again.
	s2 := start(t, st, "k")
	s2.HandleMessages(gifts)
	if err := sender.Message(ctx, "k", []byte("last")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the last gift", func() bool { return len(s2.Data().Inventory) == 61 })
	if err := s2.End(ctx); err != nil {
		t.Fatal(err)
	}
	var seqs []string
	for ev, err := range st.History(ctx, "k", profileledger.OfType("pl.message")) {
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, ev.Meta["pl.msg.seq"])
		if ev.Meta["pl.msg.id"] == "" {
			t.Fatalf("handled event without the message id: %v", ev.Meta)
		}
		if len(seqs) <= 30 && ev.Meta["actor"] != "shop" {
			t.Fatalf("the sender's metadata is not recorded: %v", ev.Meta)
		}
	}
	if len(seqs) != 61 || len(slices.Compact(slices.Clone(seqs))) != 61 {
		t.Fatalf("%d handled events (%d distinct messages), want 61", len(seqs), len(slices.Compact(slices.Clone(seqs))))
	}
}

func TestAMessageIDMakesARetryingSenderIdempotent(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	st := e.open(t, "players")
	for range 3 {
		if err := st.Message(ctx, "k", []byte("refund"), profileledger.MessageID("order-77")); err != nil {
			t.Fatal(err)
		}
	}
	// The same id to another profile is another message.
	if err := st.Message(ctx, "other", []byte("refund"), profileledger.MessageID("order-77")); err != nil {
		t.Fatal(err)
	}
	if err := st.Message(ctx, "k", []byte("bonus"), profileledger.MessageID("order-78")); err != nil {
		t.Fatal(err)
	}
	s := start(t, st, "k")
	s.HandleMessages(gifts)
	// Every message the inbox holds is handled (a third, had the retries
	// not been one message, would be handled too, or still pending).
	waitFor(t, "an empty inbox", func() bool {
		info, err := st.Info(ctx, "k")
		return err == nil && info.PendingMessages == 0 && len(s.Data().Inventory) >= 2
	})
	if got := s.Data().Inventory; !slices.Equal(got, []string{"refund", "bonus"}) {
		t.Fatalf("inventory = %v", got)
	}
	if err := s.End(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestAFailingHandlerLeavesTheMessagePendingAndLaterOnesBehindIt(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	st := e.open(t, "players")
	s := start(t, st, "k")
	var refuse atomic.Bool
	refuse.Store(true)
	var offered atomic.Int32
	s.HandleMessages(func(p *Player, m profileledger.Message) error {
		if string(m.Payload) == "poison" && refuse.Load() {
			offered.Add(1)
			return errors.New("not yet")
		}
		p.Inventory = append(p.Inventory, string(m.Payload))
		return nil
	})
	for _, p := range []string{"a", "poison", "b"} {
		if err := st.Message(ctx, "k", []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the poison offered twice", func() bool { return offered.Load() >= 2 })
	if got := s.Data().Inventory; !slices.Equal(got, []string{"a"}) {
		t.Fatalf("inventory while the handler refuses = %v, want [a]: b waits behind the pending message", got)
	}
	refuse.Store(false)
	waitFor(t, "all three", func() bool { return len(s.Data().Inventory) == 3 })
	if got := s.Data().Inventory; !slices.Equal(got, []string{"a", "poison", "b"}) {
		t.Fatalf("inventory = %v", got)
	}
	if err := s.End(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestAFullInboxRefusesMessages(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	st := e.open(t, "players", profileledger.WithInboxLimit(5))
	for i := range 5 {
		if err := st.Message(ctx, "k", []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Message(ctx, "k", []byte("6th")); !errors.Is(err, profileledger.ErrInboxFull) {
		t.Fatalf("6th message = %v, want ErrInboxFull", err)
	}
	// Handled messages leave the inbox, which takes more again.
	s := start(t, st, "k")
	s.HandleMessages(gifts)
	waitFor(t, "five gifts", func() bool { return len(s.Data().Inventory) == 5 })
	waitFor(t, "room in the inbox", func() bool { return st.Message(ctx, "k", []byte("6th")) == nil })
	waitFor(t, "the 6th", func() bool { return len(s.Data().Inventory) == 6 })
	if err := s.End(ctx); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct {
		name string
		err  error
	}{
		{"long id", st.Message(ctx, "k", nil, profileledger.MessageID(strings.Repeat("x", 200)))},
		{"bad meta", st.Message(profileledger.WithMeta(ctx, map[string]string{"pl.x": "y"}), "k", nil)},
		{"huge payload", st.Message(ctx, "k", make([]byte, 1<<20))},
	} {
		if !errors.Is(bad.err, profileledger.ErrInvalidInput) {
			t.Errorf("%s = %v, want ErrInvalidInput", bad.name, bad.err)
		}
	}
	if err := st.Message(ctx, "", nil); !errors.Is(err, profileledger.ErrInvalidKey) {
		t.Errorf("empty key = %v", err)
	}
}

// TestValidationRefusesANegativeBalanceInAMessageHandler: the handler's
// change is validated like any other; a refused message stays pending.
func TestValidationRefusesANegativeBalanceInAMessageHandler(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	st := e.open(t, "players", profileledger.WithValidate(noNegativeCoins))
	s := start(t, st, "k")
	v := s.Version()
	charged := make(chan struct{}, 8)
	s.HandleMessages(func(p *Player, m profileledger.Message) error {
		var n int
		fmt.Sscan(string(m.Payload), &n)
		p.Coins -= n
		charged <- struct{}{}
		return nil
	})
	if err := st.Message(ctx, "k", []byte("500")); err != nil {
		t.Fatal(err)
	}
	<-charged
	<-charged // offered twice, refused twice
	if s.Version() != v || s.Data().Coins != 100 {
		t.Fatalf("a refused handler's change was appended: version %d→%d, %d coins", v, s.Version(), s.Data().Coins)
	}
	if err := s.End(ctx); err != nil {
		t.Fatal(err)
	}
}

var _ = context.Background

// TestEveryMessageReachesAnIdleHolder sends messages one at a time to a
// live, idle holder, each after the previous one was handled: each must be
// handled without another message to wake the holder. (The holder's cue
// used to be the inbox subject alone, which can be seen before the stream
// has stored the message: about 1 in 120 then waited for the next one.)
func TestEveryMessageReachesAnIdleHolder(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	holder := e.open(t, "players")
	sender := e.open(t, "players")
	s := start(t, holder, "k")
	handled := make(chan string, 1)
	s.HandleMessages(func(p *Player, m profileledger.Message) error {
		p.Coins++
		handled <- string(m.Payload)
		return nil
	})
	for i := 1; i <= 500; i++ {
		want := fmt.Sprint(i)
		if err := sender.Message(ctx, "k", []byte(want)); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-handled:
			if got != want {
				t.Fatalf("handled %s, want %s", got, want)
			}
		case <-ctx.Done():
			info, _ := sender.Info(context.Background(), "k")
			t.Fatalf("message %d never reached the live holder (%d pending)", i, info.PendingMessages)
		}
	}
	if err := s.End(ctx); err != nil {
		t.Fatal(err)
	}
}

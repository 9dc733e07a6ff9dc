package profileledger_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/internal/keys"
	"github.com/profileledger/profileledger/ledger"
	"github.com/profileledger/profileledger/pltest"
)

type Player struct {
	Coins     int            `json:"coins"`
	Level     int            `json:"level"`
	Name      string         `json:"name"`
	Inventory []string       `json:"inventory"`
	Stats     map[string]int `json:"stats"`
}

func template() Player {
	return Player{Coins: 100, Level: 1, Inventory: []string{}, Stats: map[string]int{}}
}

// env is one embedded server and a connection to it.
type env struct {
	srv *pltest.Server
	js  jetstream.JetStream
}

func newEnv(t testing.TB) env {
	t.Helper()
	srv := pltest.Run(t)
	js := pltest.Connect(t, srv.URL())
	return env{srv: srv, js: js}
}

func (e env) open(t testing.TB, name string, opts ...profileledger.Option) *profileledger.Store[Player] {
	t.Helper()
	return openOn(t, e.js, name, opts...)
}

func openOn(t testing.TB, js jetstream.JetStream, name string, opts ...profileledger.Option) *profileledger.Store[Player] {
	t.Helper()
	opts = append([]profileledger.Option{profileledger.WithLeaseTTL(time.Second)}, opts...)
	st, err := profileledger.Open(context.Background(), js, name, template(), opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := st.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return st
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func start(t testing.TB, st *profileledger.Store[Player], key string, opts ...profileledger.SessionOption) *profileledger.Session[Player] {
	t.Helper()
	s, err := st.StartSession(ctxT(t), key, opts...)
	if err != nil {
		t.Fatalf("StartSession(%q): %v", key, err)
	}
	return s
}

func addCoins(n int) func(*Player) error {
	return func(p *Player) error { p.Coins += n; return nil }
}

func TestNewProfileStartsAsTemplateAndEndedDataPersists(t *testing.T) {
	e := newEnv(t)
	st := e.open(t, "players")
	ctx := ctxT(t)
	s := start(t, st, "user:1")
	if got := s.Data(); got.Coins != 100 || got.Level != 1 {
		t.Fatalf("new profile = %+v, want the template", got)
	}
	if err := s.Mutate(ctx, "coins.earned", addCoins(5)); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ctx, "inventory.added", profileledger.Add("/inventory/-", "sword")); err != nil {
		t.Fatal(err)
	}
	if err := s.End(ctx); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(s.Err(), profileledger.ErrSessionEnded) {
		t.Fatalf("Err after End = %v, want ErrSessionEnded", s.Err())
	}
	if err := s.Mutate(ctx, "coins.earned", addCoins(1)); !errors.Is(err, profileledger.ErrSessionEnded) {
		t.Fatalf("Mutate after End = %v, want ErrSessionEnded", err)
	}
	s2 := start(t, st, "user:1")
	got := s2.Data()
	if got.Coins != 105 || len(got.Inventory) != 1 || got.Inventory[0] != "sword" {
		t.Fatalf("second session sees %+v, want coins 105 and a sword", got)
	}
	if s2.LoadReport().SnapshotVersion == 0 {
		t.Errorf("second session did not start from the snapshot written at End: %+v", s2.LoadReport())
	}
	v, err := st.Get(ctx, "user:1")
	if err != nil || v.Data.Coins != 105 {
		t.Fatalf("Get = %+v, %v", v, err)
	}
}

func TestDataIsACopy(t *testing.T) {
	e := newEnv(t)
	st := e.open(t, "players")
	s := start(t, st, "k")
	d := s.Data()
	d.Stats["x"] = 9
	d.Coins = 0
	if got := s.Data(); got.Coins != 100 || len(got.Stats) != 0 {
		t.Fatalf("editing Data's result changed the session: %+v", got)
	}
}

func TestBadInputIsRefusedAndNothingIsAppended(t *testing.T) {
	e := newEnv(t)
	st := e.open(t, "players", profileledger.WithMaxEventSize(4096))
	ctx := ctxT(t)
	s := start(t, st, "p")
	v0 := s.Version()
	cases := []struct {
		name string
		do   func() error
		want error
		text string
	}{
		{"inc on a string", func() error { return s.Apply(ctx, "x", profileledger.Inc("/name", 1)) }, profileledger.ErrInvalidInput, "/name"},
		{"missing path", func() error { return s.Apply(ctx, "x", profileledger.Set("/nope/deeper", 1)) }, profileledger.ErrInvalidInput, "/nope"},
		{"type the struct cannot hold", func() error { return s.Apply(ctx, "x", profileledger.Set("/coins", "lots")) }, profileledger.ErrInvalidInput, "type"},
		{"event over the size limit", func() error {
			return s.Mutate(ctx, "x", func(p *Player) error { p.Name = strings.Repeat("a", 5000); return nil })
		}, profileledger.ErrTooLarge, "limit"},
		{"empty event type", func() error { return s.Mutate(ctx, "", addCoins(1)) }, profileledger.ErrInvalidInput, "empty"},
		{"reserved event type", func() error { return s.Mutate(ctx, "session.started", addCoins(1)) }, profileledger.ErrInvalidInput, "reserved"},
		{"no ops", func() error { return s.Apply(ctx, "x") }, profileledger.ErrInvalidInput, "at least one op"},
		{"function error", func() error {
			return s.Mutate(ctx, "x", func(p *Player) error { p.Coins = 0; return errBoom })
		}, errBoom, "boom"},
		{"function panic", func() error {
			return s.Mutate(ctx, "x", func(p *Player) error { p.Coins = 0; panic("kaput") })
		}, nil, "panicked"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.do()
			if err == nil || (c.want != nil && !errors.Is(err, c.want)) || !strings.Contains(err.Error(), c.text) {
				t.Fatalf("err = %v, want %v mentioning %q", err, c.want, c.text)
			}
			if s.Version() != v0 || s.Data().Coins != 100 {
				t.Fatalf("bad input changed the session: version %d (was %d), %+v", s.Version(), v0, s.Data())
			}
		})
	}
	if _, err := st.StartSession(ctx, ""); !errors.Is(err, profileledger.ErrInvalidKey) {
		t.Errorf("empty key: %v, want ErrInvalidKey", err)
	}
	if _, err := st.StartSession(ctx, strings.Repeat("k", 257)); !errors.Is(err, profileledger.ErrInvalidKey) {
		t.Errorf("long key: %v, want ErrInvalidKey", err)
	}
	if err := s.Mutate(ctx, "coins.earned", addCoins(1)); err != nil {
		t.Fatalf("session unusable after bad input: %v", err)
	}
	if s.Data().Coins != 101 {
		t.Fatalf("coins = %d, want 101", s.Data().Coins)
	}
	// Nothing of the bad input reached the log: fold it from scratch.
	v, err := st.Get(ctx, "p")
	if err != nil || v.Data.Coins != 101 || v.Version != s.Version() {
		t.Fatalf("log says %+v (%v), session says version %d", v, err, s.Version())
	}
}

var errBoom = errors.New("boom")

func TestSpecialKeysAreIsolated(t *testing.T) {
	e := newEnv(t)
	st := e.open(t, "players")
	ctx := ctxT(t)
	keys := []string{"a.b", "a.*", "a.>", ">", "*", "a b", "ü", "%41", "A", "_41", "a"}
	sessions := map[string]*profileledger.Session[Player]{}
	for _, k := range keys {
		sessions[k] = start(t, st, k)
	}
	for i, k := range keys {
		if err := sessions[k].Mutate(ctx, "set", func(p *Player) error { p.Coins = 1000 + i; return nil }); err != nil {
			t.Fatalf("%q: %v", k, err)
		}
	}
	for i, k := range keys {
		v, err := st.Get(ctx, k)
		if err != nil || v.Data.Coins != 1000+i {
			t.Errorf("Get(%q) = coins %d, %v; want %d", k, v.Data.Coins, err, 1000+i)
		}
		if err := sessions[k].End(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func connectEnv(t testing.TB, e env) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	js := pltest.Connect(t, e.srv.URL())
	return js.Conn(), js
}

// lastEvent returns key's last event of type typ in store "players".
func lastEvent(t testing.TB, e env, key, typ string) ledger.Event {
	t.Helper()
	ctx := ctxT(t)
	st, err := e.js.Stream(ctx, "PL_players")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := keys.Encode(key)
	if err != nil {
		t.Fatal(err)
	}
	var last ledger.Event
	err = ledger.NewLog(e.js, st, 1<<20).Read(ctx, "pl.players.ev."+tok, 0, 0, func(r ledger.Record) error {
		if r.Err == nil && r.Event.Type == typ {
			last = r.Event
		}
		return nil
	})
	if err != nil || last.ID == "" {
		t.Fatalf("no %q event of %q: %v", typ, key, err)
	}
	return last
}

package profileledger_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/ledger"
)

// Tests for issue 17: history, rollback, validation, migrations, who-did-it
// metadata, store-wide listing.

func TestRollbackAfterAThousandEventsRestoresTheOldDataInOneEvent(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	st := e.open(t, "players")
	s := start(t, st, "k")
	var then Player
	var thenVersion uint64
	for i := range 1000 {
		err := s.Mutate(ctx, "play", func(p *Player) error {
			p.Coins += i % 7
			p.Level = i / 10
			if i%3 == 0 {
				p.Inventory = append(p.Inventory, fmt.Sprintf("item-%d", i))
			}
			if i%50 == 0 && len(p.Inventory) > 2 {
				p.Inventory = p.Inventory[1:]
			}
			p.Stats[fmt.Sprintf("s%d", i%13)] = i
			return nil
		})
		if err != nil {
			t.Fatalf("mutation %d: %v", i, err)
		}
		if i == 299 {
			then, thenVersion = s.Data(), s.Version()
		}
	}
	before := s.Version()
	rctx := profileledger.WithMeta(ctx, map[string]string{profileledger.MetaActor: "support:alice"})
	if err := s.Rollback(rctx, thenVersion, "ticket 4411: duped items"); err != nil {
		t.Fatal(err)
	}
	if got := s.Data(); fmt.Sprint(got) != fmt.Sprint(then) {
		t.Fatalf("after the rollback:\n got %+v\nwant %+v", got, then)
	}
	var after []profileledger.Event
	for ev, err := range st.History(ctx, "k", profileledger.FromVersion(before+1)) {
		if err != nil {
			t.Fatal(err)
		}
		after = append(after, ev)
	}
	if len(after) != 1 || after[0].Type != "pl.rollback" {
		t.Fatalf("events after the rollback's start: %+v, want one pl.rollback", after)
	}
	ev := after[0]
	if ev.Meta["pl.to"] != fmt.Sprint(thenVersion) || ev.Meta["reason"] != "ticket 4411: duped items" || ev.Meta["actor"] != "support:alice" {
		t.Fatalf("rollback meta = %v", ev.Meta)
	}
	for _, read := range [][]profileledger.ReadOption{nil, {profileledger.AtTime(time.Now())}} {
		v, err := st.Get(ctx, "k", read...)
		if err != nil || fmt.Sprint(v.Data) != fmt.Sprint(then) {
			t.Fatalf("Get after the rollback = %+v, %v; want %+v", v.Data, err, then)
		}
	}
	for _, bad := range []struct {
		version uint64
		reason  string
	}{{0, "r"}, {s.Version() + 1, "r"}, {thenVersion, ""}, {thenVersion, "\xff"}} {
		if err := s.Rollback(ctx, bad.version, bad.reason); !errors.Is(err, profileledger.ErrInvalidInput) {
			t.Errorf("Rollback(%d, %q) = %v, want ErrInvalidInput", bad.version, bad.reason, err)
		}
	}
	if err := s.End(ctx); err != nil {
		t.Fatal(err)
	}
}

var errNegative = errors.New("negative balance")

func noNegativeCoins(p *Player) error {
	if p.Coins < 0 {
		return fmt.Errorf("%w: %d coins", errNegative, p.Coins)
	}
	return nil
}

func TestValidationRefusesANegativeBalanceEverywhere(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	st := e.open(t, "players", profileledger.WithValidate(noNegativeCoins))
	a, b := start(t, st, "a"), start(t, st, "b")
	va, vb := a.Version(), b.Version()
	refused := map[string]error{
		"Mutate": a.Mutate(ctx, "spend", func(p *Player) error { p.Coins -= 500; return nil }),
		"Apply":  a.Apply(ctx, "spend", profileledger.Inc("/coins", -500)),
		"Trade": profileledger.Trade(ctx, "pay", a, b, func(pa, pb *Player) error {
			pa.Coins -= 500
			pb.Coins += 500
			return nil
		}),
	}
	for what, err := range refused {
		if !errors.Is(err, profileledger.ErrInvalidInput) || !errors.Is(err, errNegative) {
			t.Errorf("%s = %v, want an error matching ErrInvalidInput and the hook's", what, err)
		}
	}
	if a.Version() != va || b.Version() != vb || a.Data().Coins != 100 || b.Data().Coins != 100 {
		t.Fatalf("something was appended or changed: versions %d→%d, %d→%d; coins %d, %d", va, a.Version(), vb, b.Version(), a.Data().Coins, b.Data().Coins)
	}
	// The session is still usable, and a valid change passes.
	if err := a.Mutate(ctx, "spend", func(p *Player) error { p.Coins -= 100; return nil }); err != nil {
		t.Fatal(err)
	}
	// A rollback is validated too.
	if err := a.Mutate(ctx, "earn", func(p *Player) error { p.Coins += 50; return nil }); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*profileledger.Session[Player]{a, b} {
		if err := s.End(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// A hook of another type is refused at Open.
	_, err := profileledger.Open(ctx, e.js, "players", template(), profileledger.WithValidate(func(*PlayerV2) error { return nil }))
	if !errors.Is(err, profileledger.ErrInvalidInput) {
		t.Fatalf("Open with a hook of another type = %v, want ErrInvalidInput", err)
	}
}

func TestRollbackIsValidated(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	never := errors.New("level may not go down")
	var floor int
	st := e.open(t, "players", profileledger.WithValidate(func(p *Player) error {
		if p.Level < floor {
			return never
		}
		return nil
	}))
	s := start(t, st, "k")
	if err := s.Mutate(ctx, "lvl", func(p *Player) error { p.Level = 5; return nil }); err != nil {
		t.Fatal(err)
	}
	v := s.Version()
	if err := s.Mutate(ctx, "lvl", func(p *Player) error { p.Level = 9; return nil }); err != nil {
		t.Fatal(err)
	}
	floor = 9
	if err := s.Rollback(ctx, v, "test"); !errors.Is(err, never) || !errors.Is(err, profileledger.ErrInvalidInput) {
		t.Fatalf("Rollback to level 5 = %v, want the hook's error", err)
	}
	if s.Data().Level != 9 {
		t.Fatal("the refused rollback changed the data")
	}
	if err := s.End(ctx); err != nil {
		t.Fatal(err)
	}
}

// Three releases of a game server's profile type.
type profileR0 struct {
	Gold int `json:"gold"`
}
type profileR2 struct {
	Coins int `json:"coins"`
	Gems  int `json:"gems"`
}
type wallet struct {
	Coins int `json:"coins"`
}
type profileR3 struct {
	Wallet wallet `json:"wallet"`
	Gems   int    `json:"gems"`
}

var migrationChain = []profileledger.Migration{
	{Name: "gold-is-coins", Up: func(doc map[string]any) error {
		doc["coins"] = doc["gold"]
		delete(doc, "gold")
		return nil
	}},
	{Name: "gems", Up: func(doc map[string]any) error {
		if _, ok := doc["gems"]; !ok {
			doc["gems"] = json.Number("3")
		}
		return nil
	}},
	{Name: "wallet", Up: func(doc map[string]any) error {
		doc["wallet"] = map[string]any{"coins": doc["coins"]}
		delete(doc, "coins")
		return nil
	}},
}

// TestAMigrationChainRunsOnceAcrossHandOversAndServersOfTwoVersions: a
// profile written before migrations existed is taken by a server that
// knows two steps, then (hand-over) by one that knows three, then by the
// older again, which refuses it, then by the newer again. Each step runs
// exactly once; reads see the migrated shape.
func TestAMigrationChainRunsOnceAcrossHandOversAndServersOfTwoVersions(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	opts := []profileledger.Option{profileledger.WithLeaseTTL(time.Second)}
	r0, err := profileledger.Open(ctx, e.js, "game", profileR0{}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer r0.Close(ctx)
	s0, err := r0.StartSession(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	if err := s0.Mutate(ctx, "loot", func(p *profileR0) error { p.Gold = 42; return nil }); err != nil {
		t.Fatal(err)
	}
	r2, err := profileledger.Open(ctx, e.js, "game", profileR2{}, append(opts, profileledger.WithMigrations(migrationChain[:2]...))...)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close(ctx)
	r3, err := profileledger.Open(ctx, e.js, "game", profileR3{}, append(opts, profileledger.WithMigrations(migrationChain...))...)
	if err != nil {
		t.Fatal(err)
	}
	defer r3.Close(ctx)

	// Reads on the newer servers see their shape before any session ran.
	if v, err := r3.Get(ctx, "p"); err != nil || v.Data != (profileR3{Wallet: wallet{Coins: 42}, Gems: 3}) {
		t.Fatalf("r3 Get before migrating = %+v, %v", v.Data, err)
	}
	s2, err := r2.StartSession(ctx, "p") // hand-over from r0's session
	if err != nil {
		t.Fatal(err)
	}
	if got := s2.Data(); got != (profileR2{Coins: 42, Gems: 3}) {
		t.Fatalf("r2 session = %+v", got)
	}
	if err := s2.Mutate(ctx, "spend", func(p *profileR2) error { p.Coins -= 2; return nil }); err != nil {
		t.Fatal(err)
	}
	s3, err := r3.StartSession(ctx, "p") // hand-over from r2
	if err != nil {
		t.Fatal(err)
	}
	if got := s3.Data(); got != (profileR3{Wallet: wallet{Coins: 40}, Gems: 3}) {
		t.Fatalf("r3 session = %+v", got)
	}
	if err := s3.End(ctx); err != nil {
		t.Fatal(err)
	}
	// The older server may read but not write a profile migrated further.
	if _, err := r2.StartSession(ctx, "p"); !errors.Is(err, profileledger.ErrMigratedByNewer) {
		t.Fatalf("r2 StartSession after r3 migrated = %v, want ErrMigratedByNewer", err)
	}
	if v, err := r2.Get(ctx, "p"); err != nil || v.Data.Gems != 3 {
		t.Fatalf("r2 Get after r3 migrated = %+v, %v", v.Data, err)
	}
	// The newer server again (from the snapshot written at End), twice.
	for range 2 {
		s, err := r3.StartSession(ctx, "p")
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Data(); got != (profileR3{Wallet: wallet{Coins: 40}, Gems: 3}) {
			t.Fatalf("r3 session again = %+v", got)
		}
		if err := s.End(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var steps []string
	for ev, err := range r3.History(ctx, "p", profileledger.OfType("pl.migrate")) {
		if err != nil {
			t.Fatal(err)
		}
		steps = append(steps, ev.Meta["pl.step"]+":"+ev.Meta["pl.migration"])
	}
	if want := []string{"1:gold-is-coins", "2:gems", "3:wallet"}; !slices.Equal(steps, want) {
		t.Fatalf("migration events = %v, want each step once: %v", steps, want)
	}
	// A new profile starts as the template: migrated without running a step.
	n, err := r3.StartSession(ctx, "new")
	if err != nil {
		t.Fatal(err)
	}
	if err := n.End(ctx); err != nil {
		t.Fatal(err)
	}
	for ev, err := range r3.History(ctx, "new") {
		if err != nil || ev.Type == "pl.migrate" {
			t.Fatalf("a new profile's history has %+v, %v", ev, err)
		}
	}
	// Bad chains are refused at Open.
	for _, bad := range [][]profileledger.Migration{
		{{Name: "", Up: migrationChain[0].Up}},
		{{Name: "x"}},
		{migrationChain[0], migrationChain[0]},
	} {
		if _, err := profileledger.Open(ctx, e.js, "game", profileR3{}, profileledger.WithMigrations(bad...)); !errors.Is(err, profileledger.ErrInvalidInput) {
			t.Errorf("Open with %d bad steps = %v, want ErrInvalidInput", len(bad), err)
		}
	}
}

func TestHistoryStreamsEveryEventWithItsMetaAndFilters(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	st := e.open(t, "players")
	s := start(t, st, "k")
	mctx := profileledger.WithMeta(ctx, map[string]string{profileledger.MetaActor: "shop", profileledger.MetaRequestID: "req-1"})
	if err := s.Mutate(mctx, "purchase", addCoins(-10)); err != nil {
		t.Fatal(err)
	}
	mid := time.Now()
	time.Sleep(20 * time.Millisecond)
	// Group commit: concurrent mutations share a message and differ by Index.
	errs := make(chan error, 8)
	for range 8 {
		go func() { errs <- s.Mutate(ctx, "quest", addCoins(1)) }()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// A foreign message on the subject is reported and passed.
	if _, err := e.js.Publish(ctx, "pl.players.ev.k", []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	if err := s.Mutate(ctx, "quest", addCoins(1)); err != nil {
		t.Fatal(err)
	}
	var all []profileledger.Event
	bad := 0
	for ev, err := range st.History(ctx, "k") {
		if errors.Is(err, profileledger.ErrBadEvent) {
			bad++
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, ev)
	}
	if bad != 1 {
		t.Errorf("garbage reported %d times, want once", bad)
	}
	seen := map[[2]uint64]bool{}
	for i, ev := range all {
		k := [2]uint64{ev.Seq, uint64(ev.Index)}
		if seen[k] {
			t.Fatalf("(Seq, Index) %v twice", k)
		}
		seen[k] = true
		if i > 0 && ev.Seq < all[i-1].Seq {
			t.Fatalf("out of order at %d", i)
		}
	}
	if all[0].Type != "session.started" || all[1].Type != "purchase" || all[1].Meta["actor"] != "shop" || all[1].Meta["request_id"] != "req-1" || len(all[1].Ops) == 0 {
		t.Fatalf("first events = %+v", all[:2])
	}
	if len(all) != 11 {
		t.Fatalf("%d events, want 11", len(all))
	}
	count := func(opts ...profileledger.HistoryOption) int {
		n := 0
		for _, err := range st.History(ctx, "k", opts...) {
			if err == nil {
				n++
			}
		}
		return n
	}
	if n := count(profileledger.OfType("quest")); n != 9 {
		t.Errorf("OfType(quest) = %d, want 9", n)
	}
	if n := count(profileledger.FromVersion(all[1].Seq), profileledger.ToVersion(all[1].Seq)); n != 1 {
		t.Errorf("one version = %d events, want 1", n)
	}
	if n := count(profileledger.Until(mid)); n != 2 {
		t.Errorf("Until = %d events, want 2", n)
	}
	if n := count(profileledger.Since(mid)); n != 9 {
		t.Errorf("Since = %d events, want 9", n)
	}
	n := 0
	for range st.History(ctx, "k") {
		if n++; n == 3 {
			break // stopping early stops the read
		}
	}
	for _, err := range st.History(ctx, "k", profileledger.FromVersion(9), profileledger.ToVersion(2)) {
		if !errors.Is(err, profileledger.ErrInvalidInput) {
			t.Fatalf("inverted bounds = %v", err)
		}
	}
	if err := s.End(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestBadMetadataIsRefusedAndNothingIsAppended(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	st := e.open(t, "players")
	a, b := start(t, st, "a"), start(t, st, "b")
	v := a.Version()
	for name, meta := range map[string]map[string]string{
		"reserved key":     {"trade": "forged"},
		"library prefix":   {"pl.to": "1"},
		"empty key":        {"": "x"},
		"invalid UTF-8":    {"actor": "\xff"},
		"value too large":  {"actor": strings.Repeat("a", 2000)},
		"too many keys":    manyKeys(40),
		"too large in all": manyLarge(),
	} {
		bctx := profileledger.WithMeta(ctx, meta)
		for what, err := range map[string]error{
			"Mutate":   a.Mutate(bctx, "x", addCoins(1)),
			"Apply":    a.Apply(bctx, "x", profileledger.Inc("/coins", 1)),
			"Trade":    profileledger.Trade(bctx, "x", a, b, func(pa, pb *Player) error { pa.Coins++; return nil }),
			"Rollback": a.Rollback(bctx, v, "r"),
		} {
			if !errors.Is(err, profileledger.ErrInvalidInput) {
				t.Errorf("%s with %s = %v, want ErrInvalidInput", what, name, err)
			}
		}
	}
	if a.Version() != v {
		t.Fatal("something was appended")
	}
	for _, s := range []*profileledger.Session[Player]{a, b} {
		if err := s.End(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// A trade records the caller's meta on both sides.
}

func manyKeys(n int) map[string]string {
	m := map[string]string{}
	for i := range n {
		m[fmt.Sprint("k", i)] = "v"
	}
	return m
}

func manyLarge() map[string]string {
	m := map[string]string{}
	for i := range 5 {
		m[fmt.Sprint("k", i)] = strings.Repeat("v", 1000)
	}
	return m
}

func TestATradeRecordsTheCallersMetaOnBothSides(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	st := e.open(t, "players")
	a, b := start(t, st, "a"), start(t, st, "b")
	tctx := profileledger.WithMeta(ctx, map[string]string{profileledger.MetaActor: "market", profileledger.MetaReason: "listing 7"})
	if err := profileledger.Trade(tctx, "sale", a, b, func(pa, pb *Player) error { pa.Coins -= 5; pb.Coins += 5; return nil }); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b"} {
		ev := lastEvent(t, e, k, "sale")
		if ev.Meta["actor"] != "market" || ev.Meta["reason"] != "listing 7" || ev.Meta[ledger.MetaTrade] == "" {
			t.Fatalf("%s's trade event meta = %v", k, ev.Meta)
		}
	}
	for _, s := range []*profileledger.Session[Player]{a, b} {
		if err := s.End(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

func TestKeysListsEveryProfileOnce(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	st := e.open(t, "players")
	want := []string{"a.b", "*", ">", "a b", "ü", "%41", "user:1"}
	for i := range 120 {
		want = append(want, fmt.Sprintf("user:%03d", i))
	}
	for _, k := range want {
		s := start(t, st, k)
		if err := s.End(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for k, err := range st.Keys(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, k)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("Keys = %d keys %v..., want %d", len(got), got[:min(5, len(got))], len(want))
	}
	n := 0
	for range st.Keys(ctx) {
		if n++; n == 2 {
			break
		}
	}
}

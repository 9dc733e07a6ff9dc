package investigate_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/investigate"
	"github.com/profileledger/profileledger/pltest"
)

// pagedStore returns a store where profile "k" has a session.started and
// n loot events, with another profile's events in between (so that k's
// versions are sparse among the stream's sequences), all ended.
func pagedStore(t *testing.T, n int) (*profileledger.Store[player], []uint64) {
	t.Helper()
	st := pltest.Store(t, player{Inventory: []string{}})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	k, err := st.StartSession(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	o, err := st.StartSession(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := k.Apply(ctx, "loot", profileledger.Add("/inventory/-", strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
		if err := o.Apply(ctx, "noise", profileledger.Add("/inventory/-", strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []*profileledger.Session[player]{k, o} {
		if err := s.End(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var seqs []uint64
	for ev, err := range st.History(ctx, "k") {
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, ev.Seq)
	}
	return st, seqs
}

func pageSeqs(p investigate.Page) []uint64 {
	var out []uint64
	for _, e := range p.Entries {
		out = append(out, e.Seq)
	}
	return out
}

// TestLogPagesWalkTheWholeLogForwardAndBack: pages of 7 from the start,
// followed by Next, and pages from the last one, followed by Prev, each
// cover the log once, in order, and the ends have no Prev / Next.
func TestLogPagesWalkTheWholeLogForwardAndBack(t *testing.T) {
	st, seqs := pagedStore(t, 30) // start, 30 loot, end: 32 events
	ctx := t.Context()
	for name, src := range map[string]investigate.Source{"snapshots": investigate.FromStore(st), "replay": st} {
		var forward []uint64
		q := investigate.PageQuery{Limit: 7}
		for pages := 0; ; pages++ {
			p, err := investigate.LogPage(ctx, src, "k", q)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Entries) > 7 || (pages == 0) != (p.Prev == 0) {
				t.Fatalf("%s: page %d: %d entries, prev %d", name, pages, len(p.Entries), p.Prev)
			}
			forward = append(forward, pageSeqs(p)...)
			if p.Next == 0 {
				break
			}
			q = investigate.PageQuery{From: p.Next, Limit: 7}
		}
		if !slices.Equal(forward, seqs) {
			t.Fatalf("%s: forward pages %v, want %v", name, forward, seqs)
		}
		var back []uint64
		q = investigate.PageQuery{Before: investigate.LastPage, Limit: 7}
		for pages := 0; ; pages++ {
			p, err := investigate.LogPage(ctx, src, "k", q)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Entries) != min(7, len(seqs)-len(back)) || (pages == 0) != (p.Next == 0) {
				t.Fatalf("%s: page %d from the end: %v, next %d", name, pages, pageSeqs(p), p.Next)
			}
			back = append(pageSeqs(p), back...)
			if p.Prev == 0 {
				break
			}
			q = investigate.PageQuery{Before: p.Prev, Limit: 7}
		}
		if !slices.Equal(back, seqs) {
			t.Fatalf("%s: backward pages %v, want %v", name, back, seqs)
		}
	}
}

func TestLogPageRefusesBadQueries(t *testing.T) {
	st := pltest.Store(t, player{})
	for _, q := range []investigate.PageQuery{{Limit: -1}, {Limit: investigate.MaxPageLimit + 1}, {From: 3, Before: 9}} {
		if _, err := investigate.LogPage(t.Context(), st, "k", q); !errors.Is(err, profileledger.ErrInvalidInput) {
			t.Errorf("LogPage(%+v) = %v, want ErrInvalidInput", q, err)
		}
	}
	p, err := investigate.LogPage(t.Context(), st, "nobody", investigate.PageQuery{Before: investigate.LastPage})
	if err != nil || len(p.Entries) != 0 || p.Prev != 0 || p.Next != 0 {
		t.Errorf("a profile without events: %+v, %v", p, err)
	}
}

// TestEventAtShowsTheDataBeforeAndAfterAndStateAtAnyVersion: the third
// loot event added item 2 to [0 1]; the state at its version is the same
// data, and a version before the first event is no point at all.
func TestEventAtShowsTheDataBeforeAndAfterAndStateAtAnyVersion(t *testing.T) {
	st, seqs := pagedStore(t, 5)
	ctx := t.Context()
	d, err := investigate.EventAt(ctx, st, "k", seqs[3], 0)
	if err != nil {
		t.Fatal(err)
	}
	if d.Type != "loot" || string(d.Before) != `{"inventory":["0","1"]}` || string(d.After) != `{"inventory":["0","1","2"]}` {
		t.Fatalf("event %d: type %s, before %s, after %s", seqs[3], d.Type, d.Before, d.After)
	}
	if len(d.Changes) != 1 || d.Changes[0].Path != "/inventory/2" || string(d.Changes[0].After) != `"2"` {
		t.Errorf("changes %+v", d.Changes)
	}
	if _, err := investigate.EventAt(ctx, st, "k", seqs[3]+1, 0); !errors.Is(err, investigate.ErrNoSuchEvent) {
		t.Errorf("an other profile's sequence: %v, want ErrNoSuchEvent", err)
	}
	s, err := investigate.StateAt(ctx, st, "k", investigate.Point{Version: seqs[3] + 1})
	if err != nil || s.Version != seqs[3] || string(s.Data) != `{"inventory":["0","1","2"]}` {
		t.Errorf("StateAt(%d) = %+v, %v", seqs[3]+1, s, err)
	}
	if _, err := investigate.StateAt(ctx, st, "k", investigate.Point{Version: seqs[0] - 1}); !errors.Is(err, investigate.ErrNoSuchPoint) {
		t.Errorf("StateAt before the first event: %v, want ErrNoSuchPoint", err)
	}
}

// TestResolveTellsKeysUserIDsAndValuesApart: a key with events, a user id
// of the index, and anything else (an item, a key with no events, an
// invalid key) are told apart.
func TestResolveTellsKeysUserIDsAndValuesApart(t *testing.T) {
	st := pltest.Store(t, player{Inventory: []string{}})
	ctx := t.Context()
	s, err := st.StartSession(ctx, "user:<1>")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddUserID(ctx, "roblox:9"); err != nil {
		t.Fatal(err)
	}
	if err := s.End(ctx); err != nil {
		t.Fatal(err)
	}
	src := investigate.FromStore(st)
	for _, tt := range []struct {
		q    string
		want investigate.Found
	}{
		{"user:<1>", investigate.Found{Query: "user:<1>", Key: "user:<1>"}},
		{"roblox:9", investigate.Found{Query: "roblox:9", UserProfiles: []string{"user:<1>"}}},
		{"sword#7", investigate.Found{Query: "sword#7", Value: "sword#7"}},
		{"", investigate.Found{Query: "", Value: ""}},
	} {
		got, err := investigate.Resolve(ctx, src, tt.q)
		if err != nil {
			t.Fatal(err)
		}
		if g, w := mustJSON(got), mustJSON(tt.want); g != w {
			t.Errorf("Resolve(%q) = %s, want %s", tt.q, g, w)
		}
	}
}

func TestStatsCountsProfilesAndEventMessages(t *testing.T) {
	srv := pltest.Run(t)
	js := pltest.Connect(t, srv.URL())
	ctx := t.Context()
	st, err := profileledger.Open(ctx, js, "stats", player{Inventory: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)
	for _, k := range []string{"a", "b"} {
		s, err := st.StartSession(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.End(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Message(ctx, "a", []byte(`"hi"`)); err != nil {
		t.Fatal(err)
	}
	s, err := investigate.Stats(ctx, js, "stats")
	if err != nil {
		t.Fatal(err)
	}
	// Each profile: session.started and session.ended; and one inbox message.
	if s.Profiles != 2 || s.EventMessages != 4 || s.StreamMessages != 5 || s.LastSeq != 5 {
		b, _ := json.Marshal(s)
		t.Errorf("stats %s", b)
	}
	if last, err := investigate.LastSeq(ctx, js, "stats", "b"); err != nil || last != 4 {
		t.Errorf("LastSeq of b = %d, %v; want 4", last, err)
	}
	if last, err := investigate.LastSeq(ctx, js, "stats", "nobody"); err != nil || last != 0 {
		t.Errorf("LastSeq of a profile without events = %d, %v; want 0", last, err)
	}
	if _, err := investigate.Stats(ctx, js, "nostore"); !errors.Is(err, investigate.ErrNoStore) {
		t.Errorf("a missing store: %v, want ErrNoStore", err)
	}
}

// TestLogKeepsTheEventsOfAMetaValue: the Meta filter finds one side of a
// trade by its id, and nothing for an id no event has.
func TestLogKeepsTheEventsOfAMetaValue(t *testing.T) {
	st := pltest.Store(t, player{Inventory: []string{}})
	ctx := t.Context()
	a, err := st.StartSession(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.StartSession(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Apply(ctx, "loot", profileledger.Add("/inventory/-", "axe")); err != nil {
		t.Fatal(err)
	}
	if err := profileledger.Trade(ctx, "give", a, b, func(x, y *player) error {
		x.Inventory, y.Inventory = []string{}, []string{"axe"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var trade string
	for e, err := range investigate.Log(ctx, st, "a", investigate.LogFilter{Types: []string{"give"}}) {
		if err != nil {
			t.Fatal(err)
		}
		trade = e.Meta["trade"]
	}
	for _, tt := range []struct {
		id   string
		want int
	}{{trade, 1}, {"no-such-trade", 0}} {
		n := 0
		for e, err := range investigate.Log(ctx, st, "b", investigate.LogFilter{Meta: map[string]string{"trade": tt.id}}) {
			if err != nil || e.Meta["with"] != "a" {
				t.Fatalf("%+v %v", e, err)
			}
			n++
		}
		if n != tt.want {
			t.Errorf("trade %q: %d events of b, want %d", tt.id, n, tt.want)
		}
	}
}

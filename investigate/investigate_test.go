package investigate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/internal/keys"
	"github.com/profileledger/profileledger/internal/names"
	"github.com/profileledger/profileledger/investigate"
	"github.com/profileledger/profileledger/pltest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSummarizeOpsIsCompact(t *testing.T) {
	tests := []struct {
		ops  []profileledger.EventOp
		want string
	}{
		{nil, "-"},
		{[]profileledger.EventOp{{Op: "inc", Path: "/coins", Value: json.RawMessage(`50`)}}, "/coins +50"},
		{[]profileledger.EventOp{{Op: "inc", Path: "/coins", Value: json.RawMessage(`-5`)}}, "/coins -5"},
		{[]profileledger.EventOp{{Op: "add", Path: "/items/-", Value: json.RawMessage(`"sword#91"`)}}, `/items/- add "sword#91"`},
		{[]profileledger.EventOp{{Op: "replace", Path: "/name", Value: json.RawMessage(`"x"`)}, {Op: "remove", Path: "/old"}}, `/name = "x"; /old remove`},
		{[]profileledger.EventOp{{Op: "move", Path: "/b", From: "/a"}}, "/b move from /a"},
		{[]profileledger.EventOp{{Op: "add", Path: "/s", Value: json.RawMessage(`"` + strings.Repeat("a", 60) + `"`)}}, `/s add "` + strings.Repeat("a", 39) + "…"},
	}
	for _, tt := range tests {
		if got := investigate.SummarizeOps(tt.ops); got != tt.want {
			t.Errorf("SummarizeOps(%v) = %q, want %q", tt.ops, got, tt.want)
		}
	}
}

func TestTouchesMatchesPrefixesParentsAndAppends(t *testing.T) {
	tests := []struct {
		path, prefix string
		want         bool
	}{
		{"/coins", "/coins", true},
		{"/coins", "/coin", false},
		{"/inventory/3/id", "/inventory", true},
		{"/inventory", "/inventory/3/id", true}, // the parent replaced
		{"/inventory/-", "/inventory/2", true},
		{"/stats/hp", "/inventory", false},
		{"/x", "", true},
	}
	for _, tt := range tests {
		ops := []profileledger.EventOp{{Op: "replace", Path: tt.path}}
		if got := investigate.Touches(ops, tt.prefix); got != tt.want {
			t.Errorf("Touches(%q, %q) = %v, want %v", tt.path, tt.prefix, got, tt.want)
		}
	}
}

func TestPatternMatchesWildcardsInObjectsAndArrays(t *testing.T) {
	var doc any
	json.Unmarshal([]byte(`{"inventory":[{"id":"a"},{"id":"b","n":1}],"bank":{"x/y":{"id":"c"}}}`), &doc)
	for _, tt := range []struct {
		pattern string
		want    []string
	}{
		{"/inventory/*/id", []string{"/inventory/0/id=a", "/inventory/1/id=b"}},
		{"/bank/*/id", []string{"/bank/x~1y/id=c"}},
		{"/inventory/1/n", []string{"/inventory/1/n=1"}},
		{"/nothing/*", nil},
	} {
		p, err := investigate.ParsePattern(tt.pattern)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		p.Match(doc, func(ptr string, v any) { got = append(got, ptr+"="+strings.Trim(mustJSON(v), `"`)) })
		if strings.Join(got, " ") != strings.Join(tt.want, " ") {
			t.Errorf("%s: %v, want %v", tt.pattern, got, tt.want)
		}
	}
	if _, err := investigate.ParsePattern("inventory"); err == nil {
		t.Error("a pattern without a leading / was accepted")
	}
}

func TestParsePointReadsVersionsAndTimes(t *testing.T) {
	if p, err := investigate.ParsePoint("42"); err != nil || p.Version != 42 {
		t.Errorf("42: %+v %v", p, err)
	}
	if p, err := investigate.ParsePoint("2026-01-02T03:04:05Z"); err != nil || p.Time.Year() != 2026 {
		t.Errorf("time: %+v %v", p, err)
	}
	for _, bad := range []string{"0", "-1", "yesterday"} {
		if _, err := investigate.ParsePoint(bad); err == nil {
			t.Errorf("%q was accepted", bad)
		}
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

type player struct {
	Inventory []string `json:"inventory"`
}

// TestDupesFindsAForgedCopyAndTracesIt: an item traded from a to b, then
// copied into c by an event forged on c's subject, is found by Dupes both
// through snapshots (FromStore) and by replay (the bare store), and its
// trace names the forged event as the origin.
func TestDupesFindsAForgedCopyAndTracesIt(t *testing.T) {
	srv := pltest.Run(t)
	js := pltest.Connect(t, srv.URL())
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	st, err := profileledger.Open(ctx, js, "inv", player{Inventory: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)
	sessions := map[string]*profileledger.Session[player]{}
	for _, k := range []string{"a", "b", "c"} {
		if sessions[k], err = st.StartSession(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if err := sessions["a"].Apply(ctx, "loot", profileledger.Add("/inventory/-", "axe")); err != nil {
		t.Fatal(err)
	}
	if err := profileledger.Trade(ctx, "give", sessions["a"], sessions["b"], func(a, b *player) error {
		a.Inventory, b.Inventory = nil, append(b.Inventory, "axe")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, s := range sessions {
		if err := s.End(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var last profileledger.Event
	for ev, err := range st.History(ctx, "c") {
		if err != nil {
			t.Fatal(err)
		}
		last = ev
	}
	forged, _ := json.Marshal(map[string]any{"v": 1, "id": "forged", "type": "loot", "session": last.Session, "epoch": last.Epoch,
		"time": time.Now().UTC(), "ops": []map[string]any{{"op": "add", "path": "/inventory/-", "value": "axe"}}})
	n, _ := names.New("inv")
	tok, _ := keys.Encode("c")
	ack, err := js.Publish(ctx, n.Events(tok), forged)
	if err != nil {
		t.Fatal(err)
	}
	pattern, _ := investigate.ParsePattern("/inventory/*")
	for name, src := range map[string]investigate.Source{"snapshots": investigate.FromStore(st), "replay": st} {
		var seen []investigate.Progress
		rep, err := investigate.Dupes(ctx, src, pattern, investigate.WithProgress(func(p investigate.Progress) { seen = append(seen, p) }))
		if err != nil {
			t.Fatal(err)
		}
		if rep.Profiles != 3 || rep.Values != 2 || len(rep.Dupes) != 1 || string(rep.Dupes[0].Value) != `"axe"` {
			t.Fatalf("%s: %+v", name, rep)
		}
		tr := rep.Dupes[0].Trace
		o := tr.Origins()
		if !tr.Dupe || tr.Live != 2 || len(o) != 1 || o[0].Key != "c" || o[0].EventID != "forged" || o[0].Seq != ack.Sequence || o[0].Suspect == "" {
			t.Errorf("%s: trace %+v, origins %+v", name, tr, o)
		}
		if len(seen) == 0 || seen[len(seen)-1] != (investigate.Progress{Phase: "trace", Done: 3, Total: 3}) {
			t.Errorf("%s: progress %v", name, seen)
		}
	}

	// The trade moved it, the forgery copied it: Blame and Log agree.
	b, err := investigate.Blame(ctx, st, "c", "/inventory")
	if err != nil || len(b.Elements) != 1 || b.Elements[0].EventID != "forged" {
		t.Errorf("blame: %+v %v", b, err)
	}
	var buf bytes.Buffer
	res, err := investigate.Export(ctx, js, "inv", &buf, investigate.ExportOptions{Key: "c"})
	if err != nil || res.LastSeq != ack.Sequence || !strings.Contains(buf.String(), `"id":"forged"`) {
		t.Errorf("export -key c: %+v %v\n%s", res, err, buf.String())
	}
}

// TestFollowStopsWithItsContext: Follow prints what is there, then waits
// for more, and returns nil when its context ends.
func TestFollowStopsWithItsContext(t *testing.T) {
	st := pltest.Store(t, player{Inventory: []string{}})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	s, err := st.StartSession(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	defer s.End(ctx)
	fctx, fcancel := context.WithCancel(ctx)
	got := make(chan investigate.Entry, 16)
	done := make(chan error, 1)
	go func() {
		done <- investigate.Follow(fctx, st, "k", investigate.LogFilter{Types: []string{"loot"}}, 10*time.Millisecond, func(e investigate.Entry) error {
			got <- e
			return nil
		})
	}()
	for _, item := range []string{"x", "y"} {
		if err := s.Apply(ctx, "loot", profileledger.Add("/inventory/-", item)); err != nil {
			t.Fatal(err)
		}
		if e := <-got; e.Summary != `/inventory/- add "`+item+`"` {
			t.Fatalf("followed %+v", e)
		}
	}
	fcancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

package demorun

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/internal/keys"
	"github.com/profileledger/profileledger/internal/names"
	"github.com/profileledger/profileledger/pltest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestDemoDupesCheckFindsAPlantedGem: the check the demo ends with finds
// a gem planted by a forged event, and names that event.
func TestDemoDupesCheckFindsAPlantedGem(t *testing.T) {
	srv := pltest.Run(t)
	js := pltest.Connect(t, srv.URL())
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	st, err := profileledger.Open(ctx, js, StoreName, Player{Inventory: []string{}, Gems: []string{}, Gifts: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)
	for i, k := range []string{"player-01", "player-02"} {
		s, err := st.StartSession(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Apply(ctx, "mint", profileledger.Add("/gems/-", gem(i+1, 1))); err != nil {
			t.Fatal(err)
		}
		if err := s.End(ctx); err != nil {
			t.Fatal(err)
		}
	}
	v := &Verification{}
	if err := checkDupes(ctx, st, v); err != nil || v.Dupes != 0 || !v.ok() {
		t.Fatalf("a clean store: %d dupes, %v, problems %v", v.Dupes, err, v.Problems)
	}

	var last profileledger.Event
	for ev, err := range st.History(ctx, "player-02") {
		if err != nil {
			t.Fatal(err)
		}
		last = ev
	}
	forged, _ := json.Marshal(map[string]any{"v": 1, "id": "forged-gem", "type": "mint", "session": last.Session, "epoch": last.Epoch,
		"time": time.Now().UTC(), "ops": []map[string]any{{"op": "add", "path": "/gems/-", "value": gem(1, 1)}}})
	n, _ := names.New(StoreName)
	tok, _ := keys.Encode("player-02")
	ack, err := js.Publish(ctx, n.Events(tok), forged)
	if err != nil {
		t.Fatal(err)
	}
	v = &Verification{}
	if err := checkDupes(ctx, st, v); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`dupes: "gem-01-1" duplicated into "player-02" at seq %d by event forged-gem (mutation mint)`, ack.Sequence)
	if v.Dupes != 1 || v.ok() || len(v.Problems) != 1 || v.Problems[0] != want {
		t.Fatalf("planted: %d dupes, problems %q; want %q", v.Dupes, v.Problems, want)
	}
}

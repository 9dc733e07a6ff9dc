package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/profileledger/profileledger"
	"github.com/profileledger/profileledger/examples/projections"
	"github.com/profileledger/profileledger/pltest"
)

type gemHolder struct {
	Gold int      `json:"gold"`
	Gems []string `json:"gems"`
}

func TestProjectRunsTheBuiltInProjectionsReportsDupesAndStatus(t *testing.T) {
	srv := pltest.Run(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	js := pltest.Connect(t, srv.URL())
	st, err := profileledger.Open(ctx, js, "game", gemHolder{Gold: 100, Gems: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(context.Background())
	a, _ := st.StartSession(ctx, "a")
	b, _ := st.StartSession(ctx, "b")
	for i := range 12 {
		a.Apply(ctx, "earn", profileledger.Inc("/gold", i))
	}
	a.Apply(ctx, "mint", profileledger.Add("/gems/-", "ruby"))
	b.Apply(ctx, "bug", profileledger.Add("/gems/-", "ruby")) // the dupe

	var out, errOut syncBuffer
	rctx, stop := context.WithCancel(ctx)
	done := make(chan int, 1)
	go func() {
		done <- NewMain(&out, &errOut).Run(rctx, []string{"project", "game", "-snapshotter", "-every", "5", "-items", "/gems",
			"-balances", "/gold", "-json", "-progress", "50ms", "-server", srv.URL()})
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		list, err := profileledger.ProjectionStatuses(ctx, js, "game")
		caught := err == nil && len(list) == 3
		for _, s := range list {
			caught = caught && s.LagEvents() == 0 && s.AckFloor > 0
		}
		if caught {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("projections did not catch up: %+v %v\nstderr:\n%s", list, err, errOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // a progress line
	stop()                             // Ctrl-C
	if code := <-done; code != exitOK {
		t.Fatalf("exit %d\nstderr:\n%s", code, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var d projections.Dupe
	if len(lines) != 2 || json.Unmarshal([]byte(lines[0]), &d) != nil || d.Item != "ruby" || strings.Join(d.Owners, ",") != "a,b" {
		t.Fatalf("want one dupe line and a summary:\n%s", out.String())
	}
	var sum projectSummary
	if err := json.Unmarshal([]byte(lines[1]), &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Projections["snapshotter"].Snapshots == 0 || sum.Projections["balances"].Events == 0 || len(sum.Dupes) != 1 || len(sum.Errors) != 0 {
		t.Fatalf("summary %+v", sum)
	}
	if !strings.Contains(errOut.String(), "snapshotter: ") || !strings.Contains(errOut.String(), "dupes 1") {
		t.Errorf("no progress on stderr:\n%s", errOut.String())
	}
	// The balances are in their bucket.
	bal, err := projections.OpenBalances(ctx, js, "PL_game_BALANCES", func(*gemHolder) int64 { return 0 })
	if err != nil {
		t.Fatal(err)
	}
	if got, ok, err := bal.Get(ctx, "a"); err != nil || !ok || got.Balance != int64(a.Data().Gold) || got.Version != a.Version() {
		t.Fatalf("balance of a: %+v %v %v; want %d at %d", got, ok, err, a.Data().Gold, a.Version())
	}

	code, text, _ := run(t, ctx, "project", "game", "-status", "-server", srv.URL())
	if code != exitOK || !strings.Contains(text, "PROJECTION") || !strings.Contains(text, "snapshotter") || !strings.Contains(text, "items") {
		t.Fatalf("-status: exit %d:\n%s", code, text)
	}
	code, text, _ = run(t, ctx, "project", "-json", "-status", "game", "-server", srv.URL())
	var list []profileledger.ProjectionStatus
	if code != exitOK || json.Unmarshal([]byte(text), &list) != nil || len(list) != 3 || list[0].Name != "balances" {
		t.Fatalf("-status -json: exit %d:\n%s", code, text)
	}
}

func TestProjectRefusesBadFlags(t *testing.T) {
	ctx := t.Context()
	for _, args := range [][]string{
		{"project", "game"},
		{"project", "game", "-items", "gems"},
		{"project", "game", "-balances", "/a~9"},
		{"project", "game", "-snapshotter", "-from-start", "-from-now"},
		{"project", "game", "-snapshotter", "-every", "0"},
		{"project", "-snapshotter"},
	} {
		if code, _, errOut := run(t, ctx, args...); code != exitUsage || errOut == "" {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
		}
	}
}
